/* Model configuration: config.json of a V4 (flat) or V4.1 (text_config +
 * vision_config) release, with defaults and validation (spec section 2). */
#ifndef LT_CONFIG_H
#define LT_CONFIG_H

#include "lantern.h"

#include <stdint.h>

#define LT_MAX_LAYERS 256

typedef enum { LT_ARCH_V4 = 4, LT_ARCH_V41 = 41 } lt_arch;

typedef struct {
    lt_arch arch;
    char model_type[64];

    /* trunk */
    int n_layers;            /* num_hidden_layers (backbone only, MTP excluded) */
    int dim;                 /* hidden_size D */
    int vocab_size;
    int n_heads;             /* H */
    int n_kv_heads;          /* 1 */
    int head_dim;            /* 512 */
    int rope_dim;            /* qk_rope_head_dim, the rotated tail */
    int q_lora_rank;
    int o_groups, o_lora_rank;
    int sliding_window;
    double rms_norm_eps;

    /* per-layer compression ratio; entries [n_layers, n_layers + n_mtp) are the MTP/DSpark stages */
    int compress_ratios[LT_MAX_LAYERS];
    int n_compress_ratios;

    /* RoPE */
    double rope_theta, compress_rope_theta;
    int yarn;                /* rope_scaling present with type/rope_type "yarn" */
    double yarn_factor, yarn_beta_fast, yarn_beta_slow;
    int64_t yarn_orig_max_pos;
    int64_t max_position_embeddings;

    /* indexer */
    int index_n_heads, index_head_dim, index_topk;

    /* MoE */
    int n_routed_experts, n_experts_per_tok, n_shared_experts;
    int moe_inter;           /* moe_intermediate_size */
    double routed_scaling_factor;
    int n_hash_layers;       /* num_hash_layers (V4); 0 in V4.1 */
    double swiglu_limit;
    double gate_temp;        /* V4.1; 1.0 otherwise */

    /* mHC */
    int hc_mult, hc_sinkhorn_iters;
    double hc_eps;

    /* quantisation */
    int weight_fp8;          /* quantization_config present: linears are F8_E4M3 + UE8M0 block
                              * scales; 0 = an unquantised checkpoint (tiny test models) */
    int block_r, block_c;    /* quantization_config.weight_block_size */
    int expert_fp4;          /* expert_dtype == "fp4" (else experts are stored like the other linears) */
    int dtype_f32;           /* torch_dtype/dtype "float32" in an unquantised checkpoint: tensors
                              * the release keeps in BF16 (norms, embed, head, BF16 linears) are
                              * F32 instead */
    int compute_f32;         /* torch_dtype/dtype "float32": the model computes in fp32 (numerics
                              * LT_NUMERICS_AUTO -> EXACT); "bfloat16" -> REFERENCE */

    /* MTP / DSpark (spec 4.6, 4.7) */
    int n_mtp;               /* stages mtp.0..n_mtp-1: num_nextn_predict_layers, or the number of
                              * trailing compress_ratios entries when larger (0731) */
    int dspark_block_size,   /* 0: the stages are the April MTP, not DSpark drafts */
         dspark_noise_token_id, dspark_markov_rank;
    int dspark_n_routed_experts, dspark_n_experts_per_tok;
    int dspark_target_layer_ids[8];
    int n_dspark_target_layers;

    /* V4.1 sharing (CED/CSA2) */
    int kv_source_layer_ids[LT_MAX_LAYERS];
    int n_kv_source_layers;
    int index_source_layer_ids[LT_MAX_LAYERS];
    int n_index_source_layers;
    int candidate_source_layer_id;  /* -1 if none */
    int candidate_topk_blocks, candidate_block_size;

    /* V4.1 Engram */
    int engram_layer_ids[16];
    int n_engram_layers;
    int64_t engram_num_embeddings[16];
    int engram_max_ngram_size, engram_n_heads, engram_head_dim, engram_pad_token_id;
    int64_t engram_vocab_size, engram_compressed_vocab_size;

    /* vision (V4.1) */
    int has_vision;
    int vision_layers, vision_dim, vision_heads, vision_inter, vision_patch, vision_downsample;

    /* tokens */
    int bos_token_id, eos_token_id, pad_token_id, image_token_id;
} lt_config;

/* Reads dir/config.json. Every error names the field and the allowed range. */
lt_status lt_config_load(lt_config *c, const char *dir, lt_error *err);
/* Parses config JSON text (path is only used in messages). */
lt_status lt_config_parse(lt_config *c, const char *json_text, const char *path, lt_error *err);

/* Layer kind by compress ratio: 0 sliding only; V4: 4 CSA, 128 HCA; V4.1: 2, 1. */
static inline int lt_config_ratio(const lt_config *c, int layer) { return c->compress_ratios[layer]; }

/* V4 CSA (spec 4.3): the reference keys the overlapping pool and the indexer
 * on ratio 4 exactly; every other ratio > 0 is HCA. */
static inline int lt_config_is_csa(const lt_config *c, int layer) {
    return c->arch == LT_ARCH_V4 && c->compress_ratios[layer] == 4;
}

/* The layer whose compressed KV `layer` attends: itself for V4 and for V4.1
 * KV sources, the group's source for V4.1 reuse layers (spec 5.1); -1 when
 * the layer is sliding-only. */
int lt_config_kv_source(const lt_config *c, int layer);

/* The layer whose indexer picks `layer`'s entries: itself for V4 CSA and V4.1
 * index sources (Full or Reindex), the latest index source for V4.1 reuse
 * layers; -1 when the layer has no indexer (V4 HCA, sliding-only). */
int lt_config_index_source(const lt_config *c, int layer);

#endif
