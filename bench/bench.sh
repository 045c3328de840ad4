#!/usr/bin/env bash
# The tickslab benchmark: ingest rate and memory per tick, tickslabd against
# Redis Streams, then the three store modes side by side (slotted, dynamic,
# fallback with a share of ticks carrying an undeclared field), then the
# journal: ingest under each fsync policy and the replay rate at start; on
# loopback, the server pinned to CPU 0 and the load generator to CPU 1.
# The first two tables run with the journal off (journal.enabled: false),
# so that they measure the store alone, as they did before the journal.
# See bench/README.md.
#
#   bench/bench.sh [BUILD_DIR]          (default: build)
#
# Environment: COUNT (ticks per workload, default 10000000), SYMBOLS (the
# symbol counts, one workload each, default "100 10000"; "" skips the
# first table), CONNECTIONS (gen
# connections, default 1), GEN_ARGS (more `tickslab gen` options, e.g.
# --array), MODE (store.mode of the first table, default slotted), REDIS
# (auto | no), REDIS_COUNT (ticks for Redis, default COUNT); for the modes
# table: MODES (default "slotted dynamic fallback"; "" skips the table),
# MODES_SYMBOLS (default 100), EXTRA_FIELDS and EXTRA_SHARE (the fallback
# workload's undeclared fields per tick and share of ticks carrying them,
# default 1 and 0.1); for the journal table: JOURNAL (the runs, default
# "off always interval never"; "" skips the table), JOURNAL_COUNT (default
# COUNT), JOURNAL_SYMBOLS (default 100), REPLAY_FROM (the run whose journal
# is replayed, default interval; "" skips the replay); RESTART=1 then runs
# bench/restart.sh (restart time, archive and disk bytes a tick, disk under
# steady ingest) with RESTART_COUNT ticks in memory (default 50000000,
# about 4 minutes; off by default).  Then the ticks-out benches:
# bench/fanout.sh (20 subscribers at 1 M ticks/s, and what one subscriber
# costs ingest) and bench/export.sh (export rows/s beside range --all), with
# OUT_COUNT ticks (default 5000000); OUT= skips them.  Then bench/kafka.sh
# (the Kafka sink's produce rate against the mock cluster, KAFKA_COUNT
# ticks, default 2000000) in a build with Kafka; KAFKA= skips it.
set -euo pipefail

BUILD=${1:-build}
COUNT=${COUNT:-10000000}
SYMBOLS=${SYMBOLS-"100 10000"}
CONNECTIONS=${CONNECTIONS:-1}
GEN_ARGS=${GEN_ARGS:-}
MODE=${MODE:-slotted}
REDIS=${REDIS:-auto}
REDIS_COUNT=${REDIS_COUNT:-$COUNT}
MODES=${MODES-slotted dynamic fallback}
MODES_SYMBOLS=${MODES_SYMBOLS:-100}
EXTRA_FIELDS=${EXTRA_FIELDS:-1}
EXTRA_SHARE=${EXTRA_SHARE:-0.1}
JOURNAL=${JOURNAL-off always interval never}
JOURNAL_COUNT=${JOURNAL_COUNT:-$COUNT}
JOURNAL_SYMBOLS=${JOURNAL_SYMBOLS:-100}
REPLAY_FROM=${REPLAY_FROM-interval}
RESTART=${RESTART:-0}
OUT=${OUT-1} OUT_COUNT=${OUT_COUNT:-5000000}
RESTART_COUNT=${RESTART_COUNT:-50000000}
KAFKA=${KAFKA-1} KAFKA_COUNT=${KAFKA_COUNT:-2000000}
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
for s in $SYMBOLS $MODES_SYMBOLS; do [[ $s =~ ^[0-9]+$ && $s -gt 0 ]] || die "SYMBOLS: '$s' is not a count"; done
for m in $MODE $MODES; do
  [[ $m == slotted || $m == dynamic || $m == fallback ]] || die "mode '$m': want slotted, dynamic or fallback"
done
[[ $EXTRA_FIELDS =~ ^[0-9]+$ && $EXTRA_FIELDS -ge 1 && $EXTRA_FIELDS -le 16 ]] ||
  die "EXTRA_FIELDS must be 1 to 16"
[[ $EXTRA_SHARE =~ ^(0(\.[0-9]+)?|1(\.0*)?|\.[0-9]+)$ ]] || die "EXTRA_SHARE must be 0 to 1, e.g. 0.1"
[[ $JOURNAL_COUNT =~ ^[0-9]+$ && $JOURNAL_COUNT -gt 0 ]] || die "JOURNAL_COUNT must be a positive integer"
[[ $JOURNAL_SYMBOLS =~ ^[0-9]+$ && $JOURNAL_SYMBOLS -gt 0 ]] || die "JOURNAL_SYMBOLS: '$JOURNAL_SYMBOLS' is not a count"
for j in $JOURNAL; do
  [[ $j == off || $j == always || $j == interval || $j == never ]] ||
    die "JOURNAL: '$j': want off, always, interval or never"
done
[[ $RESTART == 0 || $RESTART == 1 ]] || die "RESTART must be 0 or 1"
[[ $RESTART_COUNT =~ ^[0-9]+$ && $RESTART_COUNT -gt 0 ]] || die "RESTART_COUNT must be a positive integer"

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

ROWS=() MODE_ROWS=() JOURNAL_ROWS=()
FAILED=0
row() { ROWS+=("$(printf '%s\t' "$@")"); }
mode_row() { MODE_ROWS+=("$(printf '%s\t' "$@")"); }
journal_row() { JOURNAL_ROWS+=("$(printf '%s\t' "$@")"); }
# The issue 10 targets, each printed at the end as met or MISSED:
# target WHAT VALUE OP LIMIT UNIT (OP: le or ge; VALUE NA: not measured).
TARGETS=()
target() { TARGETS+=("$(printf '%s\t' "$@")"); }

# The seed article's figures (seed/slots-article.md: CPython, 5M `Trade`
# objects of four attributes, tracemalloc peak / count), quoted, not measured.
ARTICLE_DICT_BPO=129
ARTICLE_SLOTS_BPO=96

# CPU seconds x CLK_TCK a process has used, all its threads (utime+stime,
# /proc/PID/stat fields 14 and 15 after the parenthesised name).
cpu_ticks_of() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
# ns of CPU per tick: CPU_TICKS_BEFORE CPU_TICKS_AFTER TICKS.
cpu_ns_per_tick() {
  awk -v a="$1" -v b="$2" -v n="$3" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { if (n > 0) printf "%.0f", (b - a) / hz * 1e9 / n; else print "NA" }'
}

# ------------------------------------------------------------------ tickslab
SOCK= STATS=
stats() { "$CLI" --socket "$SOCK" --timeout 10 stats --text > "$STATS"; }
stat_value() { awk -v k="$1" '$1 == k { print $2; found = 1 } END { exit !found }' "$STATS"; }

# The journal section of the config (JOURNAL_CFG, YAML lines) and the
# seconds a start may take before ping answers (READY_S: a replay takes a
# while).  Off by default: the ingest and modes tables measure the store.
JOURNAL_OFF=$'journal:\n  enabled: false'
JOURNAL_CFG=$JOURNAL_OFF
READY_S=10
start_daemon() { # LISTEN NAME MODE -> DPID, or returns 1
  local listen=$1 name=$2 mode=$3 cfg=$TMP/$2.yaml i
  cat > "$cfg" <<EOF
ingest:
  listen: $listen
subscribe:
  listen: 127.0.0.1:0
control:
  socket: $SOCK
store:
  mode: $mode
$JOURNAL_CFG
log:
  level: warn
EOF
  "${PIN_SERVER[@]}" "$DAEMON" --config "$cfg" > "$TMP/$name.log" 2>&1 &
  DPID=$!
  for i in $(seq 1 $((READY_S * 10))); do
    # "ok" once ready ("ok (loading)" while the journal is replayed).
    if [[ $("$CLI" --socket "$SOCK" --timeout 2 ping 2>/dev/null) == ok ]]; then return 0; fi
    kill -0 "$DPID" 2>/dev/null || break
    sleep 0.1
  done
  note "tickslabd was not ready (ping) within $READY_S s; its log:"
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

# One tickslabd run: N ticks over S symbols in MODE, `tickslab gen` with
# EXTRA_ARGS.  Sets R_OK (0/1), R_STORED, R_RATE, R_BPT (stats), R_RSS_BPT,
# R_DIFF, and the representation split R_SLOTTED, R_DYNAMIC, R_OVERFLOW
# (ticks), R_SLOTTED_BPT, R_DYNAMIC_BPT, R_OVERFLOW_BPT
# (store.*.bytes_per_tick), R_EXTRA
# (ticks gen sent with extra fields), R_SECS (the seconds of R_RATE); NA
# where the daemon has no such stat; R_CPU, the daemon's CPU (all threads,
# /proc) per stored tick from before `gen` to after the hook.  If R_HOOK names a function, it is
# called with the daemon still up, after the last stats (the journal table
# asks for a `sync` there).
R_HOOK=
RUN_ID=0
run_tickslab() { # N SYMBOLS LABEL MODE [EXTRA_ARGS...]
  local n=$1 s=$2 label=$3 mode=$4 port name
  shift 4
  RUN_ID=$((RUN_ID + 1))
  name=tickslabd-$RUN_ID
  SOCK=$TMP/ctl-$RUN_ID.sock STATS=$TMP/stats-$RUN_ID.txt
  R_OK=0 R_STORED=NA R_RATE=NA R_SECS=NA R_BPT=NA R_RSS_BPT=NA R_DIFF=NA
  R_SLOTTED=NA R_DYNAMIC=NA R_OVERFLOW=NA R_SLOTTED_BPT=NA R_DYNAMIC_BPT=NA R_OVERFLOW_BPT=NA
  R_EXTRA=NA R_CPU=NA
  note "$label: tickslabd ($mode), $n ticks over $s symbols${*:+ ($*)}"
  start_daemon 127.0.0.1:0 "$name" "$mode" || { FAILED=1; return; }
  stats
  if ! port=$(stat_value ingest.port) || [[ $port == 0 ]]; then
    # No ingest.port in stats: listen on a port chosen here instead.
    stop_daemon
    port=$(free_port) || die "no free loopback port"
    start_daemon "127.0.0.1:$port" "$name" "$mode" || { FAILED=1; return; }
    stats
  fi
  local rss0 acc0 cpu0
  cpu0=$(cpu_ticks_of "$DPID")
  rss0=$(stat_value memory.rss_bytes) || die "stats text has no memory.rss_bytes"
  acc0=$(stat_value ticks.stored) || acc0=0

  local wait_s=$((60 + n / 200000)) out
  # shellcheck disable=SC2086 # GEN_ARGS is a list of options
  if ! out=$(timeout $((wait_s + 120)) "${PIN_LOAD[@]}" "$CLI" --socket "$SOCK" \
      --connect "127.0.0.1:$port" gen --count "$n" --symbols "$s" \
      --connections "$CONNECTIONS" --wait --wait-timeout "$wait_s" $GEN_ARGS "$@"); then
    note "$label: tickslab gen failed: $out"
    FAILED=1; stop_daemon; return
  fi
  while IFS= read -r l; do note "  $l"; done <<< "$out"
  R_RATE=$(sed -n 's/^stored [0-9]* ticks in [0-9.]* s: \([0-9]*\) ticks\/s.*/\1/p' <<< "$out")
  R_SECS=$(sed -n 's/^stored [0-9]* ticks in \([0-9.]*\) s: .*/\1/p' <<< "$out")
  R_EXTRA=$(sed -n 's/^\([0-9]*\) ticks carried .*/\1/p' <<< "$out")
  [[ -n $R_RATE ]] || R_RATE=NA
  [[ -n $R_SECS ]] || R_SECS=NA
  [[ -n $R_EXTRA ]] || R_EXTRA=0

  stats
  local stored rss1
  stored=$(stat_value ticks.stored) || die "stats text has no ticks.stored"
  stored=$((stored - acc0))
  R_BPT=$(stat_value memory.total_bytes_per_tick) || R_BPT=NA
  rss1=$(stat_value memory.rss_bytes)
  R_SLOTTED=$(stat_value store.slotted.ticks) || R_SLOTTED=NA
  R_DYNAMIC=$(stat_value store.dynamic.ticks) || R_DYNAMIC=NA
  R_OVERFLOW=$(stat_value store.overflow.ticks) || R_OVERFLOW=NA
  R_SLOTTED_BPT=$(stat_value store.slotted.block_bytes_per_tick) || R_SLOTTED_BPT=NA
  R_DYNAMIC_BPT=$(stat_value store.dynamic.object_and_entry_bytes_per_tick) || R_DYNAMIC_BPT=NA
  R_OVERFLOW_BPT=$(stat_value store.overflow.entry_and_map_bytes_per_tick) || R_OVERFLOW_BPT=NA
  local rejected
  rejected=$(stat_value ticks.rejected) || rejected=0
  ((rejected == 0)) || note "$label: the daemon rejected $rejected ticks"
  [[ -z $R_HOOK ]] || "$R_HOOK"
  local cpu1
  cpu1=$(cpu_ticks_of "$DPID")
  stop_daemon
  R_STORED=$stored
  ((stored > 0)) || { FAILED=1; return; }
  R_CPU=$(cpu_ns_per_tick "$cpu0" "$cpu1" "$stored")
  R_RSS_BPT=$(awk -v a="$rss0" -v b="$rss1" -v n="$stored" 'BEGIN { printf "%.1f", (b - a) / n }')
  R_DIFF=$(awk -v s="$R_BPT" -v r="$R_RSS_BPT" 'BEGIN {
    if (s == "NA" || r <= 0) print "NA"; else printf "%+.1f%%", (s - r) / r * 100 }')
  [[ $R_BPT == NA ]] || R_BPT=$(printf '%.1f' "$R_BPT")
  R_OK=1
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
  local used0 rss0 t0 t1 out cpu0 cpu1
  used0=$(redis_info used_memory)
  rss0=$(rss_of "$RPID")
  cpu0=$(cpu_ticks_of "$RPID")
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
  cpu1=$(cpu_ticks_of "$RPID")
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
  row "$label" "redis streams" "$n" "$rate" "$mem_bpt" "$rss_bpt" "$diff" \
    "$(cpu_ns_per_tick "$cpu0" "$cpu1" "$n")"
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

# Results of the tickslab runs, by "mode symbols extra-args", so that the
# modes table reuses a run the first table already made.
declare -A RESULTS=()
remember() { RESULTS[$1]="$R_OK|$R_STORED|$R_RATE|$R_SECS|$R_BPT|$R_RSS_BPT|$R_DIFF|$R_SLOTTED|$R_DYNAMIC|$R_OVERFLOW|$R_SLOTTED_BPT|$R_DYNAMIC_BPT|$R_OVERFLOW_BPT|$R_EXTRA|$R_CPU"; }
recall() {
  [[ -n ${RESULTS[$1]+x} ]] || return 1
  IFS='|' read -r R_OK R_STORED R_RATE R_SECS R_BPT R_RSS_BPT R_DIFF R_SLOTTED R_DYNAMIC R_OVERFLOW \
    R_SLOTTED_BPT R_DYNAMIC_BPT R_OVERFLOW_BPT R_EXTRA R_CPU <<< "${RESULTS[$1]}"
}

for s in $SYMBOLS; do
  label="$(human "$COUNT") x $s sym"
  run_tickslab "$COUNT" "$s" "$label" "$MODE"
  remember "$MODE $s"
  if ((R_OK)); then
    row "$label" "tickslab ($MODE)" "$R_STORED" "$R_RATE" "$R_BPT" "$R_RSS_BPT" "$R_DIFF" "$R_CPU"
    if [[ $MODE == slotted ]]; then
      target "CPU, journal off, $label" "$R_CPU" le 70 ns/tick
      if ((s == 100)); then target "RSS, $label" "$R_RSS_BPT" le 24 B/tick; fi
      if ((s == 10000)); then target "RSS, $label" "$R_RSS_BPT" le 27 B/tick; fi
    fi
  else
    row "$label" tickslab FAILED "$R_STORED"
  fi
  if ((HAVE_REDIS)); then run_redis "$REDIS_COUNT" "$s" "$label"; fi
done

# ------------------------------------------------------------------ modes
pct() { awk -v a="$1" -v n="$2" 'BEGIN { if (a == "NA" || n <= 0) print "NA"; else printf "%.1f%%", a * 100 / n }'; }
bpt() { [[ $1 == NA ]] && echo NA || printf '%.1f B' "$1"; }
SLOTTED_RSS_BPT=
declare -A MODE_RSS_BPT=()
for m in $MODES; do
  s=$MODES_SYMBOLS
  extra=()
  label="$(human "$COUNT") x $s sym"
  if [[ $m == fallback ]]; then
    extra=(--extra-fields "$EXTRA_FIELDS" --extra-share "$EXTRA_SHARE")
    label="$label, $(awk -v p="$EXTRA_SHARE" 'BEGIN { printf "%g", p * 100 }')% +$EXTRA_FIELDS field"
    ((EXTRA_FIELDS == 1)) || label="${label}s"
  fi
  key="$m $s ${extra[*]}"
  key=${key% }
  if recall "$key"; then
    note "$label: $m: reusing the run above"
  else
    run_tickslab "$COUNT" "$s" "$label" "$m" "${extra[@]}"
    remember "$key"
  fi
  if ! ((R_OK)); then mode_row "$m" "$label" FAILED "$R_STORED"; continue; fi
  # Where the ticks went: slotted records, dynamic objects (and, if the
  # daemon keeps them so, slotted records with an overflow map).
  # Each representation that holds ticks: its share, and its bytes per tick.
  split=
  [[ $R_SLOTTED == NA || $R_SLOTTED == 0 ]] ||
    split="slotted $(pct "$R_SLOTTED" "$R_STORED") ($(bpt "$R_SLOTTED_BPT"))"
  [[ $R_DYNAMIC == NA || $R_DYNAMIC == 0 ]] ||
    split="${split:+$split, }dynamic $(pct "$R_DYNAMIC" "$R_STORED") ($(bpt "$R_DYNAMIC_BPT"))"
  [[ $R_OVERFLOW == NA || $R_OVERFLOW == 0 ]] ||
    split="${split:+$split, }slotted+overflow map $(pct "$R_OVERFLOW" "$R_STORED") ($(bpt "$R_OVERFLOW_BPT"))"
  [[ -n $split ]] || split="NA (no store.slotted.ticks / store.dynamic.ticks in stats)"
  [[ $m == slotted ]] && SLOTTED_RSS_BPT=$R_RSS_BPT
  MODE_RSS_BPT[$m]=$R_RSS_BPT
  mode_row "$m" "$label" "$R_STORED" "$R_RATE" "$R_BPT" "$R_RSS_BPT" "$R_DIFF" "$split"
done

# ------------------------------------------------------------------ journal
# Ingest with the journal on, under each fsync policy (its segments in the
# bench's temp dir), beside the journal off; after each run a `sync` (every
# accepted tick fsynced) is timed, and the journal's figures read.  Then a
# daemon is started on the journal of the REPLAY_FROM run, and the replay
# rate read from journal.replayed_ticks / journal.replay_seconds.
J_SYNC_S=NA J_DURABLE=NA J_BYTES=NA J_FSYNCS=NA J_SEGMENTS=NA
# shellcheck disable=SC2317 # called through R_HOOK
journal_hook() {
  local t0 t1 ans
  J_SYNC_S=NA J_DURABLE=NA J_BYTES=NA J_FSYNCS=NA J_SEGMENTS=NA
  t0=$(date +%s%N)
  if ans=$("$CLI" --socket "$SOCK" --timeout 600 request sync 2>&1); then
    t1=$(date +%s%N)
    J_SYNC_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
    J_DURABLE=$(sed -n 's/.*"durable":\([0-9]*\).*/\1/p' <<< "$ans")
    [[ -n $J_DURABLE ]] || J_DURABLE=NA
  else
    note "  sync: ${ans//$'\n'/ }"
  fi
  stats
  J_BYTES=$(stat_value journal.bytes) || J_BYTES=NA
  J_FSYNCS=$(stat_value journal.fsyncs) || J_FSYNCS=NA
  J_SEGMENTS=$(stat_value journal.segments) || J_SEGMENTS=NA
}

REPLAY_DIR=
for j in $JOURNAL; do
  s=$JOURNAL_SYMBOLS
  label="$(human "$JOURNAL_COUNT") x $s sym"
  if [[ $j == off ]]; then
    key="slotted $s"
    if ((JOURNAL_COUNT == COUNT)) && recall "$key"; then
      note "$label: journal off: reusing the run above"
    else
      JOURNAL_CFG=$JOURNAL_OFF
      run_tickslab "$JOURNAL_COUNT" "$s" "$label" slotted
      ((JOURNAL_COUNT == COUNT)) && remember "$key"
    fi
    if ((R_OK)); then
      journal_row off "$label" "$R_STORED" "$R_RATE" NA NA NA NA NA NA NA "$R_BPT" "$R_RSS_BPT" \
        "$R_CPU"
    else
      journal_row off "$label" FAILED
    fi
    continue
  fi
  jdir=$TMP/journal-$j
  # Checkpoints off: the stop would write one, and the replay below would
  # load it instead of replaying the journal it measures.
  JOURNAL_CFG=$(printf 'journal:\n  dir: %s\n  fsync: %s\n  checkpoint_interval: 0\n  checkpoint_bytes: 0' \
    "$jdir" "$j")
  R_HOOK=journal_hook
  run_tickslab "$JOURNAL_COUNT" "$s" "$label, journal fsync $j" slotted
  R_HOOK=
  JOURNAL_CFG=$JOURNAL_OFF
  if ! ((R_OK)); then journal_row "$j" "$label" FAILED; rm -rf "$jdir"; continue; fi
  # To durable: the ticks over the ingest time plus the sync after it.
  to_durable=$(awk -v n="$R_STORED" -v a="$R_SECS" -v b="$J_SYNC_S" 'BEGIN {
    if (a == "NA" || b == "NA" || a + b <= 0) print "NA"; else printf "%.0f", n / (a + b) }')
  bpt_j=$(awk -v b="$J_BYTES" -v n="$R_STORED" 'BEGIN { if (b == "NA" || n <= 0) print "NA"; else printf "%.1f", b / n }')
  journal_row "$j" "$label" "$R_STORED" "$R_RATE" "$J_SYNC_S" "$to_durable" "$J_DURABLE" "$J_BYTES" \
    "$bpt_j" "$J_FSYNCS" "$J_SEGMENTS" "$R_BPT" "$R_RSS_BPT" "$R_CPU"
  if [[ $j == interval ]]; then
    target "CPU, journal interval, $label" "$R_CPU" le 100 ns/tick
    target "ingest rate, journal interval, $label" "$R_RATE" ge 8000000 ticks/s
    target "stats vs RSS, journal interval, $label" \
      "$(awk -v a="$R_BPT" -v b="$R_RSS_BPT" 'BEGIN { if (a == "NA" || b == "NA" || b <= 0) print "NA"; else { d = (a - b) / b * 100; printf "%.1f", d < 0 ? -d : d } }')" \
      le 5 %
  fi
  if [[ $J_DURABLE != "$R_STORED" ]]; then
    note "$label, fsync $j: sync answered durable $J_DURABLE, want $R_STORED"; FAILED=1
  fi
  if [[ $j == "$REPLAY_FROM" ]]; then REPLAY_DIR=$jdir; else rm -rf "$jdir"; fi
done

REPLAY_LINE=
if [[ -n $REPLAY_DIR ]]; then
  RUN_ID=$((RUN_ID + 1))
  SOCK=$TMP/ctl-$RUN_ID.sock STATS=$TMP/stats-$RUN_ID.txt
  note "replay: tickslabd on the journal of the $REPLAY_FROM run ($REPLAY_DIR)"
  JOURNAL_CFG=$(printf 'journal:\n  dir: %s' "$REPLAY_DIR")
  READY_S=$((60 + JOURNAL_COUNT / 100000))
  t0=$(date +%s%N)
  if start_daemon 127.0.0.1:0 "tickslabd-$RUN_ID" slotted; then
    t1=$(date +%s%N)
    stats
    rp_ticks=$(stat_value journal.replayed_ticks) || rp_ticks=NA
    rp_secs=$(stat_value journal.replay_seconds) || rp_secs=NA
    rp_stored=$(stat_value ticks.stored) || rp_stored=NA
    rp_rss=$(stat_value memory.rss_bytes) || rp_rss=NA
    stop_daemon
    rp_rate=$(awk -v n="$rp_ticks" -v s="$rp_secs" 'BEGIN { if (n == "NA" || s == "NA" || s <= 0) print "NA"; else printf "%.0f", n / s }')
    ready=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
    REPLAY_LINE="replay of the $REPLAY_FROM run's journal: $rp_ticks ticks (ticks.stored $rp_stored) in"
    REPLAY_LINE="$REPLAY_LINE $(awk -v s="$rp_secs" 'BEGIN { printf "%.3f", s }') s = $rp_rate ticks/s"
    REPLAY_LINE="$REPLAY_LINE (journal.replay_seconds); ready (ping: ok) $ready s after the start;"
    REPLAY_LINE="$REPLAY_LINE RSS $(awk -v r="$rp_rss" 'BEGIN { printf "%.0f MiB", r / 1048576 }')"
    target "replay, the $REPLAY_FROM run's journal" "$rp_rate" ge 20000000 ticks/s
    note "  $REPLAY_LINE"
  else
    REPLAY_LINE="replay of the $REPLAY_FROM run's journal: FAILED (see above)"
    FAILED=1
  fi
  READY_S=10
  JOURNAL_CFG=$JOURNAL_OFF
  rm -rf "$REPLAY_DIR"
fi

# ------------------------------------------------------------------ tables
# shellcheck disable=SC2059 # the formats are the tables' layouts
FMT='%-16s  %-18s  %12s  %14s  %14s  %12s  %12s  %11s\n'
if ((${#ROWS[@]})); then
  echo
  printf "$FMT" workload store "ticks stored" "ingest ticks/s" "B/tick (stats)" "B/tick (RSS)" \
    "stats vs RSS" "CPU ns/tick"
  printf "$FMT" ---------------- ------------------ ------------ -------------- -------------- ------------ \
    ------------ -----------
  for r in "${ROWS[@]}"; do
    IFS=$'\t' read -r -a f <<< "$r"
    printf "$FMT" "${f[0]:-}" "${f[1]:-}" "${f[2]:-}" "${f[3]:-}" "${f[4]:-}" "${f[5]:-}" "${f[6]:-}" \
      "${f[7]:-}"
  done
  echo
  echo "targets: >= 3000000 ticks/s (100 symbols), <= 24 B/tick by RSS (100 symbols; <= 27 for 10,000),"
  echo "stats within 5% of RSS, CPU <= 70 ns/tick (journal off)"
fi

if ((${#MODE_ROWS[@]})); then
  MFMT='%-8s  %-28s  %12s  %14s  %14s  %12s  %12s  %10s  %s\n'
  echo
  echo "modes"
  printf "$MFMT" mode workload "ticks stored" "ingest ticks/s" "B/tick (stats)" "B/tick (RSS)" \
    "stats vs RSS" "vs slotted" "where the ticks are (store.*.ticks, store.*.bytes_per_tick)"
  printf "$MFMT" -------- ---------------------------- ------------ -------------- -------------- \
    ------------ ------------ ---------- ------------------------------------------------------------
  for r in "${MODE_ROWS[@]}"; do
    IFS=$'\t' read -r -a f <<< "$r"
    ratio=NA
    if [[ -n $SLOTTED_RSS_BPT && ${f[5]:-NA} != NA ]]; then
      ratio=$(awk -v a="${f[5]}" -v b="$SLOTTED_RSS_BPT" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "NA" }')
    fi
    printf "$MFMT" "${f[0]:-}" "${f[1]:-}" "${f[2]:-}" "${f[3]:-}" "${f[4]:-}" "${f[5]:-}" \
      "${f[6]:-}" "$ratio" "${f[7]:-}"
  done
  echo
  echo "targets: slotted <= 24 B/tick and >= 3000000 ticks/s; fallback (${EXTRA_SHARE} of ticks with" \
    "$EXTRA_FIELDS extra field) <= 1.3x slotted's B/tick; dynamic: what an honest hash map costs"
  # The seed article's Python figures beside ours (bytes per object/tick).
  line="seed article (Python, quoted, not measured here): $ARTICLE_DICT_BPO B/object with __dict__,"
  line="$line $ARTICLE_SLOTS_BPO B with __slots__ ($(awk -v a=$ARTICLE_DICT_BPO -v b=$ARTICLE_SLOTS_BPO 'BEGIN { printf "%.2fx", a / b }'))"
  line="$line; tickslab by RSS:"
  sep=
  for m in slotted dynamic fallback; do
    [[ -n ${MODE_RSS_BPT[$m]+x} ]] || continue
    line="$line$sep $m ${MODE_RSS_BPT[$m]} B/tick"
    if [[ $m != slotted && -n $SLOTTED_RSS_BPT ]]; then
      line="$line ($(awk -v a="${MODE_RSS_BPT[$m]}" -v b="$SLOTTED_RSS_BPT" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "NA" }'))"
    fi
    sep=,
  done
  echo "$line"
fi

# shellcheck disable=SC2059 # the format is the table's layout
if ((${#JOURNAL_ROWS[@]})); then
  JFMT='%-8s  %-16s  %12s  %14s  %10s  %14s  %12s  %13s  %9s  %8s  %8s  %9s  %9s  %11s\n'
  echo
  echo "journal"
  printf "$JFMT" fsync workload "ticks stored" "ingest ticks/s" "sync (s)" "durable ticks/s" \
    "ticks durable" "journal bytes" "B/tick" fsyncs segments "mem B/tk" "RSS B/tk" "CPU ns/tick"
  printf "$JFMT" -------- ---------------- ------------ -------------- ---------- -------------- \
    ------------ ------------- --------- -------- -------- --------- --------- -----------
  for r in "${JOURNAL_ROWS[@]}"; do
    IFS=$'\t' read -r -a f <<< "$r"
    printf "$JFMT" "${f[0]:-}" "${f[1]:-}" "${f[2]:-}" "${f[3]:-}" "${f[4]:-}" "${f[5]:-}" "${f[6]:-}" \
      "${f[7]:-}" "${f[8]:-}" "${f[9]:-}" "${f[10]:-}" "${f[11]:-}" "${f[12]:-}" "${f[13]:-}"
  done
  echo
  [[ -z $REPLAY_LINE ]] || echo "$REPLAY_LINE"
  echo "targets: replay >= 20000000 ticks/s; CPU <= 100 ns/tick with the journal on (interval), <= 70 off; stats within 5% of RSS"
fi

if ((${#TARGETS[@]})); then
  echo
  echo "targets (issue 10; a miss is profiled with bench/cpu.sh instructions and perf record -g)"
  for t in "${TARGETS[@]}"; do
    IFS=$'\t' read -r -a f <<< "$t"
    awk -v what="${f[0]}" -v v="${f[1]}" -v op="${f[2]}" -v lim="${f[3]}" -v unit="${f[4]}" 'BEGIN {
      sign = op == "le" ? "<=" : ">="
      if (v == "NA" || v == "") verdict = "not measured"
      else verdict = (op == "le" ? v + 0 <= lim + 0 : v + 0 >= lim + 0) ? "met" : "MISSED"
      printf "  %-52s %12s %s %s %s: %s\n", what, v, sign, lim, unit, verdict }'
  done
fi

# ------------------------------------------------------------------ ticks out
# Subscriber fan-out (bench/fanout.sh), then export and range --all rows a
# second side by side (bench/export.sh); OUT= skips both.
if ((OUT)); then
  echo
  echo "ticks out: subscriptions (fanout.sh), export and range --all (export.sh)"
  "$SRC/bench/fanout.sh" "$BUILD" 20 1000000 "$OUT_COUNT" || FAILED=1
  "$SRC/bench/export.sh" "$BUILD" "$OUT_COUNT" 100 || FAILED=1
fi

# ------------------------------------------------------------------ kafka
# A fleet on Kafka against librdkafka's mock cluster (bench/kafka.sh), in a
# build with Kafka; KAFKA= skips it.  Its "sink:" lines are the sink's
# produce rate beside TCP ingest.
if ((KAFKA)) && [[ -x $BUILD/tests/kafka_mock ]]; then
  echo
  echo "kafka: TCP ingest, the source's rate and the sink's produce rate against the mock cluster (kafka.sh)"
  "$SRC/bench/kafka.sh" "$BUILD" "$KAFKA_COUNT" 100 || FAILED=1
fi

# ------------------------------------------------------------------ restart
# Opt-in: bench/restart.sh prints its own tables (see bench/README.md).
# COUNT and SYMBOLS are given explicitly, so that this script's do not leak
# into it from the environment.
if ((RESTART)); then
  COUNT=$RESTART_COUNT SYMBOLS=100 "$SRC/bench/restart.sh" "$BUILD" || FAILED=1
fi
exit "$FAILED"
