/* stats.c — tests of scheduler/stats.c: bucket placement at the bounds,
 * count and sum, quantiles against hand-computed histogram_quantile values
 * and a uniform distribution, bounds validation, the default bounds, and a
 * snapshot taken while another thread updates. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "px.h"
#include "scheduler/stats.h"
#include "suites.h"

/* Quantiles computed by formula are compared within this absolute slack. */
#define Q_TOL 1e-12

static const double b124[] = {1.0, 2.0, 4.0};

static uint64_t counts_total(const px_hist *h) {
    uint64_t t = 0;
    for (int i = 0; i <= h->n_bounds; i++)
        t += h->counts[i];
    return t;
}

START_TEST(test_buckets_le) {
    px_hist h;
    memset(&h, 0xff, sizeof(h));
    px_hist_init(&h, b124, 3);
    ck_assert_int_eq(h.n_bounds, 3);
    ck_assert_uint_eq(h.count, 0);
    ck_assert_uint_eq(counts_total(&h), 0);
    ck_assert_double_eq(h.sum, 0.0);

    /* Bucket i holds (bounds[i-1], bounds[i]]: a value equal to a bound is
     * in that bound's bucket. */
    static const struct {
        double v;
        int bucket;
    } cases[] = {
        {-1.0, 0}, {0.0, 0}, {0.5, 0}, {1.0, 0},   {1.0000001, 1}, {2.0, 1},
        {2.5, 2},  {4.0, 2}, {4.5, 3}, {1e300, 3}, {INFINITY, 3},
    };
    uint64_t want[4] = {0};
    for (size_t i = 0; i < PX_ARRAY_LEN(cases); i++) {
        px_hist_observe(&h, cases[i].v);
        want[cases[i].bucket]++;
        for (int b = 0; b < 4; b++)
            ck_assert_msg(h.counts[b] == want[b], "after %g: bucket %d has %llu, want %llu",
                          cases[i].v, b, (unsigned long long)h.counts[b],
                          (unsigned long long)want[b]);
    }
    ck_assert_uint_eq(h.count, PX_ARRAY_LEN(cases));
    /* The value just below a bound stays in that bound's bucket. */
    px_hist_observe(&h, nextafter(2.0, 0.0));
    ck_assert_uint_eq(h.counts[1], want[1] + 1);
}
END_TEST

START_TEST(test_count_sum) {
    px_hist h;
    px_hist_init(&h, b124, 3);
    double sum = 0.0;
    for (int i = 0; i < 100; i++) {
        double v = 0.0625 * i; /* exact in binary: the sum is exact too */
        px_hist_observe(&h, v);
        sum += v;
    }
    ck_assert_uint_eq(h.count, 100);
    ck_assert_uint_eq(counts_total(&h), 100);
    ck_assert_double_eq(h.sum, sum);
    /* NaN is dropped rather than poisoning the sum. */
    px_hist_observe(&h, NAN);
    ck_assert_uint_eq(h.count, 100);
    ck_assert_uint_eq(counts_total(&h), 100);
    ck_assert_double_eq(h.sum, sum);
}
END_TEST

/* Values 0.5 0.5 | 1.5 | 3 3 3 3 | 10 give counts {2, 1, 4, 1}; expected
 * values follow histogram_quantile's formula by hand. */
START_TEST(test_quantile_formula) {
    px_hist h;
    px_hist_init(&h, b124, 3);
    static const double vals[] = {0.5, 3.0, 0.5, 3.0, 1.5, 3.0, 10.0, 3.0};
    for (size_t i = 0; i < PX_ARRAY_LEN(vals); i++)
        px_hist_observe(&h, vals[i]);
    static const struct {
        double q, want;
    } cases[] = {
        {0.0, 0.0},                      /* lower edge of the first bucket */
        {0.125, 0.5},                    /* rank 1 of 2 in (0, 1] */
        {0.25, 1.0},                     /* rank 2: top of bucket 0 */
        {0.3125, 1.5},                   /* rank 2.5: half-way through (1, 2] */
        {0.5, 2.0 + 2.0 * (1.0 / 4.0)},  /* rank 4: 1 of 4 into (2, 4] */
        {0.75, 2.0 + 2.0 * (3.0 / 4.0)}, /* rank 6 */
        {0.875, 4.0},                    /* rank 7: top of (2, 4] */
        {0.9, 4.0},                      /* in +Inf: highest finite bound */
        {1.0, 4.0},
        {-3.0, 0.0}, /* clamped to 0 */
        {7.0, 4.0},  /* clamped to 1 */
    };
    for (size_t i = 0; i < PX_ARRAY_LEN(cases); i++) {
        double got = px_hist_quantile(&h, cases[i].q);
        ck_assert_msg(fabs(got - cases[i].want) <= Q_TOL, "q %g: got %.17g, want %.17g", cases[i].q,
                      got, cases[i].want);
    }
}
END_TEST

/* q == 0 and ranks in empty buckets: empty buckets are skipped. */
START_TEST(test_quantile_empty_buckets) {
    px_hist h;
    px_hist_init(&h, b124, 3);
    px_hist_observe(&h, 3.0);
    px_hist_observe(&h, 3.5);
    ck_assert_double_eq_tol(px_hist_quantile(&h, 0.0), 2.0, Q_TOL);
    ck_assert_double_eq_tol(px_hist_quantile(&h, 0.5), 3.0, Q_TOL);
    ck_assert_double_eq_tol(px_hist_quantile(&h, 1.0), 4.0, Q_TOL);
    /* Everything in +Inf: every quantile is the highest finite bound. */
    px_hist_init(&h, b124, 3);
    px_hist_observe(&h, 100.0);
    ck_assert_double_eq_tol(px_hist_quantile(&h, 0.0), 4.0, Q_TOL);
    ck_assert_double_eq_tol(px_hist_quantile(&h, 0.99), 4.0, Q_TOL);
}
END_TEST

START_TEST(test_quantile_empty) {
    px_hist h;
    px_hist_init(&h, b124, 3);
    ck_assert(isnan(px_hist_quantile(&h, 0.5)));
    ck_assert(isnan(px_hist_quantile(&h, 0.0)));
    px_hist_observe(&h, 1.0);
    ck_assert(isnan(px_hist_quantile(&h, NAN)));
    ck_assert(!isnan(px_hist_quantile(&h, 0.5)));
}
END_TEST

/* 10,000 values spread evenly over (0, 2.5] against vLLM-like uneven
 * bounds: every quantile lands within one bucket width of the truth, and
 * where bucket edges fall on the data's grid it is exact. */
START_TEST(test_quantile_uniform) {
    static const double bounds[] = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3,
                                    0.4,  0.5,   0.75, 1.0,   1.5, 2.0,  2.5};
    enum { N = 10000 };
    const double top = 2.5;
    px_hist h;
    px_hist_init(&h, bounds, (int)PX_ARRAY_LEN(bounds));
    for (int i = 1; i <= N; i++)
        px_hist_observe(&h, top * i / N);
    ck_assert_uint_eq(h.counts[PX_ARRAY_LEN(bounds)], 0);
    double max_err = 0.0;
    for (int k = 1; k < 100; k++) {
        double q = k / 100.0, truth = q * top;
        double got = px_hist_quantile(&h, q);
        int b = 0;
        while (bounds[b] < truth)
            b++;
        double width = bounds[b] - (b ? bounds[b - 1] : 0.0);
        ck_assert_msg(fabs(got - truth) <= width, "q %g: got %g, truth %g, bucket width %g", q, got,
                      truth, width);
        max_err = fmax(max_err, fabs(got - truth));
    }
    /* Uniform data in buckets whose edges are multiples of top / N: linear
     * interpolation is exact up to rounding. */
    ck_assert_msg(max_err <= 1e-9, "max quantile error %g", max_err);
}
END_TEST

START_TEST(test_bounds_validation) {
    static const double ok[] = {0.001, 0.5, 7.0};
    ck_assert_int_eq(px_hist_check_bounds(ok, 3), 0);
    ck_assert_int_eq(px_hist_check_bounds(ok, 1), 0);
    double max[PX_HIST_MAX_BUCKETS + 1];
    for (int i = 0; i <= PX_HIST_MAX_BUCKETS; i++)
        max[i] = i + 1.0;
    ck_assert_int_eq(px_hist_check_bounds(max, PX_HIST_MAX_BUCKETS), 0);
    ck_assert_int_eq(px_hist_check_bounds(max, PX_HIST_MAX_BUCKETS + 1), PX_EINVAL);
    ck_assert_int_eq(px_hist_check_bounds(ok, 0), PX_EINVAL);
    ck_assert_int_eq(px_hist_check_bounds(ok, -1), PX_EINVAL);
    ck_assert_int_eq(px_hist_check_bounds(NULL, 2), PX_EINVAL);

    static const double bad[][3] = {
        {1.0, 1.0, 2.0},      /* not strictly ascending */
        {2.0, 1.0, 3.0},      /* descending */
        {0.0, 1.0, 2.0},      /* zero: bucket 0's lower edge is 0 */
        {-1.0, 1.0, 2.0},     /* negative */
        {1.0, NAN, 2.0},      /* NaN */
        {1.0, 2.0, INFINITY}, /* +Inf is implicit */
    };
    for (size_t i = 0; i < PX_ARRAY_LEN(bad); i++) {
        ck_assert_msg(px_hist_check_bounds(bad[i], 3) == PX_EINVAL, "bad bounds %zu accepted", i);
        /* init falls back to the +Inf bucket alone. */
        px_hist h;
        px_hist_init(&h, bad[i], 3);
        ck_assert_int_eq(h.n_bounds, 0);
        px_hist_observe(&h, 1.5);
        ck_assert_uint_eq(h.counts[0], 1);
        ck_assert_uint_eq(h.count, 1);
        ck_assert(isnan(px_hist_quantile(&h, 0.5)));
    }
    /* A copy: changing the caller's array later changes nothing. */
    double mine[] = {1.0, 2.0};
    px_hist h;
    px_hist_init(&h, mine, 2);
    mine[0] = 5.0;
    ck_assert_double_eq(h.bounds[0], 1.0);
}
END_TEST

START_TEST(test_stats_defaults) {
    px_stats s;
    memset(&s, 0xff, sizeof(s));
    px_stats_init(&s);
    static const px_stats_counters zero;
    ck_assert(memcmp(&s.c, &zero, sizeof(zero)) == 0);
    const px_hist *hs[] = {&s.ttft, &s.itl, &s.e2e, &s.queue};
    for (size_t i = 0; i < PX_ARRAY_LEN(hs); i++) {
        ck_assert_int_gt(hs[i]->n_bounds, 8);
        ck_assert_int_eq(px_hist_check_bounds(hs[i]->bounds, hs[i]->n_bounds), 0);
        ck_assert_uint_eq(hs[i]->count, 0);
        ck_assert_uint_eq(counts_total(hs[i]), 0);
        ck_assert_double_eq(hs[i]->sum, 0.0);
    }
    /* vLLM's TTFT range: 1 ms .. 2560 s. */
    ck_assert_double_eq(s.ttft.bounds[0], 0.001);
    ck_assert_double_eq(s.ttft.bounds[s.ttft.n_bounds - 1], 2560.0);
    /* A CPU decode step of a few ms must not fall into the first bucket
     * with everything else: ITL resolves below 10 ms. */
    ck_assert_double_le(s.itl.bounds[0], 0.001);
    ck_assert_double_ge(s.e2e.bounds[s.e2e.n_bounds - 1], 3600.0);
    px_stats_deinit(&s);
}
END_TEST

/* --- snapshot while the scheduler thread writes ------------------------ */

enum { WRITES = 20000, HANDSHAKE_EVERY = 1000 };

typedef struct writer_arg {
    px_stats *s;
    atomic_int snaps; /* snapshots the reader has checked */
    atomic_int done;
} writer_arg;

/* Each update group keeps invariants a torn copy would break: steps ==
 * ttft.count == itl.count, generation_tokens == 3 * steps, running ==
 * -waiting, sums == 0.25 * count. Every HANDSHAKE_EVERY writes the writer
 * waits for a fresh snapshot, so reads and writes surely interleave without
 * relying on timing. */
static void *writer(void *p) {
    writer_arg *a = p;
    int seen = 0;
    for (int i = 0; i < WRITES; i++) {
        if (i % HANDSHAKE_EVERY == 0) {
            while (atomic_load(&a->snaps) == seen)
                ;
            seen = atomic_load(&a->snaps);
        }
        px_stats_lock(a->s);
        a->s->c.steps++;
        a->s->c.generation_tokens += 3;
        a->s->c.running = i;
        a->s->c.waiting = -i;
        px_hist_observe(&a->s->ttft, 0.25);
        px_hist_observe(&a->s->itl, 0.25);
        px_stats_unlock(a->s);
    }
    atomic_store(&a->done, 1);
    return NULL;
}

static void check_consistent(const px_stats_counters *c, const px_hist *ttft, const px_hist *itl) {
    ck_assert_uint_eq(ttft->count, c->steps);
    ck_assert_uint_eq(itl->count, c->steps);
    ck_assert_uint_eq(counts_total(ttft), c->steps);
    ck_assert_uint_eq(c->generation_tokens, 3 * c->steps);
    ck_assert_int_eq(c->running, -c->waiting);
    ck_assert_double_eq(ttft->sum, 0.25 * (double)c->steps);
    ck_assert_double_eq(itl->sum, 0.25 * (double)c->steps);
}

START_TEST(test_snapshot_concurrent) {
    px_stats s;
    px_stats_init(&s);
    writer_arg a = {.s = &s};
    atomic_init(&a.snaps, 0);
    atomic_init(&a.done, 0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, writer, &a), 0);
    px_stats_counters c;
    px_hist ttft, itl;
    uint64_t last = 0;
    while (!atomic_load(&a.done)) {
        px_stats_snapshot(&s, &c, &ttft, &itl, NULL, NULL);
        check_consistent(&c, &ttft, &itl);
        ck_assert_uint_ge(c.steps, last); /* counters never go back */
        last = c.steps;
        atomic_fetch_add(&a.snaps, 1);
    }
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    px_hist e2e, queue;
    px_stats_snapshot(&s, &c, &ttft, &itl, &e2e, &queue);
    check_consistent(&c, &ttft, &itl);
    ck_assert_uint_eq(c.steps, WRITES);
    ck_assert_uint_eq(e2e.count, 0);
    ck_assert_int_eq(queue.n_bounds, s.queue.n_bounds);
    ck_assert_int_ge(atomic_load(&a.snaps), WRITES / HANDSHAKE_EVERY);
    px_stats_deinit(&s);
}
END_TEST

Suite *px_suite_stats(void) {
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_buckets_le);
    tcase_add_test(tc, test_count_sum);
    tcase_add_test(tc, test_quantile_formula);
    tcase_add_test(tc, test_quantile_empty_buckets);
    tcase_add_test(tc, test_quantile_empty);
    tcase_add_test(tc, test_quantile_uniform);
    tcase_add_test(tc, test_bounds_validation);
    tcase_add_test(tc, test_stats_defaults);
    tcase_add_test(tc, test_snapshot_concurrent);
    suite_add_tcase(s, tc);
    return s;
}
