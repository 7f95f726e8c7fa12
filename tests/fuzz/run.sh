#!/bin/sh
# tests/fuzz/run.sh — runs every libFuzzer target of a build configured with
# --enable-fuzzing for a while on a copy of its seed corpus, after replaying
# the saved regressions; fails on any finding (crash, leak, timeout, OOM).
#   tests/fuzz/run.sh BUILDDIR [SECONDS] [TARGET...]
# SECONDS per target (default 60, or $PX_FUZZ_SECONDS). Builds nothing: run
# `make tests/fuzz/fuzz_image ...` (or plain `make`) in BUILDDIR first.
# Findings are kept under BUILDDIR/fuzz-findings/<target>/ and the libFuzzer
# log of each target under BUILDDIR/fuzz-logs/.
set -eu
if [ $# -lt 1 ]; then
    echo "usage: $0 BUILDDIR [SECONDS] [TARGET...]" >&2
    exit 2
fi
build=$(cd "$1" && pwd)
shift
secs=${PX_FUZZ_SECONDS:-60}
if [ $# -gt 0 ]; then
    secs=$1
    shift
fi
here=$(cd "$(dirname "$0")" && pwd)
targets=${*:-fuzz_image fuzz_gguf fuzz_openai fuzz_gemini fuzz_tokenizer fuzz_render}

# Longest input per target: room to grow past the seeds, small enough to
# keep executions fast.
max_len() {
    case $1 in
    fuzz_image) echo 16384 ;;
    fuzz_gguf) echo 131072 ;;
    fuzz_openai | fuzz_gemini) echo 8192 ;;
    *) echo 4096 ;;
    esac
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
mkdir -p "$build/fuzz-logs"
fail=0
for t in $targets; do
    bin=$build/tests/fuzz/$t
    if [ ! -x "$bin" ]; then
        echo "$t: $bin missing (configure with --enable-fuzzing and build it)" >&2
        fail=1
        continue
    fi
    found=$build/fuzz-findings/$t
    mkdir -p "$work/$t" "$found"
    cp "$here/corpus/$t"/* "$work/$t/" 2>/dev/null || true
    log=$build/fuzz-logs/$t.log
    # Saved findings must stay fixed: replay them on their own first.
    if [ -d "$here/regress/$t" ] && [ -n "$(ls "$here/regress/$t")" ]; then
        if ! "$bin" -runs=0 "$here/regress/$t" >"$log.regress" 2>&1; then
            echo "$t: a saved regression fails again (see $log.regress)" >&2
            grep -E '^(==[0-9]+==ERROR|SUMMARY|.*check failed)' "$log.regress" | head -5 >&2 || true
            fail=1
            continue
        fi
    fi
    dict=
    [ -f "$here/$t.dict" ] && dict=-dict=$here/$t.dict
    # shellcheck disable=SC2086
    if "$bin" -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=20 $dict \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$found/" \
        "$work/$t" >"$log" 2>&1; then
        stats=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 | tr -s '\t ' ' ')
        echo "$t: ok ${secs}s: $stats"
    else
        echo "$t: FINDING (log: $log, inputs: $found)" >&2
        grep -E '^(==[0-9]+==ERROR|SUMMARY|.*check failed)' "$log" | head -5 >&2 || true
        fail=1
    fi
done
exit $fail
