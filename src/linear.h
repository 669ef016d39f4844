/* Linear layers: Y = X Wᵀ over the kernel table, split across threads. */
#ifndef LT_LINEAR_H
#define LT_LINEAR_H

#include "weights.h"

/* Y[n, W->rows] = X[n, W->cols] · Wᵀ (fp32 in and out). */
void lt_linear(const lt_weight *W, const float *X, int64_t n, float *Y);

#endif
