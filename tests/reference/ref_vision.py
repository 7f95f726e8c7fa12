"""ref_vision.py: the Gemma 3 vision tower (mmproj GGUF) in plain numpy.

Part of pollux's reference test. It shares no code with the C engine: it
reads the mmproj with ggufnp.py and recomputes the image embeddings in
float64 from the tensor layout of llama.cpp's converter:

  v.patch_embd.weight     numpy (n_embd, 3, p, p): a stride-p convolution
  v.position_embd.weight  (n_patch, n_embd), patches row-major (y * grid + x)
  v.blk.N.*               pre-LayerNorm blocks: x += attn(ln1(x)),
                          x += down(gelu_tanh(up(ln2(x)))), attention scale
                          1/sqrt(head_dim), no mask; ffn_up is (n_ff, n_embd)
  v.post_ln               final LayerNorm
  pooling                 k x k average over the patch grid, k =
                          clip.vision.projector.scale_factor (default 4)
  mm.soft_emb_norm.weight RMSNorm weight, already (1 + w) in the file
  mm.input_projection     numpy (n_embd, n_embd_out): y = x @ W (not
                          transposed, unlike every other matrix)

Preprocessing is llama.cpp's bilinear resize (source step (n-1)/S, float32
arithmetic, result truncated to uint8) and (v/255 - mean)/std; emulated in
float32 so that the 8-bit truncation lands on the same side as in C.

  python3 ref_vision.py check MMPROJ RGB W H EMBD --max-abs TOL [--mutate]
      RGB: W*H*3 bytes; EMBD: pollux's float32 (n_tokens_out, n_embd_out).
      Exit 0 if max |pollux - reference| < TOL. --mutate transposes the
      pooled token grid, a layout bug the bound must catch.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ggufnp  # noqa: E402


def preprocess(rgb, w, h, size, mean, std):
    """rgb (h, w, 3) uint8 -> (3, size, size) float64."""
    f = np.float32
    xr = f(w - 1) / f(size)
    yr = f(h - 1) / f(size)
    px = xr * np.arange(size, dtype=f)
    py = yr * np.arange(size, dtype=f)
    x0 = px.astype(np.int64)
    y0 = py.astype(np.int64)
    fx = (px - x0.astype(f))[None, :, None]
    fy = (py - y0.astype(f))[:, None, None]
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    src = rgb.astype(f)
    a = src[y0][:, x0]
    b = src[y0][:, x1]
    c = src[y1][:, x0]
    d = src[y1][:, x1]
    top = a + (b - a) * fx
    bot = c + (d - c) * fx
    u = (top + (bot - top) * fy).astype(np.uint8)
    out = (u.astype(f) / f(255.0) - np.asarray(mean, f)) / np.asarray(std, f)
    return out.transpose(2, 0, 1).astype(np.float64)


def layernorm(x, w, b, eps):
    m = x.mean(axis=-1, keepdims=True)
    v = ((x - m) ** 2).mean(axis=-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * w + b


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def encode(g, pixels, mutate=False):
    kv = g.kv
    T = lambda n: g.tensor(n).astype(np.float64)  # noqa: E731
    if kv.get("clip.projector_type") != "gemma3":
        raise SystemExit("not a gemma3 mmproj")
    S = int(kv["clip.vision.image_size"])
    p = int(kv["clip.vision.patch_size"])
    E = int(kv["clip.vision.embedding_length"])
    n_head = int(kv["clip.vision.attention.head_count"])
    n_layer = int(kv["clip.vision.block_count"])
    eps = float(kv.get("clip.vision.attention.layer_norm_epsilon", 1e-6))
    k = int(kv.get("clip.vision.projector.scale_factor", 4))
    grid = S // p
    hd = E // n_head
    # Patch convolution as a reshape: (3, grid, p, grid, p) -> (grid, grid, 3, p, p).
    patches = pixels.reshape(3, grid, p, grid, p).transpose(1, 3, 0, 2, 4).reshape(grid * grid, -1)
    x = patches @ T("v.patch_embd.weight").reshape(E, -1).T + T("v.patch_embd.bias")
    x = x + T("v.position_embd.weight")
    for il in range(n_layer):
        pre = "v.blk.%d." % il
        lin = lambda z, n: z @ T(pre + n + ".weight").T + T(pre + n + ".bias")  # noqa: E731
        h = layernorm(x, T(pre + "ln1.weight"), T(pre + "ln1.bias"), eps)
        q = lin(h, "attn_q").reshape(-1, n_head, hd).transpose(1, 0, 2)
        kk = lin(h, "attn_k").reshape(-1, n_head, hd).transpose(1, 0, 2)
        v = lin(h, "attn_v").reshape(-1, n_head, hd).transpose(1, 0, 2)
        s = q @ kk.transpose(0, 2, 1) / np.sqrt(hd)
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s /= s.sum(axis=-1, keepdims=True)
        a = (s @ v).transpose(1, 0, 2).reshape(-1, E)
        x = x + lin(a, "attn_out")
        h = layernorm(x, T(pre + "ln2.weight"), T(pre + "ln2.bias"), eps)
        x = x + lin(gelu_tanh(lin(h, "ffn_up")), "ffn_down")
    x = layernorm(x, T("v.post_ln.weight"), T("v.post_ln.bias"), eps)
    go = grid // k
    pooled = x.reshape(go, k, go, k, E).mean(axis=(1, 3))
    if mutate:  # a deliberate bug: tokens in column-major order
        pooled = pooled.transpose(1, 0, 2)
    pooled = pooled.reshape(go * go, E)
    r = pooled / np.sqrt((pooled ** 2).mean(axis=-1, keepdims=True) + eps)
    r = r * T("mm.soft_emb_norm.weight")
    return r @ T("mm.input_projection.weight")  # numpy (E, n_out): y = x @ W


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["check"])
    ap.add_argument("mmproj")
    ap.add_argument("rgb")
    ap.add_argument("w", type=int)
    ap.add_argument("h", type=int)
    ap.add_argument("embd")
    ap.add_argument("--max-abs", type=float, default=1e-3)
    ap.add_argument("--mutate", action="store_true",
                    help="pool into column-major token order (the check must then fail)")
    a = ap.parse_args()
    g = ggufnp.GGUF(a.mmproj)
    kv = g.kv
    rgb = np.fromfile(a.rgb, dtype=np.uint8).reshape(a.h, a.w, 3)
    S = int(kv["clip.vision.image_size"])
    pix = preprocess(rgb, a.w, a.h, S, kv["clip.vision.image_mean"], kv["clip.vision.image_std"])
    ref = encode(g, pix, a.mutate)
    got = np.fromfile(a.embd, dtype="<f4").astype(np.float64)
    if got.size != ref.size:
        print("FAIL: pollux wrote %d values, the reference has %d %s" % (got.size, ref.size,
                                                                        ref.shape))
        return 1
    got = got.reshape(ref.shape)
    diff = np.abs(got - ref).max()
    print("  vision %s: %d tokens x %d, max |diff| = %.3g (bound %g), ref rms %.3g" % (
        os.path.basename(a.mmproj), ref.shape[0], ref.shape[1], diff, a.max_abs,
        np.sqrt((ref ** 2).mean())))
    if not diff < a.max_abs:
        print("FAIL: max |diff| %.3g >= %g" % (diff, a.max_abs))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
