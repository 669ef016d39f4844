/* Tests of src/inventory.c: the published tensor counts and bytes of the real
 * configs reproduced from the config alone, spot shapes from spec 4.9 / 5,
 * and the check against small synthetic checkpoints. */
#include "test.h"

#include "ckpt_fixture.h"
#include "config.h"
#include "inventory.h"
#include "st_build.h"
#include "util.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define FLASH_DIR "../shared/assets/deepseek-v4/v4-flash"
#define PRO_CONFIG "../shared/docs/configs/DeepSeek-V4-Pro.config.json"
#define V41_CONFIG "../shared/docs/configs/DeepSeek-V4.1-Flash.config.reconstructed.json"

/* A V4 model small enough to write whole: SWA, CSA and HCA layers, one hash
 * layer, one MTP stage, FP8 32x32 blocks and FP4 experts. */
const char test_tiny_v4_config[] =
    "{\"model_type\": \"deepseek_v4\", \"num_hidden_layers\": 3, \"hidden_size\": 64, \"num_attention_heads\": 4,"
    " \"head_dim\": 32, \"qk_rope_head_dim\": 8, \"q_lora_rank\": 32, \"o_groups\": 2, \"o_lora_rank\": 16,"
    " \"moe_intermediate_size\": 64, \"n_routed_experts\": 4, \"num_experts_per_tok\": 2, \"vocab_size\": 64,"
    " \"num_hash_layers\": 1, \"index_n_heads\": 2, \"index_head_dim\": 16, \"index_topk\": 4, \"hc_mult\": 2,"
    " \"sliding_window\": 8, \"compress_ratios\": [0, 4, 8, 0], \"num_nextn_predict_layers\": 1,"
    " \"expert_dtype\": \"fp4\", \"quantization_config\": {\"quant_method\": \"fp8\", \"weight_block_size\": [32, 32]}}";

static lt_status load_config_file(lt_config *c, const char *path, lt_error *err) {
    char *text;
    lt_status st = lt_read_file(path, &text, NULL, err);
    if (st != LT_OK) return st;
    st = lt_config_parse(c, text, path, err);
    free(text);
    return st;
}

static const lt_inv_tensor *find(const lt_inventory *inv, const char *name) {
    for (int64_t i = 0; i < inv->n_tensors; i++)
        if (!strcmp(inv->tensors[i].name, name)) return &inv->tensors[i];
    return NULL;
}

/* Checks one tensor's dtype and shape (d1 == 0 for 1-D). */
static void expect(const lt_inventory *inv, const char *name, lt_dtype dt, int64_t d0, int64_t d1) {
    const lt_inv_tensor *t = find(inv, name);
    CHECKF(t != NULL, "%s is not in the inventory", name);
    if (!t) return;
    CHECKF(t->dtype == dt, "%s: dtype %s, expected %s", name, lt_dtype_name(t->dtype), lt_dtype_name(dt));
    CHECKF(t->shape[0] == d0 && t->ndim == (d1 ? 2 : 1) && (!d1 || t->shape[1] == d1), "%s: shape [%lld,%lld] ndim %d, expected [%lld,%lld]",
           name, (long long)t->shape[0], (long long)t->shape[1], t->ndim, (long long)d0, (long long)d1);
}

static void build(lt_inventory *inv, lt_config *c, lt_inventory_stats *s) {
    lt_error err;
    lt_status st = lt_inventory_build(inv, c, &err);
    CHECKF(st == LT_OK, "%s", err.msg);
    lt_inventory_summarize(inv, c, s);
}

/* The acceptance test: the official index holds 69,187 tensors totalling
 * 159,609,485,896 bytes; the model card says 284B params (MTP excluded), 13B active. */
LT_TEST(inventory, v4_flash_published_counts) {
    lt_config c;
    lt_error err;
    lt_inventory inv;
    lt_inventory_stats s;
    CHECKF(lt_config_load(&c, FLASH_DIR, &err) == LT_OK, "%s", err.msg);
    build(&inv, &c, &s);
    CHECKF(s.n_tensors == 69187, "%lld tensors", (long long)s.n_tensors);
    CHECKF(s.bytes == 159609485896ull, "%llu bytes", (unsigned long long)s.bytes);
    uint64_t backbone = s.params_part[LT_PART_DENSE] + s.params_part[LT_PART_EXPERT] + s.params_part[LT_PART_EMBED];
    CHECKF(backbone > 284.0e9 && backbone < 284.5e9, "backbone %llu params", (unsigned long long)backbone);
    CHECKF(s.active_params > 13.0e9 && s.active_params < 13.5e9, "active %llu", (unsigned long long)s.active_params);
    /* papers.md 5.1 estimates 10.9-11.2 GB read per token; colibri models 11.22 */
    CHECKF(s.bytes_per_token > 11.1e9 && s.bytes_per_token < 11.3e9, "per token %llu", (unsigned long long)s.bytes_per_token);
    CHECK(s.n_dtype[LT_DT_I64] == 3 && s.params_part[LT_PART_MTP] > 6.5e9 && s.params_part[LT_PART_MTP] < 6.7e9);
    lt_inventory_free(&inv);
}

LT_TEST(inventory, v4_flash_shapes) {
    lt_config c;
    lt_error err;
    lt_inventory inv;
    lt_inventory_stats s;
    CHECKF(lt_config_load(&c, FLASH_DIR, &err) == LT_OK, "%s", err.msg);
    build(&inv, &c, &s);
    expect(&inv, "embed.weight", LT_DT_BF16, 129280, 4096);
    expect(&inv, "hc_head_fn", LT_DT_F32, 4, 16384);
    expect(&inv, "hc_head_scale", LT_DT_F32, 1, 0);
    expect(&inv, "layers.0.attn.wq_b.scale", LT_DT_F8_E8M0, 256, 8);
    expect(&inv, "layers.0.attn.wo_a.weight", LT_DT_F8_E4M3, 8192, 4096);
    expect(&inv, "layers.0.attn.wo_b.scale", LT_DT_F8_E8M0, 32, 64);
    expect(&inv, "layers.0.hc_attn_fn", LT_DT_F32, 24, 16384);
    expect(&inv, "layers.2.ffn.gate.tid2eid", LT_DT_I64, 129280, 6);
    expect(&inv, "layers.3.ffn.gate.bias", LT_DT_F32, 256, 0);
    expect(&inv, "layers.2.attn.compressor.ape", LT_DT_F32, 4, 1024);
    expect(&inv, "layers.3.attn.compressor.wgate.weight", LT_DT_BF16, 512, 4096);
    expect(&inv, "layers.3.attn.compressor.ape", LT_DT_F32, 128, 512);
    expect(&inv, "layers.42.attn.indexer.wq_b.scale", LT_DT_F8_E8M0, 64, 8);
    expect(&inv, "layers.42.attn.indexer.compressor.ape", LT_DT_F32, 4, 256);
    expect(&inv, "layers.42.attn.indexer.compressor.norm.weight", LT_DT_BF16, 128, 0);
    expect(&inv, "layers.5.ffn.shared_experts.w2.scale", LT_DT_F8_E8M0, 32, 16);
    expect(&inv, "layers.5.ffn.experts.255.w1.scale", LT_DT_F8_E8M0, 2048, 128);
    expect(&inv, "layers.5.ffn.experts.255.w2.weight", LT_DT_I8, 4096, 1024);
    expect(&inv, "mtp.0.e_proj.scale", LT_DT_F8_E8M0, 32, 32);
    expect(&inv, "mtp.0.hnorm.weight", LT_DT_BF16, 4096, 0);
    expect(&inv, "mtp.0.hc_head_base", LT_DT_F32, 4, 0);
    expect(&inv, "mtp.0.ffn.gate.bias", LT_DT_F32, 256, 0);
    CHECK(!find(&inv, "layers.0.attn.compressor.wkv.weight") && !find(&inv, "layers.3.attn.indexer.wq_b.weight"));
    CHECK(!find(&inv, "layers.3.ffn.gate.tid2eid") && !find(&inv, "mtp.0.attn.compressor.norm.weight"));
    lt_inventory_free(&inv);
}

/* 145,116 tensors is reported for the real V4-Pro checkpoint; ~1.6T / 49B. */
LT_TEST(inventory, v4_pro_reported_counts) {
    lt_config c;
    lt_error err;
    lt_inventory inv;
    lt_inventory_stats s;
    CHECKF(load_config_file(&c, PRO_CONFIG, &err) == LT_OK, "%s", err.msg);
    build(&inv, &c, &s);
    CHECKF(s.n_tensors == 145116, "%lld tensors", (long long)s.n_tensors);
    CHECKF(s.bytes == 864704792696ull, "%llu bytes", (unsigned long long)s.bytes);
    CHECKF(s.params > 1.59e12 && s.params < 1.61e12, "%llu params", (unsigned long long)s.params);
    CHECKF(s.active_params > 48.5e9 && s.active_params < 49.5e9, "active %llu", (unsigned long long)s.active_params);
    expect(&inv, "layers.0.attn.wo_a.weight", LT_DT_F8_E4M3, 16384, 4096);
    expect(&inv, "layers.0.ffn.experts.383.w1.weight", LT_DT_I8, 3072, 3584);
    expect(&inv, "layers.0.ffn.experts.383.w2.scale", LT_DT_F8_E8M0, 7168, 96);
    expect(&inv, "layers.0.attn.compressor.ape", LT_DT_F32, 128, 512);
    lt_inventory_free(&inv);
}

/* 96,085 tensors is reported for V4.1-Flash, S6: 552B backbone + 197B Engram,
 * 475.2 GiB; 266 vision tensors hold 970,536,960 bytes. */
LT_TEST(inventory, v41_flash_reported_counts) {
    lt_config c;
    lt_error err;
    lt_inventory inv;
    lt_inventory_stats s;
    CHECKF(load_config_file(&c, V41_CONFIG, &err) == LT_OK, "%s", err.msg);
    build(&inv, &c, &s);
    CHECKF(s.n_tensors == 96085, "%lld tensors", (long long)s.n_tensors);
    CHECKF(s.bytes == 510286023000ull, "%llu bytes", (unsigned long long)s.bytes);
    uint64_t backbone = s.params_part[LT_PART_DENSE] + s.params_part[LT_PART_EXPERT] + s.params_part[LT_PART_EMBED];
    CHECKF(backbone > 551.5e9 && backbone < 552.5e9, "backbone %llu", (unsigned long long)backbone);
    CHECKF(s.params_part[LT_PART_ENGRAM] == 384006168ull * 256 + 384016682ull * 256, "engram %llu",
           (unsigned long long)s.params_part[LT_PART_ENGRAM]);
    CHECKF(s.bytes_part[LT_PART_VISION] == 970536960ull, "vision %llu bytes", (unsigned long long)s.bytes_part[LT_PART_VISION]);
    CHECKF(s.active_params > 15.5e9 && s.active_params < 16.5e9, "active %llu", (unsigned long long)s.active_params);
    expect(&inv, "layers.1.engram.embed.weight", LT_DT_F8_E4M3, 384006168, 256);
    expect(&inv, "layers.14.engram.embed.scale", LT_DT_F8_E8M0, 384016682, 8);
    expect(&inv, "layers.14.engram.wkv.scale", LT_DT_F8_E8M0, 800, 192);
    expect(&inv, "layers.1.engram.q_weight", LT_DT_BF16, 4, 5120);
    expect(&inv, "layers.0.ffn.shared_experts.w1.scale", LT_DT_F8_E8M0, 72, 160);
    expect(&inv, "layers.0.ffn.experts.383.w2.scale", LT_DT_F8_E8M0, 5120, 72);
    expect(&inv, "layers.0.ffn.gate.bias_vl", LT_DT_F32, 384, 0);
    expect(&inv, "layers.0.hc_ffn_fn", LT_DT_F32, 24, 20480);
    expect(&inv, "layers.2.attn.compressor.wgate.weight", LT_DT_BF16, 512, 5120);
    expect(&inv, "layers.2.attn.indexer.wk.weight", LT_DT_BF16, 128, 512);
    expect(&inv, "layers.20.attn.indexer.k_norm.weight", LT_DT_BF16, 128, 0);
    expect(&inv, "layers.24.attn.indexer.wq_b.weight", LT_DT_F8_E4M3, 4096, 1280);
    expect(&inv, "layers.24.attn.indexer.weights_proj.weight", LT_DT_BF16, 32, 5120);
    expect(&inv, "mtp.0.main_proj.scale", LT_DT_F8_E8M0, 160, 480);
    expect(&inv, "mtp.1.ffn.experts.127.w3.weight", LT_DT_I8, 2304, 2560);
    expect(&inv, "mtp.2.markov_head.embed.weight", LT_DT_BF16, 129280, 256);
    expect(&inv, "mtp.2.confidence_head.proj.weight", LT_DT_BF16, 1, 5376);
    expect(&inv, "vision.blocks.31.mlp.w1.weight", LT_DT_BF16, 5632, 1024);
    expect(&inv, "aligner.w1.weight", LT_DT_BF16, 5120, 9216);
    expect(&inv, "vision.patch_embed.proj.weight", LT_DT_BF16, 1024, 588);
    CHECK(!find(&inv, "hc_head_fn") && !find(&inv, "layers.3.attn.compressor.wkv.weight"));
    CHECK(!find(&inv, "layers.20.attn.compressor.wgate.weight") && !find(&inv, "layers.24.attn.indexer.wk.weight"));
    CHECK(!find(&inv, "layers.25.attn.indexer.wq_b.weight") && !find(&inv, "mtp.0.markov_head.embed.weight"));
    CHECK(!find(&inv, "layers.0.ffn.gate.tid2eid") && !find(&inv, "layers.2.attn.compressor.ape"));
    lt_inventory_free(&inv);
}

/* V4-Flash-0731 is the Flash trunk with 3 DSpark stages (46 compress_ratios
 * entries): 72,317 tensors, 166,878,536,440 bytes per its serving constants. */
LT_TEST(inventory, v4_flash_0731_dspark) {
    json_t *root = json_load_file(FLASH_DIR "/config.json", 0, NULL);
    json_t *ratios = json_object_get(root, "compress_ratios");
    json_array_append_new(ratios, json_integer(0));
    json_array_append_new(ratios, json_integer(0));
    json_object_set_new(root, "dspark_block_size", json_integer(5));
    json_object_set_new(root, "dspark_noise_token_id", json_integer(128799));
    json_object_set_new(root, "dspark_target_layer_ids", json_pack("[i,i,i]", 40, 41, 42));
    json_object_set_new(root, "dspark_markov_rank", json_integer(256));
    char *text = json_dumps(root, 0);
    json_decref(root);
    lt_config c;
    lt_error err;
    lt_inventory inv;
    lt_inventory_stats s;
    CHECKF(lt_config_parse(&c, text, "config.json", &err) == LT_OK, "%s", err.msg);
    free(text);
    CHECK(c.n_mtp == 3 && c.dspark_n_routed_experts == 256 && c.dspark_n_experts_per_tok == 6);
    build(&inv, &c, &s);
    CHECKF(s.n_tensors == 72317, "%lld tensors", (long long)s.n_tensors);
    CHECKF(s.bytes == 166878536440ull, "%llu bytes", (unsigned long long)s.bytes);
    expect(&inv, "mtp.2.markov_head.markov_w2.weight", LT_DT_BF16, 129280, 256);
    expect(&inv, "mtp.2.hc_head_fn", LT_DT_F32, 4, 16384);
    expect(&inv, "mtp.0.main_proj.weight", LT_DT_F8_E4M3, 4096, 12288);
    CHECK(!find(&inv, "mtp.0.e_proj.weight") && !find(&inv, "mtp.1.norm.weight"));
    lt_inventory_free(&inv);
}

/* Without quantization_config every linear is stored in torch_dtype, with no scale. */
LT_TEST(inventory, unquantised_float32) {
    const char *text = "{\"model_type\": \"deepseek_v4\", \"num_hidden_layers\": 1, \"hidden_size\": 64,"
                       " \"num_attention_heads\": 4, \"head_dim\": 32, \"qk_rope_head_dim\": 8, \"q_lora_rank\": 32,"
                       " \"o_groups\": 2, \"moe_intermediate_size\": 64, \"n_routed_experts\": 4, \"num_experts_per_tok\": 2,"
                       " \"compress_ratios\": [0], \"num_nextn_predict_layers\": 0, \"torch_dtype\": \"float32\"}";
    lt_config c;
    lt_error err;
    lt_inventory inv;
    lt_inventory_stats s;
    CHECKF(lt_config_parse(&c, text, "config.json", &err) == LT_OK, "%s", err.msg);
    build(&inv, &c, &s);
    expect(&inv, "layers.0.attn.wq_a.weight", LT_DT_F32, 32, 64);
    expect(&inv, "layers.0.ffn.experts.3.w2.weight", LT_DT_F32, 64, 64);
    expect(&inv, "norm.weight", LT_DT_F32, 64, 0);
    CHECK(s.n_dtype[LT_DT_F8_E8M0] == 0 && s.n_dtype[LT_DT_BF16] == 0 && !find(&inv, "mtp.0.norm.weight"));
    lt_inventory_free(&inv);
}

/* ---- checks against files ------------------------------------------------------ */

/* Writes the inventory as one safetensors file (see ckpt_fixture.h). */
int test_write_checkpoint(const lt_inventory *inv, const char *path, const test_ckpt_edit *e) {
    st_build *b = st_build_new();
    for (int64_t i = 0; i < inv->n_tensors; i++) {
        const lt_inv_tensor *t = &inv->tensors[i];
        int64_t shape[2] = {t->shape[0], t->shape[1]};
        lt_dtype dt = t->dtype;
        if (e && e->drop && !strcmp(e->drop, t->name)) continue;
        if (e && e->reshape && !strcmp(e->reshape, t->name)) shape[0]++;
        if (e && e->retype && !strcmp(e->retype, t->name)) dt = dt == LT_DT_BF16 ? LT_DT_F32 : LT_DT_BF16;
        st_build_add_fill(b, t->name, dt, t->ndim, shape);
    }
    if (e && e->extra) st_build_add_fill(b, e->extra, LT_DT_F32, 1, (int64_t[]){4});
    int rc = st_build_write(b, path);
    st_build_free(b);
    return rc;
}

static void tiny_inventory(lt_config *c, lt_inventory *inv) {
    lt_error err;
    lt_inventory_stats s;
    CHECKF(lt_config_parse(c, test_tiny_v4_config, "config.json", &err) == LT_OK, "%s", err.msg);
    build(inv, c, &s);
}

/* Writes, opens and checks one edited checkpoint; returns the status. */
static lt_status check_edited(const lt_inventory *inv, const test_ckpt_edit *e, lt_inventory_report *rep, lt_error *err) {
    char path[512];
    snprintf(path, sizeof path, "%s/inventory-check.safetensors", lt_test_tmpdir());
    CHECK(test_write_checkpoint(inv, path, e) == 0);
    lt_store s;
    lt_status st = lt_store_open_file(&s, path, err);
    CHECKF(st == LT_OK, "%s", err->msg);
    if (st != LT_OK) return st;
    st = lt_inventory_check(inv, &s, rep, err);
    lt_store_close(&s);
    return st;
}

LT_TEST(inventory, tiny_checkpoint_valid) {
    lt_config c;
    lt_inventory inv;
    lt_inventory_report rep = {0};
    lt_error err;
    tiny_inventory(&c, &inv);
    expect(&inv, "layers.1.attn.indexer.compressor.ape", LT_DT_F32, 4, 32);
    expect(&inv, "layers.2.attn.compressor.ape", LT_DT_F32, 8, 32);
    expect(&inv, "layers.0.attn.wq_b.scale", LT_DT_F8_E8M0, 4, 1);
    expect(&inv, "layers.0.ffn.gate.tid2eid", LT_DT_I64, 64, 2);
    lt_status st = check_edited(&inv, NULL, &rep, &err);
    CHECKF(st == LT_OK, "%s", err.msg);
    CHECKF(rep.n_lines == 0, "%lld lines, first: %s", (long long)rep.n_lines, rep.n_lines ? rep.lines[0] : "");
    lt_inventory_report_free(&rep);
    lt_inventory_free(&inv);
}

LT_TEST(inventory, tiny_checkpoint_problems_named) {
    lt_config c;
    lt_inventory inv;
    lt_error err;
    tiny_inventory(&c, &inv);
    lt_status st = check_edited(&inv, &(test_ckpt_edit){.drop = "layers.1.ffn.gate.bias"}, NULL, &err);
    CHECKF(st == LT_ERR_INVENTORY && strstr(err.msg, "missing tensor layers.1.ffn.gate.bias (F32 [4])"), "%s", err.msg);
    st = check_edited(&inv, &(test_ckpt_edit){.reshape = "layers.2.attn.wkv.weight"}, NULL, &err);
    CHECKF(st == LT_ERR_INVENTORY && strstr(err.msg, "tensor layers.2.attn.wkv.weight has shape [33,64] but must be [32,64]"),
           "%s", err.msg);
    st = check_edited(&inv, &(test_ckpt_edit){.retype = "mtp.0.enorm.weight"}, NULL, &err);
    CHECKF(st == LT_ERR_INVENTORY && strstr(err.msg, "tensor mtp.0.enorm.weight has dtype F32 but must be BF16"), "%s", err.msg);

    /* every problem is listed, the first one is in the error with the count */
    lt_inventory_report rep = {0};
    test_ckpt_edit all = {.drop = "head.weight", .reshape = "layers.0.ffn.experts.3.w2.scale", .retype = "norm.weight",
                          .extra = "layers.0.attn.bogus"};
    st = check_edited(&inv, &all, &rep, &err);
    CHECKF(st == LT_ERR_INVENTORY && strstr(err.msg, "(and 2 more problems)"), "%s", err.msg);
    CHECKF(rep.n_problems == 3 && rep.n_warnings == 1 && rep.n_lines == 4, "%lld problems %lld warnings",
           (long long)rep.n_problems, (long long)rep.n_warnings);
    int saw_extra = 0;
    for (int64_t i = 0; i < rep.n_lines; i++) saw_extra |= strstr(rep.lines[i], "warning: unexpected tensor layers.0.attn.bogus") != NULL;
    CHECK(saw_extra);
    lt_inventory_report_free(&rep);

    /* an extra tensor alone is only a warning */
    st = check_edited(&inv, &(test_ckpt_edit){.extra = "mtp.0.bogus"}, &rep, &err);
    CHECKF(st == LT_OK && rep.n_warnings == 1 && rep.n_problems == 0, "%s", err.msg);
    lt_inventory_report_free(&rep);
    lt_inventory_free(&inv);
}

/* Writes an index naming every inventory tensor but `drop`, with total_size. */
static const char *write_index(const lt_inventory *inv, const char *drop, long long total) {
    json_t *wm = json_object();
    for (int64_t i = 0; i < inv->n_tensors; i++)
        if (!drop || strcmp(drop, inv->tensors[i].name)) json_object_set_new(wm, inv->tensors[i].name, json_string("model.safetensors"));
    json_t *root = json_pack("{s:{s:I}, s:o}", "metadata", "total_size", (json_int_t)total, "weight_map", wm);
    char *text = json_dumps(root, 0);
    const char *path = lt_test_write_temp("model.safetensors.index.json", text, strlen(text));
    free(text);
    json_decref(root);
    return path;
}

LT_TEST(inventory, index_names_and_total_size) {
    lt_config c;
    lt_inventory inv;
    lt_inventory_stats s;
    lt_error err;
    lt_inventory_report rep = {0};
    tiny_inventory(&c, &inv);
    lt_inventory_summarize(&inv, &c, &s);
    lt_status st = lt_inventory_check_index(&inv, write_index(&inv, NULL, (long long)s.bytes), &rep, &err);
    CHECKF(st == LT_OK && rep.n_lines == 0, "%s", err.msg);
    st = lt_inventory_check_index(&inv, write_index(&inv, "layers.1.attn.indexer.wq_b.scale", (long long)s.bytes + 1), &rep, &err);
    CHECKF(st == LT_ERR_INVENTORY && strstr(err.msg, "missing tensor layers.1.attn.indexer.wq_b.scale (not in the index)"),
           "%s", err.msg);
    CHECKF(rep.n_problems == 2 && strstr(rep.lines[1], "total_size is"), "%lld problems", (long long)rep.n_problems);
    lt_inventory_report_free(&rep);
    st = lt_inventory_check_index(&inv, "/nonexistent-lantern/model.safetensors.index.json", NULL, &err);
    CHECKF(st == LT_ERR_IO, "%s", err.msg);
    lt_inventory_free(&inv);
}
