#!/bin/sh
# Integration tests of polluxd over HTTP (node's test runner, no packages).
set -eu
: "${NODE:=node}"
if ! command -v "$NODE" >/dev/null 2>&1; then
    echo "check-daemon: node not found" >&2
    exit 1
fi
exec "$NODE" --test --test-reporter=tap "${PX_SRCDIR:-.}/tests/integration/daemon.test.mjs" \
    "${PX_SRCDIR:-.}/tests/integration/lifecycle.test.mjs" \
    "${PX_SRCDIR:-.}/tests/integration/images.test.mjs" \
    "${PX_SRCDIR:-.}/tests/integration/gemini.test.mjs"
