#!/usr/bin/env bash
# The tickslab benchmark: ingest rate and memory per tick, tickslabd against
# Redis Streams, on loopback, the server pinned to CPU 0 and the load
# generator to CPU 1.  See bench/README.md.
#
#   bench/bench.sh [BUILD_DIR]          (default: build)
#
# Environment: COUNT (ticks per workload, default 10000000), SYMBOLS (the
# symbol counts, one workload each, default "100 10000"), CONNECTIONS (gen
# connections, default 1), GEN_ARGS (more `tickslab gen` options, e.g.
# --array), MODE (store.mode, default slotted), REDIS (auto | no),
# REDIS_COUNT (ticks for Redis, default COUNT).
set -euo pipefail

BUILD=${1:-build}
COUNT=${COUNT:-10000000}
SYMBOLS=${SYMBOLS:-"100 10000"}
CONNECTIONS=${CONNECTIONS:-1}
GEN_ARGS=${GEN_ARGS:-}
MODE=${MODE:-slotted}
REDIS=${REDIS:-auto}
REDIS_COUNT=${REDIS_COUNT:-$COUNT}
SRC=$(cd "$(dirname "$0")/.." && pwd)

DAEMON=$BUILD/daemon/tickslabd
CLI=$BUILD/cli/tickslab
LOAD=$BUILD/bench/redis_load

die() { echo "bench: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }

[[ -x $DAEMON ]] || die "$DAEMON not found: build first (meson setup $BUILD && ninja -C $BUILD)"
[[ -x $CLI ]] || die "$CLI not found: build first (meson setup $BUILD && ninja -C $BUILD)"
[[ $COUNT =~ ^[0-9]+$ && $COUNT -gt 0 ]] || die "COUNT must be a positive integer"
[[ $REDIS_COUNT =~ ^[0-9]+$ && $REDIS_COUNT -gt 0 ]] || die "REDIS_COUNT must be a positive integer"
for s in $SYMBOLS; do [[ $s =~ ^[0-9]+$ && $s -gt 0 ]] || die "SYMBOLS: '$s' is not a count"; done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tickslab-bench.XXXXXX")
DPID= RPID=
cleanup() {
  [[ -n $DPID ]] && kill -KILL "$DPID" 2>/dev/null || true
  [[ -n $RPID ]] && kill -KILL "$RPID" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Pin the server to CPU 0 and the load to CPU 1 where there are two CPUs.
PIN_SERVER=() PIN_LOAD=()
if command -v taskset >/dev/null && [[ $(nproc --all 2>/dev/null || echo 1) -ge 2 ]]; then
  PIN_SERVER=(taskset -c 0) PIN_LOAD=(taskset -c 1)
else
  note "fewer than 2 CPUs or no taskset: running unpinned, rates will be lower"
fi

human() { # 10000000 -> 10M
  local n=$1
  if ((n % 1000000 == 0)); then echo "$((n / 1000000))M"
  elif ((n % 1000 == 0)); then echo "$((n / 1000))k"
  else echo "$n"; fi
}

# Resident bytes of a process, from the kernel.
rss_of() {
  local pages
  read -r _ pages _ < "/proc/$1/statm" || return 1
  echo $((pages * $(getconf PAGESIZE)))
}

# A loopback port nothing listens on (racy, but the server start is checked).
free_port() {
  local p i
  for i in $(seq 1 50); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}

ROWS=()
FAILED=0
row() { ROWS+=("$(printf '%s\t' "$@")"); }

# ------------------------------------------------------------------ tickslab
SOCK= STATS=
stats() { "$CLI" --socket "$SOCK" --timeout 10 stats --text > "$STATS"; }
stat_value() { awk -v k="$1" '$1 == k { print $2; found = 1 } END { exit !found }' "$STATS"; }

start_daemon() { # LISTEN NAME -> DPID, or returns 1
  local listen=$1 name=$2 cfg=$TMP/$2.yaml i
  cat > "$cfg" <<EOF
ingest:
  listen: $listen
control:
  socket: $SOCK
store:
  mode: $MODE
log:
  level: warn
EOF
  "${PIN_SERVER[@]}" "$DAEMON" --config "$cfg" > "$TMP/$name.log" 2>&1 &
  DPID=$!
  for i in $(seq 1 100); do
    if "$CLI" --socket "$SOCK" --timeout 2 ping > /dev/null 2>&1; then return 0; fi
    kill -0 "$DPID" 2>/dev/null || break
    sleep 0.1
  done
  note "tickslabd did not answer ping within 10 s; its log:"
  sed 's/^/  /' "$TMP/$name.log" >&2
  stop_daemon
  return 1
}

stop_daemon() {
  [[ -n $DPID ]] || return 0
  kill -TERM "$DPID" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$DPID" 2>/dev/null; then
    note "tickslabd did not stop within 10 s of SIGTERM: killed"
    kill -KILL "$DPID" 2>/dev/null || true
  fi
  wait "$DPID" 2>/dev/null || true
  DPID=
}

run_tickslab() { # N SYMBOLS LABEL
  local n=$1 s=$2 label=$3 name=tickslabd-$2 port
  SOCK=$TMP/ctl-$s.sock STATS=$TMP/stats-$s.txt
  note "$label: tickslabd ($MODE), $n ticks over $s symbols"
  start_daemon 127.0.0.1:0 "$name" || { FAILED=1; row "$label" tickslab FAILED; return; }
  stats
  if ! port=$(stat_value ingest.port) || [[ $port == 0 ]]; then
    # No ingest.port in stats: listen on a port chosen here instead.
    stop_daemon
    port=$(free_port) || die "no free loopback port"
    start_daemon "127.0.0.1:$port" "$name" || { FAILED=1; row "$label" tickslab FAILED; return; }
    stats
  fi
  local rss0 acc0
  rss0=$(stat_value memory.rss_bytes) || die "stats text has no memory.rss_bytes"
  acc0=$(stat_value ticks.stored) || acc0=0

  local wait_s=$((60 + n / 200000)) out
  if ! out=$(timeout $((wait_s + 120)) "${PIN_LOAD[@]}" "$CLI" --socket "$SOCK" \
      --connect "127.0.0.1:$port" gen --count "$n" --symbols "$s" \
      --connections "$CONNECTIONS" --wait --wait-timeout "$wait_s" $GEN_ARGS); then
    note "$label: tickslab gen failed: $out"
    FAILED=1; row "$label" tickslab FAILED; stop_daemon; return
  fi
  while IFS= read -r l; do note "  $l"; done <<< "$out"
  local rate
  rate=$(sed -n 's/^stored [0-9]* ticks in [0-9.]* s: \([0-9]*\) ticks\/s.*/\1/p' <<< "$out")

  stats
  local stored bpt rss1
  stored=$(stat_value ticks.stored) || die "stats text has no ticks.stored"
  stored=$((stored - acc0))
  bpt=$(stat_value memory.bytes_per_tick) || bpt=NA
  rss1=$(stat_value memory.rss_bytes)
  stop_daemon
  if ((stored <= 0)); then
    FAILED=1; row "$label" tickslab "$stored" "$rate" "$bpt" NA NA; return
  fi
  local rss_bpt diff
  rss_bpt=$(awk -v a="$rss0" -v b="$rss1" -v n="$stored" 'BEGIN { printf "%.1f", (b - a) / n }')
  diff=$(awk -v s="$bpt" -v r="$rss_bpt" 'BEGIN {
    if (s == "NA" || r <= 0) print "NA"; else printf "%+.1f%%", (s - r) / r * 100 }')
  row "$label" "tickslab ($MODE)" "$stored" "$rate" "$(printf '%.1f' "$bpt" 2>/dev/null || echo "$bpt")" \
      "$rss_bpt" "$diff"
}

# ------------------------------------------------------------------ Redis
redis_info() { # FIELD
  redis-cli -p "$RPORT" info memory | tr -d '\r' | awk -F: -v k="$1" '$1 == k { print $2 }'
}

run_redis() { # N SYMBOLS LABEL
  local n=$1 s=$2 label=$3 i
  note "$label: redis-server (Streams, XADD), $n ticks over $s symbols"
  RPORT=$(free_port) || die "no free loopback port"
  "${PIN_SERVER[@]}" redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$TMP" --daemonize no --protected-mode yes --logfile "$TMP/redis-$s.log" &
  RPID=$!
  for i in $(seq 1 100); do
    [[ $(redis-cli -p "$RPORT" ping 2>/dev/null) == PONG ]] && break
    sleep 0.1
  done
  if [[ $(redis-cli -p "$RPORT" ping 2>/dev/null) != PONG ]]; then
    note "redis-server did not answer on port $RPORT within 10 s"
    kill -KILL "$RPID" 2>/dev/null || true; wait "$RPID" 2>/dev/null || true; RPID=
    FAILED=1; row "$label" "redis streams" FAILED; return
  fi
  local used0 rss0 t0 t1 out
  used0=$(redis_info used_memory)
  rss0=$(rss_of "$RPID")
  t0=$(date +%s%N)
  # redis-cli --pipe returns once every reply is in: the time is the ingest.
  out=$("${PIN_LOAD[@]}" "$LOAD" --count "$n" --symbols "$s" |
        timeout $((120 + n / 50000)) "${PIN_LOAD[@]}" redis-cli -p "$RPORT" --pipe 2>&1) || true
  t1=$(date +%s%N)
  local replies errors
  replies=$(sed -n 's/.*errors: \([0-9]*\), replies: \([0-9]*\).*/\2/p' <<< "$out" | tail -1)
  errors=$(sed -n 's/.*errors: \([0-9]*\), replies: \([0-9]*\).*/\1/p' <<< "$out" | tail -1)
  local used1 rss1
  used1=$(redis_info used_memory)
  rss1=$(rss_of "$RPID")
  redis-cli -p "$RPORT" shutdown nosave > /dev/null 2>&1 || true
  for i in $(seq 1 100); do kill -0 "$RPID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$RPID" 2>/dev/null || true
  wait "$RPID" 2>/dev/null || true
  RPID=
  if [[ -z $replies || $errors != 0 || $replies != "$n" ]]; then
    note "$label: redis-cli --pipe: ${out//$'\n'/ }"
    FAILED=1; row "$label" "redis streams" FAILED; return
  fi
  local rate mem_bpt rss_bpt diff
  rate=$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / ((b - a) / 1e9) }')
  mem_bpt=$(awk -v a="$used0" -v b="$used1" -v n="$n" 'BEGIN { printf "%.1f", (b - a) / n }')
  rss_bpt=$(awk -v a="$rss0" -v b="$rss1" -v n="$n" 'BEGIN { printf "%.1f", (b - a) / n }')
  diff=$(awk -v s="$mem_bpt" -v r="$rss_bpt" 'BEGIN {
    if (r <= 0) print "NA"; else printf "%+.1f%%", (s - r) / r * 100 }')
  note "  $n ticks in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }') s"
  row "$label" "redis streams" "$n" "$rate" "$mem_bpt" "$rss_bpt" "$diff"
}

HAVE_REDIS=0
if [[ $REDIS != no ]]; then
  if command -v redis-server > /dev/null && command -v redis-cli > /dev/null; then
    HAVE_REDIS=1
    if [[ ! -x $LOAD ]]; then
      LOAD=$TMP/redis_load
      cc -O2 -o "$LOAD" "$SRC/bench/redis_load.c" || die "cannot build bench/redis_load.c"
    fi
  else
    echo "redis-server not installed: skipping the Redis Streams comparison"
  fi
fi

for s in $SYMBOLS; do
  run_tickslab "$COUNT" "$s" "$(human "$COUNT") x $s sym"
  if ((HAVE_REDIS)); then run_redis "$REDIS_COUNT" "$s" "$(human "$REDIS_COUNT") x $s sym"; fi
done

# ------------------------------------------------------------------ table
echo
printf '%-16s  %-18s  %12s  %14s  %14s  %12s  %12s\n' \
  workload store "ticks stored" "ingest ticks/s" "B/tick (stats)" "B/tick (RSS)" "stats vs RSS"
printf '%-16s  %-18s  %12s  %14s  %14s  %12s  %12s\n' \
  ---------------- ------------------ ------------ -------------- -------------- ------------ ------------
for r in "${ROWS[@]}"; do
  IFS=$'\t' read -r -a f <<< "$r"
  printf '%-16s  %-18s  %12s  %14s  %14s  %12s  %12s\n' \
    "${f[0]:-}" "${f[1]:-}" "${f[2]:-}" "${f[3]:-}" "${f[4]:-}" "${f[5]:-}" "${f[6]:-}"
done
echo
echo "targets: >= 3000000 ticks/s (100 symbols), <= 40 B/tick by RSS, stats within 10% of RSS"
exit "$FAILED"
