#!/usr/bin/env bash
# A fleet on Kafka: rates against librdkafka's mock cluster (tests/kafka_mock,
# 3 brokers on loopback), beside TCP ingest, on a fresh daemon (journal on,
# fsync interval, loopback, temp dirs).  Needs a build with Kafka (-Dkafka).
#
#   bench/kafka_sink.sh BUILD_DIR [COUNT] [SYMBOLS]   (bench/kafka.sh runs it last)
#
# The sink part ("sink:" lines): COUNT ticks (default 2000000) of SYMBOLS
# symbols (default 100) sent with `tickslab gen` while every broker is down
# (TCP ingest into the journal, the sink's backlog growing), then the brokers
# up and the time until kafka.sink.acknowledged reaches COUNT (the sink's
# produce rate: journal read, produce, acks=all); then as many again with
# the brokers up, gen and the sink at once (ingest with the sink live, and
# when the last is acknowledged).  kafka.sink.max_queue_bytes is 4GiB so
# that on_full does not step in.  The mock keeps 5 MiB a partition (older
# messages dropped): a count, not the topic, is what is measured.  Rates are
# wall clock on a shared VM: they swing.
set -euo pipefail
B=${1:?usage: bench/kafka_sink.sh BUILD_DIR [COUNT] [SYMBOLS]}
N=${2:-2000000} SYMS=${3:-100}
[[ -x $B/tests/kafka_mock ]] || { echo "kafka_sink.sh: $B/tests/kafka_mock is missing (a build without Kafka?)" >&2; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/tickslab-kafka.XXXXXX")
P=
coproc MOCK { "$B/tests/kafka_mock" --brokers 3 ticks:16; }
MP=$MOCK_PID
trap '[[ -n $P ]] && kill -KILL $P 2>/dev/null; kill $MP 2>/dev/null; rm -rf "$T"' EXIT
read -r -u "${MOCK[0]}" word BOOT
[[ $word == bootstraps ]] || { echo "kafka_sink.sh: the mock said '$word $BOOT'" >&2; exit 1; }
mock() { echo "$1" >&"${MOCK[1]}"; read -r -u "${MOCK[0]}" answer; [[ $answer == ok ]] || { echo "kafka_sink.sh: mock $1: $answer" >&2; exit 1; }; }
printf 'ingest:\n  listen: 127.0.0.1:0\nsubscribe:\n  listen: off\ncontrol:\n  socket: %s/c.sock\njournal:\n  dir: %s/journal\n  checkpoint_interval: 0\n  checkpoint_bytes: 0\nlog:\n  level: warn\nkafka:\n  sink:\n    brokers: "%s"\n    topic: ticks\n    max_queue_bytes: 4GiB\n' \
  "$T" "$T" "$BOOT" > "$T/c.yaml"
C=("$B/cli/tickslab" --config "$T/c.yaml" --timeout 120)
stat_of() { "${C[@]}" stats --text 2>/dev/null | awk -v k="$1" '$1 == k { print $2 }'; }
"$B/daemon/tickslabd" --config "$T/c.yaml" 2>"$T/log" & P=$!
for _ in $(seq 300); do [[ $(stat_of state 2>/dev/null) == ready ]] && break; sleep 0.1; done
now() { date +%s.%N; }
wait_acked() { # N: until kafka.sink.acknowledged >= N (600 s at most)
  local a
  for _ in $(seq 60000); do
    a=$(stat_of kafka.sink.acknowledged); [[ ${a:-0} -ge $1 ]] && return; sleep 0.01
  done
  echo "kafka_sink.sh: kafka.sink.acknowledged is still ${a:-0}, want $1" >&2; exit 1
}
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.2f", n / s / 1e6 }'; }

for id in 1 2 3; do mock "down $id"; done
"${C[@]}" gen --count "$N" --symbols "$SYMS" --wait >"$T/gen1" || { cat "$T/gen1" "$T/log" >&2; exit 1; }
t_up=$(now)
for id in 1 2 3; do mock "up $id"; done
wait_acked "$N" >/dev/null
drain=$(awk -v a="$t_up" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')
echo "sink: TCP ingest with the brokers down (the backlog journaled): $(head -1 "$T/gen1" | sed 's/.*: \([0-9.]* ticks\/s\).*/\1/') sent; $(tail -1 "$T/gen1")"
echo "sink: the backlog of $N ticks produced and acknowledged in $drain s: $(rate "$N" "$drain") M ticks/s"

t0=$(now)
"${C[@]}" gen --count "$N" --symbols "$SYMS" --wait >"$T/gen2" || { cat "$T/gen2" "$T/log" >&2; exit 1; }
wait_acked $((2 * N)) >/dev/null
live=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')
echo "sink: live, TCP ingest with the sink producing: $(tail -1 "$T/gen2")"
echo "sink: live, $N ticks sent and all acknowledged in $live s: $(rate "$N" "$live") M ticks/s end to end"
echo "sink: kafka.sink.failed $(stat_of kafka.sink.failed), rewinds $(stat_of kafka.sink.rewinds)"
kill -TERM $P; wait $P || true; P=
