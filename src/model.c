/* Opening a V4 or V4.1 model: config, tensor inventory, and the weight views
 * of every block under their checkpoint names (spec 4.9, 4.6, 5). Weights
 * stay in the mapping; binding checks each dtype and shape and names the
 * tensor when one is wrong. V4.1 also builds the Engram hasher from the
 * tokenizer in the model folder. */
#include "model.h"
#include "csa2.h"
#include "inventory.h"
#include "kernels.h"
#include "threads.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define NAME_MAX_LEN 256

static lt_status name_of(char *name, lt_error *err, const char *fmt, va_list ap) {
    int len = vsnprintf(name, NAME_MAX_LEN, fmt, ap);
    if (len < 0 || len >= NAME_MAX_LEN) return lt_fail(err, LT_ERR_ARG, "tensor name too long: %s", name);
    return LT_OK;
}

/* a linear layer <name>.weight (+ .scale) of logical shape [rows, cols] */
static lt_status bind_w(lt_weight *w, const lt_model *m, int64_t rows, int64_t cols, lt_error *err,
                        const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static lt_status bind_w(lt_weight *w, const lt_model *m, int64_t rows, int64_t cols, lt_error *err,
                        const char *fmt, ...) {
    char name[NAME_MAX_LEN];
    va_list ap;
    va_start(ap, fmt);
    lt_status st = name_of(name, err, fmt, ap);
    va_end(ap);
    return st != LT_OK ? st : lt_weight_bind(w, &m->store, &m->cfg, name, rows, cols, err);
}

static const lt_tensor *find(const lt_model *m, const char *name, lt_error *err) {
    const lt_tensor *t = lt_store_find(&m->store, name);
    if (!t) lt_fail(err, LT_ERR_INVENTORY, "checkpoint has no tensor '%s'", name);
    return t;
}

/* an F32 matrix stored without the .weight suffix (hc_*_fn) */
static lt_status bind_f32_matrix(lt_weight *w, const lt_model *m, int64_t rows, int64_t cols, lt_error *err,
                                 const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static lt_status bind_f32_matrix(lt_weight *w, const lt_model *m, int64_t rows, int64_t cols, lt_error *err,
                                 const char *fmt, ...) {
    char name[NAME_MAX_LEN];
    va_list ap;
    va_start(ap, fmt);
    lt_status st = name_of(name, err, fmt, ap);
    va_end(ap);
    if (st != LT_OK) return st;
    const lt_tensor *t = find(m, name, err);
    if (!t) return LT_ERR_INVENTORY;
    if (t->dtype != LT_DT_F32 || t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols)
        return lt_fail(err, LT_ERR_INVENTORY, "tensor '%s' must be F32 [%lld, %lld]", name, (long long)rows,
                       (long long)cols);
    *w = (lt_weight){.type = LT_W_F32, .data = t->data, .rows = rows, .cols = cols, .block_r = 1, .block_c = 1,
                     .name = t->name};
    return LT_OK;
}

/* a vector of n elements: F32 or BF16 (or I64 when i64 is set) */
static lt_status bind_vec(lt_vec *v, const lt_model *m, int64_t n, int i64, lt_error *err, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static lt_status bind_vec(lt_vec *v, const lt_model *m, int64_t n, int i64, lt_error *err, const char *fmt, ...) {
    char name[NAME_MAX_LEN];
    va_list ap;
    va_start(ap, fmt);
    lt_status st = name_of(name, err, fmt, ap);
    va_end(ap);
    if (st != LT_OK) return st;
    const lt_tensor *t = find(m, name, err);
    if (!t) return LT_ERR_INVENTORY;
    int ok_type = i64 ? t->dtype == LT_DT_I64 : (t->dtype == LT_DT_F32 || t->dtype == LT_DT_BF16);
    if (!ok_type || lt_tensor_numel(t) != n)
        return lt_fail(err, LT_ERR_INVENTORY, "tensor '%s' is %s with %lld elements but must be %s with %lld", name,
                       lt_dtype_name(t->dtype), (long long)lt_tensor_numel(t), i64 ? "I64" : "F32 or BF16",
                       (long long)n);
    *v = (lt_vec){.dtype = t->dtype, .data = t->data, .n = n, .name = t->name};
    return LT_OK;
}

static lt_status bind_site(lt_mhc_site *s, const lt_model *m, const char *pre, const char *site, lt_error *err) {
    const lt_config *c = &m->cfg;
    int64_t M = (int64_t)(2 + c->hc_mult) * c->hc_mult, HD = (int64_t)c->hc_mult * c->dim;
    lt_status st = bind_f32_matrix(&s->fn, m, M, HD, err, "%shc_%s_fn", pre, site);
    if (st == LT_OK) st = bind_vec(&s->base, m, M, 0, err, "%shc_%s_base", pre, site);
    if (st == LT_OK) st = bind_vec(&s->scale, m, 3, 0, err, "%shc_%s_scale", pre, site);
    return st;
}

static lt_status bind_head(lt_mhc_head *h, const lt_model *m, const char *pre, lt_error *err) {
    const lt_config *c = &m->cfg;
    lt_status st = bind_f32_matrix(&h->fn, m, c->hc_mult, (int64_t)c->hc_mult * c->dim, err, "%shc_head_fn", pre);
    if (st == LT_OK) st = bind_vec(&h->base, m, c->hc_mult, 0, err, "%shc_head_base", pre);
    if (st == LT_OK) st = bind_vec(&h->scale, m, 1, 0, err, "%shc_head_scale", pre);
    return st;
}

/* <pre>compressor.*: ratio m, width d (spec 4.3 compressed branch; V4.1
 * 5.1: no ape, no wgate at ratio 1) */
static lt_status bind_compressor(lt_compressor *k, const lt_model *m, const char *pre, int ratio, int64_t d,
                                 lt_error *err) {
    int v41 = m->cfg.arch == LT_ARCH_V41;
    k->ratio = ratio;
    k->overlap = !v41 && ratio == 4;
    k->d = d;
    int64_t width = lt_compressor_width(k), D = m->cfg.dim;
    lt_status st = bind_w(&k->wkv, m, width, D, err, "%scompressor.wkv", pre);
    if (st == LT_OK && (!v41 || ratio > 1)) st = bind_w(&k->wgate, m, width, D, err, "%scompressor.wgate", pre);
    if (st == LT_OK && !v41) st = bind_vec(&k->ape, m, ratio * width, 0, err, "%scompressor.ape", pre);
    if (st == LT_OK) st = bind_vec(&k->norm, m, d, 0, err, "%scompressor.norm.weight", pre);
    return st;
}

/* V4.1 CSA2 (spec 5.1): the compressor and index keys on KV sources, the
 * index scorer on index sources */
static lt_status bind_csa2(lt_attention *a, const lt_model *m, const char *pre, lt_error *err) {
    const lt_config *c = &m->cfg;
    int64_t Q = c->q_lora_rank, hd = c->head_dim, Hi = c->index_n_heads, di = c->index_head_dim;
    lt_status st = LT_OK;
    if (a->csa2 & LT_CSA2_KV_SOURCE) {
        st = bind_compressor(&a->cmp, m, pre, a->ratio, hd, err);
        if (st == LT_OK) st = bind_w(&a->idx.wk, m, di, hd, err, "%sindexer.wk", pre);
        if (st == LT_OK) st = bind_vec(&a->idx.k_norm, m, di, 0, err, "%sindexer.k_norm.weight", pre);
    }
    if (st == LT_OK && (a->csa2 & LT_CSA2_INDEX_SOURCE)) {
        st = bind_w(&a->idx.wq_b, m, Hi * di, Q, err, "%sindexer.wq_b", pre);
        if (st == LT_OK) st = bind_w(&a->idx.weights_proj, m, Hi, c->dim, err, "%sindexer.weights_proj", pre);
    }
    return st;
}

static lt_status bind_attention(lt_attention *a, const lt_model *m, const char *pre, int layer, lt_error *err) {
    const lt_config *c = &m->cfg;
    int64_t D = c->dim, Q = c->q_lora_rank, H = c->n_heads, hd = c->head_dim, GR = (int64_t)c->o_groups * c->o_lora_rank;
    char sub[NAME_MAX_LEN];
    a->ratio = c->compress_ratios[layer];
    a->v41 = c->arch == LT_ARCH_V41;
    a->indexed = a->ratio > 0 && (a->v41 || a->ratio == 4);
    a->kv_source = layer < c->n_layers ? lt_config_kv_source(c, layer) : a->ratio ? layer : -1;
    a->csa2 = layer < c->n_layers ? lt_csa2_roles(c, layer) : 0;
    lt_status st = bind_w(&a->wq_a, m, Q, D, err, "%sattn.wq_a", pre);
    if (st == LT_OK) st = bind_vec(&a->q_norm, m, Q, 0, err, "%sattn.q_norm.weight", pre);
    if (st == LT_OK) st = bind_w(&a->wq_b, m, H * hd, Q, err, "%sattn.wq_b", pre);
    if (st == LT_OK) st = bind_w(&a->wkv, m, hd, D, err, "%sattn.wkv", pre);
    if (st == LT_OK) st = bind_vec(&a->kv_norm, m, hd, 0, err, "%sattn.kv_norm.weight", pre);
    if (st == LT_OK) st = bind_vec(&a->sink, m, H, 0, err, "%sattn.attn_sink", pre);
    if (st == LT_OK) st = bind_w(&a->wo_a, m, GR, H * hd / c->o_groups, err, "%sattn.wo_a", pre);
    if (st == LT_OK) st = bind_w(&a->wo_b, m, D, GR, err, "%sattn.wo_b", pre);
    if (st != LT_OK || a->ratio == 0) return st;
    snprintf(sub, sizeof sub, "%sattn.", pre);
    if (a->v41) return bind_csa2(a, m, sub, err);
    st = bind_compressor(&a->cmp, m, sub, a->ratio, hd, err);
    if (st != LT_OK || a->ratio != 4) return st;
    int64_t Hi = c->index_n_heads, di = c->index_head_dim;
    st = bind_w(&a->idx.wq_b, m, Hi * di, Q, err, "%sattn.indexer.wq_b", pre);
    if (st == LT_OK) st = bind_w(&a->idx.weights_proj, m, Hi, D, err, "%sattn.indexer.weights_proj", pre);
    snprintf(sub, sizeof sub, "%sattn.indexer.", pre);
    if (st == LT_OK) st = bind_compressor(&a->idx.cmp, m, sub, 4, di, err);
    return st;
}

/* every tid2eid entry must name an expert: the table is file content */
static lt_status check_tid2eid(const lt_vec *v, const lt_config *c, lt_error *err) {
    for (int64_t i = 0; i < v->n; i++) {
        int64_t e = lt_vec_i64(v, i);
        if (e < 0 || e >= c->n_routed_experts)
            return lt_fail(err, LT_ERR_FORMAT, "tensor '%s': entry %lld (token %lld) is %lld but must be in [0, %d)",
                           v->name, (long long)i, (long long)(i / c->n_experts_per_tok), (long long)e,
                           c->n_routed_experts);
    }
    return LT_OK;
}

/* experts: 3E views (w1, w3, w2) for this block */
static lt_status bind_moe(lt_moe *f, const lt_model *m, const char *pre, int layer, lt_weight *experts,
                          lt_error *err) {
    const lt_config *c = &m->cfg;
    int64_t D = c->dim, I = c->moe_inter, E = c->n_routed_experts;
    f->hash = layer < c->n_hash_layers;
    f->w1 = experts;
    f->w3 = experts + E;
    f->w2 = experts + 2 * E;
    lt_status st = bind_w(&f->gate, m, E, D, err, "%sffn.gate", pre);
    if (st == LT_OK && f->hash) st = bind_vec(&f->tid2eid, m, (int64_t)c->vocab_size * c->n_experts_per_tok, 1, err,
                                             "%sffn.gate.tid2eid", pre);
    if (st == LT_OK && f->hash) st = check_tid2eid(&f->tid2eid, c, err);
    if (st == LT_OK && !f->hash) st = bind_vec(&f->bias, m, E, 0, err, "%sffn.gate.bias", pre);
    if (st == LT_OK && c->arch == LT_ARCH_V41) st = bind_vec(&f->bias_vl, m, E, 0, err, "%sffn.gate.bias_vl", pre);
    for (int64_t e = 0; st == LT_OK && e < E; e++) {
        st = bind_w(&f->w1[e], m, I, D, err, "%sffn.experts.%lld.w1", pre, (long long)e);
        if (st == LT_OK) st = bind_w(&f->w3[e], m, I, D, err, "%sffn.experts.%lld.w3", pre, (long long)e);
        if (st == LT_OK) st = bind_w(&f->w2[e], m, D, I, err, "%sffn.experts.%lld.w2", pre, (long long)e);
    }
    if (st == LT_OK) st = bind_w(&f->sw1, m, I, D, err, "%sffn.shared_experts.w1", pre);
    if (st == LT_OK) st = bind_w(&f->sw3, m, I, D, err, "%sffn.shared_experts.w3", pre);
    if (st == LT_OK) st = bind_w(&f->sw2, m, D, I, err, "%sffn.shared_experts.w2", pre);
    return st;
}

/* one decoder block under prefix pre ("layers.L." or "mtp.0.") */
static lt_status bind_block(lt_block *b, const lt_model *m, const char *pre, int layer, lt_weight *experts,
                            lt_error *err) {
    int64_t D = m->cfg.dim;
    b->layer = layer;
    lt_status st = bind_site(&b->hc_attn, m, pre, "attn", err);
    if (st == LT_OK) st = bind_vec(&b->attn_norm, m, D, 0, err, "%sattn_norm.weight", pre);
    if (st == LT_OK) st = bind_attention(&b->attn, m, pre, layer, err);
    if (st == LT_OK) st = bind_site(&b->hc_ffn, m, pre, "ffn", err);
    if (st == LT_OK) st = bind_vec(&b->ffn_norm, m, D, 0, err, "%sffn_norm.weight", pre);
    if (st == LT_OK) st = bind_moe(&b->moe, m, pre, layer, experts, err);
    return st;
}

static lt_status bind_mtp(lt_mtp *t, const lt_model *m, lt_weight *experts, lt_error *err) {
    int64_t D = m->cfg.dim;
    lt_status st = bind_w(&t->e_proj, m, D, D, err, "mtp.0.e_proj");
    if (st == LT_OK) st = bind_w(&t->h_proj, m, D, D, err, "mtp.0.h_proj");
    if (st == LT_OK) st = bind_vec(&t->enorm, m, D, 0, err, "mtp.0.enorm.weight");
    if (st == LT_OK) st = bind_vec(&t->hnorm, m, D, 0, err, "mtp.0.hnorm.weight");
    if (st == LT_OK) st = bind_vec(&t->norm, m, D, 0, err, "mtp.0.norm.weight");
    if (st == LT_OK) st = bind_head(&t->hc_head, m, "mtp.0.", err);
    if (st == LT_OK) st = bind_block(&t->block, m, "mtp.0.", m->cfg.n_layers, experts, err);
    return st;
}

/* V4.1 Engram (spec 5.3): each Engram layer's tables, and the block's link */
static lt_status bind_engram(lt_model *m, lt_error *err) {
    const lt_config *c = &m->cfg;
    m->engram = lt_calloc((size_t)c->n_engram_layers, sizeof *m->engram, "Engram layers", err);
    if (!m->engram) return LT_ERR_NOMEM;
    lt_status st = LT_OK;
    for (int i = 0; i < c->n_engram_layers && st == LT_OK; i++) {
        st = lt_engram_layer_bind(&m->engram[i], &m->store, c, c->engram_layer_ids[i], err);
        m->layers[c->engram_layer_ids[i]].engram = &m->engram[i];
    }
    return st;
}

static lt_status bind_model(lt_model *m, lt_error *err) {
    const lt_config *c = &m->cfg;
    int64_t V = c->vocab_size, D = c->dim, per_block = 3 * (int64_t)c->n_routed_experts;
    int v41 = c->arch == LT_ARCH_V41;
    m->has_mtp = !v41 && c->n_mtp > 0 && c->dspark_block_size == 0;
    m->layers = lt_calloc((size_t)c->n_layers, sizeof *m->layers, "layer table", err);
    m->experts = lt_calloc((size_t)((c->n_layers + m->has_mtp) * per_block), sizeof *m->experts, "expert table", err);
    if (!m->layers || !m->experts) return LT_ERR_NOMEM;
    lt_status st = bind_w(&m->embed, m, V, D, err, "embed");
    if (st == LT_OK) st = bind_w(&m->head, m, V, D, err, "head");
    if (st == LT_OK) st = bind_vec(&m->norm, m, D, 0, err, "norm.weight");
    if (st == LT_OK && !v41) st = bind_head(&m->hc_head, m, "", err); /* V4.1: single-pass mHC, no hc_head */
    for (int l = 0; st == LT_OK && l < c->n_layers; l++) {
        char pre[32];
        snprintf(pre, sizeof pre, "layers.%d.", l);
        st = bind_block(&m->layers[l], m, pre, l, m->experts + l * per_block, err);
    }
    if (st == LT_OK && m->has_mtp) st = bind_mtp(&m->mtp, m, m->experts + c->n_layers * per_block, err);
    if (st == LT_OK && c->n_engram_layers) st = bind_engram(m, err);
    return st;
}

/* the Engram hasher's token map comes from the model folder's tokenizer */
static lt_status init_hasher(lt_model *m, const char *dir, lt_error *err) {
    lt_tokenizer *t = NULL;
    lt_status st = lt_tokenizer_load(&t, dir, err);
    if (st == LT_OK) st = lt_engram_hasher_init(&m->hasher, &m->cfg, t, err);
    lt_tokenizer_free(t);
    return st;
}

/* what the forward pass implements: the V4 trunk (spec 4) and the V4.1 text model (spec 5) */
static lt_status check_supported(const lt_config *c, const char *dir, lt_error *err) {
    if (c->arch == LT_ARCH_V4 && c->index_head_dim & (c->index_head_dim - 1))
        return lt_fail(err, LT_ERR_UNSUPPORTED, "%s: index_head_dim is %d but must be a power of two (Hadamard)",
                       dir, c->index_head_dim);
    if (c->rope_dim > LT_ROPE_MAX_DIM)
        return lt_fail(err, LT_ERR_UNSUPPORTED, "%s: qk_rope_head_dim is %d but at most %d is supported", dir,
                       c->rope_dim, LT_ROPE_MAX_DIM);
    if (c->block_c > LT_ACTQ_MAX_BLOCK)
        return lt_fail(err, LT_ERR_UNSUPPORTED, "%s: weight_block_size[1] is %d but at most %d is supported", dir,
                       c->block_c, LT_ACTQ_MAX_BLOCK);
    if (c->n_shared_experts != 1)
        return lt_fail(err, LT_ERR_UNSUPPORTED, "%s: n_shared_experts is %d but V4 has exactly 1", dir,
                       c->n_shared_experts);
    return LT_OK;
}

static lt_status check_inventory(const lt_model *m, lt_error *err) {
    lt_inventory inv = {0};
    lt_status st = lt_inventory_build(&inv, &m->cfg, err);
    if (st == LT_OK) st = lt_inventory_check(&inv, &m->store, NULL, err);
    lt_inventory_free(&inv);
    return st;
}

static lt_status open_model(lt_model *m, const char *dir, const lt_model_params *p, lt_error *err) {
    lt_status st = lt_threads_set(p->n_threads, err);
    if (st == LT_OK) st = lt_config_load(&m->cfg, dir, err);
    if (st == LT_OK) st = check_supported(&m->cfg, dir, err);
    if (st == LT_OK) st = lt_store_open_dir(&m->store, dir, p->verbose, err);
    if (st == LT_OK) st = check_inventory(m, err);
    if (st == LT_OK) st = bind_model(m, err);
    if (st == LT_OK && m->cfg.n_engram_layers) st = init_hasher(m, dir, err);
    if (st != LT_OK) return st;
    const lt_config *c = &m->cfg;
    m->numerics = p->numerics != LT_NUMERICS_AUTO ? p->numerics
                  : c->compute_f32                ? LT_NUMERICS_EXACT
                                                  : LT_NUMERICS_REFERENCE;
    lt_rope_init(&m->rope_main, c->rope_dim, c->rope_theta, 0, c);
    lt_rope_init(&m->rope_compress, c->rope_dim, c->compress_rope_theta, c->yarn, c);
    return LT_OK;
}

lt_status lt_model_open(lt_model **out, const char *dir, const lt_model_params *p, lt_error *err) {
    static const lt_model_params defaults = {0};
    *out = NULL;
    lt_model *m = lt_calloc(1, sizeof *m, "model", err);
    if (!m) return LT_ERR_NOMEM;
    lt_status st = open_model(m, dir, p ? p : &defaults, err);
    if (st != LT_OK) {
        lt_model_close(m);
        return st;
    }
    *out = m;
    return LT_OK;
}

void lt_model_close(lt_model *m) {
    if (!m) return;
    lt_store_close(&m->store);
    lt_engram_hasher_free(&m->hasher);
    free(m->engram);
    free(m->layers);
    free(m->experts);
    free(m);
}

int lt_model_vocab_size(const lt_model *m) { return m->cfg.vocab_size; }
int lt_model_bos(const lt_model *m) { return m->cfg.bos_token_id; }
int lt_model_eos(const lt_model *m) { return m->cfg.eos_token_id; }
const lt_config *lt_model_config(const lt_model *m) { return &m->cfg; }

lt_num lt_model_num(const lt_model *m) {
    return (lt_num){.mode = m->numerics, .act_block = m->cfg.block_c, .qat = m->cfg.arch == LT_ARCH_V41};
}

double lt_model_kv_bytes_per_token(const lt_model *m) {
    lt_num nm = lt_model_num(m);
    return lt_kv_bytes_per_token(&m->cfg, &nm);
}
