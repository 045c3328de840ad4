#!/usr/bin/env bash
# Checkpoint figures of the real daemon (issue 8):
#
#   bench/checkpoint.sh BUILD_DIR [COUNT] [SYMBOLS]
#
# Ingests COUNT slotted ticks (default 10000000) over SYMBOLS symbols
# (default 100) into a tickslabd with the journal on, then:
#   1. `checkpoint` with ingest idle: the child's write rate (bytes and ticks
#      over the request's seconds, fork to durable) and the event loop's
#      pause in fork() (checkpoint.fork_seconds);
#   2. `checkpoint` again while `tickslab gen` sends COUNT/5 more ticks: the
#      fork pause and the write with ingest going on;
#   3. a restart after a checkpoint of every tick:
#      the load rate (checkpoint.loaded_ticks / checkpoint.load_seconds, and
#      the file's bytes over it) and the time until ping answers;
#   4. a restart under a schema with one more (optional) field: the
#      converting load (each record rebuilt by a plan of copies and defaults).
# Timings only here, never in the tests.  Loopback only, port 0, a temp dir
# under $TMPDIR (the journal and checkpoints: about 90 bytes a tick).
set -euo pipefail
B=${1:?usage: bench/checkpoint.sh BUILD_DIR [COUNT] [SYMBOLS]}
N=${2:-10000000}
S=${3:-100}
T=$(mktemp -d "${TMPDIR:-/tmp}/tickslab-ckpt.XXXXXX")
P=
trap '[[ -n $P ]] && kill -KILL $P 2>/dev/null; rm -rf "$T"' EXIT
CPU0= CPU1=
if (($(nproc) >= 2)); then CPU0="taskset -c 0" CPU1="taskset -c 1"; fi

config() { # extra schema field: "" or a YAML list item
  {
    printf 'ingest:\n  listen: 127.0.0.1:0\nsubscribe:\n  listen: 127.0.0.1:0\ncontrol:\n  socket: %s/c.sock\n' "$T"
    printf 'journal:\n  dir: %s/j\n  fsync: never\n  checkpoint_interval: 0\n  checkpoint_bytes: 0\n' "$T"
    if [[ -n $1 ]]; then
      printf 'schema:\n  - {name: ts, type: timestamp}\n  - {name: ticker, type: symbol, required: true}\n'
      printf '  - {name: price, type: f64, required: true}\n  - {name: volume, type: i64, required: true}\n'
      printf '  - {name: flags, type: string}\n  - %s\n' "$1"
    fi
  } >"$T/c.yaml"
}
cli() { "$B/cli/tickslab" --socket "$T/c.sock" --timeout 600 "$@"; }
stat_of() { cli stats --text 2>/dev/null | awk -v k="$1" '$1 == k { print $2 }'; }
now() { date +%s.%N; }
start() {
  local t0
  t0=$(now)
  $CPU0 "$B/daemon/tickslabd" --config "$T/c.yaml" 2>>"$T/log" &
  P=$!
  for _ in $(seq 6000); do
    # Ready, not loading: while a start loads, stats answers loading.* only.
    if [[ $(stat_of state) == ready ]]; then
      READY=$(echo "$(now) - $t0" | bc -l)
      return
    fi
    kill -0 $P 2>/dev/null || { tail -5 "$T/log" >&2; echo "bench: the daemon exited" >&2; exit 1; }
    sleep 0.1
  done
  echo "bench: daemon not ready" >&2
  exit 1
}
stop() { kill -TERM $P; wait $P || true; P=; }
gen() { $CPU1 "$B/cli/tickslab" --config "$T/c.yaml" gen --count "$1" --symbols "$S" --wait >/dev/null; }
checkpoint() { # prints ticks bytes seconds
  cli request checkpoint | sed -n 's/.*"ticks":\([0-9]*\),"bytes":\([0-9]*\),"seconds":\([0-9.]*\).*/\1 \2 \3/p'
}
mbps() { echo "$1 / $2 / 1000000" | bc -l; }

config ""
start
echo "bench: ingesting $N ticks over $S symbols" >&2
gen "$N"
rss=$(stat_of memory.rss_bytes)

read -r ticks bytes secs < <(checkpoint)
fork=$(stat_of checkpoint.fork_seconds)
printf 'checkpoint, ingest idle:   %d ticks, %d bytes (%.1f B/tick) in %.3f s: %.0f MB/s, %.1f M ticks/s; fork pause %.2f ms (RSS %d MiB)\n' \
  "$ticks" "$bytes" "$(echo "$bytes / $ticks" | bc -l)" "$secs" "$(mbps "$bytes" "$secs")" \
  "$(echo "$ticks / $secs / 1000000" | bc -l)" "$(echo "$fork * 1000" | bc -l)" $((rss >> 20))

more=$((N / 5))
gen "$more" &
G=$!
sleep 0.2
read -r ticks bytes secs < <(checkpoint)
fork=$(stat_of checkpoint.fork_seconds)
wait $G
printf 'checkpoint, under ingest:  %d ticks, %d bytes in %.3f s: %.0f MB/s; fork pause %.2f ms\n' \
  "$ticks" "$bytes" "$secs" "$(mbps "$bytes" "$secs")" "$(echo "$fork * 1000" | bc -l)"
total=$((N + more))
checkpoint >/dev/null # of every tick, so the restart loads them all and replays nothing
stop

start
loaded=$(stat_of checkpoint.loaded_ticks)
ls=$(stat_of checkpoint.load_seconds)
file=$(stat -c %s "$T"/j/checkpoint-*.tkc | sort -n | tail -1)
printf 'load at start:             %d ticks (of %d) in %.3f s: %.1f M ticks/s, %.0f MB/s; ready (ping) after %.2f s\n' \
  "$loaded" "$total" "$ls" "$(echo "$loaded / $ls / 1000000" | bc -l)" "$(mbps "$file" "$ls")" "$READY"
{ kill -KILL $P && wait $P; } 2>/dev/null || true
P=

config "{name: exchange, type: string}"
start
loaded=$(stat_of checkpoint.loaded_ticks)
ls=$(stat_of checkpoint.load_seconds)
printf 'converting load at start:  %d ticks in %.3f s: %.1f M ticks/s (one more field); ready after %.2f s\n' \
  "$loaded" "$ls" "$(echo "$loaded / $ls / 1000000" | bc -l)" "$READY"
{ kill -KILL $P && wait $P; } 2>/dev/null || true
P=
