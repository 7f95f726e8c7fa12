#!/bin/sh
# The attack tests of ../../../shared/attacks.md that run in `make check`
# (quick ones; check-attacks-slow.sh has the slow ones). Node's test
# runner, no packages; each test checks the post-conditions (postcond.mjs).
set -eu
: "${NODE:=node}"
if ! command -v "$NODE" >/dev/null 2>&1; then
    echo "check-attacks: node not found" >&2
    exit 1
fi
d="${PX_SRCDIR:-.}/tests/attacks"
exec "$NODE" --test --test-reporter=tap "$d/http.test.mjs" "$d/json.test.mjs" "$d/images.test.mjs" \
    "$d/gguf.test.mjs" "$d/sched.test.mjs"
