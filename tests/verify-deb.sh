#!/bin/sh
# verify-deb.sh SOURCE_ROOT
#
# Builds the Debian package as a packager would (dpkg-buildpackage -us -uc
# -b, in a copy of the tree, DEB_BUILD_OPTIONS=nocheck) and checks it: its files (dpkg-deb -c), the
# config as a conffile, maintainer scripts holding only what debhelper
# generates (no user or directory made by hand: the unit's DynamicUser=,
# StateDirectory= and RuntimeDirectory= do that), the unpacked binaries
# running, where TKS_DEB_INSTALL=1 (.ci/run) an install and a purge with
# dpkg, and lintian reporting no error and no warning.  Prints "ok NAME"
# / "FAIL NAME: ..." a case, or "skip ...: reason" (exit 77) where
# dpkg-buildpackage, debhelper or a build dependency is missing.
set -u
src=$(cd "${1:?usage: $0 SOURCE_ROOT}" && pwd)
for t in dpkg-buildpackage dpkg-deb dh; do
    if ! command -v $t >/dev/null 2>&1; then
        echo "skip debian_package: $t not found (apt-get install dpkg-dev debhelper)"
        exit 77
    fi
done
if ! missing=$(cd "$src" && dpkg-checkbuilddeps 2>&1); then
    echo "skip debian_package: $missing"
    exit 77
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tks-deb-XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
failed=0
fail() { echo "FAIL $1: $2"; failed=1; }

# The tree as it is (uncommitted changes too), without build dirs or .git.
mkdir "$tmp/src"
(cd "$src" && tar --exclude='./build*' --exclude=./.git --exclude='./obj-*' -cf - .) |
    tar -xf - -C "$tmp/src"
name=dpkg_buildpackage_builds_the_deb
if (cd "$tmp/src" && DEB_BUILD_OPTIONS=nocheck dpkg-buildpackage -us -uc -b) >"$tmp/build.log" 2>&1; then
    echo "ok $name"
else
    tail -30 "$tmp/build.log"
    echo "FAIL $name: see the log above"
    exit 1
fi
deb=$(ls "$tmp"/tickslab_*.deb)

name=deb_holds_the_expected_files
dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { print $6 }' | sed 's#^\./#/#' | sort >"$tmp/files"
cat >"$tmp/want" <<WANT
/etc/tickslab/tickslab.yaml
/lib/systemd/system/tickslabd.service
/usr/bin/tickslab
/usr/sbin/tickslabd
/usr/share/bash-completion/completions/tickslab
/usr/share/doc/tickslab/README.md
/usr/share/doc/tickslab/changelog.gz
/usr/share/doc/tickslab/copyright
/usr/share/doc/tickslab/examples/tickslab.yaml
/usr/share/man/man1/tickslab.1.gz
/usr/share/man/man5/tickslab.yaml.5.gz
/usr/share/man/man8/tickslabd.8.gz
WANT
sort -o "$tmp/want" "$tmp/want"
if diff -u "$tmp/want" "$tmp/files" >"$tmp/diff"; then
    echo "ok $name"
else
    fail $name "$(cat "$tmp/diff")"
fi

name=deb_config_is_a_conffile_and_scripts_are_debhelpers_own
dpkg-deb -e "$deb" "$tmp/ctl"
why=
grep -qx /etc/tickslab/tickslab.yaml "$tmp/ctl/conffiles" 2>/dev/null || why="no conffile /etc/tickslab/tickslab.yaml;"
for s in preinst postinst prerm postrm; do
    [ -f "$tmp/ctl/$s" ] || continue
    # Outside debhelper's "Automatically added" sections: only #!, set -e, blank.
    extra=$(awk '/^# Automatically added by dh_/ { in_dh = 1 } !in_dh && !/^#!/ && !/^set -e$/ && NF { print }
                 /^# End automatically added section/ { in_dh = 0 }' "$tmp/ctl/$s")
    [ -z "$extra" ] || why="$why $s has its own lines: $extra;"
    if grep -Eq 'adduser|useradd|mkdir|chown|install -d' "$tmp/ctl/$s"; then
        why="$why $s makes users or directories;"
    fi
done
if [ -z "$why" ]; then echo "ok $name"; else fail $name "$why"; fi

name=deb_unpacked_daemon_checks_its_shipped_config
dpkg-deb -x "$deb" "$tmp/root"
if out=$("$tmp/root/usr/sbin/tickslabd" --config "$tmp/root/etc/tickslab/tickslab.yaml" --check-config 2>&1) &&
    "$tmp/root/usr/bin/tickslab" --version >/dev/null &&
    grep -q '^ExecStart=/usr/sbin/tickslabd --config /etc/tickslab/tickslab.yaml$' \
        "$tmp/root/lib/systemd/system/tickslabd.service" &&
    grep -q '^StateDirectory=tickslab$' "$tmp/root/lib/systemd/system/tickslabd.service" &&
    grep -q '^RuntimeDirectory=tickslab$' "$tmp/root/lib/systemd/system/tickslabd.service"; then
    echo "ok $name"
else
    fail $name "$out"
fi

# Installed for real, then purged: only where asked (TKS_DEB_INSTALL=1, as
# .ci/run does), as root, with no tickslab package here already, and with
# no systemd running (the postinst would start the service, on its default
# directories and ports).
name=deb_installs_and_purges_cleanly
if [ "${TKS_DEB_INSTALL:-0}" != 1 ]; then
    echo "skip $name: set TKS_DEB_INSTALL=1 to install the package on this machine (.ci/run does)"
elif [ "$(id -u)" != 0 ]; then
    echo "skip $name: not root"
elif dpkg-query -W -f='${Status}' tickslab 2>/dev/null | grep -q 'install ok installed'; then
    echo "skip $name: a tickslab package is installed here; not touching it"
elif [ -d /run/systemd/system ]; then
    echo "skip $name: systemd runs here, and the package would start the service"
else
    why=
    if ! dpkg -i "$deb" >"$tmp/install.log" 2>&1; then
        why="dpkg -i failed: $(tail -5 "$tmp/install.log")"
    else
        for f in /usr/sbin/tickslabd /usr/bin/tickslab /etc/tickslab/tickslab.yaml \
            /lib/systemd/system/tickslabd.service /usr/share/man/man8/tickslabd.8.gz; do
            dpkg -L tickslab | grep -qx "$f" && [ -e "$f" ] || why="$why $f not installed;"
        done
        out=$(/usr/sbin/tickslabd --config /etc/tickslab/tickslab.yaml --check-config 2>&1) ||
            why="$why the installed daemon refuses the installed config: $out;"
        /usr/bin/tickslab --version >/dev/null 2>&1 || why="$why the installed tickslab does not run;"
        if ! dpkg --purge tickslab >"$tmp/purge.log" 2>&1; then
            why="$why dpkg --purge failed: $(tail -5 "$tmp/purge.log");"
        fi
        for f in /usr/sbin/tickslabd /usr/bin/tickslab /etc/tickslab/tickslab.yaml \
            /etc/systemd/system/multi-user.target.wants/tickslabd.service; do
            [ ! -e "$f" ] && [ ! -L "$f" ] || why="$why $f left after the purge;"
        done
    fi
    if [ -z "$why" ]; then echo "ok $name"; else fail $name "$why"; fi
fi

name=lintian_reports_no_error_or_warning
if ! command -v lintian >/dev/null 2>&1; then
    echo "skip $name: lintian not found (apt-get install lintian)"
else
    changes=$(ls "$tmp"/tickslab_*.changes)
    lintian --fail-on error,warning "$changes" >"$tmp/lintian" 2>&1
    rc=$?
    grep -v 'running with root privileges' "$tmp/lintian" | sed 's/^/  /'
    if [ $rc = 0 ]; then echo "ok $name"; else fail $name "lintian exit $rc"; fi
fi
exit $failed
