/* vision.h — the Gemma 3 vision tower (SigLIP encoder + projector) from the
 * "mmproj" GGUF that llama.cpp's converter writes beside gemma-3-*-it
 * models (clip.* metadata, v.* and mm.* tensors).
 *
 * An image (RGB8, any size) is resized to the tower's image_size and
 * normalised with its mean/std (px_vision_preprocess), cut into
 * patch_size patches embedded by a convolution, plus learned position
 * embeddings; n_layer encoder blocks (LayerNorm, multi-head attention,
 * LayerNorm, GELU MLP, residuals); a final LayerNorm; 4x4 average pooling
 * to 256 tokens; the soft-embedding RMSNorm; and the projection to the text
 * model's d_model (px_vision_encode).
 * Owns: the mapping, weights, scratch sized at load. Threads: one caller at a
 * time per px_vision (the scheduler thread); uses the pool it is given. */
#ifndef PX_VISION_H
#define PX_VISION_H

#include <stddef.h>
#include <stdint.h>

#include "pool.h"

typedef struct px_vision_config {
    int32_t image_size;   /* pixels per side the tower takes (896) */
    int32_t patch_size;   /* 14 */
    int32_t n_embd;       /* encoder width (1152) */
    int32_t n_ff;         /* encoder MLP (4304) */
    int32_t n_layer;      /* 27 */
    int32_t n_head;       /* 16 */
    float eps;            /* LayerNorm epsilon */
    float mean[3], std[3];/* per-channel normalisation */
    int32_t n_tokens_out; /* image tokens given to the text model (256) */
    int32_t n_embd_out;   /* text model d_model */
} px_vision_config;

typedef struct px_vision px_vision;

/* Loads and checks an mmproj GGUF. pool is borrowed (may be shared with the
 * text model). NULL + err naming the key or tensor on any problem. */
px_vision *px_vision_load(const char *path, px_pool *pool, char *err, size_t errlen);
void px_vision_free(px_vision *v);
const px_vision_config *px_vision_config_get(const px_vision *v);

/* rgb (h, w, 3) -> out (3, image_size, image_size) floats, resized
 * (bilinear, as the reference preprocessor does) and normalised. */
int px_vision_preprocess(const px_vision *v, const uint8_t *rgb, int w, int h, float *out);

/* pixels (3, S, S) -> out (n_tokens_out, n_embd_out). 0 or negative PX_E*. */
int px_vision_encode(px_vision *v, const float *pixels, float *out, char *err, size_t errlen);

#endif
