/* Inference contexts: one sequence's caches (spec 4.8) and all scratch of
 * the forward pass, carved from a single allocation made at creation so
 * that evaluation never allocates. The layout runs twice: once to measure,
 * once to hand out the pointers. */
#include "model.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

#define LT_BATCH 128  /* tokens per forward run: bounds the scratch, not the prompt */

typedef struct {
    uint8_t *base;  /* NULL while measuring */
    uint64_t used;
} carver;

static void *carve(carver *cv, int64_t n, size_t size) {
    uint64_t off = (cv->used + 63) & ~(uint64_t)63; /* cache-line aligned buffers */
    cv->used = off + (uint64_t)n * size;
    return cv->base ? cv->base + off : NULL;
}
#define CARVE(cv, ptr, n) ((ptr) = carve((cv), (n), sizeof *(ptr)))

static void layout_pool(carver *cv, const lt_compressor *k, lt_pool *p) {
    int64_t cells = lt_compressor_slots(k) * lt_compressor_width(k);
    CARVE(cv, p->kv, cells);
    CARVE(cv, p->score, cells);
}

/* one block's caches: window ring, compressed entries, indexer keys, pools
 * (V4.1: entries, keys and the pool on KV sources only, no indexer pool) */
static void layout_cache(const lt_context *c, carver *cv, const lt_block *b, lt_attn_cache *k) {
    const lt_config *cfg = &c->m->cfg;
    const lt_attention *a = &b->attn;
    lt_attention_formats(cfg, &c->num, &k->win_fmt, &k->cmp_fmt);
    CARVE(cv, k->win, (int64_t)cfg->sliding_window * k->win_fmt.bytes);
    if (a->ratio == 0 || a->kv_source != b->layer) return;
    CARVE(cv, k->cmp, c->n_ctx / a->ratio * k->cmp_fmt.bytes);
    layout_pool(cv, &a->cmp, &k->pool);
    if (!a->v41 && a->ratio != 4) return;
    int64_t n_keys = c->n_ctx / a->ratio, di = cfg->index_head_dim;
    int fp4 = lt_indexer_fp4(&c->num, di);
    uint8_t *data, *scale;
    CARVE(cv, data, n_keys * (fp4 ? di / 2 : di * (int64_t)sizeof(float)));
    CARVE(cv, scale, fp4 ? n_keys * di / 32 : 0);
    lt_indexer_cache_init(&k->idx, &c->num, di, data, scale);
    if (!a->v41) layout_pool(cv, &a->idx.cmp, &k->idx.pool);
}

static const lt_attention *attn_of(const lt_model *m, int l) {
    return l < m->cfg.n_layers ? &m->layers[l].attn : &m->mtp.block.attn;
}

/* the most K=V rows one query gathers: its window plus the largest
 * long-range set of any block (CSA, V4.1: top-k; HCA: every entry) */
static int64_t max_rows(const lt_context *c) {
    const lt_model *m = c->m;
    int64_t most = 0;
    for (int l = 0; l < m->cfg.n_layers + m->has_mtp; l++) {
        const lt_attention *a = attn_of(m, l);
        int64_t rows = a->indexed ? m->cfg.index_topk : a->ratio > 0 ? c->n_ctx / a->ratio : 0;
        most = LT_MAX(most, rows);
    }
    return m->cfg.sliding_window + most;
}

/* the most entries one index selection ranks (+1) */
static int64_t max_ranked(const lt_context *c) {
    const lt_model *m = c->m;
    int64_t most = 0;
    for (int l = 0; l < m->cfg.n_layers + m->has_mtp; l++) {
        const lt_attention *a = attn_of(m, l);
        if (a->indexed) most = LT_MAX(most, c->n_ctx / a->ratio);
    }
    return most + 1;
}

static void layout_attn_scratch(const lt_context *c, carver *cv, lt_attn_scratch *s) {
    const lt_config *cfg = &c->m->cfg;
    int64_t nb = c->n_batch, H = cfg->n_heads, hd = cfg->head_dim, G = cfg->o_groups;
    int64_t K = cfg->index_topk, Hi = cfg->index_n_heads, di = cfg->index_head_dim;
    int64_t rows = s->max_rows = max_rows(c);
    /* V4.1 two-level selection: candidate blocks per token */
    int two_level = cfg->arch == LT_ARCH_V41 && cfg->candidate_source_layer_id >= 0;
    int64_t KB = two_level ? cfg->candidate_topk_blocks : 0, bs = cfg->candidate_block_size;
    CARVE(cv, s->qr, nb * cfg->q_lora_rank);
    CARVE(cv, s->q, nb * H * hd);
    CARVE(cv, s->kv, nb * hd);
    CARVE(cv, s->kvp, nb * hd * (int64_t)sizeof(float)); /* the widest row format */
    CARVE(cv, s->ent, (nb + 1) * LT_MAX(hd, di));       /* ratio 1 (V4.1): one entry per token */
    CARVE(cv, s->o, nb * H * hd);
    CARVE(cv, s->og, nb * H * hd / G);
    CARVE(cv, s->y, nb * G * cfg->o_lora_rank);
    CARVE(cv, s->cmp, 2 * nb * 2 * LT_MAX(hd, di));
    CARVE(cv, s->cs, cfg->rope_dim);
    CARVE(cv, s->rows, rows);
    CARVE(cv, s->sink, H);
    CARVE(cv, s->idx.q, nb * Hi * di);
    CARVE(cv, s->idx.wt, nb * Hi);
    CARVE(cv, s->idx.score, max_ranked(c));
    CARVE(cv, s->idx.qs, Hi * di * (int64_t)sizeof(float));
    CARVE(cv, s->idx.heap_s, LT_MAX(K, KB));
    CARVE(cv, s->idx.heap_i, LT_MAX(K, KB));
    CARVE(cv, s->idx.sel, nb * K);
    CARVE(cv, s->idx.n_sel, nb);
    CARVE(cv, s->idx.cand, nb * KB);
    CARVE(cv, s->idx.n_cand, KB ? nb : 0);
    CARVE(cv, s->idx.blk, KB ? c->n_ctx / bs + 1 : 0);
    CARVE(cv, s->idx.ids, KB * bs);
}

/* V4.1 Engram: the token history and one batch's ids, rows and projections */
static void layout_engram(lt_context *c, carver *cv) {
    const lt_config *cfg = &c->m->cfg;
    int64_t nb = c->n_batch, G = (int64_t)(cfg->engram_max_ngram_size - 1) * cfg->engram_n_heads;
    CARVE(cv, c->engram_hist.tok, c->n_ctx);
    c->engram_hist.cap = c->n_ctx;
    CARVE(cv, c->engram_ids, cfg->n_engram_layers * nb * G);
    CARVE(cv, c->engram_emb, nb * G * cfg->engram_head_dim);
    CARVE(cv, c->engram_kv, nb * (cfg->hc_mult + 1) * cfg->dim);
}

static void layout_moe_scratch(const lt_context *c, carver *cv, lt_moe_scratch *s) {
    const lt_config *cfg = &c->m->cfg;
    int64_t nb = c->n_batch, E = cfg->n_routed_experts, k = cfg->n_experts_per_tok, rows = LT_MAX(nb, k);
    s->rows = rows; /* a decoded token's k experts fit one batch */
    CARVE(cv, s->logits, nb * E);
    CARVE(cv, s->sel, nb * k);
    CARVE(cv, s->wt, nb * k);
    CARVE(cv, s->wg, rows);
    CARVE(cv, s->count, E + 1);
    CARVE(cv, s->order, nb * k);
    CARVE(cv, s->xg, rows * cfg->dim);
    CARVE(cv, s->g1, rows * cfg->moe_inter);
    CARVE(cv, s->u, rows * cfg->moe_inter);
    CARVE(cv, s->yg, rows * cfg->dim);
}

static void layout(lt_context *c, carver *cv) {
    const lt_model *m = c->m;
    const lt_config *cfg = &m->cfg;
    int64_t nb = c->n_batch, hc = cfg->hc_mult, D = cfg->dim, M = (2 + hc) * hc;
    uint64_t before = cv->used;
    for (int l = 0; l < cfg->n_layers; l++) layout_cache(c, cv, &m->layers[l], &c->caches[l]);
    if (m->has_mtp) layout_cache(c, cv, &m->mtp.block, &c->mtp_cache);
    c->cache_bytes = cv->used - before;
    CARVE(cv, c->X, nb * hc * D);
    CARVE(cv, c->x, nb * D);
    CARVE(cv, c->h, nb * D);
    CARVE(cv, c->out, nb * D);
    CARVE(cv, c->mix, nb * M);
    CARVE(cv, c->pre, nb * hc);
    CARVE(cv, c->post, nb * hc);
    CARVE(cv, c->comb, nb * hc * hc);
    if (cfg->arch == LT_ARCH_V41) CARVE(cv, c->carry, nb * hc);
    layout_attn_scratch(c, cv, &c->attn);
    layout_moe_scratch(c, cv, &c->moe);
    if (cfg->n_engram_layers) layout_engram(c, cv);
    if (!m->has_mtp) return;
    CARVE(cv, c->mtp_prev, hc * D);
    CARVE(cv, c->mtp_in, nb * hc * D);
    CARVE(cv, c->mtp_x, nb * hc * D);
    CARVE(cv, c->mtp_h, nb * hc * D);
    CARVE(cv, c->mtp_tok, nb);
}

static void reset_cache(const lt_block *b, lt_attn_cache *k) {
    const lt_attention *a = &b->attn;
    k->n_cmp = 0;
    k->idx.keys.rows = 0;
    if (a->ratio > 0 && a->kv_source == b->layer) lt_pool_reset(&a->cmp, &k->pool);
    if (!a->v41 && a->ratio == 4) lt_pool_reset(&a->idx.cmp, &k->idx.pool);
}

void lt_context_reset(lt_context *c) {
    const lt_model *m = c->m;
    c->pos = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) reset_cache(&m->layers[l], &c->caches[l]);
    if (m->has_mtp) reset_cache(&m->mtp.block, &c->mtp_cache);
    if (m->cfg.n_engram_layers) lt_engram_history_init(&c->engram_hist, c->engram_hist.tok, c->n_ctx);
}

lt_status lt_context_create(lt_context **out, lt_model *m, int64_t n_ctx, lt_error *err) {
    *out = NULL;
    if (n_ctx < 1 || n_ctx > INT32_MAX)
        return lt_fail(err, LT_ERR_ARG, "context size is %lld but must be in [1, %d]", (long long)n_ctx, INT32_MAX);
    lt_context *c = lt_calloc(1, sizeof *c, "context", err);
    if (!c) return LT_ERR_NOMEM;
    c->m = m;
    c->n_ctx = n_ctx;
    c->n_batch = LT_MIN_I64(n_ctx, LT_BATCH);
    c->num = lt_model_num(m);
    c->caches = lt_calloc((size_t)m->cfg.n_layers, sizeof *c->caches, "layer caches", err);
    carver cv = {0};
    if (c->caches) {
        layout(c, &cv);
        cv.base = c->arena = lt_calloc(1, (size_t)cv.used, "context buffers", err);
    }
    if (!c->arena) {
        lt_context_free(c);
        return LT_ERR_NOMEM;
    }
    cv.used = 0;
    layout(c, &cv);
    const lt_config *cfg = &m->cfg;
    int64_t G = (int64_t)(cfg->engram_max_ngram_size - 1) * cfg->engram_n_heads;
    lt_status st = cfg->n_engram_layers ? lt_engram_prefetcher_create(&c->prefetch, c->n_batch * G, err) : LT_OK;
    if (st != LT_OK) {
        lt_context_free(c);
        return st;
    }
    lt_context_reset(c);
    *out = c;
    return LT_OK;
}

void lt_context_free(lt_context *c) {
    if (!c) return;
    lt_engram_prefetcher_free(c->prefetch);
    free(c->arena);
    free(c->caches);
    free(c);
}

int64_t lt_context_pos(const lt_context *c) { return c->pos; }

uint64_t lt_context_cache_bytes(const lt_context *c) { return c->cache_bytes; }

void lt_context_set_trace(lt_context *c, lt_trace_fn fn, void *ud) {
    c->trace = fn;
    c->trace_ud = ud;
}

void lt_context_emit(const lt_context *c, const lt_trace_event *ev) {
    if (c->trace) c->trace(c->trace_ud, ev);
}

lt_status lt_context_eval(lt_context *c, const int32_t *tokens, int64_t n, float *logits, lt_error *err) {
    return lt_forward(c, tokens, n, logits, 0, NULL, err);
}

lt_status lt_context_eval_all(lt_context *c, const int32_t *tokens, int64_t n, float *logits, lt_error *err) {
    return lt_forward(c, tokens, n, logits, 1, NULL, err);
}

lt_status lt_context_eval_mtp(lt_context *c, const int32_t *tokens, int64_t n, float *logits, float *mtp_logits,
                              lt_error *err) {
    if (!c->m->has_mtp) return lt_fail(err, LT_ERR_UNSUPPORTED, "this model has no MTP head (mtp.0)");
    return lt_forward(c, tokens, n, logits, 1, mtp_logits, err);
}
