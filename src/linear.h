/* The kernel table's products split across the thread pool (threads.h):
 * linear layers Y = X Wᵀ (rows of the product cut into tiles and, for long
 * batches, the activation rows too), the sparse attention of one query over
 * gathered rows, and the lightning indexer's scores. Each tile is one kernel
 * call; every output is computed by one tile in a fixed order, so results do
 * not depend on the thread count. */
#ifndef LT_LINEAR_H
#define LT_LINEAR_H

#include "kvrow.h"
#include "weights.h"

/* Y[n, W->rows] = X[n, W->cols] · Wᵀ (fp32 in and out). */
void lt_linear(const lt_weight *W, const float *X, int64_t n, float *Y);

/* The reference's quantised linear (spec 3.4): every row of X is seen through
 * its FP8 e4m3 round trip in blocks of act_block values (weight_block_size[1]:
 * 128 in V4, 32 in V4.1; at most LT_ACTQ_MAX_BLOCK = 256). The quantisation
 * is fused into the kernels; X is not modified and nothing is allocated. */
void lt_linear_actq(const lt_weight *W, const float *X, int64_t n, float *Y, int act_block);

/* The general form: rows r0..r1 of the product, Y[t*ldy + r] for t < n;
 * act_block 0 means no activation quantisation. */
void lt_linear_rows(const lt_weight *W, const float *X, int64_t n, float *Y, int64_t ldy, int64_t r0, int64_t r1,
                    int act_block);

/* Several independent products run as one parallel loop: their tiles are
 * handed out together, so the batch costs one fork and join and no core
 * idles at a product's end (the routed experts of a decoded token). At most
 * LT_BATCH_MAX products; each Y as lt_linear_rows writes it. */
#define LT_BATCH_MAX 64
typedef struct {
    const lt_weight *W;
    const float *X;
    int64_t n;
    float *Y;
    int64_t ldy, r0, r1;
    int act_block;
} lt_product;
void lt_linear_batch(const lt_product *p, int count);

/* One query's attention over gathered KV rows (spec 3.6; the kernel
 * table's attn_rows), all nh heads (they share the rows, V4's single K = V
 * head): q and o are [nh, d]; rows[j] stored in format f[0] for j <
 * n_first (the window), f[1] after (kvrow.h), NULL a padding slot; sink [nh] or NULL; scale is head_dim^-1/2; ref selects the
 * reference kernel's rounding (bf16 P, the max over keys only). Head groups
 * run across the pool; the result does not depend on the thread count. */
void lt_attention_rows(const float *q, int64_t nh, const lt_kv_fmt *f, int64_t n_first, const uint8_t *const *rows,
                       int64_t n_rows, const float *sink, float scale, int ref, float *o);

/* Lightning-indexer scores (spec 4.3 step 16) of keys [0, n_keys):
 * score[j] = sum_h wt[h] ReLU(Q[h] . K[j]), with K and Q F32 or FP4 weight
 * views and bf16 the reference numerics' roundings (kernels.h,
 * index_score); split in key ranges. */
void lt_index_scores(const lt_weight *K, const lt_weight *Q, const float *wt, int bf16, int64_t n_keys,
                     float *score);

#endif
