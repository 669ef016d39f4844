/* AVX2 + FMA + F16C kernel table: the vector primitives of kernels_simd.h on
 * 8-float ymm registers. Built with the AVX2F flags of the Makefile (which
 * exclude AVX-512, so this table stays honest on machines that have it);
 * chosen by kernels.c only when CPUID reports AVX2, FMA and F16C.
 *
 *   FP8 e4m3 -> f16 bits by shifts, then vcvtph2ps (exact, at value * 2^-8).
 *   FP4 e2m1 -> 2 * value as int8 through a pshufb table, then vcvtdq2ps;
 *     the matrix-vector product shifts 32-byte groups and looks up with vpermps.
 *   Prefill tile: 2 ymm of weight rows x 6 tokens = 12 accumulators. */
#include <immintrin.h>
#include <string.h>

#include "quant.h"

#define LT_VL 8
#define LT_MR_V 2
#define LT_NT 6
#define LT_FP4_DEC 2.0f

typedef __m256 lt_vf;

static inline lt_vf v_zero(void) { return _mm256_setzero_ps(); }
static inline lt_vf v_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void v_store(float *p, lt_vf v) { _mm256_storeu_ps(p, v); }
static inline lt_vf v_set1(float x) { return _mm256_set1_ps(x); }
static inline lt_vf v_add(lt_vf a, lt_vf b) { return _mm256_add_ps(a, b); }
static inline lt_vf v_mul(lt_vf a, lt_vf b) { return _mm256_mul_ps(a, b); }
static inline lt_vf v_div(lt_vf a, lt_vf b) { return _mm256_div_ps(a, b); }
static inline lt_vf v_min(lt_vf a, lt_vf b) { return _mm256_min_ps(a, b); }
static inline lt_vf v_max(lt_vf a, lt_vf b) { return _mm256_max_ps(a, b); }
static inline lt_vf v_abs(lt_vf a) { return _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF))); }
static inline lt_vf v_fma(lt_vf a, lt_vf b, lt_vf c) { return _mm256_fmadd_ps(a, b, c); }

static inline lt_vf v_round(lt_vf v) { return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline lt_vf v_pow2(lt_vf n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
}

static inline float v_hsum(lt_vf v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

static inline float v_hmax(lt_vf v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}

static inline __m256i lanes_below(int m) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline lt_vf v_load_part(const float *p, int m) { return _mm256_maskload_ps(p, lanes_below(m)); }
static inline void v_store_part(float *p, lt_vf v, int m) { _mm256_maskstore_ps(p, lanes_below(m), v); }

static inline lt_vf v_swap_pairs(lt_vf v) { return _mm256_permute_ps(v, 0xB1); }
static inline lt_vf v_load_dup2(const float *p) {
    return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(p)), _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3));
}

static inline lt_vf v_dec_fp8(const uint8_t *p) {
    /* sign-extended byte << 7 puts the magnitude at f16 bits 7..13 and copies
     * of the sign at 14..15; clearing bit 14 leaves s.0eeee.mmm0000000 */
    __m128i w = _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(const void *)p));
    w = _mm_and_si128(_mm_slli_epi16(w, 7), _mm_set1_epi16((short)0xBFFF));
    return _mm256_cvtph_ps(w);
}

static inline void v_deinterleave(lt_vf a, lt_vf b, lt_vf *even, lt_vf *odd) {
    /* in-lane picks, then the 64-bit quarters back in order */
    *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
    *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
}

static inline void v_dec_fp8_x4(const uint8_t *p, lt_vf v[4]) {
    /* even and odd codes of 16-bit words, as in kernels_avx512.h */
    __m256i w = _mm256_loadu_si256((const __m256i *)(const void *)p), m = _mm256_set1_epi16((short)0xBF80);
    __m256i even = _mm256_and_si256(_mm256_srai_epi16(_mm256_slli_epi16(w, 8), 1), m);
    __m256i odd = _mm256_and_si256(_mm256_srai_epi16(w, 1), m);
    v[0] = _mm256_cvtph_ps(_mm256_castsi256_si128(even));
    v[1] = _mm256_cvtph_ps(_mm256_extracti128_si256(even, 1));
    v[2] = _mm256_cvtph_ps(_mm256_castsi256_si128(odd));
    v[3] = _mm256_cvtph_ps(_mm256_extracti128_si256(odd, 1));
}

static inline lt_vf v_dec_fp4(const uint8_t *p) {
    /* bytes b0..b3 -> b0&15, b0>>4, b1&15, ... -> 2 * e2m1 value as int8 */
    int32_t x;
    memcpy(&x, p, 4);
    __m128i b = _mm_cvtsi32_si128(x);
    __m128i nib = _mm_and_si128(_mm_unpacklo_epi8(b, _mm_srli_epi16(b, 4)), _mm_set1_epi8(15));
    __m128i v = _mm_shuffle_epi8(_mm_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12), nib);
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
}

static inline lt_vf v_dec_bf16(const uint16_t *p) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

static inline void v_dec_fp4_x8(const uint8_t *p, lt_vf v[8]) {
    /* dword lane i holds codes 8i..8i+7; shifting by 4s brings code 8i+s to
     * the low bits: vpermps looks up the magnitude (3 bits, as 2 * value) and
     * bit 3, moved to bit 31, is the sign */
    __m256i z = _mm256_loadu_si256((const __m256i *)(const void *)p);
    __m256 mag = _mm256_setr_ps(0.0f, 1.0f, 2.0f, 3.0f, 4.0f, 6.0f, 8.0f, 12.0f);
    __m256i sign = _mm256_set1_epi32((int)0x80000000u);
    for (int s = 0; s < 8; s++) {
        __m256i d = _mm256_srli_epi32(z, 4 * s);
        __m256i sg = _mm256_and_si256(_mm256_slli_epi32(d, 28), sign);
        v[s] = _mm256_xor_ps(_mm256_permutevar8x32_ps(mag, d), _mm256_castsi256_ps(sg));
    }
}

/* 2^(b-127) from dword lanes b in [0, 255] */
static inline lt_vf ue8m0_lanes(__m256i b) {
    __m256i f = _mm256_slli_epi32(b, 23);
    f = _mm256_blendv_epi8(f, _mm256_set1_epi32(0x00400000), _mm256_cmpeq_epi32(b, _mm256_setzero_si256()));
    f = _mm256_blendv_epi8(f, _mm256_set1_epi32(0x7FC00000), _mm256_cmpeq_epi32(b, _mm256_set1_epi32(0xFF)));
    return _mm256_castsi256_ps(f);
}

static inline lt_vf v_dec_ue8m0(const uint8_t *p) {
    return ue8m0_lanes(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p)));
}

static inline lt_vf v_rep4(lt_vf v, int q) {
    return _mm256_permutevar8x32_ps(v, _mm256_add_epi32(_mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1), _mm256_set1_epi32(2 * q)));
}

static inline lt_vf v_round_bf16(lt_vf v) {
    __m256i u = _mm256_castps_si256(v);
    u = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7FFF), _mm256_and_si256(_mm256_srli_epi32(u, 16),
                                                                                           _mm256_set1_epi32(1))));
    return _mm256_castsi256_ps(_mm256_and_si256(u, _mm256_set1_epi32((int)0xFFFF0000u)));
}

static inline lt_vf v_round_e4m3(lt_vf v) {
    /* normals keep 3 mantissa bits (round half to even on the bits);
     * below 2^-6 the grid is the fixed subnormal step 2^-9 */
    __m256i u = _mm256_castps_si256(v);
    __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 20), _mm256_set1_epi32(1));
    u = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7FFFF), odd));
    __m256 normal = _mm256_castsi256_ps(_mm256_and_si256(u, _mm256_set1_epi32(~0xFFFFF)));
    __m256 sub = _mm256_mul_ps(v_round(_mm256_mul_ps(v, _mm256_set1_ps(512.0f))), _mm256_set1_ps(1.0f / 512.0f));
    __m256 small = _mm256_cmp_ps(v_abs(v), _mm256_set1_ps(0x1p-6f), _CMP_LT_OQ);
    return _mm256_blendv_ps(normal, sub, small);
}

static inline void v_transpose(lt_vf r[8]) {
    __m256 t[8];
    /* 2x2 blocks of floats, then of float pairs: r[4i+j] lane L = column 4L+j of rows 4i..4i+3 */
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        __m256d a = _mm256_castps_pd(t[4 * i]), b = _mm256_castps_pd(t[4 * i + 1]);
        __m256d c = _mm256_castps_pd(t[4 * i + 2]), d = _mm256_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm256_castpd_ps(_mm256_unpacklo_pd(a, c));
        r[4 * i + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(a, c));
        r[4 * i + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(b, d));
        r[4 * i + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(b, d));
    }
    /* then 128-bit lanes: column 4L+j = lane L of r[j] and of r[4+j] */
    for (int j = 0; j < 4; j++) {
        t[j] = _mm256_permute2f128_ps(r[j], r[4 + j], 0x20);
        t[4 + j] = _mm256_permute2f128_ps(r[j], r[4 + j], 0x31);
    }
    for (int i = 0; i < 8; i++) r[i] = t[i];
}

#include "kernels_simd.h"

const lt_kernels lt_kernels_avx2 = {
    .name = "avx2",
    LT_SIMD_ENTRIES,
    .index_score = index_score_simd,
};
