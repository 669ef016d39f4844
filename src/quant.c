/* Number formats of the checkpoints (spec section 3.4, 3.5): exact decoders
 * and round-to-nearest-even encoders for FP8 e4m3fn, FP4 e2m1, UE8M0, BF16
 * and F16, plus the reference's quantise-dequantise round trips. */
#include "quant.h"

#include <math.h>

/* e4m3fn: s eeee mmm, bias 7; exponent 0 is subnormal (m/8 * 2^-6); 0x7F and
 * 0xFF are NaN; there are no infinities, so the largest finite value is 448. */
#define E4M3(b) ((((b) & 0x7F) == 0x7F) ? NAN                                                \
    : (((b) & 0x80) ? -1.0f : 1.0f) *                                                        \
      ((((b) >> 3) & 15) ? (1.0f + (float)((b) & 7) / 8.0f) * e4m3_pow2[((b) >> 3) & 15]    \
                         : (float)((b) & 7) / 8.0f * 0x1p-6f))

static const float e4m3_pow2[16] = {
    0x1p-7f, 0x1p-6f, 0x1p-5f, 0x1p-4f, 0x1p-3f, 0x1p-2f, 0x1p-1f, 0x1p0f,
    0x1p1f, 0x1p2f, 0x1p3f, 0x1p4f, 0x1p5f, 0x1p6f, 0x1p7f, 0x1p8f,
};

const float lt_fp8_e4m3_table[256] = {
#define R8(b) E4M3(b), E4M3(b + 1), E4M3(b + 2), E4M3(b + 3), E4M3(b + 4), E4M3(b + 5), E4M3(b + 6), E4M3(b + 7)
    R8(0), R8(8), R8(16), R8(24), R8(32), R8(40), R8(48), R8(56),
    R8(64), R8(72), R8(80), R8(88), R8(96), R8(104), R8(112), R8(120),
    R8(128), R8(136), R8(144), R8(152), R8(160), R8(168), R8(176), R8(184),
    R8(192), R8(200), R8(208), R8(216), R8(224), R8(232), R8(240), R8(248),
#undef R8
};

const float lt_fp4_e2m1_table[16] = {
    0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f,
    -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f,
};

float lt_ue8m0_to_f32(uint8_t b) {
    if (b == 0xFF) return NAN;
    return ldexpf(1.0f, (int)b - 127);
}

float lt_fp8_e5m2_to_f32(uint8_t b) {
    /* e5m2 is the upper byte of an IEEE half */
    return lt_f16_to_f32((uint16_t)((uint16_t)b << 8));
}

uint16_t lt_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7FFFu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

float lt_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 31, man = h & 0x3FF;
    float mag;
    if (exp == 31) mag = man ? NAN : INFINITY;
    else if (exp == 0) mag = ldexpf((float)man, -24);
    else mag = ldexpf((float)(man | 0x400), (int)exp - 25);
    uint32_t u;
    memcpy(&u, &mag, 4);
    u |= sign;
    memcpy(&mag, &u, 4);
    return mag;
}

/* Rounds |x| to a grid with `mbits` mantissa bits, minimum normal exponent
 * emin and largest finite value vmax, with round-to-nearest-even; returns the
 * rounded magnitude (saturated to vmax). Shared by every narrow encoder. */
static float round_to_grid(float ax, int mbits, int emin, float vmax) {
    if (!(ax < vmax)) return vmax; /* also catches NaN-free overflow */
    int e;
    frexpf(ax, &e);                /* ax = f * 2^e, f in [0.5, 1) */
    e -= 1;                        /* ax = 1.m * 2^e */
    if (e < emin) e = emin;        /* subnormals share the minimum exponent's spacing */
    float ulp = ldexpf(1.0f, e - mbits);
    float r = nearbyintf(ax / ulp) * ulp; /* default rounding mode: nearest-even */
    return r > vmax ? vmax : r;
}

uint16_t lt_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    if (isnan(f)) return sign | 0x7E00;
    float a = fabsf(f);
    if (a >= 65520.0f) return sign | 0x7C00; /* rounds to infinity */
    float r = round_to_grid(a, 10, -14, 65504.0f);
    if (r == 0.0f) return sign;
    int e;
    float m = frexpf(r, &e); /* r = m * 2^e, m in [0.5, 1) */
    if (e - 1 < -14) return sign | (uint16_t)(r * 0x1p24f);
    return sign | (uint16_t)(((e - 1 + 15) << 10) | ((uint16_t)(m * 2048.0f) & 0x3FF));
}

uint8_t lt_f32_to_fp8_e4m3(float f) {
    if (isnan(f)) return 0x7F;
    uint8_t sign = signbit(f) ? 0x80 : 0;
    float r = round_to_grid(fabsf(f), 3, -6, 448.0f);
    if (r == 0.0f) return sign;
    int e;
    float m = frexpf(r, &e);
    if (e - 1 < -6) return sign | (uint8_t)(r * 0x1p9f); /* subnormal: m/8 * 2^-6 */
    return sign | (uint8_t)(((e - 1 + 7) << 3) | ((uint8_t)(m * 16.0f) & 7));
}

/* the code is the number of rounding midpoints of the grid 0 .5 1 1.5 2 3 4
 * 6 that |f| passes; at a midpoint itself, ties go to the even code (the
 * ones at .75, 1.75 and 3.5 round up, the others down) */
uint8_t lt_f32_to_fp4_e2m1(float f) {
    uint8_t sign = signbit(f) ? 8 : 0;
    if (isnan(f)) return sign | 7;
    float a = fabsf(f);
    return (uint8_t)(sign | ((a > 0.25f) + (a >= 0.75f) + (a > 1.25f) + (a >= 1.75f) + (a > 2.5f) + (a >= 3.5f) +
                             (a > 5.0f)));
}

/* power-of-two scale s = 2^ceil(log2(amax / qmax)), the reference's "ue8m0" rounding */
static float pow2_scale(float amax, float qmax) {
    return ldexpf(1.0f, (int)ceilf(log2f(amax / qmax)));
}

void lt_fake_quant_fp8(float *x, int64_t n, int block) {
    for (int64_t b = 0; b < n; b += block) {
        int64_t e = b + block < n ? b + block : n;
        float amax = 1e-4f;
        for (int64_t i = b; i < e; i++) amax = fmaxf(amax, fabsf(x[i]));
        float s = pow2_scale(amax, 448.0f);
        for (int64_t i = b; i < e; i++) x[i] = lt_fp8_e4m3_to_f32(lt_f32_to_fp8_e4m3(x[i] / s)) * s;
    }
}

void lt_pack_fp4(const float *x, int64_t n, uint8_t *codes, uint8_t *scales) {
    for (int64_t b = 0; b < n; b += 32) {
        float amax = 6.0f * 0x1p-126f;
        for (int64_t i = b; i < b + 32; i++) amax = fmaxf(amax, fabsf(x[i]));
        int e = (int)ceilf(log2f(amax / 6.0f));
        float s = ldexpf(1.0f, e);
        for (int64_t i = b; i < b + 32; i += 2)
            codes[i / 2] = (uint8_t)(lt_f32_to_fp4_e2m1(x[i] / s) | lt_f32_to_fp4_e2m1(x[i + 1] / s) << 4);
        scales[b / 32] = (uint8_t)(e + 127);
    }
}

void lt_fake_quant_fp4(float *x, int64_t n, int block) {
    for (int64_t b = 0; b < n; b += block) {
        int64_t e = b + block < n ? b + block : n;
        float amax = 6.0f * 0x1p-126f;
        for (int64_t i = b; i < e; i++) amax = fmaxf(amax, fabsf(x[i]));
        float s = pow2_scale(amax, 6.0f);
        for (int64_t i = b; i < e; i++) x[i] = lt_fp4_e2m1_to_f32(lt_f32_to_fp4_e2m1(x[i] / s)) * s;
    }
}
