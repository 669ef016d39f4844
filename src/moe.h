/* Mixture of experts of one layer (spec 4.4).
 *
 * Gate: s = sqrt(softplus(gate . h / gate_temp)) in fp32 (gate_temp is 1
 * in V4). Selection: tid2eid[token] on
 * the first num_hash_layers layers, else top-k of s + bias (the bias steers
 * selection only; V4.1 image tokens use bias_vl instead). Weights: s[sel] / (sum + 1e-20) x routed_scaling_factor
 * (HF adds the 1e-20; the reference divides plainly, REFERENCE mode does).
 * Experts: SwiGLU with gate clamped from above and up clamped both ways at
 * swiglu_limit, the routing weight applied before w2; plus one shared
 * expert with the same clamps and no weight.
 *
 * Dimension letters: n tokens, D hidden, E routed experts, k experts per
 * token, I moe_intermediate_size. */
#ifndef LT_MOE_H
#define LT_MOE_H

#include "numerics.h"
#include "ops.h"

typedef struct {
    int hash;              /* routes by tid2eid */
    lt_weight gate;        /* BF16 [E, D] */
    lt_vec bias;           /* F32 [E], score-routed layers */
    lt_vec bias_vl;        /* V4.1 F32 [E]: replaces bias for image tokens (none in text input) */
    lt_vec tid2eid;        /* I64 [V, k], hash layers */
    lt_weight *w1, *w3;    /* [E]: FP4 (or FP8) [I, D] */
    lt_weight *w2;         /* [E]: [D, I] */
    lt_weight sw1, sw3;    /* shared expert, FP8 [I, D] */
    lt_weight sw2;         /* FP8 [D, I] */
} lt_moe;

typedef struct {
    const uint8_t *image;  /* [n] or NULL: 1 marks an image token, routed with bias_vl (V4.1,
                            * spec 5.2); text input leaves it NULL until vision input lands */
    float *logits;         /* [n, E] gate logits, then scores */
    int32_t *sel;          /* [n, k] chosen experts */
    float *wt;             /* [n, k] their weights */
    int64_t rows;          /* rows of wg, xg, g1, u, yg: at least n and k */
    float *wg;             /* [rows] weights of a batch of experts' rows */
    int32_t *count;        /* [E + 1] tokens per expert, then offsets */
    int32_t *order;        /* [n * k] (token * k + slot), grouped by expert */
    float *xg;             /* [rows, D] the tokens of a batch of experts */
    float *g1, *u;         /* [rows, I] */
    float *yg;             /* [rows, D] */
} lt_moe_scratch;

/* Routing of n tokens: s->sel / s->wt. tokens are the input ids (hash layers). */
void lt_moe_route(const lt_moe *w, const lt_config *cfg, const lt_num *nm, lt_moe_scratch *s, const float *h,
                  const int32_t *tokens, int64_t n);

/* out[n, D] = MoE of h[n, D]; routes first (s->sel / s->wt stay valid). */
void lt_moe_forward(const lt_moe *w, const lt_config *cfg, const lt_num *nm, lt_moe_scratch *s, const float *h,
                    const int32_t *tokens, int64_t n, float *out);

#endif
