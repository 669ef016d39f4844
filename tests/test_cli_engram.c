/* `lantern engram` in process against the V4.1 oracles: the text whose
 * tokens are the oracle's input_ids (BOS written as its special token, so
 * --raw gives it back) must report, for every position and Engram layer,
 * the oracle's engram.L.hash_ids exactly and its engram.L.gate to 1e-4
 * (EXACT numerics); plus the statistics' consistency, the text table, the
 * V4 error and the usage errors. */
#include "test.h"

#include "cli.h"
#include "cli_capture.h"
#include "safetensors.h"
#include "tokenizer.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the text of ids[0..T) (specials written out), checked to encode back to
 * them with specials parsed, as `lantern engram --raw` does; malloc'd or NULL */
static char *oracle_text(const char *dir, const int64_t *ids, int64_t T) {
    lt_tokenizer *tok = NULL;
    lt_error err = {0};
    int32_t *want = malloc((size_t)T * sizeof *want);
    for (int64_t t = 0; t < T; t++) want[t] = (int32_t)ids[t];
    char *text = NULL;
    size_t len = 0;
    lt_token_vec again = {0};
    int same = 0;
    if (lt_tokenizer_load(&tok, dir, &err) == LT_OK &&
        lt_tokenizer_decode(tok, want, (size_t)T, 0, &text, &len, &err) == LT_OK &&
        lt_tokenizer_encode(tok, text, len, 1, &again, &err) == LT_OK) {
        same = again.n == (size_t)T && !memcmp(again.ids, want, again.n * sizeof *want);
        CHECKF(same, "%s: the oracle's ids do not come back from their text (%zu tokens, want %lld)", dir, again.n,
               (long long)T);
    }
    CHECKF(!err.msg[0], "%s", err.msg);
    lt_token_vec_free(&again);
    free(want);
    lt_tokenizer_free(tok);
    if (!same) {
        free(text);
        text = NULL;
    }
    return text;
}

static json_t *run_json(char **argv) {
    int rc = lt_test_cli("engram", lt_cli_engram, argv);
    CHECKF(rc == 0, "exit %d", rc);
    char *out = lt_test_cli_out("engram");
    json_t *r = out ? json_loads(out, 0, NULL) : NULL;
    if (!r) {
        char *log = lt_test_cli_err("engram");
        CHECKF(0, "not JSON: %.200s / stderr: %s", out ? out : "(none)", log ? log : "(none)");
        free(log);
    }
    free(out);
    return r;
}

/* the layer entry of token t's report for Engram layer `layer` */
static json_t *token_layer(json_t *r, int64_t t, int layer) {
    json_t *layers = json_object_get(json_array_get(json_object_get(r, "tokens"), (size_t)t), "layers");
    for (size_t i = 0; i < json_array_size(layers); i++) {
        json_t *l = json_array_get(layers, i);
        if (json_integer_value(json_object_get(l, "layer")) == layer) return l;
    }
    return NULL;
}

/* hash ids and gates of every position of one Engram layer against the oracle;
 * returns the worst gate error */
static double check_layer(json_t *r, const lt_store *o, int layer, int64_t T, int64_t *n_ids) {
    char name[64];
    snprintf(name, sizeof name, "engram.%d.hash_ids", layer);
    const lt_tensor *hid = lt_store_find(o, name);
    snprintf(name, sizeof name, "engram.%d.gate", layer);
    const lt_tensor *gt = lt_store_find(o, name);
    CHECKF(hid && gt && hid->dtype == LT_DT_I64 && gt->dtype == LT_DT_F32, "oracle lacks engram.%d tensors", layer);
    if (!hid || !gt) return INFINITY;
    int64_t G = hid->shape[1], hc = gt->shape[1], bad_ids = 0;
    const int64_t *want_ids = hid->data;
    const float *want_gate = gt->data;
    double worst = 0;
    for (int64_t t = 0; t < T; t++) {
        json_t *l = token_layer(r, t, layer), *ids = json_object_get(l, "hash_ids"), *g = json_object_get(l, "gates");
        CHECKF(json_array_size(ids) == (size_t)G && json_array_size(g) == (size_t)hc, "layer %d pos %lld: %zu ids, "
               "%zu gates", layer, (long long)t, json_array_size(ids), json_array_size(g));
        if (json_array_size(ids) != (size_t)G || json_array_size(g) != (size_t)hc) return INFINITY;
        for (int64_t j = 0; j < G; j++) {
            bad_ids += json_integer_value(json_array_get(ids, (size_t)j)) != want_ids[t * G + j];
            (*n_ids)++;
        }
        for (int64_t i = 0; i < hc; i++) {
            double d = fabs(json_real_value(json_array_get(g, (size_t)i)) - want_gate[t * hc + i]);
            worst = d > worst ? d : worst;
        }
    }
    CHECKF(bad_ids == 0, "layer %d: %lld of %lld hash ids differ from the oracle", layer, (long long)bad_ids,
           (long long)(T * G));
    return worst;
}

/* the layer statistics agree with the per-token report */
static void check_stats(json_t *r) {
    json_t *layers = json_object_get(r, "layers"), *tokens = json_object_get(r, "tokens");
    int64_t row_bytes = json_integer_value(json_object_get(r, "row_bytes")), total = 0;
    for (size_t s = 0; s < json_array_size(layers); s++) {
        json_t *ls = json_array_get(layers, s);
        int layer = (int)json_integer_value(json_object_get(ls, "layer"));
        double mn = 2, mx = -1, sum = 0, open = 0, cnt = 0;
        for (size_t t = 0; t < json_array_size(tokens); t++) {
            json_t *g = json_object_get(token_layer(r, (int64_t)t, layer), "gates");
            for (size_t i = 0; i < json_array_size(g); i++) {
                double v = json_real_value(json_array_get(g, i));
                mn = v < mn ? v : mn;
                mx = v > mx ? v : mx;
                sum += v;
                open += v > 0.5;
                cnt++;
            }
        }
        int64_t rows = json_integer_value(json_object_get(ls, "rows_touched"));
        CHECKF(rows > 0 && rows <= json_integer_value(json_object_get(ls, "hits")), "layer %d: %lld rows", layer,
               (long long)rows);
        CHECK(json_integer_value(json_object_get(ls, "bytes_read")) == rows * row_bytes);
        CHECK(fabs(json_real_value(json_object_get(ls, "gate_mean")) - sum / cnt) < 1e-6);
        CHECK(fabs(json_real_value(json_object_get(ls, "gate_min")) - mn) < 1e-6);
        CHECK(fabs(json_real_value(json_object_get(ls, "gate_max")) - mx) < 1e-6);
        CHECK(fabs(json_real_value(json_object_get(ls, "gate_open")) - open / cnt) < 1e-9);
        total += rows * row_bytes;
    }
    CHECK(json_integer_value(json_object_get(r, "bytes_read")) == total);
}

static void against_oracle(const char *dir) {
    char path[256];
    snprintf(path, sizeof path, "%s/oracle.safetensors", dir);
    lt_store o;
    lt_error err = {0};
    if (lt_store_open_file(&o, path, &err) != LT_OK) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    const lt_tensor *in = lt_store_find(&o, "input_ids");
    int64_t T = in ? in->shape[0] : 0;
    char *text = in ? oracle_text(dir, in->data, T) : NULL;
    json_t *r = NULL;
    if (text) {
        char *argv[] = {"engram", "-m", (char *)dir, "-p", text, "--raw", "--json", "--numerics", "exact", NULL};
        r = run_json(argv);
    }
    if (r) {
        CHECKF(json_integer_value(json_object_get(r, "n_tokens")) == T, "%lld tokens, the oracle %lld",
               (long long)json_integer_value(json_object_get(r, "n_tokens")), (long long)T);
        json_t *layers = json_object_get(r, "layers");
        CHECK(json_array_size(layers) > 0);
        double worst = 0;
        int64_t n_ids = 0;
        for (size_t s = 0; s < json_array_size(layers); s++) {
            int layer = (int)json_integer_value(json_object_get(json_array_get(layers, s), "layer"));
            double w = check_layer(r, &o, layer, T, &n_ids);
            worst = w > worst ? w : worst;
        }
        printf("  %s: %lld hash ids checked, worst gate error %.3g over %zu layers\n", dir, (long long)n_ids, worst,
               json_array_size(layers));
        CHECKF(worst < 1e-4, "%s: gate error %g", dir, worst);
        /* the compressed classes are the oracle's token map */
        const lt_tensor *map = lt_store_find(&o, "engram.token_map");
        json_t *tokens = json_object_get(r, "tokens");
        for (int64_t t = 0; map && t < T; t++) {
            json_t *tk = json_array_get(tokens, (size_t)t);
            CHECK(json_integer_value(json_object_get(tk, "class")) ==
                  ((const int64_t *)map->data)[((const int64_t *)in->data)[t]]);
        }
        check_stats(r);
        json_decref(r);
    }
    free(text);
    lt_store_close(&o);
}

LT_TEST(cli_engram, matches_the_oracle_v41_tiny) { against_oracle("tests/fixtures/v41-tiny"); }
LT_TEST(cli_engram, matches_the_oracle_v41_tiny_b) { against_oracle("tests/fixtures/v41-tiny-b"); }

LT_TEST(cli_engram, text_table) {
    char *raw[] = {"engram", "-m", "tests/fixtures/v41-tiny", "-p", "The quick brown fox", "--raw", "-t", "1", NULL};
    CHECK(lt_test_cli("engram_text", lt_cli_engram, raw) == 0);
    char *out = lt_test_cli_out("engram_text");
    CHECKF(out && strstr(out, "    0 \"The\" c") && strstr(out, " L1 2.2.2.") && strstr(out, " L4 ") &&
           strstr(out, "layer 1: ") && strstr(out, "layer 4: ") && strstr(out, "bytes read from the Engram tables"),
           "stdout: %.400s", out ? out : "(none)");
    free(out);
    /* chat formatted: starts with BOS */
    char *chat[] = {"engram", "-m", "tests/fixtures/v41-tiny", "-p", "Hi", "--json", NULL};
    json_t *r = run_json(chat);
    json_t *first = json_array_get(json_object_get(r, "tokens"), 0);
    CHECK(json_integer_value(json_object_get(first, "id")) == 0);
    CHECK(json_array_size(json_object_get(first, "ngrams")) == 3);
    json_t *second = json_array_get(json_object_get(r, "tokens"), 1);
    const char *span = json_string_value(json_array_get(json_object_get(second, "ngram_texts"), 0));
    const char *text = json_string_value(json_object_get(second, "text"));
    CHECKF(span && text && strstr(span, "<｜begin▁of▁sentence｜>") == span && !strcmp(span + strlen(span) - strlen(text), text),
           "2-gram text %s", span ? span : "(none)");
    json_decref(r);
}

LT_TEST(cli_engram, usage_and_runtime_errors) {
    char *no_prompt[] = {"engram", "-m", "tests/fixtures/v41-tiny", NULL};
    char *bad_flag[] = {"engram", "-m", "tests/fixtures/v41-tiny", "-p", "x", "--frob", NULL};
    char *no_value[] = {"engram", "-m", "tests/fixtures/v41-tiny", "-p", NULL};
    char *v4[] = {"engram", "-m", "tests/fixtures/v4-flash-tiny", "-p", "Hello", "--raw", NULL};
    char *missing[] = {"engram", "-m", "tests/fixtures/no-such-model", "-p", "Hello", NULL};
    char *empty[] = {"engram", "-m", "tests/fixtures/v41-tiny", "-p", "", "--raw", NULL};
    CHECK(lt_test_cli("engram_err", lt_cli_engram, no_prompt) == 2);
    CHECK(lt_test_cli("engram_err", lt_cli_engram, bad_flag) == 2);
    CHECK(lt_test_cli("engram_err", lt_cli_engram, no_value) == 2);
    CHECK(lt_test_cli("engram_err", lt_cli_engram, missing) == 1);
    CHECK(lt_test_cli("engram_err", lt_cli_engram, empty) == 1);
    char *log = lt_test_cli_err("engram_err");
    const char *nl = log ? strchr(log, '\n') : NULL;
    CHECKF(log && strstr(log, "no tokens") && nl && !nl[1], "stderr: %s", log ? log : "(none)");
    free(log);
    CHECK(lt_test_cli("engram_v4", lt_cli_engram, v4) == 1);
    log = lt_test_cli_err("engram_v4");
    CHECKF(log && strstr(log, "v4-flash-tiny has no Engram layers (V4.1 only)"), "stderr: %s", log ? log : "(none)");
    free(log);
}
