#!/bin/sh
# verify-unit.sh UNIT_FILE TICKSLABD_PATH [MAN_BUILD_DIR]
#
# Checks the systemd unit with `systemd-analyze verify`, which also checks
# that the binaries named by Exec*= exist and that `man` finds the pages
# Documentation= names: so a copy of the unit, with the tickslabd path
# rewritten to the one just built, is what gets verified, with MANPATH set
# to the pages built in MAN_BUILD_DIR (where they were not built, no scdoc,
# the man: entries are left out of the copy, and that is said).
# Prints "ok systemd_unit_verifies" (exit 0), "FAIL systemd_unit_verifies:
# <output>" (exit 1), or "skip ...: <reason>" (exit 77) when systemd-analyze
# cannot run here.
set -u
name=systemd_unit_verifies

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
    echo "usage: $0 UNIT_FILE TICKSLABD_PATH [MAN_BUILD_DIR]" >&2
    exit 2
fi
unit=$1
bin=$2
mandir=${3:-}

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "skip $name: systemd-analyze not found"
    exit 77
fi
if [ ! -f "$unit" ]; then
    echo "FAIL $name: $unit: no such file"
    exit 1
fi
if [ ! -x "$bin" ]; then
    echo "FAIL $name: $bin: not an executable"
    exit 1
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tks-unit-XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

# Can systemd-analyze verify anything at all here (no manager, odd sandbox)?
cat >"$tmp/tks-probe.service" <<EOF
[Service]
ExecStart=/bin/true
EOF
if ! probe=$(systemd-analyze verify "$tmp/tks-probe.service" 2>&1); then
    echo "skip $name: systemd-analyze verify does not work here: $probe"
    exit 77
fi
rm -f "$tmp/tks-probe.service"

# Exec*= lines: after the optional prefixes (-@:+!|), the first word is the
# binary; replace it wherever it names tickslabd.
base=$(basename "$unit")
sbin=$(printf '%s' "$bin" | sed 's/[#&\\]/\\&/g')
sed -E "s#^(Exec[A-Za-z]*=[-@:+!|]*)[^[:space:]]*tickslabd([[:space:]]|\$)#\\1$sbin\\2#" \
    "$unit" >"$tmp/$base"
if ! grep '^ExecStart=' "$tmp/$base" | grep -qF "$bin"; then
    echo "FAIL $name: no ExecStart= line runs tickslabd in $unit"
    exit 1
fi

# The man pages of Documentation=: those just built, where they were.
mkdir -p "$tmp/man"
have_pages=yes
for page in $(sed -n 's/^Documentation=//p' "$tmp/$base" | tr ' ' '\n' | sed -n 's/^man:\(.*\)(\([0-9]\))$/\1.\2/p'); do
    sec=${page##*.}
    if [ -n "$mandir" ] && [ -f "$mandir/$page" ]; then
        mkdir -p "$tmp/man/man$sec"
        cp "$mandir/$page" "$tmp/man/man$sec/"
    else
        have_pages=no
    fi
done
if [ $have_pages = no ]; then
    echo "note: man pages not built (scdoc missing?): Documentation=man:... left out of the check"
    sed -i -E 's/(^Documentation=|[[:space:]])man:[^[:space:]]*/\1/g; /^Documentation=[[:space:]]*$/d' "$tmp/$base"
fi

out=$(cd "$tmp" && MANPATH="$tmp/man" systemd-analyze verify "$tmp/$base" 2>&1)
rc=$?
# Only what is said about our unit counts (a host may have broken units of
# its own that verify mentions in passing).
ours=$(printf '%s\n' "$out" | grep -F "$base" || true)
if [ $rc -ne 0 ] || [ -n "$ours" ]; then
    echo "FAIL $name: exit $rc: $out"
    exit 1
fi
echo "ok $name"
exit 0
