#!/usr/bin/env bash
# Kafka beside TCP: TCP ingest, the ingest rate of a node's Kafka source
# (from librdkafka's mock cluster, tests/kafka_mock), then the Kafka sink's
# produce rate (bench/kafka_sink.sh), each on a fresh daemon with the
# journal on (temp dirs, loopback, port 0).
#
#   bench/kafka.sh BUILD_DIR [COUNT] [SYMBOLS]
#
# COUNT ticks (default 1000000) of SYMBOLS symbols (default 100).  CPU is
# the daemon's (utime+stime of all its threads, librdkafka's included,
# from /proc) a tick; the rate is COUNT over the wall time until the
# daemon had them all (source: stored; sink: acknowledged by Kafka).
# The mock cluster runs on the same two cores: the figures are what this
# machine gives with it, not a Kafka cluster's.
set -euo pipefail
B=${1:?usage: bench/kafka.sh BUILD_DIR [COUNT] [SYMBOLS]}
COUNT=${2:-1000000} SYMS=${3:-100}
[[ -x $B/tests/kafka_mock && -x $B/bench/kafka_feed ]] || {
  echo "kafka: $B has no tests/kafka_mock or bench/kafka_feed (a build without Kafka?)" >&2; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/tickslab-kafka.XXXXXX")
P= M=
trap '[[ -n $P ]] && kill -KILL $P 2>/dev/null; [[ -n $M ]] && kill -TERM $M 2>/dev/null; rm -rf "$T"' EXIT
mkfifo "$T/mock.in"
"$B/tests/kafka_mock" --brokers 1 ticks:6 < "$T/mock.in" > "$T/mock.out" 2>"$T/mock.err" & M=$!
exec 9>"$T/mock.in" # keeps the mock's stdin open
for _ in $(seq 100); do grep -q bootstraps "$T/mock.out" 2>/dev/null && break; sleep 0.1; done
BOOT=$(awk '/^bootstraps/ { print $2 }' "$T/mock.out")
[[ -n $BOOT ]] || { echo "kafka: the mock cluster did not start" >&2; cat "$T/mock.err" >&2; exit 1; }

conf() { # NAME EXTRA_YAML
  mkdir -p "$T/$1"
  printf 'ingest:\n  listen: 127.0.0.1:0\nsubscribe:\n  listen: "off"\ncontrol:\n  socket: %s/%s/c.sock\njournal:\n  dir: %s/%s/journal\n  fsync: interval\nlog:\n  level: warn\n%s' \
    "$T" "$1" "$T" "$1" "$2" > "$T/$1/c.yaml"
}
stat_of() { "$B/cli/tickslab" --socket "$T/$1/c.sock" --timeout 30 stats --text 2>/dev/null | awk -v k="$2" '$1 == k { print $2 }'; }
start() { # NAME
  taskset -c 0 "$B/daemon/tickslabd" --config "$T/$1/c.yaml" 2>"$T/$1/log" & P=$!
  for _ in $(seq 300); do [[ $(stat_of "$1" state 2>/dev/null) == ready ]] && return; sleep 0.1; done
  echo "kafka: daemon $1 not ready" >&2; cat "$T/$1/log" >&2; exit 1
}
stop() { kill -TERM $P; wait $P || true; P=; }
cpu() { awk '{ print $14 + $15 }' "/proc/$P/stat"; }
wait_for() { # NAME STAT VALUE
  for _ in $(seq 3000); do (( $(stat_of "$1" "$2" || echo 0) >= $3 )) && return 0; sleep 0.1; done
  echo "kafka: $1: $2 did not reach $3 ($(stat_of "$1" "$2"))" >&2; return 1
}
report() { # NAME C0 C1 T0 T1
  awk -v name="$1" -v c0="$2" -v c1="$3" -v t0="$4" -v t1="$5" -v hz="$(getconf CLK_TCK)" -v N="$COUNT" 'BEGIN {
    printf "%-34s %7.1f ns/tick  %6.3f M ticks/s\n", name, (c1 - c0) / hz * 1e9 / N, N / (t1 - t0) / 1e6 }'
}

# 1. TCP ingest, the same ticks' count, journal on.
conf tcp ""
start tcp
c0=$(cpu); t0=$(date +%s.%N)
taskset -c 1 "$B/cli/tickslab" --config "$T/tcp/c.yaml" gen --count "$COUNT" --symbols "$SYMS" >/dev/null
wait_for tcp ticks.accepted "$COUNT"
t1=$(date +%s.%N); c1=$(cpu)
report "TCP ingest (gen)" "$c0" "$c1" "$t0" "$t1"
stop

# 2. The source: a node in the group first, then the feed (librdkafka's
# mock keeps about 5 MB a partition: a topic filled first would lose its
# oldest messages before the node read them).
conf source ""
printf "kafka:\n  source:\n    brokers: \"%s\"\n    group: bench\n    properties:\n      fetch.wait.max.ms: 10\n" "$BOOT" >> "$T/source/c.yaml"
start source
wait_for source kafka.source.assigned 6 # the group joined: from here on it consumes
c0=$(cpu); t0=$(date +%s.%N)
taskset -c 1 "$B/bench/kafka_feed" "$BOOT" ticks "$COUNT" "$SYMS" > "$T/feed"
wait_for source kafka.source.stored "$COUNT"
t1=$(date +%s.%N); c1=$(cpu)
report "Kafka source (mock cluster)" "$c0" "$c1" "$t0" "$t1"
echo "  (the feed, on the other core, at the same time: $(cat "$T/feed"); lag $(stat_of source kafka.source.lag_messages))"
stop

# 3. The sink (bench/kafka_sink.sh): a backlog journaled while the brokers
# are down, then produced; then TCP ingest with the sink live.
stop_mock() { [[ -n $M ]] && kill -TERM $M 2>/dev/null; M=; }
stop_mock
"$(dirname "$0")/kafka_sink.sh" "$B" "$COUNT" "$SYMS"
