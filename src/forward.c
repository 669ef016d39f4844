/* The V4 forward pass (spec 4), as a column of named steps:
 *
 *   embed -> per block: mhc_pre -> attention -> mhc_post -> mhc_pre -> moe
 *   -> mhc_post -> hc_head -> norm -> head
 *
 * V4.1 (spec 5): Engram hashes the batch first; a block starts with Engram
 * on its layers; mHC is single-pass (each site collapses with the pre of
 * the site before, layer 0's attention with stream 0), and the head
 * collapses with the last site's pre instead of hc_head.
 *
 * Tokens run in batches of up to n_batch rows; the caches carry the
 * sequence between batches, so any split of a prompt gives the same result. */
#include "model.h"
#include "csa2.h"
#include "kernels.h"
#include "util.h"

#include <string.h>

static int single_pass(const lt_model *m) { return m->cfg.arch == LT_ARCH_V41; }

/* 4.1: every stream of token t starts as its embedding */
static void embed(const lt_model *m, const int32_t *tokens, int64_t n, float *X) {
    int64_t hc = m->cfg.hc_mult, D = m->cfg.dim;
    for (int64_t t = 0; t < n; t++) {
        float *x = X + t * hc * D;
        lt_weight_row(&m->embed, tokens[t], x);
        for (int64_t i = 1; i < hc; i++) memcpy(x + i * D, x, (size_t)D * sizeof *x);
    }
}

/* 3.3 + 4.2: the site's mixes, the collapsed streams, RMSNorm -> c->h.
 * Two-pass (V4) collapses with the site's own pre; single-pass (V4.1) with
 * the carried pre of the site before, and carries its own to the next. */
static void mhc_pre(lt_context *c, const lt_mhc_site *site, const lt_vec *norm, const float *X, int64_t n) {
    const lt_config *cfg = &c->m->cfg;
    int64_t hc = cfg->hc_mult, D = cfg->dim;
    int carried = single_pass(c->m);
    lt_mhc_site_mixes(site, X, n, (int)hc, D, cfg->hc_sinkhorn_iters, (float)cfg->hc_eps, (float)cfg->rms_norm_eps,
                      c->mix, c->pre, c->post, c->comb);
    const float *pre = carried ? c->carry : c->pre;
    for (int64_t t = 0; t < n; t++) lt_kern()->mhc_collapse(X + t * hc * D, pre + t * hc, (int)hc, D, c->x + t * D);
    if (carried) memcpy(c->carry, c->pre, (size_t)(n * hc) * sizeof *c->carry);
    lt_num_store(&c->num, c->x, n * D);
    for (int64_t t = 0; t < n; t++) lt_kern()->rmsnorm(c->h + t * D, c->x + t * D, norm, D, (float)cfg->rms_norm_eps);
    lt_num_store(&c->num, c->h, n * D);
}

/* 3.3: X[k] <- post[k] * c->out + sum_j comb[j][k] X[j] */
static void mhc_post(lt_context *c, float *X, int64_t n) {
    const lt_config *cfg = &c->m->cfg;
    int64_t hc = cfg->hc_mult, D = cfg->dim;
    for (int64_t t = 0; t < n; t++)
        lt_kern()->mhc_expand(X + t * hc * D, c->out + t * D, c->post + t * hc, c->comb + t * hc * hc, (int)hc, D);
    lt_num_store(&c->num, X, n * hc * D);
}

static void trace_selections(const lt_context *c, const lt_block *b, int64_t n, int64_t pos0) {
    const lt_config *cfg = &c->m->cfg;
    lt_trace_event router = {.kind = LT_TRACE_ROUTER, .layer = b->layer, .pos0 = pos0, .n = n,
                             .width = cfg->n_experts_per_tok, .f = c->moe.wt, .idx = c->moe.sel};
    lt_context_emit(c, &router);
    if (!(b->attn.v41 ? b->attn.csa2 & LT_CSA2_INDEX_SOURCE : b->attn.ratio == 4)) return;
    lt_trace_event indexer = {.kind = LT_TRACE_INDEXER, .layer = b->layer, .pos0 = pos0, .n = n,
                              .width = cfg->index_topk, .idx = c->attn.idx.sel, .count = c->attn.idx.n_sel};
    lt_context_emit(c, &indexer);
}

void lt_forward_block(lt_context *c, const lt_block *b, lt_attn_cache *cache, float *X, const int32_t *tokens,
                      int64_t n, int64_t pos0) {
    const lt_model *m = c->m;
    const lt_rope *rope = b->attn.ratio ? &m->rope_compress : &m->rope_main; /* 3.2: schedule by layer kind */
    int src = b->attn.kv_source;
    lt_attn_cache *kv = src < 0 || src == b->layer ? cache : &c->caches[src];           /* 5.1: shared entries */
    if (b->engram) {                                                                    /* 5.3 */
        float *gate = c->trace ? c->post : NULL; /* post [n, hc] is free until mhc_pre */
        lt_engram_forward_gates(b->engram, &c->num, X,
                                c->engram_ids + (int64_t)b->engram->slot * n * b->engram->n_cols, NULL, n,
                                c->engram_emb, c->engram_kv, gate);
        lt_trace_event ev = {.kind = LT_TRACE_ENGRAM, .layer = b->layer, .pos0 = pos0, .n = n,
                             .width = b->engram->hc, .f = gate};
        if (gate) lt_context_emit(c, &ev);
    }
    mhc_pre(c, &b->hc_attn, &b->attn_norm, X, n);                                       /* 4.2.1 */
    lt_attention_forward(&b->attn, &m->cfg, rope, &c->num, cache, kv, &c->attn, c->h, n, pos0, c->out); /* 4.3 */
    mhc_post(c, X, n);                                                                  /* 4.2.2 */
    mhc_pre(c, &b->hc_ffn, &b->ffn_norm, X, n);                                         /* 4.2.3 */
    lt_moe_forward(&b->moe, &m->cfg, &c->num, &c->moe, c->h, tokens, n, c->out);        /* 4.4 */
    mhc_post(c, X, n);
    if (c->trace) trace_selections(c, b, n, pos0);
}

/* 4.5 after the collapse: logits[n, V] = head . norm(c->x) */
static void norm_head(lt_context *c, const lt_vec *norm, int64_t n, int64_t pos0, int layer, float *logits) {
    const lt_model *m = c->m;
    const lt_config *cfg = &m->cfg;
    int64_t D = cfg->dim;
    lt_num_store(&c->num, c->x, n * D);
    for (int64_t t = 0; t < n; t++) lt_kern()->rmsnorm(c->h + t * D, c->x + t * D, norm, D, (float)cfg->rms_norm_eps);
    lt_num_store(&c->num, c->h, n * D);
    lt_trace_event ev = {.kind = LT_TRACE_FINAL, .layer = layer, .pos0 = pos0, .n = n, .width = D, .f = c->h};
    lt_context_emit(c, &ev);
    lt_num_linear(&c->num, &m->head, c->h, n, logits, LT_LIN_F32);
}

void lt_forward_head(lt_context *c, const lt_mhc_head *hh, const lt_vec *norm, const float *X, int64_t n,
                     int64_t pos0, int layer, float *logits) {
    const lt_config *cfg = &c->m->cfg;
    lt_mhc_head_collapse(hh, X, n, cfg->hc_mult, cfg->dim, (float)cfg->hc_eps, (float)cfg->rms_norm_eps, c->mix, c->x);
    norm_head(c, norm, n, pos0, layer, logits);
}

/* 5.4: the V4.1 head collapses rows r0.. of X with the last site's pre */
static void carried_head(lt_context *c, const float *X, int64_t r0, int64_t n, int64_t pos0, float *logits) {
    int64_t hc = c->m->cfg.hc_mult, D = c->m->cfg.dim;
    for (int64_t t = 0; t < n; t++)
        lt_kern()->mhc_collapse(X + (r0 + t) * hc * D, c->carry + (r0 + t) * hc, (int)hc, D, c->x + t * D);
    norm_head(c, &c->m->norm, n, pos0 + r0, -1, logits);
}

/* 5.3: every Engram layer's hash ids of the batch, their rows paged in
 * while the layers before run */
static lt_status engram_hash(lt_context *c, const int32_t *tokens, int64_t n, int64_t pos0, lt_error *err) {
    const lt_model *m = c->m;
    lt_status st = lt_engram_hash(&m->hasher, &c->engram_hist, tokens, NULL, pos0, n, c->engram_ids, err);
    for (int i = 0; st == LT_OK && i < m->cfg.n_engram_layers; i++)
        lt_engram_prefetch(c->prefetch, &m->engram[i], c->engram_ids + i * n * m->hasher.n_cols, n);
    return st;
}

/* 4.1 / 5.4: the first site of a single-pass model collapses stream 0 */
static void carry_stream0(lt_context *c, int64_t n) {
    int64_t hc = c->m->cfg.hc_mult;
    memset(c->carry, 0, (size_t)(n * hc) * sizeof *c->carry);
    for (int64_t t = 0; t < n; t++) c->carry[t * hc] = 1.0f;
}

/* one batch of n <= n_batch tokens at the context position */
static lt_status run_batch(lt_context *c, const int32_t *tokens, int64_t n, float *logits, int all,
                           float *mtp_logits, lt_error *err) {
    const lt_model *m = c->m;
    int64_t hc = m->cfg.hc_mult, D = m->cfg.dim, pos0 = c->pos;
    if (m->cfg.n_engram_layers) {
        lt_status st = engram_hash(c, tokens, n, pos0, err);
        if (st != LT_OK) return st;
    }
    embed(m, tokens, n, c->X);                                                          /* 4.1 */
    if (single_pass(m)) carry_stream0(c, n);
    for (int l = 0; l < m->cfg.n_layers; l++) {                                         /* 4.2 */
        lt_forward_block(c, &m->layers[l], &c->caches[l], c->X, tokens, n, pos0);
        lt_trace_event ev = {.kind = LT_TRACE_HIDDEN, .layer = l, .pos0 = pos0, .n = n, .width = hc * D, .f = c->X};
        lt_context_emit(c, &ev);
    }
    int64_t r0 = all ? 0 : n - 1;                                                       /* 4.5 */
    if (logits && single_pass(m)) carried_head(c, c->X, r0, n - r0, pos0, logits);
    else if (logits) lt_forward_head(c, &m->hc_head, &m->norm, c->X + r0 * hc * D, n - r0, pos0 + r0, -1, logits);
    if (mtp_logits) lt_mtp_run(c, c->X, tokens, n, pos0, mtp_logits);                 /* 4.6 */
    c->pos += n;
    return LT_OK;
}

static lt_status check_input(const lt_context *c, const int32_t *tokens, int64_t n, lt_error *err) {
    if (n < 0) return lt_fail(err, LT_ERR_ARG, "token count is %lld but must be >= 0", (long long)n);
    if (n > c->n_ctx - c->pos)
        return lt_fail(err, LT_ERR_ARG, "context full: %lld tokens at position %lld exceed the context size %lld",
                       (long long)n, (long long)c->pos, (long long)c->n_ctx);
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c->m->cfg.vocab_size)
            return lt_fail(err, LT_ERR_ARG, "token %lld is %d but must be in [0, %d)", (long long)i, tokens[i],
                           c->m->cfg.vocab_size);
    return LT_OK;
}

lt_status lt_forward(lt_context *c, const int32_t *tokens, int64_t n, float *logits, int all, float *mtp_logits,
                     lt_error *err) {
    lt_status st = check_input(c, tokens, n, err);
    if (st != LT_OK) return st;
    int64_t V = c->m->cfg.vocab_size;
    for (int64_t i = 0; i < n; i += c->n_batch) {
        int64_t k = LT_MIN_I64(c->n_batch, n - i), last = i + k == n;
        float *rows = !logits ? NULL : all ? logits + i * V : last ? logits : NULL;
        st = run_batch(c, tokens + i, k, rows, all, mtp_logits ? mtp_logits + i * V : NULL, err);
        if (st != LT_OK) return st;
    }
    return LT_OK;
}
