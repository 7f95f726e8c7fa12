#!/bin/sh
# The slow attack tests (`make check-slow`): slowloris, floods, churn, 1000
# queued requests. Bounded: stops by itself in about 5 minutes.
set -eu
: "${NODE:=node}"
if ! command -v "$NODE" >/dev/null 2>&1; then
    echo "check-attacks-slow: node not found" >&2
    exit 1
fi
exec timeout 420 "$NODE" --test --test-reporter=tap "${PX_SRCDIR:-.}/tests/attacks/slow.test.mjs"
