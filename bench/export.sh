#!/usr/bin/env bash
# Reading ticks back in bulk: `tickslab export` (msgpack, csv, jsonl) beside
# `tickslab range --all` (JSON pages of query.max_rows), rows a second from
# memory, on a fresh daemon (journal off, loopback, a temp control socket).
#
#   bench/export.sh BUILD_DIR [COUNT] [SYMBOLS]
#
# COUNT ticks (default 10000000) over SYMBOLS symbols (default 100) are
# stored first; every reader writes to /dev/null.  Rows a second are wall
# clock (they swing on a shared VM); the daemon's CPU a row (utime+stime,
# /proc) is the figure to compare builds by.  Prints one line each and
# "export: msgpack R M rows/s (target >= 10 M: met|MISSED), Kx range --all
# (target >= 10x: met|MISSED)".
set -euo pipefail
B=${1:?usage: bench/export.sh BUILD_DIR [COUNT] [SYMBOLS]}
N=${2:-10000000} SYMS=${3:-100}
T=$(mktemp -d "${TMPDIR:-/tmp}/tickslab-export.XXXXXX")
P=
trap '[[ -n $P ]] && kill -KILL $P 2>/dev/null; rm -rf "$T"' EXIT
printf 'ingest:\n  listen: 127.0.0.1:0\nsubscribe:\n  listen: off\ncontrol:\n  socket: %s/c.sock\njournal:\n  enabled: false\nlog:\n  level: warn\n' \
  "$T" > "$T/c.yaml"
C=("$B/cli/tickslab" --config "$T/c.yaml" --timeout 120)
stat_of() { "${C[@]}" stats --text 2>/dev/null | awk -v k="$1" '$1 == k { print $2 }'; }
"$B/daemon/tickslabd" --config "$T/c.yaml" 2>"$T/log" & P=$!
for _ in $(seq 300); do [[ $(stat_of state 2>/dev/null) == ready ]] && break; sleep 0.1; done
"${C[@]}" gen --count "$N" --symbols "$SYMS" --wait >"$T/gen" || { cat "$T/gen" "$T/log" >&2; exit 1; }
cpu() { awk '{ print $14 + $15 }' "/proc/$P/stat"; }
rate() { # NAME COMMAND...: rows a second of COUNT rows, and the daemon's CPU a row
  local name=$1 t0 t1 c0 c1; shift
  c0=$(cpu); t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); c1=$(cpu)
  awk -v n="$N" -v a="$t0" -v b="$t1" -v name="$name" -v c0="$c0" -v c1="$c1" -v hz="$(getconf CLK_TCK)" 'BEGIN {
    r = n / (b - a) / 1e6
    printf "%-26s %7.2f M rows/s  (%.2f s; daemon CPU %.0f ns a row)\n", name, r, b - a, (c1 - c0) / hz * 1e9 / n
    print r > "/dev/stderr" }'
}
{ rate "export msgpack" "${C[@]}" export '*' 0 2100-01-01 --format msgpack -o /dev/null; } 2>"$T/mp"
{ rate "export csv" "${C[@]}" export '*' 0 2100-01-01 --format csv -o /dev/null; } 2>/dev/null
{ rate "export jsonl" "${C[@]}" export '*' 0 2100-01-01 --format jsonl -o /dev/null; } 2>/dev/null
range_all() {
  local s
  for s in $("${C[@]}" symbols | sed -n 's/.*"symbol":"\([^"]*\)".*/\1/p'); do
    "${C[@]}" range "$s" 0 2100-01-01 --all
  done
}
{ rate "range --all (each symbol)" range_all; } 2>"$T/rg"
awk -v mp="$(cat "$T/mp")" -v rg="$(cat "$T/rg")" 'BEGIN {
  printf "export: msgpack %.2f M rows/s (target >= 10 M: %s), %.1fx range --all (target >= 10x: %s)\n",
    mp, (mp >= 10 ? "met" : "MISSED"), mp / rg, (mp >= 10 * rg ? "met" : "MISSED") }'
kill -TERM $P; wait $P || true; P=
