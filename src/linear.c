/* Linear layers over the kernel table. */
#include "linear.h"
#include "kernels.h"

void lt_linear(const lt_weight *W, const float *X, int64_t n, float *Y) {
    lt_kern()->matmul[W->type](W, X, n, Y, W->rows, 0, W->rows);
}
