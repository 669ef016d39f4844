/* Comparison with an oracle file: one traced forward of the oracle's
 * input_ids, every trace event checked against the oracle's rows. */
#include "compare.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    lt_compare *r;
    const lt_store *oracle;
    int64_t T;
    int n_layers;
    lt_status st;  /* the first oracle problem met inside a callback */
    lt_error *err;
} tracer;

/* the oracle tensor name of dtype dt holding rows x width values; NULL when
 * absent, or (recording the problem) when it does not fit */
static const void *oracle_rows(tracer *tr, const char *name, lt_dtype dt, int64_t rows, int64_t width) {
    const lt_tensor *t = lt_store_find(tr->oracle, name);
    if (!t) return NULL;
    if (t->dtype == dt && t->ndim >= 1 && t->shape[0] == rows && lt_tensor_numel(t) == rows * width) return t->data;
    if (tr->st == LT_OK)
        tr->st = lt_fail(tr->err, LT_ERR_FORMAT, "oracle tensor '%s' is %s with %lld values but %s [%lld, %lld] "
                         "is expected", name, lt_dtype_name(t->dtype), (long long)lt_tensor_numel(t),
                         lt_dtype_name(dt), (long long)rows, (long long)width);
    return NULL;
}

static float max_abs(const float *x, int64_t n) {
    float m = 0;
    for (int64_t i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    return m;
}

static float max_diff(const float *a, const float *b, int64_t n) {
    float m = 0;
    for (int64_t i = 0; i < n; i++) m = fmaxf(m, fabsf(a[i] - b[i]));
    return m;
}

/* max|got - want| relative to max|want| (the scale of the tensor) */
static float rel_error(const float *got, const float *want, int64_t n) {
    float scale = max_abs(want, n);
    return max_diff(got, want, n) / (scale > 0 ? scale : 1);
}

static int is_mtp(const tracer *tr, const lt_trace_event *ev) { return ev->layer == tr->n_layers; }

static void on_hidden(tracer *tr, const lt_trace_event *ev) {
    char name[64];
    int mtp = is_mtp(tr, ev);
    if (mtp) snprintf(name, sizeof name, "mtp_hidden");
    else snprintf(name, sizeof name, "hidden.%d", ev->layer);
    const float *want = oracle_rows(tr, name, LT_DT_F32, tr->T - mtp, ev->width);
    if (!want) return;
    float *slot = &tr->r->hidden[ev->layer];
    *slot = fmaxf(*slot, rel_error(ev->f, want + ev->pos0 * ev->width, ev->n * ev->width));
}

/* the expert sets must match; weights are compared expert by expert */
static void on_router(tracer *tr, const lt_trace_event *ev) {
    char experts[64], weights[64];
    int mtp = is_mtp(tr, ev);
    snprintf(experts, sizeof experts, mtp ? "mtp_router.experts" : "router.%d.experts", ev->layer);
    snprintf(weights, sizeof weights, mtp ? "mtp_router.weights" : "router.%d.weights", ev->layer);
    int64_t k = ev->width;
    const int64_t *want = oracle_rows(tr, experts, LT_DT_I64, tr->T - mtp, k);
    const float *want_w = oracle_rows(tr, weights, LT_DT_F32, tr->T - mtp, k);
    if (!want || !want_w) return;
    for (int64_t t = 0; t < ev->n; t++) {
        const int64_t *e = want + (ev->pos0 + t) * k;
        const float *w = want_w + (ev->pos0 + t) * k;
        int same = 1;
        for (int64_t j = 0; j < k; j++) {
            int64_t i = 0;
            while (i < k && ev->idx[t * k + i] != e[j]) i++;
            if (i == k) same = 0;
            else tr->r->router_weights = fmaxf(tr->r->router_weights, fabsf(ev->f[t * k + i] - w[j]));
        }
        tr->r->router_rows++;
        tr->r->router_diff += !same;
    }
}

static void on_indexer(tracer *tr, const lt_trace_event *ev) {
    char name[64];
    snprintf(name, sizeof name, "indexer.%d.topk", ev->layer);
    int64_t k = ev->width;
    const int64_t *want = oracle_rows(tr, name, LT_DT_I64, tr->T, k);
    if (!want) return;
    for (int64_t t = 0; t < ev->n; t++) {
        int same = 1;
        for (int64_t j = 0; j < k; j++)
            same &= (j < ev->count[t] ? ev->idx[t * k + j] : -1) == want[(ev->pos0 + t) * k + j];
        tr->r->indexer_rows++;
        tr->r->indexer_diff += !same;
    }
}

static void on_final(tracer *tr, const lt_trace_event *ev) {
    if (ev->layer != -1) return; /* the MTP head's own final norm has no oracle */
    const float *want = oracle_rows(tr, "final_hidden", LT_DT_F32, tr->T, ev->width);
    if (want)
        tr->r->final_hidden =
            fmaxf(tr->r->final_hidden, rel_error(ev->f, want + ev->pos0 * ev->width, ev->n * ev->width));
}

static void on_event(void *ud, const lt_trace_event *ev) {
    tracer *tr = ud;
    switch (ev->kind) {
    case LT_TRACE_HIDDEN: on_hidden(tr, ev); break;
    case LT_TRACE_ROUTER: on_router(tr, ev); break;
    case LT_TRACE_INDEXER: on_indexer(tr, ev); break;
    case LT_TRACE_FINAL: on_final(tr, ev); break;
    case LT_TRACE_ENGRAM: break;
    }
}

static int64_t argmax(const float *x, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++) best = x[i] > x[best] ? i : best;
    return best;
}

/* logits per position, top-1 agreement, MTP logits (row t+1 of ours is the
 * oracle's row t) */
static void compare_logits(lt_compare *r, const float *got, const float *want, const float *got_mtp,
                           const float *want_mtp, int64_t T, int64_t V) {
    for (int64_t t = 0; t < T; t++) {
        float d = max_diff(got + t * V, want + t * V, V);
        r->logits_abs = fmaxf(r->logits_abs, d);
        r->logits_rel = fmaxf(r->logits_rel, rel_error(got + t * V, want + t * V, V));
        r->top1_agree += argmax(got + t * V, V) == argmax(want + t * V, V);
    }
    r->positions = T;
    if (!got_mtp || !want_mtp) return;
    r->mtp_logits = 0;
    for (int64_t t = 1; t < T; t++)
        r->mtp_logits = fmaxf(r->mtp_logits, rel_error(got_mtp + t * V, want_mtp + (t - 1) * V, V));
}

static void first_bad_block(lt_compare *r, double tol) {
    r->first_bad = -1;
    for (int l = 0; l < r->n_blocks && r->first_bad < 0; l++)
        if (r->hidden[l] > tol) r->first_bad = l;
}

static lt_status run_traced(lt_model *m, tracer *tr, const int32_t *ids, float *logits, float *mtp, lt_error *err) {
    lt_context *c;
    lt_status st = lt_context_create(&c, m, tr->T, err);
    if (st != LT_OK) return st;
    lt_context_set_trace(c, on_event, tr);
    st = mtp ? lt_context_eval_mtp(c, ids, tr->T, logits, mtp, err) : lt_context_eval_all(c, ids, tr->T, logits, err);
    lt_context_free(c);
    return st != LT_OK ? st : tr->st;
}

lt_status lt_compare_run(lt_model *m, const lt_store *oracle, double tol, lt_compare *r, lt_error *err) {
    const lt_config *cfg = lt_model_config(m);
    const lt_tensor *in = lt_store_find(oracle, "input_ids");
    if (!in || in->dtype != LT_DT_I64 || in->ndim != 1 || in->shape[0] < 1 || in->shape[0] > INT32_MAX)
        return lt_fail(err, LT_ERR_FORMAT, "the oracle has no input_ids I64 [T]");
    int64_t T = in->shape[0], V = cfg->vocab_size;
    tracer tr = {.r = r, .oracle = oracle, .T = T, .n_layers = cfg->n_layers, .err = err};
    memset(r, 0, sizeof *r);
    r->mtp_logits = r->final_hidden = -1;
    const float *want = oracle_rows(&tr, "logits", LT_DT_F32, T, V);
    const float *want_mtp = m->has_mtp ? oracle_rows(&tr, "mtp_logits", LT_DT_F32, T - 1, V) : NULL;
    if (tr.st != LT_OK) return tr.st;
    if (!want) return lt_fail(err, LT_ERR_FORMAT, "the oracle has no logits F32 [%lld, %lld]", (long long)T, (long long)V);
    r->n_blocks = cfg->n_layers + (want_mtp != NULL);
    for (int l = 0; l < r->n_blocks; l++) r->hidden[l] = -1;
    int32_t *ids = lt_calloc((size_t)T, sizeof *ids, "input ids", err);
    float *logits = lt_calloc((size_t)(T * V), sizeof *logits, "logits", err);
    float *mtp = want_mtp ? lt_calloc((size_t)(T * V), sizeof *mtp, "MTP logits", err) : NULL;
    lt_status st = ids && logits && (mtp || !want_mtp) ? LT_OK : LT_ERR_NOMEM;
    for (int64_t t = 0; st == LT_OK && t < T; t++) {
        int64_t id;
        memcpy(&id, (const uint8_t *)in->data + 8 * t, 8);
        if (id < 0 || id >= V) st = lt_fail(err, LT_ERR_FORMAT, "oracle input_ids[%lld] is %lld, outside the vocabulary",
                                            (long long)t, (long long)id);
        else ids[t] = (int32_t)id;
    }
    if (st == LT_OK) st = run_traced(m, &tr, ids, logits, mtp, err);
    if (st == LT_OK) compare_logits(r, logits, want, mtp, want_mtp, T, V);
    first_bad_block(r, tol);
    free(ids);
    free(logits);
    free(mtp);
    return st;
}

void lt_compare_print(const lt_compare *r, double tol, FILE *f) {
    for (int l = 0; l < r->n_blocks; l++) {
        if (r->hidden[l] < 0) continue;
        fprintf(f, "  block %2d%s residual max |dX| / max |X| = %.3g%s\n", l, l == r->n_blocks - 1 && r->mtp_logits >= 0
                ? " (MTP)" : "      ", r->hidden[l], l == r->first_bad ? "   <- first block out of tolerance" : "");
    }
    if (r->final_hidden >= 0) fprintf(f, "  final hidden (hc_head + norm): %.3g\n", r->final_hidden);
    fprintf(f, "  logits: max |dlogit| %.3g, %.3g of max |logit| (worst position); top-1 agrees at %lld/%lld\n",
            r->logits_abs, r->logits_rel, (long long)r->top1_agree, (long long)r->positions);
    if (r->mtp_logits >= 0) fprintf(f, "  MTP logits: %.3g of max |logit|\n", r->mtp_logits);
    fprintf(f, "  routing: %lld/%lld rows differ (weights max diff %.3g); indexer: %lld/%lld rows differ\n",
            (long long)r->router_diff, (long long)r->router_rows, r->router_weights, (long long)r->indexer_diff,
            (long long)r->indexer_rows);
    if (r->first_bad < 0) fprintf(f, "  every block within %.3g\n", tol);
}
