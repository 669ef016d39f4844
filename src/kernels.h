/* The kernel dispatch table: the one place where an ISA is chosen.
 *
 * Model code calls lt_kern()->op(...) (usually through lt_linear) and never
 * contains ISA conditionals. Each table is complete: an ISA file may fill an
 * entry with the scalar reference where it has nothing faster. The table is
 * chosen once from CPUID (lt_kernels_init), or forced by name. */
#ifndef LT_KERNELS_H
#define LT_KERNELS_H

#include "weights.h"

typedef struct {
    const char *name;  /* "ref", "avx2", "avx512", "neon" */
    /* Y[t*ldy + r] = sum_c W[r][c] * X[t*cols + c] for t < n and r in [r0, r1):
     * the rows r0..r1 of the product of n activation rows with Wᵀ, with the
     * weight decoded on the fly (never a dequantised copy). */
    void (*matmul[LT_W_COUNT])(const lt_weight *W, const float *X, int64_t n,
                               float *Y, int64_t ldy, int64_t r0, int64_t r1);
} lt_kernels;

extern const lt_kernels lt_kernels_ref;

/* Chooses the best table the CPU supports; name (or NULL) forces one. Returns
 * 0 if the named table is unknown or unsupported here. */
int lt_kernels_init(const char *name);
const lt_kernels *lt_kern(void);

#endif
