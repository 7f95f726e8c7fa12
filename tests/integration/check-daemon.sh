#!/bin/sh
# Integration tests of polluxd over HTTP (node's test runner, no packages),
# then the systemd watchdog test (python3: node cannot open the unix
# datagram socket that stands in for systemd's NOTIFY_SOCKET).
set -eu
: "${NODE:=node}"
if ! command -v "$NODE" >/dev/null 2>&1; then
    echo "check-daemon: node not found" >&2
    exit 1
fi
rc=0
"$NODE" --test --test-reporter=tap "${PX_SRCDIR:-.}/tests/integration/daemon.test.mjs" \
    "${PX_SRCDIR:-.}/tests/integration/lifecycle.test.mjs" \
    "${PX_SRCDIR:-.}/tests/integration/images.test.mjs" \
    "${PX_SRCDIR:-.}/tests/integration/gemini.test.mjs" \
    "${PX_SRCDIR:-.}/tests/integration/faults.test.mjs" || rc=$?
if command -v python3 >/dev/null 2>&1; then
    python3 "${PX_SRCDIR:-.}/tests/integration/watchdog.py" || rc=1
else
    echo "check-daemon: python3 not found: the watchdog test is skipped" >&2
fi
exit $rc
