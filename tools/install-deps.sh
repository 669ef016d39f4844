#!/bin/sh
# Installs the Debian packages Lantern builds against, if any are missing.
# Called by `make`; safe to run repeatedly. Needs root (or sudo) only when
# something is actually missing.
set -e
PKGS="gcc make pkg-config libjansson-dev libpcre2-dev libutf8proc-dev"
missing=""
for p in $PKGS; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "lantern: installing Debian packages:$missing" >&2
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
