#!/bin/sh
# install-config.sh SOURCE DIR: meson's install script for the config.
# Copies SOURCE to $DESTDIR/DIR/tickslab.yaml (mode 0644) only where no
# such file exists, so that `meson install` never overwrites a config an
# operator edited; says which it did.
set -eu
src=$1
dir=${DESTDIR:-}$2
dest=$dir/tickslab.yaml
if [ -e "$dest" ]; then
    echo "Keeping $dest (it exists; the shipped one is in the docs' examples)"
    exit 0
fi
install -d -m 0755 "$dir"
install -m 0644 "$src" "$dest"
echo "Installing $src to $dest"
