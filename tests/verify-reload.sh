#!/bin/sh
# verify-reload.sh UNIT_FILE TICKSLABD_PATH GOOD_CONFIG
#
# `systemctl reload tickslabd` must fail on a broken config: runs the unit's
# ExecReload= commands as systemd would (in order, stopping at the first
# that fails), with the tickslabd binary replaced by the one just built, the
# --config file by a temp copy, and the kill line by a check that it would
# signal $MAINPID.  A broken file must fail the first command (exit != 0,
# file:line:column on stderr) before the kill; a good one must pass it.
# Prints "ok NAME" / "FAIL NAME: ..." per case.
set -u
if [ $# -ne 3 ]; then
    echo "usage: $0 UNIT_FILE TICKSLABD_PATH GOOD_CONFIG" >&2
    exit 2
fi
unit=$1 bin=$2 good=$3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tks-reload-XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
failed=0
fail() { echo "FAIL $1: $2"; failed=1; }

# The ExecReload= lines, in order, without the optional prefixes (-@:+!|).
grep '^ExecReload=' "$unit" | sed -E 's/^ExecReload=[-@:+!|]*//' >"$tmp/reload"
name=unit_execreload_checks_the_config_then_signals
n=$(wc -l <"$tmp/reload")
first=$(sed -n 1p "$tmp/reload")
last=$(sed -n '$p' "$tmp/reload")
case $first in
    *tickslabd*--check-config*) ;;
    *) fail $name "the first ExecReload= does not run tickslabd --check-config: '$first'" ;;
esac
case $last in
    */kill\ -HUP\ \$MAINPID) ;;
    *) fail $name "the last ExecReload= is not 'kill -HUP \$MAINPID': '$last'" ;;
esac
[ "$n" -ge 2 ] || fail $name "$n ExecReload= lines, want the check and the signal"
[ $failed = 0 ] && echo "ok $name"

# Runs the ExecReload= commands against config file $1, as systemd does:
# one after the other, the first failure fails the reload.  Prints the
# stderr of the one that failed; returns its status.  The kill line writes
# "signalled" to $tmp/signalled instead of signalling.
run_reload() {
    rm -f "$tmp/signalled"
    while IFS= read -r line; do
        case $line in
            */kill\ -HUP\ \$MAINPID)
                echo signalled >"$tmp/signalled"
                continue ;;
        esac
        # Word 1 is the binary: ours where it is tickslabd; the word after
        # --config is the file.
        set -- $line
        cmd=
        prev=
        for w in "$@"; do
            case $prev in --config|-c) w=$cfg ;; esac
            case $w in */tickslabd) w=$bin ;; esac
            cmd="$cmd $w"
            prev=$w
        done
        # shellcheck disable=SC2086
        $cmd >"$tmp/out" 2>"$tmp/err"
        rc=$?
        if [ $rc -ne 0 ]; then
            cat "$tmp/err"
            return $rc
        fi
    done <"$tmp/reload"
    return 0
}

cfg=$tmp/tickslab.yaml
cp "$good" "$cfg"
name=reload_of_a_good_config_passes_the_check_and_signals
if err=$(run_reload); then
    if [ -f "$tmp/signalled" ]; then echo "ok $name"; else fail $name "not signalled"; fi
else
    fail $name "ExecReload failed on $good: $err"
fi

printf 'ingest:\n  listen: 127.0.0.1:7070\n  max_conections: 10\n' >"$cfg"
name=reload_of_a_broken_config_fails_before_the_signal
if err=$(run_reload); then
    fail $name "ExecReload succeeded on a broken file"
elif [ -f "$tmp/signalled" ]; then
    fail $name "the daemon would have been signalled"
else
    case $err in
        *"$cfg:3:3: unknown key 'max_conections'"*) echo "ok $name" ;;
        *) fail $name "no $cfg:3:3: unknown key on stderr: $err" ;;
    esac
fi

printf 'log:\n  level: [loud\n' >"$cfg"
name=reload_of_a_file_that_is_not_yaml_fails_before_the_signal
if err=$(run_reload); then
    fail $name "ExecReload succeeded on a file that is not YAML"
elif [ -f "$tmp/signalled" ]; then
    fail $name "the daemon would have been signalled"
else
    case $err in
        *"$cfg:"[0-9]*) echo "ok $name" ;;
        *) fail $name "no $cfg:LINE on stderr: $err" ;;
    esac
fi
exit $failed
