/* The AVX-512 vector primitives of kernels_simd.h (16-float zmm registers),
 * shared by the avx512 tables (kernels_avx512.c) and the AMX table
 * (kernels_amx.c). Include only from files built with the AVX512F flags.
 *
 *   FP8 e4m3 -> f16 bits by shifts (s.eeee.mmm -> s.0eeee.mmm0000000), then
 *     vcvtph2ps: exact, subnormals included, at value * 2^-8. The grouped
 *     decoder shifts 16-bit words (even and odd codes) instead of widening
 *     bytes.
 *   FP4 e2m1 -> the 16-entry value table through vpermps (one zmm); the
 *     matrix-vector product shifts 64-byte groups instead of shuffling bytes.
 *   Prefill tile: 2 zmm of weight rows x 12 tokens = 24 accumulators. */
#ifndef LT_KERNELS_AVX512_H
#define LT_KERNELS_AVX512_H

#include <immintrin.h>
#include <string.h>

#include "quant.h"

#define LT_VL 16
#define LT_MR_V 2
#define LT_NT 12
#define LT_FP4_DEC 1.0f

typedef __m512 lt_vf;

static inline lt_vf v_zero(void) { return _mm512_setzero_ps(); }
static inline lt_vf v_load(const float *p) { return _mm512_loadu_ps(p); }
static inline void v_store(float *p, lt_vf v) { _mm512_storeu_ps(p, v); }
static inline lt_vf v_set1(float x) { return _mm512_set1_ps(x); }
static inline lt_vf v_add(lt_vf a, lt_vf b) { return _mm512_add_ps(a, b); }
static inline lt_vf v_mul(lt_vf a, lt_vf b) { return _mm512_mul_ps(a, b); }
static inline lt_vf v_div(lt_vf a, lt_vf b) { return _mm512_div_ps(a, b); }
static inline lt_vf v_min(lt_vf a, lt_vf b) { return _mm512_min_ps(a, b); }
static inline lt_vf v_max(lt_vf a, lt_vf b) { return _mm512_max_ps(a, b); }
static inline lt_vf v_abs(lt_vf a) { return _mm512_abs_ps(a); }
static inline lt_vf v_fma(lt_vf a, lt_vf b, lt_vf c) { return _mm512_fmadd_ps(a, b, c); }
static inline float v_hsum(lt_vf v) { return _mm512_reduce_add_ps(v); }
static inline float v_hmax(lt_vf v) { return _mm512_reduce_max_ps(v); }
static inline lt_vf v_round(lt_vf v) { return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline lt_vf v_pow2(lt_vf n) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
}
static inline lt_vf v_load_part(const float *p, int m) { return _mm512_maskz_loadu_ps((__mmask16)((1u << m) - 1), p); }
static inline void v_store_part(float *p, lt_vf v, int m) { _mm512_mask_storeu_ps(p, (__mmask16)((1u << m) - 1), v); }
static inline lt_vf v_swap_pairs(lt_vf v) { return _mm512_permute_ps(v, 0xB1); }
static inline lt_vf v_load_dup2(const float *p) {
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7),
                                 _mm512_castps256_ps512(_mm256_loadu_ps(p)));
}

static inline lt_vf v_dec_fp8(const uint8_t *p) {
    /* sign-extended byte << 7 puts the magnitude at f16 bits 7..13 and copies
     * of the sign at 14..15; clearing bit 14 leaves s.0eeee.mmm0000000 */
    __m256i w = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)p));
    w = _mm256_and_si256(_mm256_slli_epi16(w, 7), _mm256_set1_epi16((short)0xBFFF));
    return _mm512_cvtph_ps(w);
}

static inline void v_deinterleave(lt_vf a, lt_vf b, lt_vf *even, lt_vf *odd) {
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    *even = _mm512_permutex2var_ps(a, ie, b);
    *odd = _mm512_permutex2var_ps(a, _mm512_add_epi32(ie, _mm512_set1_epi32(1)), b);
}

static inline void v_dec_fp8_x4(const uint8_t *p, lt_vf v[4]) {
    /* word j holds codes 2j (low byte) and 2j+1: an arithmetic shift right
     * by 1 puts the high byte's magnitude at f16 bits 7..13 and its sign at
     * 14..15, clearing bit 14 leaves s.0eeee.mmm0000000 (the low byte is
     * shifted up first); no byte widening */
    __m512i w = _mm512_loadu_si512(p), m = _mm512_set1_epi16((short)0xBF80);
    __m512i even = _mm512_and_si512(_mm512_srai_epi16(_mm512_slli_epi16(w, 8), 1), m);
    __m512i odd = _mm512_and_si512(_mm512_srai_epi16(w, 1), m);
    v[0] = _mm512_cvtph_ps(_mm512_castsi512_si256(even));
    v[1] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(even, 1));
    v[2] = _mm512_cvtph_ps(_mm512_castsi512_si256(odd));
    v[3] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(odd, 1));
}

static inline lt_vf v_dec_fp4(const uint8_t *p) {
    /* bytes b0..b7 -> b0, b0>>4, b1, b1>>4, ... widened to dwords; vpermps
     * reads only the low 4 bits of each index */
    __m128i b = _mm_loadl_epi64((const __m128i *)(const void *)p);
    __m128i nib = _mm_unpacklo_epi8(b, _mm_srli_epi16(b, 4));
    return _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(nib), _mm512_loadu_ps(lt_fp4_e2m1_table));
}

static inline lt_vf v_dec_bf16(const uint16_t *p) {
    __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}

static inline void v_dec_fp4_x8(const uint8_t *p, lt_vf v[8]) {
    /* dword lane i holds codes 8i..8i+7; shifting by 4s brings code 8i+s to
     * the low 4 bits that vpermps reads */
    __m512i z = _mm512_loadu_si512(p);
    __m512 table = _mm512_loadu_ps(lt_fp4_e2m1_table);
    v[0] = _mm512_permutexvar_ps(z, table);
    for (int s = 1; s < 8; s++) v[s] = _mm512_permutexvar_ps(_mm512_srli_epi32(z, (unsigned)(4 * s)), table);
}

/* 2^(b-127) from dword lanes b in [0, 255] */
static inline lt_vf ue8m0_lanes(__m512i b) {
    __m512i f = _mm512_slli_epi32(b, 23);
    f = _mm512_mask_mov_epi32(f, _mm512_cmpeq_epi32_mask(b, _mm512_setzero_si512()), _mm512_set1_epi32(0x00400000));
    f = _mm512_mask_mov_epi32(f, _mm512_cmpeq_epi32_mask(b, _mm512_set1_epi32(0xFF)), _mm512_set1_epi32(0x7FC00000));
    return _mm512_castsi512_ps(f);
}

static inline lt_vf v_dec_ue8m0(const uint8_t *p) {
    return ue8m0_lanes(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)p)));
}

static inline lt_vf v_rep4(lt_vf v, int q) {
    __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    return _mm512_permutexvar_ps(_mm512_add_epi32(idx, _mm512_set1_epi32(4 * q)), v);
}

static inline lt_vf v_round_bf16(lt_vf v) {
    __m512i u = _mm512_castps_si512(v);
    u = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), _mm512_and_si512(_mm512_srli_epi32(u, 16),
                                                                                           _mm512_set1_epi32(1))));
    return _mm512_castsi512_ps(_mm512_and_si512(u, _mm512_set1_epi32((int)0xFFFF0000u)));
}

static inline lt_vf v_round_e4m3(lt_vf v) {
    /* normals keep 3 mantissa bits (round half to even on the bits);
     * below 2^-6 the grid is the fixed subnormal step 2^-9 */
    __m512i u = _mm512_castps_si512(v);
    __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 20), _mm512_set1_epi32(1));
    u = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7FFFF), odd));
    __m512 normal = _mm512_castsi512_ps(_mm512_and_si512(u, _mm512_set1_epi32(~0xFFFFF)));
    __m512 sub = _mm512_mul_ps(v_round(_mm512_mul_ps(v, _mm512_set1_ps(512.0f))), _mm512_set1_ps(1.0f / 512.0f));
    __mmask16 small = _mm512_cmp_ps_mask(_mm512_abs_ps(v), _mm512_set1_ps(0x1p-6f), _CMP_LT_OQ);
    return _mm512_mask_blend_ps(small, normal, sub);
}

static inline void v_transpose(lt_vf r[16]) {
    __m512 t[16];
    /* 2x2 blocks of floats, then of float pairs: r[4i+j] lane L = column 4L+j of rows 4i..4i+3 */
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    /* then 128-bit lanes: column 4L+j gathers lane L of r[j], r[4+j], r[8+j], r[12+j] */
    for (int j = 0; j < 4; j++) {
        __m512 a = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88), b = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xDD);
        __m512 c = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88), d = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xDD);
        t[j] = _mm512_shuffle_f32x4(a, c, 0x88);
        t[8 + j] = _mm512_shuffle_f32x4(a, c, 0xDD);
        t[4 + j] = _mm512_shuffle_f32x4(b, d, 0x88);
        t[12 + j] = _mm512_shuffle_f32x4(b, d, 0xDD);
    }
    for (int i = 0; i < 16; i++) r[i] = t[i];
}

#endif
