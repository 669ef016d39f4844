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

#include <math.h>

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

/* A bf16 storage point: rounds x[0..n) in REFERENCE mode. */
void lt_num_store(const lt_num *nm, float *x, int64_t n);

/* The QAT round trips (spec 3.5), no-ops in EXACT mode unless nm->qat: FP8
 * with blocks of `block` over each row's first `width` values, or FP4 over
 * whole rows, with power-of-two scales per 32 values or (V4.1 compressed KV)
 * E4M3 scales per `block` values, s = e4m3(max(amax, 6 2^-9) / 6). x is
 * [n, stride]. */
void lt_num_qat_fp8(const lt_num *nm, float *x, int64_t n, int64_t stride, int64_t width, int block);
void lt_num_qat_fp4(const lt_num *nm, float *x, int64_t n, int64_t stride);
void lt_num_qat_fp4_e4m3(const lt_num *nm, float *x, int64_t n, int64_t stride, int block);

/* Per-head query rescale q *= rsqrt(mean(q^2) + eps) of q[0..n) (V4). */
void lt_num_q_rescale(const lt_num *nm, float *q, int64_t n, float eps);

/* sparse_attn_kernel (DeepSeek inference/kernel.py) walks a query's index
 * row (topk_idxs) in blocks of `block = 64` slots: its online softmax. */
#define LT_SPARSE_ATTN_BLOCK 64

/* The running state of that online softmax: scores_max and sum_exp. */
typedef struct {
    float max, sum;
} lt_num_attn_acc;

#define LT_NUM_ATTN_ACC_INIT {-INFINITY, 0.0f}

/* REFERENCE: one block of the online softmax (n <= LT_SPARSE_ATTN_BLOCK
 * slots, in index-row order; a padding slot (-1) has the score -INFINITY):
 * max' = max(max, scores), r = exp(max - max'), p[j] = bf16(exp(s_j - max'))
 * (the operand of P.V), sum = sum * r + the fp32 sum of the unrounded terms.
 * Returns r, the factor the output accumulator is scaled by before this
 * block's P.V is added. */
float lt_num_attn_block(lt_num_attn_acc *acc, float *p, int64_t n);

/* REFERENCE: the divisor of the accumulated P.V after the last block:
 * sum + exp(sink - max) (the sink never enters the max). */
float lt_num_attn_divisor(const lt_num_attn_acc *acc, float sink);

/* sparse_attn's softmax of one head with its sink: p[0..n) holds the scores
 * on entry and the weights of P.V on return; returns the divisor of P.V (1 in
 * EXACT mode, where p is normalised). REFERENCE: the rows of one block
 * (n <= LT_SPARSE_ATTN_BLOCK); lt_attention_head runs longer rows block by
 * block with lt_num_attn_block, rescaling its accumulator in between. */
float lt_num_attn_softmax(const lt_num *nm, float *p, int64_t n, float sink);

/* One lightning-indexer score, sum_h wt[h] ReLU(q_h . k) over hi heads of di
 * values (q [hi, di]). */
float lt_num_index_score(const lt_num *nm, const float *q, const float *wt, const float *k, int64_t hi, int64_t di);

/* Whether the MoE adds the shared expert after the routed experts (else
 * before them). */
int lt_num_shared_expert_last(const lt_num *nm);

static inline int lt_num_ref(const lt_num *nm) { return nm->mode == LT_NUMERICS_REFERENCE; }

#endif
