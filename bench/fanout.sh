#!/usr/bin/env bash
# Subscriber fan-out: what live subscriptions cost ingest, and whether N
# subscribers to "*" keep up with a given ingest rate.
#
#   bench/fanout.sh BUILD_DIR [SUBS] [RATE] [COUNT]
#
# Three runs, each on a fresh daemon (journal off, loopback, port 0,
# tickslabd's threads pinned to CPU 0 but for its send thread, on CPU 1,
# `tickslab gen` and the subscribers on CPU 1; SEND=off runs the daemon
# with subscribe.send_thread off, wholly on CPU 0):
#   1. no subscriber, gen as fast as it goes: the daemon's CPU ns/tick
#      (utime+stime of all its threads, /proc; then the loop thread's and
#      the send thread's) and the ingest rate;
#   2. the same with one subscriber (bench/sub_drain) to "*";
#   3. SUBS subscribers (default 20) to "*", gen at RATE ticks/s (default
#      1000000) for COUNT ticks (default 5000000): kept up when no
#      subscriber was closed or dropped a tick and subscribe.sent_ticks is
#      SUBS x COUNT once the queues drained.
# Prints one line a run, then "fan-out: ..." with the verdicts.
set -euo pipefail
B=${1:?usage: bench/fanout.sh BUILD_DIR [SUBS] [RATE] [COUNT]}
SUBS=${2:-20} RATE=${3:-1000000} COUNT=${4:-5000000} SEND=${SEND:-on}
T=$(mktemp -d "${TMPDIR:-/tmp}/tickslab-fanout.XXXXXX")
P= D=
trap '[[ -n $D ]] && kill -TERM $D 2>/dev/null; [[ -n $P ]] && kill -KILL $P 2>/dev/null; rm -rf "$T"' EXIT
printf 'ingest:\n  listen: 127.0.0.1:0\nsubscribe:\n  listen: 127.0.0.1:0\n  send_thread: %s\ncontrol:\n  socket: %s/c.sock\njournal:\n  enabled: false\nlog:\n  level: warn\n' \
  "$SEND" "$T" > "$T/c.yaml"
stat_of() { "$B/cli/tickslab" --socket "$T/c.sock" --timeout 30 stats --text 2>/dev/null | awk -v k="$1" '$1 == k { print $2 }'; }
start() {
  taskset -c "$([[ $SEND == off ]] && echo 0 || echo 0,1)" "$B/daemon/tickslabd" --config "$T/c.yaml" 2>"$T/log" & P=$!
  for _ in $(seq 300); do [[ $(stat_of state 2>/dev/null) == ready ]] && { pin; return; }; sleep 0.1; done
  echo "fanout: daemon not ready" >&2; cat "$T/log" >&2; exit 1
}
# The send thread to CPU 1, every other thread to CPU 0 (those made later
# are the loop's, and inherit CPU 0).
pin() {
  SENDER=
  local t
  for t in /proc/$P/task/*; do
    if [[ $(cat "$t/comm") == tks-sub-send ]]; then SENDER=${t##*/}; taskset -p -c 1 "$SENDER"
    else taskset -p -c 0 "${t##*/}"; fi
  done >/dev/null
}
stop() { kill -TERM $P; wait $P || true; P=; }
cpu() { awk '{ print $14 + $15 }' "/proc/$P/stat"; }
tcpu() { [[ -n $1 ]] && awk '{ print $14 + $15 }' "/proc/$P/task/$1/stat" || echo 0; }
wait_for() { # STAT VALUE
  for _ in $(seq 600); do (( $(stat_of "$1") >= $2 )) && return; sleep 0.1; done
}
run() { # NAME SUBS GEN_ARGS...
  local name=$1 subs=$2; shift 2
  start
  if ((subs > 0)); then
    taskset -c 1 "$B/bench/sub_drain" "$(stat_of subscribe.port)" "$subs" > "$T/drain" 2>/dev/null & D=$!
    wait_for subscribe.subscribers "$subs"
  fi
  local c0 t0 c1 t1 l0 l1 s0 s1
  c0=$(cpu); l0=$(tcpu $P); s0=$(tcpu "$SENDER"); t0=$(date +%s.%N)
  taskset -c 1 "$B/cli/tickslab" --config "$T/c.yaml" gen --count "$COUNT" "$@" >/dev/null
  wait_for ticks.accepted "$COUNT"
  t1=$(date +%s.%N)
  ((subs > 0)) && wait_for subscribe.sent_ticks $((subs * COUNT))
  sleep 0.3
  c1=$(cpu); l1=$(tcpu $P); s1=$(tcpu "$SENDER")
  local sent slow dropped queued
  sent=$(stat_of subscribe.sent_ticks) slow=$(stat_of subscribe.closed_slow)
  dropped=$(stat_of subscribe.dropped_ticks) queued=$(stat_of subscribe.queue_bytes)
  if [[ -n $D ]]; then kill -TERM $D 2>/dev/null || true; wait $D || true; D=; fi
  local hz; hz=$(getconf CLK_TCK)
  NS=$(awk -v c0="$c0" -v c1="$c1" -v hz="$hz" -v N="$COUNT" 'BEGIN { printf "%.1f", (c1 - c0) / hz * 1e9 / N }')
  local split
  split=$(awk -v l0="$l0" -v l1="$l1" -v s0="$s0" -v s1="$s1" -v hz="$hz" -v N="$COUNT" \
    'BEGIN { printf "loop %.1f, send thread %.1f", (l1 - l0) / hz * 1e9 / N, (s1 - s0) / hz * 1e9 / N }')
  RATE_M=$(awk -v N="$COUNT" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.2f", N / (t1 - t0) / 1e6 }')
  KEPT=$([[ $subs == 0 || ( $slow == 0 && $dropped == 0 && $sent == $((subs * COUNT)) ) ]] && echo yes || echo no)
  printf '%-30s %6s ns/tick (%s)  %5s M ticks/s in' "$name" "$NS" "$split" "$RATE_M"
  ((subs > 0)) && printf '  sent %s of %s, closed slow %s, dropped %s, queued %s B' \
    "$sent" $((subs * COUNT)) "$slow" "$dropped" "$queued"
  printf '\n'
  stop
}
run "no subscriber" 0; NS0=$NS R0=$RATE_M
run "1 subscriber" 1; NS1=$NS R1=$RATE_M
run "$SUBS subscribers at $RATE/s" "$SUBS" --rate "$RATE"; RN=$RATE_M KN=$KEPT
awk -v r0="$R0" -v r1="$R1" -v n0="$NS0" -v n1="$NS1" -v s="$SUBS" -v rn="$RN" -v k="$KN" -v rate="$RATE" 'BEGIN {
  printf "fan-out: 1 subscriber: ingest %.0f%% of none (target >= 80%%: %s), CPU %+.0f%% a tick\n",
    100 * r1 / r0, (r1 >= 0.8 * r0 ? "met" : "MISSED"), 100 * (n1 - n0) / n0
  printf "fan-out: %d subscribers at %.2f M ticks/s in (asked %.2f M): kept up %s (target: yes at 1 M/s: %s)\n",
    s, rn, rate / 1e6, k, (k == "yes" && rn >= 0.95 && rate >= 1000000) ? "met" : "MISSED" }'
