/* faults.c — tests of the scheduler under injected engine faults
 * (px_sched_faults, TEST ONLY): a failed forward pass ends every request in
 * it with an error and nothing else; a NaN logits row ends just that
 * sequence's request while the rest of its batch goes on; the others (in
 * the batch, waiting, or submitted later) produce exactly the tokens of a
 * fault-free run of the same workload; no block leaks and nothing computed
 * by a bad pass is published in the prefix cache; a stalled step stops
 * last_step_time, which resumes after. Also the fault plan's parser. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/px.h"
#include "sched_test.h"
#include "suites.h"

#define MAX_BATCH 64
#define LOGIT_ROWS 16

/* One request of a workload, submitted just before step `at` (0 = first). */
typedef struct job {
    uint32_t seed; /* prompt: make_prompt(seed); equal seeds share a prefix */
    int len, gen, n_choices;
    int at;
    int prompt_lp; /* prompt logprobs (its PROMPT events are counted) */
} job;

typedef struct run {
    outcome o[8];
    int n_prompt_events[8];
    int failed_steps; /* px_sched_step calls that returned < 0 */
    int fail_rc;
} run;

/* Takes r's events, counting PROMPT events, into o. */
static void take(outcome *o, int *n_prompt) {
    px_event *ev = px_request_take_events(o->r);
    for (px_event *e = ev; e; e = e->next)
        *n_prompt += e->type == PX_EVENT_PROMPT;
    /* collect() reads the outbox itself: put the events back, in order. */
    while (ev) {
        px_event *next = ev->next;
        ev->next = NULL;
        px__request_post(o->r, ev);
        ev = next;
    }
    collect(o);
}

/* Runs the workload step by step on a fresh scheduler with the fault plan
 * f (NULL: none), checking block accounting after every step and that the
 * scheduler ends idle. */
static void run_jobs(px_model *m, int max_running, const px_sched_faults *f, const job *jobs,
                     int n_jobs, run *out) {
    memset(out, 0, sizeof *out);
    px_sched_opts so;
    px_sched_opts_init(&so);
    so.itl_ratio = 0; /* no pacing: the schedule depends on nothing timed */
    so.max_batch_tokens = MAX_BATCH;
    so.max_running = max_running;
    if (f) so.faults = *f;
    char err[256];
    px_sched *s = px_sched_create(m, &so, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    int submitted = 0;
    for (int step = 0;; step++) {
        ck_assert_int_lt(step, 10000);
        for (int i = 0; i < n_jobs; i++) {
            if (jobs[i].at != step) continue;
            int32_t prompt[128];
            ck_assert_int_le(jobs[i].len, 128);
            make_prompt(prompt, jobs[i].len, jobs[i].seed);
            px_request *r = make_request(prompt, jobs[i].len, jobs[i].gen);
            r->n_choices = jobs[i].n_choices;
            r->prompt_logprobs = jobs[i].prompt_lp;
            out->o[i].r = r;
            ck_assert_msg(px_sched_submit(s, r, err, sizeof err) == 0, "%s", err);
            submitted++;
        }
        int live = px_sched_step(s);
        if (live < 0) {
            out->failed_steps++;
            out->fail_rc = live;
        }
        ck_assert_msg(px_sched_check(s, err, sizeof err) == 0, "step %d: %s", step, err);
        for (int i = 0; i < n_jobs; i++)
            if (out->o[i].r && !out->o[i].done) take(&out->o[i], &out->n_prompt_events[i]);
        if (live == 0 && submitted == n_jobs) break;
    }
    for (int i = 0; i < n_jobs; i++)
        ck_assert_msg(out->o[i].done, "request %d never finished", i);
    expect_idle(s);
    px_sched_destroy(s);
}

static void free_run(run *r, int n_jobs) {
    for (int i = 0; i < n_jobs; i++)
        px_request_unref(r->o[i].r);
}

/* Request i, every choice, finished normally with the baseline's tokens. */
static void expect_same(const run *got, const run *base, int i, const job *j) {
    for (int c = 0; c < j->n_choices; c++) {
        ck_assert_msg(got->o[i].finish[c] == PX_FINISH_LENGTH, "request %d choice %d: finish %d", i,
                      c, got->o[i].finish[c]);
        ck_assert_int_eq(got->o[i].n_tok[c], j->gen);
        ck_assert_int_eq(base->o[i].n_tok[c], j->gen);
        for (int k = 0; k < j->gen; k++)
            ck_assert_msg(got->o[i].tok[c][k] == base->o[i].tok[c][k],
                          "request %d choice %d token %d: %d, fault-free run %d", i, c, k,
                          got->o[i].tok[c][k], base->o[i].tok[c][k]);
    }
}

/* Request i, every choice, ended with the model error after n_ok tokens
 * that match the baseline's. */
static void expect_error(const run *got, const run *base, int i, const job *j, int n_ok) {
    for (int c = 0; c < j->n_choices; c++) {
        ck_assert_msg(got->o[i].finish[c] == PX_FINISH_ERROR, "request %d choice %d: finish %d", i,
                      c, got->o[i].finish[c]);
        ck_assert_int_eq(got->o[i].n_tok[c], n_ok);
        for (int k = 0; k < n_ok; k++)
            ck_assert_int_eq(got->o[i].tok[c][k], base->o[i].tok[c][k]);
    }
    ck_assert_str_eq(got->o[i].message, "internal error in the model");
    ck_assert_int_eq(got->o[i].usage_completion, n_ok * j->n_choices);
}

/* A failed pass at step `fail` (1-based): A and B (two choices) are in it;
 * C waits (max_running 2), D arrives later with A's prompt. */
static void fail_case(int64_t fail) {
    px_model *m = load_model(64, MAX_BATCH, LOGIT_ROWS);
    const job jobs[] = {
        {.seed = 11, .len = 40, .gen = 8, .n_choices = 1, .at = 0},
        {.seed = 12, .len = 21, .gen = 8, .n_choices = 2, .at = 0},
        {.seed = 13, .len = 30, .gen = 10, .n_choices = 1, .at = 0},
        {.seed = 11, .len = 40, .gen = 6, .n_choices = 1, .at = 4},
    };
    const int n = 4;
    run *base = malloc(sizeof *base), *got = malloc(sizeof *got);
    run_jobs(m, 2, NULL, jobs, n, base);
    ck_assert_int_eq(base->failed_steps, 0);
    px_sched_faults f = {.fail_step = fail};
    run_jobs(m, 2, &f, jobs, n, got);
    ck_assert_int_eq(got->failed_steps, 1);
    ck_assert_int_eq(got->fail_rc, PX_EIO);
    expect_error(got, base, 0, &jobs[0], (int)fail - 1);
    expect_error(got, base, 1, &jobs[1], (int)fail - 1);
    expect_same(got, base, 2, &jobs[2]);
    expect_same(got, base, 3, &jobs[3]);
    /* A's prompt blocks reach the prefix cache only from a pass that
     * worked: D reuses them after a failed decode, not after a failed
     * prefill. */
    if (fail == 1)
        ck_assert_int_eq(got->o[3].usage_cached, 0);
    else
        ck_assert_int_eq(got->o[3].usage_cached, 32);
    free_run(base, n);
    free_run(got, n);
    free(base);
    free(got);
    px_model_free(m);
}

START_TEST(test_failed_prefill_step) {
    fail_case(1);
}
END_TEST

START_TEST(test_failed_decode_step) {
    fail_case(3);
}
END_TEST

/* A NaN row at step `nan`: A, B (two choices) and C decode together, rows
 * in plan order A, B0, C, B1 (B1 was forked last); row 1 is B's. D waits
 * (max_running 3) and has B's prompt. */
static void nan_case(int64_t nan) {
    px_model *m = load_model(64, MAX_BATCH, LOGIT_ROWS);
    const job jobs[] = {
        {.seed = 21, .len = 12, .gen = 9, .n_choices = 1, .at = 0},
        {.seed = 22, .len = 35, .gen = 9, .n_choices = 2, .at = 0},
        {.seed = 23, .len = 14, .gen = 7, .n_choices = 1, .at = 0},
        {.seed = 22, .len = 35, .gen = 5, .n_choices = 1, .at = 0},
    };
    const int n = 4;
    run *base = malloc(sizeof *base), *got = malloc(sizeof *got);
    run_jobs(m, 3, NULL, jobs, n, base);
    px_sched_faults f = {.nan_step = nan, .nan_row = 1};
    run_jobs(m, 3, &f, jobs, n, got);
    ck_assert_int_eq(got->failed_steps, 0); /* the pass itself worked */
    expect_same(got, base, 0, &jobs[0]);
    expect_error(got, base, 1, &jobs[1], (int)nan - 1);
    expect_same(got, base, 2, &jobs[2]);
    expect_same(got, base, 3, &jobs[3]);
    /* B's prefill is published only if its logits were finite. */
    if (nan == 1)
        ck_assert_int_eq(got->o[3].usage_cached, 0);
    else
        ck_assert_int_eq(got->o[3].usage_cached, 32);
    free_run(base, n);
    free_run(got, n);
    free(base);
    free(got);
    px_model_free(m);
}

START_TEST(test_nan_row_in_prefill) {
    nan_case(1);
}
END_TEST

START_TEST(test_nan_row_in_decode) {
    nan_case(3);
}
END_TEST

/* A NaN among the rows of a prompt-logprobs request: no logprob of that
 * pass is posted (NaN would reach the client as JSON), the request ends, and
 * the request sharing the pass is unaffected. */
START_TEST(test_nan_in_prompt_logprobs) {
    px_model *m = load_model(64, MAX_BATCH, LOGIT_ROWS);
    const job jobs[] = {
        {.seed = 31, .len = 10, .gen = 4, .n_choices = 1, .at = 0, .prompt_lp = 1},
        {.seed = 32, .len = 20, .gen = 6, .n_choices = 1, .at = 0},
    };
    run *base = malloc(sizeof *base), *got = malloc(sizeof *got);
    run_jobs(m, 4, NULL, jobs, 2, base);
    ck_assert_int_eq(base->n_prompt_events[0], 9);
    px_sched_faults f = {.nan_step = 1, .nan_row = 4}; /* A has rows 0..9 */
    run_jobs(m, 4, &f, jobs, 2, got);
    expect_error(got, base, 0, &jobs[0], 0);
    ck_assert_int_eq(got->n_prompt_events[0], 0);
    expect_same(got, base, 1, &jobs[1]);
    free_run(base, 2);
    free_run(got, 2);
    free(base);
    free(got);
    px_model_free(m);
}
END_TEST

/* A stall in the scheduler thread: last_step_time stops while it lasts
 * (what /health and the watchdog feed look at), then moves again; the
 * stalled request still gets its fault-free tokens; idle, the thread keeps
 * stamping. */
START_TEST(test_stall_stops_progress_stamp) {
    px_model *m = load_model(64, MAX_BATCH, LOGIT_ROWS);
    const job jobs[] = {{.seed = 41, .len = 9, .gen = 6, .n_choices = 1, .at = 0}};
    run *base = malloc(sizeof *base);
    run_jobs(m, 4, NULL, jobs, 1, base);

    const double stall = 1.0;
    px_sched_opts so;
    px_sched_opts_init(&so);
    so.max_batch_tokens = MAX_BATCH;
    so.max_running = 4;
    so.faults.stall_step = 3;
    so.faults.stall_s = stall;
    char err[256];
    px_sched *s = px_sched_create(m, &so, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    ck_assert_int_eq(px_sched_start(s), 0);
    px_stats_counters c;
    px_sched_snapshot(s, &c, NULL, NULL, NULL, NULL);
    ck_assert_msg(c.last_step_time > 0, "px_sched_start stamps progress");

    int32_t prompt[16];
    make_prompt(prompt, jobs[0].len, jobs[0].seed);
    outcome o = {.r = make_request(prompt, jobs[0].len, jobs[0].gen)};
    ck_assert_int_eq(px_sched_submit(s, o.r, err, sizeof err), 0);
    /* Watch the stamp: its age must reach the stall's length while the
     * request runs, with the steps counter frozen at the 2 passes before. */
    double max_age = 0, t_end = px_now() + 120;
    uint64_t steps_at_max = 0;
    while (!o.done) {
        ck_assert_msg(px_now() < t_end, "the request never finished");
        px_sched_snapshot(s, &c, NULL, NULL, NULL, NULL);
        double age = px_now() - c.last_step_time;
        if (age > max_age) {
            max_age = age;
            steps_at_max = c.steps;
        }
        collect(&o);
        usleep(2000);
    }
    ck_assert_msg(max_age >= 0.8 * stall, "last_step_time kept moving during the stall (%.3f s)",
                  max_age);
    /* The counter goes up right after a pass, the stamp at the end of its
     * step: the oldest stamp may be seen just after pass 3 (slow builds). */
    ck_assert_msg(steps_at_max == 2 || steps_at_max == 3, "steps at the stall: %llu",
                  (unsigned long long)steps_at_max);
    ck_assert_int_eq(o.finish[0], PX_FINISH_LENGTH);
    ck_assert_int_eq(o.n_tok[0], jobs[0].gen);
    for (int k = 0; k < jobs[0].gen; k++)
        ck_assert_int_eq(o.tok[0][k], base->o[0].tok[0][k]);
    /* After the stall the steps went on; idle, the stamp keeps moving. */
    px_sched_snapshot(s, &c, NULL, NULL, NULL, NULL);
    ck_assert_int_ge(c.steps, (uint64_t)jobs[0].gen);
    double stamp = c.last_step_time;
    while (c.last_step_time == stamp) {
        ck_assert_msg(px_now() < t_end, "the idle scheduler stopped stamping progress");
        usleep(20000);
        px_sched_snapshot(s, &c, NULL, NULL, NULL, NULL);
    }
    px_request_unref(o.r);
    px_sched_destroy(s);
    free_run(base, 1);
    free(base);
    px_model_free(m);
}
END_TEST

START_TEST(test_fault_plan_parse) {
    px_sched_faults f;
    char err[128];
    ck_assert_int_eq(px_sched_faults_parse("", &f, err, sizeof err), 0);
    ck_assert(f.fail_step == 0 && f.nan_step == 0 && f.stall_step == 0 && f.stall_s == 0);
    ck_assert_int_eq(px_sched_faults_parse("fail_step=5,nan_step=9,nan_row=2,stall_step=20,"
                                           "stall_s=40.5",
                                           &f, err, sizeof err),
                     0);
    ck_assert(f.fail_step == 5 && f.nan_step == 9 && f.nan_row == 2 && f.stall_step == 20);
    ck_assert(f.stall_s == 40.5);
    ck_assert_int_eq(px_sched_faults_parse("stall_s=2,stall_step=3", &f, err, sizeof err), 0);
    ck_assert(f.stall_step == 3 && f.stall_s == 2 && f.fail_step == 0 && f.stall_every == 0);
    ck_assert_int_eq(
        px_sched_faults_parse("stall_every=4,stall_step=1,stall_s=0.5", &f, err, sizeof err), 0);
    ck_assert(f.stall_step == 1 && f.stall_every == 4 && f.stall_s == 0.5);
    static const char *const bad[] = {
        "fail_step",
        "fail_step=",
        "fail_step=-1",
        "fail_step=+1",
        "bogus=1",
        "stall_s=inf",
        "stall_s=nan",
        "stall_s=1e3",
        "stall_s=3601",
        "nan_row= 1",
        ",",
        "nan_step=1,",
        "nan_step=1,,fail_step=2",
        "stall_s=1.2.3",
        "fail_step=99999999999",
        "fail_step=5;nan_step=2",
        "stall_s=.",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f.fail_step = 7;
        err[0] = 0;
        ck_assert_msg(px_sched_faults_parse(bad[i], &f, err, sizeof err) == PX_EINVAL,
                      "'%s' was accepted", bad[i]);
        ck_assert_msg(f.fail_step == 0 && f.stall_s == 0, "'%s' left a partial plan", bad[i]);
        ck_assert_msg(err[0], "'%s': no message", bad[i]);
    }
}
END_TEST

Suite *px_suite_sched_faults(void) {
    Suite *s = suite_create("sched_faults");
    TCase *tc = tcase_create("faults");
    tcase_set_timeout(tc, 600);
    tcase_add_checked_fixture(tc, NULL, drop_model);
    tcase_add_test(tc, test_failed_prefill_step);
    tcase_add_test(tc, test_failed_decode_step);
    tcase_add_test(tc, test_nan_row_in_prefill);
    tcase_add_test(tc, test_nan_row_in_decode);
    tcase_add_test(tc, test_nan_in_prompt_logprobs);
    tcase_add_test(tc, test_stall_stops_progress_stamp);
    tcase_add_test(tc, test_fault_plan_parse);
    suite_add_tcase(s, tc);
    return s;
}
