#!/bin/sh
# Installs the Debian 12 packages pollux needs to build and test. Run as root
# (or it uses sudo). Idempotent.
set -eu
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
PKGS="build-essential autoconf automake libtool pkg-config
      libmicrohttpd-dev libuv1-dev libcjson-dev libopenblas-dev libjemalloc-dev check libinih-dev libsystemd-dev
      libpng-dev libjpeg62-turbo-dev libwebp-dev libgif-dev
      python3 python3-numpy clang libclang-rt-14-dev curl nginx-light haproxy"
# Node.js may come from elsewhere (with its own npm): install Debian's only if absent.
command -v node >/dev/null 2>&1 || PKGS="$PKGS nodejs"
command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi

# npm packages the tests use (pinned by package-lock.json; no network at run time).
srcdir=$(cd "$(dirname "$0")/.." && pwd)
for d in tests/tokenizer tests/clients; do
    if [ -f "$srcdir/$d/package-lock.json" ]; then
        (cd "$srcdir/$d" && npm ci --no-audit --no-fund --loglevel=error)
    fi
done
