/* AVX-512 + AMX kernel table "avx512-amx": the avx512-bf16 table with
 * index_score on int8 tile dot products (TDPBSSD), and REFERENCE attention
 * and prefill products on bf16 tiles (kernels_avx512.c). Built with the AVX512F flags
 * plus AVX512-BF16 and AMX-TILE/INT8; offered by kernels.c only after
 * lt_kernels_amx_init found them and Linux granted the tile state.
 *
 * FP4 keys and queries become 2 * e2m1 in int8 (integers in [-12, 12]), so
 * a tile dot product over one 32-block is its exact integer sum, and the
 * blocks are combined in float exactly as ref does (see index_score_vnni):
 * bit-identical to ref. Where the 4 block scales of every query head and of
 * 32 keys lie within 2^3 of each other (fold_scales; Hadamard-rotated
 * activations nearly always do) the codes absorb the scale ratios and the
 * tiles sum whole rows: half the tile work, a quarter of the sums to read
 * back, one float product per head and key instead of four.
 *
 * Per 32 keys the codes are decoded and transposed into K-packed B tiles
 * ([dim group][key] dwords, a small per-thread buffer, never a copy of the
 * cache); the query codes are the A tiles as they lie ([head][dim], 16 heads
 * a tile); 2 x 2 C tiles (32 heads x 32 keys) go to a buffer from which each
 * head's sums are scaled, ReLU'd, weighted and added in ref's order. */
#include <cpuid.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kernels.h"
#include "kernels_avx512.h"
#include "util.h"

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

#define AMX_MAX_DIM 256 /* index dims on tiles (every release has 128); more: the vnni entry */
#define AMX_MAX_BLOCKS (AMX_MAX_DIM / 32)
#define FOLD_LO 96  /* 2^-31: a folded dot is 0 or at least 2^-64, never subnormal */
#define FOLD_HI 160 /* 2^33: nor near overflow */

lt_kernels lt_kernels_avx512_amx = {.name = "avx512-amx"};

/* 2 * e2m1 times 2^s for s = 0..3, one 16-byte table each */
static const int8_t fp4_x2[4][16] = {
    {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12},
    {0, 2, 4, 6, 8, 12, 16, 24, 0, -2, -4, -6, -8, -12, -16, -24},
    {0, 4, 8, 12, 16, 24, 32, 48, 0, -4, -8, -12, -16, -24, -32, -48},
    {0, 8, 16, 24, 32, 48, 64, 96, 0, -8, -16, -24, -32, -48, -64, -96},
};


/* One row's block scales s[0..nb) fold when they span at most 2^3 and lie
 * in [2^-31, 2^33] (FOLD_LO, FOLD_HI): with the codes of block b times
 * 2^(s[b] - min) (still int8) every block carries the scale 2^min, a whole
 * row's dot is one exact integer below 2^22, and ref's block-by-block float
 * sum, made of multiples of one power of two below 2^24 of it, is exact too. Sets eff[b] (the scale
 * each block is taken at) and sh[b] (the code shift); returns whether it
 * folded. */
static int fold_scales(const uint8_t *s, int64_t nb, uint8_t *eff, uint8_t *sh) {
    uint8_t lo = 255, hi = 0;
    for (int64_t b = 0; b < nb; b++) lo = LT_MIN(lo, s[b]), hi = s[b] > hi ? s[b] : hi;
    int fold = hi - lo <= 3 && lo >= FOLD_LO && hi <= FOLD_HI;
    for (int64_t b = 0; b < nb; b++) eff[b] = fold ? lo : s[b], sh[b] = (uint8_t)(fold ? s[b] - lo : 0);
    return fold;
}

/* Tile registers: C 0..3 (heads 16i.. x keys 16g.., int32), A 4..5 (16
 * heads), B 6..7 (16 keys, K-packed). Per block: A and B hold one 32-block;
 * folded: 64 dims each, accumulated over the row. */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_config;

static void amx_configure(int folded) {
    amx_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 4; t++) c.rows[t] = 16, c.colsb[t] = 64;
    for (int t = 4; t < 6; t++) c.rows[t] = 16, c.colsb[t] = folded ? 64 : 32;
    for (int t = 6; t < 8; t++) c.rows[t] = folded ? 16 : 8, c.colsb[t] = 64;
    _tile_loadconfig(&c);
}

/* keys j..j+n-1 (n <= 16; the rest zero codes, scale 1) in B-tile order:
 * kb[r] lane k holds dims 4r..4r+3 of key k (rows up to the dims rounded up
 * to 64, zero past them), codes shifted as fold_scales says; sk[b] lane k is
 * the scale key k's block b is taken at. Returns whether every key folded. */
static int amx_keys(const lt_weight *K, int64_t j, int n, int32_t kb[][16], __m512 sk[]) {
    const int64_t d = K->cols, nb = d / 32, dq = (d + 63) / 64 * 64;
    const uint8_t *codes = (const uint8_t *)K->data + j * (d / 2), *scales = K->scale + j * nb;
    int32_t s4[AMX_MAX_BLOCKS / 4][16]; /* [128 dims][key]: the 4 blocks' shifts, a byte each */
    int folded = 1;
    if (nb == 4) { /* index dim 128 (every release): fold_scales on a dword per key */
        __mmask16 valid = n > 0 ? (__mmask16)((1u << LT_MIN(16, n)) - 1) : 0;
        __m512i v = _mm512_mask_loadu_epi32(_mm512_set1_epi32(0x7F7F7F7F), valid, scales);
        __m512i lo = _mm512_min_epu8(v, _mm512_srli_epi32(v, 8)), hi = _mm512_max_epu8(v, _mm512_srli_epi32(v, 8));
        lo = _mm512_and_si512(_mm512_min_epu8(lo, _mm512_srli_epi32(lo, 16)), _mm512_set1_epi32(0xFF));
        hi = _mm512_and_si512(_mm512_max_epu8(hi, _mm512_srli_epi32(hi, 16)), _mm512_set1_epi32(0xFF));
        __mmask16 f = _mm512_cmple_epi32_mask(_mm512_sub_epi32(hi, lo), _mm512_set1_epi32(3)) &
                      _mm512_cmpge_epi32_mask(lo, _mm512_set1_epi32(FOLD_LO)) &
                      _mm512_cmple_epi32_mask(hi, _mm512_set1_epi32(FOLD_HI));
        __m512i lo4 = _mm512_shuffle_epi8(lo, _mm512_set4_epi32(0x0C0C0C0C, 0x08080808, 0x04040404, 0));
        _mm512_storeu_si512(s4[0], _mm512_maskz_mov_epi32(f, _mm512_sub_epi8(v, lo4)));
        __m512i eff = _mm512_mask_blend_epi32(f, v, lo4);
        for (int b = 0; b < 4; b++)
            sk[b] = ue8m0_lanes(_mm512_and_si512(_mm512_srli_epi32(eff, 8 * b), _mm512_set1_epi32(0xFF)));
        folded = f == 0xFFFF;
    } else {
        uint8_t e[AMX_MAX_BLOCKS][16] __attribute__((aligned(16))), sh[16][AMX_MAX_BLOCKS + 3] = {{0}};
        for (int k = 0; k < 16; k++) {
            uint8_t eff[AMX_MAX_BLOCKS];
            if (k < n) folded &= fold_scales(scales + k * nb, nb, eff, sh[k]);
            for (int64_t b = 0; b < nb; b++) e[b][k] = k < n ? eff[b] : 127;
            for (int64_t c = 0; c < d; c += 128) memcpy(&s4[c / 128][k], sh[k] + c / 32, 4);
        }
        for (int64_t b = 0; b < nb; b++)
            sk[b] = ue8m0_lanes(_mm512_cvtepu8_epi32(_mm_load_si128((const __m128i *)(void *)e[b])));
    }
    /* per key, 128-bit lane L of its table is the one of block L's shift */
    const __m512i tables = _mm512_loadu_si512(fp4_x2), nib = _mm512_set1_epi8(15);
    const __m512i pick = _mm512_set_epi32((int)0x80808003, (int)0x80808003, (int)0x80808003, (int)0x80808003,
                                          (int)0x80808002, (int)0x80808002, (int)0x80808002, (int)0x80808002,
                                          (int)0x80808001, (int)0x80808001, (int)0x80808001, (int)0x80808001,
                                          (int)0x80808000, (int)0x80808000, (int)0x80808000, (int)0x80808000);
    const __m512i dw = _mm512_set4_epi32(3, 2, 1, 0);
    for (int64_t c = 0; c < d; c += 128) { /* 64 bytes of codes: dims c..c+127 */
        int64_t bytes = LT_MIN(64, (d - c) / 2);
        __mmask64 m = bytes == 64 ? ~(__mmask64)0 : ((__mmask64)1 << bytes) - 1;
        __m512i lo[16], hi[16];
        for (int k = 0; k < 16; k++) {
            __m512i sel = _mm512_shuffle_epi8(_mm512_set1_epi32(s4[c / 128][k]), pick);
            __m512i lut = _mm512_permutexvar_epi32(_mm512_add_epi32(_mm512_slli_epi32(sel, 2), dw), tables);
            __m512i b = k < n ? _mm512_maskz_loadu_epi8(m, codes + k * (d / 2) + c / 2) : _mm512_setzero_si512();
            __m512i l = _mm512_shuffle_epi8(lut, _mm512_and_si512(b, nib));
            __m512i h = _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(b, 4), nib));
            lo[k] = _mm512_unpacklo_epi8(l, h); /* 128-bit lane L: dims c + 32L + 0..15 */
            hi[k] = _mm512_unpackhi_epi8(l, h); /* 128-bit lane L: dims c + 32L + 16..31 */
        }
        v_transpose((lt_vf *)(void *)lo);
        v_transpose((lt_vf *)(void *)hi);
        for (int i = 0; i < 16 && c + 32 * (i / 4) < dq; i++) { /* lo[4L + g]: group g of block L */
            int64_t r = c / 4 + 8 * (i / 4) + i % 4;
            _mm512_store_si512(kb[r], lo[i]);
            _mm512_store_si512(kb[r + 4], hi[i]);
        }
    }
    return folded;
}

/* a head's term wt ReLU(dot) for 16 keys, with ref's bf16 roundings */
static inline __m512 relu_term(__m512 dot, float wt, int bf16) {
    if (!bf16) return _mm512_mul_ps(_mm512_max_ps(dot, _mm512_setzero_ps()), _mm512_set1_ps(wt));
    return v_round_bf16(_mm512_mul_ps(_mm512_max_ps(v_round_bf16(dot), _mm512_setzero_ps()), _mm512_set1_ps(wt)));
}

/* With bf16 numerics, folded sums and every |wt| 0 or in [2^-60, 2^60]
 * (amx_post_bf16), vcvtne2ps2bf16 rounds 32 keys at once: nearest even as
 * lt_round_bf16, except that it flushes subnormals, which neither the dots
 * (FOLD_LO) nor the terms can be then. The query scale q, a power of two,
 * moves onto wt: bf16(x q) = bf16(x) q, ReLU commutes with it, and
 * (wt q) y = wt (q y) exactly in that range (wq = wt q, once per call).
 * The words come back to floats by a shift (even words) and a mask (odd
 * words), not by unpacks, which would crowd the one shuffle port with the
 * conversions; so the two sums hold keys 0 4 .. 28 1 5 .. 29 and 2 6 .. 30
 * 3 7 .. 31, put in order once per 32 keys (unshuffle_bf16). */
static inline void unshuffle_bf16(__m512 out[2]) {
    const __m512i first = _mm512_setr_epi32(0, 8, 16, 24, 1, 9, 17, 25, 2, 10, 18, 26, 3, 11, 19, 27);
    __m512 a = out[0], b = out[1];
    out[0] = _mm512_permutex2var_ps(a, first, b);
    out[1] = _mm512_permutex2var_ps(a, _mm512_add_epi32(first, _mm512_set1_epi32(4)), b);
}

/* the bf16 words of v as floats: the even words, then the odd words */
static inline __m512 bf16_even(__m512i v) { return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)); }
static inline __m512 bf16_odd(__m512i v) {
    return _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32((int)0xFFFF0000)));
}

/* heads [h0, h1) of 32 folded keys with bf16 numerics on vcvtne2ps2bf16
 * (above): the row sums cs[0][h - h0][key] times the key scales, rounded,
 * ReLU'd on the bf16 bits, times wq[h], rounded, summed over heads */
static inline void amx_post_bf16(int32_t (*cs)[32][32], int64_t h0, int64_t h1, __m512 (*sk)[AMX_MAX_BLOCKS],
                                 const float *wq, __m512 out[2]) {
    const __m512 k0 = sk[0][0], k1 = sk[1][0];
    __m512 o0 = out[0], o1 = out[1];
    for (int64_t h = h0; h < h1; h++) {
        const __m512 w = _mm512_set1_ps(wq[h]);
        __m512 d0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512(cs[0][h - h0])), k0);
        __m512 d1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512(&cs[0][h - h0][16])), k1);
        __m512i r = _mm512_max_epi16((__m512i)_mm512_cvtne2ps_pbh(d1, d0), _mm512_setzero_si512()); /* ReLU */
        __m512i tb = (__m512i)_mm512_cvtne2ps_pbh(_mm512_mul_ps(bf16_odd(r), w), _mm512_mul_ps(bf16_even(r), w));
        o0 = _mm512_add_ps(o0, bf16_even(tb));
        o1 = _mm512_add_ps(o1, bf16_odd(tb));
    }
    out[0] = o0, out[1] = o1;
}

/* heads [h0, h1) of 32 keys: the block sums cs[b][h - h0][key] of nblk
 * blocks times (query scale / 4) x key scale, exact, added in block order
 * (one rounding each, as ref), then the weighted ReLU summed over heads */
static inline void amx_post(int32_t (*cs)[32][32], int64_t nblk, int64_t h0, int64_t h1,
                            const float (*qs)[AMX_MAX_BLOCKS], __m512 (*sk)[AMX_MAX_BLOCKS], const float *wt, int bf16,
                            __m512 out[2]) {
    __m512 o0 = out[0], o1 = out[1];
    if (nblk == 1) { /* folded: one exact product per head and key */
        const __m512 k0 = sk[0][0], k1 = sk[1][0];
        for (int64_t h = h0; h < h1; h++) {
            const __m512 q = _mm512_set1_ps(qs[h][0]);
            o0 = _mm512_add_ps(o0, relu_term(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512(cs[0][h - h0])),
                                                           _mm512_mul_ps(k0, q)), wt[h], bf16));
            o1 = _mm512_add_ps(o1, relu_term(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512(&cs[0][h - h0][16])),
                                                           _mm512_mul_ps(k1, q)), wt[h], bf16));
        }
    } else
        for (int64_t h = h0; h < h1; h++) {
            __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
            for (int64_t b = 0; b < nblk; b++) {
                const __m512 q = _mm512_set1_ps(qs[h][b]);
                const __m512 c0 = _mm512_cvtepi32_ps(_mm512_load_si512(cs[b][h - h0]));
                const __m512 c1 = _mm512_cvtepi32_ps(_mm512_load_si512(&cs[b][h - h0][16]));
                s0 = _mm512_fmadd_ps(c0, _mm512_mul_ps(sk[0][b], q), s0);
                s1 = _mm512_fmadd_ps(c1, _mm512_mul_ps(sk[1][b], q), s1);
            }
            o0 = _mm512_add_ps(o0, relu_term(s0, wt[h], bf16));
            o1 = _mm512_add_ps(o1, relu_term(s1, wt[h], bf16));
        }
    out[0] = o0, out[1] = o1;
}

/* one group of 32 keys in flight: its B tiles, key scales, partial
 * scores and whether it folded */
typedef struct {
    int32_t kb[2][AMX_MAX_DIM / 4][16]; /* two B-tile groups of 16 keys */
    __m512 sk[2][AMX_MAX_BLOCKS];
    __m512 out[2];
    int64_t j;
    int n, folded;
} key_group;

/* keys j..j+n-1 (n <= 32) into g, folded when every key and every head
 * (qfold) folds */
static void amx_pack(const lt_weight *K, int64_t j, int n, int qfold, key_group *g) {
    const int64_t row = K->cols / 2, nb = K->cols / 32;
    if (j + 64 + 32 <= K->rows) { /* two groups ahead: the hardware prefetchers do not keep up */
        const uint8_t *c = (const uint8_t *)K->data + (j + 64) * row, *s = K->scale + (j + 64) * nb;
        for (int64_t b = 0; b < 32 * row; b += 64) __builtin_prefetch(c + b);
        for (int64_t b = 0; b < 32 * nb; b += 64) __builtin_prefetch(s + b);
    }
    int folded = amx_keys(K, j, LT_MIN(n, 16), g->kb[0], g->sk[0]);
    g->folded = folded & amx_keys(K, j + 16, n - 16, g->kb[1], g->sk[1]) & qfold;
    g->j = j, g->n = n;
    g->out[0] = g->out[1] = _mm512_setzero_ps();
}

/* C tiles 0..3 (32 heads x 32 keys) to c[head][key] */
static void amx_store(int32_t (*c)[32]) {
    _tile_stored(0, c[0], 128);
    _tile_stored(1, &c[0][16], 128);
    _tile_stored(2, c[16], 128);
    _tile_stored(3, &c[16][16], 128);
}

/* the tile work of 32 heads x 32 keys: q8 at the first head (rows of dq),
 * kb the keys; block sums to cs[block][head][key], except that folded row
 * sums stay in the C tiles for amx_store (the caller stores them once the
 * products are done, so that the stores do not wait on them) */
static void amx_tiles(int folded, int64_t nb, int64_t dq, const int8_t *q8, int32_t kb[2][AMX_MAX_DIM / 4][16],
                      int32_t (*cs)[32][32]) {
    const int64_t steps = folded ? dq / 64 : nb, w = folded ? 64 : 32; /* dims per step */
    for (int64_t b = 0; b < steps; b++) {
        if (b == 0 || !folded) {
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
        }
        _tile_loadd(4, q8 + w * b, dq);
        _tile_loadd(5, q8 + 16 * dq + w * b, dq);
        _tile_loadd(6, kb[0][w / 4 * b], 64);
        _tile_loadd(7, kb[1][w / 4 * b], 64);
        _tile_dpbssd(0, 4, 6);
        _tile_dpbssd(1, 4, 7);
        _tile_dpbssd(2, 5, 6);
        _tile_dpbssd(3, 5, 7);
        if (!folded) amx_store(cs[b]);
    }
}

/* the post-processing of one unit, heads [h0, h0 + 32) of group g from
 * its sums cs (wq: amx_post_bf16's weights where that path applies, else
 * NULL); after the last heads, g's scores are stored */
static void index_post(key_group *g, int32_t (*cs)[32][32], int64_t nb, int64_t h0, int64_t nh,
                       const float (*qs)[AMX_MAX_BLOCKS], const float *wt, const float *wq, int bf16, float *score) {
    const int fast = g->folded && wq;
    if (fast) amx_post_bf16(cs, h0, LT_MIN(h0 + 32, nh), g->sk, wq, g->out);
    else amx_post(cs, g->folded ? 1 : nb, h0, LT_MIN(h0 + 32, nh), qs, g->sk, wt, bf16, g->out);
    if (h0 + 32 < nh) return;
    if (fast) unshuffle_bf16(g->out);
    for (int i = 0; i < 2 && 16 * i < g->n; i++)
        _mm512_mask_storeu_ps(score + g->j + 16 * i, (__mmask16)((1u << LT_MIN(16, g->n - 16 * i)) - 1),
                              bf16 ? v_round_bf16(g->out[i]) : g->out[i]);
}

static void index_score_amx(const lt_weight *K, const lt_weight *Q, const float *wt, int bf16, int64_t j0, int64_t j1,
                            float *score) {
    const int64_t d = K->cols, nb = d / 32, dq = (d + 63) / 64 * 64, nh = Q->rows, nh32 = (nh + 31) / 32 * 32;
    if (K->type != LT_W_FP4 || Q->type != LT_W_FP4 || d > AMX_MAX_DIM) {
        lt_kernels_avx512_vnni.index_score(K, Q, wt, bf16, j0, j1, score);
        return;
    }
    if (j0 >= j1) return;
    /* queries: codes [head][dim] (rows of dq, heads padded to 32, zeros),
     * shifted when every head folds; each block's scale / 4 */
    int8_t q8[LT_INDEX_MAX_HEADS * AMX_MAX_DIM] __attribute__((aligned(64)));
    float qs[LT_INDEX_MAX_HEADS][AMX_MAX_BLOCKS];
    uint8_t eff[LT_INDEX_MAX_HEADS][AMX_MAX_BLOCKS], sh[LT_INDEX_MAX_HEADS][AMX_MAX_BLOCKS];
    int qfold = 1, wt_fast = 1;
    for (int64_t h = 0; h < nh; h++) wt_fast &= wt[h] == 0.0f || (fabsf(wt[h]) >= 0x1p-60f && fabsf(wt[h]) <= 0x1p60f);
    for (int64_t h = 0; h < nh; h++) qfold &= fold_scales(Q->scale + h * nb, nb, eff[h], sh[h]);
    memset(q8, 0, (size_t)(nh32 * dq));
    const __m128i nib = _mm_set1_epi8(15);
    for (int64_t h = 0; h < nh; h++) {
        const uint8_t *row = (const uint8_t *)Q->data + h * (d / 2), *sc = Q->scale + h * nb;
        for (int64_t b = 0; b < nb; b++) {
            __m128i lut = _mm_loadu_si128((const __m128i *)(const void *)fp4_x2[qfold ? sh[h][b] : 0]);
            __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(row + 16 * b));
            __m128i l = _mm_shuffle_epi8(lut, _mm_and_si128(x, nib));
            __m128i u = _mm_shuffle_epi8(lut, _mm_and_si128(_mm_srli_epi16(x, 4), nib));
            _mm_storeu_si128((__m128i *)(void *)(q8 + h * dq + 32 * b), _mm_unpacklo_epi8(l, u));
            _mm_storeu_si128((__m128i *)(void *)(q8 + h * dq + 32 * b + 16), _mm_unpackhi_epi8(l, u));
            qs[h][b] = lt_ue8m0_to_f32(qfold ? eff[h][b] : sc[b]) * 0.25f;
        }
    }

    /* Units of 32 keys x 32 heads, one behind the other: a unit's tile
     * products are issued, then the previous unit is post-processed (from
     * the other cs buffer) and, after a group's last heads, the next group
     * packed, and only then are the unit's sums stored, so that the stores
     * do not wait on the products (4% of the scan here; the tile work and
     * the vector work still add up rather than overlap). */
    key_group kg[2] __attribute__((aligned(64)));
    int32_t cs[2][AMX_MAX_BLOCKS][32][32] __attribute__((aligned(64))); /* [block][head][key] sums */
    float wq[LT_INDEX_MAX_HEADS];
    for (int64_t h = 0; h < nh; h++) wq[h] = wt[h] * qs[h][0];
    const float *wqp = bf16 && wt_fast && qfold ? wq : NULL;
    int config = -1, buf = 0, p_h0 = 0;
    key_group *pg = NULL; /* the unit waiting for its post-processing: group, first head */
    amx_pack(K, j0, (int)LT_MIN(32, j1 - j0), qfold, &kg[0]);
    for (int64_t j = j0, gi = 0; j < j1; j += 32, gi++) {
        key_group *g = &kg[gi & 1];
        if (g->folded != config) amx_configure(config = g->folded);
        for (int64_t h0 = 0; h0 < nh; h0 += 32, buf ^= 1) {
            amx_tiles(g->folded, nb, dq, q8 + h0 * dq, g->kb, cs[buf]);
            if (pg) index_post(pg, cs[buf ^ 1], nb, p_h0, nh, (const float(*)[AMX_MAX_BLOCKS])qs, wt, wqp, bf16, score);
            pg = g, p_h0 = (int)h0;
            if (h0 + 32 >= nh && j + 32 < j1) amx_pack(K, j + 32, (int)LT_MIN(32, j1 - j - 32), qfold, &kg[(gi + 1) & 1]);
            if (g->folded) amx_store(cs[buf][0]);
        }
    }
    if (pg) index_post(pg, cs[buf ^ 1], nb, p_h0, nh, (const float(*)[AMX_MAX_BLOCKS])qs, wt, wqp, bf16, score);
    _tile_release();
}

/* CPUID: AMX-BF16, AMX-TILE and AMX-INT8 (leaf 7 EDX bits 22, 24, 25),
 * AVX512-BF16, the OS saving tile state (XCR0 bits 17, 18); then Linux's
 * per-process permission for it. The table also takes the REFERENCE
 * attention and prefill products on bf16 tiles (kernels_avx512.c). */
static int g_amx_ok;
static pthread_once_t g_amx_once = PTHREAD_ONCE_INIT;

static void amx_detect(void) {
    unsigned a, b, c, d, lo, hi;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE)) return; /* xgetbv is allowed */
    const unsigned tiles = 1u << 22 | 1u << 24 | 1u << 25;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || (d & tiles) != tiles) return;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d) || !(a & (1u << 5))) return; /* AVX512_BF16 */
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & (3u << 17)) != (3u << 17)) return;
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) return;
    lt_kernels_avx512_amx = lt_kernels_avx512_bf16; /* filled: kernels.c checked it first */
    lt_kernels_avx512_amx.name = "avx512-amx";
    lt_kernels_avx512_amx.index_score = index_score_amx;
    lt_kernels_avx512_amx.attn_rows = lt_attn_rows_amx;
    lt_kernels_avx512_amx.matmul[LT_W_FP8] = lt_matmul_fp8_amx;
    lt_kernels_avx512_amx.matmul_actq[LT_W_FP8] = lt_matmul_actq_fp8_amx;
    lt_kernels_avx512_amx.matmul_actq[LT_W_FP4] = lt_matmul_actq_fp4_amx;
    g_amx_ok = 1;
}

int lt_kernels_amx_init(void) {
    pthread_once(&g_amx_once, amx_detect);
    return g_amx_ok;
}
