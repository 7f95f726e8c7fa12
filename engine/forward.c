/* forward.c — px_forward: one batch-first pass of gemma3 or llama.
 *
 * Per layer: RMSNorm -> Q, K, V projections -> (gemma3: per-head Q/K
 * RMSNorm) -> RoPE -> K/V written into the paged cache -> attention of each
 * row over its own sequence through the block table -> output projection
 * (gemma3: post-attention norm) -> residual; RMSNorm -> gate/up -> GeGLU
 * (gemma3) or SwiGLU (llama) -> down (gemma3: post-FFN norm) -> residual.
 * Then the final norm and the output projection for the rows that want
 * logits only. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kernels.h"
#include "model_int.h"
#include "ops.h"
#include "px.h"
#include "quant.h"

/* The embedding row of `id` into dst (n_embd floats). */
static void embed_row(const px_model *m, int32_t id, float *dst) {
    const px_tensor *e = &m->tok_embd;
    const char *row = (const char *)e->data + (size_t)id * e->row_bytes;
    px_dequantize_row(e->type, row, dst, e->ne[0]);
}

static int check_batch(const px_model *m, const px_batch *b, int *n_logits, char *err,
                       size_t errlen) {
    if (b->n_tok <= 0 || b->n_tok > m->max_batch_tokens)
        return px_fail(err, errlen, PX_EINVAL, "batch of %d tokens (limit %d)", b->n_tok,
                       m->max_batch_tokens);
    if (b->n_seqs <= 0 || !b->seqs || !b->tokens || !b->pos || !b->seq)
        return px_fail(err, errlen, PX_EINVAL, "batch without sequences");
    for (int s = 0; s < b->n_seqs; s++) {
        const px_batch_seq *sq = &b->seqs[s];
        if (sq->n_blocks < 0 || (sq->n_blocks > 0 && !sq->blocks))
            return px_fail(err, errlen, PX_EINVAL, "sequence %d: bad block table", s);
        for (int i = 0; i < sq->n_blocks; i++)
            if (sq->blocks[i] < 0 || sq->blocks[i] >= m->kv_blocks)
                return px_fail(err, errlen, PX_EINVAL, "sequence %d: block id %d out of range", s,
                               sq->blocks[i]);
    }
    int nl = 0;
    const int bs = m->kv_block_size, win = m->cfg.sliding_window;
    for (int i = 0; i < b->n_tok; i++) {
        if (b->tokens[i] < 0 || b->tokens[i] >= m->cfg.n_vocab)
            return px_fail(err, errlen, PX_EINVAL, "token id %d out of range [0, %d)", b->tokens[i],
                           m->cfg.n_vocab);
        if (b->seq[i] < 0 || b->seq[i] >= b->n_seqs)
            return px_fail(err, errlen, PX_EINVAL, "row %d: sequence index %d out of range", i,
                           b->seq[i]);
        const px_batch_seq *sq = &b->seqs[b->seq[i]];
        int32_t p = b->pos[i];
        if (p < 0 || p >= m->n_ctx)
            return px_fail(err, errlen, PX_EINVAL, "position %d outside the context of %d", p,
                           m->n_ctx);
        if (p / m->kv_block_size >= sq->n_blocks)
            return px_fail(err, errlen, PX_EINVAL,
                           "position %d outside the block table (%d blocks)", p, sq->n_blocks);
        if (b->want_logits && b->want_logits[i]) nl++;
        if (b->attn_end && b->attn_end[i] > p &&
            (b->attn_end[i] > m->n_ctx || (b->attn_end[i] - 1) / m->kv_block_size >= sq->n_blocks))
            return px_fail(err, errlen, PX_EINVAL, "row %d: attention span end %d out of range", i,
                           b->attn_end[i]);
        if (m->kv_blocks_local > 0) {
            /* The local blocks this row writes and reads: its window, on to
             * the end of its image. */
            const px_batch_seq *ls = b->lseqs ? &b->lseqs[b->seq[i]] : sq;
            const int32_t *lt = ls->blocks;
            int32_t n_lt = ls->n_blocks;
            int32_t lo = win > 0 && p - win + 1 > 0 ? p - win + 1 : 0;
            int32_t hi = b->attn_end && b->attn_end[i] > p + 1 ? b->attn_end[i] - 1 : p;
            if ((n_lt > 0 && !lt) || hi / bs >= n_lt)
                return px_fail(err, errlen, PX_EINVAL,
                               "row %d: position %d outside the local block table (%d blocks)", i,
                               hi, n_lt);
            for (int32_t k = lo / bs; k <= hi / bs; k++)
                if (lt[k] < 0 || lt[k] >= m->kv_blocks_local)
                    return px_fail(err, errlen, PX_EINVAL,
                                   "row %d: local block %d (id %d) missing or out of range", i, k,
                                   lt[k]);
        }
    }
    if (nl > m->max_logit_rows)
        return px_fail(err, errlen, PX_EINVAL, "%d logit rows (limit %d)", nl, m->max_logit_rows);
    *n_logits = nl;
    return 0;
}

/* Attention work shared with the pool workers. */
typedef struct attn_job {
    px_model *m;
    const px_batch *b;
    int layer;
    int local;
} attn_job;

enum { ATTN_Q = PX__ATTN_Q, ATTN_V = 64 /* value rows per accumulation call */ };

/* The query heads h0 .. h0+nq-1 (nq <= ATTN_Q) of one row, all on KV head
 * kvh: softmax(q·K * scale) · V over the visible positions. The heads share
 * each key and value load; the kernels keep every score and output the
 * same whatever the grouping (kernels.h). */
static void attend_heads(px_model *m, const px_batch *b, int layer, int local, int row, int h0,
                         int nq, int kvh, float *scores) {
    const px_model_config *c = &m->cfg;
    const px_kernels *ks = px__kernels_get();
    const int hd = c->head_dim, bs = m->kv_block_size;
    const px_batch_seq *sq = &b->seqs[b->seq[row]];
    const int32_t p = b->pos[row];
    const int32_t *tbl = local && b->lseqs ? b->lseqs[b->seq[row]].blocks : sq->blocks;
    /* Keys lo..hi: causal (and windowed) up to p, on to the end of an image. */
    const int32_t hi = b->attn_end && b->attn_end[row] > p + 1 ? b->attn_end[row] - 1 : p;
    int32_t lo = 0;
    if (local && c->sliding_window > 0 && p - c->sliding_window + 1 > 0)
        lo = p - c->sliding_window + 1;
    const int32_t n = hi - lo + 1;
    const size_t sstride = (size_t)m->n_ctx + 16, kv_dim = (size_t)c->n_head_kv * hd;
    const float *q = m->rs.q + ((size_t)row * c->n_head + h0) * hd;
    float *out = m->rs.att + ((size_t)row * c->n_head + h0) * hd;

    /* Scores, PX_ATTN_TILE / nq key vectors (8 tokens of one block) a call. */
    const int nv_max = PX_MAX(1, PX_ATTN_TILE / nq);
    const px_f16 *kv[PX_ATTN_TILE];
    int32_t t_at[PX_ATTN_TILE], t_cnt[PX_ATTN_TILE];
    float tile[ATTN_Q * 8 * PX_ATTN_TILE];
    int nv = 0;
    for (int32_t t = lo; t <= hi || nv > 0;) {
        if (t <= hi) {
            int32_t j = t % bs, cnt = PX_MIN(PX_MIN(8, bs - j), hi + 1 - t);
            kv[nv] = px__kv_block(m, layer, 0, tbl[t / bs]) + (size_t)kvh * hd * bs + j;
            t_at[nv] = t;
            t_cnt[nv++] = cnt;
            t += cnt;
            if (nv < nv_max && t <= hi) continue;
        }
        ks->attn_scores(hd, q, (size_t)hd, nq, kv, nv, (size_t)bs, tile, (size_t)(8 * nv_max));
        for (int i = 0; i < nq; i++)
            for (int v = 0; v < nv; v++)
                for (int l = 0; l < t_cnt[v]; l++)
                    scores[(size_t)i * sstride + (size_t)(t_at[v] - lo + l)] =
                        tile[(size_t)i * (size_t)(8 * nv_max) + (size_t)(8 * v + l)] *
                        c->attn_scale;
        nv = 0;
    }
    /* Softmax per head; the scores become the weights. */
    for (int i = 0; i < nq; i++) {
        float *si = scores + (size_t)i * sstride, mx = -INFINITY, sum = 0.0f;
        for (int32_t k = 0; k < n; k++)
            mx = si[k] > mx ? si[k] : mx;
        ks->exp_shift(si, n, mx);
        for (int32_t k = 0; k < n; k++)
            sum += si[k];
        float inv = 1.0f / sum;
        for (int32_t k = 0; k < n; k++)
            si[k] *= inv;
        memset(out + (size_t)i * hd, 0, sizeof(float) * (size_t)hd);
    }
    const px_f16 *vr[ATTN_V];
    for (int32_t t0 = lo; t0 <= hi; t0 += ATTN_V) {
        int nt = (int)PX_MIN((int32_t)ATTN_V, hi + 1 - t0);
        for (int k = 0; k < nt; k++) {
            int32_t t = t0 + k;
            vr[k] = px__kv_block(m, layer, 1, tbl[t / bs]) + (size_t)(t % bs) * kv_dim +
                    (size_t)kvh * hd;
        }
        ks->attn_accum(hd, scores + (t0 - lo), sstride, nq, vr, nt, out, (size_t)hd);
    }
}

static void attn_worker(void *ctx, int ith, int nth) {
    attn_job *j = ctx;
    px_model *m = j->m;
    const int group = m->cfg.n_head / m->cfg.n_head_kv, parts = (group + ATTN_Q - 1) / ATTN_Q;
    const int per_row = m->cfg.n_head_kv * parts; /* work items of a row */
    const int64_t total = (int64_t)j->b->n_tok * per_row;
    float *scores = m->rs.scores + (size_t)ith * ATTN_Q * (size_t)(m->n_ctx + 16);
    /* Interleaved split: causal rows get longer down the batch, so contiguous
     * ranges would leave the last worker with most of the work. */
    for (int64_t w = ith; w < total; w += nth) {
        int row = (int)(w / per_row), r = (int)(w % per_row);
        int kvh = r / parts, part = r % parts, h0 = kvh * group + part * ATTN_Q;
        attend_heads(m, j->b, j->layer, j->local, row, h0, PX_MIN(ATTN_Q, group - part * ATTN_Q),
                     kvh, scores);
    }
}

/* RMS norms of many rows are spread over the pool (a prefill's norms took
 * 6% of it on one thread while the other waited). */
typedef struct norm_job {
    float *y;
    const float *x, *w;
    int64_t rows, n;
    float eps;
} norm_job;

static void norm_worker(void *ctx, int ith, int nth) {
    norm_job *j = ctx;
    int64_t r0 = j->rows * ith / nth, r1 = j->rows * (ith + 1) / nth;
    px_rmsnorm(j->y + r0 * j->n, j->x + r0 * j->n, j->w, r1 - r0, j->n, j->eps);
}

static void norm(px_model *m, float *y, const float *x, const void *w, int64_t rows, int64_t n,
                 float eps) {
    norm_job j = {.y = y, .x = x, .w = w, .rows = rows, .n = n, .eps = eps};
    if (rows * n >= 32768 && rows >= m->n_threads && m->n_threads > 1)
        px_pool_run(m->pool, norm_worker, &j);
    else
        px_rmsnorm(y, x, w, rows, n, eps);
}

/* Writes this batch's K and V rows (already roped) into the cache: V as
 * rows, K transposed within the block (kernels.h). */
static void store_kv(px_model *m, const px_batch *b, int layer) {
    const px_model_config *c = &m->cfg;
    const int bs = m->kv_block_size, hd = c->head_dim;
    const size_t kv_dim = (size_t)c->n_head_kv * hd;
    const int local = m->layers[layer].is_local;
    px_f16 *kh = m->rs.k16;
    for (int i = 0; i < b->n_tok; i++) {
        const px_batch_seq *sq = &b->seqs[b->seq[i]];
        const int32_t *tbl = local && b->lseqs ? b->lseqs[b->seq[i]].blocks : sq->blocks;
        int32_t p = b->pos[i];
        px_f32_to_f16_row((int64_t)kv_dim, m->rs.k + i * kv_dim, kh);
        px_f16 *kb = px__kv_block(m, layer, 0, tbl[p / bs]) + p % bs;
        for (size_t e = 0; e < kv_dim; e++)
            kb[e * (size_t)bs] = kh[e];
        px_f32_to_f16_row((int64_t)kv_dim, m->rs.v + i * kv_dim,
                          px__kv_block(m, layer, 1, tbl[p / bs]) + (size_t)(p % bs) * kv_dim);
    }
}

static int layer_forward(px_model *m, const px_batch *b, int il) {
    const px_model_config *c = &m->cfg;
    const px_layer *L = &m->layers[il];
    px_run_state *rs = &m->rs;
    const int T = b->n_tok, hd = c->head_dim, gemma = c->arch == PX_ARCH_GEMMA3;
    const size_t q_dim = (size_t)c->n_head * hd, kv_dim = (size_t)c->n_head_kv * hd;
    int rc;

    norm(m, rs->xn, rs->x, L->attn_norm.data, T, c->n_embd, c->rms_eps);
    {
        /* Q, K and V share one quantized input and one pool run. */
        const px_tensor *w[3] = {&L->wq, &L->wk, &L->wv};
        float *y[3] = {rs->q, rs->k, rs->v};
        if ((rc = px_matmul_multi(m->mm, 3, w, rs->xn, T, y)) < 0) return rc;
    }
    if (gemma) {
        norm(m, rs->q, rs->q, L->q_norm.data, (int64_t)T * c->n_head, hd, c->rms_eps);
        norm(m, rs->k, rs->k, L->k_norm.data, (int64_t)T * c->n_head_kv, hd, c->rms_eps);
    }
    const float *tab = L->is_local ? rs->rope_l : rs->rope_g;
    for (int i = 0; i < T; i++) {
        px_rope(rs->q + i * q_dim, c->n_head, hd, tab + (size_t)i * hd, gemma);
        px_rope(rs->k + i * kv_dim, c->n_head_kv, hd, tab + (size_t)i * hd, gemma);
    }
    store_kv(m, b, il);
    attn_job job = {.m = m, .b = b, .layer = il, .local = L->is_local};
    px_pool_run(m->pool, attn_worker, &job);
    if ((rc = px_matmul(m->mm, &L->wo, rs->att, T, rs->xn)) < 0) return rc;
    if (gemma) norm(m, rs->xn, rs->xn, L->post_attn_norm.data, T, c->n_embd, c->rms_eps);
    for (size_t i = 0; i < (size_t)T * c->n_embd; i++)
        rs->x[i] += rs->xn[i];

    norm(m, rs->xn, rs->x, L->ffn_norm.data, T, c->n_embd, c->rms_eps);
    {
        const px_tensor *w[2] = {&L->w_gate, &L->w_up};
        float *y[2] = {rs->gate, rs->up};
        if ((rc = px_matmul_multi(m->mm, 2, w, rs->xn, T, y)) < 0) return rc;
    }
    px_glu(m->mm, gemma, rs->gate, rs->up, (int64_t)T * c->n_ff);
    if ((rc = px_matmul(m->mm, &L->w_down, rs->gate, T, rs->xn)) < 0) return rc;
    if (gemma) norm(m, rs->xn, rs->xn, L->post_ffn_norm.data, T, c->n_embd, c->rms_eps);
    for (size_t i = 0; i < (size_t)T * c->n_embd; i++)
        rs->x[i] += rs->xn[i];
    return 0;
}

int px_forward(px_model *m, const px_batch *b, float *logits, char *err, size_t errlen) {
    int n_logits = 0, rc;
    if ((rc = check_batch(m, b, &n_logits, err, errlen)) < 0) return rc;
    const px_model_config *c = &m->cfg;
    px_run_state *rs = &m->rs;
    const int T = b->n_tok, hd = c->head_dim;
    const float emb_scale = c->arch == PX_ARCH_GEMMA3 ? sqrtf((float)c->n_embd) : 1.0f;

    for (int i = 0; i < T; i++) {
        float *xr = rs->x + (size_t)i * c->n_embd;
        if (b->embd && b->embd[i]) {
            memcpy(xr, b->embd[i], sizeof(float) * (size_t)c->n_embd);
        } else {
            embed_row(m, b->tokens[i], xr);
            if (emb_scale != 1.0f)
                for (int j = 0; j < c->n_embd; j++)
                    xr[j] *= emb_scale;
        }
        px_rope_table(rs->rope_g + (size_t)i * hd, hd, m->inv_freq_g, b->pos[i]);
        if (c->sliding_window > 0)
            px_rope_table(rs->rope_l + (size_t)i * hd, hd, m->inv_freq_l, b->pos[i]);
    }
    for (int il = 0; il < c->n_layer; il++)
        if ((rc = layer_forward(m, b, il)) < 0)
            return px_fail(err, errlen, rc, "layer %d: %s", il, px_strerror(rc));
    if (n_logits == 0) return 0;
    int r = 0;
    for (int i = 0; i < T; i++)
        if (b->want_logits[i])
            memcpy(rs->xl + (size_t)r++ * c->n_embd, rs->x + (size_t)i * c->n_embd,
                   sizeof(float) * (size_t)c->n_embd);
    norm(m, rs->xl, rs->xl, m->out_norm.data, n_logits, c->n_embd, c->rms_eps);
    if ((rc = px_matmul(m->mm, &m->output, rs->xl, n_logits, logits)) < 0)
        return px_fail(err, errlen, rc, "output projection: %s", px_strerror(rc));
    return 0;
}
