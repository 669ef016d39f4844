/* Sampling: penalties, greedy, top-k, temperature, top-p, min-p, a seeded
 * xoshiro256** draw; and stop conditions (ids, strings, max tokens). See
 * sample.h for the order of the steps and each knob's exact math. */
#include "sample.h"

#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- random numbers ----------------------------------------------------- */

void lt_rng_seed(lt_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = lt_splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t lt_rng_next(lt_rng *r) {
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double lt_rng_uniform(lt_rng *r) { return (double)(lt_rng_next(r) >> 11) * 0x1.0p-53; }

/* ---- candidate filtering ------------------------------------------------ */

/* Most probable first, lower id first on ties (a total, deterministic order). */
static int before(const lt_token_prob *a, const lt_token_prob *b) {
    return a->p != b->p ? a->p > b->p : a->id < b->id;
}

static int cmp_cand(const void *a, const void *b) { return before(a, b) ? -1 : before(b, a) ? 1 : 0; }

static void swap_cand(lt_token_prob *c, int a, int b) {
    lt_token_prob t = c[a];
    c[a] = c[b];
    c[b] = t;
}

/* Moves the k best of m candidates to the front (quickselect, Lomuto). */
static void select_top(lt_token_prob *c, int m, int k) {
    int lo = 0, hi = m - 1;
    while (lo < hi) {
        int store = lo;
        swap_cand(c, lo + (hi - lo) / 2, hi);
        for (int i = lo; i < hi; i++)
            if (before(&c[i], &c[hi])) swap_cand(c, i, store++);
        swap_cand(c, store, hi);
        if (store == k) return;
        if (store < k) lo = store + 1;
        else hi = store - 1;
    }
}

/* Sorts the head of the distribution that top-p can reach: candidates of
 * probability >= t, lowering t until their mass covers top_p (then the
 * kept prefix lies inside the head). Returns the head's size. */
static int sort_head(lt_token_prob *c, int m, float top_p) {
    for (float t = 1e-3f;; t *= 1e-2f) {
        int h = 0, all = t < 1e-12f;
        double mass = 0;
        for (int i = 0; i < m; i++)
            if (all || c[i].p >= t) swap_cand(c, i, h), mass += c[h++].p;
        if (mass >= top_p || all) {
            qsort(c, (size_t)h, sizeof *c, cmp_cand);
            return h;
        }
    }
}

static int top_p_active(const lt_sample_params *p) { return p->top_p > 0 && p->top_p < 1; }

/* top-k -> temperature -> softmax -> top-p -> min-p -> renormalise. When
 * sorted is 0 and top-p is off, candidates stay in any order. */
static int filter(const lt_sample_params *p, const float *logits, int32_t n, lt_token_prob *c, int sorted) {
    int m = n;
    for (int i = 0; i < n; i++) c[i] = (lt_token_prob){i, logits[i]};
    if (p->top_k > 0 && p->top_k < n) select_top(c, n, p->top_k), m = p->top_k;
    float mx = -INFINITY;
    for (int i = 0; i < m; i++) mx = fmaxf(mx, c[i].p);
    double sum = 0;
    for (int i = 0; i < m; i++) sum += c[i].p = expf((c[i].p - mx) / p->temperature);
    for (int i = 0; i < m; i++) c[i].p = (float)(c[i].p / sum);
    if (top_p_active(p)) {
        int h = sort_head(c, m, p->top_p), keep = 0;
        double cum = 0;
        while (keep < h && cum < p->top_p) cum += c[keep++].p;
        m = keep;
    } else if (sorted) {
        qsort(c, (size_t)m, sizeof *c, cmp_cand);
    }
    if (p->min_p > 0) {
        float pmax = 0;
        for (int i = 0; i < m; i++) pmax = fmaxf(pmax, c[i].p);
        int keep = 0;
        for (int i = 0; i < m; i++)
            if (c[i].p >= p->min_p * pmax) c[keep++] = c[i];
        m = keep;
    }
    sum = 0;
    for (int i = 0; i < m; i++) sum += c[i].p;
    for (int i = 0; i < m; i++) c[i].p = (float)(c[i].p / sum);
    return m;
}

int lt_sample_distribution(const lt_sample_params *p, const float *logits, int32_t n, lt_token_prob *out) {
    return filter(p, logits, n, out, 1);
}

/* ---- the sampler -------------------------------------------------------- */

struct lt_sampler {
    lt_sample_params p;
    lt_rng rng;
    int32_t n_vocab;
    int32_t *recent; /* ring of the last penalty_last_n accepted tokens */
    int n_recent, head;
    int32_t *counts;     /* [n_vocab] scratch, all zero between calls */
    lt_token_prob *cand; /* [n_vocab] scratch */
};

lt_status lt_sampler_create(lt_sampler **out, const lt_sample_params *p, int32_t n_vocab, lt_error *err) {
    *out = NULL;
    if (n_vocab <= 0) return lt_fail(err, LT_ERR_ARG, "sampler vocabulary size %d must be positive", n_vocab);
    if (!(p->temperature <= 0 || isfinite(p->temperature)) || isnan(p->top_p) || isnan(p->min_p))
        return lt_fail(err, LT_ERR_ARG, "sampling parameters must be finite numbers");
    lt_sampler *s = lt_calloc(1, sizeof *s, "sampler", err);
    if (!s) return LT_ERR_NOMEM;
    s->p = *p;
    if (s->p.penalty_last_n <= 0) s->p.penalty_last_n = 64;
    s->n_vocab = n_vocab;
    s->recent = lt_calloc((size_t)s->p.penalty_last_n, sizeof *s->recent, "penalty window", err);
    s->counts = lt_calloc((size_t)n_vocab, sizeof *s->counts, "sampler counts", err);
    s->cand = lt_calloc((size_t)n_vocab, sizeof *s->cand, "sampler candidates", err);
    if (!s->recent || !s->counts || !s->cand) {
        lt_sampler_free(s);
        return LT_ERR_NOMEM;
    }
    lt_rng_seed(&s->rng, p->seed);
    *out = s;
    return LT_OK;
}

void lt_sampler_free(lt_sampler *s) {
    if (!s) return;
    free(s->recent);
    free(s->counts);
    free(s->cand);
    free(s);
}

void lt_sampler_accept(lt_sampler *s, int32_t token) {
    if (token < 0 || token >= s->n_vocab) return;
    s->recent[s->head] = token;
    s->head = (s->head + 1) % s->p.penalty_last_n;
    if (s->n_recent < s->p.penalty_last_n) s->n_recent++;
}

static int penalties_on(const lt_sample_params *p) {
    return (p->repetition_penalty > 0 && p->repetition_penalty != 1) || p->presence_penalty != 0 ||
           p->frequency_penalty != 0;
}

/* Each distinct token of the window once: counted in the first pass,
 * penalised and its count cleared in the second. */
static void penalize(lt_sampler *s, float *logits) {
    const lt_sample_params *p = &s->p;
    float rep = p->repetition_penalty > 0 ? p->repetition_penalty : 1;
    for (int i = 0; i < s->n_recent; i++) s->counts[s->recent[i]]++;
    for (int i = 0; i < s->n_recent; i++) {
        int32_t t = s->recent[i], c = s->counts[t];
        if (!c) continue;
        float l = logits[t];
        l = l > 0 ? l / rep : l * rep;
        logits[t] = l - p->presence_penalty - p->frequency_penalty * (float)c;
        s->counts[t] = 0;
    }
}

static int32_t argmax(const float *logits, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

int32_t lt_sampler_sample(lt_sampler *s, float *logits) {
    if (penalties_on(&s->p)) penalize(s, logits);
    if (s->p.temperature <= 0) return argmax(logits, s->n_vocab);
    int m = filter(&s->p, logits, s->n_vocab, s->cand, 0);
    double u = lt_rng_uniform(&s->rng), cum = 0;
    for (int i = 0; i < m; i++) {
        cum += s->cand[i].p;
        if (u < cum) return s->cand[i].id;
    }
    return s->cand[m - 1].id; /* u within rounding of 1 */
}

/* ---- stop conditions ---------------------------------------------------- */

lt_status lt_stop_init(lt_stop *s, const char *const *strings, int n_strings, const int32_t *ids, int n_ids,
                       int64_t max_tokens, lt_error *err) {
    memset(s, 0, sizeof *s);
    if (n_strings < 0 || n_strings > LT_STOP_MAX_STRINGS)
        return lt_fail(err, LT_ERR_ARG, "%d stop strings; at most %d are supported", n_strings, LT_STOP_MAX_STRINGS);
    if (n_ids < 0 || n_ids > LT_STOP_MAX_IDS)
        return lt_fail(err, LT_ERR_ARG, "%d stop tokens; at most %d are supported", n_ids, LT_STOP_MAX_IDS);
    if (max_tokens < 0) return lt_fail(err, LT_ERR_ARG, "max tokens is %lld but must be >= 0", (long long)max_tokens);
    for (int i = 0; i < n_strings; i++) {
        size_t n = strlen(strings[i]);
        if (!n || n > LT_STOP_MAX_LEN)
            return lt_fail(err, LT_ERR_ARG, "stop string %d is %zu bytes; it must have 1 to %d", i, n, LT_STOP_MAX_LEN);
        memcpy(s->strings[i], strings[i], n + 1);
    }
    memcpy(s->ids, ids, (size_t)n_ids * sizeof *ids);
    s->n_strings = n_strings, s->n_ids = n_ids, s->max_tokens = max_tokens;
    return LT_OK;
}

/* Length of the longest suffix of t that is a proper prefix of a stop string. */
static size_t stop_prefix_suffix(const lt_stop *s, const char *t, size_t n) {
    size_t hold = 0;
    for (int k = 0; k < s->n_strings; k++) {
        size_t sl = strlen(s->strings[k]);
        for (size_t l = LT_MIN(sl - 1, n); l > hold; l--)
            if (!memcmp(t + n - l, s->strings[k], l)) { hold = l; break; }
    }
    return hold;
}

lt_stop_reason lt_stop_token(lt_stop *s, int32_t id, const char *text, size_t len, char *out, size_t *out_len) {
    size_t n = s->n_held;
    memcpy(out, s->held, n);
    s->n_held = 0;
    s->n_tokens++;
    for (int i = 0; i < s->n_ids; i++)
        if (id == s->ids[i]) { *out_len = n; return LT_STOP_TOKEN; }
    memcpy(out + n, text, len);
    n += len;
    const char *first = NULL;
    for (int k = 0; k < s->n_strings; k++) {
        const char *hit = memmem(out, n, s->strings[k], strlen(s->strings[k]));
        if (hit && (!first || hit < first)) first = hit;
    }
    if (first) { *out_len = (size_t)(first - out); return LT_STOP_STRING; }
    if (s->max_tokens && s->n_tokens >= s->max_tokens) { *out_len = n; return LT_STOP_LENGTH; }
    s->n_held = stop_prefix_suffix(s, out, n);
    memcpy(s->held, out + n - s->n_held, s->n_held);
    *out_len = n - s->n_held;
    return LT_STOP_NONE;
}

size_t lt_stop_flush(lt_stop *s, char *out) {
    size_t n = s->n_held;
    memcpy(out, s->held, n);
    s->n_held = 0;
    return n;
}
