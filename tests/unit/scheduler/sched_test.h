/* sched_test.h — helpers shared by the scheduler's test files (defined in
 * sched.c): the tiny test model, requests, stepping and checks. */
#ifndef PX_TEST_SCHED_TEST_H
#define PX_TEST_SCHED_TEST_H

#include <stdint.h>

#include "engine/model.h"
#include "scheduler/request.h"
#include "scheduler/sched.h"

/* What a request produced, per choice. */
typedef struct outcome {
    px_request *r;
    int32_t tok[PX_MAX_CHOICES][256];
    int n_tok[PX_MAX_CHOICES];
    char text[PX_MAX_CHOICES][4096];
    size_t text_len[PX_MAX_CHOICES];
    px_finish finish[PX_MAX_CHOICES];
    int n_finish;
    int done;
    int32_t usage_prompt, usage_completion, usage_cached;
    char message[160];
} outcome;

/* A greedy run straight through the engine, with the gap between the top
 * two logits at every step. */
typedef struct ref_run {
    int32_t tok[256];
    float gap[256];
    int n;
} ref_run;

extern char *g_model_path; /* the tiny gemma3 test model (Q8_0) */
extern double g_itl_ratio; /* pacing of the schedulers make_sched creates */
void make_model_once(void);
/* Deletes the test model file made by make_model_once (suite teardowns). */
void drop_model(void);
px_model *load_model(int64_t kv_blocks, int max_batch, int logit_rows);
px_sched *make_sched(px_model *m, int max_batch, int max_running, int prefix);
/* Takes o->r's events into o. */
void collect(outcome *o);
/* A greedy request (ignore_eos) for n ids. */
px_request *make_request(const int32_t *prompt, int n, int max_tokens);
/* n ids in [8, 1408) from seed. */
void make_prompt(int32_t *ids, int n, uint32_t seed);
/* Steps until all n outcomes are done, checking block accounting; returns
 * the steps taken. */
int run_all(px_sched *s, outcome *o, int n);
/* No sequence, no used block in either pool, consistent counts. */
void expect_idle(px_sched *s);
/* The reference on m (blocks 0..63 as one table for every layer). */
void reference_model(px_model *m, const int32_t *prompt, int n_prompt, int n_gen, ref_run *out);
/* got must equal the reference tokens. */
void expect_tokens(const int32_t *got, int n_got, const ref_run *ref, const char *what);

#endif
