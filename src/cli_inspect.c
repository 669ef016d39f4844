/* `lantern inspect MODEL_DIR [--meta-only] [--json]`: what a model folder
 * holds, from its config alone (architecture, layer schedule, tensor counts
 * and bytes, parameters, per-token weight and KV bytes), and whether its
 * tensors match the inventory derived from that config. --meta-only reads
 * only config.json and, when present, model.safetensors.index.json; otherwise
 * every shard header is checked. Exit status 1 when any problem is found.
 * Conventions and formulas: docs/inspect.md. */
#include "attention.h"
#include "cli.h"
#include "config.h"
#include "inventory.h"
#include "safetensors.h"
#include "util.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *dir;
    int meta_only, json;
} options;

static const char usage_text[] =
    "usage: lantern inspect MODEL_DIR [--meta-only] [--json]\n"
    "  Describes a DeepSeek V4 / V4.1 model folder and checks its tensors against\n"
    "  the inventory derived from config.json.\n"
    "  --meta-only  read only config.json (and model.safetensors.index.json if present)\n"
    "  --json       print one JSON object instead of text\n"
    "Exit status: 0 ok, 1 problems found or unreadable model, 2 usage error.\n";

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, options *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(usage_text, stdout); return 0; }
        if (!strcmp(a, "--meta-only")) o->meta_only = 1;
        else if (!strcmp(a, "--json")) o->json = 1;
        else if (a[0] == '-') { fprintf(stderr, "lantern inspect: unknown option '%s'\n%s", a, usage_text); return 2; }
        else if (o->dir) { fprintf(stderr, "lantern inspect: more than one MODEL_DIR ('%s', '%s')\n%s", o->dir, a, usage_text); return 2; }
        else o->dir = a;
    }
    if (!o->dir) { fprintf(stderr, "lantern inspect: MODEL_DIR is missing\n%s", usage_text); return 2; }
    return -1;
}

/* ---- KV cache bytes (spec 3.5, 4.8, 5.1; docs/inspect.md) -------------------
 * As a release runs by default (REFERENCE numerics), the caches store what
 * the QAT round trips leave, losslessly (src/kvrow.h): V4 rows FP8 nope + one
 * UE8M0 per 64 + bf16 RoPE dims (584 B), V4.1 compressed rows FP4 + E4M3 per
 * 16 (288 B) and window rows FP8 + UE8M0 per 32 (528 B), index keys FP4 +
 * UE8M0 per 32 (68 B). */

typedef struct {
    lt_num nm;
    lt_kv_fmt win, cmp;
    int64_t key_bytes;
    double per_token;
    int64_t window_per_sequence;
} kv_sizes;

static kv_sizes kv_sizes_of(const lt_config *c) {
    kv_sizes k = {.nm = {.mode = LT_NUMERICS_REFERENCE, .qat = c->arch == LT_ARCH_V41}};
    lt_attention_formats(c, &k.nm, &k.win, &k.cmp);
    k.key_bytes = lt_indexer_key_bytes(&k.nm, c->index_head_dim);
    k.per_token = lt_kv_bytes_per_token(c, &k.nm);
    k.window_per_sequence = (int64_t)c->n_layers * c->sliding_window * k.win.bytes;
    return k;
}

/* ---- layer schedule ------------------------------------------------------------ */

static const char *layer_kind(const lt_config *c, int l) {
    if (c->compress_ratios[l] == 0) return "SWA";
    if (c->arch == LT_ARCH_V41) return "CSA2";
    return lt_config_is_csa(c, l) ? "CSA" : "HCA";
}

static int engram_slot(const lt_config *c, int l) {
    for (int i = 0; i < c->n_engram_layers; i++)
        if (c->engram_layer_ids[i] == l) return i;
    return -1;
}

/* The sharing role of a V4.1 layer (spec 5.1): Full = own KV and indexer,
 * Reindex = own index query over the source's keys, Reuse = source's top-k. */
static void describe_v41_role(const lt_config *c, int l, char *buf, size_t cap) {
    int kv = lt_config_kv_source(c, l), ix = lt_config_index_source(c, l);
    const char *cand = c->candidate_source_layer_id >= 0 && l == c->candidate_source_layer_id ? ", candidate source" : "";
    int filtered = c->candidate_source_layer_id >= 0 && ix > c->candidate_source_layer_id;
    if (kv < 0) snprintf(buf, cap, "%s", "");
    else if (kv == l) snprintf(buf, cap, "KV source, index source (full)%s", cand);
    else if (ix == l)
        snprintf(buf, cap, "KV of %d, reindex over its keys%s%s", kv, filtered ? " within the candidates" : "", cand);
    else snprintf(buf, cap, "reuse: KV of %d, top-k of %d", kv, ix);
}

static void describe_layer(const lt_config *c, int l, char *buf, size_t cap) {
    char role[128] = "";
    if (c->arch == LT_ARCH_V41) describe_v41_role(c, l, role, sizeof role);
    else if (c->compress_ratios[l]) snprintf(role, sizeof role, "%s", lt_config_is_csa(c, l) ? "indexer top-k" : "all entries");
    size_t n = (size_t)snprintf(buf, cap, "%s", role);
    if (c->arch == LT_ARCH_V4 && n < cap)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s routing", n ? ", " : "", l < c->n_hash_layers ? "hash" : "score");
    int e = engram_slot(c, l);
    if (e >= 0 && n < cap)
        snprintf(buf + n, cap - n, "%sEngram (%lld rows)", n ? ", " : "", (long long)c->engram_num_embeddings[e]);
}

/* ---- gathering what is printed ----------------------------------------------------- */

typedef struct {
    lt_config c;
    lt_inventory inv;
    lt_inventory_stats st;
    lt_inventory_report rep;
    const char *checked;      /* "shards", "index" or "none" */
    int64_t checked_tensors;  /* tensors in the shards (shards mode) */
    int checked_files;
    char error[1024];         /* the check's summary line, "" when clean */
} inspection;

static lt_status check_files(inspection *in, const options *o, lt_error *err) {
    char index[4096];
    lt_status st = lt_path_join(index, sizeof index, o->dir, "model.safetensors.index.json", err);
    if (st != LT_OK) return st;
    lt_error check;
    check.msg[0] = 0;
    if (o->meta_only) {
        in->checked = lt_file_exists(index) ? "index" : "none";
        if (lt_file_exists(index)) st = lt_inventory_check_index(&in->inv, index, &in->rep, &check);
    } else {
        lt_store s;
        if ((st = lt_store_open_dir(&s, o->dir, 0, err)) != LT_OK) return st;
        in->checked = "shards";
        in->checked_tensors = s.n_tensors;
        in->checked_files = s.n_files;
        st = lt_inventory_check(&in->inv, &s, &in->rep, &check);
        lt_store_close(&s);
    }
    if (st == LT_ERR_INVENTORY) {
        snprintf(in->error, sizeof in->error, "%s", check.msg);
        return LT_OK;
    }
    if (st != LT_OK) *err = check;
    return st;
}

static lt_status inspect(inspection *in, const options *o, lt_error *err) {
    lt_status st = lt_config_load(&in->c, o->dir, err);
    if (st == LT_OK) st = lt_inventory_build(&in->inv, &in->c, err);
    if (st != LT_OK) return st;
    lt_inventory_summarize(&in->inv, &in->c, &in->st);
    return check_files(in, o, err);
}

static uint64_t backbone_params(const lt_inventory_stats *s) {
    return s->params_part[LT_PART_DENSE] + s->params_part[LT_PART_EXPERT] + s->params_part[LT_PART_EMBED];
}

/* ---- text output ---------------------------------------------------------------------- */

/* A count or byte size with a decimal unit picked for its magnitude, so the
 * 160 GB releases and the 2 MB test fixtures both read well. */
typedef struct { char s[32]; } scaled;

static scaled with_unit(uint64_t x, const char *const units[5]) {
    scaled r;
    double v = (double)x;
    int u = 0;
    while (u < 4 && v >= 1000.0) { v /= 1000.0; u++; }
    snprintf(r.s, sizeof r.s, u ? "%.2f %s" : "%.0f %s", v, units[u]);
    return r;
}

static scaled count_str(uint64_t x) { return with_unit(x, (const char *const[5]){"", "K", "M", "B", "T"}); }
static scaled bytes_str(uint64_t x) { return with_unit(x, (const char *const[5]){"bytes", "KB", "MB", "GB", "TB"}); }

static void print_architecture(const lt_config *c) {
    printf("architecture   DeepSeek %s (%s)\n", c->arch == LT_ARCH_V41 ? "V4.1" : "V4", c->model_type);
    printf("dimensions     hidden %d, vocab %d, %d layers + %d %s stage%s\n", c->dim, c->vocab_size, c->n_layers,
           c->n_mtp, c->dspark_block_size ? "DSpark" : "MTP", c->n_mtp == 1 ? "" : "s");
    printf("attention      %d heads x %d (RoPE on the last %d), q rank %d, output %d groups x rank %d, window %d\n",
           c->n_heads, c->head_dim, c->rope_dim, c->q_lora_rank, c->o_groups, c->o_lora_rank, c->sliding_window);
    printf("indexer        %d heads x %d, top-%d", c->index_n_heads, c->index_head_dim, c->index_topk);
    if (c->candidate_source_layer_id >= 0)
        printf("; candidates: %d blocks of %d from layer %d", c->candidate_topk_blocks, c->candidate_block_size,
               c->candidate_source_layer_id);
    printf("\nmoe            %d routed experts, top-%d x%g, %d shared, width %d", c->n_routed_experts,
           c->n_experts_per_tok, c->routed_scaling_factor, c->n_shared_experts, c->moe_inter);
    if (c->n_hash_layers) printf("; %d hash-routed layers", c->n_hash_layers);
    printf("\nmhc            %d streams, %d Sinkhorn iterations\n", c->hc_mult, c->hc_sinkhorn_iters);
    printf("rope           theta %g; compressed layers %g", c->rope_theta, c->compress_rope_theta);
    if (c->yarn)
        printf(" with YaRN x%g (original %lld, beta %g/%g)", c->yarn_factor, (long long)c->yarn_orig_max_pos,
               c->yarn_beta_fast, c->yarn_beta_slow);
    if (c->weight_fp8) printf("\nquantisation   FP8 e4m3 weights, %dx%d UE8M0 blocks", c->block_r, c->block_c);
    else printf("\nquantisation   none (%s weights)", c->dtype_f32 ? "F32" : "BF16");
    printf("; routed experts %s\n", c->expert_fp4 ? "FP4 e2m1, 1x32 UE8M0 blocks" : "as the other linears");
    if (c->has_vision)
        printf("vision         %d layers, dim %d, %d heads, width %d, patch %d, %dx%d downsample\n", c->vision_layers,
               c->vision_dim, c->vision_heads, c->vision_inter, c->vision_patch, c->vision_downsample, c->vision_downsample);
}

static void print_schedule(const lt_config *c) {
    char desc[256];
    printf("\nlayer schedule\n");
    for (int l = 0; l < c->n_layers; l++) {
        describe_layer(c, l, desc, sizeof desc);
        if (c->compress_ratios[l]) printf("  %5d  %-4s /%-4d %s\n", l, layer_kind(c, l), c->compress_ratios[l], desc);
        else if (*desc) printf("  %5d  %-4s       %s\n", l, layer_kind(c, l), desc);
        else printf("  %5d  %s\n", l, layer_kind(c, l));
    }
    for (int k = 0; k < c->n_mtp; k++) {
        if (c->dspark_block_size)
            printf("  mtp.%d  SWA        DSpark draft stage %d: %d experts, top-%d\n", k, k, c->dspark_n_routed_experts,
                   c->dspark_n_experts_per_tok);
        else printf("  mtp.%d  SWA        MTP stage, score routing\n", k);
    }
}

static void print_sizes(const inspection *in) {
    const lt_inventory_stats *s = &in->st;
    const lt_config *c = &in->c;
    printf("\ntensors        %lld, %s (%llu bytes)\n", (long long)s->n_tensors, bytes_str(s->bytes).s, (unsigned long long)s->bytes);
    for (int d = 0; d < LT_DT_COUNT; d++)
        if (s->n_dtype[d])
            printf("  %-12s %8lld tensors %12s\n", lt_dtype_name((lt_dtype)d), (long long)s->n_dtype[d], bytes_str(s->bytes_dtype[d]).s);
    printf("parameters     %s: backbone %s (routed experts %s)", count_str(s->params).s, count_str(backbone_params(s)).s,
           count_str(s->params_part[LT_PART_EXPERT]).s);
    if (s->params_part[LT_PART_ENGRAM]) printf(", Engram %s", count_str(s->params_part[LT_PART_ENGRAM]).s);
    if (s->params_part[LT_PART_MTP])
        printf(", %s %s", c->dspark_block_size ? "DSpark" : "MTP", count_str(s->params_part[LT_PART_MTP]).s);
    if (s->params_part[LT_PART_VISION]) printf(", vision %s", count_str(s->params_part[LT_PART_VISION]).s);
    printf("\nactive         %s per decoded token (dense weights, %d of %d routed experts, looked-up table rows)\n",
           count_str(s->active_params).s, c->n_experts_per_tok, c->n_routed_experts);
    printf("weights read   %s per decoded token\n", bytes_str(s->bytes_per_token).s);
    kv_sizes k = kv_sizes_of(c);
    printf("kv cache       %.2f bytes per token (%lld B rows, %lld B index keys), plus a %s window ring per sequence\n",
           k.per_token, (long long)k.cmp.bytes, (long long)k.key_bytes, bytes_str((uint64_t)k.window_per_sequence).s);
}

static void print_check(const inspection *in) {
    if (!strcmp(in->checked, "none")) {
        printf("inventory      not checked (no model.safetensors.index.json; run without --meta-only to read the shards)\n");
        return;
    }
    if (!strcmp(in->checked, "shards"))
        printf("inventory      %lld tensors in %d file%s: ", (long long)in->checked_tensors, in->checked_files,
               in->checked_files == 1 ? "" : "s");
    else printf("inventory      index: ");
    printf("%lld problem%s, %lld warning%s\n", (long long)in->rep.n_problems, in->rep.n_problems == 1 ? "" : "s",
           (long long)in->rep.n_warnings, in->rep.n_warnings == 1 ? "" : "s");
    for (int64_t i = 0; i < in->rep.n_lines; i++) printf("  %s\n", in->rep.lines[i]);
}

static void print_text(const inspection *in, const options *o) {
    printf("model          %s\n", o->dir);
    print_architecture(&in->c);
    print_schedule(&in->c);
    print_sizes(in);
    print_check(in);
}

/* ---- JSON output ----------------------------------------------------------------------- */

static json_t *json_config(const lt_config *c) {
    return json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:b, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i,"
                     " s:i, s:i, s:i, s:i, s:b, s:[i,i], s:s, s:b}",
                     "arch", c->arch == LT_ARCH_V41 ? "V4.1" : "V4", "model_type", c->model_type,
                     "hidden_size", c->dim, "vocab_size", c->vocab_size, "num_hidden_layers", c->n_layers,
                     "mtp_stages", c->n_mtp, "dspark", c->dspark_block_size > 0,
                     "num_attention_heads", c->n_heads, "head_dim", c->head_dim, "qk_rope_head_dim", c->rope_dim,
                     "q_lora_rank", c->q_lora_rank, "o_groups", c->o_groups, "o_lora_rank", c->o_lora_rank,
                     "sliding_window", c->sliding_window, "index_n_heads", c->index_n_heads,
                     "index_head_dim", c->index_head_dim, "index_topk", c->index_topk,
                     "n_routed_experts", c->n_routed_experts, "num_experts_per_tok", c->n_experts_per_tok,
                     "n_shared_experts", c->n_shared_experts, "moe_intermediate_size", c->moe_inter,
                     "num_hash_layers", c->n_hash_layers, "hc_mult", c->hc_mult,
                     "weight_fp8", c->weight_fp8, "weight_block_size", c->block_r, c->block_c,
                     "expert_dtype", c->expert_fp4 ? "fp4" : c->weight_fp8 ? "fp8" : "float", "vision", c->has_vision);
}

static json_t *json_layers(const lt_config *c) {
    json_t *a = json_array();
    char desc[256];
    for (int l = 0; l < c->n_layers; l++) {
        describe_layer(c, l, desc, sizeof desc);
        json_array_append_new(a, json_pack("{s:i, s:s, s:i, s:i, s:i, s:b, s:s}", "layer", l, "kind", layer_kind(c, l),
                                           "ratio", c->compress_ratios[l], "kv_source", lt_config_kv_source(c, l),
                                           "index_source", lt_config_index_source(c, l), "engram", engram_slot(c, l) >= 0,
                                           "role", desc));
    }
    return a;
}

static json_t *json_tensors(const lt_inventory_stats *s) {
    json_t *by = json_object();
    for (int d = 0; d < LT_DT_COUNT; d++)
        if (s->n_dtype[d])
            json_object_set_new(by, lt_dtype_name((lt_dtype)d),
                                json_pack("{s:I, s:I}", "count", (json_int_t)s->n_dtype[d], "bytes", (json_int_t)s->bytes_dtype[d]));
    return json_pack("{s:I, s:I, s:o}", "count", (json_int_t)s->n_tensors, "bytes", (json_int_t)s->bytes, "by_dtype", by);
}

static json_t *json_params(const lt_inventory_stats *s) {
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "total", (json_int_t)s->params,
                     "backbone", (json_int_t)backbone_params(s), "routed_experts", (json_int_t)s->params_part[LT_PART_EXPERT],
                     "engram", (json_int_t)s->params_part[LT_PART_ENGRAM], "mtp", (json_int_t)s->params_part[LT_PART_MTP],
                     "vision", (json_int_t)s->params_part[LT_PART_VISION], "active_per_token", (json_int_t)s->active_params);
}

static json_t *json_check(const inspection *in) {
    json_t *lines = json_array();
    for (int64_t i = 0; i < in->rep.n_lines; i++) json_array_append_new(lines, json_string(in->rep.lines[i]));
    return json_pack("{s:s, s:I, s:I, s:o}", "checked", in->checked, "problems", (json_int_t)in->rep.n_problems,
                     "warnings", (json_int_t)in->rep.n_warnings, "lines", lines);
}

static int print_json(const inspection *in, const options *o) {
    const lt_config *c = &in->c;
    kv_sizes k = kv_sizes_of(c);
    json_t *kv = json_pack("{s:f, s:I, s:I, s:I, s:I}", "bytes_per_token", k.per_token,
                           "window_bytes_per_sequence", (json_int_t)k.window_per_sequence,
                           "row_bytes", (json_int_t)k.cmp.bytes, "window_row_bytes", (json_int_t)k.win.bytes,
                           "index_key_bytes", (json_int_t)k.key_bytes);
    json_t *root = json_pack("{s:s, s:o, s:o, s:o, s:o, s:I, s:o, s:o}", "model_dir", o->dir, "config", json_config(c),
                             "layers", json_layers(c), "tensors", json_tensors(&in->st), "params", json_params(&in->st),
                             "weight_bytes_per_token", (json_int_t)in->st.bytes_per_token, "kv_cache", kv,
                             "inventory", json_check(in));
    int ok = root && json_dumpf(root, stdout, JSON_INDENT(1)) == 0;
    json_decref(root);
    putchar('\n');
    if (!ok) fprintf(stderr, "lantern inspect: could not write the JSON report\n");
    return ok;
}

int lt_cli_inspect(int argc, char **argv) {
    options o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;
    inspection in;
    memset(&in, 0, sizeof in);
    lt_error err;
    lt_status st = inspect(&in, &o, &err);
    if (st == LT_OK) {
        int ok = o.json ? print_json(&in, &o) : (print_text(&in, &o), 1);
        rc = ok && !in.error[0] ? 0 : 1;
        if (in.error[0]) fprintf(stderr, "lantern inspect: %s\n", in.error);
    } else {
        fprintf(stderr, "lantern inspect: %s\n", err.msg);
        rc = 1;
    }
    lt_inventory_report_free(&in.rep);
    lt_inventory_free(&in.inv);
    return rc;
}
