/* model.c — loads a gemma3 or llama GGUF: hyper-parameters, weights (pointers
 * into the mapping, every shape and dtype checked), tokenizer, and all the
 * memory a forward pass needs, allocated once here. */
#include "model_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cpu.h"
#include "kernels.h"
#include "px.h"

void px_model_opts_init(px_model_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_threads = 0;
    o->max_batch_tokens = 512;
    o->max_logit_rows = 64;
    o->kv_block_size = 16;
    o->kv_blocks = 0;
    o->n_ctx = 0;
}

/* Reads "<arch>.<suffix>" as u32 into *out; missing is an error unless
 * optional (then *out keeps its default). */
static int get_arch_u32(const px_gguf *g, const char *arch, const char *suffix, int32_t *out,
                        int optional, char *err, size_t errlen) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    uint32_t v;
    int rc = px_gguf_get_u32(g, key, &v, err, errlen);
    if (rc == PX_EINVAL) {
        if (optional) return 0;
        return px_fail(err, errlen, PX_EFORMAT, "missing metadata key '%s'", key);
    }
    if (rc < 0) return rc;
    if (v == 0 || v > (1u << 24))
        return px_fail(err, errlen, PX_EFORMAT, "metadata key '%s': value %u out of range", key, v);
    *out = (int32_t)v;
    return 0;
}

static int get_arch_f32(const px_gguf *g, const char *arch, const char *suffix, float *out,
                        int optional, char *err, size_t errlen) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    float v;
    int rc = px_gguf_get_f32(g, key, &v, err, errlen);
    if (rc == PX_EINVAL) {
        if (optional) return 0;
        return px_fail(err, errlen, PX_EFORMAT, "missing metadata key '%s'", key);
    }
    if (rc < 0) return rc;
    if (!isfinite(v) || v <= 0.0f)
        return px_fail(err, errlen, PX_EFORMAT, "metadata key '%s': value %g out of range", key,
                       (double)v);
    *out = v;
    return 0;
}

static int read_config(const px_gguf *g, px_model_config *c, char *err, size_t errlen) {
    px_gguf_str a;
    if (px_gguf_get_str(g, "general.architecture", &a, err, errlen) < 0)
        return px_fail(err, errlen, PX_EFORMAT, "missing metadata key 'general.architecture'");
    char arch[32];
    if (a.len >= sizeof arch)
        return px_fail(err, errlen, PX_ENOTSUP, "unknown architecture (name too long)");
    memcpy(arch, a.ptr, a.len);
    arch[a.len] = 0;
    memset(c, 0, sizeof *c);
    if (strcmp(arch, "gemma3") == 0) {
        c->arch = PX_ARCH_GEMMA3;
    } else if (strcmp(arch, "llama") == 0) {
        c->arch = PX_ARCH_LLAMA;
    } else {
        return px_fail(err, errlen, PX_ENOTSUP,
                       "unsupported architecture '%s' (general.architecture): pollux runs "
                       "gemma3 and llama",
                       arch);
    }
    int gemma = c->arch == PX_ARCH_GEMMA3;
    int rc;
    if ((rc = get_arch_u32(g, arch, "embedding_length", &c->n_embd, 0, err, errlen)) < 0 ||
        (rc = get_arch_u32(g, arch, "block_count", &c->n_layer, 0, err, errlen)) < 0 ||
        (rc = get_arch_u32(g, arch, "feed_forward_length", &c->n_ff, 0, err, errlen)) < 0 ||
        (rc = get_arch_u32(g, arch, "attention.head_count", &c->n_head, 0, err, errlen)) < 0 ||
        (rc = get_arch_u32(g, arch, "context_length", &c->n_ctx_train, 0, err, errlen)) < 0)
        return rc;
    c->n_head_kv = c->n_head;
    if ((rc = get_arch_u32(g, arch, "attention.head_count_kv", &c->n_head_kv, 1, err, errlen)) < 0)
        return rc;
    c->head_dim = c->n_embd / c->n_head;
    if ((rc = get_arch_u32(g, arch, "attention.key_length", &c->head_dim, 1, err, errlen)) < 0)
        return rc;
    int32_t vlen = c->head_dim;
    if ((rc = get_arch_u32(g, arch, "attention.value_length", &vlen, 1, err, errlen)) < 0)
        return rc;
    if (vlen != c->head_dim)
        return px_fail(err, errlen, PX_ENOTSUP,
                       "%s.attention.value_length %d differs from key_length %d", arch, vlen,
                       c->head_dim);
    if (!gemma) {
        int32_t rdim = c->head_dim;
        if ((rc = get_arch_u32(g, arch, "rope.dimension_count", &rdim, 1, err, errlen)) < 0)
            return rc;
        if (rdim != c->head_dim)
            return px_fail(err, errlen, PX_ENOTSUP,
                           "%s.rope.dimension_count %d: partial rotary embedding unsupported", arch,
                           rdim);
    }
    c->rms_eps = gemma ? 1e-6f : 1e-5f;
    if ((rc = get_arch_f32(g, arch, "attention.layer_norm_rms_epsilon", &c->rms_eps, 1, err,
                           errlen)) < 0)
        return rc;
    c->rope_base = gemma ? 1e6f : 1e4f;
    if ((rc = get_arch_f32(g, arch, "rope.freq_base", &c->rope_base, 1, err, errlen)) < 0)
        return rc;
    c->rope_base_local = 1e4f;
    c->rope_scale = 1.0f;
    px_gguf_str st;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    if (px_gguf_get_str(g, key, &st, NULL, 0) == 0) {
        if (st.len == 6 && memcmp(st.ptr, "linear", 6) == 0) {
            if ((rc = get_arch_f32(g, arch, "rope.scaling.factor", &c->rope_scale, 1, err,
                                   errlen)) < 0)
                return rc;
        } else if (!(st.len == 4 && memcmp(st.ptr, "none", 4) == 0)) {
            return px_fail(err, errlen, PX_ENOTSUP, "%s: unsupported rope scaling '%.*s'", key,
                           (int)PX_MIN(st.len, 32), st.ptr);
        }
    }
    if (gemma) {
        c->sliding_window = 0;
        if ((rc = get_arch_u32(g, arch, "attention.sliding_window", &c->sliding_window, 1, err,
                               errlen)) < 0)
            return rc;
        c->swa_period = c->sliding_window > 0 ? 6 : 0;
    }
    c->attn_scale = 1.0f / sqrtf((float)c->head_dim);
    if (c->n_head % c->n_head_kv != 0)
        return px_fail(err, errlen, PX_EFORMAT,
                       "attention.head_count %d is not a multiple of head_count_kv %d", c->n_head,
                       c->n_head_kv);
    if (c->head_dim % 2 != 0 || c->head_dim > 1024)
        return px_fail(err, errlen, PX_EFORMAT, "head dimension %d unsupported", c->head_dim);
    if (c->n_layer > 1024 || c->n_embd > 65536 || c->n_ff > 1 << 20 || c->n_head > 1024)
        return px_fail(err, errlen, PX_EFORMAT, "hyper-parameters out of range");
    return 0;
}

/* Binds `t` to the tensor `name` and checks its shape (ne0, ne1; ne1 = 0 for
 * a vector) and that its dtype is computable (or F32 for vectors). */
static int bind(const px_gguf *g, px_tensor *t, const char *name, int64_t ne0, int64_t ne1,
                int optional, char *err, size_t errlen) {
    const px_gguf_tensor *gt = px_gguf_find_tensor(g, name);
    memset(t, 0, sizeof *t);
    if (!gt) {
        if (optional) return 0;
        return px_fail(err, errlen, PX_EFORMAT, "missing tensor '%s'", name);
    }
    int want_dims = ne1 ? 2 : 1;
    int64_t n_rows = gt->ne[1] * gt->ne[2] * gt->ne[3];
    if (gt->ne[0] != ne0 || (ne1 ? n_rows != ne1 || gt->ne[2] != 1 || gt->ne[3] != 1 : n_rows != 1))
        return px_fail(err, errlen, PX_EFORMAT,
                       "tensor '%s': shape [%lld, %lld, %lld, %lld], expected %d-D [%lld, %lld]",
                       name, (long long)gt->ne[0], (long long)gt->ne[1], (long long)gt->ne[2],
                       (long long)gt->ne[3], want_dims, (long long)ne0, (long long)(ne1 ? ne1 : 1));
    const px_dtype_info *info = px_dtype_get(gt->type);
    if (!info || !info->name || !info->computable)
        return px_fail(err, errlen, PX_ENOTSUP, "tensor '%s': unsupported type %s", name,
                       info && info->name ? info->name : "?");
    if (!ne1 && gt->type != PX_DTYPE_F32)
        return px_fail(err, errlen, PX_ENOTSUP, "tensor '%s': norm weights must be F32, not %s",
                       name, info->name);
    t->type = gt->type;
    t->ne[0] = gt->ne[0];
    t->ne[1] = ne1 ? ne1 : 1;
    t->ne[2] = t->ne[3] = 1;
    t->row_bytes = px_dtype_row_size(gt->type, gt->ne[0]);
    t->data = gt->data;
    t->name = name; /* overwritten by the caller with a stable string if needed */
    return 0;
}

static int bind_layer(const px_gguf *g, px_model *m, int il, char *err, size_t errlen) {
    const px_model_config *c = &m->cfg;
    px_layer *L = &m->layers[il];
    int gemma = c->arch == PX_ARCH_GEMMA3;
    int64_t q_dim = (int64_t)c->n_head * c->head_dim, kv_dim = (int64_t)c->n_head_kv * c->head_dim;
    char name[96];
    int rc;
#define BIND(field, suffix, ne0, ne1, opt)                                                         \
    do {                                                                                           \
        snprintf(name, sizeof name, "blk.%d.%s.weight", il, suffix);                               \
        if ((rc = bind(g, &L->field, name, ne0, ne1, opt, err, errlen)) < 0) return rc;            \
        L->field.name = NULL;                                                                      \
    } while (0)
    BIND(attn_norm, "attn_norm", c->n_embd, 0, 0);
    BIND(wq, "attn_q", c->n_embd, q_dim, 0);
    BIND(wk, "attn_k", c->n_embd, kv_dim, 0);
    BIND(wv, "attn_v", c->n_embd, kv_dim, 0);
    BIND(wo, "attn_output", q_dim, c->n_embd, 0);
    BIND(ffn_norm, "ffn_norm", c->n_embd, 0, 0);
    BIND(w_gate, "ffn_gate", c->n_embd, c->n_ff, 0);
    BIND(w_up, "ffn_up", c->n_embd, c->n_ff, 0);
    BIND(w_down, "ffn_down", c->n_ff, c->n_embd, 0);
    if (gemma) {
        BIND(q_norm, "attn_q_norm", c->head_dim, 0, 0);
        BIND(k_norm, "attn_k_norm", c->head_dim, 0, 0);
        BIND(post_attn_norm, "post_attention_norm", c->n_embd, 0, 0);
        BIND(post_ffn_norm, "post_ffw_norm", c->n_embd, 0, 0);
        L->is_local = c->swa_period > 0 && (il + 1) % c->swa_period != 0;
    }
#undef BIND
    return 0;
}

static void *xcalloc(size_t n, size_t size) {
    if (n == 0) n = 1;
    return calloc(n, size);
}

static int alloc_run_state(px_model *m) {
    const px_model_config *c = &m->cfg;
    px_run_state *rs = &m->rs;
    size_t T = (size_t)m->max_batch_tokens;
    size_t q_dim = (size_t)c->n_head * c->head_dim, kv_dim = (size_t)c->n_head_kv * c->head_dim;
    rs->x = xcalloc(T * c->n_embd, sizeof(float));
    rs->xn = xcalloc(T * PX_MAX((size_t)c->n_embd, q_dim), sizeof(float));
    rs->q = xcalloc(T * q_dim, sizeof(float));
    rs->k = xcalloc(T * kv_dim, sizeof(float));
    rs->v = xcalloc(T * kv_dim, sizeof(float));
    rs->att = xcalloc(T * q_dim, sizeof(float));
    rs->gate = xcalloc(T * c->n_ff, sizeof(float));
    rs->up = xcalloc(T * c->n_ff, sizeof(float));
    rs->rope_g = xcalloc(T * c->head_dim, sizeof(float));
    rs->rope_l = xcalloc(T * c->head_dim, sizeof(float));
    rs->xl = xcalloc((size_t)m->max_logit_rows * c->n_embd, sizeof(float));
    rs->scores =
        xcalloc((size_t)m->n_threads * PX__ATTN_Q * (size_t)(m->n_ctx + 16), sizeof(float));
    rs->k16 = xcalloc(kv_dim, sizeof(px_f16));
    return rs->x && rs->xn && rs->q && rs->k && rs->v && rs->att && rs->gate && rs->up &&
                   rs->rope_g && rs->rope_l && rs->xl && rs->scores && rs->k16
               ? 0
               : PX_ENOMEM;
}

static void free_run_state(px_run_state *rs) {
    free(rs->x);
    free(rs->xn);
    free(rs->q);
    free(rs->k);
    free(rs->v);
    free(rs->att);
    free(rs->gate);
    free(rs->up);
    free(rs->rope_g);
    free(rs->rope_l);
    free(rs->xl);
    free(rs->scores);
    free(rs->k16);
}

static float *make_inv_freq(int head_dim, float base, float scale) {
    float *f = malloc(sizeof(float) * (size_t)(head_dim / 2));
    if (!f) return NULL;
    for (int i = 0; i < head_dim / 2; i++)
        f[i] = (float)(pow((double)base, -2.0 * i / head_dim) / (double)scale);
    return f;
}

/* Sizes the two KV pools (see model.h) and allocates the arena. */
static int alloc_kv(px_model *m, const px_model_opts *o, char *err, size_t errlen) {
    const px_model_config *c = &m->cfg;
    const int bs = m->kv_block_size;
    m->n_local_layers = 0;
    for (int il = 0; il < c->n_layer; il++)
        m->n_local_layers += m->layers[il].is_local != 0;
    const int n_loc = m->n_local_layers, n_glob = c->n_layer - n_loc;
    /* Bytes of one block in each pool. */
    const int64_t lb = (int64_t)(2 * m->kv_block_elems * sizeof(px_f16));
    const int64_t bg = lb * n_glob, bl = lb * n_loc;
    int64_t g, l;
    if (o->kv_blocks > 0) {
        g = o->kv_blocks;
        l = o->kv_blocks_local > 0 ? o->kv_blocks_local : g;
    } else if (o->kv_cache_mb > 0) {
        int64_t budget = o->kv_cache_mb << 20;
        g = l = budget / (bg + bl); /* equal pools */
        if (n_loc > 0) {
            int64_t seqs = o->kv_local_seqs > 0 ? o->kv_local_seqs : m->max_logit_rows;
            int64_t want = o->kv_blocks_local > 0 ? o->kv_blocks_local
                                                  : seqs * ((c->sliding_window - 1) / bs + 3) +
                                                        (m->max_batch_tokens + bs - 1) / bs;
            if (want < l) {
                l = want;
                g = n_glob > 0 ? (budget - l * bl) / bg : l;
            }
        }
    } else {
        g = l = (m->n_ctx + bs - 1) / bs;
    }
    if (n_loc == 0) l = 0;
    if (n_glob == 0) g = PX_MAX(g, l); /* every layer local: the global table still indexes */
    if (g <= 0 || (n_loc > 0 && l <= 0))
        return px_fail(err, errlen, PX_EINVAL,
                       "a KV cache of %lld MiB holds no block of this model",
                       (long long)o->kv_cache_mb);
    m->kv_blocks = g;
    m->kv_blocks_local = l;
    size_t off = 0;
    for (int il = 0; il < c->n_layer; il++) {
        px_layer *L = &m->layers[il];
        L->kv_n_blocks = L->is_local ? l : g;
        L->kv_off = off;
        size_t n;
        if (__builtin_mul_overflow(2 * m->kv_block_elems, (size_t)L->kv_n_blocks, &n) ||
            __builtin_add_overflow(off, n, &off) || off > ((size_t)1 << 40) / sizeof(px_f16))
            return px_fail(err, errlen, PX_ETOOBIG, "KV cache of %lld + %lld blocks is too large",
                           (long long)g, (long long)l);
    }
    /* + 8: a key vector's lanes past the last block's tokens read on (kernels.h) */
    m->kv = calloc(off + 8, sizeof(px_f16));
    if (!m->kv)
        return px_fail(err, errlen, PX_ENOMEM, "out of memory for the KV cache (%zu MiB)",
                       off * sizeof(px_f16) >> 20);
    return 0;
}

/* ---- repacking (px_model_opts.no_repack) ----------------------------------- */

enum { REPACK_PIECE_GROUPS = 64 };

typedef struct repack_job {
    px_tensor **t; /* the tensors to pack, still in the row layout */
    char **dst;
    int64_t *piece0; /* piece0[i]: first piece of t[i]; piece0[n]: all */
    int n;
} repack_job;

/* Worker ith packs pieces ith, ith + nth, ...: up to REPACK_PIECE_GROUPS
 * groups of 16 rows of one tensor each. */
static void job_repack(void *ctx, int ith, int nth) {
    repack_job *j = ctx;
    int ti = 0;
    for (int64_t k = ith; k < j->piece0[j->n]; k += nth) {
        while (k >= j->piece0[ti + 1])
            ti++;
        const px_tensor *t = j->t[ti];
        int64_t g0 = (k - j->piece0[ti]) * REPACK_PIECE_GROUPS;
        int64_t g1 = PX_MIN(g0 + REPACK_PIECE_GROUPS, t->ne[1] / 16);
        size_t off = (size_t)g0 * 16 * t->row_bytes;
        px__x16_pack(t->type, (const char *)t->data + off, t->row_bytes, t->ne[0], (g1 - g0) * 16,
                     j->dst[ti] + off);
    }
}

/* Gives the file's pages under [p, p + n) back (whole pages inside only):
 * the repacked copy replaces them; a tied embedding reads its rows from the
 * file again as it needs them. Only for px_gguf_open's private read-only
 * file mapping: on anonymous memory MADV_DONTNEED would zero the data. */
static void drop_pages(const void *p, size_t n) {
    long ps = sysconf(_SC_PAGESIZE);
    if (ps <= 0) return;
    uintptr_t a = ((uintptr_t)p + (uintptr_t)ps - 1) & ~((uintptr_t)ps - 1);
    uintptr_t b = ((uintptr_t)p + n) & ~((uintptr_t)ps - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

static int repackable(const px_tensor *t) {
    return t->data && px__x16_type(t->type) && px__kernels_get()->x16[t->type] &&
           t->layout == PX_LAYOUT_ROWS && t->ne[1] >= 16 && t->ne[1] % 16 == 0 && t->ne[2] == 1 &&
           t->ne[3] == 1;
}

/* Repacks the Q4_0 / Q5_0 / Q8_0 / Q4_K / Q5_K / Q6_K matrices with a multiple of 16 rows into
 * the X16 layout, where the kernel set has a kernel for it, into one allocation
 * (2 MiB aligned, transparent huge pages asked for: the weights are
 * streamed every step, and 4 KiB pages cost a TLB miss each). */
static int repack_weights(px_model *m, char *err, size_t errlen) {
    const int cap = m->cfg.n_layer * 7 + 1;
    repack_job j = {.t = calloc((size_t)cap, sizeof(px_tensor *)),
                    .dst = calloc((size_t)cap, sizeof(char *)),
                    .piece0 = calloc((size_t)cap + 1, sizeof(int64_t))};
    int rc = 0;
    if (!j.t || !j.dst || !j.piece0) {
        rc = px_fail(err, errlen, PX_ENOMEM, "out of memory");
        goto out;
    }
    for (int il = 0; il < m->cfg.n_layer; il++) {
        px_layer *L = &m->layers[il];
        px_tensor *ts[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
            if (repackable(ts[i])) j.t[j.n++] = ts[i];
    }
    if (repackable(&m->output)) j.t[j.n++] = &m->output;
    if (j.n == 0) goto out;
    size_t total = 0;
    for (int i = 0; i < j.n; i++) {
        total += (j.t[i]->row_bytes * (size_t)j.t[i]->ne[1] + 63) / 64 * 64;
        j.piece0[i + 1] =
            j.piece0[i] + (j.t[i]->ne[1] / 16 + REPACK_PIECE_GROUPS - 1) / REPACK_PIECE_GROUPS;
    }
    const size_t huge = (size_t)2 << 20;
    total = (total + huge - 1) / huge * huge;
    void *buf = NULL;
    if (posix_memalign(&buf, huge, total) != 0) {
        rc = px_fail(err, errlen, PX_ENOMEM,
                     "out of memory for the repacked weights (%zu MiB; without repacking "
                     "(repack_weights = false) they are read from the file's pages)",
                     total >> 20);
        goto out;
    }
#ifdef MADV_HUGEPAGE
    madvise(buf, total, MADV_HUGEPAGE); /* a hint: no error if THP is off */
#endif
    size_t off = 0;
    for (int i = 0; i < j.n; i++) {
        j.dst[i] = (char *)buf + off;
        off += (j.t[i]->row_bytes * (size_t)j.t[i]->ne[1] + 63) / 64 * 64;
    }
    px_pool_run(m->pool, job_repack, &j);
    for (int i = 0; i < j.n; i++) {
        drop_pages(j.t[i]->data, j.t[i]->row_bytes * (size_t)j.t[i]->ne[1]);
        j.t[i]->data = j.dst[i];
        j.t[i]->layout = PX_LAYOUT_X16;
    }
    m->packed = buf;
    m->packed_bytes = total;
out:
    free(j.t);
    free(j.dst);
    free(j.piece0);
    return rc;
}

px_model *px_model_load(const char *path, const px_model_opts *opts_in, char *err, size_t errlen) {
    px_model_opts opts;
    if (opts_in)
        opts = *opts_in;
    else
        px_model_opts_init(&opts);
    if (opts.max_batch_tokens <= 0 || opts.max_batch_tokens > 65536 || opts.max_logit_rows <= 0 ||
        opts.max_logit_rows > opts.max_batch_tokens || opts.kv_block_size <= 0 ||
        opts.kv_block_size > 1024 || opts.kv_blocks < 0 || opts.kv_cache_mb < 0 ||
        opts.kv_cache_mb > (1 << 24) || opts.n_ctx < 0) {
        px_fail(err, errlen, PX_EINVAL, "invalid model options");
        return NULL;
    }
    px_model *m = calloc(1, sizeof *m);
    if (!m) {
        px_fail(err, errlen, PX_ENOMEM, "out of memory");
        return NULL;
    }
    m->gguf = px_gguf_open(path, err, errlen);
    if (!m->gguf) goto fail;
    const px_gguf *g = m->gguf;
    px_model_config *c = &m->cfg;
    if (read_config(g, c, err, errlen) < 0) goto fail;

    px_gguf_str nm;
    if (px_gguf_get_str(g, "general.name", &nm, NULL, 0) == 0 && nm.len > 0) {
        snprintf(m->name, sizeof m->name, "%.*s", (int)PX_MIN(nm.len, sizeof m->name - 1), nm.ptr);
    } else {
        const char *base = strrchr(path, '/');
        snprintf(m->name, sizeof m->name, "%s", base ? base + 1 : path);
    }

    px_gguf_str tmpl;
    if (px_gguf_get_str(g, "tokenizer.chat_template", &tmpl, NULL, 0) == 0 && tmpl.len < (1u << 20))
        m->chat_template = strndup(tmpl.ptr, tmpl.len);
    m->tok = px_tokenizer_create(g, err, errlen);
    if (!m->tok) goto fail;
    c->n_vocab = px_tokenizer_n_vocab(m->tok);

    if (bind(g, &m->tok_embd, "token_embd.weight", c->n_embd, c->n_vocab, 0, err, errlen) < 0 ||
        bind(g, &m->out_norm, "output_norm.weight", c->n_embd, 0, 0, err, errlen) < 0 ||
        bind(g, &m->output, "output.weight", c->n_embd, c->n_vocab, 1, err, errlen) < 0)
        goto fail;
    m->tok_embd.name = "token_embd.weight";
    c->tied_output = m->output.data == NULL;
    if (c->tied_output) m->output = m->tok_embd;
    m->layers = calloc((size_t)c->n_layer, sizeof *m->layers);
    if (!m->layers) {
        px_fail(err, errlen, PX_ENOMEM, "out of memory");
        goto fail;
    }
    for (int il = 0; il < c->n_layer; il++)
        if (bind_layer(g, m, il, err, errlen) < 0) goto fail;

    m->n_ctx = opts.n_ctx > 0 ? PX_MIN(opts.n_ctx, c->n_ctx_train) : c->n_ctx_train;
    m->max_batch_tokens = opts.max_batch_tokens;
    m->max_logit_rows = opts.max_logit_rows;
    m->kv_block_size = opts.kv_block_size;
    m->kv_block_elems = (size_t)m->kv_block_size * c->n_head_kv * c->head_dim;
    if (alloc_kv(m, &opts, err, errlen) < 0) goto fail;
    m->pool = px_pool_create(opts.n_threads);
    if (!m->pool) {
        px_fail(err, errlen, PX_ENOMEM, "out of memory");
        goto fail;
    }
    m->n_threads = px_pool_size(m->pool);
    if (!opts.no_repack && repack_weights(m, err, errlen) < 0) goto fail;
    int64_t max_in =
        PX_MAX((int64_t)c->n_ff, PX_MAX((int64_t)c->n_embd, (int64_t)c->n_head * c->head_dim));
    m->mm = px_matmul_ctx_create(m->pool, m->max_batch_tokens, max_in);
    m->inv_freq_g = make_inv_freq(c->head_dim, c->rope_base, c->rope_scale);
    m->inv_freq_l = make_inv_freq(c->head_dim, c->rope_base_local, 1.0f);
    if (!m->mm || !m->inv_freq_g || !m->inv_freq_l || alloc_run_state(m) < 0) {
        px_fail(err, errlen, PX_ENOMEM, "out of memory for activations");
        goto fail;
    }
    return m;
fail:
    px_model_free(m);
    return NULL;
}

void px_model_free(px_model *m) {
    if (!m) return;
    free_run_state(&m->rs);
    free(m->inv_freq_g);
    free(m->inv_freq_l);
    px_matmul_ctx_destroy(m->mm);
    px_pool_destroy(m->pool);
    free(m->kv);
    free(m->packed);
    free(m->layers);
    px_tokenizer_destroy(m->tok);
    free(m->chat_template);
    px_gguf_close(m->gguf);
    free(m);
}

const px_model_config *px_model_config_get(const px_model *m) {
    return &m->cfg;
}
const px_tokenizer *px_model_tokenizer(const px_model *m) {
    return m->tok;
}
int px_model_n_ctx(const px_model *m) {
    return m->n_ctx;
}
int px_model_kv_block_size(const px_model *m) {
    return m->kv_block_size;
}
int64_t px_model_kv_blocks(const px_model *m) {
    return m->kv_blocks;
}
int64_t px_model_kv_blocks_local(const px_model *m) {
    return m->kv_blocks_local;
}
int64_t px_model_kv_block_bytes(const px_model *m, int local) {
    int n = local ? m->n_local_layers : m->cfg.n_layer - m->n_local_layers;
    return (int64_t)(2 * m->kv_block_elems * sizeof(px_f16)) * n;
}
int px_model_max_batch_tokens(const px_model *m) {
    return m->max_batch_tokens;
}
int px_model_max_logit_rows(const px_model *m) {
    return m->max_logit_rows;
}
const char *px_model_chat_template(const px_model *m) {
    return m->chat_template;
}
px_pool *px_model_pool(px_model *m) {
    return m->pool;
}

const char *px_model_name(const px_model *m) {
    return m->name;
}

static int64_t tensor_bytes(const px_tensor *t) {
    return (int64_t)t->row_bytes * t->ne[1];
}

int64_t px_model_weight_bytes_per_token(const px_model *m) {
    int64_t b = tensor_bytes(&m->output) + (int64_t)m->tok_embd.row_bytes;
    for (int il = 0; il < m->cfg.n_layer; il++) {
        const px_layer *L = &m->layers[il];
        b += tensor_bytes(&L->wq) + tensor_bytes(&L->wk) + tensor_bytes(&L->wv) +
             tensor_bytes(&L->wo) + tensor_bytes(&L->w_gate) + tensor_bytes(&L->w_up) +
             tensor_bytes(&L->w_down);
    }
    return b;
}

int64_t px_model_repacked_bytes(const px_model *m) {
    return (int64_t)m->packed_bytes;
}

/* Copies block src to dst in the layers of one pool. */
static void kv_copy_pool(px_model *m, int local, int32_t dst, int32_t src) {
    int64_t n = local ? m->kv_blocks_local : m->kv_blocks;
    if (dst == src || dst < 0 || src < 0 || dst >= n || src >= n) return;
    for (int il = 0; il < m->cfg.n_layer; il++) {
        if ((m->layers[il].is_local != 0) != (local != 0)) continue;
        for (int w = 0; w < 2; w++)
            memcpy(px__kv_block(m, il, w, dst), px__kv_block(m, il, w, src),
                   m->kv_block_elems * sizeof(px_f16));
    }
}

void px_model_kv_copy(px_model *m, int32_t dst, int32_t src) {
    kv_copy_pool(m, 0, dst, src);
}

void px_model_kv_copy_local(px_model *m, int32_t dst, int32_t src) {
    kv_copy_pool(m, 1, dst, src);
}
