#!/bin/sh
# shellcheck disable=SC2086 # option lists ($exact, $small, ...) split into words on purpose
# check-reference.sh — pollux's forward pass against the numpy reference.
#
# Writes tiny gemma3 and llama models with pollux-mkmodel, runs three prompts
# (3, 45 and 150 tokens: the last spans more than 4 sliding windows of 32)
# through pollux-run, and has tests/reference/ref.py (numpy, float64, its own
# GGUF reader) recompute every prompt position's logits and the 32-token
# greedy continuation.
#
#   F32 weights   max |logit diff| < 1e-3 and identical greedy ids. The
#                 reference rounds K/V to f16 as pollux's KV cache does.
#   F16, BF16     the same bounds: the reference reads the same rounded
#                 weights; only activation rounding inside pollux differs.
#   quantized     compared with numpy on the dequantized weights. pollux's
#                 int8 kernels round every matmul input to 8 bits (blocks
#                 of 32 or 256, d = absmax/127): measured 0.4% relative
#                 error per matmul, which these 7-layer random models
#                 amplify to 2-3.3% relative RMS logit error (a 1-layer
#                 model: 1%). Which rounding applies depends on the CPU and
#                 n_tok, and elements near a rounding boundary flip between
#                 any two float implementations, so no bit-exact emulation
#                 is attempted. Bound: RMS(diff) / RMS(centred ref logits)
#                 < QUANT_REL = 6%, about 2x the worst measured. A wrong
#                 block layout scrambles the weights and gives > 100%: the
#                 script proves the bound has that power by rerunning one
#                 check with the reference reading blocks in a wrong order
#                 and requiring it to fail.
#
# Vision tower: tests/reference/vision_dump encodes deterministic random
# images (upscaled 37x29 and downscaled 300x200) through random small
# mmproj files (F32 and F16 weights, projection width != encoder width, up
# to 256 patches) and
# tests/reference/ref_vision.py (numpy, float64) recomputes preprocessing
# and encoder from the same file: max |embedding diff| < VISION_ABS = 1e-3
# (measured: 3e-7).
# Exit 0 on pass, 1 on failure (messages say which model, prompt and bound).
set -u

srcdir=${PX_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=${PX_BUILDDIR:-.}
PY=${PYTHON_NUMPY:-python3}
REF=$srcdir/tests/reference/ref.py
MK=$builddir/tools/pollux-mkmodel
RUN=$builddir/tools/pollux-run
N_GEN=32
F32_ABS=1e-3      # max |logit diff|, F32/F16/BF16 weights
GEN_TOL=1e-3      # greedy may differ only at a near-tie narrower than this
QUANT_REL=0.06    # relative RMS logit error, quantized weights
VISION_ABS=1e-3   # max |image embedding diff|, F32/F16 mmproj
VDUMP=$builddir/tests/reference/vision_dump

fail() {
    echo "check-reference: FAIL: $*"
    exit 1
}

"$PY" -c 'import numpy' 2>/dev/null ||
    fail "no python3 with numpy (PYTHON_NUMPY='$PY'); install python3-numpy"
for t in "$MK" "$RUN" "$VDUMP"; do
    test -x "$t" || fail "$t not built"
done

"$PY" "$srcdir/tests/reference/ggufnp.py" selftest ||
    fail "ggufnp.py's vectorised dequantizers disagree with its scalar ones"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pxref.XXXXXX") || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

# Deterministic prompts of token ids in [4, 500): past the control tokens,
# inside every tiny vocabulary.
ids() { # ids COUNT SEED
    awk -v n="$1" -v s="$2" 'BEGIN {
        for (i = 0; i < n; i++) {
            s = (s * 1103515245 + 12345) % 2147483648
            printf "%s%d", (i ? "," : ""), 4 + int(s / 65536) % 496
        }
        printf "\n" }'
}
ids 3 1 >"$tmp/p1"
ids 45 2 >"$tmp/p2"
ids 150 3 >"$tmp/p3"

# check NAME CHECK_ARGS -- MKMODEL_ARGS: makes the model, runs the prompts
# through pollux, compares with the reference.
check() {
    name=$1
    shift
    cargs=
    while test "$1" != --; do
        cargs="$cargs $1"
        shift
    done
    shift
    model=$tmp/$name.gguf
    "$MK" "$@" -o "$model" >"$tmp/mk.log" 2>&1 || {
        cat "$tmp/mk.log"
        fail "$name: pollux-mkmodel $*"
    }
    cases=
    for p in p1 p2 p3; do
        "$RUN" -m "$model" --prompt-ids "$(cat "$tmp/$p")" --dump-logits "$tmp/$name.$p.f32" \
            -n $N_GEN --temp 0 --ids --ignore-eos >"$tmp/$name.$p.gen" 2>"$tmp/run.log" || {
            cat "$tmp/run.log"
            fail "$name: pollux-run on prompt $p"
        }
        cases="$cases --case $tmp/$p,$tmp/$name.$p.f32,$tmp/$name.$p.gen"
    done
    echo "$name ($*):"
    "$PY" "$REF" check "$model" --kv-f16 -n $N_GEN $cargs $cases ||
        fail "$name: pollux differs from the numpy reference (bounds:$cargs)"
}

exact="--max-abs $F32_ABS --gen-tol $GEN_TOL"
quant="--max-rel-rms $QUANT_REL"
small="--n-embd 64 --n-head 4 --head-dim 16 --n-ff 128"
# n_embd, n_ff and n_head * head_dim multiples of 256 for the K-quants
big="--n-embd 256 --n-head 4 --head-dim 64 --n-ff 512 --n-layer 7 --window 32"

check gemma3-f32 $exact -- --arch gemma3 --tiny --type F32 $small --n-layer 7 --window 32 \
    --n-head-kv 1 --seed 11
check gemma3-f32-rope-scaled $exact -- --arch gemma3 --tiny --type F32 $small --n-layer 6 \
    --window 32 --n-head-kv 2 --rope-scale 8 --seed 12
check llama-f32 $exact -- --arch llama --tiny --type F32 $small --n-layer 3 --n-head-kv 2 \
    --untied --seed 13
check gemma3-f16 $exact -- --arch gemma3 --tiny --type F16 $small --n-layer 7 --window 32 \
    --n-head-kv 2 --seed 14
check llama-bf16 $exact -- --arch llama --tiny --type BF16 $small --n-layer 3 --n-head-kv 1 \
    --seed 15
check gemma3-q8_0 $quant -- --arch gemma3 --tiny --type Q8_0 $big --n-head-kv 2 --seed 21
check llama-q4_0 $quant -- --arch llama --tiny --type Q4_0 $big --n-head-kv 2 --untied --seed 22
check gemma3-q5_0 $quant -- --arch gemma3 --tiny --type Q5_0 $big --n-head-kv 1 --seed 23
check gemma3-q4_k $quant -- --arch gemma3 --tiny --type Q4_K $big --n-head-kv 2 --seed 24
check llama-q5_k $quant -- --arch llama --tiny --type Q5_K $big --n-head-kv 2 --untied --seed 25
check gemma3-q6_k $quant -- --arch gemma3 --tiny --type Q6_K $big --n-head-kv 1 --seed 26

# The quantized bound must catch a layout bug: with the reference reading
# Q4_0 nibbles in the wrong order the same comparison has to fail.
echo "llama-q4_0 with the reference reading quant blocks in a wrong order (must fail):"
if "$PY" "$REF" check "$tmp/llama-q4_0.gguf" --kv-f16 --mutate-layout -n $N_GEN $quant \
    --case "$tmp/p3,$tmp/llama-q4_0.p3.f32" >"$tmp/mutate.log" 2>&1; then
    cat "$tmp/mutate.log"
    fail "the quantized bounds do not detect a quant layout bug"
fi
sed 's/^FAIL: /(failed as it must) /' "$tmp/mutate.log"

# vcheck NAME W H SEED -- MKMODEL_ARGS: a random mmproj, one W x H image.
vcheck() {
    name=$1 w=$2 h=$3 seed=$4
    shift 5
    mm=$tmp/$name.gguf
    test -f "$mm" || "$MK" --mmproj-only "$@" -o "$mm" >"$tmp/mk.log" 2>&1 || {
        cat "$tmp/mk.log"
        fail "$name: pollux-mkmodel --mmproj-only $*"
    }
    "$VDUMP" "$mm" "$seed" "$w" "$h" "$tmp/$name.rgb" "$tmp/$name.embd" --threads 2 \
        >"$tmp/vd.log" 2>&1 || {
        cat "$tmp/vd.log"
        fail "$name: vision_dump"
    }
    "$PY" "$srcdir/tests/reference/ref_vision.py" check "$mm" "$tmp/$name.rgb" "$w" "$h" \
        "$tmp/$name.embd" --max-abs $VISION_ABS ||
        fail "$name: pollux's vision tower differs from the numpy reference"
}
echo "vision tower:"
vcheck mmproj-f32 37 29 1 -- --type F32 --n-embd 96 --seed 31
vcheck mmproj-f32 300 200 2 -- --type F32 --n-embd 96 --seed 31
vcheck mmproj-f16 64 64 3 -- --type F16 --seed 32
# 16x16 patches (two attention query blocks), n_ff 200 (a partial weight
# tile), 3 blocks, pooling 4 -> 16 tokens of 80.
vcheck mmproj-mid 500 300 4 -- --type F16 --mmproj-dims 224,14,96,200,3,4,4 --n-embd 80 \
    --seed 33
# 34x34 = 1156 patches (two token blocks of the weight products, ten query
# blocks), n_ff 300 (two weight tiles), pooling 2 -> 289 tokens.
vcheck mmproj-big 200 500 5 -- --type F32 --mmproj-dims 476,14,64,300,1,4,2 --n-embd 80 \
    --seed 34
# The bound must catch a spatial layout bug: a reference that emits the
# pooled tokens column-major has to fail.
echo "mmproj-f32 with the reference's pooled tokens transposed (must fail):"
if "$PY" "$srcdir/tests/reference/ref_vision.py" check "$tmp/mmproj-f32.gguf" \
    "$tmp/mmproj-f32.rgb" 300 200 "$tmp/mmproj-f32.embd" --max-abs $VISION_ABS --mutate \
    >"$tmp/vmutate.log" 2>&1; then
    cat "$tmp/vmutate.log"
    fail "the vision bound does not detect a token layout bug"
fi
sed 's/^FAIL: /(failed as it must) /' "$tmp/vmutate.log"

# Image + text prompts (F32 model and tower): two images of 16 rows each
# (one twice) inside 70 tokens of text, past the 32-token sliding window.
# ref.py recomputes the embeddings with ref_vision.py, puts them in place of
# the rows (unscaled) and lets each image's rows attend to each other both
# ways; every prompt position's logits and 32 greedy tokens are compared.
echo "image + text prompts:"
"$MK" --arch gemma3 --tiny --type F32 $small --n-layer 7 --window 32 --n-head-kv 2 --seed 51 \
    -o "$tmp/mm-text.gguf" >"$tmp/mk.log" 2>&1 &&
    "$MK" --mmproj-only --type F32 --mmproj-dims 224,14,96,200,2,4,4 --n-embd 64 --seed 52 \
        -o "$tmp/mm-tower.gguf" >>"$tmp/mk.log" 2>&1 || {
    cat "$tmp/mk.log"
    fail "image prompts: pollux-mkmodel"
}
printf '%s,4,img,5,%s,4,img,5,%s,4,img,5,%s\n' "$(ids 5 7)" "$(ids 20 8)" "$(ids 3 9)" \
    "$(ids 10 10)" >"$tmp/pimg"
imgs="$tmp/mmproj-f32.rgb,300,200 $tmp/mmproj-f16.rgb,64,64 $tmp/mmproj-f32.rgb,300,200"
run_imgs=
ref_imgs=
for i in $imgs; do
    run_imgs="$run_imgs --image-rgb $i"
    ref_imgs="$ref_imgs --image-rgb $i"
done
"$RUN" -m "$tmp/mm-text.gguf" --mmproj "$tmp/mm-tower.gguf" $run_imgs \
    --prompt-ids "$(cat "$tmp/pimg")" --dump-logits "$tmp/pimg.f32" -n $N_GEN --temp 0 --ids \
    --ignore-eos >"$tmp/pimg.gen" 2>"$tmp/run.log" || {
    cat "$tmp/run.log"
    fail "image prompts: pollux-run"
}
"$PY" "$REF" check "$tmp/mm-text.gguf" --kv-f16 -n $N_GEN $exact --mmproj "$tmp/mm-tower.gguf" \
    $ref_imgs --case "$tmp/pimg,$tmp/pimg.f32,$tmp/pimg.gen" ||
    fail "image prompts: pollux differs from the numpy reference"
echo "the same with the reference attending causally over image rows (must fail):"
if "$PY" "$REF" check "$tmp/mm-text.gguf" --kv-f16 -n $N_GEN $exact --mmproj \
    "$tmp/mm-tower.gguf" $ref_imgs --case "$tmp/pimg,$tmp/pimg.f32" --no-bidir \
    >"$tmp/bmutate.log" 2>&1; then
    cat "$tmp/bmutate.log"
    fail "the image-prompt bound does not detect causal attention over image rows"
fi
sed 's/^FAIL: /(failed as it must) /' "$tmp/bmutate.log"
echo "check-reference: PASS"
exit 0
