#!/usr/bin/env bash
# Restart, archive and disk figures of the real daemon (issue 8):
#
#   bench/restart.sh [BUILD_DIR]          (default: build)
#
# Three sections (SECTIONS, default "restart archive disk"):
#   restart  COUNT ticks of today (`tickslab gen`) into a tickslabd with the
#            journal on; `checkpoint` (write rate from its answer); SIGTERM
#            (the stop writes the last checkpoint if the store changed) and
#            the time until `ping` answers ready, RESTARTS times; MORE more
#            ticks, `sync`, kill -9 and the same (checkpoint + journal tail);
#            then one past day of DAY_TICKS ticks sealed by `rollover` and
#            the restarts again, then DAYS - 1 more days and again: the
#            restart time should not grow with the days archived;
#   archive  ARCHIVE_COUNT ticks of yesterday, `tickslab gen`'s kind and
#            real-looking ones (REAL_SYMBOLS Zipf symbols, ns timestamps),
#            each in a fresh daemon, sealed by `rollover`: archive and disk
#            bytes a tick, then again after two checkpoints (the journal
#            they cover deleted);
#   disk     DISK_SECONDS of steady ingest at DISK_RATE ticks/s with
#            journal.checkpoint_bytes DISK_CHECKPOINT_BYTES, segments of
#            DISK_SEGMENT and limits.max_memory DISK_MAX_MEMORY ("0": none):
#            journal.bytes, disk.bytes every DISK_EVERY seconds.
# Environment (defaults): COUNT (50000000), SYMBOLS (100), MORE (COUNT/10),
# RESTARTS (2), DAYS (30), DAY_TICKS (1000000), ARCHIVE_COUNT (10000000),
# REAL_SYMBOLS (2000), DISK_SECONDS (60), DISK_RATE (500000),
# DISK_CHECKPOINT_BYTES (64MiB), DISK_SEGMENT (16MiB), DISK_MAX_MEMORY
# (256MiB), DISK_EVERY (5), FSYNC (journal.fsync, never), HUGE_PAGES
# (store.huge_pages; unset: the default).
# Timings only here, never in the tests.  Loopback only, port 0, a temp dir
# under $TMPDIR (else /tmp), removed at the end; the daemon pinned to CPU 0,
# the senders to CPU 1.  Progress on stderr, the tables on stdout.  See
# bench/README.md.
set -euo pipefail

BUILD=${1:-build}
COUNT=${COUNT:-50000000}
SYMBOLS=${SYMBOLS:-100}
MORE=${MORE:-$((COUNT / 10))}
RESTARTS=${RESTARTS:-2}
DAYS=${DAYS:-30}
DAY_TICKS=${DAY_TICKS:-1000000}
ARCHIVE_COUNT=${ARCHIVE_COUNT:-10000000}
REAL_SYMBOLS=${REAL_SYMBOLS:-2000}
DISK_SECONDS=${DISK_SECONDS:-60}
DISK_RATE=${DISK_RATE:-500000}
DISK_CHECKPOINT_BYTES=${DISK_CHECKPOINT_BYTES:-64MiB}
DISK_SEGMENT=${DISK_SEGMENT:-16MiB}
DISK_MAX_MEMORY=${DISK_MAX_MEMORY:-256MiB}
DISK_EVERY=${DISK_EVERY:-5}
FSYNC=${FSYNC:-never}
SECTIONS=${SECTIONS-restart archive disk}

DAEMON=$BUILD/daemon/tickslabd
CLI=$BUILD/cli/tickslab
FEED=$BUILD/bench/tick_feed

die() { echo "restart: $*" >&2; exit 1; }
note() { echo "restart: $*" >&2; }

for x in "$DAEMON" "$CLI" "$FEED"; do
  [[ -x $x ]] || die "$x not found: build first (meson setup $BUILD && ninja -C $BUILD)"
done
for v in COUNT SYMBOLS MORE RESTARTS DAYS DAY_TICKS ARCHIVE_COUNT REAL_SYMBOLS DISK_SECONDS \
  DISK_RATE DISK_EVERY; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a count, not '${!v}'"
done
((COUNT > 0 && SYMBOLS > 0 && RESTARTS > 0 && DAYS > 0 && DAY_TICKS > 0 && DISK_EVERY > 0)) ||
  die "COUNT, SYMBOLS, RESTARTS, DAYS, DAY_TICKS and DISK_EVERY must be positive"
for s in $SECTIONS; do
  [[ $s == restart || $s == archive || $s == disk ]] || die "SECTIONS: '$s': want restart, archive or disk"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tickslab-restart.XXXXXX")
DPID= GPID=
cleanup() {
  [[ -n $GPID ]] && kill -KILL "$GPID" 2>/dev/null || true
  [[ -n $DPID ]] && kill -KILL "$DPID" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The restart section holds COUNT + MORE ticks (32 bytes each and blocks)
# and the past days until they are sealed, and writes a journal of about 58
# bytes a tick and two checkpoints of 32.
if [[ " $SECTIONS " == *" restart "* ]]; then
  held=$((COUNT + MORE + DAYS * DAY_TICKS))
  avail=$(awk '$1 == "MemAvailable:" { printf "%.0f", $2 * 1024 }' /proc/meminfo)
  ((held * 40 < avail * 7 / 10)) ||
    die "COUNT=$COUNT needs about $((held * 40 >> 20)) MiB of memory, $((avail >> 20)) MiB available: lower COUNT"
  free=$(df -B1 --output=avail "$TMP" | tail -1)
  ((held * 130 < free)) || die "the journal and checkpoints need about $((held * 130 >> 20)) MiB in $TMP"
fi

PIN_SERVER=() PIN_LOAD=()
if command -v taskset >/dev/null && [[ $(nproc --all 2>/dev/null || echo 1) -ge 2 ]]; then
  PIN_SERVER=(taskset -c 0) PIN_LOAD=(taskset -c 1)
else
  note "fewer than 2 CPUs or no taskset: running unpinned"
fi

human() { # 10000000 -> 10M
  local n=$1
  if ((n % 1000000 == 0)); then echo "$((n / 1000000))M"
  elif ((n % 1000 == 0)); then echo "$((n / 1000))k"
  else echo "$n"; fi
}
calc() { awk "BEGIN { $1 }" </dev/null; } # calc 'printf "%.2f", 1 / 3'
now_ns() { date +%s%N; }

# ------------------------------------------------------------------ the daemon
# One daemon at a time, in TMP/<name>: config TMP/<name>.yaml, journal
# TMP/<name>/j (archive.dir its default, TMP/<name>/j/archive), socket
# TMP/<name>.sock, log TMP/<name>.log.  EXTRA_CFG: more YAML lines.
# Checkpoints are on (a trigger is set, so a stop writes the last one when
# the store changed) but none comes by itself: the interval is 7 days and
# checkpoint_bytes 0, except in the disk section.
NAME= SOCK= STATS=$TMP/stats.txt PORT=
EXTRA_CFG=
configure() { # NAME
  NAME=$1 SOCK=$TMP/$1.sock
  cat >"$TMP/$1.yaml" <<EOF
ingest:
  listen: 127.0.0.1:0
subscribe:
  listen: 127.0.0.1:0
control:
  socket: $SOCK
journal:
  dir: $TMP/$1/j
  fsync: $FSYNC
  checkpoint_interval: 7d
  checkpoint_bytes: 0
${EXTRA_CFG}
${HUGE_PAGES:+store:
  huge_pages: $HUGE_PAGES}
log:
  level: info
EOF
}
cli() { "$CLI" --socket "$SOCK" --timeout 600 "$@"; }
stats() { cli stats --text >"$STATS"; }
stat_value() { awk -v k="$1" '$1 == k { print $2; found = 1 } END { exit !found }' "$STATS"; }

# Starts the daemon and polls `ping` until it answers ready ("ok", not "ok
# (loading)"); READY_S: the seconds from the exec to that answer.
READY_S=
start() {
  local t0 i limit=$((600 + (COUNT + MORE) / 100000))
  t0=$(now_ns)
  "${PIN_SERVER[@]}" "$DAEMON" --config "$TMP/$NAME.yaml" >>"$TMP/$NAME.log" 2>&1 &
  DPID=$!
  for ((i = 0; i < limit * 50; i++)); do
    if [[ $("$CLI" --socket "$SOCK" --timeout 5 ping 2>/dev/null) == ok ]]; then
      READY_S=$(calc "printf \"%.3f\", ($(now_ns) - $t0) / 1e9")
      stats
      PORT=$(stat_value ingest.port)
      return 0
    fi
    kill -0 "$DPID" 2>/dev/null || break
    sleep 0.02
  done
  note "tickslabd was not ready; the end of its log:"
  tail -20 "$TMP/$NAME.log" | sed 's/^/  /' >&2
  exit 1
}
STOP_S=
stop() { # SIGTERM, waited for; STOP_S its seconds
  local t0
  t0=$(now_ns)
  kill -TERM "$DPID"
  wait "$DPID" || die "tickslabd exited $? after SIGTERM (log: $TMP/$NAME.log)"
  STOP_S=$(calc "printf \"%.2f\", ($(now_ns) - $t0) / 1e9")
  DPID=
}
kill9() { kill -KILL "$DPID"; wait "$DPID" 2>/dev/null || true; DPID=; }

# Ticks accepted + rejected, to wait for a feed.
seen() { stats; echo $(($(stat_value ticks.accepted) + $(stat_value ticks.rejected))); }
wait_seen() { # TARGET SECONDS
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    (($(seen) >= $1)) && return 0
    sleep 0.1
  done
  die "the daemon saw $(seen) ticks, want $1"
}
gen() { # N [more gen options]: today's ticks, waited for
  local n=$1 w=$((60 + $1 / 200000))
  shift
  "${PIN_LOAD[@]}" "$CLI" --socket "$SOCK" --connect "127.0.0.1:$PORT" gen --count "$n" \
    --symbols "$SYMBOLS" --wait --wait-timeout "$w" "$@" >"$TMP/gen.out" ||
    die "tickslab gen failed: $(cat "$TMP/gen.out")"
  sed 's/^/  /' "$TMP/gen.out" >&2
}
feed() { # N [tick_feed options]: ticks of past days, waited for
  local n=$1 before t0
  shift
  before=$(seen)
  t0=$(now_ns)
  "${PIN_LOAD[@]}" "$FEED" --count "$n" "$@" >"/dev/tcp/127.0.0.1/$PORT" || die "tick_feed failed"
  wait_seen $((before + n)) $((60 + n / 200000))
  note "  fed $n ticks ($*) in $(calc "printf \"%.1f\", ($(now_ns) - $t0) / 1e9") s"
  (($(stat_value ticks.rejected) == 0)) || die "the daemon rejected $(stat_value ticks.rejected) ticks"
}
json_field() { sed -n "s/.*\"$1\":\\([0-9.]*\\).*/\\1/p" <<<"$2"; }
request() { # WORD: the answer, or die
  local a
  a=$(cli request "$1") || die "$1: $a"
  [[ $a == *'"ok":true'* ]] || die "$1: $a"
  echo "$a"
}

# ------------------------------------------------------------------ restart
RESTART_ROWS=() RESTART_HEAD=()
declare -A CASE_READY=()
# What the daemon's start cost it, profile-free, from /proc at ready: CPU
# seconds of all its threads (utime + stime), seconds its main thread (the
# loop, which loads) waited for a CPU on a run queue (schedstat), and the
# bytes it read from storage rather than the page cache (io read_bytes).
proc_cost() {
  local f hz wait rb
  read -r -a f <"/proc/$DPID/stat"
  hz=$(getconf CLK_TCK)
  read -r _ wait _ <"/proc/$DPID/schedstat"
  rb=$(awk '$1 == "read_bytes:" { print $2 }' "/proc/$DPID/io")
  calc "printf \"%.2f %.2f %.0f\\n\", (${f[13]} + ${f[14]}) / $hz, $wait / 1e9, $rb / 1e6"
}
restart_row() { # CASE: after start, from stats
  stats
  local lt ls rt rs st ds cpu runq rmb
  read -r cpu runq rmb < <(proc_cost)
  lt=$(stat_value checkpoint.loaded_ticks) ls=$(stat_value checkpoint.load_seconds)
  rt=$(stat_value journal.replayed_ticks) rs=$(stat_value journal.replay_seconds)
  st=$(stat_value ticks.stored) ds=$(stat_value archive.days)
  RESTART_ROWS+=("$(printf '%-26s  %7s  %8s  %12s  %8.3f  %9s  %10s  %10.3f  %12s  %4s  %7s  %7s  %7s  %8s' \
    "$1" "$STOP_S" "$READY_S" "$lt" "$ls" \
    "$(calc "if ($ls > 0) printf \"%.1f\", $lt / $ls / 1e6; else print \"NA\"")" \
    "$rt" "$rs" "$st" "$ds" "$cpu" "$runq" "$rmb" "$(($(stat_value memory.rss_bytes) >> 20))")")
  CASE_READY[$1]="${CASE_READY[$1]:-} $READY_S"
  note "  $1: ready in $READY_S s (checkpoint $lt ticks in $ls s, journal $rt ticks in $rs s)"
}
restarts() { # CASE: SIGTERM and start, RESTARTS times
  local i
  for ((i = 1; i <= RESTARTS; i++)); do
    stop
    note "  stopped in $STOP_S s"
    start
    restart_row "$1"
  done
}
range() { # values -> "a" or "min-max"
  tr ' ' '\n' <<<"$1" | awk 'NF { v = $1 + 0; if (n++ == 0 || v < lo) lo = v; if (v > hi) hi = v }
    END { if (lo == hi) printf "%.2f", lo; else printf "%.2f-%.2f", lo, hi }'
}

section_restart() {
  local a t b s
  configure restart
  note "restart: $(human "$COUNT") ticks over $SYMBOLS symbols (tickslab gen, today)"
  start
  gen "$COUNT"
  a=$(request checkpoint)
  t=$(json_field ticks "$a") b=$(json_field bytes "$a") s=$(json_field seconds "$a")
  stats
  RESTART_HEAD+=("$(printf 'checkpoint:   %s ticks, %s bytes in %.3f s: %.1f M ticks/s, %.0f MB/s; fork pause %.1f ms; RSS %d MiB' \
    "$t" "$b" "$s" "$(calc "print $t / $s / 1e6")" "$(calc "print $b / $s / 1e6")" \
    "$(calc "print $(stat_value checkpoint.fork_seconds) * 1000")" $(($(stat_value memory.rss_bytes) >> 20)))")
  note "  ${RESTART_HEAD[-1]}"
  restarts "SIGTERM, $(human "$COUNT") in memory"

  note "restart: $(human "$MORE") more ticks, sync, kill -9"
  gen "$MORE"
  request sync >/dev/null
  local i
  for ((i = 1; i <= RESTARTS; i++)); do
    kill9
    STOP_S='kill'
    start
    restart_row "kill -9, +$(human "$MORE") tail"
  done

  note "restart: one past day of $(human "$DAY_TICKS") ticks, rollover"
  feed "$DAY_TICKS" --symbols "$SYMBOLS" --days-ago 1
  a=$(request rollover)
  RESTART_HEAD+=("$(printf 'rollover:     %s ticks of 1 day, %s bytes in %d parts in %.2f s' \
    "$(json_field ticks "$a")" "$(json_field bytes "$a")" "$(json_field parts "$a")" \
    "$(json_field seconds "$a")")")
  note "  ${RESTART_HEAD[-1]}"
  restarts "1 day archived"
  if ((DAYS > 1)); then
    note "restart: $((DAYS - 1)) more past days of $(human "$DAY_TICKS") ticks, rollover"
    feed $(((DAYS - 1) * DAY_TICKS)) --symbols "$SYMBOLS" --days-ago 2 --days $((DAYS - 1))
    a=$(request rollover)
    RESTART_HEAD+=("$(printf 'rollover:     %s ticks of %d more days, %s bytes in %d parts in %.2f s' \
      "$(json_field ticks "$a")" $((DAYS - 1)) "$(json_field bytes "$a")" "$(json_field parts "$a")" \
      "$(json_field seconds "$a")")")
    note "  ${RESTART_HEAD[-1]}"
    restarts "$DAYS days archived"
  fi
  stats
  RESTART_HEAD+=("$(printf 'at the end:   archive %s days, %s parts, %s ticks, %s B/tick; disk %s bytes, %s B/tick kept' \
    "$(stat_value archive.days)" "$(stat_value archive.parts)" "$(stat_value archive.ticks)" \
    "$(stat_value archive.bytes_per_tick)" "$(stat_value disk.bytes)" "$(stat_value disk.bytes_per_tick)")")
  stop
  rm -rf "${TMP:?}/restart"
}

# ------------------------------------------------------------------ archive
ARCHIVE_ROWS=()
archive_row() { # KIND LABEL WHEN
  stats
  ARCHIVE_ROWS+=("$(printf '%-38s  %-26s  %10s  %5s  %11s  %6.2f  %11s  %11s  %6.2f' "$2" "$3" \
    "$(stat_value archive.ticks)" "$(stat_value archive.parts)" "$(stat_value archive.bytes)" \
    "$(stat_value archive.bytes_per_tick)" "$(stat_value journal.bytes)" "$(stat_value disk.bytes)" \
    "$(stat_value disk.bytes_per_tick)")")
}
section_archive() {
  local kind a label
  for kind in bench real; do
    configure "archive-$kind"
    if [[ $kind == bench ]]; then
      label="gen's, $(human "$ARCHIVE_COUNT") x $SYMBOLS sym"
      set -- --symbols "$SYMBOLS"
    else
      label="real-looking, $(human "$ARCHIVE_COUNT") x $REAL_SYMBOLS Zipf sym"
      set -- --symbols "$REAL_SYMBOLS"
    fi
    note "archive: $label, yesterday"
    start
    feed "$ARCHIVE_COUNT" --kind "$kind" --days-ago 1 "$@"
    a=$(request rollover)
    note "  rollover: $a"
    archive_row "$kind" "$label" "after rollover"
    # The journal still holds the sealed ticks until two checkpoints have
    # cut it (segments below the older of the two kept are deleted); a
    # checkpoint with no journal written since the one before reuses its
    # number, hence a few ticks of today before each.
    gen 1000 >/dev/null
    request checkpoint >/dev/null
    gen 1000 >/dev/null
    request checkpoint >/dev/null
    sleep 1 # the segments go after the answer: journal.bytes follows a moment later
    archive_row "$kind" "" "after 2 checkpoints (+2k)"
    stop
    rm -rf "${TMP:?}/archive-$kind"
  done
}

# ------------------------------------------------------------------ disk
DISK_ROWS=() DISK_LINE=
section_disk() {
  local t0 t i j0 ja jb
  EXTRA_CFG=$(printf 'limits:\n  max_memory: %s\n' "$DISK_MAX_MEMORY")
  [[ $DISK_MAX_MEMORY == 0 ]] && EXTRA_CFG=
  configure disk
  EXTRA_CFG=
  # Checkpoints by journal bytes only, segments small enough to be deleted.
  sed -i -e "s/^  checkpoint_bytes: 0$/  checkpoint_bytes: $DISK_CHECKPOINT_BYTES/" \
    -e "s/^  fsync: .*/&\n  segment_size: $DISK_SEGMENT/" "$TMP/disk.yaml"
  note "disk: $DISK_SECONDS s at $DISK_RATE ticks/s, checkpoint_bytes $DISK_CHECKPOINT_BYTES," \
    "segment_size $DISK_SEGMENT, max_memory $DISK_MAX_MEMORY"
  start
  "${PIN_LOAD[@]}" "$CLI" --socket "$SOCK" --connect "127.0.0.1:$PORT" gen --rate "$DISK_RATE" \
    --duration "$DISK_SECONDS" --symbols "$SYMBOLS" >"$TMP/gen.out" 2>&1 &
  GPID=$!
  t0=$(now_ns)
  for ((i = 0; ; i++)); do
    t=$(calc "printf \"%.0f\", ($(now_ns) - $t0) / 1e9")
    stats
    DISK_ROWS+=("$(printf '%5s  %12s  %11s  %13s  %8s  %11s  %13s' "$t" "$(stat_value ticks.accepted)" \
      "$(stat_value ticks.stored)" "$(stat_value journal.bytes)" "$(stat_value journal.segments)" \
      "$(stat_value checkpoint.count)" "$(stat_value disk.bytes)")")
    kill -0 "$GPID" 2>/dev/null || break
    sleep "$DISK_EVERY"
  done
  wait "$GPID" || die "tickslab gen failed: $(cat "$TMP/gen.out")"
  GPID=
  # Bounded: the journal's peak over the second half is no higher than over
  # the first (with a segment of slack: a cut deletes whole segments).
  ja=$(printf '%s\n' "${DISK_ROWS[@]}" | awk -v n=${#DISK_ROWS[@]} 'NR <= n / 2 && $4 > m { m = $4 } END { print m + 0 }')
  jb=$(printf '%s\n' "${DISK_ROWS[@]}" | awk -v n=${#DISK_ROWS[@]} 'NR > n / 2 && $4 > m { m = $4 } END { print m + 0 }')
  stats
  j0=$(stat_value journal.written_ticks)
  DISK_LINE="journal.bytes peak: $ja in the first half, $jb in the second; written in all: about"
  DISK_LINE="$DISK_LINE $(calc "printf \"%.0f\", $j0 * 58 / 1048576") MiB ($j0 ticks);"
  DISK_LINE="$DISK_LINE checkpoints $(stat_value checkpoint.count), failed $(stat_value checkpoint.failed);"
  if calc "exit !($jb <= $ja * 1.1 + 2 * $(numfmt --from=iec "${DISK_SEGMENT%iB}"))"; then
    DISK_LINE="$DISK_LINE bounded: yes"
  else
    DISK_LINE="$DISK_LINE bounded: NO (still growing)"
  fi
  stop
  rm -rf "${TMP:?}/disk"
}

for s in $SECTIONS; do "section_$s"; done

# ------------------------------------------------------------------ tables
if ((${#RESTART_ROWS[@]})); then
  echo
  echo "restart ($(human "$COUNT") ticks over $SYMBOLS symbols in memory, journal.fsync $FSYNC; ready: exec to ping 'ok')"
  printf '%s\n' "${RESTART_HEAD[@]}"
  RFMT='%-26s  %7s  %8s  %12s  %8s  %9s  %10s  %10s  %12s  %4s  %7s  %7s  %7s  %8s\n'
  # shellcheck disable=SC2059 # the format is the table's layout
  printf "$RFMT" case "stop (s)" "ready(s)" "ckpt ticks" "load (s)" "M ticks/s" "replayed" \
    "replay (s)" "ticks.stored" days "cpu (s)" "runq(s)" "read MB" "RSS MiB"
  # shellcheck disable=SC2059
  printf "$RFMT" -------------------------- ------- -------- ------------ -------- --------- \
    ---------- ---------- ------------ ---- ------- ------- ------- --------
  printf '%s\n' "${RESTART_ROWS[@]}"
  echo
  line="ready (s):"
  sep=
  for c in "SIGTERM, $(human "$COUNT") in memory" "kill -9, +$(human "$MORE") tail" "1 day archived" \
    "$DAYS days archived"; do
    [[ -n ${CASE_READY[$c]+x} ]] || continue
    line="$line$sep $c $(range "${CASE_READY[$c]}")"
    sep=";"
  done
  echo "$line"
  echo "target: ready in <= 3 s with 50M ticks in memory, whatever the days archived"
fi
if ((${#ARCHIVE_ROWS[@]})); then
  echo
  echo "archive (one sealed day, yesterday; disk: journal + checkpoints + archive, per tick kept)"
  printf '%-38s  %-26s  %10s  %5s  %11s  %6s  %11s  %11s  %6s\n' ticks when "archived" parts \
    "bytes" B/tick "journal" "disk bytes" B/tick
  printf '%-38s  %-26s  %10s  %5s  %11s  %6s  %11s  %11s  %6s\n' -------------------------------------- \
    -------------------------- ---------- ----- ----------- ------ ----------- ----------- ------
  printf '%s\n' "${ARCHIVE_ROWS[@]}"
  echo
  echo "target: archive <= 12 B/tick for a sealed day of the benchmark's ticks"
fi
if ((${#DISK_ROWS[@]})); then
  echo
  echo "disk under steady ingest ($DISK_RATE ticks/s for $DISK_SECONDS s; checkpoint_bytes" \
    "$DISK_CHECKPOINT_BYTES, segment_size $DISK_SEGMENT, max_memory $DISK_MAX_MEMORY)"
  printf '%5s  %12s  %11s  %13s  %8s  %11s  %13s\n' "t (s)" "accepted" "stored" "journal.bytes" \
    segments checkpoints "disk.bytes"
  printf '%5s  %12s  %11s  %13s  %8s  %11s  %13s\n' ----- ------------ ----------- ------------- \
    -------- ----------- -------------
  printf '%s\n' "${DISK_ROWS[@]}"
  echo "$DISK_LINE"
fi
