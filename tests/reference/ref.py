"""ref.py: numpy reference forward passes for gemma3 and llama GGUF models.

An independent implementation of what pollux computes, read top to bottom,
used by check-reference.sh to compare pollux's logits and greedy output. It
follows llama.cpp's graphs for LLM_ARCH_GEMMA3 and LLM_ARCH_LLAMA on GGUF
files written by llama.cpp's converter (or pollux-mkmodel):

gemma3  x = embd[tok] * sqrt(n_embd); per layer:
          h = rmsnorm(x) * attn_norm          (gemma norm weights are stored
                                               with the +1 already added)
          q, k, v = h Wq^T, h Wk^T, h Wv^T; q, k rmsnorm'ed per head (q_norm,
          k_norm) then RoPE NeoX style (halves); global layers ((i+1) % 6 == 0)
          use rope.freq_base and the linear scaling factor, local layers base
          10000, no scaling, and see keys p - window < k <= p.
          a = softmax(q k^T / sqrt(head_dim)) v  (GQA: head h reads kv head
          h / (n_head / n_head_kv)); x += rmsnorm(a Wo^T) * post_attention_norm
          h = rmsnorm(x) * ffn_norm; f = (gelu_tanh(h Wg^T) * h Wu^T) Wd^T
          x += rmsnorm(f) * post_ffw_norm
        logits = rmsnorm(x) * output_norm @ embd^T
llama   as usual: pre-norm, RoPE on adjacent pairs (the converter permutes
        Wq/Wk for it), SwiGLU, output.weight or tied embedding.

All arithmetic is float64 (weights dequantized to float32 by ggufnp, then
widened). --kv-f16 rounds K (after RoPE) and V to float16 as pollux's KV
cache stores them, so the F32 comparison measures arithmetic, not storage.

CLI:
  ref.py logits MODEL --ids 2,15,77 --out L.f32   float32 (n_ids, n_vocab)
  ref.py greedy MODEL --ids 2,15,77 -n 32         greedy ids, one line
  ref.py check MODEL --case IDS,LOGITS,GEN ...    compare pollux's outputs;
        see check_main() and check-reference.sh for the tolerances
"""

import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ggufnp  # noqa: E402


# Test hook (--no-bidir): image rows attend causally, as a bug would.
NO_BIDIR = False


class Config:
    pass


def _kv(g, arch, key, default=None):
    v = g.kv.get("%s.%s" % (arch, key), default)
    if v is None:
        raise ggufnp.GGUFError("missing %s.%s" % (arch, key))
    if isinstance(v, np.ndarray):  # per-layer arrays: all equal here
        v = v[0]
    return v


def read_config(g):
    c = Config()
    c.arch = g.kv.get("general.architecture")
    if c.arch not in ("gemma3", "llama"):
        raise ggufnp.GGUFError("unsupported architecture %r" % c.arch)
    a = c.arch
    c.n_embd = int(_kv(g, a, "embedding_length"))
    c.n_layer = int(_kv(g, a, "block_count"))
    c.n_ff = int(_kv(g, a, "feed_forward_length"))
    c.n_head = int(_kv(g, a, "attention.head_count"))
    c.n_head_kv = int(_kv(g, a, "attention.head_count_kv", c.n_head))
    c.head_dim = int(_kv(g, a, "attention.key_length", c.n_embd // c.n_head))
    c.head_dim_v = int(_kv(g, a, "attention.value_length", c.head_dim))
    c.n_rot = int(_kv(g, a, "rope.dimension_count", c.head_dim))
    c.eps = float(_kv(g, a, "attention.layer_norm_rms_epsilon", 1e-6 if a == "gemma3" else 1e-5))
    c.rope_base = float(_kv(g, a, "rope.freq_base", 1e6 if a == "gemma3" else 1e4))
    c.rope_scale = 1.0  # positions are multiplied by 1 / factor
    stype = g.kv.get("%s.rope.scaling.type" % a, "none")
    if stype == "linear":
        c.rope_scale = 1.0 / float(_kv(g, a, "rope.scaling.factor", 1.0))
    elif stype not in ("none", ""):
        raise ggufnp.GGUFError("unsupported rope scaling %r" % stype)
    c.window = int(_kv(g, a, "attention.sliding_window", 0)) if a == "gemma3" else 0
    c.swa_period = 6 if a == "gemma3" else 0
    c.rope_base_local = 10000.0
    c.n_vocab = g.tensors["token_embd.weight"].ne[1]
    c.tied = "output.weight" not in g.tensors
    return c


class Model:
    """Config plus every weight dequantized to float64 (numpy shapes: a
    matrix is (n_out, n_in) and applied as x @ W.T)."""

    def __init__(self, path, dtype=np.float64):
        g = ggufnp.GGUF(path)
        self.c = c = read_config(g)
        self.dtype = dtype

        def w(name):
            return g.tensor(name).astype(dtype)

        self.embd = w("token_embd.weight")                    # (n_vocab, n_embd)
        self.out = self.embd if c.tied else w("output.weight")
        self.out_norm = w("output_norm.weight")
        names = ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                 "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"]
        if c.arch == "gemma3":
            names += ["attn_q_norm", "attn_k_norm", "post_attention_norm", "post_ffw_norm"]
        self.layers = []
        for i in range(c.n_layer):
            self.layers.append({n: w("blk.%d.%s.weight" % (i, n)) for n in names})
        self._check_shapes()

    def _check_shapes(self):
        c = self.c
        L = self.layers[0]
        want = {"attn_q": (c.n_head * c.head_dim, c.n_embd),
                "attn_k": (c.n_head_kv * c.head_dim, c.n_embd),
                "attn_v": (c.n_head_kv * c.head_dim_v, c.n_embd),
                "attn_output": (c.n_embd, c.n_head * c.head_dim_v),
                "ffn_gate": (c.n_ff, c.n_embd), "ffn_up": (c.n_ff, c.n_embd),
                "ffn_down": (c.n_embd, c.n_ff)}
        for k, s in want.items():
            if L[k].shape != s:
                raise ggufnp.GGUFError("%s: shape %s, want %s" % (k, L[k].shape, s))


def rmsnorm(x, w, eps):
    """x (..., n) normalised over the last axis, times w (n)."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, pos, n_rot, base, scale, neox):
    """x (n_tok, n_heads, head_dim) rotated by position; only the first n_rot
    dims. neox: pairs (i, i + n_rot/2); else adjacent pairs (2i, 2i+1)."""
    half = n_rot // 2
    inv = base ** (-np.arange(half, dtype=np.float64) * 2.0 / n_rot)     # (half)
    ang = (np.asarray(pos, np.float64) * scale)[:, None] * inv[None, :]  # (n_tok, half)
    cos = np.cos(ang)[:, None, :]
    sin = np.sin(ang)[:, None, :]
    y = x.copy()
    if neox:
        a, b = x[..., :half], x[..., half:n_rot]
        y[..., :half] = a * cos - b * sin
        y[..., half:n_rot] = a * sin + b * cos
    else:
        a, b = x[..., 0:n_rot:2], x[..., 1:n_rot:2]
        y[..., 0:n_rot:2] = a * cos - b * sin
        y[..., 1:n_rot:2] = a * sin + b * cos
    return y


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def silu(x):
    return x / (1.0 + np.exp(-x))


class Cache:
    """Per-layer K (T, n_head_kv, head_dim) and V of the positions so far."""

    def __init__(self, n_layer):
        self.k = [None] * n_layer
        self.v = [None] * n_layer
        self.n = 0


def is_global(c, il):
    return c.swa_period == 0 or (il + 1) % c.swa_period == 0


def forward(m, tokens, cache, kv_f16=False, images=()):
    """Runs tokens at positions cache.n.. and returns their logits
    (n_tok, n_vocab) float64; appends their K/V to cache. images: (start,
    embeddings (rows, n_embd)) pairs, start relative to tokens[0]: those rows
    take the embeddings as they are (no sqrt(n_embd) scale) and attend to
    each other both ways (Gemma 3's image-token mask)."""
    c = m.c
    n = len(tokens)
    pos = np.arange(cache.n, cache.n + n)
    x = m.embd[np.asarray(tokens)]                                 # (n, n_embd)
    if c.arch == "gemma3":
        x = x * math.sqrt(c.n_embd)
    span = np.full(n, -1)                                          # image of each row
    for i, (start, e) in enumerate(images):
        x[start:start + len(e)] = e
        span[start:start + len(e)] = i
    grp = c.n_head // c.n_head_kv
    for il, L in enumerate(m.layers):
        glob = is_global(c, il)
        base = c.rope_base if glob else c.rope_base_local
        scale = c.rope_scale if glob else 1.0
        h = rmsnorm(x, L["attn_norm"], c.eps)
        q = (h @ L["attn_q"].T).reshape(n, c.n_head, c.head_dim)
        k = (h @ L["attn_k"].T).reshape(n, c.n_head_kv, c.head_dim)
        v = (h @ L["attn_v"].T).reshape(n, c.n_head_kv, c.head_dim_v)
        if c.arch == "gemma3":
            q = rmsnorm(q, L["attn_q_norm"], c.eps)
            k = rmsnorm(k, L["attn_k_norm"], c.eps)
        neox = c.arch == "gemma3"
        q = rope(q, pos, c.n_rot, base, scale, neox)
        k = rope(k, pos, c.n_rot, base, scale, neox)
        if kv_f16:
            k = k.astype(np.float16).astype(x.dtype)
            v = v.astype(np.float16).astype(x.dtype)
        K = k if cache.k[il] is None else np.concatenate([cache.k[il], k])
        V = v if cache.v[il] is None else np.concatenate([cache.v[il], v])
        cache.k[il], cache.v[il] = K, V
        T = K.shape[0]
        kpos = np.arange(T)
        visible = kpos[None, :] <= pos[:, None]                     # (n, T)
        if c.window and not glob:
            visible &= kpos[None, :] > pos[:, None] - c.window
        if images and not NO_BIDIR:  # rows of one image see all of it (keys of this call only)
            kspan = np.concatenate([np.full(T - n, -1), span])
            visible |= (span[:, None] >= 0) & (kspan[None, :] == span[:, None])
        Kh = np.repeat(K, grp, axis=1)                              # (T, n_head, hd)
        Vh = np.repeat(V, grp, axis=1)
        s = np.einsum("nhd,thd->hnt", q, Kh) / math.sqrt(c.head_dim)
        s = np.where(visible[None], s, -np.inf)
        s = s - s.max(axis=-1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=-1, keepdims=True)
        a = np.einsum("hnt,thd->nhd", p, Vh).reshape(n, c.n_head * c.head_dim_v)
        o = a @ L["attn_output"].T
        if c.arch == "gemma3":
            o = rmsnorm(o, L["post_attention_norm"], c.eps)
        x = x + o
        h = rmsnorm(x, L["ffn_norm"], c.eps)
        gate = h @ L["ffn_gate"].T
        up = h @ L["ffn_up"].T
        act = gelu_tanh(gate) if c.arch == "gemma3" else silu(gate)
        f = (act * up) @ L["ffn_down"].T
        if c.arch == "gemma3":
            f = rmsnorm(f, L["post_ffw_norm"], c.eps)
        x = x + f
    cache.n += n
    x = rmsnorm(x, m.out_norm, c.eps)
    return x @ m.out.T


def greedy(m, ids, n_gen, kv_f16=False, images=()):
    """Prompt logits (n_prompt, n_vocab), generated ids (argmax, lowest id on
    ties), and each generated step's logits (n_gen, n_vocab)."""
    cache = Cache(m.c.n_layer)
    pl = forward(m, ids, cache, kv_f16, images)
    last = pl[-1]
    gen, steps = [], []
    for i in range(n_gen):
        t = int(np.argmax(last))
        gen.append(t)
        steps.append(last)
        if i + 1 < n_gen:
            last = forward(m, [t], cache, kv_f16)[0]
    return pl, gen, np.array(steps)


def parse_ids(s):
    if os.path.exists(s):
        s = open(s).read()
    return [-1 if t == "img" else int(t) for t in s.replace(",", " ").split()]


def image_embeddings(args):
    """The numpy tower's embeddings of each --image-rgb FILE,W,H."""
    if not args.image_rgb:
        return []
    import ref_vision
    g = ggufnp.GGUF(args.mmproj)
    kv = g.kv
    S = int(kv["clip.vision.image_size"])
    out = []
    for spec in args.image_rgb:
        path, w, h = spec.rsplit(",", 2)
        w, h = int(w), int(h)
        rgb = np.fromfile(path, dtype=np.uint8).reshape(h, w, 3)
        pix = ref_vision.preprocess(rgb, w, h, S, kv["clip.vision.image_mean"],
                                    kv["clip.vision.image_std"])
        out.append(ref_vision.encode(g, pix))
    return out


def place_images(ids, embds, filler):
    """Expands each -1 ("img") of ids into its image's rows."""
    out, images = [], []
    for t in ids:
        if t != -1:
            out.append(t)
            continue
        e = embds[len(images)]
        images.append((len(out), e))
        out += [filler] * len(e)
    if len(images) != len(embds):
        raise ValueError("%d image places for %d images" % (len(images), len(embds)))
    return out, images


def _rel_rms(a, ref):
    """RMS of a - ref over the RMS of ref's logits around each row's mean."""
    return float(np.sqrt(np.mean((a - ref) ** 2)) / np.sqrt(np.mean((ref - ref.mean(1, keepdims=True)) ** 2)))


def check_case(m, ids, logits_path, gen_path, args):
    """Compares one prompt's pollux outputs with the reference. Returns a
    list of failure messages (empty on pass)."""
    fails = []
    n_gen = args.n
    images = ()
    if -1 in ids or args.image_rgb:
        ids, images = place_images(ids, args.embds, args.filler)
    pl, gen, _ = greedy(m, ids, n_gen, args.kv_f16, images)
    px = np.fromfile(logits_path, dtype="<f4")
    if px.size != pl.size:
        return ["%s: %d floats, want %d x %d" % (logits_path, px.size, len(ids), m.c.n_vocab)]
    px = px.reshape(pl.shape).astype(np.float64)
    if not np.all(np.isfinite(px)):
        return ["pollux logits contain NaN/Inf"]
    diff = np.abs(px - pl)
    max_abs = float(diff.max())
    worst = np.unravel_index(np.argmax(diff), diff.shape)
    rel_rms = _rel_rms(px, pl)
    top1 = float(np.mean(np.argmax(px, 1) == np.argmax(pl, 1)))
    print("    prompt %3d tok: max|dlogit| %.3e (pos %d tok %d)  rel-rms %.3e  top1-agree %.3f"
          % (len(ids), max_abs, worst[0], worst[1], rel_rms, top1))
    if args.max_abs is not None and not max_abs < args.max_abs:
        fails.append("max |logit diff| %.3e >= %.1e" % (max_abs, args.max_abs))
    if args.max_rel_rms is not None and not rel_rms < args.max_rel_rms:
        fails.append("relative RMS logit error %.3e >= %.1e" % (rel_rms, args.max_rel_rms))
    if gen_path and args.gen_tol is not None:
        pg = parse_ids(gen_path)
        if pg == gen:
            print("    greedy %d tokens identical" % n_gen)
        else:
            # Diverged: allowed only at a near-tie. Re-score pollux's own
            # continuation with the reference (teacher forcing) and require
            # every pollux choice to be within gen_tol of the reference max.
            j = next((i for i in range(min(len(pg), len(gen))) if pg[i] != gen[i]), min(len(pg), len(gen)))
            msg = "greedy differs at step %d: pollux %s ref %s" % (j, pg[j:j + 4], gen[j:j + 4])
            if len(pg) != n_gen:
                fails.append("pollux generated %d ids, want %d" % (len(pg), n_gen))
            else:
                cache = Cache(m.c.n_layer)
                tf = forward(m, ids + pg[:-1], cache, args.kv_f16, images)[len(ids) - 1:]
                gap = tf.max(axis=1) - tf[np.arange(n_gen), pg]
                if gap.max() <= args.gen_tol:
                    print("    %s; near-tie, teacher-forced gap max %.2e <= %.1e: ok"
                          % (msg, gap.max(), args.gen_tol))
                else:
                    fails.append("%s; pollux's choice trails the reference max by %.3e at step %d"
                                 % (msg, gap.max(), int(np.argmax(gap))))
    return fails


def check_main(args):
    m = Model(args.model)
    c = m.c
    print("  %s: %s n_embd %d n_layer %d n_head %d/%d head_dim %d n_ff %d vocab %d window %d"
          % (os.path.basename(args.model), c.arch, c.n_embd, c.n_layer, c.n_head, c.n_head_kv,
             c.head_dim, c.n_ff, c.n_vocab, c.window))
    fails = []
    args.embds = image_embeddings(args)
    args.filler = 0
    for case in args.case:
        parts = case.split(",")
        ids = parse_ids(parts[0])
        f = check_case(m, ids, parts[1], parts[2] if len(parts) > 2 else None, args)
        fails += ["%s, prompt of %d: %s" % (os.path.basename(args.model), len(ids), x) for x in f]
    for f in fails:
        print("FAIL: " + f)
    return 1 if fails else 0


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("model")
    common.add_argument("--kv-f16", action="store_true", help="round K/V to float16 like pollux's cache")
    p = sub.add_parser("logits", parents=[common])
    p.add_argument("--ids", required=True, help="comma-separated ids, or a file of them")
    p.add_argument("--out", required=True)
    p = sub.add_parser("greedy", parents=[common])
    p.add_argument("--ids", required=True)
    p.add_argument("-n", type=int, default=32)
    p = sub.add_parser("check", parents=[common])
    p.add_argument("--case", action="append", required=True,
                   help="IDS,POLLUX_LOGITS[,POLLUX_GEN]: ids (or a file), pollux's logits file, its greedy ids file")
    p.add_argument("-n", type=int, default=32, help="greedy tokens")
    p.add_argument("--max-abs", type=float, help="bound on max |logit difference|")
    p.add_argument("--max-rel-rms", type=float, help="bound on RMS(diff) / RMS(centred ref logits)")
    p.add_argument("--gen-tol", type=float, help="compare greedy ids; a divergence passes only at a "
                   "near-tie no wider than this")
    p.add_argument("--mmproj", help="vision tower for the prompts' images")
    p.add_argument("--image-rgb", action="append", default=[],
                   help="FILE,W,H: raw RGB8 image for the next 'img' of the ids")
    p.add_argument("--no-bidir", action="store_true",
                   help="test hook: causal attention over image rows (the check must then fail)")
    p.add_argument("--mutate-layout", action="store_true",
                   help="test hook: swap the halves of every 32 quantized values (a layout bug)")
    args = ap.parse_args(argv)
    if args.cmd == "check":
        global NO_BIDIR
        ggufnp.MUTATE_LAYOUT = args.mutate_layout
        NO_BIDIR = args.no_bidir
        return check_main(args)
    m = Model(args.model)
    ids = parse_ids(args.ids)
    if args.cmd == "logits":
        lg = forward(m, ids, Cache(m.c.n_layer), args.kv_f16)
        lg.astype("<f4").tofile(args.out)
        return 0
    _, gen, _ = greedy(m, ids, args.n, args.kv_f16)
    print(" ".join(str(t) for t in gen))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (ggufnp.GGUFError, OSError, KeyError) as e:
        print("ref.py: error: %s" % e, file=sys.stderr)
        sys.exit(2)
