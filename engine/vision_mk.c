/* vision_mk.c — writes Gemma 3 mmproj GGUF files with deterministic random
 * weights, in the layout engine/vision.c documents (llama.cpp's converter:
 * clip.* keys, v.* and mm.* tensors; patch embedding and position
 * embedding F32, mm.input_projection F16 as the converter forces). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "mkmodel.h"
#include "px.h"
#include "quant.h"
#include "vision.h"

void px_vision_mk_opts_tiny(px_vision_mk_opts *o) {
    *o = (px_vision_mk_opts){.seed = 7,
                             .image_size = 56,
                             .patch_size = 14,
                             .n_embd = 64,
                             .n_ff = 128,
                             .n_layer = 2,
                             .n_head = 4,
                             .n_embd_out = 64,
                             .scale_factor = 2,
                             .wtype = PX_DTYPE_F32,
                             .projector_type = "gemma3"};
}

void px_vision_mk_opts_4b(px_vision_mk_opts *o, px_dtype wtype) {
    *o = (px_vision_mk_opts){.seed = 7,
                             .image_size = 896,
                             .patch_size = 14,
                             .n_embd = 1152,
                             .n_ff = 4304,
                             .n_layer = 27,
                             .n_head = 16,
                             .n_embd_out = 2560,
                             .scale_factor = 4,
                             .wtype = wtype,
                             .projector_type = "gemma3"};
}

typedef struct mk {
    px_gguf_writer *w;
    const px_vision_mk_opts *o;
    uint64_t rng;
} mk;

/* Adds tensor `name` of n_dims dims ne (ne[0] innermost), values
 * offset + scale * U(-1, 1), stored as `type` (F16 if type's blocks do not
 * divide ne[0]). */
static int add(mk *m, const char *name, px_dtype type, int n_dims, const int64_t *ne_in,
               float scale, float offset) {
    if (m->o->omit_tensor && strcmp(name, m->o->omit_tensor) == 0) return 0;
    int64_t ne[4] = {1, 1, 1, 1};
    memcpy(ne, ne_in, sizeof(int64_t) * (size_t)n_dims);
    int bad = m->o->bad_shape && strcmp(name, m->o->bad_shape) == 0;
    if (bad) {
        if (n_dims == 1) n_dims = 2;
        ne[n_dims - 1]++;
    }
    const px_dtype_info *info = px_dtype_get(type);
    if (!info || ne[0] % info->block_elems != 0) type = PX_DTYPE_F16;
    size_t rb = px_dtype_row_size(type, ne[0]);
    int64_t rows = ne[1] * ne[2] * ne[3];
    char *data = malloc(rb * (size_t)rows);
    float *row = malloc(sizeof(float) * (size_t)ne[0]);
    int rc = data && row ? 0 : PX_ENOMEM;
    for (int64_t r = 0; r < rows && rc == 0; r++) {
        for (int64_t i = 0; i < ne[0]; i++)
            row[i] = offset + scale * px_mkmodel_rand(&m->rng);
        rc = px_quantize_row(type, row, data + (size_t)r * rb, ne[0]);
    }
    if (rc == 0) rc = px_gguf_writer_add_tensor(m->w, name, type, n_dims, ne, data);
    free(data);
    free(row);
    return rc;
}

static int add_linear(mk *m, const char *base, int64_t n_in, int64_t n_out) {
    char n[96];
    int64_t ne[2] = {n_in, n_out};
    snprintf(n, sizeof n, "%s.weight", base);
    int rc = add(m, n, m->o->wtype, 2, ne, 1.0f / sqrtf((float)n_in), 0);
    snprintf(n, sizeof n, "%s.bias", base);
    return rc ? rc : add(m, n, PX_DTYPE_F32, 1, &n_out, 0.1f, 0);
}

static int add_norm(mk *m, const char *base, int64_t n) {
    char s[96];
    snprintf(s, sizeof s, "%s.weight", base);
    int rc = add(m, s, PX_DTYPE_F32, 1, &n, 0.2f, 1.0f);
    snprintf(s, sizeof s, "%s.bias", base);
    return rc ? rc : add(m, s, PX_DTYPE_F32, 1, &n, 0.1f, 0);
}

static int write_keys(mk *m) {
    const px_vision_mk_opts *o = m->o;
    px_gguf_writer *w = m->w;
    int rc = px_gguf_writer_set_str(w, "general.architecture", "clip");
    if (!rc) rc = px_gguf_writer_set_str(w, "general.name", "pollux random mmproj");
    if (!rc) rc = px_gguf_writer_set_str(w, "clip.projector_type", o->projector_type);
    if (!rc) rc = px_gguf_writer_set_bool(w, "clip.has_vision_encoder", true);
    if (!rc) rc = px_gguf_writer_set_bool(w, "clip.use_gelu", true);
    struct {
        const char *k;
        int32_t v;
    } u[] = {{"clip.vision.image_size", o->image_size},
             {"clip.vision.patch_size", o->patch_size},
             {"clip.vision.embedding_length", o->n_embd},
             {"clip.vision.feed_forward_length", o->n_ff},
             {"clip.vision.block_count", o->n_layer},
             {"clip.vision.attention.head_count", o->n_head},
             {"clip.vision.projection_dim", o->n_embd_out}};
    for (size_t i = 0; i < PX_ARRAY_LEN(u) && !rc; i++)
        rc = px_gguf_writer_set_u32(w, u[i].k, (uint32_t)u[i].v);
    if (!rc && o->scale_factor != 4)
        rc = px_gguf_writer_set_u32(w, "clip.vision.projector.scale_factor",
                                    (uint32_t)o->scale_factor);
    if (!rc) rc = px_gguf_writer_set_f32(w, "clip.vision.attention.layer_norm_epsilon", 1e-6f);
    const float half[3] = {0.5f, 0.5f, 0.5f};
    if (!rc) rc = px_gguf_writer_set_arr(w, "clip.vision.image_mean", PX_GGUF_FLOAT32, half, 3);
    if (!rc) rc = px_gguf_writer_set_arr(w, "clip.vision.image_std", PX_GGUF_FLOAT32, half, 3);
    return rc;
}

static int write_tensors(mk *m) {
    const px_vision_mk_opts *o = m->o;
    int64_t E = o->n_embd, F = o->n_ff, P = o->patch_size, g = o->image_size / o->patch_size;
    int64_t pne[4] = {P, P, 3, E}, posne[2] = {E, g * g}, prne[2] = {o->n_embd_out, E};
    int rc =
        add(m, "v.patch_embd.weight", PX_DTYPE_F32, 4, pne, 1.0f / sqrtf((float)(3 * P * P)), 0);
    if (!rc) rc = add(m, "v.patch_embd.bias", PX_DTYPE_F32, 1, &E, 0.1f, 0);
    if (!rc) rc = add(m, "v.position_embd.weight", PX_DTYPE_F32, 2, posne, 0.5f, 0);
    char b[64];
    for (int il = 0; il < o->n_layer && !rc; il++) {
        const char *lin[4] = {"attn_q", "attn_k", "attn_v", "attn_out"};
        for (int i = 0; i < 4 && !rc; i++) {
            snprintf(b, sizeof b, "v.blk.%d.%s", il, lin[i]);
            rc = add_linear(m, b, E, E);
        }
        snprintf(b, sizeof b, "v.blk.%d.ln1", il);
        if (!rc) rc = add_norm(m, b, E);
        snprintf(b, sizeof b, "v.blk.%d.ln2", il);
        if (!rc) rc = add_norm(m, b, E);
        snprintf(b, sizeof b, "v.blk.%d.ffn_up", il);
        if (!rc) rc = add_linear(m, b, E, F);
        snprintf(b, sizeof b, "v.blk.%d.ffn_down", il);
        if (!rc) rc = add_linear(m, b, F, E);
    }
    if (!rc) rc = add_norm(m, "v.post_ln", E);
    /* Stored as (1 + w), as the converter corrects Gemma3RMSNorm. */
    if (!rc) rc = add(m, "mm.soft_emb_norm.weight", PX_DTYPE_F32, 1, &E, 0.2f, 1.0f);
    if (!rc)
        rc = add(m, "mm.input_projection.weight", PX_DTYPE_F16, 2, prne, 1.0f / sqrtf((float)E), 0);
    return rc;
}

int px_vision_mk_write(const px_vision_mk_opts *o, const char *path, char *err, size_t errlen) {
    if (!o || !path || o->image_size <= 0 || o->patch_size <= 0 ||
        o->image_size % o->patch_size != 0 || o->n_embd <= 0 || o->n_ff <= 0 || o->n_layer <= 0 ||
        o->n_head <= 0 || o->n_embd % o->n_head != 0 || o->n_embd_out <= 0 ||
        o->scale_factor <= 0 || !o->projector_type)
        return px_fail(err, errlen, PX_EINVAL, "invalid mmproj dimensions");
    mk m = {.w = px_gguf_writer_create(), .o = o, .rng = o->seed * 0x9E3779B97F4A7C15ull + 1};
    if (!m.w) return px_fail(err, errlen, PX_ENOMEM, "out of memory");
    int rc = write_keys(&m);
    if (!rc) rc = write_tensors(&m);
    if (rc) {
        px_gguf_writer_destroy(m.w);
        return px_fail(err, errlen, rc, "building the mmproj: %s", px_strerror(rc));
    }
    rc = px_gguf_writer_write(m.w, path, err, errlen);
    px_gguf_writer_destroy(m.w);
    return rc;
}
