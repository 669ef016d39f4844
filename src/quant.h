/* Number formats of the DeepSeek V4 checkpoints (spec section 3.4, 3.5).
 *
 *   FP8 e4m3fn: bias 7, max 448, no infinities, NaN = 0x7F / 0xFF.
 *   FP4 e2m1:   16 codes [0 .5 1 1.5 2 3 4 6 -0 -.5 -1 -1.5 -2 -3 -4 -6],
 *               packed two per byte, low nibble = even (first) element.
 *   UE8M0:      power-of-two scale 2^(byte-127); 0xFF = NaN.
 *   BF16, F16:  upper half of f32 / IEEE half.
 * Decoding is exact. Encoders round to nearest even, as the reference does. */
#ifndef LT_QUANT_H
#define LT_QUANT_H

#include <stdint.h>
#include <string.h>

extern const float lt_fp8_e4m3_table[256];
extern const float lt_fp4_e2m1_table[16];

static inline float lt_fp8_e4m3_to_f32(uint8_t b) { return lt_fp8_e4m3_table[b]; }
static inline float lt_fp4_e2m1_to_f32(uint8_t nibble) { return lt_fp4_e2m1_table[nibble & 15]; }
float lt_ue8m0_to_f32(uint8_t b);
float lt_fp8_e5m2_to_f32(uint8_t b);

static inline float lt_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
uint16_t lt_f32_to_bf16(float f);        /* round to nearest even; NaN stays NaN */
float lt_f16_to_f32(uint16_t h);
uint16_t lt_f32_to_f16(float f);          /* round to nearest even */
static inline float lt_round_bf16(float f) { return lt_bf16_to_f32(lt_f32_to_bf16(f)); }

uint8_t lt_f32_to_fp8_e4m3(float f);     /* RNE, saturates to +-448 like a clamp first */
uint8_t lt_f32_to_fp4_e2m1(float f);     /* RNE on the e2m1 grid, saturates to +-6 */

/* Quantise-dequantise round trips used by the reference numerics (spec 3.4/3.5).
 * x is modified in place, block by block along its n elements.
 *   fp8: amax = max(|x_blk|, 1e-4), s = 2^ceil(log2(amax/448)), x = e4m3(x/s)*s
 *   fp4: amax = max(|x_blk|, 6*2^-126), s = 2^ceil(log2(amax/6)), x = e2m1(x/s)*s */
void lt_fake_quant_fp8(float *x, int64_t n, int block);
void lt_fake_quant_fp4(float *x, int64_t n, int block);

/* The fp4 round trip with blocks of 32, stored: e2m1 codes [n/2] (low nibble
 * first) and UE8M0 scales [n/32], the layout of an FP4 weight row; n is a
 * multiple of 32. Unpacking gives lt_fake_quant_fp4(x, n, 32) exactly. */
void lt_pack_fp4(const float *x, int64_t n, uint8_t *codes, uint8_t *scales);

#endif
