/* mkmodel.c — deterministic random GGUF models for tests, benchmarks and
 * the built-in demo model, with llama.cpp's key and tensor names. */
#include "mkmodel.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "px.h"
#include "quant.h"

/* Common English words and code fragments: the synthetic vocabulary gets
 * each of them (with its "▁" word-start form) and all their prefixes, so
 * BPE merges reach whole words. */
static const char *const k_words[] = {
    "the",      "of",     "and",    "to",     "in",    "is",     "you",   "that",      "it",
    "he",       "was",    "for",    "on",     "are",   "as",     "with",  "his",       "they",
    "at",       "be",     "this",   "have",   "from",  "or",     "one",   "had",       "by",
    "word",     "but",    "not",    "what",   "all",   "were",   "we",    "when",      "your",
    "can",      "said",   "there",  "use",    "an",    "each",   "which", "she",       "do",
    "how",      "their",  "if",     "will",   "up",    "other",  "about", "out",       "many",
    "then",     "them",   "these",  "so",     "some",  "her",    "would", "make",      "like",
    "him",      "into",   "time",   "has",    "look",  "two",    "more",  "write",     "go",
    "see",      "number", "no",     "way",    "could", "people", "my",    "than",      "first",
    "water",    "been",   "call",   "who",    "its",   "now",    "find",  "long",      "down",
    "day",      "did",    "get",    "come",   "made",  "may",    "part",  "hello",     "world",
    "model",    "token",  "server", "stream", "image", "text",   "user",  "assistant", "system",
    "question", "answer", "please", "thank",  "tell",  "story",  "cat",   "dog",       "Hello",
    "The",      "What",   "How",    "Why",    "def",   "return", "int",   "void",      "char",
    "float",    "for",    "while",  "if",     "else",  "import", "class", "function",  "const",
    "let",      "var",    "true",   "false",  "null",  "print",  "self",  "ing",       "ed",
    "er",       "ly",     "tion",   "ment",   "ness",  "able",   "est",   "ous",       "ive",
    "al",       "ic",
};

typedef struct vocab_builder {
    char **tok;
    float *score;
    int32_t *type;
    int32_t n, cap;
} vocab_builder;

static int vb_find(const vocab_builder *v, const char *s) {
    /* Build-time only: the vocabulary is a few thousand entries. */
    for (int32_t i = 0; i < v->n; i++)
        if (strcmp(v->tok[i], s) == 0) return i;
    return -1;
}

/* Appends s unless present (when check_dup). */
static int vb_push(vocab_builder *v, const char *s, float score, int32_t type, int check_dup) {
    if (check_dup && vb_find(v, s) >= 0) return 0;
    if (v->n == v->cap) {
        int32_t cap = v->cap ? v->cap * 2 : 1024;
        char **t = realloc(v->tok, sizeof(char *) * (size_t)cap);
        if (!t) return PX_ENOMEM;
        v->tok = t;
        float *sc = realloc(v->score, sizeof(float) * (size_t)cap);
        if (!sc) return PX_ENOMEM;
        v->score = sc;
        int32_t *ty = realloc(v->type, sizeof(int32_t) * (size_t)cap);
        if (!ty) return PX_ENOMEM;
        v->type = ty;
        v->cap = cap;
    }
    v->tok[v->n] = strdup(s);
    if (!v->tok[v->n]) return PX_ENOMEM;
    v->score[v->n] = score;
    v->type[v->n] = type;
    v->n++;
    return 0;
}

static int vb_add(vocab_builder *v, const char *s, float score, int32_t type) {
    return vb_push(v, s, score, type, 1);
}

static void vb_free(vocab_builder *v) {
    for (int32_t i = 0; i < v->n; i++)
        free(v->tok[i]);
    free(v->tok);
    free(v->score);
    free(v->type);
}

#define SP "\xe2\x96\x81" /* U+2581, SentencePiece's space */

static int build_vocab(vocab_builder *v, px_arch arch, int32_t n_vocab) {
    int rc = 0;
    if (arch == PX_ARCH_GEMMA3) {
        static const char *const sp[] = {"<pad>",
                                         "<eos>",
                                         "<bos>",
                                         "<unk>",
                                         "<start_of_turn>",
                                         "<end_of_turn>",
                                         "<start_of_image>",
                                         "<end_of_image>"};
        for (size_t i = 0; i < PX_ARRAY_LEN(sp) && !rc; i++)
            rc = vb_add(v, sp[i], 0.0f, i == 3 ? PX_TOKEN_UNKNOWN : PX_TOKEN_CONTROL);
    } else {
        rc = vb_add(v, "<unk>", 0.0f, PX_TOKEN_UNKNOWN);
        if (!rc) rc = vb_add(v, "<s>", 0.0f, PX_TOKEN_CONTROL);
        if (!rc) rc = vb_add(v, "</s>", 0.0f, PX_TOKEN_CONTROL);
    }
    char buf[64];
    for (int b = 0; b < 256 && !rc; b++) {
        snprintf(buf, sizeof buf, "<0x%02X>", b);
        rc = vb_add(v, buf, 0.0f, PX_TOKEN_BYTE);
    }
    /* Single characters: the space marker, newline, tab, printable ASCII. */
    float score = -1.0f;
    if (!rc) rc = vb_add(v, SP, score, PX_TOKEN_NORMAL);
    if (!rc) rc = vb_add(v, "\n", score, PX_TOKEN_NORMAL);
    if (!rc) rc = vb_add(v, "\t", score, PX_TOKEN_NORMAL);
    for (int ch = 33; ch < 127 && !rc; ch++) {
        buf[0] = (char)ch;
        buf[1] = 0;
        rc = vb_add(v, buf, score, PX_TOKEN_NORMAL);
    }
    if (!rc) rc = vb_add(v, SP SP, -2.0f, PX_TOKEN_NORMAL);
    if (!rc) rc = vb_add(v, "\n\n", -2.0f, PX_TOKEN_NORMAL);
    /* Words: prefixes in order of length, earlier words score higher. */
    for (size_t w = 0; w < PX_ARRAY_LEN(k_words) && !rc; w++) {
        const char *word = k_words[w];
        size_t len = strlen(word);
        for (int with_space = 0; with_space < 2 && !rc; with_space++) {
            for (size_t k = 2; k <= len + (size_t)with_space && !rc; k++) {
                size_t o = 0;
                if (with_space) {
                    memcpy(buf, SP, 3);
                    o = 3;
                    memcpy(buf + o, word, k - 1);
                    buf[o + k - 1] = 0;
                } else {
                    memcpy(buf, word, k);
                    buf[k] = 0;
                }
                rc = vb_add(v, buf, -10.0f - (float)w - (float)k * 0.01f, PX_TOKEN_NORMAL);
            }
        }
    }
    if (rc) return rc;
    if (v->n > n_vocab) return PX_EINVAL;
    for (int32_t i = v->n; i < n_vocab && !rc; i++) {
        snprintf(buf, sizeof buf, "<unused%d>", i);
        rc = vb_push(v, buf, -1e9f, PX_TOKEN_UNUSED, 0); /* unique by construction */
    }
    return rc;
}

int px_mkmodel_write_vocab(struct px_gguf_writer *w, px_arch arch, int32_t n_vocab) {
    vocab_builder v = {0};
    int rc = build_vocab(&v, arch, n_vocab);
    if (rc == 0) rc = px_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    if (rc == 0)
        rc = px_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v.tok,
                                        (uint64_t)v.n);
    if (rc == 0)
        rc = px_gguf_writer_set_arr(w, "tokenizer.ggml.scores", PX_GGUF_FLOAT32, v.score,
                                    (uint64_t)v.n);
    if (rc == 0)
        rc = px_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", PX_GGUF_INT32, v.type,
                                    (uint64_t)v.n);
    int gemma = arch == PX_ARCH_GEMMA3;
    if (rc == 0) rc = px_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", gemma ? 2 : 1);
    if (rc == 0) rc = px_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", gemma ? 1 : 2);
    if (rc == 0) rc = px_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", gemma ? 3 : 0);
    if (rc == 0 && gemma) rc = px_gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", 0);
    if (rc == 0) rc = px_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    if (rc == 0) rc = px_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false);
    if (rc == 0) rc = px_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", !gemma);
    if (rc == 0 && gemma)
        rc = px_gguf_writer_set_str(
            w, "tokenizer.chat_template",
            "{{ bos_token }}{% for message in messages %}<start_of_turn>{{ message['role'] }}\n"
            "{{ message['content'] | trim }}<end_of_turn>\n{% endfor %}"
            "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}");
    vb_free(&v);
    return rc;
}

void px_mkmodel_opts_tiny(px_mkmodel_opts *o, px_arch arch) {
    memset(o, 0, sizeof *o);
    o->arch = arch;
    o->seed = 1;
    o->name =
        arch == PX_ARCH_GEMMA3 ? "tiny-gemma3 (random weights)" : "tiny-llama (random weights)";
    o->n_vocab = 1536;
    o->n_embd = 64;
    o->n_layer = arch == PX_ARCH_GEMMA3 ? 7 : 2;
    o->n_head = 4;
    o->n_head_kv = arch == PX_ARCH_GEMMA3 ? 1 : 2;
    o->head_dim = arch == PX_ARCH_GEMMA3 ? 32 : 16;
    o->n_ff = 128;
    o->n_ctx = 2048;
    o->sliding_window = arch == PX_ARCH_GEMMA3 ? 32 : 0;
    o->rope_base = arch == PX_ARCH_GEMMA3 ? 1e6f : 1e4f;
    o->rope_scale = 1.0f;
    o->wtype = PX_DTYPE_F32;
    o->embd_type = PX_DTYPE_F32;
    o->tied_output = arch == PX_ARCH_GEMMA3;
}

void px_mkmodel_opts_demo(px_mkmodel_opts *o) {
    px_mkmodel_opts_tiny(o, PX_ARCH_GEMMA3);
    o->seed = 42;
    o->name = "pollux-demo (random weights)";
    o->n_vocab = 2048;
    o->n_embd = 256;
    o->n_layer = 6;
    o->n_head = 4;
    o->n_head_kv = 1;
    o->head_dim = 64;
    o->n_ff = 768;
    o->n_ctx = 8192;
    o->sliding_window = 512;
    o->wtype = PX_DTYPE_Q8_0;
    o->embd_type = PX_DTYPE_Q8_0;
}

void px_mkmodel_opts_1b(px_mkmodel_opts *o, px_dtype wtype) {
    px_mkmodel_opts_tiny(o, PX_ARCH_GEMMA3);
    o->seed = 1;
    o->name = "gemma3-1b-dims (random weights)";
    o->n_vocab = 262144;
    o->n_embd = 1152;
    o->n_layer = 26;
    o->n_head = 4;
    o->n_head_kv = 1;
    o->head_dim = 256;
    o->n_ff = 6912;
    o->n_ctx = 32768;
    o->sliding_window = 512;
    o->wtype = wtype;
    o->embd_type = wtype;
}

float px_mkmodel_rand(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    uint64_t r = *s * 0x2545F4914F6CDD1Dull;
    return (float)((double)(r >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

/* The type a tensor with rows of n_in gets when `want` does not divide them,
 * as llama.cpp's quantizer falls back for K-quants. */
static px_dtype fit_type(px_dtype want, int64_t n_in) {
    const px_dtype_info *info = px_dtype_get(want);
    if (info && info->block_elems > 0 && n_in % info->block_elems == 0) return want;
    switch (want) {
    case PX_DTYPE_Q4_K: return PX_DTYPE_Q5_0;
    case PX_DTYPE_Q5_K: return PX_DTYPE_Q5_0;
    case PX_DTYPE_Q6_K: return PX_DTYPE_Q8_0;
    default: return PX_DTYPE_F16;
    }
}

/* Adds a (rows, n_in) matrix of uniform random values times `scale` (plus
 * `offset`), quantized to `type`. A 1-row matrix is written as a vector. */
static int add_random(px_gguf_writer *w, const char *name, px_dtype type, int64_t n_in,
                      int64_t rows, float scale, float offset, uint64_t *rng) {
    type = fit_type(type, n_in);
    size_t row_bytes = px_dtype_row_size(type, n_in);
    if (!row_bytes) return PX_EINVAL;
    char *data = malloc(row_bytes * (size_t)rows);
    float *row = malloc(sizeof(float) * (size_t)n_in);
    int rc = data && row ? 0 : PX_ENOMEM;
    for (int64_t r = 0; r < rows && rc == 0; r++) {
        for (int64_t i = 0; i < n_in; i++)
            row[i] = offset + scale * px_mkmodel_rand(rng);
        rc = px_quantize_row(type, row, data + (size_t)r * row_bytes, n_in);
    }
    if (rc == 0) {
        int64_t ne[2] = {n_in, rows};
        rc = px_gguf_writer_add_tensor(w, name, type, rows == 1 ? 1 : 2, ne, data);
    }
    free(data);
    free(row);
    return rc;
}

/* llama.cpp's Q4_K_M gives more bits to some layers' attn_v and ffn_down. */
static int more_bits(int il, int n_layer) {
    return il < n_layer / 8 || il >= 7 * n_layer / 8 || (il - n_layer / 8) % 3 == 2;
}

int px_mkmodel_write(const px_mkmodel_opts *o, const char *path, char *err, size_t errlen) {
    if (o->n_embd <= 0 || o->n_layer <= 0 || o->n_head <= 0 || o->n_head_kv <= 0 ||
        o->head_dim <= 0 || o->n_ff <= 0 || o->n_ctx <= 0 || o->n_head % o->n_head_kv != 0)
        return px_fail(err, errlen, PX_EINVAL, "invalid model dimensions");
    int gemma = o->arch == PX_ARCH_GEMMA3;
    const char *arch = gemma ? "gemma3" : "llama";
    px_gguf_writer *w = px_gguf_writer_create();
    if (!w) return px_fail(err, errlen, PX_ENOMEM, "out of memory");
    char key[128];
    int rc = 0;
#define SETU(suffix, v)                                                                            \
    do {                                                                                           \
        snprintf(key, sizeof key, "%s.%s", arch, suffix);                                          \
        if (rc == 0) rc = px_gguf_writer_set_u32(w, key, (uint32_t)(v));                           \
    } while (0)
#define SETF(suffix, v)                                                                            \
    do {                                                                                           \
        snprintf(key, sizeof key, "%s.%s", arch, suffix);                                          \
        if (rc == 0) rc = px_gguf_writer_set_f32(w, key, (v));                                     \
    } while (0)
    rc = px_gguf_writer_set_str(w, "general.architecture", arch);
    if (rc == 0) rc = px_gguf_writer_set_str(w, "general.name", o->name ? o->name : "random");
    SETU("context_length", o->n_ctx);
    SETU("embedding_length", o->n_embd);
    SETU("block_count", o->n_layer);
    SETU("feed_forward_length", o->n_ff);
    SETU("attention.head_count", o->n_head);
    SETU("attention.head_count_kv", o->n_head_kv);
    SETF("attention.layer_norm_rms_epsilon", gemma ? 1e-6f : 1e-5f);
    SETF("rope.freq_base", o->rope_base);
    if (gemma) {
        SETU("attention.key_length", o->head_dim);
        SETU("attention.value_length", o->head_dim);
        SETU("attention.sliding_window", o->sliding_window);
        if (o->rope_scale != 1.0f) {
            snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
            if (rc == 0) rc = px_gguf_writer_set_str(w, key, "linear");
            SETF("rope.scaling.factor", o->rope_scale);
        }
    } else {
        SETU("rope.dimension_count", o->head_dim);
    }
#undef SETU
#undef SETF
    if (rc == 0) {
        rc = px_mkmodel_write_vocab(w, o->arch, o->n_vocab);
        if (rc == PX_EINVAL) {
            px_gguf_writer_destroy(w);
            return px_fail(err, errlen, rc, "--vocab %d is smaller than the synthetic vocabulary",
                           o->n_vocab);
        }
    }
    if (rc) {
        px_gguf_writer_destroy(w);
        return px_fail(err, errlen, rc, "building metadata: %s", px_strerror(rc));
    }

    uint64_t rng = o->seed * 0x9E3779B97F4A7C15ull + 0x1234567ull;
    const int64_t E = o->n_embd, F = o->n_ff, Q = (int64_t)o->n_head * o->head_dim,
                  KV = (int64_t)o->n_head_kv * o->head_dim;
    /* Gemma stores norm weights as (1 + w); both architectures get weights
     * near 1 so that activations stay O(1) through the layers. */
    const float norm_off = 1.0f, norm_sc = 0.1f;
    rc = add_random(w, "token_embd.weight", o->embd_type, E, o->n_vocab,
                    gemma ? 1.0f / sqrtf((float)E) : 1.0f, 0.0f, &rng);
    for (int il = 0; il < o->n_layer && rc == 0; il++) {
        char name[96];
        px_dtype t = o->wtype, tv = o->wtype;
        if (o->wtype == PX_DTYPE_Q4_K && more_bits(il, o->n_layer)) tv = PX_DTYPE_Q6_K;
        struct {
            const char *suffix;
            px_dtype type;
            int64_t n_in, rows;
            float scale, off;
        } ts[] = {
            {"attn_norm", PX_DTYPE_F32, E, 1, norm_sc, norm_off},
            {"attn_q", t, E, Q, 1.0f / sqrtf((float)E), 0},
            {"attn_k", t, E, KV, 1.0f / sqrtf((float)E), 0},
            {"attn_v", tv, E, KV, 1.0f / sqrtf((float)E), 0},
            {"attn_output", t, Q, E, 1.0f / sqrtf((float)Q), 0},
            {"ffn_norm", PX_DTYPE_F32, E, 1, norm_sc, norm_off},
            {"ffn_gate", t, E, F, 1.7f / sqrtf((float)E), 0},
            {"ffn_up", t, E, F, 1.7f / sqrtf((float)E), 0},
            {"ffn_down", tv, F, E, 1.7f / sqrtf((float)F), 0},
            {"attn_q_norm", PX_DTYPE_F32, o->head_dim, 1, norm_sc, norm_off},
            {"attn_k_norm", PX_DTYPE_F32, o->head_dim, 1, norm_sc, norm_off},
            {"post_attention_norm", PX_DTYPE_F32, E, 1, norm_sc, norm_off},
            {"post_ffw_norm", PX_DTYPE_F32, E, 1, norm_sc, norm_off},
        };
        size_t n = gemma ? PX_ARRAY_LEN(ts) : 9;
        for (size_t i = 0; i < n && rc == 0; i++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", il, ts[i].suffix);
            rc = add_random(w, name, ts[i].type, ts[i].n_in, ts[i].rows, ts[i].scale, ts[i].off,
                            &rng);
        }
    }
    if (rc == 0)
        rc = add_random(w, "output_norm.weight", PX_DTYPE_F32, E, 1, norm_sc, norm_off, &rng);
    if (rc == 0 && !o->tied_output)
        rc = add_random(w, "output.weight", o->wtype == PX_DTYPE_Q4_K ? PX_DTYPE_Q6_K : o->wtype, E,
                        o->n_vocab, 1.0f / sqrtf((float)E), 0.0f, &rng);
    if (rc) {
        px_gguf_writer_destroy(w);
        return px_fail(err, errlen, rc, "building tensors: %s", px_strerror(rc));
    }
    rc = px_gguf_writer_write(w, path, err, errlen);
    px_gguf_writer_destroy(w);
    return rc;
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

int px_demo_model_path(char *out, size_t cap, char *err, size_t errlen) {
    const char *env = getenv("PX_DEMO_MODEL");
    if (env && *env) {
        if ((size_t)snprintf(out, cap, "%s", env) >= cap)
            return px_fail(err, errlen, PX_ETOOBIG, "PX_DEMO_MODEL path too long");
        if (file_exists(out)) return 0;
    } else {
        const char *cands[] = {"demo.gguf", PX_PKGDATADIR "/demo.gguf"};
        for (size_t i = 0; i < PX_ARRAY_LEN(cands); i++) {
            if (file_exists(cands[i])) {
                if ((size_t)snprintf(out, cap, "%s", cands[i]) >= cap)
                    return px_fail(err, errlen, PX_ETOOBIG, "path too long");
                return 0;
            }
        }
        const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
        char dir[4096];
        if (xdg && *xdg)
            snprintf(dir, sizeof dir, "%s/pollux", xdg);
        else if (home && *home)
            snprintf(dir, sizeof dir, "%s/.cache/pollux", home);
        else
            snprintf(dir, sizeof dir, "/tmp/pollux-cache");
        if ((size_t)snprintf(out, cap, "%s/demo.gguf", dir) >= cap)
            return px_fail(err, errlen, PX_ETOOBIG, "cache path too long");
        if (file_exists(out)) return 0;
        /* mkdir -p of the last two components is enough for ~/.cache/pollux. */
        char parent[4096];
        snprintf(parent, sizeof parent, "%s", dir);
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent) {
            *slash = 0;
            mkdir(parent, 0755);
        }
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
            return px_fail(err, errlen, PX_EIO, "cannot create %s: %s", dir, strerror(errno));
    }
    px_mkmodel_opts o;
    px_mkmodel_opts_demo(&o);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", out, (long)getpid());
    int rc = px_mkmodel_write(&o, tmp, err, errlen);
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    if (rename(tmp, out) < 0) {
        unlink(tmp);
        return px_fail(err, errlen, PX_EIO, "cannot write %s: %s", out, strerror(errno));
    }
    return 0;
}
