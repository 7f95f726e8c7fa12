/* sampler.c — penalties, temperature, top-k / top-p / min-p and the draw.
 *
 * One call works on a private copy of the logits (`work`) and never sorts the
 * whole vocabulary: top-k is a streaming threshold buffer compacted by
 * quickselect, top-p is a histogram of mass over log-spaced buckets followed
 * by a quickselect on mass inside the one bucket holding the cut, min-p is a
 * threshold compare, and the kept candidates are drawn by scanning their
 * cumulative mass in whatever (deterministic) order they sit. With no filter
 * active the draw scans the cumulative exp of the whole row directly. Greedy
 * decoding (temperature 0, or top_k 1) does not advance the RNG.
 *
 * Non-finite logits: NaN counts as -inf (never drawn); +inf is clamped to
 * FLT_MAX so a row holding +inf draws among its +inf tokens instead of
 * producing NaN. Penalty tokens outside [0, n_vocab) are ignored. */
#include "sampler.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "px.h"

struct px_sampler {
    int32_t n_vocab;
    float *work;              /* (n_vocab) clean, penalised logits; then their exp() */
    int32_t *idx;             /* (n_vocab) candidate token ids */
    float *val;               /* (n_vocab) candidate logit or unnormalised probability */
    uint32_t *count;          /* (n_vocab) per-token counts; all zero between calls */
    double bucket_mass[1024]; /* top-p histogram, see mass_bucket() */
};

/* Small ranges are finished by insertion sort rather than more partitioning. */
#define SMALL_RANGE 16
/* Minimum buffer of the streaming top-k selection (in candidates). */
#define TOPK_MIN_BUF 1024
/* Top-p over more candidates than this first narrows the cut by histogram. */
#define TOPP_HIST_MIN 4096

void px_sampling_init(px_sampling *p) {
    memset(p, 0, sizeof(*p));
    p->temperature = 1.0f;
    p->top_k = 0;
    p->top_p = 1.0f;
    p->min_p = 0.0f;
    p->repetition_penalty = 1.0f;
    p->presence_penalty = 0.0f;
    p->frequency_penalty = 0.0f;
    p->seed = 0;
    p->n_logprobs = 0;
    p->want_logprobs = 0;
}

px_sampler *px_sampler_create(int32_t n_vocab) {
    if (n_vocab <= 0) return NULL;
    px_sampler *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    size_t n = (size_t)n_vocab;
    s->n_vocab = n_vocab;
    s->work = malloc(n * sizeof(*s->work));
    s->idx = malloc(n * sizeof(*s->idx));
    s->val = malloc(n * sizeof(*s->val));
    s->count = calloc(n, sizeof(*s->count));
    if (!s->work || !s->idx || !s->val || !s->count) {
        px_sampler_destroy(s);
        return NULL;
    }
    return s;
}

void px_sampler_destroy(px_sampler *s) {
    if (!s) return;
    free(s->work);
    free(s->idx);
    free(s->val);
    free(s->count);
    free(s);
}

/* --- RNG: splitmix64 stepping on the 64-bit per-sequence state ----------- */

static uint64_t splitmix64_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t px_rng_seed(uint64_t seed) {
    return splitmix64_mix(seed + 0x9e3779b97f4a7c15ull);
}

/* Uniform double in [0, 1) from the top 53 bits of the next output. */
static double rng_uniform(uint64_t *state) {
    *state += 0x9e3779b97f4a7c15ull;
    return (double)(splitmix64_mix(*state) >> 11) * (1.0 / 9007199254740992.0);
}

/* --- helpers ------------------------------------------------------------- */

/* exp(x) for x <= 0 (-inf allowed): x = n ln2 + r with |r| <= ln2/2 and a
 * degree-7 Taylor polynomial for e^r (truncation 5e-9, a few ulp overall);
 * results below e^-87 flush to 0. exp_neg(0) is exactly 1. Branch-free
 * float arithmetic so loops over it vectorise; glibc expf does not. */
static inline float exp_neg(float x) {
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to int */
    /* Range test on the bits, as signed ints: among negative floats a
     * larger pattern is a more negative x (-inf included). Masks instead of
     * float compares or min() keep GCC vectorising with plain SSE2. */
    const int32_t lim = (int32_t)0xC2AE0000u; /* -87.0f */
    int32_t xb;
    memcpy(&xb, &x, sizeof(xb));
    int32_t below = -((xb < 0) & (xb > lim)); /* all ones when x < -87 */
    xb = (xb & ~below) | (lim & below);
    float xc;
    memcpy(&xc, &xb, sizeof(xc));
    float t = xc * 1.44269504088896341f + magic;
    float n = t - magic;
    float r = xc - n * 0.693359375f; /* ln2 split in two for exactness */
    r = r + n * 2.12194440e-4f;
    float q = 1.0f / 5040.0f;
    q = q * r + 1.0f / 720.0f;
    q = q * r + 1.0f / 120.0f;
    q = q * r + 1.0f / 24.0f;
    q = q * r + 1.0f / 6.0f;
    q = q * r + 0.5f;
    q = q * r + 1.0f;
    q = q * r + 1.0f;
    int32_t tb;
    memcpy(&tb, &t, sizeof(tb));
    uint32_t sb = (uint32_t)(tb - 0x4B400000 + 127) << 23; /* 2^n; n >= -126 */
    sb &= ~(uint32_t)below;                                /* scale 0 below the range */
    float scale;
    memcpy(&scale, &sb, sizeof(scale));
    return q * scale;
}

/* x[i] = exp((x[i] - m) * inv_t) for i < n; returns the sum in double. In
 * place and in fixed blocks of 8: GCC -O2's cheap vectoriser takes neither
 * aliasing checks nor unknown trip counts. Four partial sums keep the add
 * chain short. */
static double exp_shift(float *x, int32_t n, float m, float inv_t) {
    int32_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int32_t j = 0; j < 8; j++)
            x[i + j] = exp_neg((x[i + j] - m) * inv_t);
    for (; i < n; i++)
        x[i] = exp_neg((x[i] - m) * inv_t);
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    for (i = 0; i + 4 <= n; i += 4) {
        s0 += x[i];
        s1 += x[i + 1];
        s2 += x[i + 2];
        s3 += x[i + 3];
    }
    for (; i < n; i++)
        s0 += x[i];
    return (s0 + s1) + (s2 + s3);
}

/* Copies n logits with NaN -> -inf and +inf -> FLT_MAX; returns the max. */
static float clean_copy(float *dst, const float *src, int32_t n) {
    float m = -INFINITY;
    for (int32_t i = 0; i < n; i++) {
        float x = src[i];
        x = x != x ? -INFINITY : x;
        x = x > FLT_MAX ? FLT_MAX : x;
        dst[i] = x;
        m = x > m ? x : m;
    }
    return m;
}

/* The candidate order: larger value first, lower id on ties. Strict. */
static inline int better(float va, int32_t ia, float vb, int32_t ib) {
    return va > vb || (va == vb && ia < ib);
}

static inline void swap_cand(int32_t *idx, float *val, int32_t a, int32_t b) {
    int32_t ti = idx[a];
    idx[a] = idx[b];
    idx[b] = ti;
    float tv = val[a];
    val[a] = val[b];
    val[b] = tv;
}

/* Sorts [lo, hi) best first. */
static void insertion_sort(int32_t *idx, float *val, int32_t lo, int32_t hi) {
    for (int32_t i = lo + 1; i < hi; i++) {
        int32_t ci = idx[i];
        float cv = val[i];
        int32_t j = i;
        while (j > lo && better(cv, ci, val[j - 1], idx[j - 1])) {
            idx[j] = idx[j - 1];
            val[j] = val[j - 1];
            j--;
        }
        idx[j] = ci;
        val[j] = cv;
    }
}

/* Partitions [lo, hi) (hi - lo >= 3) around a median-of-three pivot: returns
 * p with [lo, p) better than the pivot, the pivot at p, (p, hi) worse. */
static int32_t partition(int32_t *idx, float *val, int32_t lo, int32_t hi) {
    int32_t mid = lo + (hi - lo) / 2, last = hi - 1;
    if (better(val[mid], idx[mid], val[lo], idx[lo])) swap_cand(idx, val, mid, lo);
    if (better(val[last], idx[last], val[lo], idx[lo])) swap_cand(idx, val, last, lo);
    if (better(val[last], idx[last], val[mid], idx[mid])) swap_cand(idx, val, last, mid);
    /* Now lo >= mid >= last in candidate order; mid is the median. */
    swap_cand(idx, val, mid, last);
    float pv = val[last];
    int32_t pi = idx[last];
    int32_t store = lo;
    for (int32_t i = lo; i < last; i++) {
        if (better(val[i], idx[i], pv, pi)) {
            swap_cand(idx, val, i, store);
            store++;
        }
    }
    swap_cand(idx, val, store, last);
    return store;
}

/* Moves the k best of the n candidates to [0, k) (in no particular order). */
static void select_k(int32_t *idx, float *val, int32_t n, int32_t k) {
    int32_t lo = 0, hi = n;
    while (hi - lo > SMALL_RANGE) {
        int32_t p = partition(idx, val, lo, hi);
        if (p == k || p + 1 == k) return;
        if (p > k)
            hi = p;
        else
            lo = p + 1;
    }
    insertion_sort(idx, val, lo, hi);
}

/* Top-p: reorders the n candidates (val = unnormalised probabilities) so that
 * the smallest best-first prefix whose mass reaches `target` comes first, and
 * returns its length. Expected O(n): only the side holding the cut recurses. */
static int32_t select_mass(int32_t *idx, float *val, int32_t n, double target) {
    int32_t lo = 0, hi = n;
    double acc = 0.0; /* mass of [0, lo), all of it kept */
    while (hi - lo > SMALL_RANGE) {
        int32_t p = partition(idx, val, lo, hi);
        double upper = 0.0;
        for (int32_t i = lo; i < p; i++)
            upper += val[i];
        if (acc + upper >= target) {
            hi = p;
        } else {
            acc += upper + val[p];
            if (acc >= target) return p + 1;
            lo = p + 1;
        }
    }
    insertion_sort(idx, val, lo, hi);
    for (int32_t i = lo; i < hi; i++) {
        if (acc >= target) return i;
        acc += val[i];
    }
    return hi; /* rounding left the target unreached: keep everything */
}

/* Histogram bucket of a probability e in (0, 1]: its float bits counted
 * down from 1.0, 8 buckets per octave, bucket 0 holding the largest. The
 * result lies in [0, 1016] and never increases as e grows. */
static inline uint32_t mass_bucket(float e) {
    uint32_t b;
    memcpy(&b, &e, sizeof(b));
    return (0x3F800000u - b) >> 20;
}

/* select_mass() for large n: one pass sums mass per bucket, which locates the
 * bucket holding the cut; buckets above it are kept whole, and only the
 * boundary bucket is searched by select_mass(). */
static int32_t select_top_p(px_sampler *s, int32_t n, double target) {
    int32_t *idx = s->idx;
    float *val = s->val;
    if (n <= TOPP_HIST_MIN) return select_mass(idx, val, n, target);
    double *mass = s->bucket_mass;
    const uint32_t n_buckets = (uint32_t)PX_ARRAY_LEN(s->bucket_mass);
    memset(mass, 0, sizeof(s->bucket_mass));
    for (int32_t j = 0; j < n; j++)
        mass[mass_bucket(val[j])] += val[j];
    double acc = 0.0; /* mass of the buckets above `cut` */
    uint32_t cut = 0;
    while (cut < n_buckets && acc + mass[cut] < target)
        acc += mass[cut++];
    if (cut == n_buckets) return n; /* rounding: keep everything */
    int32_t w = 0;
    for (int32_t j = 0; j < n; j++)
        if (mass_bucket(val[j]) < cut) swap_cand(idx, val, j, w++);
    int32_t kept = w;
    for (int32_t j = kept; j < n; j++)
        if (mass_bucket(val[j]) == cut) swap_cand(idx, val, j, w++);
    return kept + select_mass(idx + kept, val + kept, w - kept, target - acc);
}

/* Top-k over work[0, n_vocab): leaves the k best finite logits (fewer if the
 * row has fewer) in idx/val and returns their count. A buffer of 2k
 * candidates is filled with values above the running k-th best and compacted
 * by quickselect when full, so most tokens cost one compare. */
static int32_t top_k_logits(px_sampler *s, int32_t k) {
    int64_t cap = PX_MAX(2 * (int64_t)k, TOPK_MIN_BUF);
    if (cap > s->n_vocab) cap = s->n_vocab;
    float thr = -INFINITY; /* the k-th best value after the last compaction */
    int32_t n = 0;
    for (int32_t i = 0; i < s->n_vocab; i++) {
        float v = s->work[i];
        /* Ids only grow, so an equal value is worse than the kept one. */
        if (!(v > thr)) continue;
        if (n == cap) {
            select_k(s->idx, s->val, n, k);
            n = k;
            /* The worst of the k kept is the new bar. */
            thr = s->val[0];
            for (int32_t j = 1; j < k; j++)
                thr = s->val[j] < thr ? s->val[j] : thr;
            if (!(v > thr)) continue;
        }
        s->idx[n] = i;
        s->val[n] = v;
        n++;
    }
    if (n > k) {
        select_k(s->idx, s->val, n, k);
        n = k;
    }
    return n;
}

/* Picks the candidate at which the cumulative mass passes u * total. */
static int32_t draw(const int32_t *idx, const float *val, int32_t n, double u) {
    double total = 0.0;
    for (int32_t i = 0; i < n; i++)
        total += val[i];
    double target = u * total, acc = 0.0;
    int32_t last = idx[0];
    for (int32_t i = 0; i < n; i++) {
        if (val[i] <= 0.0f) continue;
        acc += val[i];
        last = idx[i];
        if (target < acc) return idx[i];
    }
    return last;
}

/* draw() over a whole row of masses e[0, n) summing to `total`. */
static int32_t draw_row(const float *e, int32_t n, double total, double u) {
    double target = u * total, acc = 0.0;
    int32_t last = 0;
    for (int32_t i = 0; i < n; i++) {
        if (e[i] <= 0.0f) continue;
        acc += e[i];
        last = i;
        if (target < acc) return i;
    }
    return last;
}

/* --- penalties ----------------------------------------------------------- */

/* Repetition penalty over prompt and output, each distinct token once. The
 * count array marks seen tokens and is cleared again before returning. */
static void apply_repetition(px_sampler *s, float penalty, const int32_t *prev, int32_t n_prev) {
    for (int32_t i = 0; i < n_prev; i++) {
        int32_t t = prev[i];
        if (t < 0 || t >= s->n_vocab || s->count[t]) continue;
        s->count[t] = 1;
        float x = s->work[t];
        x = x > 0.0f ? x / penalty : x * penalty;
        s->work[t] = x > FLT_MAX ? FLT_MAX : x; /* a penalty < 1 can overflow */
    }
    for (int32_t i = 0; i < n_prev; i++) {
        int32_t t = prev[i];
        if (t >= 0 && t < s->n_vocab) s->count[t] = 0;
    }
}

/* Presence (once per distinct token) and frequency (per occurrence) over the
 * output tokens; counts are reset as each token is penalised. */
static void apply_presence_frequency(px_sampler *s, float presence, float frequency,
                                     const int32_t *out, int32_t n_out) {
    for (int32_t i = 0; i < n_out; i++) {
        int32_t t = out[i];
        if (t >= 0 && t < s->n_vocab) s->count[t]++;
    }
    for (int32_t i = 0; i < n_out; i++) {
        int32_t t = out[i];
        if (t < 0 || t >= s->n_vocab || s->count[t] == 0) continue;
        s->work[t] -= (float)s->count[t] * frequency + presence;
        s->count[t] = 0;
    }
}

/* --- logprobs ------------------------------------------------------------ */

/* Log-softmax of the raw logits for the chosen token and the top n: max
 * subtracted, sum accumulated in double. Runs after the draw, so work and val
 * are free scratch. Tokens at -inf/NaN never enter the top list, so n_top can
 * be below n_logprobs for heavily masked rows. */
static void fill_logprobs(px_sampler *s, const float *logits, const px_sampling *p,
                          px_sample *out) {
    const int32_t nv = s->n_vocab;
    const float *x = s->work;
    float m = clean_copy(s->work, logits, nv);
    memcpy(s->val, s->work, (size_t)nv * sizeof(*s->val));
    double lse = (double)m + log(exp_shift(s->val, nv, m, 1.0f));

    if (p->want_logprobs) out->logprob = (float)((double)x[out->token] - lse);

    /* Insertion into a best-first list; scanning by ascending id keeps the
     * lower id on ties because an equal later value is not "better". */
    int32_t n = 0, cap = p->n_logprobs;
    float top[PX_MAX_LOGPROBS];
    for (int32_t i = 0; i < nv && cap > 0; i++) {
        float v = x[i];
        if (v == -INFINITY || (n == cap && !(v > top[n - 1]))) continue;
        int32_t j = n < cap ? n++ : cap - 1;
        while (j > 0 && v > top[j - 1]) {
            top[j] = top[j - 1];
            out->top_ids[j] = out->top_ids[j - 1];
            j--;
        }
        top[j] = v;
        out->top_ids[j] = i;
    }
    out->n_top = n;
    for (int32_t j = 0; j < n; j++)
        out->top_logprobs[j] = (float)((double)top[j] - lse);
}

/* --- the call ------------------------------------------------------------ */

static int params_ok(const px_sampling *p) {
    return p->temperature >= 0.0f && isfinite(p->temperature) && p->top_p > 0.0f &&
           p->top_p <= 1.0f && p->min_p >= 0.0f && p->min_p <= 1.0f &&
           p->repetition_penalty > 0.0f && isfinite(p->repetition_penalty) &&
           isfinite(p->presence_penalty) && isfinite(p->frequency_penalty) && p->n_logprobs >= 0 &&
           p->n_logprobs <= PX_MAX_LOGPROBS;
}

/* Draws from candidates idx/val[0, n) (val = exp of the scaled logit, the
 * max at 1; `total` = mass of the top-k set or the vocabulary). Min-p keeps a
 * best-first prefix, as top-p does, so cutting it first and running top-p
 * against `total` leaves the shorter of the two prefixes: the same set as
 * top-p then min-p. */
static int32_t filter_and_draw(px_sampler *s, const px_sampling *p, uint64_t *rng, int32_t n,
                               double total) {
    if (p->min_p > 0.0f) {
        int32_t w = 0;
        for (int32_t j = 0; j < n; j++) {
            if (s->val[j] >= p->min_p) {
                s->idx[w] = s->idx[j];
                s->val[w] = s->val[j];
                w++;
            }
        }
        n = w;
    }
    if (p->top_p < 1.0f) n = select_top_p(s, n, (double)p->top_p * total);
    assert(n > 0); /* the max (val 1) survives every filter */
    return draw(s->idx, s->val, n, rng_uniform(rng));
}

int px_sample_next(px_sampler *s, const px_sampling *p, uint64_t *rng, const float *logits,
                   const int32_t *prev, int32_t n_prompt, int32_t n_out, px_sample *out) {
    if (!out) return PX_EINVAL;
    memset(out, 0, sizeof(*out));
    out->token = -1;
    if (!s || !p || !rng || !logits || !params_ok(p) || n_prompt < 0 || n_out < 0 ||
        (n_prompt + (int64_t)n_out > 0 && !prev) || (int64_t)n_prompt + n_out > INT32_MAX)
        return PX_EINVAL;
    const int32_t nv = s->n_vocab;
    float *work = s->work;

    float m = clean_copy(work, logits, nv);
    if (p->repetition_penalty != 1.0f)
        apply_repetition(s, p->repetition_penalty, prev, n_prompt + n_out);
    if (p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f)
        apply_presence_frequency(s, p->presence_penalty, p->frequency_penalty,
                                 prev ? prev + n_prompt : NULL, n_out);
    if (p->repetition_penalty != 1.0f || p->presence_penalty != 0.0f ||
        p->frequency_penalty != 0.0f) {
        m = -INFINITY;
        for (int32_t i = 0; i < nv; i++)
            m = work[i] > m ? work[i] : m;
    }
    /* No finite logit, or penalties pushed every one to -inf. */
    if (m == -INFINITY) return PX_EINVAL;

    /* A temperature so small that 1/T overflows is greedy for all purposes. */
    float inv_t = p->temperature > 0.0f ? 1.0f / p->temperature : INFINITY;
    int32_t k = p->top_k > 0 && p->top_k < nv ? p->top_k : 0;
    if (!isfinite(inv_t) || k == 1) {
        int32_t arg = 0; /* the first maximum: lowest id on ties */
        while (work[arg] != m)
            arg++;
        out->token = arg;
    } else if (k > 0) {
        int32_t n = top_k_logits(s, k);
        double total = exp_shift(s->val, n, m, inv_t);
        out->token = filter_and_draw(s, p, rng, n, total);
    } else {
        double total = exp_shift(work, nv, m, inv_t);
        if (p->top_p >= 1.0f && p->min_p <= 0.0f) {
            /* No filter: scan the cumulative mass of the whole row. */
            out->token = draw_row(work, nv, total, rng_uniform(rng));
        } else {
            int32_t n = 0; /* min-p applied while gathering saves stores */
            for (int32_t i = 0; i < nv; i++) {
                if (work[i] > 0.0f && work[i] >= p->min_p) {
                    s->idx[n] = i;
                    s->val[n] = work[i];
                    n++;
                }
            }
            out->token = filter_and_draw(s, p, rng, n, total);
        }
    }

    if (p->want_logprobs || p->n_logprobs > 0) fill_logprobs(s, logits, p, out);
    return 0;
}

int px_sample_logprob(px_sampler *s, const float *logits, int32_t token, int32_t n_top,
                      px_sample *out) {
    if (!s || !logits || !out || token < 0 || token >= s->n_vocab || n_top < 0 ||
        n_top > PX_MAX_LOGPROBS)
        return PX_EINVAL;
    memset(out, 0, sizeof(*out));
    px_sampling p;
    px_sampling_init(&p);
    p.want_logprobs = 1;
    p.n_logprobs = n_top;
    out->token = token;
    fill_logprobs(s, logits, &p, out);
    return 0;
}
