/* sampler.h — turns a row of logits into the next token.
 *
 * Order of operations (the one vLLM and llama.cpp share): repetition penalty
 * (over prompt and output tokens, divide positive / multiply negative
 * logits), presence and frequency penalties (over output tokens), then
 * temperature; temperature 0 is greedy (argmax, lowest id on ties). Then
 * top-k, top-p (nucleus), min-p (relative to the top probability) filter the
 * candidates, and one is drawn with the sequence's own RNG. The RNG state is
 * per sequence (seeded from px_sampling.seed), so a sequence's tokens do not
 * depend on what else is in the batch.
 * Logprobs are log-softmax of the raw model logits (before penalties and
 * temperature), for the chosen token and the top n_logprobs.
 * Owns: a px_sampler holds scratch sized for the vocabulary (no allocation
 * per call). Threads: one caller at a time per sampler. */
#ifndef PX_SAMPLER_H
#define PX_SAMPLER_H

#include <stdint.h>

#define PX_MAX_LOGPROBS 20

/* Sampling parameters of one request (plain data). */
typedef struct px_sampling {
    float temperature;        /* 0 = greedy; default 1 */
    int32_t top_k;            /* <= 0: off */
    float top_p;              /* 1: off */
    float min_p;              /* 0: off */
    float repetition_penalty; /* 1: off; > 0 */
    float presence_penalty;   /* 0: off; -2..2 */
    float frequency_penalty;  /* 0: off; -2..2 */
    uint64_t seed;            /* RNG seed for this sequence */
    int32_t n_logprobs;       /* top logprobs to return, 0..PX_MAX_LOGPROBS */
    int32_t want_logprobs;    /* nonzero: fill the chosen token's logprob */
} px_sampling;

/* Sets the defaults listed above (seed 0). */
void px_sampling_init(px_sampling *p);

/* The result of one draw. */
typedef struct px_sample {
    int32_t token;                    /* chosen id */
    float logprob;                    /* its log-probability (raw logits) */
    int32_t n_top;                    /* entries in top_ids/top_logprobs */
    int32_t top_ids[PX_MAX_LOGPROBS]; /* most likely first */
    float top_logprobs[PX_MAX_LOGPROBS];
} px_sample;

typedef struct px_sampler px_sampler;

px_sampler *px_sampler_create(int32_t n_vocab);
void px_sampler_destroy(px_sampler *s);

/* Seeds an RNG state from a seed (splitmix64). */
uint64_t px_rng_seed(uint64_t seed);

/* Samples from logits (n_vocab floats; left unchanged). `prev` lists the
 * prompt's tokens followed by the generated ones: n_prompt then n_out of
 * them, used by the penalties. *rng is advanced. Returns 0 or PX_EINVAL
 * (non-finite logits everywhere, bad parameters).
 * NaN logits count as -inf and are never drawn; +inf counts as FLT_MAX.
 * Penalty tokens outside [0, n_vocab) are ignored. Greedy (temperature 0 or
 * top_k 1) leaves *rng as it was. out->n_top can be below n_logprobs when
 * fewer tokens have a finite logit. */
int px_sample_next(px_sampler *s, const px_sampling *p, uint64_t *rng, const float *logits,
                   const int32_t *prev, int32_t n_prompt, int32_t n_out, px_sample *out);

/* Log-probability of `token` and the n_top most likely tokens under the raw
 * logits (log-softmax, as px_sample_next reports them), into out (out->token
 * = token). For prompt logprobs. Returns 0 or PX_EINVAL. */
int px_sample_logprob(px_sampler *s, const float *logits, int32_t token, int32_t n_top,
                      px_sample *out);

#endif
