#!/bin/sh
# sandbox-unit.sh — print a Type=oneshot unit that runs COMMAND under the
# sandbox of polluxd.service (every [Service] setting except those about
# startup, notification, restart and reload), or with --plain under no
# sandbox at all, for measuring what the hardening costs.
#   tools/sandbox-unit.sh [--plain] UNIT-FILE OUTPUT-FILE COMMAND...
# OUTPUT-FILE receives the command's stdout (opened by systemd before the
# sandbox applies, so any path works).
set -eu
plain=0
if [ "${1:-}" = --plain ]; then plain=1; shift; fi
[ $# -ge 3 ] || { echo "usage: $0 [--plain] UNIT-FILE OUTPUT-FILE COMMAND..." >&2; exit 2; }
unit=$1 out=$2
shift 2
printf '[Unit]\nDescription=%s\n\n[Service]\nType=oneshot\nExecStart=%s\nStandardOutput=truncate:%s\n' \
    "$( [ $plain = 1 ] && echo 'benchmark, no sandbox' || echo "benchmark under the sandbox of $(basename "$unit")")" \
    "$*" "$out"
# Keep what sets up the environment in both cases (so only the sandbox differs).
keep_plain='^(Environment|LimitNOFILE)='
drop='^(Type|NotifyAccess|ExecStart|ExecStartPre|ExecStartPost|ExecReload|ExecStop|TimeoutStartSec|TimeoutStopSec|WatchdogSec|Restart|RestartSec|StandardOutput)='
sed -n '/^\[Service\]/,/^\[/p' "$unit" | grep -v -E '^\[|^[#;]|^[[:space:]]*$' | grep -v -E "$drop" |
    if [ $plain = 1 ]; then grep -E "$keep_plain" || true; else cat; fi
