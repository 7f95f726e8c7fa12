/* pollux-mkmodel — writes a GGUF model with deterministic random weights.
 *
 *   pollux-mkmodel [--arch gemma3|llama] [--tiny|--demo|--1b] [--type T]
 *                  [--embd-type T] [--seed N] [--name S] [--n-embd N]
 *                  [--n-layer N] [--n-head N] [--n-head-kv N] [--head-dim N]
 *                  [--n-ff N] [--n-ctx N] [--window N] [--vocab N]
 *                  [--rope-scale F] [--untied] [--mmproj FILE] -o FILE
 *   pollux-mkmodel --mmproj-only [--mmproj-4b] [--type T] [--seed N]
 *                  [--n-embd N] -o FILE
 * --mmproj FILE also writes a random Gemma 3 vision tower (mmproj GGUF) whose
 * projection matches the text model's n_embd: tiny (image 56, patch 14, 4
 * output tokens) unless --mmproj-4b asks for Gemma 3 4B's tower dimensions.
 * --mmproj-only writes just such a tower to -o FILE (projection to --n-embd,
 * default 64; --type sets the block weights' type, default F32).
 * --mmproj-dims IMAGE,PATCH,EMBD,FF,LAYERS,HEADS,POOL sets the tower's
 * dimensions (tests of the multi-tile and multi-block paths).
 * T is F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q4_K, Q5_K, Q6_K; Q4_K gives a
 * Q4_K_M-like mix (Q6_K for some layers' attn_v and ffn_down). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mkmodel.h"
#include "px.h"
#include "vision.h"

static int parse_type(const char *s, px_dtype *out) {
    for (uint32_t t = 0; t < PX_DTYPE_COUNT; t++) {
        const px_dtype_info *i = px_dtype_get(t);
        if (i && i->name && i->computable && strcmp(i->name, s) == 0) {
            *out = (px_dtype)t;
            return 0;
        }
    }
    return -1;
}

static void usage(void) {
    fprintf(stderr, "usage: pollux-mkmodel [--arch gemma3|llama] [--tiny|--demo|--1b] [--type T]\n"
                    "         [--embd-type T] [--seed N] [--name S] [--n-embd N] [--n-layer N]\n"
                    "         [--n-head N] [--n-head-kv N] [--head-dim N] [--n-ff N] [--n-ctx N]\n"
                    "         [--window N] [--vocab N] [--rope-scale F] [--untied]\n"
                    "         [--mmproj FILE] [--mmproj-4b] [--mmproj-only]\n"
                    "         [--mmproj-dims IMAGE,PATCH,EMBD,FF,LAYERS,HEADS,POOL] -o FILE\n"
                    "T: F32 F16 BF16 Q8_0 Q4_0 Q5_0 Q4_K Q5_K Q6_K\n");
}

int main(int argc, char **argv) {
    px_mkmodel_opts o;
    px_arch arch = PX_ARCH_GEMMA3;
    /* First pass: the architecture and preset, which set the defaults. */
    const char *preset = "tiny";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--arch") == 0 && i + 1 < argc) {
            const char *a = argv[++i];
            if (strcmp(a, "gemma3") == 0)
                arch = PX_ARCH_GEMMA3;
            else if (strcmp(a, "llama") == 0)
                arch = PX_ARCH_LLAMA;
            else {
                fprintf(stderr, "pollux-mkmodel: unknown architecture '%s'\n", a);
                return 2;
            }
        } else if (strcmp(argv[i], "--tiny") == 0 || strcmp(argv[i], "--demo") == 0 ||
                   strcmp(argv[i], "--1b") == 0) {
            preset = argv[i] + 2;
        }
    }
    if (strcmp(preset, "demo") == 0)
        px_mkmodel_opts_demo(&o);
    else if (strcmp(preset, "1b") == 0)
        px_mkmodel_opts_1b(&o, PX_DTYPE_Q8_0);
    else
        px_mkmodel_opts_tiny(&o, arch);
    const char *out = NULL, *mmproj = NULL, *mm_dims = NULL;
    int embd_set = 0, mm_only = 0, mm_4b = 0, type_set = 0, n_embd_set = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--tiny") == 0 || strcmp(a, "--demo") == 0 || strcmp(a, "--1b") == 0)
            continue;
        if (strcmp(a, "--untied") == 0) {
            o.tied_output = 0;
            continue;
        }
        if (strcmp(a, "--mmproj-only") == 0 || strcmp(a, "--mmproj-4b") == 0) {
            if (strcmp(a, "--mmproj-only") == 0)
                mm_only = 1;
            else
                mm_4b = 1;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage();
            return 0;
        }
        if (!v) {
            usage();
            return 2;
        }
        i++;
        char *end = NULL;
        long n = strtol(v, &end, 10);
        int num_ok = end && *end == 0 && n > 0 && n < (1L << 30);
        if (strcmp(a, "--arch") == 0) {
            o.arch = arch;
        } else if (strcmp(a, "-o") == 0) {
            out = v;
        } else if (strcmp(a, "--mmproj") == 0) {
            mmproj = v;
        } else if (strcmp(a, "--mmproj-dims") == 0) {
            mm_dims = v;
        } else if (strcmp(a, "--name") == 0) {
            o.name = v;
        } else if (strcmp(a, "--type") == 0 || strcmp(a, "--embd-type") == 0) {
            px_dtype t;
            if (parse_type(v, &t) < 0) {
                fprintf(stderr, "pollux-mkmodel: unknown or unsupported type '%s'\n", v);
                return 2;
            }
            if (a[2] == 't') {
                type_set = 1;
                o.wtype = t;
                if (!embd_set) o.embd_type = t == PX_DTYPE_Q4_K ? PX_DTYPE_Q6_K : t;
            } else {
                o.embd_type = t;
                embd_set = 1;
            }
        } else if (strcmp(a, "--seed") == 0) {
            o.seed = strtoull(v, NULL, 10);
        } else if (strcmp(a, "--rope-scale") == 0) {
            o.rope_scale = strtof(v, NULL);
            if (!(o.rope_scale > 0)) {
                fprintf(stderr, "pollux-mkmodel: bad --rope-scale\n");
                return 2;
            }
        } else {
            struct {
                const char *flag;
                int32_t *dst;
            } nums[] = {
                {"--n-embd", &o.n_embd},     {"--n-layer", &o.n_layer},
                {"--n-head", &o.n_head},     {"--n-head-kv", &o.n_head_kv},
                {"--head-dim", &o.head_dim}, {"--n-ff", &o.n_ff},
                {"--n-ctx", &o.n_ctx},       {"--window", &o.sliding_window},
                {"--vocab", &o.n_vocab},
            };
            size_t k;
            for (k = 0; k < PX_ARRAY_LEN(nums); k++)
                if (strcmp(a, nums[k].flag) == 0) break;
            if (k == PX_ARRAY_LEN(nums)) {
                fprintf(stderr, "pollux-mkmodel: unknown option '%s'\n", a);
                usage();
                return 2;
            }
            if (!num_ok) {
                fprintf(stderr, "pollux-mkmodel: %s needs a positive integer\n", a);
                return 2;
            }
            *nums[k].dst = (int32_t)n;
            if (nums[k].dst == &o.n_embd) n_embd_set = 1;
        }
    }
    if (!out) {
        usage();
        return 2;
    }
    char err[512];
    if (mm_only || mmproj) {
        px_vision_mk_opts vo;
        if (mm_4b)
            px_vision_mk_opts_4b(&vo, type_set ? o.wtype : PX_DTYPE_F32);
        else
            px_vision_mk_opts_tiny(&vo);
        if (!mm_4b && type_set) vo.wtype = o.wtype;
        if (mm_dims &&
            sscanf(mm_dims, "%d,%d,%d,%d,%d,%d,%d", &vo.image_size, &vo.patch_size, &vo.n_embd,
                   &vo.n_ff, &vo.n_layer, &vo.n_head, &vo.scale_factor) != 7) {
            fprintf(stderr, "pollux-mkmodel: --mmproj-dims needs 7 comma-separated integers\n");
            return 2;
        }
        vo.seed = o.seed + 1000;
        /* --mmproj-only: the projection width is --n-embd if given. */
        if (!mm_only || n_embd_set) vo.n_embd_out = o.n_embd;
        if (px_vision_mk_write(&vo, mm_only ? out : mmproj, err, sizeof err) < 0) {
            fprintf(stderr, "pollux-mkmodel: mmproj: %s\n", err);
            return 1;
        }
        if (mm_only) return 0;
    }
    if (px_mkmodel_write(&o, out, err, sizeof err) < 0) {
        fprintf(stderr, "pollux-mkmodel: %s\n", err);
        return 1;
    }
    return 0;
}
