/* Tensor inventory derived from the config (spec 4.9 for V4, 5 for V4.1,
 * 6 for names and dtypes), its size statistics, and its check against a
 * store or an index file.
 *
 * Shapes use D = hidden_size, H = heads, d = head_dim, Q = q_lora_rank,
 * G = o_groups, R = o_lora_rank, E = routed experts, I = moe_intermediate_size,
 * Hi/di = indexer heads/head dim, hc = mHC streams, V = vocab.
 * Checked against the published counts: V4-Flash 69,187 tensors /
 * 159,609,485,896 bytes, V4-Flash-0731 72,317 / 166,878,536,440, V4-Pro
 * 145,116 and V4.1-Flash 96,085 tensors (see docs/inspect.md). */
#include "inventory.h"
#include "util.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

typedef struct {
    lt_inventory *inv;
    const lt_config *c;
    char prefix[32];      /* "layers.12.", "mtp.0.", "vision.blocks.3." or "" */
    lt_inv_part part;     /* of what is added next */
    int failed;           /* out of memory or a name too long */
} builder;

/* Adds prefix + name; d1 == 0 makes a 1-D tensor. Returns the new entry
 * (NULL once an allocation failed), valid until the next add. */
static lt_inv_tensor *add(builder *b, lt_dtype dt, int64_t d0, int64_t d1, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static lt_inv_tensor *add(builder *b, lt_dtype dt, int64_t d0, int64_t d1, const char *fmt, ...) {
    lt_inventory *inv = b->inv;
    if (b->failed) return NULL;
    if (inv->n_tensors == inv->cap) {
        int64_t cap = inv->cap ? 2 * inv->cap : 4096;
        lt_inv_tensor *t = realloc(inv->tensors, (size_t)cap * sizeof *t);
        if (!t) { b->failed = 1; return NULL; }
        inv->tensors = t;
        inv->cap = cap;
    }
    lt_inv_tensor *t = &inv->tensors[inv->n_tensors++];
    *t = (lt_inv_tensor){.dtype = dt, .ndim = d1 ? 2 : 1, .shape = {d0, d1}, .part = b->part};
    size_t n = strlen(b->prefix);
    memcpy(t->name, b->prefix, n + 1);
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(t->name + n, sizeof t->name - n, fmt, ap);
    va_end(ap);
    /* the config limits keep names short: "layers.255.attn.indexer.compressor.wgate.weight" */
    if (w < 0 || (size_t)w >= sizeof t->name - n) b->failed = 1;
    return b->failed ? NULL : t;
}

/* Marks a backbone table of which one token reads `rows` rows. */
static void as_table(lt_inv_tensor *t, lt_inv_part part, int rows) {
    if (t && t->part == LT_PART_DENSE) {
        t->part = part;
        t->rows_per_token = rows;
    }
}

/* The release keeps norms, embeddings and unquantised linears in BF16. */
static lt_dtype float_dt(const builder *b) { return b->c->dtype_f32 ? LT_DT_F32 : LT_DT_BF16; }

static void add_norm(builder *b, int64_t n, const char *name) { add(b, float_dt(b), n, 0, "%s.weight", name); }

/* A linear [out, in] kept in floating point (compressors, gate, weights_proj). */
static void add_float_linear(builder *b, int64_t out, int64_t in, const char *name) {
    add(b, float_dt(b), out, in, "%s.weight", name);
}

/* Spec 3.4: FP8 e4m3 weight [out, in] and one UE8M0 scale per block_r x block_c tile. */
static void add_linear(builder *b, int64_t out, int64_t in, const char *name) {
    const lt_config *c = b->c;
    if (!c->weight_fp8) { add_float_linear(b, out, in, name); return; }
    add(b, LT_DT_F8_E4M3, out, in, "%s.weight", name);
    add(b, LT_DT_F8_E8M0, ceil_div(out, c->block_r), ceil_div(in, c->block_c), "%s.scale", name);
}

/* Spec 3.4: FP4 e2m1 packed two per byte [out, in/2] and one UE8M0 scale per 32 inputs. */
static void add_expert_linear(builder *b, int64_t out, int64_t in, const char *name) {
    if (!b->c->expert_fp4) { add_linear(b, out, in, name); return; }
    add(b, LT_DT_I8, out, in / 2, "%s.weight", name);
    add(b, LT_DT_F8_E8M0, out, in / 32, "%s.scale", name);
}

/* hc_{site}_fn [(2 + hc) hc, hc D], base [(2 + hc) hc], scale [3] (spec 3.3). */
static void add_hc_site(builder *b, const char *site) {
    int64_t hc = b->c->hc_mult, mix = (2 + hc) * hc;
    add(b, LT_DT_F32, mix, hc * b->c->dim, "hc_%s_fn", site);
    add(b, LT_DT_F32, mix, 0, "hc_%s_base", site);
    add(b, LT_DT_F32, 3, 0, "hc_%s_scale", site);
}

/* V4 head collapse (spec 3.3): hc_head_fn [hc, hc D], base [hc], scale [1]. */
static void add_hc_head(builder *b) {
    int64_t hc = b->c->hc_mult;
    add(b, LT_DT_F32, hc, hc * b->c->dim, "hc_head_fn");
    add(b, LT_DT_F32, hc, 0, "hc_head_base");
    add(b, LT_DT_F32, 1, 0, "hc_head_scale");
}

/* ---- attention (spec 4.3, 5.1) -------------------------------------------- */

/* What every layer has: low-rank q, the shared KV head, the sink and the
 * grouped output projection (wo_a takes H/G heads of d per group). */
static void add_attention_core(builder *b) {
    const lt_config *c = b->c;
    int64_t hd = (int64_t)c->n_heads * c->head_dim;
    add(b, LT_DT_F32, c->n_heads, 0, "attn.attn_sink");
    add_norm(b, c->q_lora_rank, "attn.q_norm");
    add_norm(b, c->head_dim, "attn.kv_norm");
    add_linear(b, c->q_lora_rank, c->dim, "attn.wq_a");
    add_linear(b, hd, c->q_lora_rank, "attn.wq_b");
    add_linear(b, c->head_dim, c->dim, "attn.wkv");
    add_linear(b, (int64_t)c->o_groups * c->o_lora_rank, hd / c->o_groups, "attn.wo_a");
    add_linear(b, c->dim, (int64_t)c->o_groups * c->o_lora_rank, "attn.wo_b");
}

/* V4 compressor of width w (spec 4.3 steps 8-11): CSA (ratio 4) pools
 * overlapping windows, so it projects twice the width (Ca | Cb). */
static void add_compressor_v4(builder *b, const char *at, int ratio, int64_t w) {
    char name[64];
    int64_t cw = (ratio == 4 ? 2 : 1) * w;
    snprintf(name, sizeof name, "%s.wkv", at);
    add_float_linear(b, cw, b->c->dim, name);
    snprintf(name, sizeof name, "%s.wgate", at);
    add_float_linear(b, cw, b->c->dim, name);
    add(b, LT_DT_F32, ratio, cw, "%s.ape", at);
    snprintf(name, sizeof name, "%s.norm", at);
    add_norm(b, w, name);
}

/* V4 (spec 4.9): every compressed layer pools its KV; CSA layers add the
 * lightning indexer with its own 128-wide compressor. */
static void add_attention_v4(builder *b, int layer) {
    const lt_config *c = b->c;
    int m = c->compress_ratios[layer];
    if (m == 0) return;
    add_compressor_v4(b, "attn.compressor", m, c->head_dim);
    if (!lt_config_is_csa(c, layer)) return;
    add_linear(b, (int64_t)c->index_n_heads * c->index_head_dim, c->q_lora_rank, "attn.indexer.wq_b");
    add_float_linear(b, c->index_n_heads, c->dim, "attn.indexer.weights_proj");
    add_compressor_v4(b, "attn.indexer.compressor", m, c->index_head_dim);
}

/* V4.1 CSA2 (spec 5.1): only KV sources compress (no ape, no overlap; ratio 1
 * has nothing to pool, hence no gate) and project the index keys from the
 * latent; index sources (Full and Reindex) own the query side. */
static void add_attention_v41(builder *b, int layer) {
    const lt_config *c = b->c;
    if (lt_config_kv_source(c, layer) == layer) {
        add_float_linear(b, c->head_dim, c->dim, "attn.compressor.wkv");
        if (c->compress_ratios[layer] > 1) add_float_linear(b, c->head_dim, c->dim, "attn.compressor.wgate");
        add_norm(b, c->head_dim, "attn.compressor.norm");
        add_float_linear(b, c->index_head_dim, c->head_dim, "attn.indexer.wk");
        add_norm(b, c->index_head_dim, "attn.indexer.k_norm");
    }
    if (lt_config_index_source(c, layer) == layer) {
        add_linear(b, (int64_t)c->index_n_heads * c->index_head_dim, c->q_lora_rank, "attn.indexer.wq_b");
        add_float_linear(b, c->index_n_heads, c->dim, "attn.indexer.weights_proj");
    }
}

/* ---- MoE (spec 4.4, 5.2) ---------------------------------------------------- */

/* Hash layers route by tid2eid[token] (I64 [V, top-k], one row per token);
 * the others carry the selection bias, and V4.1 a second one for image tokens. */
static void add_moe(builder *b, int n_experts, int hash) {
    const lt_config *c = b->c;
    char name[64];
    add_float_linear(b, n_experts, c->dim, "ffn.gate");
    if (hash) {
        as_table(add(b, LT_DT_I64, c->vocab_size, c->n_experts_per_tok, "ffn.gate.tid2eid"), LT_PART_EMBED, 1);
    } else {
        add(b, LT_DT_F32, n_experts, 0, "ffn.gate.bias");
    }
    if (c->arch == LT_ARCH_V41) add(b, LT_DT_F32, n_experts, 0, "ffn.gate.bias_vl");
    /* n shared experts are one MLP n times as wide (the DeepSeek convention) */
    if (c->n_shared_experts) {
        int64_t si = (int64_t)c->n_shared_experts * c->moe_inter;
        add_linear(b, si, c->dim, "ffn.shared_experts.w1");
        add_linear(b, si, c->dim, "ffn.shared_experts.w3");
        add_linear(b, c->dim, si, "ffn.shared_experts.w2");
    }
    lt_inv_part outer = b->part;
    if (outer == LT_PART_DENSE) b->part = LT_PART_EXPERT;
    for (int e = 0; e < n_experts; e++) {
        static const char *const proj[3] = {"w1", "w3", "w2"};
        for (int p = 0; p < 3; p++) {
            snprintf(name, sizeof name, "ffn.experts.%d.%s", e, proj[p]);
            if (p < 2) add_expert_linear(b, c->moe_inter, c->dim, name);
            else add_expert_linear(b, c->dim, c->moe_inter, name);
        }
    }
    b->part = outer;
}

/* ---- blocks ------------------------------------------------------------------ */

/* One decoder block `layer` (spec 4.2): attention and MoE sites with their
 * norms and mHC mixes. Draft stages use the indices after the backbone. */
static void add_block(builder *b, int layer, int n_experts) {
    const lt_config *c = b->c;
    add_attention_core(b);
    if (c->arch == LT_ARCH_V4) add_attention_v4(b, layer);
    else add_attention_v41(b, layer);
    add_norm(b, c->dim, "attn_norm");
    add_norm(b, c->dim, "ffn_norm");
    add_hc_site(b, "attn");
    add_hc_site(b, "ffn");
    add_moe(b, n_experts, layer < c->n_hash_layers);
}

/* V4.1 Engram (spec 5.3): the hashed table (FP8 rows with one scale per 32
 * columns, per row) of which a token reads one row per n-gram order and head,
 * the FP8 wkv from the 24 gathered rows to key [hc, D] + value [D], and the
 * gate weights. q_weight/k_weight storage is unconfirmed (spec 9.4); BF16 like
 * the other small vectors is the most plausible, and the check will say. */
static void add_engram(builder *b, int slot) {
    const lt_config *c = b->c;
    int64_t rows = c->engram_num_embeddings[slot], hdim = c->engram_head_dim;
    int64_t gathered = (int64_t)(c->engram_max_ngram_size - 1) * c->engram_n_heads;
    as_table(add(b, LT_DT_F8_E4M3, rows, hdim, "engram.embed.weight"), LT_PART_ENGRAM, (int)gathered);
    as_table(add(b, LT_DT_F8_E8M0, rows, hdim / 32, "engram.embed.scale"), LT_PART_ENGRAM, (int)gathered);
    add_linear(b, (int64_t)(c->hc_mult + 1) * c->dim, gathered * hdim, "engram.wkv");
    add(b, float_dt(b), c->hc_mult, c->dim, "engram.q_weight");
    add(b, float_dt(b), c->hc_mult, c->dim, "engram.k_weight");
}

static void add_backbone(builder *b) {
    const lt_config *c = b->c;
    for (int l = 0; l < c->n_layers; l++) {
        snprintf(b->prefix, sizeof b->prefix, "layers.%d.", l);
        add_block(b, l, c->n_routed_experts);
        for (int i = 0; i < c->n_engram_layers; i++)
            if (c->engram_layer_ids[i] == l) add_engram(b, i);
    }
}

/* V4 April MTP (spec 4.6): a sliding-only, score-routed block plus the input
 * projections of the next token's embedding and the trunk state, and its own
 * head collapse. Embedding and head are shared with the trunk. */
static void add_mtp_v4(builder *b, int k) {
    const lt_config *c = b->c;
    add_block(b, c->n_layers + k, c->n_routed_experts);
    add_linear(b, c->dim, c->dim, "e_proj");
    add_linear(b, c->dim, c->dim, "h_proj");
    add_norm(b, c->dim, "enorm");
    add_norm(b, c->dim, "hnorm");
    add_norm(b, c->dim, "norm");
    add_hc_head(b);
}

/* DSpark stage k (spec 4.7): a block; stage 0 projects the concatenated
 * target-layer states, the last stage owns the norm, the Markov head (names
 * differ: 0731 markov_w1/w2, V4.1 embed/head), the confidence head and, in
 * 0731, its own head collapse. */
static void add_dspark(builder *b, int k) {
    const lt_config *c = b->c;
    int64_t r = c->dspark_markov_rank;
    add_block(b, c->n_layers + k, c->dspark_n_routed_experts);
    if (k == 0) {
        add_linear(b, c->dim, (int64_t)c->dim * c->n_dspark_target_layers, "main_proj");
        add_norm(b, c->dim, "main_norm");
    }
    if (k != c->n_mtp - 1) return;
    int v41 = c->arch == LT_ARCH_V41;
    add_norm(b, c->dim, "norm");
    add_float_linear(b, c->vocab_size, r, v41 ? "markov_head.embed" : "markov_head.markov_w1");
    add_float_linear(b, c->vocab_size, r, v41 ? "markov_head.head" : "markov_head.markov_w2");
    add_float_linear(b, 1, c->dim + r, "confidence_head.proj");
    if (!v41) add_hc_head(b);
}

static void add_drafts(builder *b) {
    b->part = LT_PART_MTP;
    for (int k = 0; k < b->c->n_mtp; k++) {
        snprintf(b->prefix, sizeof b->prefix, "mtp.%d.", k);
        if (b->c->dspark_block_size) add_dspark(b, k);
        else add_mtp_v4(b, k);
    }
}

/* V4.1 vision (spec 5.4): patch embedding, pre-norm ViT blocks (biased
 * attention, bias-free SwiGLU with gate||up fused in w1), the 3x3 aligner and
 * the learned image delimiters. */
static void add_vision(builder *b) {
    const lt_config *c = b->c;
    int64_t vd = c->vision_dim, d = c->dim, patch = 3 * (int64_t)c->vision_patch * c->vision_patch;
    int64_t unfold = vd * c->vision_downsample * c->vision_downsample;
    b->part = LT_PART_VISION;
    b->prefix[0] = 0;
    add(b, float_dt(b), d, 0, "image_start");
    add(b, float_dt(b), d, 0, "image_end");
    add(b, float_dt(b), d, 0, "image_newline");
    add_float_linear(b, d, unfold, "aligner.w1");
    add(b, float_dt(b), d, 0, "aligner.w1.bias");
    add_float_linear(b, d, d, "aligner.w2");
    add(b, float_dt(b), d, 0, "aligner.w2.bias");
    add_float_linear(b, vd, patch, "vision.patch_embed.proj");
    add(b, float_dt(b), vd, 0, "vision.patch_embed.proj.bias");
    add_norm(b, vd, "vision.norm");
    for (int i = 0; i < c->vision_layers; i++) {
        snprintf(b->prefix, sizeof b->prefix, "vision.blocks.%d.", i);
        add_norm(b, vd, "norm1");
        add_norm(b, vd, "norm2");
        add_float_linear(b, 3 * vd, vd, "attn.wqkv");
        add(b, float_dt(b), 3 * vd, 0, "attn.wqkv.bias");
        add_float_linear(b, vd, vd, "attn.wo");
        add(b, float_dt(b), vd, 0, "attn.wo.bias");
        add_float_linear(b, 2 * (int64_t)c->vision_inter, vd, "mlp.w1");
        add_float_linear(b, vd, c->vision_inter, "mlp.w2");
    }
}

/* Top level (spec 4.1, 4.5): untied embedding and head, final norm, and in
 * V4 the head collapse of the 4 streams (V4.1 has none, spec 5.4). */
static void add_top(builder *b) {
    const lt_config *c = b->c;
    as_table(add(b, float_dt(b), c->vocab_size, c->dim, "embed.weight"), LT_PART_EMBED, 1);
    add_float_linear(b, c->vocab_size, c->dim, "head");
    add_norm(b, c->dim, "norm");
    if (c->arch == LT_ARCH_V4) add_hc_head(b);
}

lt_status lt_inventory_build(lt_inventory *inv, const lt_config *c, lt_error *err) {
    memset(inv, 0, sizeof *inv);
    builder b = {.inv = inv, .c = c, .part = LT_PART_DENSE};
    add_top(&b);
    add_backbone(&b);
    add_drafts(&b);
    if (c->has_vision) add_vision(&b);
    if (!b.failed) return LT_OK;
    lt_inventory_free(inv);
    return lt_fail(err, LT_ERR_NOMEM, "could not list the tensor inventory: out of memory or a name over %d characters",
                   LT_INV_NAME_MAX - 1);
}

void lt_inventory_free(lt_inventory *inv) {
    free(inv->tensors);
    memset(inv, 0, sizeof *inv);
}

/* ---- sizes -------------------------------------------------------------------- */

static uint64_t numel(const lt_inv_tensor *t) {
    return (uint64_t)t->shape[0] * (uint64_t)(t->ndim == 2 ? t->shape[1] : 1);
}

uint64_t lt_inv_tensor_bytes(const lt_inv_tensor *t) { return numel(t) * (uint64_t)lt_dtype_size(t->dtype); }

uint64_t lt_inv_tensor_params(const lt_inv_tensor *t) {
    switch (t->dtype) {
    case LT_DT_F8_E8M0: case LT_DT_I64: return 0;
    case LT_DT_I8: return 2 * numel(t);
    default: return numel(t);
    }
}

void lt_inventory_summarize(const lt_inventory *inv, const lt_config *c, lt_inventory_stats *s) {
    memset(s, 0, sizeof *s);
    for (int64_t i = 0; i < inv->n_tensors; i++) {
        const lt_inv_tensor *t = &inv->tensors[i];
        uint64_t bytes = lt_inv_tensor_bytes(t), params = lt_inv_tensor_params(t);
        s->n_tensors++;
        s->bytes += bytes;
        s->n_dtype[t->dtype]++;
        s->bytes_dtype[t->dtype] += bytes;
        s->params += params;
        s->params_part[t->part] += params;
        s->bytes_part[t->part] += bytes;
        if (t->rows_per_token) {
            s->active_params += params / (uint64_t)t->shape[0] * (uint64_t)t->rows_per_token;
            s->bytes_per_token += bytes / (uint64_t)t->shape[0] * (uint64_t)t->rows_per_token;
        }
    }
    /* every backbone layer holds the same E equal experts, so top-k of them is k/E of the part */
    uint64_t k = (uint64_t)c->n_experts_per_tok, e = (uint64_t)c->n_routed_experts;
    s->active_params += s->params_part[LT_PART_DENSE] + s->params_part[LT_PART_EXPERT] * k / e;
    s->bytes_per_token += s->bytes_part[LT_PART_DENSE] + s->bytes_part[LT_PART_EXPERT] * k / e;
}

/* ---- checks -------------------------------------------------------------------- */

typedef struct {
    lt_inventory_report *rep;  /* may be NULL */
    int64_t n_problems;
    char first[512];
    int failed;                /* out of memory */
} check_state;

static void note(check_state *cs, int warning, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note(check_state *cs, int warning, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (!warning && cs->n_problems++ == 0) snprintf(cs->first, sizeof cs->first, "%s", line);
    lt_inventory_report *r = cs->rep;
    if (!r || cs->failed) return;
    if (r->n_lines == r->cap) {
        int64_t cap = r->cap ? 2 * r->cap : 64;
        char **lines = realloc(r->lines, (size_t)cap * sizeof *lines);
        if (!lines) { cs->failed = 1; return; }
        r->lines = lines;
        r->cap = cap;
    }
    char *copy = strdup(line);
    if (!copy) { cs->failed = 1; return; }
    r->lines[r->n_lines++] = copy;
    if (warning) r->n_warnings++;
    else r->n_problems++;
}

static void format_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

static void check_tensor(check_state *cs, const lt_inv_tensor *want, const lt_tensor *have) {
    char ws[64], hs[64];
    format_shape(ws, sizeof ws, want->ndim, want->shape);
    if (!have) {
        note(cs, 0, "missing tensor %s (%s %s)", want->name, lt_dtype_name(want->dtype), ws);
        return;
    }
    int same_shape = have->ndim == want->ndim;
    for (int i = 0; i < want->ndim && same_shape; i++) same_shape = have->shape[i] == want->shape[i];
    format_shape(hs, sizeof hs, have->ndim, have->shape);
    if (!same_shape) note(cs, 0, "tensor %s has shape %s but must be %s", want->name, hs, ws);
    if (have->dtype != want->dtype)
        note(cs, 0, "tensor %s has dtype %s but must be %s", want->name, lt_dtype_name(have->dtype), lt_dtype_name(want->dtype));
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* The inventory's names, sorted for lookups of the other side's names. */
static const char **sorted_names(const lt_inventory *inv) {
    const char **names = malloc((size_t)(inv->n_tensors ? inv->n_tensors : 1) * sizeof *names);
    if (!names) return NULL;
    for (int64_t i = 0; i < inv->n_tensors; i++) names[i] = inv->tensors[i].name;
    qsort(names, (size_t)inv->n_tensors, sizeof *names, cmp_name);
    return names;
}

static int known(const char **sorted, int64_t n, const char *name) {
    return bsearch(&name, sorted, (size_t)n, sizeof *sorted, cmp_name) != NULL;
}

static lt_status finish(check_state *cs, const char *what, lt_error *err) {
    if (cs->failed) return lt_fail(err, LT_ERR_NOMEM, "out of memory reporting inventory problems");
    if (!cs->n_problems) return LT_OK;
    if (cs->n_problems == 1) return lt_fail(err, LT_ERR_INVENTORY, "%s: %s", what, cs->first);
    return lt_fail(err, LT_ERR_INVENTORY, "%s: %s (and %lld more problems)", what, cs->first, (long long)cs->n_problems - 1);
}

lt_status lt_inventory_check(const lt_inventory *inv, const lt_store *s, lt_inventory_report *rep, lt_error *err) {
    check_state cs = {.rep = rep};
    int64_t found = 0;
    for (int64_t i = 0; i < inv->n_tensors; i++) {
        const lt_tensor *t = lt_store_find(s, inv->tensors[i].name);
        found += t != NULL;
        check_tensor(&cs, &inv->tensors[i], t);
    }
    if (found < s->n_tensors) {
        const char **names = sorted_names(inv);
        if (!names) return lt_fail(err, LT_ERR_NOMEM, "out of memory checking the tensor inventory");
        for (int64_t i = 0; i < s->n_tensors; i++)
            if (!known(names, inv->n_tensors, s->tensors[i].name))
                note(&cs, 1, "warning: unexpected tensor %s (not in the inventory derived from config.json)", s->tensors[i].name);
        free(names);
    }
    /* name the folder of a sharded checkpoint, the file of a single one */
    char where[1024] = "checkpoint";
    if (s->n_files) snprintf(where, sizeof where, "%s", s->files[0].path);
    char *slash = strrchr(where, '/');
    if (s->n_files > 1 && slash) *slash = 0;
    return finish(&cs, where, err);
}

lt_status lt_inventory_check_index(const lt_inventory *inv, const char *index_path, lt_inventory_report *rep,
                                   lt_error *err) {
    json_t *root, *wm;
    lt_status st = lt_index_load(index_path, &root, &wm, err);
    if (st != LT_OK) return st;
    check_state cs = {.rep = rep};
    uint64_t derived = 0;
    for (int64_t i = 0; i < inv->n_tensors; i++) {
        const lt_inv_tensor *t = &inv->tensors[i];
        derived += lt_inv_tensor_bytes(t);
        if (!json_object_get(wm, t->name)) note(&cs, 0, "missing tensor %s (not in the index)", t->name);
    }
    const char **names = sorted_names(inv);
    const char *name;
    json_t *v;
    if (!names) cs.failed = 1;
    else
        json_object_foreach(wm, name, v)
            if (!known(names, inv->n_tensors, name))
                note(&cs, 1, "warning: unexpected tensor %s (not in the inventory derived from config.json)", name);
    free(names);
    json_t *total = json_object_get(json_object_get(root, "metadata"), "total_size");
    if (json_is_integer(total) && (uint64_t)json_integer_value(total) != derived)
        note(&cs, 0, "index metadata.total_size is %lld bytes but the inventory holds %llu",
             (long long)json_integer_value(total), (unsigned long long)derived);
    json_decref(root);
    return finish(&cs, index_path, err);
}

void lt_inventory_report_free(lt_inventory_report *r) {
    for (int64_t i = 0; i < r->n_lines; i++) free(r->lines[i]);
    free(r->lines);
    memset(r, 0, sizeof *r);
}
