/* pool.c — tests of engine/pool.c: every worker runs exactly once per job
 * with the right (ith, nth), plain writes made by workers are visible when
 * px_pool_run returns, and jobs after the workers fell asleep still run. */
#include <check.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "cpu.h"
#include "pool.h"
#include "suites.h"

enum { MAX_TH = 8 };

typedef struct job {
    int nth_seen[MAX_TH]; /* plain ints: each written by one worker only */
    int runs[MAX_TH];
    long sum[MAX_TH];
    atomic_int calls;
    int round;
} job;

static void count_fn(void *arg, int ith, int nth) {
    job *j = arg;
    ck_assert_int_ge(ith, 0);
    ck_assert_int_lt(ith, nth);
    j->nth_seen[ith] = nth;
    j->runs[ith]++;
    j->sum[ith] += j->round; /* read of caller data published before the job */
    atomic_fetch_add(&j->calls, 1);
}

static void check_round(px_pool *p, job *j, int rounds) {
    int n = px_pool_size(p);
    ck_assert_int_eq(atomic_load(&j->calls), n * rounds);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(j->nth_seen[i], n);
        ck_assert_int_eq(j->runs[i], rounds);
        ck_assert_int_eq(j->sum[i], (long)rounds * (rounds + 1) / 2);
    }
}

START_TEST(test_each_worker_once) {
    static const int sizes[] = {1, 2, 3, 5};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        px_pool *p = px_pool_create(sizes[s]);
        ck_assert_ptr_nonnull(p);
        ck_assert_int_eq(px_pool_size(p), sizes[s]);
        job j;
        memset(&j, 0, sizeof j);
        atomic_init(&j.calls, 0);
        j.round = 1;
        px_pool_run(p, count_fn, &j);
        check_round(p, &j, 1);
        px_pool_destroy(p);
    }
}
END_TEST

START_TEST(test_many_small_jobs) {
    px_pool *p = px_pool_create(3);
    ck_assert_ptr_nonnull(p);
    job j;
    memset(&j, 0, sizeof j);
    atomic_init(&j.calls, 0);
    for (int r = 1; r <= 3000; r++) {
        j.round = r;
        px_pool_run(p, count_fn, &j);
        /* results of round r are visible now, without further sync */
        for (int i = 0; i < 3; i++)
            ck_assert_int_eq(j.runs[i], r);
    }
    check_round(p, &j, 3000);
    px_pool_destroy(p);
}
END_TEST

START_TEST(test_jobs_after_sleep) {
    px_pool *p = px_pool_create(2);
    ck_assert_ptr_nonnull(p);
    job j;
    memset(&j, 0, sizeof j);
    atomic_init(&j.calls, 0);
    for (int r = 1; r <= 3; r++) {
        usleep(20000); /* well past the spin: workers wait on the condvar */
        j.round = r;
        px_pool_run(p, count_fn, &j);
    }
    check_round(p, &j, 3);
    px_pool_destroy(p);
}
END_TEST

START_TEST(test_default_size) {
    px_pool *p = px_pool_create(0);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(px_pool_size(p), px_cpu_count());
    ck_assert_int_ge(px_cpu_count(), 1);
    px_pool_destroy(p);
    px_pool_destroy(NULL);
}
END_TEST

Suite *px_suite_pool(void) {
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("pool");
    tcase_add_test(tc, test_each_worker_once);
    tcase_add_test(tc, test_many_small_jobs);
    tcase_add_test(tc, test_jobs_after_sleep);
    tcase_add_test(tc, test_default_size);
    suite_add_tcase(s, tc);
    return s;
}
