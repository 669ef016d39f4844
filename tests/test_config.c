/* Tests of src/config.c: the real V4-Flash, V4-Pro and V4.1-Flash configs
 * (../shared beside the clone), spec defaults, HF tiny-config keys, and one
 * clear error per kind of mistake. */
#include "test.h"

#include "config.h"
#include "util.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define FLASH_DIR "../shared/assets/deepseek-v4/v4-flash"
#define PRO_CONFIG "../shared/docs/configs/DeepSeek-V4-Pro.config.json"
#define V41_CONFIG "../shared/docs/configs/DeepSeek-V4.1-Flash.config.reconstructed.json"

static lt_status parse_file(lt_config *c, const char *path, lt_error *err) {
    char *text;
    lt_status st = lt_read_file(path, &text, NULL, err);
    if (st != LT_OK) return st;
    st = lt_config_parse(c, text, "config.json", err);
    free(text);
    return st;
}

/* Parses the V4-Flash config with one key replaced (value NULL removes it);
 * scope "text_config" edits the V4.1 config's text model instead. */
static lt_status parse_edited(lt_config *c, const char *scope, const char *key, json_t *value, lt_error *err) {
    const char *path = scope ? V41_CONFIG : FLASH_DIR "/config.json";
    json_t *root = json_load_file(path, 0, NULL);
    json_t *obj = scope ? json_object_get(root, scope) : root;
    if (value) json_object_set_new(obj, key, value);
    else json_object_del(obj, key);
    char *text = json_dumps(root, 0);
    lt_status st = lt_config_parse(c, text, "config.json", err);
    free(text);
    json_decref(root);
    return st;
}

/* Expects a failure whose message contains want. */
static void expect_error(lt_status st, lt_status want_st, const lt_error *err, const char *want) {
    CHECKF(st == want_st, "status %s, expected %s (%s)", lt_status_name(st), lt_status_name(want_st), err->msg);
    CHECKF(strstr(err->msg, want) != NULL, "message \"%s\" lacks \"%s\"", err->msg, want);
}

LT_TEST(config, v4_flash_official) {
    lt_config c;
    lt_error err;
    lt_status st = lt_config_load(&c, FLASH_DIR, &err);
    CHECKF(st == LT_OK, "%s", err.msg);
    CHECK(c.arch == LT_ARCH_V4);
    CHECK(c.n_layers == 43 && c.dim == 4096 && c.vocab_size == 129280);
    CHECK(c.n_heads == 64 && c.head_dim == 512 && c.rope_dim == 64 && c.q_lora_rank == 1024);
    CHECK(c.o_groups == 8 && c.o_lora_rank == 1024 && c.sliding_window == 128);
    CHECK(c.index_n_heads == 64 && c.index_head_dim == 128 && c.index_topk == 512);
    CHECK(c.n_routed_experts == 256 && c.n_experts_per_tok == 6 && c.n_shared_experts == 1 && c.moe_inter == 2048);
    CHECK(c.n_hash_layers == 3 && c.routed_scaling_factor == 1.5 && c.swiglu_limit == 10.0);
    CHECK(c.hc_mult == 4 && c.hc_sinkhorn_iters == 20 && c.hc_eps == 1e-6 && c.rms_norm_eps == 1e-6);
    CHECK(c.weight_fp8 && c.block_r == 128 && c.block_c == 128 && c.expert_fp4 && !c.dtype_f32);
    CHECK(c.yarn && c.yarn_factor == 16 && c.yarn_orig_max_pos == 65536 && c.yarn_beta_fast == 32 && c.yarn_beta_slow == 1);
    CHECK(c.rope_theta == 10000 && c.compress_rope_theta == 160000);
    CHECK(c.n_compress_ratios == 44 && c.n_mtp == 1 && c.dspark_block_size == 0);
    CHECK(c.compress_ratios[0] == 0 && c.compress_ratios[2] == 4 && c.compress_ratios[3] == 128 && c.compress_ratios[43] == 0);
    CHECK(lt_config_is_csa(&c, 2) && !lt_config_is_csa(&c, 3) && !lt_config_is_csa(&c, 0));
    CHECK(lt_config_kv_source(&c, 3) == 3 && lt_config_index_source(&c, 3) == -1 && lt_config_index_source(&c, 4) == 4);
    CHECK(lt_config_kv_source(&c, 1) == -1 && !c.has_vision && c.bos_token_id == 0 && c.eos_token_id == 1);
}

LT_TEST(config, v4_pro) {
    lt_config c;
    lt_error err;
    lt_status st = parse_file(&c, PRO_CONFIG, &err);
    CHECKF(st == LT_OK, "%s", err.msg);
    CHECK(c.n_layers == 61 && c.dim == 7168 && c.n_heads == 128 && c.q_lora_rank == 1536 && c.o_groups == 16);
    CHECK(c.index_topk == 1024 && c.n_routed_experts == 384 && c.moe_inter == 3072 && c.routed_scaling_factor == 2.5);
    CHECK(c.compress_ratios[0] == 128 && c.compress_ratios[60] == 4 && c.n_mtp == 1);
}

LT_TEST(config, v41_flash_nested) {
    lt_config c;
    lt_error err;
    lt_status st = parse_file(&c, V41_CONFIG, &err);
    CHECKF(st == LT_OK, "%s", err.msg);
    CHECK(c.arch == LT_ARCH_V41 && !strcmp(c.model_type, "deepseek_v41"));
    CHECK(c.n_layers == 40 && c.dim == 5120 && c.q_lora_rank == 1280 && c.moe_inter == 2304 && c.n_routed_experts == 384);
    CHECK(c.rms_norm_eps == 1e-20 && c.index_n_heads == 32 && c.n_hash_layers == 0 && c.gate_temp == 1.0);
    CHECK(c.weight_fp8 && c.block_r == 32 && c.block_c == 32 && c.expert_fp4);
    CHECK(c.yarn && c.yarn_factor == 16);
    CHECK(c.n_mtp == 3 && c.dspark_block_size == 5 && c.dspark_noise_token_id == 128799 && c.dspark_markov_rank == 256);
    CHECK(c.dspark_n_routed_experts == 128 && c.dspark_n_experts_per_tok == 3 && c.n_dspark_target_layers == 3);
    CHECK(c.dspark_target_layer_ids[0] == 37 && c.dspark_target_layer_ids[2] == 39);
    CHECK(c.n_kv_source_layers == 4 && c.n_index_source_layers == 8 && c.candidate_source_layer_id == 20);
    CHECK(c.candidate_topk_blocks == 2048 && c.candidate_block_size == 8);
    CHECK(c.n_engram_layers == 2 && c.engram_layer_ids[1] == 14 && c.engram_num_embeddings[0] == 384006168);
    CHECK(c.engram_max_ngram_size == 4 && c.engram_n_heads == 8 && c.engram_head_dim == 256 && c.engram_compressed_vocab_size == 99092);
    CHECK(c.has_vision && c.vision_layers == 32 && c.vision_dim == 1024 && c.vision_inter == 2816 && c.vision_patch == 14);
    CHECK(c.pad_token_id == 2 && c.image_token_id == 129264);
    /* spec 5.1 groups: 2-7 on 2, 8-13 on 8, 14-19 on 14, 20-39 on 20; reindex at 24, 28, 32, 36 */
    CHECK(lt_config_kv_source(&c, 0) == -1 && lt_config_index_source(&c, 1) == -1);
    CHECK(lt_config_kv_source(&c, 7) == 2 && lt_config_index_source(&c, 7) == 2 && lt_config_kv_source(&c, 8) == 8);
    CHECK(lt_config_kv_source(&c, 24) == 20 && lt_config_index_source(&c, 24) == 24 && lt_config_index_source(&c, 27) == 24);
    CHECK(lt_config_kv_source(&c, 39) == 20 && lt_config_index_source(&c, 39) == 36 && !lt_config_is_csa(&c, 2));
}

/* A config with only the keys that have no default gets the spec's values;
 * no quantization_config means an unquantised checkpoint, and the 3 hash
 * layers shrink to the model's depth. */
LT_TEST(config, defaults_fill_absent_keys) {
    const char *text = "{\"model_type\": \"deepseek_v4\", \"num_hidden_layers\": 2, \"hidden_size\": 256,"
                       " \"num_attention_heads\": 4, \"q_lora_rank\": 64, \"o_groups\": 2,"
                       " \"moe_intermediate_size\": 128, \"n_routed_experts\": 8, \"compress_ratios\": [0, 4]}";
    lt_config c;
    lt_error err;
    lt_status st = lt_config_parse(&c, text, "config.json", &err);
    CHECKF(st == LT_OK, "%s", err.msg);
    CHECK(c.vocab_size == 129280 && c.head_dim == 512 && c.rope_dim == 64 && c.o_lora_rank == 1024);
    CHECK(c.index_topk == 512 && c.n_experts_per_tok == 6 && c.n_hash_layers == 2 && c.hc_mult == 4);
    CHECK(c.rms_norm_eps == 1e-6 && c.n_mtp == 1 && c.compress_ratios[2] == 0);
    CHECK(!c.weight_fp8 && !c.expert_fp4 && !c.yarn && c.block_r == 128);
}

/* HF tiny test configs (spec 8): layer_types + compress_rates, a rotary
 * fraction, rope_parameters and mlp_layer_types stand in for the official keys. */
LT_TEST(config, hf_tiny_keys) {
    const char *text =
        "{\"model_type\": \"deepseek_v4\", \"num_hidden_layers\": 3, \"hidden_size\": 64, \"num_attention_heads\": 4,"
        " \"head_dim\": 32, \"partial_rotary_factor\": 0.25, \"q_lora_rank\": 32, \"o_groups\": 2, \"o_lora_rank\": 16,"
        " \"moe_intermediate_size\": 64, \"n_routed_experts\": 4, \"num_experts_per_tok\": 2, \"vocab_size\": 100,"
        " \"layer_types\": [\"sliding_attention\", \"heavily_compressed_attention\", \"compressed_sparse_attention\"],"
        " \"compress_rates\": {\"compressed_sparse_attention\": 4, \"heavily_compressed_attention\": 8},"
        " \"mlp_layer_types\": [\"hash_moe\", \"moe\", \"moe\"], \"num_nextn_predict_layers\": 0,"
        " \"index_head_dim\": 16, \"torch_dtype\": \"float32\","
        " \"rope_parameters\": {\"rope_type\": \"yarn\", \"factor\": 4, \"original_max_position_embeddings\": 16,"
        " \"beta_fast\": 32, \"beta_slow\": 1, \"rope_theta\": 5000}}";
    lt_config c;
    lt_error err;
    lt_status st = lt_config_parse(&c, text, "config.json", &err);
    CHECKF(st == LT_OK, "%s", err.msg);
    CHECK(c.rope_dim == 8 && c.n_compress_ratios == 3 && c.n_mtp == 0);
    CHECK(c.compress_ratios[0] == 0 && c.compress_ratios[1] == 8 && c.compress_ratios[2] == 4);
    CHECK(c.n_hash_layers == 1 && c.dtype_f32 && c.yarn && c.yarn_factor == 4 && c.yarn_orig_max_pos == 16);
    CHECK(c.rope_theta == 5000);
}

LT_TEST(config, error_negative_size) {
    lt_config c;
    lt_error err;
    lt_status st = parse_edited(&c, NULL, "hidden_size", json_integer(-3), &err);
    expect_error(st, LT_ERR_CONFIG, &err, "config.json: hidden_size is -3 but must be > 0");
}

LT_TEST(config, error_missing_required) {
    lt_config c;
    lt_error err;
    lt_status st = parse_edited(&c, NULL, "n_routed_experts", NULL, &err);
    expect_error(st, LT_ERR_CONFIG, &err, "config.json: n_routed_experts is missing");
    st = parse_edited(&c, "text_config", "num_hidden_layers", NULL, &err);
    expect_error(st, LT_ERR_CONFIG, &err, "text_config.num_hidden_layers is missing");
    st = parse_edited(&c, NULL, "compress_ratios", NULL, &err);
    expect_error(st, LT_ERR_CONFIG, &err, "compress_ratios is missing");
}

LT_TEST(config, error_wrong_type) {
    lt_config c;
    lt_error err;
    lt_status st = parse_edited(&c, NULL, "hidden_size", json_string("4096"), &err);
    expect_error(st, LT_ERR_CONFIG, &err, "hidden_size must be an integer, got a string");
    st = parse_edited(&c, NULL, "rope_theta", json_string("1e4"), &err);
    expect_error(st, LT_ERR_CONFIG, &err, "rope_theta must be a number, got a string");
    st = parse_edited(&c, NULL, "compress_ratios", json_pack("[i,s]", 0, "x"), &err);
    expect_error(st, LT_ERR_CONFIG, &err, "compress_ratios[1] must be an integer");
    st = parse_edited(&c, NULL, "quantization_config", json_pack("{s:[i]}", "weight_block_size", 128), &err);
    expect_error(st, LT_ERR_CONFIG, &err, "weight_block_size has 1 entries but must be [rows, cols]");
    st = parse_edited(&c, NULL, "quantization_config", json_pack("{s:[i,i]}", "weight_block_size", 128, 0), &err);
    expect_error(st, LT_ERR_CONFIG, &err, "quantization_config.weight_block_size[1] is 0 but must be > 0");
}

LT_TEST(config, error_malformed_json) {
    lt_config c;
    lt_error err;
    lt_status st = lt_config_parse(&c, "{\"hidden_size\": 4096,,}", "config.json", &err);
    expect_error(st, LT_ERR_FORMAT, &err, "config.json: invalid JSON at line 1");
    st = lt_config_parse(&c, "[1, 2]", "config.json", &err);
    expect_error(st, LT_ERR_FORMAT, &err, "top level must be a JSON object");
    st = lt_config_load(&c, "/nonexistent-lantern-dir", &err);
    expect_error(st, LT_ERR_IO, &err, "/nonexistent-lantern-dir/config.json");
}

LT_TEST(config, error_cross_field) {
    lt_config c;
    lt_error err;
    lt_status st = parse_edited(&c, NULL, "qk_rope_head_dim", json_integer(512), &err);
    expect_error(st, LT_ERR_CONFIG, &err, "qk_rope_head_dim is 512 but must be even and < head_dim 512");
    st = parse_edited(&c, NULL, "qk_rope_head_dim", json_integer(63), &err);
    expect_error(st, LT_ERR_CONFIG, &err, "must be even");
    st = parse_edited(&c, NULL, "o_groups", json_integer(7), &err);
    expect_error(st, LT_ERR_CONFIG, &err, "num_attention_heads 64 is not a multiple of o_groups 7");
    st = parse_edited(&c, NULL, "num_experts_per_tok", json_integer(300), &err);
    expect_error(st, LT_ERR_CONFIG, &err, "num_experts_per_tok is 300 but must be <= n_routed_experts 256");
    st = parse_edited(&c, NULL, "num_hash_layers", json_integer(44), &err);
    expect_error(st, LT_ERR_CONFIG, &err, "num_hash_layers is 44 but must be <= num_hidden_layers 43");
    st = parse_edited(&c, NULL, "compress_ratios", json_pack("[i,i,i]", 0, 0, 4), &err);
    expect_error(st, LT_ERR_CONFIG, &err, "compress_ratios has 3 entries but num_hidden_layers is 43");
    st = parse_edited(&c, NULL, "num_key_value_heads", json_integer(8), &err);
    expect_error(st, LT_ERR_UNSUPPORTED, &err, "num_key_value_heads is 8 but must be 1");
    st = parse_edited(&c, NULL, "model_type", json_string("llama"), &err);
    expect_error(st, LT_ERR_UNSUPPORTED, &err, "model_type is \"llama\" but must be deepseek_v4 or deepseek_v41");
    st = parse_edited(&c, NULL, "eos_token_id", json_integer(129280), &err);
    expect_error(st, LT_ERR_CONFIG, &err, "eos_token_id is 129280 but must be in [0, 129279]");
}

LT_TEST(config, error_schedule) {
    lt_config c;
    lt_error err;
    json_t *r = json_load_file(FLASH_DIR "/config.json", 0, NULL);
    json_t *ratios = json_deep_copy(json_object_get(r, "compress_ratios"));
    json_decref(r);
    json_array_set_new(ratios, 5, json_integer(2));
    lt_status st = parse_edited(&c, NULL, "compress_ratios", ratios, &err);
    expect_error(st, LT_ERR_CONFIG, &err, "compress_ratios[5] is 2 but V4 layers use 0 (sliding), 4 (CSA) or more (HCA)");
    st = parse_edited(&c, "text_config", "kv_source_layer_ids", json_pack("[i,i,i]", 2, 8, 14), &err);
    expect_error(st, LT_ERR_CONFIG, &err, "layer 20 has compress ratio 1 but no KV source with that ratio");
    st = parse_edited(&c, "text_config", "index_source_layer_ids", json_pack("[i,i,i,i]", 2, 8, 20, 24), &err);
    expect_error(st, LT_ERR_CONFIG, &err, "layer 14 reads KV source 14 but no index source of that group precedes it");
    st = parse_edited(&c, "text_config", "candidate_source_layer_id", json_integer(21), &err);
    expect_error(st, LT_ERR_CONFIG, &err, "candidate_source_layer_id is 21 but must be one of index_source_layer_ids");
    st = parse_edited(&c, "text_config", "engram_num_embeddings", json_pack("[i]", 5), &err);
    expect_error(st, LT_ERR_CONFIG, &err, "engram_num_embeddings has 1 entries but engram_layer_ids has 2");
    st = parse_edited(&c, "text_config", "kv_source_layer_ids", json_pack("[i,i,i,i,i]", 0, 2, 8, 14, 20), &err);
    expect_error(st, LT_ERR_CONFIG, &err, "kv_source_layer_ids[0] is layer 0, a sliding-only layer");
}

LT_TEST(config, error_activation_block_too_wide) {
    lt_config c;
    lt_error err;
    json_t *q = json_pack("{s:s, s:s, s:s, s:[i,i]}", "quant_method", "fp8", "fmt", "e4m3", "scale_fmt", "ue8m0",
                          "weight_block_size", 128, 512);
    lt_status st = parse_edited(&c, NULL, "quantization_config", q, &err);
    expect_error(st, LT_ERR_UNSUPPORTED, &err, "weight_block_size[1] is 512 but at most 256");
}
