/* Mixture of experts (spec 4.4, 5.2): sqrt-softplus gate, hash or biased top-k
 * routing, clamped SwiGLU experts and the shared expert. */
#include "moe.h"
#include "kernels.h"
#include "linear.h"
#include "util.h"

#include <math.h>
#include <string.h>

/* the k best of score + bias (ties to the lower expert id) */
static void top_experts(const float *score, const lt_vec *bias, int64_t E, int k, int32_t *sel) {
    for (int j = 0; j < k; j++) {
        int32_t best = -1;
        float best_v = -INFINITY;
        for (int32_t e = 0; e < (int32_t)E; e++) {
            int taken = 0;
            for (int i = 0; i < j; i++) taken |= sel[i] == e;
            float v = score[e] + lt_vec_at(bias, e);
            if (!taken && (best < 0 || v > best_v)) { best = e; best_v = v; }
        }
        sel[j] = best;
    }
}

void lt_moe_route(const lt_moe *w, const lt_config *cfg, const lt_num *nm, lt_moe_scratch *s, const float *h,
                  const int32_t *tokens, int64_t n) {
    int64_t E = cfg->n_routed_experts;
    int k = cfg->n_experts_per_tok;
    float temp = (float)cfg->gate_temp;
    lt_num_linear(nm, &w->gate, h, n, s->logits, LT_LIN_F32);
    for (int64_t t = 0; t < n; t++) {
        float *score = s->logits + t * E;
        int32_t *sel = s->sel + t * k;
        float *wt = s->wt + t * k;
        for (int64_t e = 0; e < E; e++) score[e] = sqrtf(lt_softplus(score[e] / temp));
        if (w->hash)
            for (int j = 0; j < k; j++) sel[j] = (int32_t)lt_vec_i64(&w->tid2eid, (int64_t)tokens[t] * k + j);
        else
            top_experts(score, s->image && s->image[t] && w->bias_vl.data ? &w->bias_vl : &w->bias, E, k, sel);
        float sum = 0;
        for (int j = 0; j < k; j++) sum += wt[j] = score[sel[j]];
        if (!lt_num_ref(nm)) sum += 1e-20f;
        for (int j = 0; j < k; j++) wt[j] = wt[j] / sum * (float)cfg->routed_scaling_factor;
    }
}

/* y[n, D] = w2 . bf16(wt * silu(min(w1 x, L)) * clamp(w3 x, -L, L)) for n
 * rows x; wt (per row) may be NULL (shared expert) */
static void expert_ffn(const lt_weight *w1, const lt_weight *w3, const lt_weight *w2, const lt_config *cfg,
                       const lt_num *nm, lt_moe_scratch *s, const float *x, int64_t n, const float *wt, float *y) {
    int64_t I = w1->rows;
    float L = (float)cfg->swiglu_limit;
    lt_num_linear(nm, w1, x, n, s->g1, LT_LIN_QUANT);
    lt_num_linear(nm, w3, x, n, s->u, LT_LIN_QUANT);
    lt_kern()->swiglu(s->g1, s->u, wt, n, I, L, lt_num_ref(nm));
    lt_num_linear(nm, w2, s->g1, n, y, LT_LIN_QUANT);
}

/* s->order lists (token * k + slot) grouped by expert, s->count[e] the
 * start of expert e's run (count[E] = n * k) */
static void group_by_expert(const lt_config *cfg, lt_moe_scratch *s, int64_t n) {
    int64_t E = cfg->n_routed_experts, nk = n * cfg->n_experts_per_tok;
    memset(s->count, 0, (size_t)(E + 1) * sizeof *s->count);
    for (int64_t i = 0; i < nk; i++) s->count[s->sel[i] + 1]++;
    for (int64_t e = 0; e < E; e++) s->count[e + 1] += s->count[e];
    for (int64_t i = 0; i < nk; i++) s->order[s->count[s->sel[i]]++] = (int32_t)i;
    for (int64_t e = E; e > 0; e--) s->count[e] = s->count[e - 1]; /* the fill moved starts to ends */
    s->count[0] = 0;
}

/* out += the routed experts' outputs, in ascending expert id (the
 * reference's order of its y[idx] += sums). Consecutive experts whose
 * tokens fit the scratch rows form a batch: the w1 and w3 products of all of
 * them run as one parallel loop, then all their w2 products (a decoded
 * token's experts: two fork/joins instead of three per expert). An expert
 * with more tokens than the scratch rows (only if a token picks an expert
 * twice) runs alone in slices. */
static void routed_experts(const lt_moe *w, const lt_config *cfg, const lt_num *nm, lt_moe_scratch *s, const float *h,
                           float *out) {
    enum { MAXE = LT_BATCH_MAX / 2 };
    const int64_t D = cfg->dim, E = cfg->n_routed_experts, k = cfg->n_experts_per_tok, I = w->w1[0].rows;
    int64_t ids[MAXE], first[MAXE], off[MAXE + 1];
    lt_product p[LT_BATCH_MAX];
    for (int64_t e = 0, done = 0; e < E;) { /* done: rows of expert e already run (more than the scratch holds) */
        int ne = 0;
        off[0] = 0;
        while (e < E && ne < MAXE && off[ne] < s->rows) {
            int64_t m = s->count[e + 1] - s->count[e] - done, take = LT_MIN_I64(m, s->rows - off[ne]);
            if (m == 0) {
                e++, done = 0;
                continue;
            }
            if (take < m && ne > 0) break; /* whole in the next batch; split only when alone */
            for (int64_t i = 0; i < take; i++) {
                int32_t ts = s->order[s->count[e] + done + i];
                memcpy(s->xg + (off[ne] + i) * D, h + (ts / k) * D, (size_t)D * sizeof *h);
                s->wg[off[ne] + i] = s->wt[ts];
            }
            ids[ne] = e, first[ne] = done, off[ne + 1] = off[ne] + take;
            ne++;
            done += take;
            if (done == s->count[e + 1] - s->count[e]) e++, done = 0;
        }
        if (!ne) break; /* only unused experts were left */
        for (int j = 0; j < ne; j++) {
            int64_t m = off[j + 1] - off[j];
            p[2 * j] = (lt_product){&w->w1[ids[j]], s->xg + off[j] * D, m, s->g1 + off[j] * I, I, 0, I, 0};
            p[2 * j + 1] = (lt_product){&w->w3[ids[j]], s->xg + off[j] * D, m, s->u + off[j] * I, I, 0, I, 0};
        }
        lt_num_linear_batch(nm, p, 2 * ne, LT_LIN_QUANT);
        lt_kern()->swiglu(s->g1, s->u, s->wg, off[ne], I, (float)cfg->swiglu_limit, lt_num_ref(nm));
        for (int j = 0; j < ne; j++)
            p[j] = (lt_product){&w->w2[ids[j]], s->g1 + off[j] * I, off[j + 1] - off[j], s->yg + off[j] * D, D, 0, D, 0};
        lt_num_linear_batch(nm, p, ne, LT_LIN_QUANT);
        for (int j = 0; j < ne; j++)
            for (int64_t i = 0; i < off[j + 1] - off[j]; i++) {
                float *o = out + (s->order[s->count[ids[j]] + first[j] + i] / k) * D;
                for (int64_t d = 0; d < D; d++) o[d] += s->yg[(off[j] + i) * D + d];
            }
    }
}

void lt_moe_forward(const lt_moe *w, const lt_config *cfg, const lt_num *nm, lt_moe_scratch *s, const float *h,
                    const int32_t *tokens, int64_t n, float *out) {
    lt_moe_route(w, cfg, nm, s, h, tokens, n);
    group_by_expert(cfg, s, n);
    int64_t nd = n * cfg->dim;
    if (lt_num_shared_expert_last(nm)) {
        memset(out, 0, (size_t)nd * sizeof *out);
        routed_experts(w, cfg, nm, s, h, out);
        expert_ffn(&w->sw1, &w->sw3, &w->sw2, cfg, nm, s, h, n, NULL, s->yg);
        for (int64_t i = 0; i < nd; i++) out[i] += s->yg[i];
    } else {
        expert_ffn(&w->sw1, &w->sw3, &w->sw2, cfg, nm, s, h, n, NULL, out);
        routed_experts(w, cfg, nm, s, h, out);
    }
    lt_num_store(nm, out, nd);
}
