#!/bin/sh
# The official client SDKs against polluxd (npm packages pinned in
# tests/clients/package-lock.json, installed by tools/install-deps.sh):
# openai for the OpenAI dialect, @google/genai for the Gemini one.
set -eu
: "${NODE:=node}"
dir="${PX_SRCDIR:-.}/tests/clients"
if [ ! -d "$dir/node_modules/openai" ] || [ ! -d "$dir/node_modules/@google/genai" ]; then
    echo "check-clients: $dir/node_modules missing: run tools/install-deps.sh" >&2
    exit 77
fi
exec "$NODE" --test --test-reporter=tap "$dir/openai.test.mjs" "$dir/openai-image.test.mjs" \
    "$dir/genai.test.mjs" "$dir/genai-image.test.mjs"
