/* Model configuration (spec section 2): reads config.json of a V4 release
 * (flat keys, model_type deepseek_v4) or a V4.1 release (text fields under
 * "text_config", a "vision_config", model_type deepseek_v41), fills every
 * absent key with the spec's default and validates ranges and cross-field
 * rules. Each error names the file, the key (with its JSON path), the value
 * and what was expected. HF-style keys of tiny test configs (layer_types,
 * partial_rotary_factor, rope_parameters, mlp_layer_types) are accepted when
 * the official key is absent. */
#include "config.h"
#include "util.h"

#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sizes beyond these are not a DeepSeek model; they also bound the tensor
 * inventory derived from the config. */
#define MAX_DIM (1 << 20)
#define MAX_EXPERTS 1024

/* Where keys are read from, for lookups and messages. */
typedef struct {
    const char *path;   /* the file, for messages */
    json_t *root;       /* the whole document */
    json_t *text;       /* root (V4) or root.text_config (V4.1) */
    const char *scope;  /* "" or "text_config." */
    lt_error *err;
} reader;

/* ---- typed key readers: absent keys leave *out untouched ----------------- */

static const char *json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

static lt_status range_error(const reader *r, const char *scope, const char *key, long long v, long long lo, long long hi) {
    if (hi >= MAX_DIM && lo == 1)
        return lt_fail(r->err, LT_ERR_CONFIG, "%s: %s%s is %lld but must be > 0", r->path, scope, key, v);
    if (hi >= MAX_DIM)
        return lt_fail(r->err, LT_ERR_CONFIG, "%s: %s%s is %lld but must be >= %lld", r->path, scope, key, v, lo);
    return lt_fail(r->err, LT_ERR_CONFIG, "%s: %s%s is %lld but must be in [%lld, %lld]", r->path, scope, key, v, lo, hi);
}

static lt_status read_i64(const reader *r, json_t *obj, const char *scope, const char *key,
                          int64_t lo, int64_t hi, int64_t *out) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return LT_OK;
    if (!json_is_integer(v))
        return lt_fail(r->err, LT_ERR_CONFIG, "%s: %s%s must be an integer, got %s", r->path, scope, key, json_kind(v));
    int64_t x = json_integer_value(v);
    if (x < lo || x > hi) return range_error(r, scope, key, x, lo, hi);
    *out = x;
    return LT_OK;
}

static lt_status read_int(const reader *r, json_t *obj, const char *scope, const char *key, int lo, int hi, int *out) {
    int64_t x = *out;
    lt_status st = read_i64(r, obj, scope, key, lo, hi, &x);
    *out = (int)x;
    return st;
}

/* Reals must be finite and > 0 (every real of the config is a scale, a
 * frequency base or an epsilon); integers are accepted (rope_theta: 10000). */
static lt_status read_real(const reader *r, json_t *obj, const char *scope, const char *key, double *out) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return LT_OK;
    if (!json_is_number(v))
        return lt_fail(r->err, LT_ERR_CONFIG, "%s: %s%s must be a number, got %s", r->path, scope, key, json_kind(v));
    double x = json_number_value(v);
    if (!(x > 0) || !isfinite(x))
        return lt_fail(r->err, LT_ERR_CONFIG, "%s: %s%s is %g but must be a finite number > 0", r->path, scope, key, x);
    *out = x;
    return LT_OK;
}

/* Returns the string value, NULL if absent; *st is set on a type error. */
static const char *read_str(const reader *r, json_t *obj, const char *scope, const char *key, lt_status *st) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return NULL;
    if (!json_is_string(v)) {
        *st = lt_fail(r->err, LT_ERR_CONFIG, "%s: %s%s must be a string, got %s", r->path, scope, key, json_kind(v));
        return NULL;
    }
    return json_string_value(v);
}

/* An integer array of at most cap entries, each in [lo, hi]; *n = -1 if absent. */
static lt_status read_i64_array(const reader *r, json_t *obj, const char *scope, const char *key,
                                int64_t lo, int64_t hi, int64_t *out, int cap, int *n) {
    json_t *v = json_object_get(obj, key);
    *n = -1;
    if (!v || json_is_null(v)) return LT_OK;
    if (!json_is_array(v))
        return lt_fail(r->err, LT_ERR_CONFIG, "%s: %s%s must be an array of integers, got %s", r->path, scope, key, json_kind(v));
    if (json_array_size(v) > (size_t)cap)
        return lt_fail(r->err, LT_ERR_CONFIG, "%s: %s%s has %zu entries but at most %d are supported",
                       r->path, scope, key, json_array_size(v), cap);
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_integer(e))
            return lt_fail(r->err, LT_ERR_CONFIG, "%s: %s%s[%zu] must be an integer, got %s", r->path, scope, key, i, json_kind(e));
        int64_t x = json_integer_value(e);
        if (x < lo || x > hi) {
            char name[96];
            snprintf(name, sizeof name, "%s[%zu]", key, i);
            return range_error(r, scope, name, x, lo, hi);
        }
        out[i] = x;
    }
    *n = (int)json_array_size(v);
    return LT_OK;
}

static lt_status read_int_array(const reader *r, json_t *obj, const char *scope, const char *key,
                                int lo, int hi, int *out, int cap, int *n) {
    int64_t tmp[LT_MAX_LAYERS];
    int got;
    lt_status st = read_i64_array(r, obj, scope, key, lo, hi, tmp, LT_MIN(cap, LT_MAX_LAYERS), &got);
    if (st != LT_OK || got < 0) return st;
    for (int i = 0; i < got; i++) out[i] = (int)tmp[i];
    *n = got;
    return LT_OK;
}

static lt_status require(const reader *r, json_t *obj, const char *scope, const char *key) {
    json_t *v = json_object_get(obj, key);
    if (v && !json_is_null(v)) return LT_OK;
    return lt_fail(r->err, LT_ERR_CONFIG, "%s: %s%s is missing (it has no default)", r->path, scope, key);
}

/* ---- defaults: spec section 2 (V4-Flash values; V4.1-Flash where it differs) */

static void set_defaults(lt_config *c, lt_arch arch) {
    memset(c, 0, sizeof *c);
    c->arch = arch;
    c->vocab_size = 129280;
    c->n_kv_heads = 1;
    c->head_dim = 512;
    c->rope_dim = 64;
    c->o_lora_rank = 1024;
    c->sliding_window = 128;
    c->rope_theta = 10000;
    c->compress_rope_theta = 160000;
    c->yarn_factor = 16;
    c->yarn_beta_fast = 32;
    c->yarn_beta_slow = 1;
    c->yarn_orig_max_pos = 65536;
    c->max_position_embeddings = 1048576;
    c->index_head_dim = 128;
    c->index_topk = 512;
    c->n_experts_per_tok = 6;
    c->n_shared_experts = 1;
    c->routed_scaling_factor = 1.5;
    c->swiglu_limit = 10.0;
    c->gate_temp = 1.0;
    c->hc_mult = 4;
    c->hc_sinkhorn_iters = 20;
    c->hc_eps = 1e-6;
    c->bos_token_id = 0;
    c->eos_token_id = 1;
    c->candidate_source_layer_id = -1;
    c->vision_layers = 32;
    c->vision_dim = 1024;
    c->vision_heads = 16;
    c->vision_inter = 2816;
    c->vision_patch = 14;
    c->vision_downsample = 3;
    if (arch == LT_ARCH_V4) {
        c->rms_norm_eps = 1e-6;
        c->index_n_heads = 64;
        c->n_hash_layers = 3;
        c->block_r = c->block_c = 128;
        c->n_mtp = 1;
        c->pad_token_id = c->image_token_id = -1;
        return;
    }
    c->rms_norm_eps = 1e-20;
    c->index_n_heads = 32;
    c->block_r = c->block_c = 32;
    c->n_mtp = 3;
    c->pad_token_id = 2;
    c->image_token_id = 129264;
    c->dspark_block_size = 5;
    c->dspark_noise_token_id = 128799;
    c->dspark_markov_rank = 256;
    c->dspark_n_routed_experts = 128;
    c->dspark_n_experts_per_tok = 3;
    c->candidate_topk_blocks = 2048;
    c->candidate_block_size = 8;
    c->engram_max_ngram_size = 4;
    c->engram_n_heads = 8;
    c->engram_head_dim = 256;
    c->engram_pad_token_id = 2;
    c->engram_vocab_size = 16000000;
    c->engram_compressed_vocab_size = 99092;
}

/* ---- scalar keys of the text model --------------------------------------- */

typedef struct { const char *key; int lo, hi; size_t off; int required; } int_key;
typedef struct { const char *key; size_t off; } real_key;

#define AT(field) offsetof(lt_config, field)
#define TOKEN_MAX (1 << 24)

/* Required keys are the ones that tell Flash from Pro: no default fits both. */
static const int_key text_ints[] = {
    {"num_hidden_layers", 1, LT_MAX_LAYERS, AT(n_layers), 1},
    {"hidden_size", 1, MAX_DIM, AT(dim), 1},
    {"num_attention_heads", 1, MAX_DIM, AT(n_heads), 1},
    {"q_lora_rank", 1, MAX_DIM, AT(q_lora_rank), 1},
    {"o_groups", 1, MAX_DIM, AT(o_groups), 1},
    {"moe_intermediate_size", 1, MAX_DIM, AT(moe_inter), 1},
    {"n_routed_experts", 1, MAX_EXPERTS, AT(n_routed_experts), 1},
    {"vocab_size", 1, TOKEN_MAX, AT(vocab_size), 0},
    {"num_key_value_heads", 1, MAX_DIM, AT(n_kv_heads), 0},
    {"head_dim", 1, MAX_DIM, AT(head_dim), 0},
    {"qk_rope_head_dim", 1, MAX_DIM, AT(rope_dim), 0},
    {"o_lora_rank", 1, MAX_DIM, AT(o_lora_rank), 0},
    {"sliding_window", 1, MAX_DIM, AT(sliding_window), 0},
    {"index_n_heads", 1, MAX_DIM, AT(index_n_heads), 0},
    {"index_head_dim", 1, MAX_DIM, AT(index_head_dim), 0},
    {"index_topk", 1, MAX_DIM, AT(index_topk), 0},
    {"num_experts_per_tok", 1, MAX_EXPERTS, AT(n_experts_per_tok), 0},
    {"n_shared_experts", 0, 64, AT(n_shared_experts), 0},
    {"num_hash_layers", 0, LT_MAX_LAYERS, AT(n_hash_layers), 0},
    {"hc_mult", 1, 64, AT(hc_mult), 0},
    {"hc_sinkhorn_iters", 1, 1000, AT(hc_sinkhorn_iters), 0},
    {"num_nextn_predict_layers", 0, 16, AT(n_mtp), 0},
    {"dspark_block_size", 1, 1024, AT(dspark_block_size), 0},
    {"dspark_noise_token_id", 0, TOKEN_MAX, AT(dspark_noise_token_id), 0},
    {"dspark_markov_rank", 1, MAX_DIM, AT(dspark_markov_rank), 0},
    {"dspark_n_routed_experts", 1, MAX_EXPERTS, AT(dspark_n_routed_experts), 0},
    {"dspark_num_experts_per_tok", 1, MAX_EXPERTS, AT(dspark_n_experts_per_tok), 0},
    {"candidate_source_layer_id", -1, LT_MAX_LAYERS - 1, AT(candidate_source_layer_id), 0},
    {"candidate_topk_blocks", 1, MAX_DIM, AT(candidate_topk_blocks), 0},
    {"candidate_block_size", 1, MAX_DIM, AT(candidate_block_size), 0},
    {"engram_max_ngram_size", 2, 16, AT(engram_max_ngram_size), 0},
    {"engram_n_heads", 1, 1024, AT(engram_n_heads), 0},
    {"engram_head_dim", 1, MAX_DIM, AT(engram_head_dim), 0},
    {"engram_pad_token_id", 0, TOKEN_MAX, AT(engram_pad_token_id), 0},
};

static const real_key text_reals[] = {
    {"rms_norm_eps", AT(rms_norm_eps)},
    {"rope_theta", AT(rope_theta)},
    {"compress_rope_theta", AT(compress_rope_theta)},
    {"routed_scaling_factor", AT(routed_scaling_factor)},
    {"swiglu_limit", AT(swiglu_limit)},
    {"gate_temp", AT(gate_temp)},
    {"hc_eps", AT(hc_eps)},
};

static lt_status read_scalars(lt_config *c, const reader *r) {
    lt_status st = LT_OK;
    for (size_t i = 0; i < sizeof text_ints / sizeof text_ints[0] && st == LT_OK; i++) {
        const int_key *k = &text_ints[i];
        if (k->required && (st = require(r, r->text, r->scope, k->key)) != LT_OK) break;
        st = read_int(r, r->text, r->scope, k->key, k->lo, k->hi, (int *)((char *)c + k->off));
    }
    for (size_t i = 0; i < sizeof text_reals / sizeof text_reals[0] && st == LT_OK; i++)
        st = read_real(r, r->text, r->scope, text_reals[i].key, (double *)((char *)c + text_reals[i].off));
    if (st == LT_OK)
        st = read_i64(r, r->text, r->scope, "max_position_embeddings", 1, INT64_MAX, &c->max_position_embeddings);
    if (st == LT_OK)
        st = read_i64(r, r->text, r->scope, "engram_vocab_size", 1, INT64_MAX, &c->engram_vocab_size);
    if (st == LT_OK)
        st = read_i64(r, r->text, r->scope, "engram_compressed_vocab_size", 1, INT64_MAX, &c->engram_compressed_vocab_size);
    const char *score = st == LT_OK ? read_str(r, r->text, r->scope, "scoring_func", &st) : NULL;
    if (score && strcmp(score, "sqrtsoftplus"))
        st = lt_fail(r->err, LT_ERR_UNSUPPORTED, "%s: %sscoring_func is \"%s\" but only sqrtsoftplus is supported (spec 4.4)",
                     r->path, r->scope, score);
    return st;
}

/* HF tiny configs give the rotated width as a fraction of head_dim. */
static lt_status read_partial_rotary(lt_config *c, const reader *r) {
    double f = 0;
    if (json_object_get(r->text, "qk_rope_head_dim")) return LT_OK;
    lt_status st = read_real(r, r->text, r->scope, "partial_rotary_factor", &f);
    if (st == LT_OK && f > 0) c->rope_dim = (int)lround(f * c->head_dim);
    return st;
}

/* ---- RoPE (spec 3.2): rope_scaling {type|rope_type: yarn} or HF rope_parameters */

static lt_status read_rope(lt_config *c, const reader *r) {
    const char *key = json_object_get(r->text, "rope_scaling") ? "rope_scaling" : "rope_parameters";
    json_t *rs = json_object_get(r->text, key);
    if (!rs || json_is_null(rs)) return LT_OK;
    if (!json_is_object(rs))
        return lt_fail(r->err, LT_ERR_CONFIG, "%s: %s%s must be an object, got %s", r->path, r->scope, key, json_kind(rs));
    char scope[64];
    snprintf(scope, sizeof scope, "%s%s.", r->scope, key);
    lt_status st = LT_OK;
    const char *type = read_str(r, rs, scope, "type", &st);
    if (!type && st == LT_OK) type = read_str(r, rs, scope, "rope_type", &st);
    if (st != LT_OK) return st;
    /* rope_parameters may carry the base; the official top-level key wins */
    if (!json_object_get(r->text, "rope_theta") && (st = read_real(r, rs, scope, "rope_theta", &c->rope_theta)) != LT_OK)
        return st;
    if (!type || !strcmp(type, "default")) return LT_OK;
    if (strcmp(type, "yarn"))
        return lt_fail(r->err, LT_ERR_UNSUPPORTED, "%s: %stype is \"%s\" but only yarn is supported", r->path, scope, type);
    c->yarn = 1;
    if ((st = read_real(r, rs, scope, "factor", &c->yarn_factor)) != LT_OK) return st;
    if ((st = read_real(r, rs, scope, "beta_fast", &c->yarn_beta_fast)) != LT_OK) return st;
    if ((st = read_real(r, rs, scope, "beta_slow", &c->yarn_beta_slow)) != LT_OK) return st;
    return read_i64(r, rs, scope, "original_max_position_embeddings", 1, INT64_MAX, &c->yarn_orig_max_pos);
}

/* ---- layer schedule ------------------------------------------------------ */

/* HF tiny configs name layer types instead of ratios: layer_types plus
 * compress_rates {"compressed_sparse_attention": 4, "heavily_compressed_attention": 128}. */
static lt_status read_layer_types(lt_config *c, const reader *r) {
    json_t *lt = json_object_get(r->text, "layer_types");
    if (!json_is_array(lt))
        return lt_fail(r->err, LT_ERR_CONFIG, "%s: %scompress_ratios is missing (it has no default)", r->path, r->scope);
    json_t *rates = json_object_get(r->text, "compress_rates");
    int csa = 4, hca = 128;
    lt_status st = LT_OK;
    if (json_is_object(rates)) {
        char scope[64];
        snprintf(scope, sizeof scope, "%scompress_rates.", r->scope);
        if ((st = read_int(r, rates, scope, "compressed_sparse_attention", 1, 1 << 16, &csa)) != LT_OK) return st;
        if ((st = read_int(r, rates, scope, "heavily_compressed_attention", 1, 1 << 16, &hca)) != LT_OK) return st;
    }
    if (json_array_size(lt) > LT_MAX_LAYERS)
        return lt_fail(r->err, LT_ERR_CONFIG, "%s: %slayer_types has %zu entries but at most %d are supported",
                       r->path, r->scope, json_array_size(lt), LT_MAX_LAYERS);
    for (size_t i = 0; i < json_array_size(lt); i++) {
        const char *s = json_string_value(json_array_get(lt, i));
        if (s && !strcmp(s, "sliding_attention")) c->compress_ratios[i] = 0;
        else if (s && !strcmp(s, "compressed_sparse_attention")) c->compress_ratios[i] = csa;
        else if (s && !strcmp(s, "heavily_compressed_attention")) c->compress_ratios[i] = hca;
        else
            return lt_fail(r->err, LT_ERR_CONFIG, "%s: %slayer_types[%zu] must be sliding_attention, "
                           "compressed_sparse_attention or heavily_compressed_attention", r->path, r->scope, i);
    }
    c->n_compress_ratios = (int)json_array_size(lt);
    return LT_OK;
}

/* num_hash_layers, else HF tiny configs' mlp_layer_types ("hash_moe" first,
 * then "moe"), else the V4 default of 3 capped to the model's depth. */
static lt_status read_hash_layers(lt_config *c, const reader *r) {
    json_t *mt = json_object_get(r->text, "mlp_layer_types");
    if (json_object_get(r->text, "num_hash_layers")) return LT_OK;
    c->n_hash_layers = LT_MIN(c->n_hash_layers, c->n_layers);
    if (!json_is_array(mt)) return LT_OK;
    int n_hash = 0;
    for (size_t i = 0; i < json_array_size(mt); i++) {
        const char *s = json_string_value(json_array_get(mt, i));
        int hash = s && !strcmp(s, "hash_moe");
        if ((!hash && !(s && !strcmp(s, "moe"))) || (hash && (size_t)n_hash != i))
            return lt_fail(r->err, LT_ERR_CONFIG, "%s: %smlp_layer_types[%zu] must be \"hash_moe\" (leading layers only) or \"moe\"",
                           r->path, r->scope, i);
        n_hash += hash;
    }
    c->n_hash_layers = n_hash;
    return LT_OK;
}

static lt_status read_schedule(lt_config *c, const reader *r) {
    int n = -1;
    lt_status st = read_int_array(r, r->text, r->scope, "compress_ratios", 0, 1 << 16, c->compress_ratios, LT_MAX_LAYERS, &n);
    if (st != LT_OK) return st;
    if (n >= 0) c->n_compress_ratios = n;
    else if ((st = read_layer_types(c, r)) != LT_OK) return st;
    if ((st = read_hash_layers(c, r)) != LT_OK) return st;
    if (c->n_compress_ratios < c->n_layers)
        return lt_fail(r->err, LT_ERR_CONFIG, "%s: %scompress_ratios has %d entries but num_hidden_layers is %d",
                       r->path, r->scope, c->n_compress_ratios, c->n_layers);
    /* 0731's config reportedly says 1 MTP layer while the checkpoint holds
     * 3 DSpark stages; its compress_ratios lists all 46 = 43 + 3 layers. */
    c->n_mtp = LT_MAX(c->n_mtp, c->n_compress_ratios - c->n_layers);
    if (c->n_layers + c->n_mtp > LT_MAX_LAYERS)
        return lt_fail(r->err, LT_ERR_CONFIG, "%s: %d layers + %d MTP stages exceed the supported %d",
                       r->path, c->n_layers, c->n_mtp, LT_MAX_LAYERS);
    if (st == LT_OK) st = read_int_array(r, r->text, r->scope, "kv_source_layer_ids", 0, c->n_layers - 1,
                                         c->kv_source_layer_ids, LT_MAX_LAYERS, &c->n_kv_source_layers);
    if (st == LT_OK) st = read_int_array(r, r->text, r->scope, "index_source_layer_ids", 0, c->n_layers - 1,
                                         c->index_source_layer_ids, LT_MAX_LAYERS, &c->n_index_source_layers);
    c->n_kv_source_layers = LT_MAX(c->n_kv_source_layers, 0);
    c->n_index_source_layers = LT_MAX(c->n_index_source_layers, 0);
    return st;
}

/* ---- quantisation and storage dtypes (spec 3.4, 6) ------------------------- */

static lt_status read_quant(lt_config *c, const reader *r) {
    json_t *q = json_object_get(r->root, "quantization_config");
    const char *qscope = "quantization_config.";
    if (!q) q = json_object_get(r->text, "quantization_config");
    lt_status st = LT_OK;
    if (q && !json_is_object(q))
        return lt_fail(r->err, LT_ERR_CONFIG, "%s: quantization_config must be an object, got %s", r->path, json_kind(q));
    c->weight_fp8 = q != NULL;
    if (q) {
        const char *method = read_str(r, q, qscope, "quant_method", &st);
        if (st == LT_OK && method && strcmp(method, "fp8"))
            return lt_fail(r->err, LT_ERR_UNSUPPORTED, "%s: %squant_method is \"%s\" but only fp8 is supported", r->path, qscope, method);
        int64_t blk[2];
        int n;
        if (st == LT_OK) st = read_i64_array(r, q, qscope, "weight_block_size", 1, MAX_DIM, blk, 2, &n);
        if (st == LT_OK && n == 2) { c->block_r = (int)blk[0]; c->block_c = (int)blk[1]; }
        else if (st == LT_OK && n >= 0)
            st = lt_fail(r->err, LT_ERR_CONFIG, "%s: %sweight_block_size has %d entries but must be [rows, cols]", r->path, qscope, n);
        /* the activation quantiser quantises one K block in L1 (kernels_simd.h) */
        if (st == LT_OK && c->block_c > 256)
            st = lt_fail(r->err, LT_ERR_UNSUPPORTED, "%s: %sweight_block_size[1] is %d but at most 256 is supported",
                         r->path, qscope, c->block_c);
    }
    /* V4 keeps expert_dtype at the top level, V4.1 inside quantization_config */
    const char *ed = NULL;
    if (st == LT_OK && q) ed = read_str(r, q, qscope, "expert_dtype", &st);
    if (st == LT_OK && !ed) ed = read_str(r, r->text, r->scope, "expert_dtype", &st);
    if (st == LT_OK && !ed && r->text != r->root) ed = read_str(r, r->root, "", "expert_dtype", &st);
    if (st != LT_OK) return st;
    if (ed && strcmp(ed, "fp4") && strcmp(ed, "fp8"))
        return lt_fail(r->err, LT_ERR_UNSUPPORTED, "%s: expert_dtype is \"%s\" but must be fp4 or fp8", r->path, ed);
    c->expert_fp4 = ed ? !strcmp(ed, "fp4") : c->weight_fp8;
    const char *dt = read_str(r, r->text, r->scope, "torch_dtype", &st);
    if (st == LT_OK && !dt) dt = read_str(r, r->text, r->scope, "dtype", &st);
    if (st == LT_OK && !dt && r->text != r->root) dt = read_str(r, r->root, "", "dtype", &st);
    if (st == LT_OK && dt && strcmp(dt, "bfloat16") && strcmp(dt, "float32"))
        st = lt_fail(r->err, LT_ERR_UNSUPPORTED, "%s: %storch_dtype is \"%s\" but must be bfloat16 or float32", r->path, r->scope, dt);
    /* a quantised checkpoint keeps the release's BF16 tensors whatever its
     * dtype, which then names the compute dtype (the V4.1 fixtures: float32) */
    c->dtype_f32 = dt && !strcmp(dt, "float32") && !c->weight_fp8;
    c->compute_f32 = dt && !strcmp(dt, "float32");
    return st;
}

/* ---- V4.1 Engram, DSpark, vision; token ids ------------------------------- */

static lt_status read_engram(lt_config *c, const reader *r) {
    int n_rows = -1;
    lt_status st = read_int_array(r, r->text, r->scope, "engram_layer_ids", 0, c->n_layers - 1,
                                  c->engram_layer_ids, 16, &c->n_engram_layers);
    if (st == LT_OK)
        st = read_i64_array(r, r->text, r->scope, "engram_num_embeddings", 1, INT64_MAX / 1024,
                            c->engram_num_embeddings, 16, &n_rows);
    c->n_engram_layers = LT_MAX(c->n_engram_layers, 0);
    if (st == LT_OK && LT_MAX(n_rows, 0) != c->n_engram_layers)
        st = lt_fail(r->err, LT_ERR_CONFIG, "%s: %sengram_num_embeddings has %d entries but engram_layer_ids has %d",
                     r->path, r->scope, LT_MAX(n_rows, 0), c->n_engram_layers);
    return st;
}

static lt_status read_dspark(lt_config *c, const reader *r) {
    lt_status st = read_int_array(r, r->text, r->scope, "dspark_target_layer_ids", 0, c->n_layers - 1,
                                  c->dspark_target_layer_ids, 8, &c->n_dspark_target_layers);
    if (st != LT_OK || !c->dspark_block_size) return st;
    /* 0731 drafts are trunk-shaped (256 experts, top-6); V4.1 defaults to 128 / top-3 */
    if (!c->dspark_n_routed_experts) c->dspark_n_routed_experts = c->n_routed_experts;
    if (!c->dspark_n_experts_per_tok) c->dspark_n_experts_per_tok = c->n_experts_per_tok;
    if (!c->dspark_markov_rank) c->dspark_markov_rank = 256;
    if (c->n_dspark_target_layers <= 0) { /* both releases target the last three layers */
        c->n_dspark_target_layers = LT_MIN(3, c->n_layers);
        for (int i = 0; i < c->n_dspark_target_layers; i++)
            c->dspark_target_layer_ids[i] = c->n_layers - c->n_dspark_target_layers + i;
    }
    return LT_OK;
}

static lt_status read_vision(lt_config *c, const reader *r) {
    json_t *v = json_object_get(r->root, "vision_config");
    if (!v || json_is_null(v)) return LT_OK;
    const char *scope = "vision_config.";
    if (!json_is_object(v))
        return lt_fail(r->err, LT_ERR_CONFIG, "%s: vision_config must be an object, got %s", r->path, json_kind(v));
    c->has_vision = 1;
    lt_status st = read_int(r, v, scope, "num_hidden_layers", 1, LT_MAX_LAYERS, &c->vision_layers);
    if (st == LT_OK) st = read_int(r, v, scope, "hidden_size", 1, MAX_DIM, &c->vision_dim);
    if (st == LT_OK) st = read_int(r, v, scope, "num_attention_heads", 1, MAX_DIM, &c->vision_heads);
    if (st == LT_OK) st = read_int(r, v, scope, "intermediate_size", 1, MAX_DIM, &c->vision_inter);
    if (st == LT_OK) st = read_int(r, v, scope, "patch_size", 1, 1024, &c->vision_patch);
    if (st == LT_OK) st = read_int(r, v, scope, "downsample_ratio", 1, 64, &c->vision_downsample);
    if (st == LT_OK && c->vision_dim % c->vision_heads)
        st = lt_fail(r->err, LT_ERR_CONFIG, "%s: %shidden_size %d is not a multiple of num_attention_heads %d",
                     r->path, scope, c->vision_dim, c->vision_heads);
    return st;
}

/* Token ids sit at the top level; V4.1 may repeat them in text_config. */
static lt_status read_tokens(lt_config *c, const reader *r) {
    struct { const char *key; int *out; } keys[] = {
        {"bos_token_id", &c->bos_token_id}, {"eos_token_id", &c->eos_token_id},
        {"pad_token_id", &c->pad_token_id}, {"image_token_id", &c->image_token_id},
    };
    lt_status st = LT_OK;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0] && st == LT_OK; i++) {
        json_t *where = json_object_get(r->root, keys[i].key) ? r->root : r->text;
        st = read_int(r, where, where == r->root ? "" : r->scope, keys[i].key, 0, c->vocab_size - 1, keys[i].out);
    }
    return st;
}

/* ---- V4.1 sharing (spec 5.1) ----------------------------------------------- */

/* The last id <= layer of an ascending list, -1 if none. */
static int latest_at_or_before(const int *ids, int n, int layer) {
    int best = -1;
    for (int i = 0; i < n && ids[i] <= layer; i++) best = ids[i];
    return best;
}

int lt_config_kv_source(const lt_config *c, int layer) {
    if (c->compress_ratios[layer] == 0) return -1;
    if (c->arch == LT_ARCH_V4) return layer;
    return latest_at_or_before(c->kv_source_layer_ids, c->n_kv_source_layers, layer);
}

int lt_config_index_source(const lt_config *c, int layer) {
    if (c->compress_ratios[layer] == 0) return -1;
    if (c->arch == LT_ARCH_V4) return lt_config_is_csa(c, layer) ? layer : -1;
    return latest_at_or_before(c->index_source_layer_ids, c->n_index_source_layers, layer);
}

static lt_status check_ascending(const reader *r, const char *key, const int *ids, int n) {
    for (int i = 1; i < n; i++)
        if (ids[i] <= ids[i - 1])
            return lt_fail(r->err, LT_ERR_CONFIG, "%s: %s%s must be strictly ascending, but %d follows %d",
                           r->path, r->scope, key, ids[i], ids[i - 1]);
    return LT_OK;
}

/* Every compressed layer reads the KV of a source with its own ratio, and
 * takes its top-k from an index source that scores that same source's keys. */
static lt_status check_sharing(const lt_config *c, const reader *r) {
    lt_status st = check_ascending(r, "kv_source_layer_ids", c->kv_source_layer_ids, c->n_kv_source_layers);
    if (st == LT_OK) st = check_ascending(r, "index_source_layer_ids", c->index_source_layer_ids, c->n_index_source_layers);
    for (int l = 0; l < c->n_layers && st == LT_OK; l++) {
        int m = c->compress_ratios[l], kv = lt_config_kv_source(c, l), ix = lt_config_index_source(c, l);
        if (m == 0) continue;
        if (kv < 0 || c->compress_ratios[kv] != m)
            st = lt_fail(r->err, LT_ERR_CONFIG, "%s: %skv_source_layer_ids: layer %d has compress ratio %d but no KV source "
                         "with that ratio at or before it", r->path, r->scope, l, m);
        else if (ix < 0 || lt_config_kv_source(c, ix) != kv)
            st = lt_fail(r->err, LT_ERR_CONFIG, "%s: %sindex_source_layer_ids: layer %d reads KV source %d but no index "
                         "source of that group precedes it", r->path, r->scope, l, kv);
    }
    for (int i = 0; i < c->n_kv_source_layers && st == LT_OK; i++)
        if (c->compress_ratios[c->kv_source_layer_ids[i]] == 0)
            st = lt_fail(r->err, LT_ERR_CONFIG, "%s: %skv_source_layer_ids[%d] is layer %d, a sliding-only layer",
                         r->path, r->scope, i, c->kv_source_layer_ids[i]);
    for (int i = 0; i < c->n_index_source_layers && st == LT_OK; i++)
        if (c->compress_ratios[c->index_source_layer_ids[i]] == 0)
            st = lt_fail(r->err, LT_ERR_CONFIG, "%s: %sindex_source_layer_ids[%d] is layer %d, a sliding-only layer",
                         r->path, r->scope, i, c->index_source_layer_ids[i]);
    int cand = c->candidate_source_layer_id;
    if (st == LT_OK && cand >= 0 && (cand >= c->n_layers || lt_config_index_source(c, cand) != cand))
        st = lt_fail(r->err, LT_ERR_CONFIG, "%s: %scandidate_source_layer_id is %d but must be one of index_source_layer_ids",
                     r->path, r->scope, cand);
    return st;
}

/* ---- cross-field validation ------------------------------------------------ */

static lt_status check_ratios(const lt_config *c, const reader *r) {
    for (int l = 0; l < c->n_layers + c->n_mtp; l++) {
        int m = c->compress_ratios[l];
        if (l >= c->n_layers && m != 0)
            return lt_fail(r->err, LT_ERR_CONFIG, "%s: %scompress_ratios[%d] is %d but MTP/DSpark stages are sliding-only (0)",
                           r->path, r->scope, l, m);
        if (c->arch == LT_ARCH_V4 && m > 0 && m < 4)
            return lt_fail(r->err, LT_ERR_CONFIG, "%s: %scompress_ratios[%d] is %d but V4 layers use 0 (sliding), 4 (CSA) "
                           "or more (HCA)", r->path, r->scope, l, m);
        if (c->arch == LT_ARCH_V41 && m > 2)
            return lt_fail(r->err, LT_ERR_CONFIG, "%s: %scompress_ratios[%d] is %d but V4.1 layers use 0, 1 or 2",
                           r->path, r->scope, l, m);
    }
    return LT_OK;
}

static lt_status check_token(const lt_config *c, const reader *r, const char *key, int id) {
    if (id < c->vocab_size) return LT_OK;
    return lt_fail(r->err, LT_ERR_CONFIG, "%s: %s is %d but must be < vocab_size %d", r->path, key, id, c->vocab_size);
}

static lt_status validate(const lt_config *c, const reader *r) {
    const char *p = r->path, *s = r->scope;
    lt_error *e = r->err;
    if (c->n_kv_heads != 1)
        return lt_fail(e, LT_ERR_UNSUPPORTED, "%s: %snum_key_value_heads is %d but must be 1 (one shared KV head, spec 4.3)", p, s, c->n_kv_heads);
    if (c->rope_dim % 2 || c->rope_dim >= c->head_dim)
        return lt_fail(e, LT_ERR_CONFIG, "%s: %sqk_rope_head_dim is %d but must be even and < head_dim %d", p, s, c->rope_dim, c->head_dim);
    if (c->index_head_dim < c->rope_dim)
        return lt_fail(e, LT_ERR_CONFIG, "%s: %sindex_head_dim is %d but must be >= qk_rope_head_dim %d", p, s, c->index_head_dim, c->rope_dim);
    if (c->n_heads % c->o_groups)
        return lt_fail(e, LT_ERR_CONFIG, "%s: %snum_attention_heads %d is not a multiple of o_groups %d", p, s, c->n_heads, c->o_groups);
    if (c->n_experts_per_tok > c->n_routed_experts)
        return lt_fail(e, LT_ERR_CONFIG, "%s: %snum_experts_per_tok is %d but must be <= n_routed_experts %d", p, s,
                       c->n_experts_per_tok, c->n_routed_experts);
    if (c->dspark_n_experts_per_tok > c->dspark_n_routed_experts)
        return lt_fail(e, LT_ERR_CONFIG, "%s: %sdspark_num_experts_per_tok is %d but must be <= dspark_n_routed_experts %d", p, s,
                       c->dspark_n_experts_per_tok, c->dspark_n_routed_experts);
    if (c->n_hash_layers > c->n_layers)
        return lt_fail(e, LT_ERR_CONFIG, "%s: %snum_hash_layers is %d but must be <= num_hidden_layers %d", p, s, c->n_hash_layers, c->n_layers);
    /* FP4 packs two values per byte with one scale per 32 inputs (spec 3.4) */
    if (c->expert_fp4 && (c->dim % 32 || c->moe_inter % 32))
        return lt_fail(e, LT_ERR_CONFIG, "%s: %shidden_size %d and moe_intermediate_size %d must be multiples of 32 for FP4 experts",
                       p, s, c->dim, c->moe_inter);
    if (c->n_engram_layers && c->engram_head_dim % 32)
        return lt_fail(e, LT_ERR_CONFIG, "%s: %sengram_head_dim is %d but must be a multiple of 32 (one scale per 32 columns)",
                       p, s, c->engram_head_dim);
    lt_status st = check_ratios(c, r);
    if (st == LT_OK && c->arch == LT_ARCH_V41) st = check_sharing(c, r);
    if (st == LT_OK) st = check_ascending(r, "engram_layer_ids", c->engram_layer_ids, c->n_engram_layers);
    if (st == LT_OK) st = check_token(c, r, "bos_token_id", c->bos_token_id);
    if (st == LT_OK) st = check_token(c, r, "eos_token_id", c->eos_token_id);
    if (st == LT_OK) st = check_token(c, r, "dspark_noise_token_id", c->dspark_noise_token_id);
    return st;
}

/* ---- entry points ----------------------------------------------------------- */

static lt_status detect_arch(json_t *root, const char *path, lt_arch *arch, const char **model_type, lt_error *err) {
    json_t *mt = json_object_get(root, "model_type");
    *model_type = json_string_value(mt);
    if (mt && !json_is_string(mt))
        return lt_fail(err, LT_ERR_CONFIG, "%s: model_type must be a string, got %s", path, json_kind(mt));
    if (!mt) *arch = json_object_get(root, "text_config") ? LT_ARCH_V41 : LT_ARCH_V4;
    else if (!strcmp(*model_type, "deepseek_v4")) *arch = LT_ARCH_V4;
    else if (!strcmp(*model_type, "deepseek_v41") || !strcmp(*model_type, "deepseek_v41_text")) *arch = LT_ARCH_V41;
    else
        return lt_fail(err, LT_ERR_UNSUPPORTED, "%s: model_type is \"%s\" but must be deepseek_v4 or deepseek_v41",
                       path, *model_type);
    return LT_OK;
}

static lt_status parse_root(lt_config *c, json_t *root, const char *path, lt_error *err) {
    if (!json_is_object(root)) return lt_fail(err, LT_ERR_FORMAT, "%s: the top level must be a JSON object", path);
    lt_arch arch = LT_ARCH_V4;
    const char *model_type;
    lt_status st = detect_arch(root, path, &arch, &model_type, err);
    if (st != LT_OK) return st;
    set_defaults(c, arch);
    snprintf(c->model_type, sizeof c->model_type, "%s", model_type ? model_type : "");
    reader r = {path, root, root, "", err};
    json_t *text = json_object_get(root, "text_config");
    if (text && arch == LT_ARCH_V41) {
        if (!json_is_object(text))
            return lt_fail(err, LT_ERR_CONFIG, "%s: text_config must be an object, got %s", path, json_kind(text));
        r.text = text;
        r.scope = "text_config.";
    } else if (model_type && !strcmp(model_type, "deepseek_v41")) {
        return lt_fail(err, LT_ERR_CONFIG, "%s: text_config is missing (model_type deepseek_v41 nests the text model there)", path);
    }
    if ((st = read_scalars(c, &r)) != LT_OK) return st;
    if ((st = read_partial_rotary(c, &r)) != LT_OK) return st;
    if ((st = read_rope(c, &r)) != LT_OK) return st;
    if ((st = read_schedule(c, &r)) != LT_OK) return st;
    if ((st = read_quant(c, &r)) != LT_OK) return st;
    if ((st = read_engram(c, &r)) != LT_OK) return st;
    if ((st = read_dspark(c, &r)) != LT_OK) return st;
    if ((st = read_vision(c, &r)) != LT_OK) return st;
    if ((st = read_tokens(c, &r)) != LT_OK) return st;
    return validate(c, &r);
}

lt_status lt_config_parse(lt_config *c, const char *json_text, const char *path, lt_error *err) {
    json_error_t je;
    json_t *root = json_loads(json_text, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return lt_fail(err, LT_ERR_FORMAT, "%s: invalid JSON at line %d, column %d: %s", path, je.line, je.column, je.text);
    lt_status st = parse_root(c, root, path, err);
    json_decref(root);
    return st;
}

lt_status lt_config_load(lt_config *c, const char *dir, lt_error *err) {
    char path[4096];
    char *text;
    lt_status st = lt_path_join(path, sizeof path, dir, "config.json", err);
    if (st == LT_OK) st = lt_read_file(path, &text, NULL, err);
    if (st != LT_OK) return st;
    st = lt_config_parse(c, text, path, err);
    free(text);
    return st;
}
