/* vision.c — the Gemma 3 vision tower: loading and checking the mmproj GGUF,
 * image preprocessing, and the encoder forward pass.
 *
 * File layout (llama.cpp's converter, projector type "gemma3"): ggml ne
 * order, ne[0] innermost.
 *   v.patch_embd.weight    [p, p, 3, n_embd]  conv kernel; one output
 *                          channel's row is (c, y, x) with x fastest
 *   v.patch_embd.bias      [n_embd]
 *   v.position_embd.weight [n_embd, n_patch]  n_patch = (S/p)^2, row-major
 *                          patches (y * grid + x)
 *   v.blk.N.attn_{q,k,v,out}.{weight [n_embd, n_embd], bias [n_embd]}
 *   v.blk.N.ln{1,2}.{weight,bias} [n_embd]      LayerNorm before attn / MLP
 *   v.blk.N.ffn_up   [n_embd, n_ff] + bias [n_ff]    (SigLIP fc1)
 *   v.blk.N.ffn_down [n_ff, n_embd] + bias [n_embd]  (fc2)
 *   v.post_ln.{weight,bias} [n_embd]
 *   mm.soft_emb_norm.weight [n_embd]  stored as (1 + w): plain multiply
 *   mm.input_projection.weight [n_embd_out, n_embd]: HF's (vision, text)
 *                          matrix NOT transposed (y = x · W), so we
 *                          transpose it once at load.
 * Older converters swapped ffn_up/ffn_down names; a swapped pair (by shape)
 * is accepted and swapped back, as llama.cpp does.
 * Graph: patches·Wᵀ + b + pos; per block x += attn(LN1(x)), x += MLP(LN2(x))
 * with GELU (tanh form, ggml_gelu) and attention scale 1/sqrt(head_dim), no
 * mask; post-LN; k x k average pooling of the grid (k from
 * clip.vision.projector.scale_factor, default 4: 64x64 -> 16x16); RMSNorm
 * with soft_emb_norm; projection. */
#include "vision.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "matmul.h"
#include "px.h"
#include "quant.h"

/* Query rows per attention task: scores scratch is QBLK * n_patch floats
 * per worker. */
#define QBLK 128
/* Heads per attention step of split encoding (its longest phase). */
#define HEADS_PER_STEP 4
/* A matmul task: TILE_ROWS weight rows (dequantized once per task) times
 * TOK_BLK tokens, sizes fixed so every output element comes from the same
 * sgemm shape whatever the thread count. Large enough that OpenBLAS's
 * packing of both operands stays a small part of the call; TOK_BLK small
 * so split encoding can step by 256 rows (1024 was no faster at 4B dims). */
#define TILE_ROWS 256
#define TOK_BLK 256
/* Split encoding's chunks of patch rows are a multiple of this (a multiple
 * of TOK_BLK and of QBLK), so a chunk's sgemm calls and attention tasks are
 * exactly those of the unsplit pass over the same rows: same bits. */
#define CHUNK_ALIGN 256
_Static_assert(CHUNK_ALIGN % TOK_BLK == 0 && CHUNK_ALIGN % QBLK == 0, "chunk alignment");

/* Split encoding's phases, in order: the patch embedding (its own steps only
 * when step_rows > 0), per block QKV (LN1, Q/K/V products and biases),
 * ATTN (needs every row's QKV) and MLP (output projection, residual, LN2,
 * MLP, residual), then FINISH (pooling and projection, one step). */
enum phase { PH_IDLE, PH_EMBED, PH_QKV, PH_ATTN, PH_MLP, PH_FINISH };

typedef struct vlayer {
    px_tensor q, k, v, o, up, down; /* (n_out, n_in) weights in the mapping */
    float *bq, *bk, *bv, *bo;       /* (n_embd) */
    float *bup, *bdown;             /* (n_ff), (n_embd) */
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
} vlayer;

struct px_vision {
    px_gguf *g;
    px_pool *pool;
    float *tiles; /* (nth, TILE_ROWS, max_in) dequantized weight rows */
    int64_t max_in;
    px_vision_config cfg;
    int grid;        /* patches per side */
    int n_patch;     /* grid * grid */
    int pool_k;      /* average-pool factor */
    int head_dim;    /* n_embd / n_head */
    int kdim;        /* 3 * patch * patch */
    px_tensor patch; /* (n_embd, kdim) */
    float *patch_b;  /* (n_embd) */
    float *pos;      /* (n_patch, n_embd) */
    float *post_w, *post_b, *soft_w;
    float *proj_t;  /* (n_embd_out, n_embd), transposed input_projection */
    px_tensor proj; /* F32 view of proj_t */
    vlayer *layers;
    /* run state (n_patch rows unless noted) */
    float *x, *xn, *q, *k, *v, *att; /* (n_patch, n_embd) */
    float *ff;                       /* (n_patch, n_ff) */
    float *cols;                     /* (n_patch, kdim) im2col */
    float *scores;                   /* (nth, QBLK, n_patch) */
    float *pooled;                   /* (n_tokens_out, n_embd) */
    /* split encoding */
    int step_rows; /* rows per chunk (multiple of CHUNK_ALIGN), 0: a block per step */
    int run_rows;  /* step_rows latched by begin for the image in flight */
    int phase;     /* next phase (enum phase), PH_IDLE when no image is in flight */
    int layer;     /* block of the next phase */
    int row;       /* first patch row of the next chunk */
    int head;      /* first head of the next attention step */
    float **vecs;  /* every owned float vector, freed at end */
    int n_vecs;
};

const px_vision_config *px_vision_config_get(const px_vision *v) {
    return &v->cfg;
}

void px_vision_free(px_vision *v) {
    if (!v) return;
    for (int i = 0; i < v->n_vecs; i++)
        free(v->vecs[i]);
    free(v->vecs);
    free(v->layers);
    free(v->proj_t);
    free(v->x);
    free(v->xn);
    free(v->q);
    free(v->k);
    free(v->v);
    free(v->att);
    free(v->ff);
    free(v->cols);
    free(v->scores);
    free(v->pooled);
    free(v->tiles);
    px_gguf_close(v->g);
    free(v);
}

/* ---- loading ------------------------------------------------------------- */

static int get_i32(const px_gguf *g, const char *key, int32_t *out, char *err, size_t errlen) {
    int64_t x;
    int rc = px_gguf_get_i64(g, key, &x, err, errlen);
    if (rc == PX_EINVAL) return px_fail(err, errlen, PX_EFORMAT, "mmproj: missing key %s", key);
    if (rc < 0) return rc;
    if (x <= 0 || x > (1 << 20))
        return px_fail(err, errlen, PX_EFORMAT, "mmproj: %s = %lld out of range", key,
                       (long long)x);
    *out = (int32_t)x;
    return 0;
}

static int get_vec3(const px_gguf *g, const char *key, float *out, char *err, size_t errlen) {
    px_gguf_arr a;
    int rc = px_gguf_get_arr(g, key, &a, err, errlen);
    if (rc == PX_EINVAL) return px_fail(err, errlen, PX_EFORMAT, "mmproj: missing key %s", key);
    if (rc < 0) return rc;
    if (a.type != PX_GGUF_FLOAT32 || a.n != 3)
        return px_fail(err, errlen, PX_EFORMAT, "mmproj: %s must be 3 float32 values", key);
    memcpy(out, a.data, 3 * sizeof(float));
    return 0;
}

/* The tensor `name` with exactly ne[0..n_dims) (trailing dims 1) and a dtype
 * we can compute with. */
static const px_gguf_tensor *want(const px_gguf *g, const char *name, int n_dims, const int64_t *ne,
                                  char *err, size_t errlen) {
    const px_gguf_tensor *t = px_gguf_find_tensor(g, name);
    if (!t) {
        px_fail(err, errlen, PX_EFORMAT, "mmproj: missing tensor %s", name);
        return NULL;
    }
    for (int i = 0; i < 4; i++) {
        int64_t e = i < n_dims ? ne[i] : 1;
        if (t->ne[i] != e) {
            px_fail(err, errlen, PX_EFORMAT,
                    "mmproj: tensor %s has shape [%lld, %lld, %lld, %lld], expected "
                    "[%lld, %lld, %lld, %lld]",
                    name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                    (long long)t->ne[3], (long long)ne[0], (long long)(n_dims > 1 ? ne[1] : 1),
                    (long long)(n_dims > 2 ? ne[2] : 1), (long long)(n_dims > 3 ? ne[3] : 1));
            return NULL;
        }
    }
    const px_dtype_info *info = px_dtype_get(t->type);
    if (!info || !info->name || !info->computable || !px_dtype_row_size(t->type, t->ne[0])) {
        px_fail(err, errlen, PX_ENOTSUP, "mmproj: tensor %s has unsupported type %s", name,
                info && info->name ? info->name : "unknown");
        return NULL;
    }
    return t;
}

/* A weight matrix (n_out, n_in) as a px_tensor borrowing the mapping. */
static int want_mat(const px_gguf *g, const char *name, int64_t n_in, int64_t n_out, px_tensor *out,
                    char *err, size_t errlen) {
    int64_t ne[2] = {n_in, n_out};
    const px_gguf_tensor *t = want(g, name, 2, ne, err, errlen);
    if (!t) return PX_EFORMAT;
    *out = (px_tensor){.type = t->type,
                       .ne = {n_in, n_out, 1, 1},
                       .row_bytes = px_dtype_row_size(t->type, n_in),
                       .data = t->data,
                       .name = t->name.ptr};
    return 0;
}

/* Dequantizes a whole tensor into a new buffer owned by v. */
static float *own_f32(px_vision *v, const px_gguf_tensor *t, char *err, size_t errlen) {
    int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
    float *dst = malloc(sizeof(float) * (size_t)(t->ne[0] * rows));
    float **vv = dst ? realloc(v->vecs, sizeof(float *) * (size_t)(v->n_vecs + 1)) : NULL;
    if (!vv) {
        free(dst);
        px_fail(err, errlen, PX_ENOMEM, "mmproj: out of memory");
        return NULL;
    }
    v->vecs = vv;
    v->vecs[v->n_vecs++] = dst;
    size_t rb = px_dtype_row_size(t->type, t->ne[0]);
    for (int64_t r = 0; r < rows; r++) {
        if (px_dequantize_row(t->type, (const char *)t->data + (size_t)r * rb, dst + r * t->ne[0],
                              t->ne[0]) < 0) {
            px_fail(err, errlen, PX_ENOTSUP, "mmproj: cannot dequantize %.*s", (int)t->name.len,
                    t->name.ptr);
            return NULL;
        }
    }
    return dst;
}

static float *want_vec(px_vision *v, const char *name, int64_t n, char *err, size_t errlen) {
    const px_gguf_tensor *t = want(v->g, name, 1, &n, err, errlen);
    return t ? own_f32(v, t, err, errlen) : NULL;
}

static int load_config(px_vision *v, char *err, size_t errlen) {
    const px_gguf *g = v->g;
    px_vision_config *c = &v->cfg;
    px_gguf_str s;
    int rc = px_gguf_get_str(g, "clip.projector_type", &s, err, errlen);
    if (rc == PX_EINVAL)
        return px_fail(err, errlen, PX_EFORMAT, "mmproj: missing key clip.projector_type");
    if (rc < 0) return rc;
    if (s.len != 6 || memcmp(s.ptr, "gemma3", 6) != 0)
        return px_fail(err, errlen, PX_ENOTSUP,
                       "mmproj: clip.projector_type is '%.*s', only 'gemma3' is supported",
                       (int)PX_MIN(s.len, 64), s.ptr);
    bool has = false;
    rc = px_gguf_get_bool(g, "clip.has_vision_encoder", &has, err, errlen);
    if (rc == PX_EINVAL || (rc == 0 && !has))
        return px_fail(err, errlen, PX_EFORMAT, "mmproj: clip.has_vision_encoder is not true");
    if (rc < 0) return rc;
    struct {
        const char *key;
        int32_t *dst;
    } ints[] = {
        {"clip.vision.image_size", &c->image_size},
        {"clip.vision.patch_size", &c->patch_size},
        {"clip.vision.embedding_length", &c->n_embd},
        {"clip.vision.feed_forward_length", &c->n_ff},
        {"clip.vision.block_count", &c->n_layer},
        {"clip.vision.attention.head_count", &c->n_head},
        {"clip.vision.projection_dim", &c->n_embd_out},
    };
    for (size_t i = 0; i < PX_ARRAY_LEN(ints); i++)
        if ((rc = get_i32(g, ints[i].key, ints[i].dst, err, errlen)) < 0) return rc;
    rc = px_gguf_get_f32(g, "clip.vision.attention.layer_norm_epsilon", &c->eps, err, errlen);
    if (rc == PX_EINVAL)
        c->eps = 1e-6f; /* HF's default for SigLIP */
    else if (rc < 0)
        return rc;
    if (!(c->eps > 0 && c->eps < 1))
        return px_fail(err, errlen, PX_EFORMAT,
                       "mmproj: clip.vision.attention.layer_norm_epsilon out of range");
    if ((rc = get_vec3(g, "clip.vision.image_mean", c->mean, err, errlen)) < 0) return rc;
    if ((rc = get_vec3(g, "clip.vision.image_std", c->std, err, errlen)) < 0) return rc;
    for (int i = 0; i < 3; i++)
        if (!(c->std[i] > 0) || !isfinite(c->mean[i]))
            return px_fail(err, errlen, PX_EFORMAT, "mmproj: bad clip.vision.image_mean/std");
    int32_t k = 4; /* the converter writes the key only when it is not 4 */
    rc = get_i32(g, "clip.vision.projector.scale_factor", &k, err, errlen);
    if (rc < 0 && px_gguf_find_key(g, "clip.vision.projector.scale_factor") >= 0) return rc;
    if (c->image_size % c->patch_size != 0)
        return px_fail(err, errlen, PX_EFORMAT,
                       "mmproj: clip.vision.image_size %d is not a multiple of patch_size %d",
                       c->image_size, c->patch_size);
    v->grid = c->image_size / c->patch_size;
    if (v->grid % k != 0)
        return px_fail(err, errlen, PX_EFORMAT,
                       "mmproj: patch grid %d not divisible by the pooling factor %d", v->grid, k);
    if (c->n_embd % c->n_head != 0)
        return px_fail(err, errlen, PX_EFORMAT,
                       "mmproj: embedding_length %d not a multiple of head_count %d", c->n_embd,
                       c->n_head);
    if ((int64_t)v->grid * v->grid > 16384)
        return px_fail(err, errlen, PX_ETOOBIG, "mmproj: %d x %d patches is too many", v->grid,
                       v->grid);
    v->pool_k = k;
    v->n_patch = v->grid * v->grid;
    v->head_dim = c->n_embd / c->n_head;
    v->kdim = 3 * c->patch_size * c->patch_size;
    c->n_tokens_out = (v->grid / k) * (v->grid / k);
    return 0;
}

static int load_layer(px_vision *v, int il, char *err, size_t errlen) {
    const px_vision_config *c = &v->cfg;
    vlayer *L = &v->layers[il];
    char n[96];
    int64_t E = c->n_embd, F = c->n_ff;
#define NAME(s) (snprintf(n, sizeof n, "v.blk.%d.%s", il, s), n)
    struct {
        const char *s;
        px_tensor *t;
    } sq[] = {{"attn_q.weight", &L->q},
              {"attn_k.weight", &L->k},
              {"attn_v.weight", &L->v},
              {"attn_out.weight", &L->o}};
    for (size_t i = 0; i < PX_ARRAY_LEN(sq); i++)
        if (want_mat(v->g, NAME(sq[i].s), E, E, sq[i].t, err, errlen) < 0) return PX_EFORMAT;
    /* Legacy files name fc1 ffn_down and fc2 ffn_up: tell by shape. */
    const char *up = "ffn_up", *down = "ffn_down";
    const px_gguf_tensor *tu = px_gguf_find_tensor(v->g, NAME("ffn_up.weight"));
    if (tu && tu->ne[0] == F && tu->ne[1] == E && F != E) {
        up = "ffn_down";
        down = "ffn_up";
    }
    char wn[64];
    snprintf(wn, sizeof wn, "%s.weight", up);
    if (want_mat(v->g, NAME(wn), E, F, &L->up, err, errlen) < 0) return PX_EFORMAT;
    snprintf(wn, sizeof wn, "%s.weight", down);
    if (want_mat(v->g, NAME(wn), F, E, &L->down, err, errlen) < 0) return PX_EFORMAT;
    struct {
        const char *s;
        float **dst;
        int64_t len;
    } vecs[] = {{"attn_q.bias", &L->bq, E},   {"attn_k.bias", &L->bk, E},
                {"attn_v.bias", &L->bv, E},   {"attn_out.bias", &L->bo, E},
                {"ln1.weight", &L->ln1_w, E}, {"ln1.bias", &L->ln1_b, E},
                {"ln2.weight", &L->ln2_w, E}, {"ln2.bias", &L->ln2_b, E},
                {NULL, &L->bup, F},           {NULL, &L->bdown, E}};
    for (size_t i = 0; i < PX_ARRAY_LEN(vecs); i++) {
        const char *s = vecs[i].s;
        if (!s) {
            snprintf(wn, sizeof wn, "%s.bias", i == PX_ARRAY_LEN(vecs) - 2 ? up : down);
            s = wn;
        }
        if (!(*vecs[i].dst = want_vec(v, NAME(s), vecs[i].len, err, errlen))) return PX_EFORMAT;
    }
#undef NAME
    return 0;
}

static int load_weights(px_vision *v, char *err, size_t errlen) {
    const px_vision_config *c = &v->cfg;
    int64_t E = c->n_embd, P = c->patch_size;
    int64_t pne[4] = {P, P, 3, E};
    const px_gguf_tensor *t = want(v->g, "v.patch_embd.weight", 4, pne, err, errlen);
    if (!t) return PX_EFORMAT;
    size_t rb = px_dtype_row_size(t->type, v->kdim);
    if (!rb || px_dtype_get(t->type)->block_elems != 1)
        return px_fail(err, errlen, PX_ENOTSUP,
                       "mmproj: v.patch_embd.weight must be F32, F16 or BF16");
    v->patch = (px_tensor){.type = t->type,
                           .ne = {v->kdim, E, 1, 1},
                           .row_bytes = rb,
                           .data = t->data,
                           .name = "v.patch_embd.weight"};
    if (!(v->patch_b = want_vec(v, "v.patch_embd.bias", E, err, errlen))) return PX_EFORMAT;
    int64_t posne[2] = {E, v->n_patch};
    if (!(t = want(v->g, "v.position_embd.weight", 2, posne, err, errlen))) return PX_EFORMAT;
    if (!(v->pos = own_f32(v, t, err, errlen))) return PX_EFORMAT;
    v->layers = calloc((size_t)c->n_layer, sizeof(vlayer));
    if (!v->layers) return px_fail(err, errlen, PX_ENOMEM, "mmproj: out of memory");
    for (int il = 0; il < c->n_layer; il++)
        if (load_layer(v, il, err, errlen) < 0) return PX_EFORMAT;
    if (!(v->post_w = want_vec(v, "v.post_ln.weight", E, err, errlen)) ||
        !(v->post_b = want_vec(v, "v.post_ln.bias", E, err, errlen)) ||
        !(v->soft_w = want_vec(v, "mm.soft_emb_norm.weight", E, err, errlen)))
        return PX_EFORMAT;
    int64_t O = c->n_embd_out, prne[2] = {O, E};
    if (!(t = want(v->g, "mm.input_projection.weight", 2, prne, err, errlen))) return PX_EFORMAT;
    float *w = own_f32(v, t, err, errlen); /* (E, O) */
    v->proj_t = malloc(sizeof(float) * (size_t)(O * E));
    if (!w || !v->proj_t) return px_fail(err, errlen, PX_ENOMEM, "mmproj: out of memory");
    for (int64_t e = 0; e < E; e++)
        for (int64_t o = 0; o < O; o++)
            v->proj_t[o * E + e] = w[e * O + o];
    v->proj = (px_tensor){.type = PX_DTYPE_F32,
                          .ne = {E, O, 1, 1},
                          .row_bytes = sizeof(float) * (size_t)E,
                          .data = v->proj_t,
                          .name = "mm.input_projection.weight (transposed)"};
    return 0;
}

static int alloc_state(px_vision *v, char *err, size_t errlen) {
    const px_vision_config *c = &v->cfg;
    size_t np = (size_t)v->n_patch, E = (size_t)c->n_embd;
    int nth = px_pool_size(v->pool);
    int64_t max_in = PX_MAX(PX_MAX(c->n_ff, c->n_embd), v->kdim);
    max_in = (max_in + 255) / 256 * 256;
    v->max_in = max_in;
    /* matmul's one-time init sets OpenBLAS to one thread: our workers each
     * call sgemm on their own tiles, so OpenBLAS must not fork as well. */
    (void)px_matmul_kernel_name();
    v->tiles = malloc(sizeof(float) * (size_t)nth * TILE_ROWS * (size_t)max_in);
    float **bufs[] = {&v->x, &v->xn, &v->q, &v->k, &v->v, &v->att};
    for (size_t i = 0; i < PX_ARRAY_LEN(bufs); i++)
        *bufs[i] = malloc(sizeof(float) * np * E);
    v->ff = malloc(sizeof(float) * np * (size_t)c->n_ff);
    v->cols = malloc(sizeof(float) * np * (size_t)v->kdim);
    v->scores = malloc(sizeof(float) * (size_t)nth * QBLK * np);
    v->pooled = malloc(sizeof(float) * (size_t)c->n_tokens_out * E);
    if (!v->tiles || !v->x || !v->xn || !v->q || !v->k || !v->v || !v->att || !v->ff || !v->cols ||
        !v->scores || !v->pooled)
        return px_fail(err, errlen, PX_ENOMEM, "mmproj: out of memory for the run state");
    return 0;
}

px_vision *px_vision_load(const char *path, px_pool *pool, char *err, size_t errlen) {
    if (!path || !pool) {
        px_fail(err, errlen, PX_EINVAL, "px_vision_load: NULL argument");
        return NULL;
    }
    px_vision *v = calloc(1, sizeof(*v));
    if (!v) {
        px_fail(err, errlen, PX_ENOMEM, "out of memory");
        return NULL;
    }
    v->pool = pool;
    v->phase = PH_IDLE;
    v->g = px_gguf_open(path, err, errlen);
    if (!v->g || load_config(v, err, errlen) < 0 || load_weights(v, err, errlen) < 0 ||
        alloc_state(v, err, errlen) < 0) {
        px_vision_free(v);
        return NULL;
    }
    return v;
}

/* ---- preprocessing ------------------------------------------------------- */

int px_vision_preprocess(const px_vision *v, const uint8_t *rgb, int w, int h, float *out) {
    if (!v || !rgb || !out || w <= 0 || h <= 0) return PX_EINVAL;
    const px_vision_config *c = &v->cfg;
    int S = c->image_size;
    /* llama.cpp's bilinear resize: source step (n - 1) / S, the result
     * truncated to 8 bits before normalising. */
    float xr = (float)(w - 1) / (float)S, yr = (float)(h - 1) / (float)S;
    for (int y = 0; y < S; y++) {
        float py = yr * (float)y;
        int y0 = (int)py, y1 = PX_MIN(y0 + 1, h - 1);
        float fy = py - (float)y0;
        for (int x = 0; x < S; x++) {
            float px = xr * (float)x;
            int x0 = (int)px, x1 = PX_MIN(x0 + 1, w - 1);
            float fx = px - (float)x0;
            for (int ch = 0; ch < 3; ch++) {
                float a = rgb[((size_t)y0 * (size_t)w + (size_t)x0) * 3 + (size_t)ch];
                float b = rgb[((size_t)y0 * (size_t)w + (size_t)x1) * 3 + (size_t)ch];
                float cc = rgb[((size_t)y1 * (size_t)w + (size_t)x0) * 3 + (size_t)ch];
                float d = rgb[((size_t)y1 * (size_t)w + (size_t)x1) * 3 + (size_t)ch];
                float top = a + (b - a) * fx, bot = cc + (d - cc) * fx;
                uint8_t u = (uint8_t)(top + (bot - top) * fy);
                out[((size_t)ch * (size_t)S + (size_t)y) * (size_t)S + (size_t)x] =
                    ((float)u / 255.0f - c->mean[ch]) / c->std[ch];
            }
        }
    }
    return 0;
}

/* ---- encoder ------------------------------------------------------------- */

/* exp(x) for x in [-87, 0]: 2^n * e^r with |r| <= ln2/2, Cephes' expf
 * polynomial; branch-free and libm-free so the loop below vectorises
 * (libm expf was a third of the encode time). Rel. error ~2e-7. */
static inline __attribute__((always_inline)) float exp_neg(float x) {
    x = x > -87.0f ? x : -87.0f;
    int ni = (int)(x * 1.44269504088896341f + 128.5f) - 128; /* floor(x log2e + 0.5) */
    float n = (float)ni;
    float r = x - n * 0.693359375f - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union {
        int32_t i;
        float f;
    } u = {.i = (int32_t)((uint32_t)(ni + 127) << 23)};
    return p * u.f;
}

/* GELU, tanh form (ggml_gelu, HF gelu_pytorch_tanh); tanh(z) from exp_neg
 * of -2|z| to stay libm-free. */
static inline float gelu_tanh(float x) {
    float z = 0.7978845608028654f * (x + 0.044715f * x * x * x); /* sqrt(2/pi) */
    float e = exp_neg(-2.0f * fabsf(z));
    float t = (1.0f - e) / (1.0f + e);
    t = z < 0 ? -t : t;
    return 0.5f * x * (1.0f + t);
}

/* In-place softmax of a row of scores; 8 partial max/sum lanes so the
 * reductions are not one long dependency chain. */
static void softmax_row(float *s, int n) {
    float m8[8], a8[8];
    for (int j = 0; j < 8; j++)
        m8[j] = s[0];
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            m8[j] = s[i + j] > m8[j] ? s[i + j] : m8[j];
    for (; i < n; i++)
        m8[0] = s[i] > m8[0] ? s[i] : m8[0];
    float mx = m8[0];
    for (int j = 1; j < 8; j++)
        mx = m8[j] > mx ? m8[j] : mx;
    for (i = 0; i < n; i++)
        s[i] = exp_neg(s[i] - mx);
    for (int j = 0; j < 8; j++)
        a8[j] = 0;
    for (i = 0; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            a8[j] += s[i + j];
    for (; i < n; i++)
        a8[0] += s[i];
    float sum = 0;
    for (int j = 0; j < 8; j++)
        sum += a8[j];
    float inv = 1.0f / sum;
    for (i = 0; i < n; i++)
        s[i] *= inv;
}

enum rowop { OP_ADD_BIAS_POS, OP_LAYERNORM, OP_BIAS, OP_BIAS_GELU, OP_BIAS_RESID };

/* One row-parallel elementwise step over n_rows rows of n. */
typedef struct rowjob {
    enum rowop op;
    float *y;           /* (n_rows, n) output (and input for the in-place ops) */
    const float *x;     /* (n_rows, n) input of LayerNorm / residual addend */
    const float *w, *b; /* (n) */
    const float *pos;   /* (n_rows, n) position embeddings */
    int n_rows, n;
    float eps;
} rowjob;

static void rowjob_run(void *arg, int ith, int nth) {
    const rowjob *j = arg;
    int r0 = (int)((int64_t)j->n_rows * ith / nth),
        r1 = (int)((int64_t)j->n_rows * (ith + 1) / nth);
    for (int r = r0; r < r1; r++) {
        float *y = j->y + (size_t)r * (size_t)j->n;
        const float *x = j->x ? j->x + (size_t)r * (size_t)j->n : NULL;
        switch (j->op) {
        case OP_ADD_BIAS_POS: {
            const float *p = j->pos + (size_t)r * (size_t)j->n;
            for (int i = 0; i < j->n; i++)
                y[i] += j->b[i] + p[i];
            break;
        }
        case OP_LAYERNORM: {
            double s = 0, ss = 0;
            for (int i = 0; i < j->n; i++)
                s += x[i];
            float mean = (float)(s / j->n);
            for (int i = 0; i < j->n; i++)
                ss += (double)(x[i] - mean) * (x[i] - mean);
            float inv = 1.0f / sqrtf((float)(ss / j->n) + j->eps);
            for (int i = 0; i < j->n; i++)
                y[i] = (x[i] - mean) * inv * j->w[i] + j->b[i];
            break;
        }
        case OP_BIAS:
            for (int i = 0; i < j->n; i++)
                y[i] += j->b[i];
            break;
        case OP_BIAS_GELU:
            for (int i = 0; i < j->n; i++)
                y[i] = gelu_tanh(y[i] + j->b[i]);
            break;
        case OP_BIAS_RESID: /* y (residual stream) += x + b */
            for (int i = 0; i < j->n; i++)
                y[i] += x[i] + j->b[i];
            break;
        }
    }
}

static void rows(px_vision *v, rowjob j) {
    px_pool_run(v->pool, rowjob_run, &j);
}

/* Row r of a (n_patch, n) buffer. */
static inline float *at(float *buf, int r, int n) {
    return buf + (size_t)r * (size_t)n;
}

typedef struct attnjob {
    px_vision *v;
    int qb0, nqb; /* query blocks qb0 .. qb0 + nqb - 1 */
    int h0, nh;   /* heads h0 .. h0 + nh - 1 */
    atomic_int next;
} attnjob;

/* Tasks are (head, block of QBLK queries), taken from a shared counter:
 * S = Q_h Kᵀ_h * scale; softmax rows; O_h = S V_h, all through sgemm. A
 * block's task is the same whichever range of blocks the job covers. */
static void attn_run(void *arg, int ith, int nth) {
    (void)nth;
    attnjob *j = arg;
    px_vision *v = j->v;
    int np = v->n_patch, E = v->cfg.n_embd, hd = v->head_dim;
    int n_task = j->nqb * j->nh;
    float *S = v->scores + (size_t)ith * QBLK * (size_t)np;
    float scale = 1.0f / sqrtf((float)hd);
    for (int t; (t = atomic_fetch_add(&j->next, 1)) < n_task;) {
        int h = j->h0 + t / j->nqb, q0 = (j->qb0 + t % j->nqb) * QBLK, nq = PX_MIN(QBLK, np - q0);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, np, hd, scale,
                    v->q + (size_t)q0 * E + (size_t)h * hd, E, v->k + (size_t)h * hd, E, 0.0f, S,
                    np);
        for (int r = 0; r < nq; r++)
            softmax_row(S + (size_t)r * np, np);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, np, 1.0f, S, np,
                    v->v + (size_t)h * hd, E, 0.0f, v->att + (size_t)q0 * E + (size_t)h * hd, E);
    }
}

/* y (n_tok, n_out) = x (n_tok, n_in) · Wᵀ for n weights sharing x: tiles
 * of TILE_ROWS weight rows are dequantized to floats and multiplied with
 * sgemm, tiles taken from one counter by every worker. px_matmul's float
 * path is a row-dot kernel chosen for batch invariance; an image has no
 * batch to be invariant to, and sgemm is several times faster at n_tok in
 * the thousands. */
typedef struct mmjob {
    px_vision *v;
    int n, n_tok;
    const px_tensor *const *w;
    const float *x;
    float *const *y;
    atomic_int next;
    atomic_int failed;
} mmjob;

static void mm_run(void *arg, int ith, int nth) {
    (void)nth;
    mmjob *j = arg;
    float *tile = j->v->tiles + (size_t)ith * TILE_ROWS * (size_t)j->v->max_in;
    int n_tiles[PX_MATMUL_MULTI_MAX + 1], total = 0;
    for (int i = 0; i < j->n; i++) {
        n_tiles[i] = (int)((j->w[i]->ne[1] + TILE_ROWS - 1) / TILE_ROWS);
        total += n_tiles[i];
    }
    int n_tb = (j->n_tok + TOK_BLK - 1) / TOK_BLK, have = -1; /* tile now in `tile` */
    for (int task; (task = atomic_fetch_add(&j->next, 1)) < total * n_tb;) {
        int tb = task % n_tb, wi = 0, t = task / n_tb;
        int key = t;
        while (t >= n_tiles[wi])
            t -= n_tiles[wi++];
        const px_tensor *w = j->w[wi];
        int64_t n_in = w->ne[0], n_out = w->ne[1], r0 = (int64_t)t * TILE_ROWS;
        int rows = (int)PX_MIN((int64_t)TILE_ROWS, n_out - r0);
        int t0 = tb * TOK_BLK, nt = PX_MIN(TOK_BLK, j->n_tok - t0);
        for (int r = 0; r < rows && key != have; r++)
            if (px_dequantize_row(w->type, (const char *)w->data + (size_t)(r0 + r) * w->row_bytes,
                                  tile + (size_t)r * (size_t)n_in, n_in) < 0)
                atomic_store(&j->failed, 1);
        have = key;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nt, rows, (int)n_in, 1.0f,
                    j->x + (size_t)t0 * (size_t)n_in, (int)n_in, tile, (int)n_in, 0.0f,
                    j->y[wi] + (size_t)t0 * (size_t)n_out + r0, (int)n_out);
    }
}

static int mm_multi(px_vision *v, int n, const px_tensor *const *w, const float *x, int n_tok,
                    float *const *y, char *err, size_t errlen) {
    assert(n >= 1 && n <= PX_MATMUL_MULTI_MAX && w[0]->ne[0] <= v->max_in);
    mmjob j = {.v = v, .n = n, .n_tok = n_tok, .w = w, .x = x, .y = y};
    atomic_init(&j.next, 0);
    atomic_init(&j.failed, 0);
    px_pool_run(v->pool, mm_run, &j);
    if (atomic_load(&j.failed))
        return px_fail(err, errlen, PX_ENOTSUP, "vision: cannot dequantize %s",
                       w[0]->name ? w[0]->name : "a weight");
    return 0;
}

static int mm(px_vision *v, const px_tensor *w, const float *x, int n_tok, float *y, char *err,
              size_t errlen) {
    return mm_multi(v, 1, &w, x, n_tok, &y, err, errlen);
}

/* The phases, each on patch rows [r0, r1) with r0 a multiple of
 * CHUNK_ALIGN: every operation below is row-local or an mm whose token
 * blocks start at multiples of TOK_BLK, so any such split of the rows gives
 * the bits of one pass over all of them. */

/* x = cols · Wᵀ + b + pos. */
static int embed_rows(px_vision *v, int r0, int r1, char *err, size_t errlen) {
    int E = v->cfg.n_embd;
    int rc = mm(v, &v->patch, at(v->cols, r0, v->kdim), r1 - r0, at(v->x, r0, E), err, errlen);
    if (rc < 0) return rc;
    rows(v, (rowjob){OP_ADD_BIAS_POS, at(v->x, r0, E), NULL, NULL, v->patch_b, at(v->pos, r0, E),
                     r1 - r0, E, 0});
    return 0;
}

/* xn = LN1(x); q, k, v = xn · Wᵀ + b. */
static int qkv_rows(px_vision *v, const vlayer *L, int r0, int r1, char *err, size_t errlen) {
    const px_vision_config *c = &v->cfg;
    int n = r1 - r0, E = c->n_embd;
    rows(v, (rowjob){OP_LAYERNORM, at(v->xn, r0, E), at(v->x, r0, E), L->ln1_w, L->ln1_b, NULL, n,
                     E, c->eps});
    const px_tensor *qkv[3] = {&L->q, &L->k, &L->v};
    float *ys[3] = {at(v->q, r0, E), at(v->k, r0, E), at(v->v, r0, E)};
    int rc = mm_multi(v, 3, qkv, at(v->xn, r0, E), n, ys, err, errlen);
    if (rc < 0) return rc;
    const float *bs[3] = {L->bq, L->bk, L->bv};
    for (int i = 0; i < 3; i++)
        rows(v, (rowjob){OP_BIAS, ys[i], NULL, NULL, bs[i], NULL, n, E, 0});
    return 0;
}

/* att rows = attention of query rows [r0, r1) over every key. */
static void attn_rows(px_vision *v, int r0, int r1, int h0, int h1) {
    attnjob aj = {.v = v,
                  .qb0 = r0 / QBLK,
                  .nqb = (r1 + QBLK - 1) / QBLK - r0 / QBLK,
                  .h0 = h0,
                  .nh = h1 - h0};
    atomic_init(&aj.next, 0);
    px_pool_run(v->pool, attn_run, &aj);
}

/* x += att · Woᵀ + bo; x += down(GELU(up(LN2(x)))). */
static int mlp_rows(px_vision *v, const vlayer *L, int r0, int r1, char *err, size_t errlen) {
    const px_vision_config *c = &v->cfg;
    int n = r1 - r0, E = c->n_embd, F = c->n_ff;
    float *x = at(v->x, r0, E), *xn = at(v->xn, r0, E), *ff = at(v->ff, r0, F);
    int rc = mm(v, &L->o, at(v->att, r0, E), n, xn, err, errlen);
    if (rc < 0) return rc;
    rows(v, (rowjob){OP_BIAS_RESID, x, xn, NULL, L->bo, NULL, n, E, 0});
    rows(v, (rowjob){OP_LAYERNORM, xn, x, L->ln2_w, L->ln2_b, NULL, n, E, c->eps});
    if ((rc = mm(v, &L->up, xn, n, ff, err, errlen)) < 0) return rc;
    rows(v, (rowjob){OP_BIAS_GELU, ff, NULL, NULL, L->bup, NULL, n, F, 0});
    if ((rc = mm(v, &L->down, ff, n, xn, err, errlen)) < 0) return rc;
    rows(v, (rowjob){OP_BIAS_RESID, x, xn, NULL, L->bdown, NULL, n, E, 0});
    return 0;
}

void px_vision_set_step_rows(px_vision *v, int rows) {
    if (!v) return;
    /* Clamped to the image first so the rounding cannot overflow. */
    rows = PX_MIN(PX_MAX(rows, 0), v->n_patch);
    v->step_rows = (rows + CHUNK_ALIGN - 1) / CHUNK_ALIGN * CHUNK_ALIGN;
}

int px_vision_steps_total(const px_vision *v) {
    if (!v) return 0;
    if (v->step_rows == 0) return v->cfg.n_layer + 1;
    int n_chunk = (v->n_patch + v->step_rows - 1) / v->step_rows;
    int attn_steps = (v->cfg.n_head + HEADS_PER_STEP - 1) / HEADS_PER_STEP;
    return n_chunk * (1 + (2 + attn_steps) * v->cfg.n_layer) + 1;
}

int px_vision_encode_begin(px_vision *v, const float *pixels, char *err, size_t errlen) {
    if (!v || !pixels) return px_fail(err, errlen, PX_EINVAL, "vision: NULL argument");
    const px_vision_config *c = &v->cfg;
    int S = c->image_size, P = c->patch_size, g = v->grid;
    v->phase = PH_IDLE;
    /* im2col: row p = y * grid + x holds the patch's (c, dy, dx) pixels in
     * the conv kernel's order. A copy of the image, so begin stays cheap
     * and the caller's pixels are not needed after it. */
    for (int py = 0; py < g; py++)
        for (int px = 0; px < g; px++) {
            float *col = v->cols + ((size_t)py * g + (size_t)px) * (size_t)v->kdim;
            for (int ch = 0; ch < 3; ch++)
                for (int dy = 0; dy < P; dy++)
                    memcpy(col + ((size_t)ch * P + (size_t)dy) * P,
                           pixels + ((size_t)ch * S + (size_t)(py * P + dy)) * S + (size_t)px * P,
                           sizeof(float) * (size_t)P);
        }
    v->run_rows = v->step_rows;
    v->layer = 0;
    v->row = 0;
    v->head = 0;
    v->phase = PH_EMBED;
    if (v->run_rows == 0) { /* one block per step: the embedding is begin's */
        int rc = embed_rows(v, 0, v->n_patch, err, errlen);
        v->phase = rc < 0 ? PH_IDLE : PH_QKV;
        return rc;
    }
    return 0;
}

/* Post-LN, k x k average pooling of the grid, RMSNorm (soft_emb_norm) and
 * the projection into out. */
static int encode_finish(px_vision *v, float *out, char *err, size_t errlen) {
    const px_vision_config *c = &v->cfg;
    int g = v->grid, np = v->n_patch, E = c->n_embd;
    rows(v, (rowjob){OP_LAYERNORM, v->xn, v->x, v->post_w, v->post_b, NULL, np, E, c->eps});
    int k = v->pool_k, go = g / k;
    for (int oy = 0; oy < go; oy++)
        for (int ox = 0; ox < go; ox++) {
            float *d = v->pooled + ((size_t)oy * go + (size_t)ox) * (size_t)E;
            memset(d, 0, sizeof(float) * (size_t)E);
            for (int dy = 0; dy < k; dy++)
                for (int dx = 0; dx < k; dx++) {
                    const float *s =
                        v->xn + ((size_t)(oy * k + dy) * g + (size_t)(ox * k + dx)) * E;
                    for (int i = 0; i < E; i++)
                        d[i] += s[i];
                }
            double ss = 0;
            float inv_n = 1.0f / (float)(k * k);
            for (int i = 0; i < E; i++) {
                d[i] *= inv_n;
                ss += (double)d[i] * d[i];
            }
            float r = 1.0f / sqrtf((float)(ss / E) + c->eps);
            for (int i = 0; i < E; i++)
                d[i] *= r * v->soft_w[i];
        }
    return mm(v, &v->proj, v->pooled, c->n_tokens_out, out, err, errlen);
}

/* Runs the phase at the cursor on the next chunk and advances the cursor:
 * chunks of a phase, then the next phase; MLP of the last block leads to
 * FINISH. With run_rows 0 a step is a whole block (its three phases on all
 * rows). */
static int step_chunk(px_vision *v, char *err, size_t errlen) {
    int np = v->n_patch, r0 = v->row, r1 = v->run_rows ? PX_MIN(np, r0 + v->run_rows) : np;
    const vlayer *L = &v->layers[v->layer];
    int rc = 0;
    switch (v->phase) {
    case PH_EMBED: rc = embed_rows(v, r0, r1, err, errlen); break;
    case PH_QKV:
        rc = qkv_rows(v, L, r0, r1, err, errlen);
        if (rc < 0 || v->run_rows) break;
        attn_rows(v, r0, r1, 0, v->cfg.n_head);
        rc = mlp_rows(v, L, r0, r1, err, errlen);
        v->phase = PH_MLP; /* the block is done */
        break;
    case PH_ATTN: {
        /* A few heads per step: attention is the longest phase. */
        int h1 = PX_MIN(v->cfg.n_head, v->head + HEADS_PER_STEP);
        attn_rows(v, r0, r1, v->head, h1);
        v->head = h1 < v->cfg.n_head ? h1 : 0;
        if (v->head) return 0; /* same chunk, next heads */
        break;
    }
    case PH_MLP: rc = mlp_rows(v, L, r0, r1, err, errlen); break;
    default: assert(0 && "no phase to step");
    }
    if (rc < 0) return rc;
    v->row = r1 < np ? r1 : 0;
    if (r1 < np) return 0;
    if (v->phase != PH_MLP)
        v->phase++;
    else
        v->phase = ++v->layer < v->cfg.n_layer ? PH_QKV : PH_FINISH;
    return 0;
}

int px_vision_encode_step(px_vision *v, float *out, char *err, size_t errlen) {
    if (!v || !out) return px_fail(err, errlen, PX_EINVAL, "vision: NULL argument");
    if (v->phase == PH_IDLE)
        return px_fail(err, errlen, PX_EINVAL, "vision: encode step without a begun image");
    int rc;
    if (v->phase != PH_FINISH) {
        rc = step_chunk(v, err, errlen);
        if (rc < 0) v->phase = PH_IDLE;
        return rc < 0 ? rc : 1;
    }
    v->phase = PH_IDLE;
    rc = encode_finish(v, out, err, errlen);
    return rc < 0 ? rc : 0;
}

int px_vision_encode(px_vision *v, const float *pixels, float *out, char *err, size_t errlen) {
    if (!out) return px_fail(err, errlen, PX_EINVAL, "vision: NULL argument");
    int rc = px_vision_encode_begin(v, pixels, err, errlen);
    while (rc == 0 || rc == 1)
        if ((rc = px_vision_encode_step(v, out, err, errlen)) == 0) return 0;
    return rc;
}
