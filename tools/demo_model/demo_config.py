"""The demo model's configuration: the official flat V4 config.json (what ships in
models/demo) and the equivalent HF DeepseekV4Config.

HF maps the legacy key compress_ratios only for the values 0/4/128, so the HF
config is given layer_types + compress_rates instead (the HCA ratio here is 16);
num_hash_layers becomes mlp_layer_types. See shared/docs/v4-architecture.md §8.
"""
import copy

import torch

SEQ_LEN = 256           # training context
CSA, HCA = 4, 16        # compress ratios: CSA must be 4 (overlapping pool + indexer); any other > 4 is HCA
# Trunk schedule: sliding-only first layer (like V4-Flash), then CSA/HCA alternating.
COMPRESS_RATIOS = [0, CSA, HCA, CSA, HCA]
NUM_HASH_LAYERS = 2
NUM_MTP = 1

OFFICIAL = {
    "architectures": ["DeepseekV4ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "expert_dtype": "fp4",
    "hc_eps": 1e-06,
    "hc_mult": 4,
    "hc_sinkhorn_iters": 20,
    "head_dim": 64,
    "hidden_act": "silu",
    "hidden_size": 256,
    "index_head_dim": 32,
    "index_n_heads": 4,
    "index_topk": 16,
    "initializer_range": 0.02,
    "max_position_embeddings": 1048576,
    "model_type": "deepseek_v4",
    "moe_intermediate_size": 128,
    "n_routed_experts": 8,
    "n_shared_experts": 1,
    "norm_topk_prob": True,
    "num_attention_heads": 4,
    "num_experts_per_tok": 2,
    "num_hidden_layers": len(COMPRESS_RATIOS),
    "num_hash_layers": NUM_HASH_LAYERS,
    "num_key_value_heads": 1,
    "num_nextn_predict_layers": NUM_MTP,
    "o_groups": 2,
    "o_lora_rank": 64,
    "q_lora_rank": 128,
    "qk_rope_head_dim": 16,
    "quantization_config": {
        "activation_scheme": "dynamic",
        "fmt": "e4m3",
        "quant_method": "fp8",
        "scale_fmt": "ue8m0",
        "weight_block_size": [64, 64],
    },
    "rms_norm_eps": 1e-06,
    "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 16,
                     "original_max_position_embeddings": 65536, "type": "yarn"},
    "rope_theta": 10000,
    "routed_scaling_factor": 1.5,
    "scoring_func": "sqrtsoftplus",
    "sliding_window": 32,
    "swiglu_limit": 10.0,
    "tie_word_embeddings": False,
    "topk_method": "noaux_tc",
    "torch_dtype": "bfloat16",
    "transformers_version": "5.24.0",
    "use_cache": True,
    "vocab_size": 4096,
    "compress_rope_theta": 160000,
    "compress_ratios": COMPRESS_RATIOS + [0] * NUM_MTP,
}


def official_config(**over):
    c = copy.deepcopy(OFFICIAL)
    c.update(over)
    return c


LAYER_TYPE = {0: "sliding_attention", CSA: "compressed_sparse_attention", HCA: "heavily_compressed_attention"}


def hf_config(c, mtp=False):
    """DeepseekV4Config (float32, eager attention, eager experts) for official config c.
    mtp=True gives the one-layer config of the MTP block (sliding, score-routed)."""
    from transformers import DeepseekV4Config

    n = c["num_hidden_layers"]
    ratios = c["compress_ratios"][:n]
    layer_types = [LAYER_TYPE[r] for r in ratios]
    mlp = ["hash_moe" if i < c["num_hash_layers"] else "moe" for i in range(n)]
    if mtp:
        n, layer_types, mlp = 1, [LAYER_TYPE[c["compress_ratios"][c["num_hidden_layers"]]]], ["moe"]
    rs = c["rope_scaling"]
    keep = ["vocab_size", "hidden_size", "moe_intermediate_size", "num_attention_heads", "num_key_value_heads",
            "head_dim", "q_lora_rank", "num_experts_per_tok", "n_routed_experts", "n_shared_experts",
            "scoring_func", "norm_topk_prob", "routed_scaling_factor", "max_position_embeddings", "rope_theta",
            "compress_rope_theta", "hc_mult", "hc_sinkhorn_iters", "hc_eps", "swiglu_limit", "sliding_window",
            "o_groups", "o_lora_rank", "index_n_heads", "index_head_dim", "index_topk", "rms_norm_eps",
            "bos_token_id", "eos_token_id", "tie_word_embeddings", "initializer_range"]
    kw = {k: c[k] for k in keep}
    cfg = DeepseekV4Config(
        **kw,
        num_hidden_layers=n,
        layer_types=layer_types,
        mlp_layer_types=mlp,
        compress_rates={"compressed_sparse_attention": CSA, "heavily_compressed_attention": HCA},
        partial_rotary_factor=c["qk_rope_head_dim"] / c["head_dim"],
        rope_parameters={"rope_type": "yarn", "factor": rs["factor"],
                         "original_max_position_embeddings": rs["original_max_position_embeddings"],
                         "beta_fast": rs["beta_fast"], "beta_slow": rs["beta_slow"]},
        num_nextn_predict_layers=0,
        attention_dropout=0.0,
    )
    cfg._attn_implementation = "eager"
    cfg._experts_implementation = "eager"
    cfg.torch_dtype = torch.float32
    return cfg
