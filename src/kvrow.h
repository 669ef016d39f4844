/* How the KV cache stores its rows (spec 3.5, 4.8, 5.1).
 *
 * The caches hold what the model's round trips leave, in the formats that
 * make them lossless, so memory per token is the compressed size:
 *   F32  EXACT numerics: fp32 rows, nothing rounded (V4);
 *   FP8  the first w8 dims FP8 e4m3 with one UE8M0 scale per `block`, the
 *        other dims bf16: V4 REFERENCE rows (nope FP8 / 64, RoPE bf16:
 *        448 + 7 + 128 = 583 B of 2 KB), V4.1 window rows (all FP8 / 32);
 *   FP4  e2m1 with one E4M3 scale per `block`: V4.1 compressed rows
 *        (256 + 32 = 288 B).
 * Packing IS the quantisation (the same amax, scale and RNE codes as the
 * QAT round trips in numerics.c), so unpack(pack(x)) equals the round trip
 * of x bit for bit and nothing is re-derived from rounded values. */
#ifndef LT_KVROW_H
#define LT_KVROW_H

#include <stdint.h>

typedef enum { LT_KV_F32, LT_KV_FP8, LT_KV_FP4 } lt_kv_kind;

typedef struct {
    lt_kv_kind kind;
    int32_t d;       /* values per row */
    int32_t w8;      /* FP8: leading dims stored as FP8 (the rest bf16) */
    int32_t block;   /* FP8, FP4: values per scale */
    int64_t bytes;   /* stored bytes per row, a multiple of 8 */
} lt_kv_fmt;

lt_kv_fmt lt_kv_fmt_f32(int64_t d);
lt_kv_fmt lt_kv_fmt_fp8(int64_t d, int64_t w8, int block);
lt_kv_fmt lt_kv_fmt_fp4(int64_t d, int block); /* d a multiple of block and of 2 */

/* Byte offsets inside an FP8 row: codes [w8], scales [ceil(w8/block)],
 * then the bf16 tail at an even offset. FP4: codes [d/2], then scales. */
int64_t lt_kv_scale_offset(const lt_kv_fmt *f);
int64_t lt_kv_bf16_offset(const lt_kv_fmt *f);

/* row <- x[d] quantised; rounds exactly like lt_fake_quant_fp8 (FP8 part),
 * bf16 RNE (tail) and the E4M3-scaled FP4 round trip (FP4). */
void lt_kv_pack(const lt_kv_fmt *f, const float *x, uint8_t *row);

/* x[d] <- the values of a stored row (exact). */
void lt_kv_unpack(const lt_kv_fmt *f, const uint8_t *row, float *x);

#endif
