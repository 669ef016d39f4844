/* Weight matrices as views into the checkpoint mapping (spec section 3.4).
 * A weight knows its format, its logical shape [rows = out, cols = in] and
 * where its block scales are; kernels decode it on the fly. */
#ifndef LT_WEIGHTS_H
#define LT_WEIGHTS_H

#include "config.h"
#include "safetensors.h"

typedef enum {
    LT_W_F32,   /* F32 [rows, cols] */
    LT_W_BF16,  /* BF16 [rows, cols] */
    LT_W_FP8,   /* F8_E4M3 [rows, cols] + F8_E8M0 scale [ceil(rows/br), ceil(cols/bc)] */
    LT_W_FP4,   /* I8 [rows, cols/2] packed e2m1 (low nibble first) + F8_E8M0 scale [rows, cols/32] */
    LT_W_COUNT
} lt_wtype;

typedef struct {
    lt_wtype type;
    const void *data;
    const uint8_t *scale;   /* NULL for F32/BF16 */
    int64_t rows, cols;
    int block_r, block_c;   /* FP8: config weight_block_size; FP4: 1 x 32 */
    const char *name;       /* checkpoint name of the .weight tensor (owned by the store) */
} lt_weight;

/* Binds `<prefix>.weight` (and `<prefix>.scale` for FP8/FP4) from the store,
 * checking that the logical shape is [rows, cols]. The format follows the
 * stored dtype: F32, BF16, F8_E4M3 (FP8), I8 (packed FP4). */
lt_status lt_weight_bind(lt_weight *w, const lt_store *s, const lt_config *c, const char *prefix,
                         int64_t rows, int64_t cols, lt_error *err);

/* Decodes row r into out[cols] (fp32). Reference path; used by tests and by
 * code that needs a dequantised row (embedding lookup). */
void lt_weight_row(const lt_weight *w, int64_t r, float *out);

/* Bytes the weight occupies in the checkpoint (data + scales). */
uint64_t lt_weight_bytes(const lt_weight *w);

#endif
