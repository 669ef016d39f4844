/* Elementwise operations of the forward pass, in plain C on fp32 rows:
 * softmax, SiLU, sigmoid, softplus and the normalised Walsh-Hadamard
 * transform of the indexer (spec 3.5). Matrix products are not here: they go
 * through lt_linear; nor are the row steps on every token's hot path
 * (RMSNorm, RoPE, SwiGLU, mHC collapse/expand): they are kernels (kernels.h).
 *
 * Small weight vectors (norm weights, sinks, biases, ape, mHC parameters,
 * tid2eid) are lt_vec views into the checkpoint mapping, read element by
 * element in their stored dtype; nothing is copied. */
#ifndef LT_OPS_H
#define LT_OPS_H

#include "safetensors.h"

#include <stdint.h>

/* A 1-D view of a stored F32, BF16 or I64 tensor of n elements (a 2-D tensor
 * is viewed row-major). The data may be unaligned; accessors use memcpy. */
typedef struct {
    lt_dtype dtype;
    const void *data;
    int64_t n;
    const char *name;  /* checkpoint name, for messages */
} lt_vec;

float lt_vec_at(const lt_vec *v, int64_t i);     /* F32 or BF16 element as fp32 */
int64_t lt_vec_i64(const lt_vec *v, int64_t i);  /* I64 element */

/* sum_i a[i] b[i], in eight interleaved partial sums (vectorisable, so
 * the order differs from a plain loop's). */
float lt_dot(const float *a, const float *b, int64_t n);

/* y[i] += a * x[i] */
void lt_axpy(float *y, float a, const float *x, int64_t n);

/* In-place softmax over n elements (n >= 1). -INFINITY entries get weight 0;
 * a row of only -INFINITY becomes all zeros (not NaN). */
void lt_softmax(float *x, int64_t n);

float lt_sigmoid(float x);
float lt_silu(float x);
/* softplus with PyTorch's threshold: x for x > 20, else log1p(exp(x)). */
float lt_softplus(float x);

/* In-place normalised Walsh-Hadamard transform (Sylvester order, scaled by
 * n^-1/2) of n elements; n must be a power of two. */
void lt_hadamard(float *x, int64_t n);

/* Rounds n values to bfloat16 (the reference's storage points). */
void lt_round_bf16_n(float *x, int64_t n);

#endif
