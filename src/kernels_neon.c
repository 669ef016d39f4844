/* NEON (AArch64 Advanced SIMD) kernel table: the vector primitives of
 * kernels_simd.h on 4-float q registers. Built only on aarch64, where NEON
 * and the f16 conversions are part of the base ISA.
 *
 *   FP8 e4m3 -> f16 bits by shifts, then fcvtl (exact, at value * 2^-8).
 *   FP4 e2m1 -> 2 * value as int8 through a tbl lookup, then scvtf.
 *   Prefill tile: 4 vectors of weight rows x 6 tokens = 24 accumulators. */
#include <arm_neon.h>
#include <string.h>

#include "quant.h"

#define LT_VL 4
#define LT_MR_V 4
#define LT_NT 6
#define LT_FP4_DEC 2.0f

typedef float32x4_t lt_vf;

static inline lt_vf v_zero(void) { return vdupq_n_f32(0.0f); }
static inline lt_vf v_load(const float *p) { return vld1q_f32(p); }
static inline void v_store(float *p, lt_vf v) { vst1q_f32(p, v); }
static inline lt_vf v_set1(float x) { return vdupq_n_f32(x); }
static inline lt_vf v_add(lt_vf a, lt_vf b) { return vaddq_f32(a, b); }
static inline lt_vf v_mul(lt_vf a, lt_vf b) { return vmulq_f32(a, b); }
static inline lt_vf v_div(lt_vf a, lt_vf b) { return vdivq_f32(a, b); }
static inline lt_vf v_min(lt_vf a, lt_vf b) { return vminq_f32(a, b); }
static inline lt_vf v_max(lt_vf a, lt_vf b) { return vmaxq_f32(a, b); }
static inline lt_vf v_abs(lt_vf a) { return vabsq_f32(a); }
static inline lt_vf v_fma(lt_vf a, lt_vf b, lt_vf c) { return vfmaq_f32(c, a, b); }
static inline float v_hsum(lt_vf v) { return vaddvq_f32(v); }
static inline lt_vf v_round(lt_vf v) { return vrndnq_f32(v); }
static inline lt_vf v_pow2(lt_vf n) {
    return vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23));
}
static inline float v_hmax(lt_vf v) { return vmaxvq_f32(v); }

static inline lt_vf v_load_part(const float *p, int m) {
    float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    memcpy(t, p, (size_t)m * sizeof *p);
    return vld1q_f32(t);
}

static inline void v_store_part(float *p, lt_vf v, int m) {
    float t[4];
    vst1q_f32(t, v);
    memcpy(p, t, (size_t)m * sizeof *p);
}

static inline lt_vf v_swap_pairs(lt_vf v) { return vrev64q_f32(v); }
static inline lt_vf v_load_dup2(const float *p) {
    float32x2_t d = vld1_f32(p);
    return vcombine_f32(vdup_lane_f32(d, 0), vdup_lane_f32(d, 1));
}

static inline lt_vf v_dec_fp8(const uint8_t *p) {
    /* sign-extended byte << 7 puts the magnitude at f16 bits 7..13 and copies
     * of the sign at 14..15; clearing bit 14 leaves s.0eeee.mmm0000000 */
    uint32_t x;
    memcpy(&x, p, 4);
    int16x8_t w = vshlq_n_s16(vmovl_s8(vreinterpret_s8_u32(vdup_n_u32(x))), 7);
    uint16x4_t h = vand_u16(vreinterpret_u16_s16(vget_low_s16(w)), vdup_n_u16(0xBFFF));
    return vcvt_f32_f16(vreinterpret_f16_u16(h));
}

static inline void v_deinterleave(lt_vf a, lt_vf b, lt_vf *even, lt_vf *odd) {
    *even = vuzp1q_f32(a, b);
    *odd = vuzp2q_f32(a, b);
}

static inline void v_dec_fp8_x4(const uint8_t *p, lt_vf v[4]) {
    /* word j holds codes 2j (low byte) and 2j+1: an arithmetic shift right
     * by 1 leaves the high byte's code at f16 bits 7..15 with the sign
     * copied into bit 14, which the mask clears (the low byte is shifted up
     * first) */
    int16x8_t w = vreinterpretq_s16_u8(vld1q_u8(p));
    uint16x8_t m = vdupq_n_u16(0xBF80);
    uint16x8_t even = vandq_u16(vreinterpretq_u16_s16(vshrq_n_s16(vshlq_n_s16(w, 8), 1)), m);
    uint16x8_t odd = vandq_u16(vreinterpretq_u16_s16(vshrq_n_s16(w, 1)), m);
    v[0] = vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(even)));
    v[1] = vcvt_f32_f16(vreinterpret_f16_u16(vget_high_u16(even)));
    v[2] = vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(odd)));
    v[3] = vcvt_f32_f16(vreinterpret_f16_u16(vget_high_u16(odd)));
}

static inline lt_vf v_dec_fp4(const uint8_t *p) {
    /* bytes b0, b1 -> b0&15, b0>>4, b1&15, b1>>4 -> 2 * e2m1 value as int8 */
    static const int8_t lut[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
    uint16_t x;
    memcpy(&x, p, 2);
    uint8x8_t b = vreinterpret_u8_u16(vdup_n_u16(x));
    uint8x8_t nib = vand_u8(vzip1_u8(b, vshr_n_u8(b, 4)), vdup_n_u8(15));
    int8x8_t v = vqtbl1_s8(vld1q_s8(lut), nib);
    return vcvtq_f32_s32(vmovl_s16(vget_low_s16(vmovl_s8(v))));
}

static inline lt_vf v_dec_bf16(const uint16_t *p) {
    uint16_t h[4];
    memcpy(h, p, sizeof h);
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(h), 16));
}

static inline void v_dec_fp4_x8(const uint8_t *p, lt_vf v[8]) {
    /* lane i holds codes 8i..8i+7; shifting by 4s brings code 8i+s to the low
     * nibble, tbl looks up 2 * value in byte 0 (the other bytes read code 0) */
    static const int8_t lut[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
    uint32_t w[4];
    memcpy(w, p, sizeof w);
    uint32x4_t z = vld1q_u32(w);
    int8x16_t table = vld1q_s8(lut);
    for (int s = 0; s < 8; s++) {
        uint32x4_t d = vandq_u32(vshlq_u32(z, vdupq_n_s32(-4 * s)), vdupq_n_u32(15));
        int32x4_t q = vreinterpretq_s32_s8(vqtbl1q_s8(table, vreinterpretq_u8_u32(d)));
        v[s] = vcvtq_f32_s32(vshrq_n_s32(vshlq_n_s32(q, 24), 24));
    }
}

/* 2^(b-127) from lanes b in [0, 255] */
static inline lt_vf ue8m0_lanes(uint32x4_t b) {
    uint32x4_t f = vshlq_n_u32(b, 23);
    f = vbslq_u32(vceqq_u32(b, vdupq_n_u32(0)), vdupq_n_u32(0x00400000), f);
    f = vbslq_u32(vceqq_u32(b, vdupq_n_u32(0xFF)), vdupq_n_u32(0x7FC00000), f);
    return vreinterpretq_f32_u32(f);
}

static inline lt_vf v_dec_ue8m0(const uint8_t *p) {
    uint32_t x;
    memcpy(&x, p, 4);
    return ue8m0_lanes(vmovl_u16(vget_low_u16(vmovl_u8(vreinterpret_u8_u32(vdup_n_u32(x))))));
}

static inline lt_vf v_rep4(lt_vf v, int q) {
    float t[4];
    vst1q_f32(t, v);
    return vdupq_n_f32(t[q]);
}

static inline lt_vf v_round_bf16(lt_vf v) {
    uint32x4_t u = vreinterpretq_u32_f32(v);
    u = vaddq_u32(u, vaddq_u32(vdupq_n_u32(0x7FFF), vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1))));
    return vreinterpretq_f32_u32(vandq_u32(u, vdupq_n_u32(0xFFFF0000u)));
}

static inline lt_vf v_round_e4m3(lt_vf v) {
    /* normals keep 3 mantissa bits (round half to even on the bits);
     * below 2^-6 the grid is the fixed subnormal step 2^-9 */
    uint32x4_t u = vreinterpretq_u32_f32(v);
    uint32x4_t odd = vandq_u32(vshrq_n_u32(u, 20), vdupq_n_u32(1));
    u = vaddq_u32(u, vaddq_u32(vdupq_n_u32(0x7FFFF), odd));
    lt_vf normal = vreinterpretq_f32_u32(vandq_u32(u, vdupq_n_u32(~0xFFFFFu)));
    lt_vf sub = vmulq_f32(v_round(vmulq_f32(v, vdupq_n_f32(512.0f))), vdupq_n_f32(1.0f / 512.0f));
    return vbslq_f32(vcltq_f32(vabsq_f32(v), vdupq_n_f32(0x1p-6f)), sub, normal);
}

static inline void v_transpose(lt_vf r[4]) {
    float32x4x2_t a = vtrnq_f32(r[0], r[1]), b = vtrnq_f32(r[2], r[3]);
    r[0] = vcombine_f32(vget_low_f32(a.val[0]), vget_low_f32(b.val[0]));
    r[1] = vcombine_f32(vget_low_f32(a.val[1]), vget_low_f32(b.val[1]));
    r[2] = vcombine_f32(vget_high_f32(a.val[0]), vget_high_f32(b.val[0]));
    r[3] = vcombine_f32(vget_high_f32(a.val[1]), vget_high_f32(b.val[1]));
}

#include "kernels_simd.h"

const lt_kernels lt_kernels_neon = {
    .name = "neon",
    LT_SIMD_ENTRIES,
    .index_score = index_score_simd,
};
