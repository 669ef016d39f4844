/* Test helper: oracle fixtures (see oracle_fixture.h). */
#include "oracle_fixture.h"
#include "compare.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

int fixture_open(fixture *f, const char *name, lt_numerics numerics) {
    char dir[256], path[300];
    lt_error err = {0};
    memset(f, 0, sizeof *f);
    f->name = name;
    snprintf(dir, sizeof dir, "tests/fixtures/%s", name);
    snprintf(path, sizeof path, "%s/oracle.safetensors", dir);
    lt_model_params p = {.numerics = numerics};
    lt_status st = lt_model_open(&f->m, dir, &p, &err);
    CHECKF(st == LT_OK, "%s: %s", name, err.msg);
    if (st != LT_OK) return 0;
    st = lt_store_open_file(&f->oracle, path, &err);
    CHECKF(st == LT_OK, "%s: %s", name, err.msg);
    return st == LT_OK;
}

void fixture_close(fixture *f) {
    lt_model_close(f->m);
    lt_store_close(&f->oracle);
}

const void *oracle_data(const fixture *f, const char *name, lt_dtype dt, int64_t numel) {
    const lt_tensor *t = lt_store_find(&f->oracle, name);
    int ok = t && t->dtype == dt && lt_tensor_numel(t) == numel;
    CHECKF(ok, "%s: oracle tensor %s missing or mis-shaped", f->name, name);
    return ok ? t->data : NULL;
}

int64_t oracle_len(const fixture *f, const char *name) {
    const lt_tensor *t = lt_store_find(&f->oracle, name);
    CHECKF(t != NULL, "%s: oracle tensor %s missing", f->name, name);
    return t ? t->shape[0] : 0;
}

int32_t *oracle_ids(const fixture *f, const char *name, int64_t *n) {
    const lt_tensor *t = lt_store_find(&f->oracle, name);
    *n = t ? lt_tensor_numel(t) : 0;
    const int64_t *src = oracle_data(f, name, LT_DT_I64, *n);
    if (!src) return NULL;
    int32_t *ids = malloc((size_t)*n * sizeof *ids);
    for (int64_t i = 0; i < *n; i++) ids[i] = (int32_t)src[i];
    return ids;
}

float max_abs(const float *x, int64_t n) {
    float m = 0;
    for (int64_t i = 0; i < n; i++) m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    return m;
}

float max_diff(const float *a, const float *b, int64_t n) {
    float m = 0;
    for (int64_t i = 0; i < n; i++) m = fabsf(a[i] - b[i]) > m ? fabsf(a[i] - b[i]) : m;
    return m;
}

int64_t argmax(const float *x, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

void check_greedy(const char *name) {
    fixture f;
    if (!fixture_open(&f, name, LT_NUMERICS_EXACT)) return;
    int64_t P, N, V = lt_model_vocab_size(f.m);
    int32_t *prompt = oracle_ids(&f, "greedy_prompt", &P), *want = oracle_ids(&f, "greedy_tokens", &N);
    float *logits = calloc((size_t)V, sizeof *logits);
    lt_context *c = NULL;
    lt_error err = {0};
    CHECKF(lt_context_create(&c, f.m, P + N, &err) == LT_OK, "%s", err.msg);
    if (c && prompt && want) {
        CHECKF(N >= 32, "%s: %lld greedy tokens", name, (long long)N);
        CHECKF(lt_context_eval(c, prompt, P, logits, &err) == LT_OK, "%s", err.msg);
        int64_t same = 0;
        for (int64_t i = 0; i < N; i++) {
            int32_t tok = (int32_t)argmax(logits, V);
            if (tok != want[i]) break;
            same++;
            CHECKF(lt_context_eval(c, &tok, 1, logits, &err) == LT_OK, "%s", err.msg);
        }
        CHECKF(same == N, "%s: greedy continuation follows the oracle for %lld of %lld tokens", name,
               (long long)same, (long long)N);
    }
    free(logits);
    free(prompt);
    free(want);
    lt_context_free(c);
    fixture_close(&f);
}

void check_exact(const char *name, const char *oracle) {
    fixture f;
    if (!fixture_open(&f, name, LT_NUMERICS_EXACT)) return;
    lt_compare r;
    lt_error err = {0};
    lt_status st = lt_compare_run(f.m, &f.oracle, EXACT_HIDDEN_TOL, &r, &err);
    CHECKF(st == LT_OK, "%s: %s", name, err.msg);
    if (st == LT_OK) {
        int mtp = f.m->has_mtp;
        printf("  %s, EXACT numerics against %s:\n", name, oracle);
        lt_compare_print(&r, EXACT_HIDDEN_TOL, stdout);
        CHECKF(r.logits_rel <= EXACT_LOGIT_TOL, "%s: max |dlogit| is %g of max |logit| at the worst position", name,
               r.logits_rel);
        CHECKF(r.positions == oracle_len(&f, "input_ids") && r.top1_agree == r.positions, "%s: top-1 %lld/%lld",
               name, (long long)r.top1_agree, (long long)r.positions);
        CHECKF(r.first_bad < 0, "%s: block %d is the first out of tolerance (%g)", name, r.first_bad,
               r.first_bad >= 0 ? r.hidden[r.first_bad] : 0);
        CHECKF(r.n_blocks == lt_model_config(f.m)->n_layers + mtp, "%s: %d blocks compared", name, r.n_blocks);
        CHECKF(!mtp || (r.mtp_logits >= 0 && r.mtp_logits <= EXACT_LOGIT_TOL), "%s: MTP logits off by %g of max", name,
               r.mtp_logits);
        CHECKF(r.final_hidden >= 0 && r.final_hidden <= EXACT_HIDDEN_TOL, "%s: final hidden off by %g", name,
               r.final_hidden);
        CHECKF(r.router_rows > 0 && r.router_diff == 0 && r.router_weights <= 1e-4, "%s: %lld/%lld routing rows "
               "differ, weights by %g", name, (long long)r.router_diff, (long long)r.router_rows, r.router_weights);
        CHECKF(r.indexer_rows > 0 && r.indexer_diff == 0, "%s: %lld/%lld indexer rows differ", name,
               (long long)r.indexer_diff, (long long)r.indexer_rows);
    }
    fixture_close(&f);
}
