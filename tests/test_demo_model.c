/* The embedded default model (models/demo, issue 7): Lantern's greedy
 * continuations in exact numerics equal HF transformers' on the exported
 * FP8/FP4 checkpoint (models/demo/expected_greedy.json, written by
 * tools/demo_model/export.py), and the prompts tokenize to the same ids. */
#include "test.h"

#include "model.h"
#include "tokenizer.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define DEMO_DIR "models/demo"

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Greedy decode with the cache: prefill the prompt, then one token at a time. */
static void check_prompt(lt_model *m, lt_tokenizer *tok, json_t *p) {
    json_t *ids = json_object_get(p, "ids"), *want = json_object_get(p, "greedy");
    const char *text = json_string_value(json_object_get(p, "text"));
    int64_t n_ids = (int64_t)json_array_size(ids), n_want = (int64_t)json_array_size(want);
    int V = lt_model_vocab_size(m);
    int32_t *prompt = calloc((size_t)n_ids, sizeof *prompt);
    float *logits = calloc((size_t)V, sizeof *logits);
    for (int64_t i = 0; i < n_ids; i++) prompt[i] = (int32_t)json_integer_value(json_array_get(ids, (size_t)i));

    /* the prompt ids are BOS + the tokenizer's encoding of the text */
    lt_token_vec enc = {0};
    lt_error err = {0};
    CHECKF(lt_tokenizer_encode(tok, text, strlen(text), 1, &enc, &err) == LT_OK, "%s", err.msg);
    CHECKF((int64_t)enc.n == n_ids - 1, "'%s': %lld tokens, HF %lld", text, (long long)enc.n, (long long)n_ids - 1);
    for (int64_t i = 0; i < (int64_t)enc.n && i + 1 < n_ids; i++)
        CHECKF(enc.ids[i] == prompt[i + 1], "'%s': token %lld is %d, HF %d", text, (long long)i, enc.ids[i], prompt[i + 1]);
    lt_token_vec_free(&enc);

    lt_context *c = NULL;
    CHECKF(lt_context_create(&c, m, n_ids + n_want, &err) == LT_OK, "%s", err.msg);
    if (c && lt_context_eval(c, prompt, n_ids, logits, &err) == LT_OK) {
        int64_t same = 0;
        for (int64_t i = 0; i < n_want; i++) {
            int32_t t = argmax(logits, V);
            if (t != json_integer_value(json_array_get(want, (size_t)i))) break;
            same++;
            if (lt_context_eval(c, &t, 1, logits, &err) != LT_OK) break;
        }
        CHECKF(same == n_want, "'%s': greedy agrees for %lld of %lld tokens", text, (long long)same, (long long)n_want);
    }
    lt_context_free(c);
    free(logits);
    free(prompt);
}

LT_TEST(demo_model, greedy_equals_hf_exact) {
    json_error_t je;
    json_t *root = json_load_file(DEMO_DIR "/expected_greedy.json", 0, &je);
    CHECKF(root != NULL, "%s/expected_greedy.json: %s", DEMO_DIR, je.text);
    if (!root) return;
    lt_model *m = NULL;
    lt_tokenizer *tok = NULL;
    lt_error err = {0};
    lt_model_params mp = {.numerics = LT_NUMERICS_EXACT};
    CHECKF(lt_model_open(&m, DEMO_DIR, &mp, &err) == LT_OK, "%s", err.msg);
    CHECKF(lt_tokenizer_load(&tok, DEMO_DIR, &err) == LT_OK, "%s", err.msg);
    json_t *prompts = json_object_get(root, "prompts");
    CHECK(json_array_size(prompts) == 3);
    if (m && tok)
        for (size_t i = 0; i < json_array_size(prompts); i++) check_prompt(m, tok, json_array_get(prompts, i));
    lt_tokenizer_free(tok);
    lt_model_close(m);
    json_decref(root);
}
