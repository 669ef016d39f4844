/* Tests of `lantern inspect` (src/cli_inspect.c) run in-process: the JSON
 * figures for the three real configs (counts, bytes, parameters, KV bytes
 * per token against the published 3.5 KB and 890 B), the index and shard
 * checks, and the exit codes and messages of user mistakes. */
#include "test.h"

#include "ckpt_fixture.h"
#include "cli.h"
#include "inventory.h"
#include "util.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


typedef struct {
    int rc;
    char *out, *err;  /* captured stdout and stderr */
} run_result;

static char *slurp(const char *path) {
    char *text = NULL;
    lt_error err;
    if (lt_read_file(path, &text, NULL, &err) != LT_OK) return strdup("");
    return text;
}

/* Runs `lantern inspect args...` with stdout and stderr captured. */
static run_result run_inspect(int argc, char **argv) {
    char out_path[512], err_path[512];
    snprintf(out_path, sizeof out_path, "%s/inspect.out", lt_test_tmpdir());
    snprintf(err_path, sizeof err_path, "%s/inspect.err", lt_test_tmpdir());
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600), fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fo, 1);
    dup2(fe, 2);
    run_result r = {.rc = lt_cli_inspect(argc, argv)};
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    close(fo);
    close(fe);
    r.out = slurp(out_path);
    r.err = slurp(err_path);
    return r;
}

static void run_free(run_result *r) {
    free(r->out);
    free(r->err);
}

/* A fresh folder under the test tmpdir holding config.json = the text of src_path (or text). */
static const char *model_dir(const char *name, const char *src_path, const char *text) {
    static char dirs[8][512];
    static int next;
    char *dir = dirs[next++ % 8], path[600];
    snprintf(dir, 512, "%s/%s", lt_test_tmpdir(), name);
    mkdir(dir, 0700);
    char *copy = src_path ? slurp(src_path) : strdup(text);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(copy, f);
        fclose(f);
    }
    free(copy);
    return dir;
}

/* Runs --meta-only --json on dir and returns the parsed report (NULL on failure). */
static json_t *meta_json(const char *dir) {
    char *argv[] = {"inspect", (char *)dir, "--meta-only", "--json"};
    run_result r = run_inspect(4, argv);
    CHECKF(r.rc == 0, "rc %d: %s", r.rc, r.err);
    json_t *root = json_loads(r.out, 0, NULL);
    CHECKF(root != NULL, "not JSON: %.200s", r.out);
    run_free(&r);
    return root;
}

static json_int_t jint(json_t *root, const char *a, const char *b) {
    return json_integer_value(json_object_get(json_object_get(root, a), b));
}

LT_TEST(inspect, v4_flash_meta_json) {
    json_t *j = meta_json("../shared/assets/deepseek-v4/v4-flash");
    if (!j) return;
    CHECK(jint(j, "tensors", "count") == 69187 && jint(j, "tensors", "bytes") == 159609485896ll);
    CHECK(jint(j, "config", "num_hidden_layers") == 43 && jint(j, "config", "mtp_stages") == 1);
    /* 21 CSA x (584 + 68) / 4 + 20 HCA x 584 / 128 = 3514.25 B: the published ~3.5 KB */
    double kv = json_number_value(json_object_get(json_object_get(j, "kv_cache"), "bytes_per_token"));
    CHECKF(kv == 3514.25, "kv %g", kv);
    CHECK(jint(j, "kv_cache", "row_bytes") == 584 && jint(j, "kv_cache", "index_key_bytes") == 68);
    json_int_t backbone = jint(j, "params", "backbone"), active = jint(j, "params", "active_per_token");
    CHECKF(backbone > 284.0e9 && backbone < 284.5e9 && active > 13.0e9 && active < 13.5e9, "%lld %lld",
           (long long)backbone, (long long)active);
    json_t *layers = json_object_get(j, "layers");
    CHECK(json_array_size(layers) == 43);
    CHECK(!strcmp(json_string_value(json_object_get(json_array_get(layers, 2), "kind")), "CSA"));
    CHECK(!strcmp(json_string_value(json_object_get(json_array_get(layers, 3), "kind")), "HCA"));
    CHECK(!strcmp(json_string_value(json_object_get(json_object_get(j, "inventory"), "checked")), "none"));
    json_decref(j);
}

LT_TEST(inspect, v4_pro_meta_json) {
    json_t *j = meta_json(model_dir("pro", "../shared/docs/configs/DeepSeek-V4-Pro.config.json", NULL));
    if (!j) return;
    CHECK(jint(j, "tensors", "count") == 145116);
    json_int_t total = jint(j, "params", "total");
    CHECKF(total > 1.59e12 && total < 1.61e12, "%lld", (long long)total);
    double kv = json_number_value(json_object_get(json_object_get(j, "kv_cache"), "bytes_per_token"));
    CHECKF(kv > 5000 && kv < 5100, "kv %g", kv); /* papers.md: ~5.0 KB */
    json_decref(j);
}

LT_TEST(inspect, v41_flash_meta_json) {
    json_t *j = meta_json(model_dir("v41", "../shared/docs/configs/DeepSeek-V4.1-Flash.config.reconstructed.json", NULL));
    if (!j) return;
    CHECK(jint(j, "tensors", "count") == 96085);
    /* sources 2, 8, 14 at ratio 2 and 20 at ratio 1, each (288 + 68) / ratio: the published 890 B */
    double kv = json_number_value(json_object_get(json_object_get(j, "kv_cache"), "bytes_per_token"));
    CHECKF(kv == 890.0, "kv %g", kv);
    json_int_t backbone = jint(j, "params", "backbone"), engram = jint(j, "params", "engram");
    CHECKF(backbone > 551.5e9 && backbone < 552.5e9 && engram > 196.0e9 && engram < 197.0e9, "%lld %lld",
           (long long)backbone, (long long)engram);
    json_t *l24 = json_array_get(json_object_get(j, "layers"), 24);
    CHECK(json_integer_value(json_object_get(l24, "kv_source")) == 20 && json_integer_value(json_object_get(l24, "index_source")) == 24);
    json_decref(j);
}

/* Writes dir/model.safetensors.index.json naming the tiny inventory minus `drop`. */
static void write_tiny_index(const char *dir, const char *drop, int wrong_total) {
    lt_config c;
    lt_inventory inv;
    lt_inventory_stats s;
    lt_error err;
    CHECK(lt_config_parse(&c, test_tiny_v4_config, "config.json", &err) == LT_OK);
    CHECK(lt_inventory_build(&inv, &c, &err) == LT_OK);
    lt_inventory_summarize(&inv, &c, &s);
    json_t *wm = json_object();
    for (int64_t i = 0; i < inv.n_tensors; i++)
        if (!drop || strcmp(drop, inv.tensors[i].name)) json_object_set_new(wm, inv.tensors[i].name, json_string("model.safetensors"));
    json_t *root = json_pack("{s:{s:I}, s:o}", "metadata", "total_size", (json_int_t)s.bytes + wrong_total, "weight_map", wm);
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    CHECK(json_dump_file(root, path, 0) == 0);
    json_decref(root);
    lt_inventory_free(&inv);
}

LT_TEST(inspect, meta_only_compares_index) {
    const char *dir = model_dir("tiny-index", NULL, test_tiny_v4_config);
    write_tiny_index(dir, NULL, 0);
    char *argv[] = {"inspect", (char *)dir, "--meta-only"};
    run_result r = run_inspect(3, argv);
    CHECKF(r.rc == 0 && strstr(r.out, "index: 0 problems, 0 warnings"), "rc %d\n%s%s", r.rc, r.out, r.err);
    run_free(&r);
    write_tiny_index(dir, "layers.2.attn.compressor.norm.weight", 5);
    r = run_inspect(3, argv);
    CHECKF(r.rc == 1, "rc %d", r.rc);
    CHECKF(strstr(r.out, "missing tensor layers.2.attn.compressor.norm.weight (not in the index)") != NULL, "%s", r.out);
    CHECKF(strstr(r.out, "total_size is") != NULL && strstr(r.err, "(and 1 more problems)") != NULL, "%s%s", r.out, r.err);
    run_free(&r);
}

/* Writes the tiny model's config.json and model.safetensors (edited). */
static const char *tiny_model(const char *name, const test_ckpt_edit *e) {
    const char *dir = model_dir(name, NULL, test_tiny_v4_config);
    lt_config c;
    lt_inventory inv;
    lt_error err;
    char path[600];
    CHECK(lt_config_parse(&c, test_tiny_v4_config, "config.json", &err) == LT_OK);
    CHECK(lt_inventory_build(&inv, &c, &err) == LT_OK);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK(test_write_checkpoint(&inv, path, e) == 0);
    lt_inventory_free(&inv);
    return dir;
}

LT_TEST(inspect, shards_checked) {
    char *argv[] = {"inspect", (char *)tiny_model("tiny-ok", NULL)};
    run_result r = run_inspect(2, argv);
    CHECKF(r.rc == 0, "rc %d\n%s", r.rc, r.err);
    CHECKF(strstr(r.out, "layer schedule") && strstr(r.out, "  1  CSA  /4") && strstr(r.out, "  2  HCA  /8"), "%s", r.out);
    CHECKF(strstr(r.out, "in 1 file: 0 problems, 0 warnings") != NULL, "%s", r.out);
    run_free(&r);

    argv[1] = (char *)tiny_model("tiny-bad", &(test_ckpt_edit){.retype = "layers.0.attn.kv_norm.weight", .drop = "mtp.0.h_proj.scale"});
    r = run_inspect(2, argv);
    CHECKF(r.rc == 1, "rc %d", r.rc);
    CHECKF(strstr(r.out, "  tensor layers.0.attn.kv_norm.weight has dtype F32 but must be BF16\n") != NULL, "%s", r.out);
    CHECKF(strstr(r.out, "  missing tensor mtp.0.h_proj.scale (F8_E8M0 [2,2])\n") != NULL, "%s", r.out);
    run_free(&r);
}

LT_TEST(inspect, user_errors) {
    char *none[] = {"inspect"};
    run_result r = run_inspect(1, none);
    CHECKF(r.rc == 2 && strstr(r.err, "MODEL_DIR is missing"), "rc %d: %s", r.rc, r.err);
    run_free(&r);
    char *flag[] = {"inspect", "x", "--frobnicate"};
    r = run_inspect(3, flag);
    CHECKF(r.rc == 2 && strstr(r.err, "unknown option '--frobnicate'"), "rc %d: %s", r.rc, r.err);
    run_free(&r);
    char *two[] = {"inspect", "a", "b"};
    r = run_inspect(3, two);
    CHECKF(r.rc == 2 && strstr(r.err, "more than one MODEL_DIR"), "rc %d: %s", r.rc, r.err);
    run_free(&r);
    char *missing[] = {"inspect", "/nonexistent-lantern-model", "--meta-only"};
    r = run_inspect(3, missing);
    CHECKF(r.rc == 1 && strstr(r.err, "/nonexistent-lantern-model/config.json"), "rc %d: %s", r.rc, r.err);
    run_free(&r);
    char *bad[] = {"inspect", (char *)model_dir("bad-config", NULL, "{\"model_type\": \"deepseek_v4\", \"num_hidden_layers\": 1, \"hidden_size\": -3}")};
    r = run_inspect(2, bad);
    CHECKF(r.rc == 1 && strstr(r.err, "hidden_size is -3 but must be > 0"), "rc %d: %s", r.rc, r.err);
    run_free(&r);
    char *no_shards[] = {"inspect", (char *)model_dir("no-shards", NULL, test_tiny_v4_config)};
    r = run_inspect(2, no_shards);
    CHECKF(r.rc == 1 && strstr(r.err, "no model.safetensors.index.json or model.safetensors"), "rc %d: %s", r.rc, r.err);
    run_free(&r);
    char *help[] = {"inspect", "--help"};
    r = run_inspect(2, help);
    CHECKF(r.rc == 0 && strstr(r.out, "usage: lantern inspect"), "rc %d", r.rc);
    run_free(&r);
}
