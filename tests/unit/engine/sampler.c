/* sampler.c — tests of engine/sampler.c: greedy, filters, RNG, penalties,
 * logprobs, non-finite logits and parameter checks. Draw counts are checked
 * against expected probabilities with fixed seeds, so every run is the same. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "px.h"
#include "sampler.h"
#include "suites.h"
#include "util.h"

/* Empirical frequencies may differ from the expected ones by this many
 * binomial standard deviations (plus a tiny absolute slack). */
#define SIGMAS 5.0
/* Logprobs against a double-precision log-softmax. */
#define LOGPROB_TOL 1e-5

static int32_t sample_ok(px_sampler *s, const px_sampling *p, uint64_t *rng, const float *logits,
                         const int32_t *prev, int32_t n_prompt, int32_t n_out) {
    px_sample out;
    int rc = px_sample_next(s, p, rng, logits, prev, n_prompt, n_out, &out);
    ck_assert_int_eq(rc, 0);
    return out.token;
}

/* Draws n tokens and counts them into cnt[n_vocab]. */
static void count_draws(px_sampler *s, const px_sampling *p, uint64_t seed, const float *logits,
                        int32_t n_vocab, int n, int *cnt) {
    uint64_t rng = px_rng_seed(seed);
    memset(cnt, 0, (size_t)n_vocab * sizeof(*cnt));
    for (int i = 0; i < n; i++) {
        int32_t t = sample_ok(s, p, &rng, logits, NULL, 0, 0);
        ck_assert_int_ge(t, 0);
        ck_assert_int_lt(t, n_vocab);
        cnt[t]++;
    }
}

/* Checks counts against probabilities prob[] (zero means never drawn). */
static void check_freqs(const int *cnt, const double *prob, int32_t n_vocab, int n) {
    for (int32_t i = 0; i < n_vocab; i++) {
        if (prob[i] == 0.0) {
            ck_assert_msg(cnt[i] == 0, "token %d drawn %d times, expected never", i, cnt[i]);
            continue;
        }
        double expect = prob[i] * n;
        double sd = sqrt(n * prob[i] * (1.0 - prob[i]));
        ck_assert_msg(fabs(cnt[i] - expect) <= SIGMAS * sd + 1.0,
                      "token %d: %d draws, expected %.1f (sd %.1f)", i, cnt[i], expect, sd);
    }
}

/* softmax(logits / T) in double. */
static void softmax(const float *logits, int32_t n, double temp, double *prob) {
    double m = -INFINITY, sum = 0.0;
    for (int32_t i = 0; i < n; i++)
        m = fmax(m, logits[i]);
    for (int32_t i = 0; i < n; i++)
        sum += prob[i] = exp((logits[i] - m) / temp);
    for (int32_t i = 0; i < n; i++)
        prob[i] /= sum;
}

START_TEST(test_defaults) {
    px_sampling p;
    memset(&p, 0xff, sizeof(p));
    px_sampling_init(&p);
    ck_assert_float_eq(p.temperature, 1.0f);
    ck_assert_int_eq(p.top_k, 0);
    ck_assert_float_eq(p.top_p, 1.0f);
    ck_assert_float_eq(p.min_p, 0.0f);
    ck_assert_float_eq(p.repetition_penalty, 1.0f);
    ck_assert_float_eq(p.presence_penalty, 0.0f);
    ck_assert_float_eq(p.frequency_penalty, 0.0f);
    ck_assert_uint_eq(p.seed, 0);
    ck_assert_int_eq(p.n_logprobs, 0);
    ck_assert_int_eq(p.want_logprobs, 0);
}
END_TEST

START_TEST(test_rng_seed_splitmix64) {
    /* First splitmix64 outputs for seeds 1234567 and 0 (reference vectors). */
    ck_assert_uint_eq(px_rng_seed(1234567), 0x599ED017FB08FC85ull);
    ck_assert_uint_eq(px_rng_seed(0), 0xE220A8397B1DCDAFull);
}
END_TEST

START_TEST(test_greedy_argmax_and_ties) {
    px_sampler *s = px_sampler_create(8);
    ck_assert_ptr_nonnull(s);
    px_sampling p;
    px_sampling_init(&p);
    p.temperature = 0.0f;
    uint64_t rng = px_rng_seed(1);
    float a[8] = {0.1f, -3.0f, 2.5f, 0.0f, 2.4f, -1.0f, 1.0f, 2.49f};
    ck_assert_int_eq(sample_ok(s, &p, &rng, a, NULL, 0, 0), 2);
    float b[8] = {0.0f, 1.0f, 3.0f, -2.0f, 3.0f, 3.0f, 0.0f, 1.0f};
    ck_assert_int_eq(sample_ok(s, &p, &rng, b, NULL, 0, 0), 2);
    float c[8] = {5.0f, 5.0f, 5.0f, 5.0f, 5.0f, 5.0f, 5.0f, 5.0f};
    ck_assert_int_eq(sample_ok(s, &p, &rng, c, NULL, 0, 0), 0);
    float d[8] = {-1.0f, -1.0f, -1.0f, -1.0f, -1.0f, -1.0f, -1.0f, 7.0f};
    ck_assert_int_eq(sample_ok(s, &p, &rng, d, NULL, 0, 0), 7);
    px_sampler_destroy(s);
}
END_TEST

START_TEST(test_top_k_1_is_argmax) {
    enum { N = 100 };
    px_sampler *s = px_sampler_create(N);
    float x[N];
    px_sampling p;
    px_sampling_init(&p);
    p.top_k = 1;
    p.temperature = 5.0f; /* flat enough that a leak past the filter shows */
    uint64_t rng = px_rng_seed(7);
    for (int r = 0; r < 50; r++) {
        px_test_fill_random(x, N, 100 + (uint64_t)r);
        int32_t want = 0;
        for (int32_t i = 1; i < N; i++)
            want = x[i] > x[want] ? i : want;
        if (r % 5 == 0) /* a tie with a later id must lose */
            x[N - 1 - r / 5] = x[want];
        for (int j = 0; j < 5; j++)
            ck_assert_int_eq(sample_ok(s, &p, &rng, x, NULL, 0, 0), want);
    }
    px_sampler_destroy(s);
}
END_TEST

START_TEST(test_top_k_frequencies) {
    enum { N = 10, DRAWS = 20000 };
    px_sampler *s = px_sampler_create(N);
    float x[N] = {0.5f, 1.0f, -0.5f, 0.9f, 0.2f, 0.95f, -1.0f, 0.0f, 0.3f, 0.8f};
    px_sampling p;
    px_sampling_init(&p);
    p.top_k = 3; /* keeps ids 1, 5, 3 */
    int cnt[N];
    count_draws(s, &p, 42, x, N, DRAWS, cnt);
    double prob[N] = {0};
    double z = exp(1.0) + exp(0.95) + exp(0.9);
    prob[1] = exp(1.0) / z;
    prob[5] = exp(0.95) / z;
    prob[3] = exp(0.9) / z;
    check_freqs(cnt, prob, N, DRAWS);

    /* A large k takes the buffered path with several compactions. */
    enum { M = 5000, K = 700 };
    px_sampler *s2 = px_sampler_create(M);
    float *y = malloc(M * sizeof(*y));
    int *cnt2 = malloc(M * sizeof(*cnt2));
    for (int32_t i = 0; i < M; i++) /* ascending: every token passes the bar */
        y[i] = (float)i * 0.001f;
    p.top_k = K;
    count_draws(s2, &p, 43, y, M, 4000, cnt2);
    for (int32_t i = 0; i < M - K; i++)
        ck_assert_msg(cnt2[i] == 0, "token %d outside the top %d drawn", i, K);
    int upper = 0;
    for (int32_t i = M - K; i < M; i++)
        upper += cnt2[i] > 0;
    ck_assert_int_gt(upper, K / 2);

    /* Random order: the kept set is exactly the K largest (found here by
     * counting how many values beat each one; values are distinct). */
    px_test_fill_random(y, M, 45);
    for (int32_t i = 0; i < M; i++)
        y[i] *= 0.5f;
    count_draws(s2, &p, 46, y, M, 4000, cnt2);
    upper = 0;
    for (int32_t i = 0; i < M; i++) {
        int32_t rank = 0;
        for (int32_t j = 0; j < M; j++)
            rank += y[j] > y[i];
        if (rank >= K)
            ck_assert_msg(cnt2[i] == 0, "token %d of rank %d drawn", i, rank);
        else
            upper += cnt2[i] > 0;
    }
    ck_assert_int_gt(upper, K * 3 / 4);

    /* Equal logits: top-k keeps the lowest ids, across buffer compactions. */
    for (int32_t i = 0; i < M; i++)
        y[i] = 0.25f;
    p.top_k = 5;
    count_draws(s2, &p, 44, y, M, 1000, cnt2);
    for (int32_t i = 0; i < M; i++)
        ck_assert_msg(i < 5 ? cnt2[i] > 0 : cnt2[i] == 0, "token %d drawn %d", i, cnt2[i]);
    free(y);
    free(cnt2);
    px_sampler_destroy(s2);
    px_sampler_destroy(s);
}
END_TEST

START_TEST(test_unfiltered_frequencies) {
    enum { N = 6, DRAWS = 20000 };
    px_sampler *s = px_sampler_create(N);
    float x[N] = {1.0f, 0.0f, -1.0f, 0.5f, -INFINITY, 2.0f};
    px_sampling p;
    px_sampling_init(&p);
    int cnt[N];
    double prob[N];
    count_draws(s, &p, 5, x, N, DRAWS, cnt);
    softmax(x, N, 1.0, prob);
    check_freqs(cnt, prob, N, DRAWS);
    px_sampler_destroy(s);
}
END_TEST

START_TEST(test_top_p) {
    enum { N = 6, DRAWS = 20000 };
    px_sampler *s = px_sampler_create(N);
    /* Probabilities 0.05, 0.5, 0.15, 0.3, 0, 0 (log space). */
    float x[N] = {logf(0.05f), logf(0.5f), logf(0.15f), logf(0.3f), -INFINITY, -INFINITY};
    px_sampling p;
    px_sampling_init(&p);
    int cnt[N];
    double prob[N] = {0};

    p.top_p = 0.01f; /* only the top token */
    count_draws(s, &p, 9, x, N, 2000, cnt);
    ck_assert_int_eq(cnt[1], 2000);

    p.top_p = 0.7f; /* 0.5 < 0.7 <= 0.8: ids 1 and 3 */
    count_draws(s, &p, 10, x, N, DRAWS, cnt);
    prob[1] = 0.5 / 0.8;
    prob[3] = 0.3 / 0.8;
    check_freqs(cnt, prob, N, DRAWS);

    p.top_p = 0.9f; /* 0.8 < 0.9 <= 0.95: ids 1, 3, 2 */
    count_draws(s, &p, 11, x, N, DRAWS, cnt);
    prob[1] = 0.5 / 0.95;
    prob[3] = 0.3 / 0.95;
    prob[2] = 0.15 / 0.95;
    check_freqs(cnt, prob, N, DRAWS);

    /* top-p after top-k renormalises over the k kept: k=2 keeps 0.5 and 0.3,
     * whose renormalised masses are 0.625 and 0.375; p=0.6 keeps only id 1. */
    p.top_k = 2;
    p.top_p = 0.6f;
    count_draws(s, &p, 12, x, N, 2000, cnt);
    ck_assert_int_eq(cnt[1], 2000);
    px_sampler_destroy(s);
}
END_TEST

/* The kept set of top-p on many random rows (larger than the sort cutoff)
 * matches a full sort done here: every draw falls inside it and the token just
 * outside it is never drawn. */
START_TEST(test_top_p_matches_sort) {
    enum { N = 300 };
    px_sampler *s = px_sampler_create(N);
    float x[N];
    double prob[N];
    int32_t order[N];
    px_sampling p;
    px_sampling_init(&p);
    uint64_t rng = px_rng_seed(77);
    for (int r = 0; r < 40; r++) {
        px_test_fill_random(x, N, 500 + (uint64_t)r);
        for (int32_t i = 0; i < N; i++)
            x[i] *= 6.0f;
        p.top_p = 0.3f + 0.015f * (float)r;
        softmax(x, N, 1.0, prob);
        for (int32_t i = 0; i < N; i++)
            order[i] = i;
        for (int32_t i = 1; i < N; i++) /* insertion sort, descending */
            for (int32_t j = i; j > 0 && prob[order[j]] > prob[order[j - 1]]; j--) {
                int32_t t = order[j];
                order[j] = order[j - 1];
                order[j - 1] = t;
            }
        double acc = 0.0;
        int32_t keep = 0;
        while (keep < N && acc < p.top_p)
            acc += prob[order[keep++]];
        /* Skip rows whose cut sits within float rounding of the target. */
        if (fabs(acc - prob[order[keep - 1]] - p.top_p) < 1e-4 || fabs(acc - p.top_p) < 1e-4)
            continue;
        char in[N] = {0};
        for (int32_t i = 0; i < keep; i++)
            in[order[i]] = 1;
        for (int d = 0; d < 200; d++) {
            int32_t t = sample_ok(s, &p, &rng, x, NULL, 0, 0);
            ck_assert_msg(in[t], "row %d: token %d outside the top-p set of %d", r, t, keep);
        }
    }
    px_sampler_destroy(s);
}
END_TEST

static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Rows with thousands of candidates take the histogram path of top-p. The
 * kept set is the tokens whose probability is at least the cut found by a
 * full sort here; draws must stay inside it, and the least likely tokens of
 * the set (about a tenth of its mass) must get their share of the draws, so a
 * set cut short is caught too. */
START_TEST(test_top_p_large) {
    enum { N = 30000, DRAWS = 3000 };
    px_sampler *s = px_sampler_create(N);
    float *x = malloc(N * sizeof(*x));
    double *prob = malloc(N * sizeof(*prob));
    double *sorted = malloc(N * sizeof(*sorted));
    int *cnt = malloc(N * sizeof(*cnt));
    px_sampling p;
    px_sampling_init(&p);
    const float tops[] = {0.3f, 0.62f, 0.9f};
    for (int r = 0; r < 3; r++) {
        px_test_fill_random(x, N, 900 + (uint64_t)r);
        for (int32_t i = 0; i < N; i++)
            x[i] *= 3.0f;
        p.top_p = tops[r];
        softmax(x, N, 1.0, prob);
        memcpy(sorted, prob, N * sizeof(*sorted));
        qsort(sorted, N, sizeof(*sorted), cmp_desc);
        double kept = 0.0;
        int32_t keep = 0;
        while (keep < N && kept < p.top_p)
            kept += sorted[keep++];
        double cut = sorted[keep - 1]; /* the least likely kept token */
        ck_assert_int_gt(keep, 1000);
        double low_mass = 0.0; /* the tail of the kept set: p <= low_bar */
        int32_t j = keep - 1;
        while (low_mass < 0.1 * kept)
            low_mass += sorted[j--];
        double low_bar = sorted[j + 1];
        /* Tokens this close to the cut might fall either way by rounding. */
        double near = cut * 1e-4;
        count_draws(s, &p, 950 + (uint64_t)r, x, N, DRAWS, cnt);
        int low = 0;
        for (int32_t i = 0; i < N; i++) {
            if (cnt[i] == 0) continue;
            ck_assert_msg(prob[i] >= cut - near, "row %d: token %d (p %g) below the cut %g", r, i,
                          prob[i], cut);
            low += prob[i] <= low_bar ? cnt[i] : 0;
        }
        double frac = low_mass / kept, expect = frac * DRAWS;
        double sd = sqrt(DRAWS * frac * (1.0 - frac));
        ck_assert_msg(fabs(low - expect) <= SIGMAS * sd, "row %d: %d tail draws, expected %.1f", r,
                      low, expect);
    }
    free(x);
    free(prob);
    free(sorted);
    free(cnt);
    px_sampler_destroy(s);
}
END_TEST

START_TEST(test_min_p) {
    enum { N = 5, DRAWS = 20000 };
    px_sampler *s = px_sampler_create(N);
    /* Relative to the top: 1, 0.5, 0.29, 0.31, 0.1. */
    float x[N] = {0.0f, logf(0.5f), logf(0.29f), logf(0.31f), logf(0.1f)};
    px_sampling p;
    px_sampling_init(&p);
    p.min_p = 0.3f;
    int cnt[N];
    count_draws(s, &p, 21, x, N, DRAWS, cnt);
    double z = 1.0 + 0.5 + 0.31;
    double prob[N] = {1.0 / z, 0.5 / z, 0.0, 0.31 / z, 0.0};
    check_freqs(cnt, prob, N, DRAWS);

    /* After top-k: k = 4 keeps ids 0..3, min-p still drops id 2. */
    p.top_k = 4;
    count_draws(s, &p, 20, x, N, DRAWS, cnt);
    check_freqs(cnt, prob, N, DRAWS);
    p.top_k = 0;

    /* min_p = 1 keeps only the top token. */
    p.min_p = 1.0f;
    count_draws(s, &p, 22, x, N, 1000, cnt);
    ck_assert_int_eq(cnt[0], 1000);

    /* min-p after top-p: p = 0.9 keeps ids 0, 1, 3 (mass 1.81 of 2.2 is
     * 0.82 < 0.9, adding 0.29 reaches 0.95); min_p 0.3 then drops id 2. */
    p.min_p = 0.3f;
    p.top_p = 0.9f;
    count_draws(s, &p, 23, x, N, DRAWS, cnt);
    check_freqs(cnt, prob, N, DRAWS);
    /* top-p alone at 0.9 does keep id 2, so the cut above came from min-p. */
    p.min_p = 0.0f;
    count_draws(s, &p, 24, x, N, DRAWS, cnt);
    ck_assert_int_gt(cnt[2], 0);
    ck_assert_int_eq(cnt[4], 0);

    /* Top-p measures mass against the whole set, not the min-p survivors:
     * relative 1, .5, .35, .2, .2, .2 (sum 2.45), p = 0.7 needs 1.715, so it
     * keeps ids 0, 1, 2 (1.85); against the survivors' 1.85 it would stop at
     * ids 0, 1. min_p 0.3 drops the rest either way. */
    float y[6] = {0.0f, logf(0.5f), logf(0.35f), logf(0.2f), logf(0.2f), logf(0.2f)};
    px_sampler *s6 = px_sampler_create(6);
    int cnt6[6];
    p.min_p = 0.3f;
    p.top_p = 0.7f;
    count_draws(s6, &p, 25, y, 6, DRAWS, cnt6);
    double prob6[6] = {1.0 / 1.85, 0.5 / 1.85, 0.35 / 1.85, 0.0, 0.0, 0.0};
    check_freqs(cnt6, prob6, 6, DRAWS);
    px_sampler_destroy(s6);
    px_sampler_destroy(s);
}
END_TEST

START_TEST(test_seed_determinism) {
    enum { N = 50, DRAWS = 64 };
    px_sampler *s = px_sampler_create(N);
    float x[N];
    px_test_fill_random(x, N, 3);
    px_sampling p;
    px_sampling_init(&p);
    p.top_k = 20;
    p.top_p = 0.95f;
    int32_t a[DRAWS], b[DRAWS], c[DRAWS];
    uint64_t ra = px_rng_seed(1000), rb = px_rng_seed(1000), rc = px_rng_seed(1001);
    for (int i = 0; i < DRAWS; i++) {
        a[i] = sample_ok(s, &p, &ra, x, NULL, 0, 0);
        c[i] = sample_ok(s, &p, &rc, x, NULL, 0, 0);
    }
    for (int i = 0; i < DRAWS; i++)
        b[i] = sample_ok(s, &p, &rb, x, NULL, 0, 0);
    ck_assert_mem_eq(a, b, sizeof(a));
    ck_assert_uint_eq(ra, rb);
    ck_assert_uint_ne(ra, px_rng_seed(1000)); /* the state advanced */
    int differ = 0;
    for (int i = 0; i < DRAWS; i++)
        differ += a[i] != c[i];
    ck_assert_int_gt(differ, DRAWS / 4);
    px_sampler_destroy(s);
}
END_TEST

START_TEST(test_temperature_spread) {
    enum { N = 4, DRAWS = 20000 };
    px_sampler *s = px_sampler_create(N);
    float x[N] = {1.0f, 0.0f, -0.5f, 0.5f};
    px_sampling p;
    px_sampling_init(&p);
    int cnt[N];
    double prob[N];
    const float temps[] = {0.5f, 1.0f, 2.0f};
    int top[3];
    for (int t = 0; t < 3; t++) {
        p.temperature = temps[t];
        count_draws(s, &p, 31 + (uint64_t)t, x, N, DRAWS, cnt);
        softmax(x, N, temps[t], prob);
        check_freqs(cnt, prob, N, DRAWS);
        top[t] = cnt[0];
    }
    /* Colder is sharper. */
    ck_assert_int_gt(top[0], top[1]);
    ck_assert_int_gt(top[1], top[2]);
    /* Temperature applies before top-k: the 3 kept follow softmax(x / 0.5). */
    p.temperature = 0.5f;
    p.top_k = 3;
    count_draws(s, &p, 34, x, N, DRAWS, cnt);
    double z = exp(2.0) + exp(1.0) + exp(0.0);
    double prob3[N] = {exp(2.0) / z, exp(0.0) / z, 0.0, exp(1.0) / z};
    check_freqs(cnt, prob3, N, DRAWS);
    p.top_k = 0;
    /* A tiny temperature is greedy. */
    p.temperature = 1e-6f;
    count_draws(s, &p, 35, x, N, 500, cnt);
    ck_assert_int_eq(cnt[0], 500);
    px_sampler_destroy(s);
}
END_TEST

/* Greedy winner of two tokens after penalties (temperature 0 and, as a
 * check that penalties also apply when sampling, top_k = 1 at T = 1). */
static int32_t winner(px_sampling *p, float l0, float l1, const int32_t *prev, int32_t n_prompt,
                      int32_t n_out) {
    px_sampler *s = px_sampler_create(2);
    float x[2] = {l0, l1};
    uint64_t rng = px_rng_seed(0);
    p->temperature = 0.0f;
    p->top_k = 0;
    int32_t g = sample_ok(s, p, &rng, x, prev, n_prompt, n_out);
    p->temperature = 1.0f;
    p->top_k = 1;
    int32_t k = sample_ok(s, p, &rng, x, prev, n_prompt, n_out);
    ck_assert_int_eq(g, k);
    px_sampler_destroy(s);
    return g;
}

START_TEST(test_repetition_penalty) {
    px_sampling p;
    px_sampling_init(&p);
    const int32_t prompt0[] = {0};
    /* Positive logit divided: 2 / 1.5 = 1.33 < 1.5; 2 / 1.3 = 1.54 > 1.5. */
    p.repetition_penalty = 1.5f;
    ck_assert_int_eq(winner(&p, 2.0f, 1.5f, prompt0, 1, 0), 1);
    p.repetition_penalty = 1.3f;
    ck_assert_int_eq(winner(&p, 2.0f, 1.5f, prompt0, 1, 0), 0);
    /* Negative logit multiplied: -1 * 1.5 < -1.4; -1 * 1.3 > -1.4. */
    p.repetition_penalty = 1.5f;
    ck_assert_int_eq(winner(&p, -1.0f, -1.4f, prompt0, 1, 0), 1);
    p.repetition_penalty = 1.3f;
    ck_assert_int_eq(winner(&p, -1.0f, -1.4f, prompt0, 1, 0), 0);
    /* Output tokens count too. */
    p.repetition_penalty = 1.5f;
    ck_assert_int_eq(winner(&p, 2.0f, 1.5f, prompt0, 0, 1), 1);
    /* Each distinct token once: applied twice, 2 / 1.69 = 1.18 would lose. */
    const int32_t rep[] = {0, 0, 0, 0};
    p.repetition_penalty = 1.3f;
    ck_assert_int_eq(winner(&p, 2.0f, 1.5f, rep, 2, 2), 0);
    /* A penalty below 1 rewards: 1.4 / 0.9 = 1.56 > 1.5. */
    const int32_t prompt1[] = {1};
    p.repetition_penalty = 0.9f;
    ck_assert_int_eq(winner(&p, 1.5f, 1.4f, prompt1, 1, 0), 1);
    /* Out-of-range ids are ignored. */
    const int32_t bad[] = {-1, 2, 1000000, INT32_MIN, INT32_MAX};
    p.repetition_penalty = 2.0f;
    ck_assert_int_eq(winner(&p, 2.0f, 1.5f, bad, 2, 3), 0);
}
END_TEST

START_TEST(test_presence_frequency_penalty) {
    px_sampling p;
    px_sampling_init(&p);
    const int32_t out00[] = {0, 0};
    /* Presence once per distinct token: 1 - 0.2 = 0.8 > 0.7 (twice: 0.6). */
    p.presence_penalty = 0.2f;
    ck_assert_int_eq(winner(&p, 1.0f, 0.7f, out00, 0, 2), 0);
    p.presence_penalty = 0.4f;
    ck_assert_int_eq(winner(&p, 1.0f, 0.7f, out00, 0, 2), 1);
    /* Prompt tokens are not penalised by presence / frequency. */
    ck_assert_int_eq(winner(&p, 1.0f, 0.7f, out00, 2, 0), 0);
    /* Negative presence rewards. */
    const int32_t out1[] = {1};
    p.presence_penalty = -0.4f;
    ck_assert_int_eq(winner(&p, 1.0f, 0.7f, out1, 0, 1), 1);
    p.presence_penalty = 0.0f;
    /* Frequency per occurrence: 1 - 2 * 0.1 = 0.8 > 0.7; 1 - 2 * 0.2 = 0.6. */
    p.frequency_penalty = 0.1f;
    ck_assert_int_eq(winner(&p, 1.0f, 0.7f, out00, 0, 2), 0);
    p.frequency_penalty = 0.2f;
    ck_assert_int_eq(winner(&p, 1.0f, 0.7f, out00, 0, 2), 1);
    /* Occurrences in the prompt part of prev are not counted: one output 0
     * gives 1 - 0.2 = 0.8 > 0.7. */
    const int32_t mixed[] = {0, 0, 0, 0};
    ck_assert_int_eq(winner(&p, 1.0f, 0.7f, mixed, 3, 1), 0);
    /* Both together: 1 - 0.1 - 2 * 0.1 = 0.7, against 0.75 and 0.65. */
    p.presence_penalty = 0.1f;
    p.frequency_penalty = 0.1f;
    ck_assert_int_eq(winner(&p, 1.0f, 0.75f, out00, 0, 2), 1);
    ck_assert_int_eq(winner(&p, 1.0f, 0.65f, out00, 0, 2), 0);
    /* Order: repetition first, then presence: 2 / 2 - 0.5 = 0.5 < 0.6, while
     * the other order would give (2 - 0.5) / 2 = 0.75 > 0.6. */
    const int32_t out0[] = {0};
    p.frequency_penalty = 0.0f;
    p.presence_penalty = 0.5f;
    p.repetition_penalty = 2.0f;
    ck_assert_int_eq(winner(&p, 2.0f, 0.6f, out0, 0, 1), 1);
    /* Out-of-range ids are ignored. */
    const int32_t bad[] = {-5, 2, 99};
    p.repetition_penalty = 1.0f;
    p.presence_penalty = 2.0f;
    p.frequency_penalty = 2.0f;
    ck_assert_int_eq(winner(&p, 1.0f, 0.7f, bad, 0, 3), 0);
    ck_assert_int_eq(winner(&p, 1.0f, 0.7f, out00, 0, 2), 1);
    ck_assert_int_eq(winner(&p, 1.0f, 0.7f, NULL, 0, 0), 0);
}
END_TEST

/* Penalty bookkeeping is per call: one sampler, alternating histories. */
START_TEST(test_penalty_state_not_leaked) {
    px_sampler *s = px_sampler_create(3);
    px_sampling p;
    px_sampling_init(&p);
    p.temperature = 0.0f;
    p.repetition_penalty = 4.0f;
    p.frequency_penalty = 0.5f;
    float x[3] = {1.0f, 0.9f, 0.8f};
    const int32_t h[] = {0, 1, 0};
    uint64_t rng = 0;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(sample_ok(s, &p, &rng, x, h, 1, 2), 2);
        ck_assert_int_eq(sample_ok(s, &p, &rng, x, NULL, 0, 0), 0);
    }
    px_sampler_destroy(s);
}
END_TEST

START_TEST(test_logprobs) {
    enum { N = 1000 };
    px_sampler *s = px_sampler_create(N);
    float *x = malloc(N * sizeof(*x));
    px_test_fill_random(x, N, 11);
    for (int32_t i = 0; i < N; i++)
        x[i] *= 8.0f;
    x[17] = x[400] = x[901] = 9.0f; /* a three-way tie at the top */
    x[5] = -INFINITY;
    double m = -INFINITY, sum = 0.0;
    for (int32_t i = 0; i < N; i++)
        m = fmax(m, x[i]);
    for (int32_t i = 0; i < N; i++)
        sum += exp((double)x[i] - m);
    double lse = m + log(sum);

    px_sampling p;
    px_sampling_init(&p);
    p.want_logprobs = 1;
    p.n_logprobs = PX_MAX_LOGPROBS;
    /* Penalties and temperature must not touch the reported logprobs. */
    p.temperature = 0.7f;
    p.repetition_penalty = 1.5f;
    p.presence_penalty = 1.0f;
    const int32_t prev[] = {17, 400, 3, 3};
    uint64_t rng = px_rng_seed(123);
    for (int r = 0; r < 20; r++) {
        px_sample out;
        ck_assert_int_eq(px_sample_next(s, &p, &rng, x, prev, 2, 2, &out), 0);
        double want = (double)x[out.token] - lse;
        ck_assert_msg(fabs(out.logprob - want) < LOGPROB_TOL, "logprob %g vs %g", out.logprob,
                      want);
        ck_assert_int_eq(out.n_top, PX_MAX_LOGPROBS);
        ck_assert_int_eq(out.top_ids[0], 17);
        ck_assert_int_eq(out.top_ids[1], 400);
        ck_assert_int_eq(out.top_ids[2], 901);
        for (int j = 0; j < out.n_top; j++) {
            int32_t id = out.top_ids[j];
            ck_assert_msg(fabs(out.top_logprobs[j] - ((double)x[id] - lse)) < LOGPROB_TOL, "top %d",
                          j);
            if (j > 0) {
                ck_assert(out.top_logprobs[j] <= out.top_logprobs[j - 1]);
                ck_assert(x[id] < x[out.top_ids[j - 1]] ||
                          (x[id] == x[out.top_ids[j - 1]] && id > out.top_ids[j - 1]));
            }
        }
        /* Nothing left out is better than the last listed. */
        char listed[N] = {0};
        for (int j = 0; j < out.n_top; j++)
            listed[out.top_ids[j]] = 1;
        float last = x[out.top_ids[out.n_top - 1]];
        for (int32_t i = 0; i < N; i++)
            ck_assert(listed[i] || x[i] <= last);
    }

    /* Fewer requested; none requested. */
    p.n_logprobs = 2;
    px_sample out;
    ck_assert_int_eq(px_sample_next(s, &p, &rng, x, NULL, 0, 0, &out), 0);
    ck_assert_int_eq(out.n_top, 2);
    ck_assert_int_eq(out.top_ids[1], 400);
    p.n_logprobs = 0;
    p.want_logprobs = 0;
    ck_assert_int_eq(px_sample_next(s, &p, &rng, x, NULL, 0, 0, &out), 0);
    ck_assert_int_eq(out.n_top, 0);
    free(x);
    px_sampler_destroy(s);
}
END_TEST

START_TEST(test_nonfinite_logits) {
    enum { N = 6 };
    px_sampler *s = px_sampler_create(N);
    px_sampling p;
    px_sampling_init(&p);
    p.want_logprobs = 1;
    p.n_logprobs = 5;
    uint64_t rng = px_rng_seed(4);
    px_sample out;
    /* NaN counts as -inf: never drawn, never greedy, not in the top list. */
    float x[N] = {NAN, 0.5f, NAN, 0.0f, -INFINITY, NAN};
    int cnt[N];
    count_draws(s, &p, 8, x, N, 2000, cnt);
    ck_assert_int_eq(cnt[0] + cnt[2] + cnt[4] + cnt[5], 0);
    ck_assert_int_gt(cnt[1], cnt[3]);
    ck_assert_int_gt(cnt[3], 0);
    ck_assert_int_eq(px_sample_next(s, &p, &rng, x, NULL, 0, 0, &out), 0);
    ck_assert_int_eq(out.n_top, 2);
    ck_assert_int_eq(out.top_ids[0], 1);
    ck_assert(isfinite(out.logprob));
    double lse = log(exp(0.5) + exp(0.0));
    ck_assert(fabs(out.top_logprobs[0] - (0.5 - lse)) < LOGPROB_TOL);
    p.temperature = 0.0f;
    ck_assert_int_eq(px_sample_next(s, &p, &rng, x, NULL, 0, 0, &out), 0);
    ck_assert_int_eq(out.token, 1);

    /* +inf wins outright, without NaN leaking into the logprobs. */
    float y[N] = {1.0f, INFINITY, 2.0f, NAN, 0.0f, 1.0f};
    p.temperature = 1.0f;
    for (int i = 0; i < 20; i++) {
        ck_assert_int_eq(px_sample_next(s, &p, &rng, y, NULL, 0, 0, &out), 0);
        ck_assert_int_eq(out.token, 1);
        ck_assert(!isnan(out.logprob));
        ck_assert(fabs(out.logprob) < 1e-6);
    }

    /* Regression: a repetition penalty below 1 on a huge logit overflowed
     * to +inf, and inf - inf made the whole row NaN. */
    const int32_t seen[] = {1, 2};
    p.repetition_penalty = 0.5f;
    p.n_logprobs = 0;
    float w[N] = {1.0f, INFINITY, 3e38f, 0.0f, NAN, -1.0f};
    int c1 = 0, c2 = 0;
    for (int i = 0; i < 400; i++) {
        ck_assert_int_eq(px_sample_next(s, &p, &rng, w, seen, 2, 0, &out), 0);
        ck_assert(out.token == 1 || out.token == 2);
        c1 += out.token == 1;
        c2 += out.token == 2;
        ck_assert(!isnan(out.logprob));
    }
    ck_assert_int_gt(c1, 100); /* both clamp to FLT_MAX: an even split */
    ck_assert_int_gt(c2, 100);
    p.repetition_penalty = 1.0f;
    p.n_logprobs = 5;

    /* Nothing finite: EINVAL. */
    float z[N] = {NAN, -INFINITY, NAN, NAN, -INFINITY, NAN};
    ck_assert_int_eq(px_sample_next(s, &p, &rng, z, NULL, 0, 0, &out), PX_EINVAL);
    p.temperature = 0.0f;
    ck_assert_int_eq(px_sample_next(s, &p, &rng, z, NULL, 0, 0, &out), PX_EINVAL);
    px_sampler_destroy(s);
}
END_TEST

START_TEST(test_param_validation) {
    px_sampler *s = px_sampler_create(4);
    float x[4] = {0.0f, 1.0f, 2.0f, 3.0f};
    const int32_t prev[2] = {0, 1};
    uint64_t rng = 1;
    px_sample out;
    px_sampling ok;
    px_sampling_init(&ok);
    ck_assert_int_eq(px_sample_next(s, &ok, &rng, x, prev, 1, 1, &out), 0);

    px_sampling p;
#define BAD(field, value)                                                                          \
    do {                                                                                           \
        p = ok;                                                                                    \
        p.field = value;                                                                           \
        ck_assert_msg(px_sample_next(s, &p, &rng, x, prev, 1, 1, &out) == PX_EINVAL,               \
                      #field " = " #value " accepted");                                            \
    } while (0)
    BAD(temperature, -0.1f);
    BAD(temperature, NAN);
    BAD(temperature, INFINITY);
    BAD(top_p, 0.0f);
    BAD(top_p, -0.5f);
    BAD(top_p, 1.01f);
    BAD(top_p, NAN);
    BAD(min_p, -0.01f);
    BAD(min_p, 1.5f);
    BAD(min_p, NAN);
    BAD(repetition_penalty, 0.0f);
    BAD(repetition_penalty, -1.0f);
    BAD(repetition_penalty, NAN);
    BAD(presence_penalty, NAN);
    BAD(frequency_penalty, INFINITY);
    BAD(n_logprobs, -1);
    BAD(n_logprobs, PX_MAX_LOGPROBS + 1);
#undef BAD
    /* Boundaries that are valid. */
    p = ok;
    p.top_p = 1.0f;
    p.min_p = 1.0f;
    p.n_logprobs = PX_MAX_LOGPROBS;
    p.top_k = 1000; /* above n_vocab: off */
    ck_assert_int_eq(px_sample_next(s, &p, &rng, x, prev, 1, 1, &out), 0);
    ck_assert_int_eq(out.n_top, 4);

    ck_assert_int_eq(px_sample_next(s, &ok, &rng, x, prev, -1, 1, &out), PX_EINVAL);
    ck_assert_int_eq(px_sample_next(s, &ok, &rng, x, prev, 1, -1, &out), PX_EINVAL);
    ck_assert_int_eq(px_sample_next(s, &ok, &rng, x, NULL, 1, 0, &out), PX_EINVAL);
    ck_assert_int_eq(px_sample_next(NULL, &ok, &rng, x, prev, 1, 1, &out), PX_EINVAL);
    ck_assert_int_eq(px_sample_next(s, NULL, &rng, x, prev, 1, 1, &out), PX_EINVAL);
    ck_assert_int_eq(px_sample_next(s, &ok, NULL, x, prev, 1, 1, &out), PX_EINVAL);
    ck_assert_int_eq(px_sample_next(s, &ok, &rng, NULL, prev, 1, 1, &out), PX_EINVAL);
    ck_assert_int_eq(px_sample_next(s, &ok, &rng, x, prev, 1, 1, NULL), PX_EINVAL);
    ck_assert_ptr_null(px_sampler_create(0));
    ck_assert_ptr_null(px_sampler_create(-3));
    px_sampler_destroy(NULL);
    px_sampler_destroy(s);
}
END_TEST

/* The real vocabulary size, with every filter path and logprobs. */
START_TEST(test_full_vocab) {
    enum { N = 262144 };
    px_sampler *s = px_sampler_create(N);
    ck_assert_ptr_nonnull(s);
    float *x = malloc(N * sizeof(*x));
    px_test_fill_random(x, N, 99);
    for (int32_t i = 0; i < N; i++)
        x[i] *= 10.0f;
    x[123456] = 14.0f; /* clear winner: about 1.6% of the mass */
    double m = 14.0, sum = 0.0;
    for (int32_t i = 0; i < N; i++)
        sum += exp((double)x[i] - m);
    double lse = m + log(sum);

    px_sampling p;
    px_sampling_init(&p);
    p.want_logprobs = 1;
    p.n_logprobs = PX_MAX_LOGPROBS;
    const int32_t prev[] = {1, 2, 3, 123456, 7};
    uint64_t rng = px_rng_seed(2024);
    struct {
        float temperature, top_p, min_p;
        int32_t top_k;
    } cfg[] = {
        {1.0f, 1.0f, 0.0f, 0}, {0.0f, 1.0f, 0.0f, 0},   {1.0f, 1.0f, 0.0f, 40},
        {0.8f, 0.9f, 0.0f, 0}, {0.8f, 0.95f, 0.05f, 0}, {1.0f, 0.9f, 0.0f, 40},
        {1.2f, 1.0f, 0.1f, 0}, {0.5f, 0.5f, 0.0f, 0},   {1.0f, 1.0f, 0.0f, 5000},
    };
    for (size_t c = 0; c < PX_ARRAY_LEN(cfg); c++) {
        p.temperature = cfg[c].temperature;
        p.top_p = cfg[c].top_p;
        p.min_p = cfg[c].min_p;
        p.top_k = cfg[c].top_k;
        for (int r = 0; r < 3; r++) {
            px_sample out;
            ck_assert_int_eq(px_sample_next(s, &p, &rng, x, prev, 3, 2, &out), 0);
            ck_assert_int_ge(out.token, 0);
            ck_assert_int_lt(out.token, N);
            ck_assert(fabs(out.logprob - ((double)x[out.token] - lse)) < LOGPROB_TOL);
            ck_assert_int_eq(out.n_top, PX_MAX_LOGPROBS);
            ck_assert_int_eq(out.top_ids[0], 123456);
            ck_assert(fabs(out.top_logprobs[0] - (14.0 - lse)) < LOGPROB_TOL);
            if (p.temperature == 0.0f) ck_assert_int_eq(out.token, 123456);
            /* Other logits are below 10, so min-p at these temperatures keeps
             * only the winner, and the top 40 of 262144 lie above 9.9. */
            if (p.min_p > 0.0f) ck_assert_int_eq(out.token, 123456);
            if (p.top_k == 40) ck_assert(x[out.token] > 9.9f);
        }
    }
    free(x);
    px_sampler_destroy(s);
}
END_TEST

Suite *px_suite_sampler(void) {
    Suite *su = suite_create("sampler");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_rng_seed_splitmix64);
    tcase_add_test(tc, test_greedy_argmax_and_ties);
    tcase_add_test(tc, test_top_k_1_is_argmax);
    tcase_add_test(tc, test_top_k_frequencies);
    tcase_add_test(tc, test_unfiltered_frequencies);
    tcase_add_test(tc, test_top_p);
    tcase_add_test(tc, test_top_p_matches_sort);
    tcase_add_test(tc, test_top_p_large);
    tcase_add_test(tc, test_min_p);
    tcase_add_test(tc, test_seed_determinism);
    tcase_add_test(tc, test_temperature_spread);
    tcase_add_test(tc, test_repetition_penalty);
    tcase_add_test(tc, test_presence_frequency_penalty);
    tcase_add_test(tc, test_penalty_state_not_leaked);
    tcase_add_test(tc, test_logprobs);
    tcase_add_test(tc, test_nonfinite_logits);
    tcase_add_test(tc, test_param_validation);
    tcase_add_test(tc, test_full_vocab);
    suite_add_tcase(su, tc);
    return su;
}
