#!/usr/bin/env bash
# The daemon's own cost per tick, the figures that hold on a shared VM:
#
#   bench/cpu.sh cpu BUILD_DIR [on|off] [COUNT]
#       CPU time of every tickslabd thread (utime+stime from /proc/PID/stat)
#       divided by the ticks, the daemon pinned to CPU 0 and `tickslab gen`
#       to CPU 1; with the journal on it waits for `sync`.  Prints
#       "N ns/tick  R M/s", and with the journal on the share of its writer
#       thread (the one named tks-journal, from /proc/PID/task/TID/stat):
#       "writer W ns/tick".  Interleave two builds for an A/B:
#         for i in 1 2 3 4; do bench/cpu.sh cpu A off; bench/cpu.sh cpu B off; done
#       EXTRA='store:\n  huge_pages: on' (real newlines) adds config sections.
#       SYMBOLS=N (every mode) spreads the ticks over N symbols (default 100).
#   bench/cpu.sh memory BUILD_DIR [on|off] [COUNT]
#       memory.total_bytes against memory.rss_bytes (both per stored tick,
#       RSS as its growth since the start, as bench.sh's "stats vs RSS")
#       right after COUNT ticks are stored, and again after a `sync` and a
#       second's rest, when the buffers have drained.  Prints one line each,
#       with the memory.*_buffer_bytes the daemon reports.
#   bench/cpu.sh instructions BUILD_DIR [COUNT] [off|on]
#       Instructions the daemon executes (valgrind --tool=callgrind, all its
#       threads; journal off unless "on", then up to the `sync` after the
#       ticks) for COUNT ticks (default 1000000) over 100 symbols (SUBS=N:
#       with N subscribers to "*", bench/sub_drain, until they had every
#       tick): repeatable
#       whatever else the machine does.  Prints callgrind's total; the
#       profile is left in ./callgrind.tickslabd.out for callgrind_annotate.
#
# Loopback only, port 0, a temporary journal directory and control socket.
set -euo pipefail
what=${1:?usage: bench/cpu.sh cpu|memory|instructions BUILD_DIR ...}
B=${2:?build dir}
T=$(mktemp -d "${TMPDIR:-/tmp}/tickslab-cpu.XXXXXX")
P=
trap '[[ -n $P ]] && kill -KILL $P 2>/dev/null; rm -rf "$T"' EXIT
config() { # journal enabled: true | false; $EXTRA: more top-level YAML sections
  printf 'ingest:\n  listen: 127.0.0.1:0\nsubscribe:\n  listen: 127.0.0.1:0\ncontrol:\n  socket: %s/c.sock\njournal:\n  enabled: %s\n  dir: %s/j\n%s\n' \
    "$T" "$1" "$T" "${EXTRA:-}" > "$T/c.yaml"
}
stat_of() { "$B/cli/tickslab" --socket "$T/c.sock" --timeout 30 stats --text 2>/dev/null | awk -v k="$1" '$1 == k { print $2 }'; }
wait_ready() { for _ in $(seq 1200); do [[ $(stat_of state) == ready ]] && return; sleep 0.1; done; echo "bench: daemon not ready" >&2; exit 1; }
wait_accepted() { while (( $(stat_of ticks.accepted || echo 0) < $1 )); do sleep 0.05; done; }
case $what in
cpu)
  J=${3:-off}; N=${4:-10000000}
  config "$([[ $J == on ]] && echo true || echo false)"
  taskset -c 0 "$B/daemon/tickslabd" --config "$T/c.yaml" 2>"$T/log" & P=$!
  wait_ready
  cpu() { awk '{ print $14 + $15 }' "/proc/$P/stat"; }
  wcpu() { # the journal writer thread's utime+stime (builds before it had a name: the
    local t best=0 c  # busiest thread but the main one), 0 without one
    for t in /proc/$P/task/*; do
      [[ $(cat "$t/comm" 2>/dev/null) == tks-journal ]] && { awk '{ print $14 + $15 }' "$t/stat"; return; }
      [[ ${t##*/} == "$P" ]] && continue
      c=$(awk '{ print $14 + $15 }' "$t/stat" 2>/dev/null || echo 0)
      ((c > best)) && best=$c
    done
    echo "$best"
  }
  c0=$(cpu); w0=$(wcpu); t0=$(date +%s.%N)
  taskset -c 1 "$B/cli/tickslab" --config "$T/c.yaml" gen --count "$N" --symbols "${SYMBOLS:-100}" >/dev/null
  wait_accepted "$N"
  [[ $J == on ]] && "$B/cli/tickslab" --socket "$T/c.sock" request sync >/dev/null
  t1=$(date +%s.%N); c1=$(cpu); w1=$(wcpu)
  awk -v c0="$c0" -v c1="$c1" -v w0="$w0" -v w1="$w1" -v j="$J" -v hz="$(getconf CLK_TCK)" \
    -v n="$N" -v t0="$t0" -v t1="$t1" 'BEGIN {
      printf "%.1f ns/tick  %.2f M/s", (c1 - c0) / hz * 1e9 / n, n / (t1 - t0) / 1e6
      if (j == "on") printf "  writer %.1f ns/tick", (w1 - w0) / hz * 1e9 / n
      printf "\n" }'
  kill -TERM $P; wait $P || true; P=
  ;;
memory)
  J=${3:-on}; N=${4:-2000000}
  config "$([[ $J == on ]] && echo true || echo false)"
  taskset -c 0 "$B/daemon/tickslabd" --config "$T/c.yaml" 2>"$T/log" & P=$!
  wait_ready
  rss0=$(stat_of memory.rss_bytes)
  show() { # WHEN
    "$B/cli/tickslab" --socket "$T/c.sock" --timeout 30 stats --text > "$T/st" 2>/dev/null
    awk -v when="$1" -v rss0="$rss0" '
      { v[$1] = $2 }
      END {
        n = v["ticks.stored"]; s = v["memory.total_bytes"] / n; r = (v["memory.rss_bytes"] - rss0) / n
        printf "%-12s stats %.1f B/tick  rss %.1f B/tick (%+.1f%%)  total %.1f MiB  rss %.1f MiB", when, s, r,
          (s - r) / r * 100, v["memory.total_bytes"] / 1048576, v["memory.rss_bytes"] / 1048576
        printf "  journal %.1f MiB  read %.1f MiB  query %.1f MiB\n", v["memory.journal_buffer_bytes"] / 1048576,
          v["memory.read_buffer_bytes"] / 1048576, v["memory.query_buffer_bytes"] / 1048576 }' "$T/st"
  }
  taskset -c 1 "$B/cli/tickslab" --config "$T/c.yaml" gen --count "$N" --symbols "${SYMBOLS:-100}" >/dev/null
  wait_accepted "$N"
  show stored
  [[ $J == on ]] && "$B/cli/tickslab" --socket "$T/c.sock" request sync >/dev/null
  sleep 2 # the writer gives its buffers back after a second with nothing to write
  show drained
  kill -TERM $P; wait $P || true; P=
  ;;
instructions)
  N=${3:-1000000}; J=${4:-off}
  config "$([[ $J == on ]] && echo true || echo false)"
  valgrind --tool=callgrind --callgrind-out-file=callgrind.tickslabd.out \
    "$B/daemon/tickslabd" --config "$T/c.yaml" 2>"$T/log" & P=$!
  wait_ready
  S=${SUBS:-0} D=
  if ((S > 0)); then
    "$B/bench/sub_drain" "$(stat_of subscribe.port)" "$S" >/dev/null 2>&1 & D=$!
    while (( $(stat_of subscribe.subscribers || echo 0) < S )); do sleep 0.1; done
  fi
  "$B/cli/tickslab" --config "$T/c.yaml" gen --count "$N" --symbols "${SYMBOLS:-100}" >/dev/null
  wait_accepted "$N"
  if ((S > 0)); then
    while (( $(stat_of subscribe.sent_ticks || echo 0) < S * N )); do sleep 0.1; done
    sleep 1; kill -TERM $D; wait $D || true
  fi
  [[ $J == on ]] && "$B/cli/tickslab" --socket "$T/c.sock" --timeout 300 request sync >/dev/null
  kill -TERM $P; wait $P || true; P=
  callgrind_annotate callgrind.tickslabd.out 2>/dev/null | grep -m1 "PROGRAM TOTALS"
  ;;
*) echo "usage: bench/cpu.sh cpu|memory|instructions BUILD_DIR ..." >&2; exit 2 ;;
esac
