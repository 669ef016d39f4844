/* AVX-512 (F/BW/VL/DQ + F16C) kernel tables "avx512", "avx512-vnni" and
 * "avx512-bf16": the loops of kernels_simd.h over the primitives of
 * kernels_avx512.h. Built with the AVX512F flags of the Makefile; chosen by
 * kernels.c only when CPUID reports them. The AMX paths (REFERENCE
 * attention and prefill) and the bf16 decode products carry their own
 * target attributes; kernels_amx.c puts the AMX ones in its table. */
#include <limits.h>
#include <math.h>
#include <pthread.h>

#include "kernels_avx512.h"
#include "kernels_simd.h"

/* ---- indexer scores as int8 dot products (AVX512-VNNI) ----------------- */

/* FP4 keys and queries of width 128 (the index head dim of every release)
 * become 2 * e2m1 in int8. vpdpbusd multiplies unsigned by signed bytes, so
 * keys are biased by +12 and each block sum starts at -12 * (the block's
 * query code sum). A block sum of 32 products is an exact integer; times
 * (query scale / 4) and the key scale it is exact too, so adding the four
 * blocks in order, then ReLU, multiply and add over heads in order (with the
 * same bf16 roundings), repeats ref's arithmetic bit for bit. Per 16 keys the codes are transposed to
 * [dim group][key] dwords once, then every head runs 32 vpdpbusd. */
#define IDX_DIM 128
#define IDX_BIAS 12

static const int8_t fp4_x2[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

typedef struct {
    int32_t codes[LT_INDEX_MAX_HEADS][IDX_DIM / 4];  /* dims 4g..4g+3 as int8 in dword g */
    int32_t start[LT_INDEX_MAX_HEADS][IDX_DIM / 32]; /* -12 * sum of each block's codes */
    float scale[LT_INDEX_MAX_HEADS][IDX_DIM / 32];   /* each block's scale / 4 */
} vnni_query;

static void vnni_query_pack(const lt_weight *Q, vnni_query *vq) {
    for (int64_t h = 0; h < Q->rows; h++) {
        const uint8_t *row = (const uint8_t *)Q->data + h * (IDX_DIM / 2), *sc = Q->scale + h * (IDX_DIM / 32);
        int8_t c[IDX_DIM];
        for (int i = 0; i < IDX_DIM / 2; i++) c[2 * i] = fp4_x2[row[i] & 15], c[2 * i + 1] = fp4_x2[row[i] >> 4];
        memcpy(vq->codes[h], c, sizeof c);
        for (int b = 0; b < IDX_DIM / 32; b++) {
            int32_t sum = 0;
            for (int i = 0; i < 32; i++) sum += c[32 * b + i];
            vq->start[h][b] = -IDX_BIAS * sum;
            vq->scale[h][b] = ue8m0(sc[b]) * 0.25f;
        }
    }
}

/* keys j..j+15 (n of them; the rest zero) as biased int8: after the
 * transposes lo[d] lane k holds group 8(d/4) + d%4 of key k, hi[d] group
 * 8(d/4) + 4 + d%4; sk[b] lane k is key k's block-b scale */
static void vnni_keys(const lt_weight *K, int64_t j, int n, __m512i lo[16], __m512i hi[16], __m512 sk[4]) {
    uint8_t pad_codes[16 * IDX_DIM / 2], pad_scales[16 * IDX_DIM / 32];
    const uint8_t *codes = (const uint8_t *)K->data + j * (IDX_DIM / 2), *scales = K->scale + j * (IDX_DIM / 32);
    if (n < 16) { /* never read past the key cache */
        memset(pad_codes, 0, sizeof pad_codes);
        memset(pad_scales, 127, sizeof pad_scales);
        memcpy(pad_codes, codes, (size_t)n * IDX_DIM / 2);
        memcpy(pad_scales, scales, (size_t)n * IDX_DIM / 32);
        codes = pad_codes, scales = pad_scales;
    }
    const __m512i lut = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)fp4_x2));
    const __m512i nib = _mm512_set1_epi8(15), bias = _mm512_set1_epi8(IDX_BIAS);
    for (int k = 0; k < 16; k++) {
        __m512i b = _mm512_loadu_si512(codes + k * (IDX_DIM / 2));
        __m512i l = _mm512_add_epi8(_mm512_shuffle_epi8(lut, _mm512_and_si512(b, nib)), bias);
        __m512i h = _mm512_add_epi8(_mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(b, 4), nib)), bias);
        lo[k] = _mm512_unpacklo_epi8(l, h); /* lane L: dims 32L + 0..15 */
        hi[k] = _mm512_unpackhi_epi8(l, h); /* lane L: dims 32L + 16..31 */
    }
    v_transpose((lt_vf *)(void *)lo);
    v_transpose((lt_vf *)(void *)hi);
    __m512i w = _mm512_loadu_si512(scales);
    for (int b = 0; b < 4; b++) sk[b] = ue8m0_lanes(_mm512_and_si512(_mm512_srli_epi32(w, 8 * b), _mm512_set1_epi32(0xFF)));
}

__attribute__((target("avx512vnni"))) static void index_score_vnni(const lt_weight *K, const lt_weight *Q,
                                                                    const float *wt, int bf16, int64_t j0,
                                                                    int64_t j1, float *score) {
    if (K->type != LT_W_FP4 || Q->type != LT_W_FP4 || K->cols != IDX_DIM) {
        index_score_simd(K, Q, wt, bf16, j0, j1, score);
        return;
    }
    vnni_query vq;
    float part_sum[LT_INDEX_MAX_HEADS][16] __attribute__((aligned(64))); /* each head's blocks so far */
    vnni_query_pack(Q, &vq);
    for (int64_t j = j0; j < j1; j += 16) {
        int n = (int)LT_MIN(16, j1 - j);
        __m512i lo[16], hi[16];
        __m512 sk[4], out = _mm512_setzero_ps();
        vnni_keys(K, j, n, lo, hi, sk);
        /* block-major: the block's 8 key vectors stay in registers while
         * every head runs its 8 vpdpbusd against them */
        for (int b = 0; b < 4; b++) {
            __m512i k0 = lo[4 * b], k1 = lo[4 * b + 1], k2 = lo[4 * b + 2], k3 = lo[4 * b + 3];
            __m512i k4 = hi[4 * b], k5 = hi[4 * b + 1], k6 = hi[4 * b + 2], k7 = hi[4 * b + 3];
            for (int64_t h = 0; h < Q->rows; h++) {
                const int32_t *qc = vq.codes[h] + 8 * b;
                __m512i a = _mm512_set1_epi32(vq.start[h][b]), c = _mm512_setzero_si512(); /* two short chains */
                a = _mm512_dpbusd_epi32(a, k0, _mm512_set1_epi32(qc[0]));
                c = _mm512_dpbusd_epi32(c, k4, _mm512_set1_epi32(qc[4]));
                a = _mm512_dpbusd_epi32(a, k1, _mm512_set1_epi32(qc[1]));
                c = _mm512_dpbusd_epi32(c, k5, _mm512_set1_epi32(qc[5]));
                a = _mm512_dpbusd_epi32(a, k2, _mm512_set1_epi32(qc[2]));
                c = _mm512_dpbusd_epi32(c, k6, _mm512_set1_epi32(qc[6]));
                a = _mm512_dpbusd_epi32(a, k3, _mm512_set1_epi32(qc[3]));
                c = _mm512_dpbusd_epi32(c, k7, _mm512_set1_epi32(qc[7]));
                __m512 part = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(a, c)), _mm512_set1_ps(vq.scale[h][b]));
                __m512 s = b ? _mm512_load_ps(part_sum[h]) : _mm512_setzero_ps();
                s = _mm512_fmadd_ps(part, sk[b], s); /* part * sk is exact: one rounding, as ref */
                if (b < 3) _mm512_store_ps(part_sum[h], s);
                else if (bf16) out = _mm512_add_ps(out, v_round_bf16(_mm512_mul_ps(_mm512_max_ps(v_round_bf16(s),
                                                       _mm512_setzero_ps()), _mm512_set1_ps(wt[h]))));
                else out = _mm512_add_ps(out, _mm512_mul_ps(_mm512_max_ps(s, _mm512_setzero_ps()), _mm512_set1_ps(wt[h])));
            }
        }
        _mm512_mask_storeu_ps(score + j, (__mmask16)((1u << n) - 1), bf16 ? v_round_bf16(out) : out);
    }
}

/* ---- bf16 tables of the FP4 and FP8 codes (AMX and AVX512-BF16 paths) --- */

#define AMX_FN __attribute__((target("amx-tile,amx-bf16,avx512bf16")))

/* e2m1 as bf16 times 2^(s-127), per scale byte s in [2, 252] (exact: a
 * normal bf16; other scales take the vector paths), 16 codes repeated
 * (VPERMW reads 5 index bits) */
enum { FP4_S_LO = 2, FP4_S_HI = 252 };
static uint16_t fp4_bf16[256][32] __attribute__((aligned(64)));

/* e4m3 magnitudes (codes 0..127; 0x7F, a NaN, as 480 like the vector
 * decoders) as bf16 times 2^(s-127), per scale byte s in [FP8_S_LO, FP8_S_HI]:
 * exact and normal there (4 significant bits, 2^-9..448) */
enum { FP8_S_LO = 10, FP8_S_HI = 245 };
static uint16_t fp8_bf16[256][128] __attribute__((aligned(64)));

/* both tables, filled once before the first tile that reads them */
static pthread_once_t bf16_tables_once = PTHREAD_ONCE_INIT;

static void bf16_tables_fill(void) {
    for (int s = FP8_S_LO; s <= FP8_S_HI; s++)
        for (int c = 0; c < 128; c++) {
            float v = c == 0x7F ? 480.0f : lt_fp8_e4m3_to_f32((uint8_t)c);
            fp8_bf16[s][c] = lt_f32_to_bf16(v * ldexpf(1.0f, s - 127));
        }
    for (int s = FP4_S_LO; s <= FP4_S_HI; s++)
        for (int c = 0; c < 32; c++) fp4_bf16[s][c] = lt_f32_to_bf16(lt_fp4_e2m1_table[c & 15] * ldexpf(1.0f, s - 127));
}

/* one block scale's fp8_bf16 table in registers */
typedef struct {
    int s;
    __m512i t[4];
} fp8_tab;

/* make tb hold scale s's table; 0 if s lies outside [FP8_S_LO, FP8_S_HI] */
AMX_FN static inline int fp8_tab_use(fp8_tab *tb, int s) {
    if (s == tb->s) return 1;
    if (s < FP8_S_LO || s > FP8_S_HI) return 0;
    for (int i = 0; i < 4; i++) tb->t[i] = _mm512_load_si512(fp8_bf16[s] + 32 * i);
    tb->s = s;
    return 1;
}

/* the 32 e4m3 codes at src as bf16 through tb: a magnitude lookup in two
 * VPERMT2W over 64 entries each, picked by bit 6, and the sign moved to
 * bit 15 */
AMX_FN static inline __m512i fp8_row_bf16(const uint8_t *src, const fp8_tab *tb) {
    const __m512i w = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(const void *)src));
    const __m512i v = _mm512_mask_blend_epi16(_mm512_test_epi16_mask(w, _mm512_set1_epi16(0x40)),
                                              _mm512_permutex2var_epi16(tb->t[0], w, tb->t[1]),
                                              _mm512_permutex2var_epi16(tb->t[2], w, tb->t[3]));
    return _mm512_ternarylogic_epi32(v, _mm512_slli_epi16(w, 8), _mm512_set1_epi16((short)0x8000), 0xF8);
}

/* ---- REFERENCE attention on AMX-BF16 tiles ----------------------------- */

/* In REFERENCE numerics every operand of sparse attention is a bf16 value:
 * q is stored in bf16, K = V rows are FP8 x 2^e or bf16 (kvrow.h), P is
 * rounded to bf16 before P.V. The tile dot products (TDPBF16PS: exact
 * products, fp32 sums) therefore compute what the FMA path computes, up to
 * the order of the fp32 sums. Per block of 64 slots and 16 heads:
 *   S^T [64 rows][16 heads] = V . Q^T  (A: the block's bf16 rows as they
 *                                       lie; B: q pairs, transposed once)
 *   the online softmax on S^T, one head per lane (attn_rows_simd's rules)
 *   O [16 heads][d] += P . V           (A: P transposed into head rows;
 *                                       B: row pairs of V interleaved)
 * Tiles 0-3 accumulate, 4 holds A, 6-7 hold B; all are 16 x 64 bytes. */
enum { AB = LT_ATTN_BLOCK, AG = 16 };

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_tilecfg;

static _Thread_local struct {
    uint16_t v[AB * LT_ATTN_MAX_DIM];                             /* the block's rows, bf16 [64][d] */
    uint32_t vp[AB / 2 * LT_ATTN_MAX_DIM];                        /* rows 2i, 2i+1 interleaved [32][d] */
    uint32_t qt[LT_ATTN_MAX_HEADS / AG][LT_ATTN_MAX_DIM / 2 * AG]; /* q pairs [group][pair][head] */
    uint32_t pa[AB / 32][AG * 16];                                /* P pairs [j step][head][pair] */
    float st[AB * AG] __attribute__((aligned(64)));               /* S^T, then P [64][16] */
    float otail[AG * LT_ATTN_MAX_DIM];                            /* a last group of fewer than 16 heads */
    float row[LT_ATTN_MAX_DIM];
} amx;

/* 32 floats -> 16 dwords of bf16 pairs (element 2i low), RNE (exact here) */
AMX_FN static inline __m512i bf16_pairs(const float *x) {
    return (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + 16), _mm512_loadu_ps(x));
}

/* one FP8 row as bf16 straight from its codes (fp8_row_bf16 per 32 codes,
 * the bf16 tail copied): bit for bit kv_decode then bf16_pairs. Returns 0
 * (v partly written) if a block scale lies outside the tables' range. */
AMX_FN static int amx_row_fp8(const lt_kv_fmt *f, const uint8_t *row, uint16_t *v) {
    const uint8_t *sc = row + lt_kv_scale_offset(f);
    fp8_tab tb = {.s = -1};
    for (int64_t c = 0; c < f->w8; c += 32) {
        if (!fp8_tab_use(&tb, sc[c / f->block])) return 0;
        _mm512_storeu_si512(v + c, fp8_row_bf16(row + c, &tb));
    }
    memcpy(v + f->w8, row + lt_kv_bf16_offset(f), sizeof(uint16_t) * (size_t)(f->d - f->w8));
    return 1;
}

/* VPERMT2W indices that interleave the words of two rows: row 0's word c,
 * then row 1's (32 + c), for c < 16 */
static const uint16_t pair_words[32] __attribute__((aligned(64))) = {
    0, 32, 1, 33, 2, 34, 3, 35, 4, 36, 5, 37, 6, 38, 7, 39, 8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47};

/* the block's rows as bf16 (zero past nb and for padding slots), and the
 * pairs of rows interleaved for the B tiles of P.V (dword c of pair i:
 * column c of row 2i, then of row 2i + 1) */
AMX_FN static void amx_block_rows(const lt_kv_fmt *f, int64_t n_first, const uint8_t *const *rows, int64_t b, int nb) {
    const int64_t d = f->d;
    for (int j = 0; j < AB; j++) {
        uint16_t *vj = amx.v + j * d;
        if (j >= nb || !rows[b + j]) {
            memset(vj, 0, sizeof(uint16_t) * (size_t)d);
            continue;
        }
        const lt_kv_fmt *fj = &f[b + j >= n_first];
        if (fj->kind == LT_KV_FP8 && fj->w8 % 32 == 0 && fj->block % 32 == 0 && amx_row_fp8(fj, rows[b + j], vj))
            continue;
        kv_decode(fj, rows[b + j], amx.row);
        for (int64_t c = 0; c < d; c += 32) _mm512_storeu_si512(vj + c, bf16_pairs(amx.row + c));
    }
    const __m512i lo = _mm512_load_si512(pair_words), hi = _mm512_add_epi16(lo, _mm512_set1_epi16(16));
    for (int i = 0; i < AB / 2; i++)
        for (int64_t c = 0; c < d; c += 32) {
            const __m512i r0 = _mm512_loadu_si512(amx.v + 2 * i * d + c), r1 = _mm512_loadu_si512(amx.v + (2 * i + 1) * d + c);
            _mm512_storeu_si512(amx.vp + i * d + c, _mm512_permutex2var_epi16(r0, lo, r1));
            _mm512_storeu_si512(amx.vp + i * d + c + 16, _mm512_permutex2var_epi16(r0, hi, r1));
        }
}

/* q of heads [h, h + 16) (zeros past nh) as B tiles: [pair][head] dwords */
AMX_FN static void amx_query(const float *q, int64_t d, int64_t h, int64_t nh, uint32_t *qt) {
    for (int64_t p0 = 0; p0 < d / 2; p0 += 16) {
        __m512i r[AG];
        for (int i = 0; i < AG; i++) r[i] = h + i < nh ? bf16_pairs(q + (h + i) * d + 2 * p0) : _mm512_setzero_si512();
        v_transpose((lt_vf *)(void *)r);
        for (int i = 0; i < AG; i++) _mm512_storeu_si512(qt + (p0 + i) * AG, r[i]);
    }
}

/* S^T of one group, then the online-softmax step per head (lane): returns
 * in amx.pa the bf16 P as A tiles, in r the factors for O */
AMX_FN static void amx_scores_softmax(const uint8_t *const *rows, int64_t b, int nb, int64_t d, const uint32_t *qt,
                                      float scale, float *m, float *sum, float *r) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t ks = 0; ks < d / 32; ks++) {
        _tile_loadd(6, qt + ks * 16 * AG, 64);
        _tile_loadd(4, amx.v + 0 * 16 * d + ks * 32, d * 2);
        _tile_dpbf16ps(0, 4, 6);
        _tile_loadd(4, amx.v + 1 * 16 * d + ks * 32, d * 2);
        _tile_dpbf16ps(1, 4, 6);
        _tile_loadd(4, amx.v + 2 * 16 * d + ks * 32, d * 2);
        _tile_dpbf16ps(2, 4, 6);
        _tile_loadd(4, amx.v + 3 * 16 * d + ks * 32, d * 2);
        _tile_dpbf16ps(3, 4, 6);
    }
    _tile_stored(0, amx.st + 0 * 16 * AG, 64);
    _tile_stored(1, amx.st + 1 * 16 * AG, 64);
    _tile_stored(2, amx.st + 2 * 16 * AG, 64);
    _tile_stored(3, amx.st + 3 * 16 * AG, 64);
    __m512 vm = _mm512_loadu_ps(m), vs = _mm512_set1_ps(scale), ninf = _mm512_set1_ps(-INFINITY);
    __m512 mx = vm, bsum = _mm512_setzero_ps();
    for (int j = 0; j < AB; j++) {
        __m512 s = j < nb && rows[b + j] ? _mm512_mul_ps(_mm512_load_ps(amx.st + j * AG), vs) : ninf;
        _mm512_store_ps(amx.st + j * AG, s);
        mx = _mm512_max_ps(mx, s);
    }
    float mxs[AG];
    _mm512_storeu_ps(mxs, mx);
    for (int i = 0; i < AG; i++) r[i] = expf(m[i] - mxs[i]);
    for (int j = 0; j < AB; j++) {
        int live = j < nb && rows[b + j];
        __m512 p = live ? v_exp(_mm512_sub_ps(_mm512_load_ps(amx.st + j * AG), mx)) : _mm512_setzero_ps();
        bsum = _mm512_add_ps(bsum, p);
        _mm512_store_ps(amx.st + j * AG, v_round_bf16(p));
    }
    _mm512_storeu_ps(sum, _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(sum), _mm512_loadu_ps(r)), bsum));
    _mm512_storeu_ps(m, mx);
    for (int js = 0; js < AB / 32; js++) { /* P^T [32 j][16 h] -> A rows [h][pairs of j] */
        __m512i t[AG];
        for (int i = 0; i < AG; i++) {
            __m512i lo = _mm512_srli_epi32(_mm512_castps_si512(_mm512_load_ps(amx.st + (js * 32 + 2 * i) * AG)), 16);
            __m512i hi = _mm512_castps_si512(_mm512_load_ps(amx.st + (js * 32 + 2 * i + 1) * AG));
            t[i] = _mm512_or_si512(lo, _mm512_and_si512(hi, _mm512_set1_epi32((int)0xFFFF0000u)));
        }
        v_transpose((lt_vf *)(void *)t);
        for (int i = 0; i < AG; i++) _mm512_storeu_si512(amx.pa[js] + i * 16, t[i]);
    }
}

/* O [16][d] (row stride d) += P . V over the block's j steps */
AMX_FN static void amx_mix(float *O, int64_t d, int nb) {
    int steps = (nb + 31) / 32;
    for (int64_t c = 0; c < d; c += 64) {
        int nt = (int)LT_MIN(4, (d - c) / 16);
        if (nt > 0) _tile_loadd(0, O + c, d * 4);
        if (nt > 1) _tile_loadd(1, O + c + 16, d * 4);
        if (nt > 2) _tile_loadd(2, O + c + 32, d * 4);
        if (nt > 3) _tile_loadd(3, O + c + 48, d * 4);
        for (int js = 0; js < steps; js++) {
            _tile_loadd(4, amx.pa[js], 64);
            const uint32_t *vp = amx.vp + js * 16 * d + c;
            if (nt > 0) {
                _tile_loadd(6, vp, d * 4);
                _tile_dpbf16ps(0, 4, 6);
            }
            if (nt > 1) {
                _tile_loadd(7, vp + 16, d * 4);
                _tile_dpbf16ps(1, 4, 7);
            }
            if (nt > 2) {
                _tile_loadd(6, vp + 32, d * 4);
                _tile_dpbf16ps(2, 4, 6);
            }
            if (nt > 3) {
                _tile_loadd(7, vp + 48, d * 4);
                _tile_dpbf16ps(3, 4, 7);
            }
        }
        if (nt > 0) _tile_stored(0, O + c, d * 4);
        if (nt > 1) _tile_stored(1, O + c + 16, d * 4);
        if (nt > 2) _tile_stored(2, O + c + 32, d * 4);
        if (nt > 3) _tile_stored(3, O + c + 48, d * 4);
    }
}

AMX_FN void lt_attn_rows_amx(const float *q, const lt_kv_fmt *f, int64_t n_first, const uint8_t *const *rows,
                             int64_t n_rows, const float *sink, float scale, int ref, int64_t h0, int64_t h1,
                             float *o) {
    const int64_t d = f->d, nh = h1 - h0, groups = (nh + AG - 1) / AG;
    if (!ref || d % 64 || f[0].kind == LT_KV_F32 || f[1].kind == LT_KV_F32 || n_rows == 0) {
        attn_rows_simd(q, f, n_first, rows, n_rows, sink, scale, ref, h0, h1, o); /* fp32 operands */
        return;
    }
    amx_tilecfg cfg = {.palette = 1};
    for (int t = 0; t < 8; t++) cfg.rows[t] = 16, cfg.colsb[t] = 64;
    pthread_once(&bf16_tables_once, bf16_tables_fill);
    _tile_loadconfig(&cfg);
    float m[LT_ATTN_MAX_HEADS + AG], sum[LT_ATTN_MAX_HEADS + AG], r[AG];
    for (int64_t h = 0; h < groups * AG; h++) m[h] = -INFINITY, sum[h] = 0.0f;
    for (int64_t g = 0; g < groups; g++) amx_query(q + h0 * d, d, g * AG, nh, amx.qt[g]);
    memset(o + h0 * d, 0, sizeof(float) * (size_t)(nh * d));
    memset(amx.otail, 0, sizeof(float) * (size_t)(AG * d));
    for (int64_t b = 0; b < n_rows; b += AB) {
        int nb = (int)LT_MIN(AB, n_rows - b);
        amx_block_rows(f, n_first, rows, b, nb);
        for (int64_t g = 0; g < groups; g++) {
            float *O = (g + 1) * AG <= nh ? o + (h0 + g * AG) * d : amx.otail;
            amx_scores_softmax(rows, b, nb, d, amx.qt[g], scale, m + g * AG, sum + g * AG, r);
            for (int i = 0; i < AG; i++)
                if (r[i] != 1.0f)
                    for (int64_t c = 0; c < d; c += 16)
                        _mm512_storeu_ps(O + i * d + c, _mm512_mul_ps(_mm512_loadu_ps(O + i * d + c), _mm512_set1_ps(r[i])));
            amx_mix(O, d, nb);
        }
    }
    _tile_release();
    for (int64_t h = 0; h < nh; h++) {
        float *oh = h < nh / AG * AG ? o + (h0 + h) * d : amx.otail + (h % AG) * d;
        float div = sum[h] + (sink ? expf(sink[h0 + h] - m[h]) : 0.0f);
        for (int64_t c = 0; c < d; c++) o[(h0 + h) * d + c] = oh[c] / div;
    }
}

/* ---- REFERENCE prefill products on AMX-BF16 tiles ------------------------ */

/* matmul_actq's operands are bf16 values too: the FP8 round trip of the
 * activations (e4m3 x 2^e) and the decoded FP8/FP4 weights (code x 2^e).
 * Panels as in matmul_panels: per LT_KC columns and AMX_NC tokens the
 * quantised activations become bf16 A tiles ([token][column], as they lie);
 * each 32-row weight panel is decoded (pack_panel) and its column pairs
 * interleaved into two B tiles ([column pair][row]); C tiles [16 tokens][16
 * rows] accumulate in Y across column chunks. */
enum { AMX_NC = 256 }; /* tokens per decoded weight panel (linear.c hands out up to 256) */

typedef struct {
    float xq[LT_KC];
    uint16_t xb[(AMX_NC + 16) * LT_KC]; /* bf16 activations, token rows padded to 16 */
    uint32_t bt[2][LT_KC / 2 * 16];     /* B tiles of the panel's two 16-row groups */
    float Bp[LT_KC * LT_MR] __attribute__((aligned(64)));
    float ct[16 * 16];
} amx_gemm_buf;

static _Thread_local amx_gemm_buf gemm;

/* C tile g <- Y rows (16 tokens from t, 16 outputs from r; nt x nr valid)
 * or zeros */
AMX_FN static void amx_c_load(int g, const float *Y, int64_t ldy, int nt, int nr, int accumulate) {
    if (!accumulate) {
        if (g == 0) _tile_zero(0);
        else _tile_zero(1);
        return;
    }
    const float *src = Y;
    int64_t stride = ldy * 4;
    if (nt < 16 || nr < 16) {
        memset(gemm.ct, 0, sizeof gemm.ct);
        for (int i = 0; i < nt; i++) memcpy(gemm.ct + i * 16, Y + i * ldy, sizeof(float) * (size_t)nr);
        src = gemm.ct, stride = 64;
    }
    if (g == 0) _tile_loadd(0, src, stride);
    else _tile_loadd(1, src, stride);
}

AMX_FN static void amx_c_store(int g, float *Y, int64_t ldy, int nt, int nr) {
    if (nt == 16 && nr == 16) {
        if (g == 0) _tile_stored(0, Y, ldy * 4);
        else _tile_stored(1, Y, ldy * 4);
        return;
    }
    if (g == 0) _tile_stored(0, gemm.ct, 64);
    else _tile_stored(1, gemm.ct, 64);
    for (int i = 0; i < nt; i++) memcpy(Y + i * ldy, gemm.ct + i * 16, sizeof(float) * (size_t)nr);
}

/* the 32 codes of 16 FP4 bytes as bf16 times the block scale sc (in
 * [2, 252]): d | d << 12 puts a byte's two codes in the two 16-bit halves
 * of a dword, one VPERMW looks both up */
AMX_FN static inline __m512i fp4_row_bf16(const uint8_t *src, uint8_t sc) {
    __m512i d = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)src));
    return _mm512_permutexvar_epi16(_mm512_or_si512(d, _mm512_slli_epi32(d, 12)), _mm512_load_si512(fp4_bf16[sc]));
}

/* FP4 codes straight into B tiles: byte (row, pair p) holds codes 2p and
 * 2p + 1, so fp4_row_bf16's dword p is the pair; 16 rows x 16 pairs are
 * then transposed to [pair][row]. The tiles equal the
 * decoded panel's, bit for bit. Returns 0 if a scale is out of that table's
 * range. */
AMX_FN static int amx_fp4_tiles(const lt_weight *W, int64_t r, int mr, int64_t k0, int64_t kc) {
    const int64_t nb = W->cols / 32;
    for (int g = 0; g * 16 < mr; g++)
        for (int64_t j = 0; j < kc / 32; j++) {
            __m512i z[16];
            for (int i = 0; i < 16; i++) {
                int64_t row = r + 16 * g + i;
                if (16 * g + i >= mr) {
                    z[i] = _mm512_setzero_si512();
                    continue;
                }
                const uint8_t *src = (const uint8_t *)W->data + row * (W->cols / 2) + (k0 + 32 * j) / 2;
                if (j % 4 == 0) __builtin_prefetch(src + kc / 2); /* the next column chunk: L2 until this row's turn */
                uint8_t sc = W->scale[row * nb + k0 / 32 + j];
                if (sc < FP4_S_LO || sc > FP4_S_HI) return 0; /* the caller's panel rewrites every tile */
                z[i] = fp4_row_bf16(src, sc);
            }
            v_transpose((lt_vf *)(void *)z);
            for (int q = 0; q < 16; q++) _mm512_storeu_si512(gemm.bt[g] + (16 * j + q) * 16, z[q]);
        }
    return 1;
}

/* FP8 codes straight into B tiles (block_c a multiple of 32): a row's 32
 * codes as bf16 (fp8_row_bf16) are its 16 column pairs, 16 rows x 16 pairs
 * are then transposed to [pair][row]; bit for bit the decoded panel's
 * tiles. Returns 0 if a block scale lies outside [FP8_S_LO, FP8_S_HI]. */
AMX_FN static int amx_fp8_tiles(const lt_weight *W, int64_t r, int mr, int64_t k0, int64_t kc) {
    const int64_t ncb = (W->cols + W->block_c - 1) / W->block_c;
    for (int g = 0; g * 16 < mr; g++) {
        const int nv = LT_MIN(16, mr - 16 * g);
        const uint8_t *srow[16];
        for (int i = 0; i < nv; i++) srow[i] = W->scale + (r + 16 * g + i) / W->block_r * ncb;
        for (int64_t j = 0; j < kc / 32; j++) {
            const uint8_t *src = (const uint8_t *)W->data + (r + 16 * g) * W->cols + k0 + 32 * j;
            const int64_t cb = (k0 + 32 * j) / W->block_c;
            __m512i z[16];
            fp8_tab tb = {.s = -1};
            for (int i = 0; i < nv; i++, src += W->cols) {
                if (j % 2 == 0) __builtin_prefetch(src + kc); /* the next column chunk: L2 until this row's turn */
                if (!fp8_tab_use(&tb, srow[i][cb])) return 0; /* the caller's panel rewrites every tile */
                z[i] = fp8_row_bf16(src, &tb);
            }
            for (int i = nv; i < 16; i++) z[i] = _mm512_setzero_si512();
            v_transpose((lt_vf *)(void *)z);
            for (int q = 0; q < 16; q++) _mm512_storeu_si512(gemm.bt[g] + (16 * j + q) * 16, z[q]);
        }
    }
    return 1;
}

/* the B tiles of the weight panel rows [r, r + mr) x columns [k0, k0 + kc):
 * FP4 directly, else the decoded fp32 panel's column pairs interleaved */
AMX_FN static void amx_panel(lt_wtype t, const lt_weight *W, int64_t r, int mr, int64_t k0, int64_t kc) {
    if (t == LT_W_FP4 && amx_fp4_tiles(W, r, mr, k0, kc)) return;
    if (t == LT_W_FP8 && W->block_c % 32 == 0 && amx_fp8_tiles(W, r, mr, k0, kc)) return;
    pack_panel(t, W, r, mr, k0, kc, gemm.Bp);
    for (int g = 0; g * 16 < mr; g++)
        for (int64_t p = 0; p < kc / 2; p++) {
            __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_load_ps(gemm.Bp + 2 * p * LT_MR + 16 * g)));
            __m512i hi = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_load_ps(gemm.Bp + (2 * p + 1) * LT_MR + 16 * g)));
            _mm512_storeu_si512(gemm.bt[g] + p * 16, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
        }
}

AMX_FN static void amx_matmul_actq(lt_wtype t, const lt_weight *W, const float *X, int64_t n, float *Y, int64_t ldy,
                                   int64_t r0, int64_t r1, int act_block) {
    const int64_t cols = W->cols, step = act_block ? LT_KC - LT_KC % act_block : LT_KC;
    amx_tilecfg cfg = {.palette = 1};
    for (int i = 0; i < 8; i++) cfg.rows[i] = 16, cfg.colsb[i] = 64;
    pthread_once(&bf16_tables_once, bf16_tables_fill);
    _tile_loadconfig(&cfg);
    for (int64_t k0 = 0; k0 < cols; k0 += step) {
        int64_t kc = LT_MIN(step, cols - k0);
        for (int64_t t0 = 0; t0 < n; t0 += AMX_NC) {
            int64_t nc = LT_MIN(AMX_NC, n - t0);
            for (int64_t i = 0; i < (nc + 15) / 16 * 16; i++) {
                uint16_t *xb = gemm.xb + i * LT_KC;
                if (i >= nc) {
                    memset(xb, 0, sizeof(uint16_t) * (size_t)kc);
                    continue;
                }
                const float *x = X + (t0 + i) * cols + k0;
                if (act_block) quant_fp8(x, gemm.xq, kc, act_block), x = gemm.xq;
                for (int64_t k = 0; k < kc; k += 32) _mm512_storeu_si512(xb + k, bf16_pairs(x + k));
            }
            for (int64_t r = r0; r < r1; r += LT_MR) {
                int mr = (int)LT_MIN(LT_MR, r1 - r), groups = mr > 16 ? 2 : 1;
                amx_panel(t, W, r, mr, k0, kc);
                for (int64_t i = 0; i < nc; i += 16) {
                    int nt = (int)LT_MIN(16, nc - i);
                    float *y = Y + (t0 + i) * ldy + r;
                    for (int g = 0; g < groups; g++) amx_c_load(g, y + 16 * g, ldy, nt, LT_MIN(16, mr - 16 * g), k0 > 0);
                    for (int64_t ks = 0; ks < kc / 32; ks++) {
                        _tile_loadd(4, gemm.xb + i * LT_KC + ks * 32, LT_KC * 2);
                        _tile_loadd(6, gemm.bt[0] + ks * 16 * 16, 64);
                        _tile_dpbf16ps(0, 4, 6);
                        if (groups > 1) {
                            _tile_loadd(7, gemm.bt[1] + ks * 16 * 16, 64);
                            _tile_dpbf16ps(1, 4, 7);
                        }
                    }
                    for (int g = 0; g < groups; g++) amx_c_store(g, y + 16 * g, ldy, nt, LT_MIN(16, mr - 16 * g));
                }
            }
        }
    }
    _tile_release();
}

/* ---- few-token FP4 / FP8 products on AMX-BF16 tiles (weights as A) ------- */

/* For a few tokens the panel path above spends its time turning weights
 * into B tiles (16 x 16 transposes per 512 weights, for a handful of token
 * rows). Here the weights are the A tiles instead: an A row is 32 columns
 * of one weight row, which is also one FP4 scale block, so a row is a
 * shift and one VPERMW of its bytes through that scale's table
 * (fp4_block_bf16, columns in a fixed order the B tiles share) and no
 * transpose; an FP8 row is a lookup in its block scale's table of the 128
 * e4m3 magnitudes (fp8_bf16). The tokens' quantised rows are the B tiles
 * ([column pair][token]), packed once per pass; each C tile holds [16
 * weight rows][16 tokens] and accumulates over all columns. From DRAM it beats the FMA
 * few-token product from 2 tokens on, and the panels up to 128 (at 256 they
 * are as fast: they decode a weight once per 256 tokens, this path once per
 * FEW_N). */
enum {
    FEW_MIN = 2, FEW_MAX = 128,        /* the token counts it takes (FP4) */
    FEW_MIN_FP8 = 3, FEW_MAX_FP8 = 64, /* FP8: building an A row costs twice FP4's per weight */
    FEW_N = 32,                        /* tokens per pass */
    FEW_KMAX = 8192,                   /* the most columns (the B tiles' buffer) */
};

typedef struct {
    uint32_t xt[FEW_N / 16][FEW_KMAX / 2][16]; /* B tiles: bf16 pairs [token group][pair][token] */
    uint16_t a[2][4][16][32];                  /* A tiles of two phases: [phase][step][row][column] */
    float xq[16][LT_KC];
    float c[2][16][16];
} amx_few_buf;

static _Thread_local amx_few_buf few;

/* FP4 A rows hold a block's 32 columns in this order (word w: column
 * 4 (w % 8) + w / 8; fp4_block_bf16), and their B tiles follow it */
static const uint16_t fp4_order[32] __attribute__((aligned(64))) = {
    0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29, 2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31};

/* the n tokens' quantised rows as bf16 pairs in B-tile order (zero past n),
 * each block's 32 columns in fp4_order if t is FP4 */
AMX_FN static void few_pack_x(lt_wtype t, const float *X, int64_t n, int64_t cols, int act_block) {
    const int64_t step = LT_KC - LT_KC % act_block;
    const __m512i lo = _mm512_cvtepu16_epi32(_mm256_load_si256((const __m256i *)(const void *)fp4_order));
    const __m512i hi = _mm512_cvtepu16_epi32(_mm256_load_si256((const __m256i *)(const void *)(fp4_order + 16)));
    for (int64_t g = 0; g * 16 < n; g++) {
        const int nt = (int)LT_MIN(16, n - 16 * g);
        for (int64_t k0 = 0; k0 < cols; k0 += step) {
            const int64_t kc = LT_MIN(step, cols - k0);
            for (int i = 0; i < nt; i++) quant_fp8(X + (16 * g + i) * cols + k0, few.xq[i], kc, act_block);
            for (int64_t k = 0; k < kc; k += 32) {
                __m512i z[16];
                for (int i = 0; i < nt; i++) {
                    const __m512 v0 = _mm512_loadu_ps(few.xq[i] + k), v1 = _mm512_loadu_ps(few.xq[i] + k + 16);
                    z[i] = t == LT_W_FP4 ? (__m512i)_mm512_cvtne2ps_pbh(_mm512_permutex2var_ps(v0, hi, v1),
                                                                        _mm512_permutex2var_ps(v0, lo, v1))
                                         : bf16_pairs(few.xq[i] + k);
                }
                for (int i = nt; i < 16; i++) z[i] = _mm512_setzero_si512();
                v_transpose((lt_vf *)(void *)z);
                for (int q = 0; q < 16; q++) _mm512_store_si512(few.xt[g][(k0 + k) / 2 + q], z[q]);
            }
        }
    }
}

/* One FP4 block (16 bytes, 32 codes) as an A row through the block scale's
 * table: every 128-bit lane L holds the 16 bytes, its words shifted right by
 * 4L, so word 8L + m is code 4m + L in its low 5 bits (the table repeats
 * its 16 entries): a broadcast load, a shift and a VPERMW, no byte
 * unpacking. */
AMX_FN static inline __m512i fp4_block_bf16(const uint8_t *src, const uint16_t *table, __m512i shifts) {
    const __m512i b = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)src));
    return _mm512_permutexvar_epi16(_mm512_srlv_epi16(b, shifts), _mm512_load_si512(table));
}

/* whether the n scale bytes at s all lie in [FP4_S_LO, FP4_S_HI] */
AMX_FN static int fp4_scales_ok(const uint8_t *s, int64_t n) {
    __mmask64 out = 0;
    for (int64_t i = 0; i < n; i += 64) {
        const __mmask64 m = n - i >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << (n - i)) - 1;
        const __m512i v = _mm512_sub_epi8(_mm512_maskz_loadu_epi8(m, s + i), _mm512_set1_epi8(FP4_S_LO));
        out |= _mm512_mask_cmpgt_epu8_mask(m, v, _mm512_set1_epi8((char)(FP4_S_HI - FP4_S_LO)));
    }
    return !out;
}

/* the A tiles of weight rows [r, r + 16) (rows past r1 zero) for the nblk
 * steps from column 32 ks, every scale in fp4_bf16's range: a[j][i] is row
 * i at step ks + j. A row's 64-byte line is used up at once: rows a power
 * of two apart share a few L1 sets. */
AMX_FN static void few_fp4_tiles(const lt_weight *W, int64_t r, int64_t r1, int64_t ks, int nblk,
                                 uint16_t (*a)[16][32]) {
    const int64_t rb = W->cols / 2, nb = W->cols / 32;
    const int nv = (int)LT_MIN(16, r1 - r);
    const uint8_t *src = (const uint8_t *)W->data + r * rb + 16 * ks, *sc = W->scale + r * nb + ks;
    const __m512i shifts = _mm512_set_epi64(0x000C000C000C000C, 0x000C000C000C000C, 0x0008000800080008,
                                            0x0008000800080008, 0x0004000400040004, 0x0004000400040004, 0, 0);
    for (int i = 0; i < nv; i++, src += rb, sc += nb) {
        if (r + 32 + i < W->rows) __builtin_prefetch(src + 32 * rb, 0, 2); /* the next pass's line, to L2 */
        for (int j = 0; j < nblk; j++) _mm512_store_si512(a[j][i], fp4_block_bf16(src + 16 * j, fp4_bf16[sc[j]], shifts));
    }
    for (int i = nv; i < 16; i++)
        for (int j = 0; j < nblk; j++) _mm512_store_si512(a[j][i], _mm512_setzero_si512());
}

/* the FP8 A tiles of weight rows [r, r + 16) (rows past r1 zero) for the
 * nblk steps from column 32 ks: per row block a magnitude lookup in the
 * block scale's table (two VPERMT2W over 64 entries each, picked by bit 6)
 * and the sign moved to bit 15. A row's 128 bytes are used up at once.
 * Returns 0 if a block scale lies outside [FP8_S_LO, FP8_S_HI]. */
AMX_FN static int few_fp8_tiles(const lt_weight *W, int64_t r, int64_t r1, int64_t ks, int nblk,
                                uint16_t (*a)[16][32]) {
    const int64_t ncb = (W->cols + W->block_c - 1) / W->block_c;
    const uint8_t *src = (const uint8_t *)W->data + r * W->cols + 32 * ks;
    for (int i = 0; i < 16; i++, src += W->cols) {
        if (r + i >= r1) {
            for (int j = 0; j < nblk; j++) _mm512_store_si512(a[j][i], _mm512_setzero_si512());
            continue;
        }
        if (r + 32 + i < W->rows)
            for (int l = 0; l < nblk; l += 2) __builtin_prefetch(src + 32 * W->cols + 32 * l, 0, 2); /* to L2 */
        const uint8_t *srow = W->scale + (r + i) / W->block_r * ncb;
        fp8_tab tb = {.s = -1};
        for (int j = 0; j < nblk; j++) {
            if (!fp8_tab_use(&tb, srow[32 * (ks + j) / W->block_c])) return 0;
            _mm512_store_si512(a[j][i], fp8_row_bf16(src + 32 * j, &tb));
        }
    }
    return 1;
}

/* the tile products of one phase, nblk steps from ks: row group h's A
 * tiles a (in tile 4 + h) times token group g's B tile (6 + g) into C tile
 * h ng + g; split (one token group only), odd steps go to C tile 2 + h (a
 * second sum, added at the end), so that a C tile's chain of dependent
 * products is half as long */
AMX_FN static void few_dp(int h, int ng, int split, int64_t ks, int nblk, uint16_t (*a)[16][32]) {
    for (int j = 0; j < nblk; j++) {
        const int odd = split && (ks + j) % 2;
        _tile_loadd(6, few.xt[0][16 * (ks + j)], 64);
        if (ng > 1) _tile_loadd(7, few.xt[1][16 * (ks + j)], 64);
        if (h == 0) {
            _tile_loadd(4, a[j], 64);
            if (ng > 1) {
                _tile_dpbf16ps(0, 4, 6);
                _tile_dpbf16ps(1, 4, 7);
            } else if (odd) _tile_dpbf16ps(2, 4, 6);
            else _tile_dpbf16ps(0, 4, 6);
        } else {
            _tile_loadd(5, a[j], 64);
            if (ng > 1) {
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
            } else if (odd) _tile_dpbf16ps(3, 5, 6);
            else _tile_dpbf16ps(1, 5, 6);
        }
    }
}

/* C tile q ([16 rows][16 tokens]), plus tile q + 2 if split, into Y,
 * transposed; nr rows and nt tokens valid */
AMX_FN static void few_store(int q, int split, float *Y, int64_t ldy, int nr, int nt) {
    switch (q) {
    case 0: _tile_stored(0, few.c[0], 64); break;
    case 1: _tile_stored(1, few.c[0], 64); break;
    case 2: _tile_stored(2, few.c[0], 64); break;
    default: _tile_stored(3, few.c[0], 64); break;
    }
    if (split) {
        if (q == 0) _tile_stored(2, few.c[1], 64);
        else _tile_stored(3, few.c[1], 64);
    }
    __m512 z[16];
    for (int i = 0; i < 16; i++)
        z[i] = split ? _mm512_add_ps(_mm512_load_ps(few.c[0][i]), _mm512_load_ps(few.c[1][i])) : _mm512_load_ps(few.c[0][i]);
    v_transpose(z);
    for (int t = 0; t < nt; t++) v_store_part(Y + t * ldy, z[t], nr);
}

/* rows [r0, r1) of FP4 or FP8 weights (t) for n <= FEW_N tokens. Tiles:
 * C 0..3 ([row group][token group]), A 4..5, B 6..7, all 16 x 64 bytes.
 * Rows go in passes of two 16-row groups, columns in phases of 4 steps (one
 * 64-byte line per row of FP4, two of FP8): each phase's A tiles are built
 * while the previous phase's multiply. A pass with a scale out of range
 * runs on the vector path; FP4 scales are checked once per pass. FP8 is bit
 * for bit the panels' product (one sum per C tile, columns in order). */
AMX_FN static void few_pass(lt_wtype t, const lt_weight *W, const float *X, int64_t n, float *Y, int64_t ldy,
                            int64_t r0, int64_t r1, int act_block) {
    const int64_t steps = W->cols / 32; /* for FP4 also the scales per row */
    const int ng = (int)((n + 15) / 16);
    const int split = ng == 1 && t == LT_W_FP4; /* FP8 keeps one sum: bit for bit the panels' (lt_linear's token tiles) */
    few_pack_x(t, X, n, W->cols, act_block);
    for (int64_t r = r0; r < r1; r += 32) {
        const int nh = r + 16 < r1 ? 2 : 1;
        const int64_t re = LT_MIN(r + 32, r1);
        int ok = t != LT_W_FP4 || fp4_scales_ok(W->scale + r * steps, (re - r) * steps);
        int prev = -1, pn = 0, pb = 0; /* the phase built and not yet multiplied: group, steps, buffer */
        int64_t pk = 0;
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (int64_t k4 = 0; k4 < steps && ok; k4 += 4)
            for (int h = 0; h < nh && ok; h++) {
                const int nblk = (int)LT_MIN(4, steps - k4), buf = (int)((k4 / 4 * nh + h) & 1);
                if (t == LT_W_FP4) few_fp4_tiles(W, r + 16 * h, r1, k4, nblk, few.a[buf]);
                else ok = few_fp8_tiles(W, r + 16 * h, r1, k4, nblk, few.a[buf]);
                if (ok && prev >= 0) few_dp(prev, ng, split, pk, pn, few.a[pb]);
                prev = h, pk = k4, pn = nblk, pb = buf;
            }
        if (!ok) {
            matmul_any(t, W, X, n, Y, ldy, r, re, act_block);
            continue;
        }
        few_dp(prev, ng, split, pk, pn, few.a[pb]);
        for (int h = 0; h < nh; h++)
            for (int g = 0; g < ng; g++)
                few_store(h * ng + g, split, Y + 16 * g * ldy + r + 16 * h, ldy, (int)LT_MIN(16, re - r - 16 * h),
                          (int)LT_MIN(16, n - 16 * g));
    }
}

/* FP4 / FP8 products of a few tokens: passes of up to FEW_N tokens */
AMX_FN static void amx_few(lt_wtype t, const lt_weight *W, const float *X, int64_t n, float *Y, int64_t ldy,
                           int64_t r0, int64_t r1, int act_block) {
    amx_tilecfg cfg = {.palette = 1};
    for (int i = 0; i < 8; i++) cfg.rows[i] = 16, cfg.colsb[i] = 64;
    pthread_once(&bf16_tables_once, bf16_tables_fill);
    _tile_loadconfig(&cfg);
    for (int64_t i = 0; i < n; i += FEW_N)
        few_pass(t, W, X + i * W->cols, LT_MIN(FEW_N, n - i), Y + i * ldy, ldy, r0, r1, act_block);
    _tile_release();
}

/* ---- FP8 matrix-vector products on bf16 dot products (AVX512-BF16) ----- */

#define BF16_FN __attribute__((target("avx512bf16")))

/* An e4m3 code s.eeee.mmm placed as the bf16 bits s.0000eeee.mmm0000 is
 * its value times 2^-120, exactly, for every normal code (e >= 1): per 64
 * codes, three shifts and two masks give the even and odd columns, no table
 * and no conversion. Every activation of an FP8-quantised row is a bf16
 * value too, so two VDPBF16PS (exact products, fp32 sums) compute what the
 * FMA path computes, in another order: 7 operations per 64 bytes against
 * ~21 (f16 decode, conversions, FMAs). Two things keep the products
 * exact: the activations are scaled by one power of two, 2^c, that puts the
 * largest in [2^100, 2^101) (every product and partial sum then lies far
 * above the flush-to-zero of VDPBF16PS and far below overflow; the row is
 * refused when its smallest nonzero value is below 2^-76 of the largest),
 * and a 64-byte group holding a subnormal code (a bf16 denormal in that
 * placement, which VDPBF16PS would flush) is decoded the FMA path's way
 * instead. Trained weights hold such codes rarely (below 2^-6 of the
 * largest code of their block), so nearly every group takes the two dot
 * products. Word j of a group holds columns 2j (low byte) and 2j + 1, so
 * the activations are stored per group as 32 even columns, then 32 odd. */
enum { BF8_G = 64 };                /* columns of one group */
enum { BF8_MAX = 16384 };           /* widest row on this path */
enum { BF8_TOP = 100, BF8_RANGE = 76 }; /* 2^c amax in [2^100, 2^101); smallest nonzero >= 2^-76 of it */

/* x[0, n) times 2^c as bf16 in the group order above; returns c, or INT_MIN
 * when a value is not a bf16 value or the row's range is too wide */
BF16_FN static int fp8_bf16_x(const float *x, int64_t n, uint16_t *xb) {
    const __m512i lo16 = _mm512_set1_epi32(0xFFFF), mag = _mm512_set1_epi32(0x7FFFFFFF);
    __m512i hi = _mm512_setzero_si512(), lo = _mm512_set1_epi32(0x7F800000);
    __mmask16 inexact = 0;
    for (int64_t k = 0; k < n; k += 16) { /* amax and smallest nonzero magnitude, as integers */
        __m512i v = _mm512_and_si512(_mm512_loadu_si512(x + k), mag);
        inexact |= _mm512_test_epi32_mask(v, lo16);
        hi = _mm512_max_epu32(hi, v);
        lo = _mm512_mask_min_epu32(lo, _mm512_test_epi32_mask(v, v), lo, v);
    }
    const uint32_t amax = (uint32_t)_mm512_reduce_max_epu32(hi), amin = (uint32_t)_mm512_reduce_min_epu32(lo);
    if (inexact || amax >= 0x7F800000u) return INT_MIN;
    if (amax == 0) {
        memset(xb, 0, sizeof(uint16_t) * (size_t)n);
        return 0;
    }
    const int eh = (int)(amax >> 23), el = (int)(amin >> 23); /* biased exponents */
    if (el == 0 || eh - el > BF8_RANGE) return INT_MIN;       /* denormals or too wide */
    const int c = BF8_TOP - (eh - 127);
    if (c < 0 || c > 2 * BF8_TOP) return INT_MIN; /* amax outside [2^-100, 2^100]: 2^(112 - c) stays finite */
    uint16_t idx[32];
    for (int j = 0; j < 16; j++) idx[j] = (uint16_t)(2 * j), idx[16 + j] = (uint16_t)(2 * j + 1);
    const __m512i ie = _mm512_loadu_si512(idx);
    for (int64_t k = 0; k < n; k += BF8_G) {
        __m512i w[2];
        for (int h = 0; h < 2; h++) { /* columns 32h.. as bf16, natural order */
            __m512 a = _mm512_loadu_ps(x + k + 32 * h), b = _mm512_loadu_ps(x + k + 32 * h + 16);
            w[h] = (__m512i)_mm512_cvtne2ps_pbh(_mm512_scalef_ps(b, _mm512_set1_ps((float)c)),
                                                _mm512_scalef_ps(a, _mm512_set1_ps((float)c)));
        }
        __m512i p0 = _mm512_permutexvar_epi16(ie, w[0]), p1 = _mm512_permutexvar_epi16(ie, w[1]);
        _mm512_storeu_si512(xb + k, _mm512_shuffle_i64x2(p0, p1, 0x44));      /* even columns */
        _mm512_storeu_si512(xb + k + 32, _mm512_shuffle_i64x2(p0, p1, 0xEE)); /* odd columns */
    }
    return c;
}

/* a group with a subnormal code: the f16 decode (value * LT_FP8_DEC) in
 * fp32, products with the same scaled activations, brought to the fast
 * path's 2^-120 */
BF16_FN static __m512 fp8_group_slow(const uint8_t *p, const uint16_t *xg) {
    lt_vf w[4];
    v_dec_fp8_x4(p, w); /* w[0], w[1]: even columns 0..30, 32..62; w[2], w[3]: odd */
    const __m256i *xv = (const __m256i *)(const void *)xg;
    __m512 s = _mm512_setzero_ps();
    for (int i = 0; i < 4; i++) { /* xg quarters: the same columns as w[i] */
        __m512 xf = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(xv + i)), 16));
        s = _mm512_fmadd_ps(w[i], xf, s);
    }
    return _mm512_mul_ps(s, _mm512_set1_ps(0x1p-112f));
}

/* y[i] = row r + i (i < nr) . x for the scaled bf16 activations xb; the
 * result still carries 2^(c - 112) (scale_of's 2^8 included) */
BF16_FN static inline void fp8_rows_bf16(const lt_weight *W, int64_t r, int nr, const uint16_t *xb, float *y) {
    const int64_t stride = W->cols, bc = W->block_c, ng = W->cols / BF8_G;
    const uint8_t *base = w_row(LT_W_FP8, W, r), *srow[LT_RB];
    const __m512i mask = _mm512_set1_epi16((short)0x87F0), e_bits = _mm512_set1_epi8(0x78), m_bits = _mm512_set1_epi8(7);
    __m512 acc[LT_RB];
    for (int i = 0; i < nr; i++) srow[i] = scale_row(LT_W_FP8, W, r + i), acc[i] = _mm512_setzero_ps();
    for (int64_t g = 0; g < ng;) {
        const int64_t ge = LT_MIN(ng, g + bc / BF8_G), b = g * BF8_G / bc;
        __m512 part[LT_RB];
        for (int i = 0; i < nr; i++) part[i] = _mm512_setzero_ps();
        for (; g < ge; g++) {
            const uint16_t *xg = xb + g * BF8_G;
            const __m512bh xe = (__m512bh)_mm512_loadu_si512(xg), xo = (__m512bh)_mm512_loadu_si512(xg + 32);
            for (int i = 0; i < nr; i++) {
                const uint8_t *p = base + i * stride + g * BF8_G;
                __builtin_prefetch(p + nr * stride); /* the next row group's line */
                __m512i w = _mm512_loadu_si512(p);
                if (__builtin_expect(_mm512_mask_testn_epi8_mask(_mm512_test_epi8_mask(w, m_bits), w, e_bits) != 0, 0)) {
                    part[i] = _mm512_add_ps(part[i], fp8_group_slow(p, xg));
                    continue;
                }
                __m512i ev = _mm512_and_si512(_mm512_srai_epi16(_mm512_slli_epi16(w, 8), 4), mask);
                __m512i od = _mm512_and_si512(_mm512_srai_epi16(w, 4), mask);
                part[i] = _mm512_dpbf16_ps(_mm512_dpbf16_ps(part[i], (__m512bh)ev, xe), (__m512bh)od, xo);
            }
        }
        for (int i = 0; i < nr; i++) acc[i] = _mm512_fmadd_ps(part[i], _mm512_set1_ps(scale_of(LT_W_FP8, srow[i], b)), acc[i]);
    }
    for (int i = 0; i < nr; i++) y[i] = v_hsum(acc[i]);
}

/* matmul for FP8 weights: one row of bf16 values on the dot products above
 * (blocks of whole groups), anything else on the vector path */
BF16_FN static void matmul_fp8_bf16(const lt_weight *W, const float *X, int64_t n, float *Y, int64_t ldy, int64_t r0,
                               int64_t r1) {
    uint16_t xb[BF8_MAX] __attribute__((aligned(64)));
    int c = INT_MIN;
    if (n == 1 && W->cols % BF8_G == 0 && W->block_c > 0 && W->block_c % BF8_G == 0 && W->cols <= BF8_MAX)
        c = fp8_bf16_x(X, W->cols, xb);
    if (c == INT_MIN) {
        matmul_fp8_simd(W, X, n, Y, ldy, r0, r1);
        return;
    }
    const float unscale = ldexpf(1.0f, 112 - c);
    int64_t r = r0;
    for (; r + LT_RB <= r1; r += LT_RB) fp8_rows_bf16(W, r, LT_RB, xb, Y + r);
    for (; r < r1; r++) fp8_rows_bf16(W, r, 1, xb, Y + r);
    for (r = r0; r < r1; r++) Y[r] *= unscale;
}

/* one FP8 row with fused quantisation: the row quantised whole (for blocks
 * dividing LT_QK the same as per chunk, kernels.h), then the plain product */
BF16_FN static void fp8_actq_row(const lt_weight *W, const float *X, float *Y, int64_t r0, int64_t r1, int act_block) {
    float xq[BF8_MAX];
    if (W->cols > BF8_MAX) {
        matmul_any(LT_W_FP8, W, X, 1, Y, 1, r0, r1, act_block);
        return;
    }
    memcpy(xq, X, sizeof(float) * (size_t)W->cols);
    fake_quant_fp8_simd(xq, W->cols, act_block);
    matmul_fp8_bf16(W, xq, 1, Y, 1, r0, r1);
}

/* whether the n floats at x are all bf16 values (the low 16 bits zero, as
 * fp8_bf16_x tests) */
AMX_FN static int all_bf16(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += 16)
        if (_mm512_test_epi32_mask(_mm512_castps_si512(v_load_part(x + i, (int)LT_MIN(16, n - i))),
                                   _mm512_set1_epi32(0xFFFF)))
            return 0;
    return 1;
}

/* matmul for FP8 weights: more than LT_MT rows of bf16 values (wo_a's
 * input in REFERENCE numerics) on the panels' tiles, where the tile
 * products are exact; the avx512-bf16 entry otherwise */
AMX_FN void lt_matmul_fp8_amx(const lt_weight *W, const float *X, int64_t n, float *Y, int64_t ldy, int64_t r0,
                              int64_t r1) {
    if (n > LT_MT && W->cols % 32 == 0 && all_bf16(X, n * W->cols)) amx_matmul_actq(LT_W_FP8, W, X, n, Y, ldy, r0, r1, 0);
    else matmul_fp8_bf16(W, X, n, Y, ldy, r0, r1);
}

/* matmul_actq for FP8 and FP4 weights (columns in whole 32s): one FP8 row
 * on the bf16 dot products, FP4 for FEW_MIN..FEW_MAX tokens and FP8 for
 * FEW_MIN_FP8..FEW_MAX_FP8 with the weights as A tiles, more than LT_MT
 * tokens on the panels, the vector paths otherwise */
#define LT_DEFINE_AMX_MATMUL(fmt, type)                                                                          \
    AMX_FN void lt_matmul_actq_##fmt##_amx(const lt_weight *W, const float *X, int64_t n, float *Y, int64_t ldy,  \
                                           int64_t r0, int64_t r1, int act_block) {                              \
        const int tiles = W->cols % 32 == 0 && (LT_KC - LT_KC % act_block) % 32 == 0;                            \
        const int few = type == LT_W_FP4 ? n >= FEW_MIN && n <= FEW_MAX                                          \
                                         : W->block_c % 32 == 0 && n >= FEW_MIN_FP8 && n <= FEW_MAX_FP8;        \
        if (type == LT_W_FP8 && n == 1 && LT_QK % act_block == 0)                                                \
            fp8_actq_row(W, X, Y, r0, r1, act_block);                                                            \
        else if (tiles && few && W->cols <= FEW_KMAX)                                                            \
            amx_few(type, W, X, n, Y, ldy, r0, r1, act_block);                                                    \
        else if (tiles && n > LT_MT) amx_matmul_actq(type, W, X, n, Y, ldy, r0, r1, act_block);                  \
        else matmul_any(type, W, X, n, Y, ldy, r0, r1, act_block);                                                \
    }
LT_DEFINE_AMX_MATMUL(fp8, LT_W_FP8)
LT_DEFINE_AMX_MATMUL(fp4, LT_W_FP4)
#undef LT_DEFINE_AMX_MATMUL

/* matmul_actq for FP8 weights without tiles: one row as above, else the vector path */
BF16_FN static void matmul_actq_fp8_bf16(const lt_weight *W, const float *X, int64_t n, float *Y, int64_t ldy,
                                         int64_t r0, int64_t r1, int act_block) {
    if (n == 1 && LT_QK % act_block == 0) fp8_actq_row(W, X, Y, r0, r1, act_block);
    else matmul_any(LT_W_FP8, W, X, n, Y, ldy, r0, r1, act_block);
}

const lt_kernels lt_kernels_avx512 = {
    .name = "avx512",
    LT_SIMD_ENTRIES,
    .index_score = index_score_simd,
};

/* the same with the indexer on int8 dot products */
const lt_kernels lt_kernels_avx512_vnni = {
    .name = "avx512-vnni",
    LT_SIMD_ENTRIES,
    .index_score = index_score_vnni,
};

/* the same with FP8 decode products on bf16 dot products: the vnni table
 * with two entries replaced, once CPUID reports AVX512-BF16 (kernels.c) */
lt_kernels lt_kernels_avx512_bf16 = {.name = "avx512-bf16"};
static pthread_once_t bf16_table_once = PTHREAD_ONCE_INIT;

static void bf16_table_fill(void) {
    lt_kernels_avx512_bf16 = lt_kernels_avx512_vnni;
    lt_kernels_avx512_bf16.name = "avx512-bf16";
    lt_kernels_avx512_bf16.matmul[LT_W_FP8] = matmul_fp8_bf16;
    lt_kernels_avx512_bf16.matmul_actq[LT_W_FP8] = matmul_actq_fp8_bf16;
}

void lt_kernels_bf16_init(void) { pthread_once(&bf16_table_once, bf16_table_fill); }
