/* `lantern perplexity` in process against the oracle: the text whose tokens
 * are the oracle's input_ids (BOS + the rest) must score the mean NLL that
 * the oracle's own logits give those ids, to 1e-4 nats (EXACT numerics). */
#include "test.h"

#include "cli.h"
#include "cli_capture.h"
#include "safetensors.h"
#include "tokenizer.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURE "tests/fixtures/v4-flash-tiny"

/* mean over t of -ln softmax(logits[t])[ids[t + 1]], t = 0..T-2 */
static double oracle_nll(const int64_t *ids, const float *logits, int64_t T, int64_t V) {
    double sum = 0;
    for (int64_t t = 0; t + 1 < T; t++) {
        const float *l = logits + t * V;
        double mx = l[0], z = 0;
        for (int64_t i = 1; i < V; i++) mx = l[i] > mx ? l[i] : mx;
        for (int64_t i = 0; i < V; i++) z += exp(l[i] - mx);
        sum += log(z) + mx - l[ids[t + 1]];
    }
    return sum / (double)(T - 1);
}

/* a file whose text tokenizes to input_ids[1..T); its path, or NULL */
static const char *oracle_text_file(const int64_t *ids, int64_t T) {
    lt_tokenizer *tok = NULL;
    lt_error err = {0};
    const char *path = NULL;
    int32_t *body = malloc((size_t)T * sizeof *body);
    for (int64_t t = 1; t < T; t++) body[t - 1] = (int32_t)ids[t];
    char *text = NULL;
    size_t len = 0;
    lt_token_vec again = {0};
    if (lt_tokenizer_load(&tok, FIXTURE, &err) == LT_OK &&
        lt_tokenizer_decode(tok, body, (size_t)(T - 1), 0, &text, &len, &err) == LT_OK &&
        lt_tokenizer_encode(tok, text, len, 0, &again, &err) == LT_OK) {
        int same = again.n == (size_t)(T - 1) && !memcmp(again.ids, body, again.n * sizeof *body);
        CHECKF(same, "the oracle's ids do not come back from their text (%zu tokens)", again.n);
        if (same) path = lt_test_write_temp("ppl.txt", text, len);
    }
    CHECKF(!err.msg[0], "%s", err.msg);
    lt_token_vec_free(&again);
    free(text);
    free(body);
    lt_tokenizer_free(tok);
    return path;
}

static json_t *run_json(char **argv) {
    CHECK(lt_test_cli("ppl", lt_cli_perplexity, argv) == 0);
    char *out = lt_test_cli_out("ppl");
    json_t *r = out ? json_loads(out, 0, NULL) : NULL;
    CHECKF(r != NULL, "not JSON: %s", out ? out : "(none)");
    free(out);
    return r;
}

LT_TEST(cli_perplexity, matches_the_oracle_logits) {
    lt_store o;
    lt_error err = {0};
    if (lt_store_open_file(&o, FIXTURE "/oracle.safetensors", &err) != LT_OK) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    const lt_tensor *in = lt_store_find(&o, "input_ids"), *lg = lt_store_find(&o, "logits");
    const char *path = in && lg ? oracle_text_file(in->data, in->shape[0]) : NULL;
    if (path) {
        int64_t T = in->shape[0];
        double want = oracle_nll(in->data, lg->data, T, lg->shape[1]);
        char ctx[32];
        snprintf(ctx, sizeof ctx, "%lld", (long long)T);
        char *one[] = {"perplexity", "-m", FIXTURE, (char *)path, "--ctx", ctx, "--numerics", "exact", "--json", NULL};
        json_t *r = run_json(one);
        double got = json_real_value(json_object_get(r, "nll"));
        printf("  mean NLL %.6f nats/token, the oracle's %.6f\n", got, want);
        CHECKF(fabs(got - want) < 1e-4, "mean NLL %.6f, the oracle's logits give %.6f", got, want);
        CHECK(json_integer_value(json_object_get(r, "tokens")) == T);
        CHECK(json_integer_value(json_object_get(r, "scored")) == T - 1);
        json_decref(r);
        /* windows of 16 every 8 tokens: 0, 8, ..., 56 (the last one ends at T = 67) */
        char *sliding[] = {"perplexity", "-m", FIXTURE, (char *)path, "--ctx", "16", "--stride", "8", "--numerics",
                           "exact", "--json", NULL};
        r = run_json(sliding);
        CHECK(json_integer_value(json_object_get(r, "scored")) == T - 1);
        CHECKF(json_array_size(json_object_get(r, "windows")) == (size_t)((T - 16 + 7) / 8 + 1), "%zu windows",
               json_array_size(json_object_get(r, "windows")));
        double nll = json_real_value(json_object_get(r, "nll"));
        CHECKF(isfinite(nll) && nll > 0, "sliding NLL %g", nll);
        json_decref(r);
    }
    lt_store_close(&o);
}

LT_TEST(cli_perplexity, usage_and_runtime_errors) {
    char *no_file[] = {"perplexity", "-m", FIXTURE, NULL};
    char *big_stride[] = {"perplexity", "-m", FIXTURE, "x.txt", "--stride", "600", NULL};
    char *missing[] = {"perplexity", "-m", FIXTURE, "tests/fixtures/no-such-file.txt", NULL};
    static const char fox[] = "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs on.\n";
    char *text[] = {"perplexity", "-m", FIXTURE, (char *)lt_test_write_temp("fox.txt", fox, sizeof fox - 1), "--ctx",
                    "32", NULL};
    CHECK(lt_test_cli("ppl_err", lt_cli_perplexity, no_file) == 2);
    CHECK(lt_test_cli("ppl_err", lt_cli_perplexity, big_stride) == 2);
    CHECK(lt_test_cli("ppl_err", lt_cli_perplexity, missing) == 1);
    char *log = lt_test_cli_err("ppl_err");
    CHECKF(log && strstr(log, "no-such-file.txt"), "stderr: %s", log ? log : "(none)");
    free(log);
    CHECK(lt_test_cli("ppl_text", lt_cli_perplexity, text) == 0);
    char *out = lt_test_cli_out("ppl_text");
    CHECKF(out && strstr(out, "window 1: tokens [0, 32)") && strstr(out, "perplexity"), "stdout: %.300s",
           out ? out : "(none)");
    free(out);
}
