/* The two numeric modes of the forward pass (lt_numerics in lantern.h).
 *
 * EXACT: fp32 math on dequantised weights, no rounding anywhere; this is what
 * HF transformers computes in float32 (spec 8) and what the oracle compares.
 * REFERENCE: DeepSeek's inference code (spec 3.4-3.6): activations live in
 * bf16 between steps, FP8/FP4 matmuls see FP8-quantised activations (blocks
 * of weight_block_size[1], power-of-two scales) and give bf16 outputs.
 *
 * Model code states every rounding point once through these helpers; in
 * EXACT mode they do nothing beyond the product itself. */
#ifndef LT_NUMERICS_H
#define LT_NUMERICS_H

#include "lantern.h"
#include "weights.h"
#include "linear.h"


typedef struct {
    lt_numerics mode;
    int act_block;   /* activation quantisation block: weight_block_size[1] */
    int qat;         /* V4.1: the QAT round trips are part of the model's forward
                      * (HF applies them in fp32 too), so they run in both modes;
                      * like HF they skip rows whose width is not a multiple of
                      * the block */
} lt_num;

/* How a product rounds in REFERENCE mode. */
typedef enum {
    LT_LIN_QUANT,  /* FP8 act quant when the weight is FP8/FP4; bf16 output (reference `linear`) */
    LT_LIN_BF16,   /* no act quant, bf16 output (wo_a: dequantised to bf16 by convert.py) */
    LT_LIN_F32     /* fp32 throughout (gate, compressor, head, mHC) */
} lt_lin_kind;

/* Y[n, W->rows] = X[n, W->cols] . W^T with the rounding of `kind`. */
void lt_num_linear(const lt_num *nm, const lt_weight *W, const float *X, int64_t n, float *Y, lt_lin_kind kind);

/* Row range r0..r1 of the product, written at Y[t*ldy + r]; X is [n, W->cols]. */
void lt_num_linear_rows(const lt_num *nm, const lt_weight *W, const float *X, int64_t n, float *Y, int64_t ldy,
                        int64_t r0, int64_t r1, lt_lin_kind kind);

/* Independent products as one parallel loop (linear.h, lt_linear_batch),
 * each with the rounding of `kind`; sets their act_block. */
void lt_num_linear_batch(const lt_num *nm, lt_product *p, int count, lt_lin_kind kind);

/* A bf16 storage point: rounds x[0..n) in REFERENCE mode. */
void lt_num_store(const lt_num *nm, float *x, int64_t n);

/* Whether a QAT round trip (spec 3.5) over rows of `width` in blocks of
 * `block` happens: always in REFERENCE mode; with nm->qat (V4.1, both
 * modes) only where width is a multiple of block. The KV round trips happen
 * as the caches store their rows (kvrow.h, lt_attention_formats). */
int lt_num_qat_on(const lt_num *nm, int64_t width, int block);

/* The FP4 round trip with power-of-two scales per 32 over whole rows of
 * x [n, stride] (index queries and keys), where lt_num_qat_on says so. */
void lt_num_qat_fp4(const lt_num *nm, float *x, int64_t n, int64_t stride);

/* Per-head query rescale q *= rsqrt(mean(q^2) + eps) of q[0..n) (V4). */
void lt_num_q_rescale(const lt_num *nm, float *q, int64_t n, float eps);

/* Whether the MoE adds the shared expert after the routed experts (else
 * before them). */
int lt_num_shared_expert_last(const lt_num *nm);

static inline int lt_num_ref(const lt_num *nm) { return nm->mode == LT_NUMERICS_REFERENCE; }

#endif
