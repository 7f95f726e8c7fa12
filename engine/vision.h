/* vision.h — the Gemma 3 vision tower (SigLIP encoder + projector) from the
 * "mmproj" GGUF that llama.cpp's converter writes beside gemma-3-*-it
 * models (clip.* metadata, v.* and mm.* tensors).
 *
 * An image (RGB8, any size) is resized to the tower's image_size and
 * normalised with its mean/std (px_vision_preprocess), cut into
 * patch_size patches embedded by a convolution, plus learned position
 * embeddings; n_layer encoder blocks (LayerNorm, multi-head attention,
 * LayerNorm, GELU MLP, residuals); a final LayerNorm; 4x4 average pooling
 * to 256 tokens (generally: by clip.vision.projector.scale_factor, default
 * 4); the soft-embedding RMSNorm; and the projection to the text model's
 * d_model (px_vision_encode). engine/vision.c documents the tensor layout.
 * The big products (every weight, and attention's QKᵀ and PV) are OpenBLAS
 * sgemm calls on tiles spread over the pool's workers; nothing is allocated
 * per image.
 * Owns: the mapping, weights, scratch sized at load. Threads: one caller at a
 * time per px_vision (the scheduler thread); uses the pool it is given. */
#ifndef PX_VISION_H
#define PX_VISION_H

#include <stddef.h>
#include <stdint.h>

#include "pool.h"
#include "types.h"

typedef struct px_vision_config {
    int32_t image_size;    /* pixels per side the tower takes (896) */
    int32_t patch_size;    /* 14 */
    int32_t n_embd;        /* encoder width (1152) */
    int32_t n_ff;          /* encoder MLP (4304) */
    int32_t n_layer;       /* 27 */
    int32_t n_head;        /* 16 */
    float eps;             /* LayerNorm epsilon */
    float mean[3], std[3]; /* per-channel normalisation */
    int32_t n_tokens_out;  /* image tokens given to the text model (256) */
    int32_t n_embd_out;    /* text model d_model */
} px_vision_config;

typedef struct px_vision px_vision;

/* Loads and checks an mmproj GGUF. pool is borrowed (may be shared with the
 * text model). NULL + err naming the key or tensor on any problem. */
px_vision *px_vision_load(const char *path, px_pool *pool, char *err, size_t errlen);
void px_vision_free(px_vision *v);
const px_vision_config *px_vision_config_get(const px_vision *v);

/* rgb (h, w, 3) -> out (3, image_size, image_size) floats, resized with
 * llama.cpp's bilinear (to a square: aspect ratio not kept, no padding;
 * values truncated to 8 bits) and normalised ((v / 255 - mean) / std).
 * 0, or PX_EINVAL for a NULL pointer or a size <= 0. */
int px_vision_preprocess(const px_vision *v, const uint8_t *rgb, int w, int h, float *out);

/* pixels (3, S, S) -> out (n_tokens_out, n_embd_out). 0 or negative PX_E*. */
int px_vision_encode(px_vision *v, const float *pixels, float *out, char *err, size_t errlen);

/* Split encoding, so a scheduler can interleave an image with decode steps:
 * px_vision_encode_begin takes the image pixels (3, S, S) (copied: the
 * caller may free them on return); each px_vision_encode_step then runs
 * the next piece of the tower and returns 1, and the last step writes out
 * (n_tokens_out, n_embd_out) and returns 0. Negative PX_E* on error (the
 * image is then abandoned). One image in flight per px_vision; begin again
 * restarts. px_vision_encode is begin plus every step. Whatever the step
 * size, the output has the same bits.
 * step_rows 0 (the default): begin embeds the patches and a step is one
 * encoder block (n_layer + 1 steps). */
int px_vision_encode_begin(px_vision *v, const float *pixels, char *err, size_t errlen);
int px_vision_encode_step(px_vision *v, float *out, char *err, size_t errlen);

/* Sets the step size for the images begun after it. rows > 0, rounded up to
 * a multiple of 256 (at most one chunk of all patches): begin only copies
 * the image, and a step is one phase for one chunk of `rows` patch rows:
 * the patch embedding, then per block LN1 + Q/K/V, attention of the chunk's
 * queries (4 heads a step), output projection + MLP; the last step pools
 * and projects. The
 * longest step's time then scales with rows, not with the image. rows <= 0:
 * one block per step. */
void px_vision_set_step_rows(px_vision *v, int rows);
/* Steps per image at the current step_rows, the final one included: n_layer
 * + 1 for rows 0, else n_chunk * (1 + (2 + ceil(n_head / 4)) * n_layer) + 1
 * (n_chunk = patches / rows, rounded up). */
int px_vision_steps_total(const px_vision *v);

/* --- random mmproj files (engine/vision_mk.c): tools and tests ---
 * Writes the keys and tensors of llama.cpp's gemma3 mmproj with
 * deterministic random weights (uniform, scaled by 1/sqrt(n_in) so
 * activations stay O(1) through the blocks). The last three fields break the
 * file on purpose for load-error tests. */
typedef struct px_vision_mk_opts {
    uint64_t seed;
    int32_t image_size, patch_size, n_embd, n_ff, n_layer, n_head;
    int32_t n_embd_out;         /* the text model's d_model */
    int32_t scale_factor;       /* pooling factor; written only if != 4 */
    px_dtype wtype;             /* the encoder blocks' 2-D weights */
    const char *projector_type; /* "gemma3" */
    const char *omit_tensor;    /* tests: leave this tensor out (NULL: none) */
    const char *bad_shape;      /* tests: give this tensor one more row (NULL: none) */
} px_vision_mk_opts;

/* Tiny: image 56, patch 14 (4x4 patches), width 64, MLP 128, 2 blocks, 4
 * heads, pooling 2 (4 tokens), F32, n_embd_out 64. */
void px_vision_mk_opts_tiny(px_vision_mk_opts *o);
/* Gemma 3 4B's tower: 896/14, width 1152, MLP 4304, 27 blocks, 16 heads,
 * pooling 4 (256 tokens), n_embd_out 2560, weights of type wtype. */
void px_vision_mk_opts_4b(px_vision_mk_opts *o, px_dtype wtype);
/* Writes the mmproj to path. 0 or a negative PX_E* with err. */
int px_vision_mk_write(const px_vision_mk_opts *o, const char *path, char *err, size_t errlen);

#endif
