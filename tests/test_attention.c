/* Attention pieces on hand-made inputs: the sink in the softmax denominator
 * (spec 3.6), the compressor's gated pooling for HCA and the CSA overlap
 * (spec 4.3 steps 9-10, window 0's empty Ca half), and the indexer's top-k
 * (visible entries only, ties to the lower index, ascending output). */
#include "test.h"

#include "attention.h"
#include "linear.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

LT_TEST(attention, sink_only_enlarges_the_denominator) {
    const float q[2] = {1, 2}, k0[2] = {0.5f, 0.25f}, k1[2] = {-1, 1};
    const lt_kv_fmt f[2] = {lt_kv_fmt_f32(2), lt_kv_fmt_f32(2)};
    const uint8_t *rows[2] = {(const uint8_t *)k0, (const uint8_t *)k1};
    float o[2], sink = 0.3f, scale = 0.7f;
    lt_attention_rows(q, 1, f, 2, rows, 2, &sink, scale, 0, o);
    double s0 = (1 * 0.5 + 2 * 0.25) * scale, s1 = (-1 + 2) * scale;
    double den = exp(s0) + exp(s1) + exp(sink);
    for (int i = 0; i < 2; i++) {
        double want = exp(s0) / den * k0[i] + exp(s1) / den * k1[i];
        CHECKF(fabs(o[i] - want) < 1e-6, "o[%d] = %g want %g", i, o[i], want);
    }
    /* row order does not matter */
    const uint8_t *swapped[2] = {rows[1], rows[0]};
    float o2[2];
    lt_attention_rows(q, 1, f, 2, swapped, 2, &sink, scale, 0, o2);
    CHECK(fabsf(o2[0] - o[0]) < 1e-6f && fabsf(o2[1] - o[1]) < 1e-6f);
}

/* pooled[ch] = sum_s softmax_s(z_s[ch]) a_s[ch] over the given slots */
static float pool_ref(const float *a, const float *z, int n) {
    double mx = -INFINITY, sum = 0, acc = 0;
    for (int s = 0; s < n; s++) mx = z[s] > mx ? z[s] : mx;
    for (int s = 0; s < n; s++) {
        sum += exp(z[s] - mx);
        acc += exp(z[s] - mx) * a[s];
    }
    return (float)(acc / sum);
}

LT_TEST(attention, hca_pools_each_window_of_m_tokens) {
    enum { M = 3, D = 2 };
    float ape[M * D] = {0.1f, -0.2f, 0.3f, 0.0f, -0.1f, 0.4f}, kv[M * D], score[M * D], out[D];
    lt_compressor w = {.ratio = M, .overlap = 0, .d = D, .ape = {LT_DT_F32, ape, M * D, "ape"}};
    lt_pool p = {kv, score};
    lt_pool_reset(&w, &p);
    float A[2 * M][D], Z[2 * M][D];
    for (int t = 0; t < 2 * M; t++)
        for (int ch = 0; ch < D; ch++) {
            A[t][ch] = (float)(t * 2 + ch) - 3.0f;
            Z[t][ch] = 0.5f * (float)((t * 3 + ch) % 4);
        }
    for (int t = 0; t < 2 * M; t++) {
        int done = lt_pool_push(&w, &p, A[t], Z[t], t, out);
        CHECKF(done == (t % M == M - 1), "token %d: emitted %d", t, done);
        if (!done) continue;
        for (int ch = 0; ch < D; ch++) {
            float a[M], z[M];
            for (int s = 0; s < M; s++) {
                a[s] = A[t - M + 1 + s][ch];
                z[s] = Z[t - M + 1 + s][ch] + ape[s * D + ch];
            }
            CHECKF(fabsf(out[ch] - pool_ref(a, z, M)) < 1e-5f, "window %d ch %d: %g want %g", t / M, ch, out[ch],
                   pool_ref(a, z, M));
        }
    }
}

/* CSA: entry w pools the Ca half (first d) of window w-1 and the Cb half of
 * window w; window 0 has only its Cb slots */
LT_TEST(attention, csa_overlaps_previous_window) {
    enum { M = 4, D = 2, W = 2 * D };
    float ape[M * W], kv[2 * M * W], score[2 * M * W], out[D];
    for (int i = 0; i < M * W; i++) ape[i] = 0.05f * (float)(i % 7) - 0.1f;
    lt_compressor w = {.ratio = M, .overlap = 1, .d = D, .ape = {LT_DT_F32, ape, M * W, "ape"}};
    lt_pool p = {kv, score};
    lt_pool_reset(&w, &p);
    float A[3 * M][W], Z[3 * M][W];
    for (int t = 0; t < 3 * M; t++)
        for (int ch = 0; ch < W; ch++) {
            A[t][ch] = 0.3f * (float)((t * 5 + ch * 3) % 11) - 1.5f;
            Z[t][ch] = 0.2f * (float)((t * 7 + ch) % 9);
        }
    for (int t = 0; t < 3 * M; t++) {
        if (!lt_pool_push(&w, &p, A[t], Z[t], t, out)) continue;
        int win = t / M, n = 0;
        for (int ch = 0; ch < D; ch++) {
            float a[2 * M], z[2 * M];
            n = 0;
            for (int s = 0; win > 0 && s < M; s++, n++) { /* Ca of the previous window */
                int tok = (win - 1) * M + s;
                a[n] = A[tok][ch];
                z[n] = Z[tok][ch] + ape[s * W + ch];
            }
            for (int s = 0; s < M; s++, n++) { /* Cb of this window */
                int tok = win * M + s;
                a[n] = A[tok][D + ch];
                z[n] = Z[tok][D + ch] + ape[s * W + D + ch];
            }
            CHECKF(fabsf(out[ch] - pool_ref(a, z, n)) < 1e-5f, "window %d ch %d: %g want %g", win, ch, out[ch],
                   pool_ref(a, z, n));
        }
    }
}

/* many chunks of scores (the top-k skips chunks below the kept minimum):
 * the selection equals a full sort's, ties to the lower index */
static int int32_cmp(const void *a, const void *b) {
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    return (i > j) - (i < j);
}

/* score down, then position up: the order the top-k keeps */
static const float *topk_order_score;
static int topk_order(const void *a, const void *b) {
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    float si = topk_order_score[i], sj = topk_order_score[j];
    return si > sj ? -1 : si < sj ? 1 : (i > j) - (i < j);
}

/* lt_indexer_topk's selection is the first k of a full sort, ascending */
static int topk_matches_sort(const float *score, int32_t n, int32_t k) {
    int32_t *rank = malloc(sizeof(int32_t) * (size_t)n), *sel = malloc(sizeof(int32_t) * (size_t)k);
    int32_t *hi = malloc(sizeof(int32_t) * (size_t)k);
    float *hs = malloc(sizeof(float) * (size_t)k);
    for (int32_t i = 0; i < n; i++) rank[i] = i;
    topk_order_score = score;
    qsort(rank, (size_t)n, sizeof *rank, topk_order);
    qsort(rank, (size_t)k, sizeof *rank, int32_cmp);
    int ok = lt_indexer_topk(score, n, k, hs, hi, sel) == k && !memcmp(sel, rank, sizeof(int32_t) * (size_t)k);
    free(rank), free(sel), free(hi), free(hs);
    return ok;
}

/* rows short enough for the heap alone and long enough for the sampled
 * threshold (many ties; a ramp up and down, whose even samples see the
 * ramp's shape; every score equal, which keeps too many and falls back) */
LT_TEST(attention, indexer_topk_matches_sort) {
    enum { N = 100000 };
    static float score[N];
    uint64_t g = 9;
    for (int i = 0; i < N; i++) score[i] = (float)(lt_splitmix64(&g) % 700) * 0.25f; /* many ties */
    CHECK(topk_matches_sort(score, 5000, 37));
    CHECK(topk_matches_sort(score, N, 512));
    CHECK(topk_matches_sort(score, 8192, 1024));
    for (int i = 0; i < N; i++) score[i] = (float)(lt_splitmix64(&g) % 100000) * 0.5f;
    CHECK(topk_matches_sort(score, N, 2048));
    for (int i = 0; i < N; i++) score[i] = (float)(i < N / 2 ? i : N - i);
    CHECK(topk_matches_sort(score, N, 512));
    for (int i = 0; i < N; i++) score[i] = 1.0f;
    CHECK(topk_matches_sort(score, N, 512));
}

LT_TEST(attention, indexer_topk_visible_ties_ascending) {
    float hs[3];
    int32_t hi[3], sel[8];
    const float score[8] = {0.5f, 2.0f, 0.5f, 3.0f, 2.0f, -1.0f, 0.5f, 9.0f};
    /* fewer visible than k: all of them */
    CHECK(lt_indexer_topk(score, 2, 3, hs, hi, sel) == 2 && sel[0] == 0 && sel[1] == 1);
    /* 7 visible (the 9.0 at index 7 is not): 3.0, then the tie 2.0/2.0 both */
    CHECK(lt_indexer_topk(score, 7, 3, hs, hi, sel) == 3);
    CHECKF(sel[0] == 1 && sel[1] == 3 && sel[2] == 4, "selected %d %d %d", sel[0], sel[1], sel[2]);
    /* k = 2 of the first 3: 2.0, then the tie 0.5/0.5 goes to index 0 */
    CHECK(lt_indexer_topk(score, 3, 2, hs, hi, sel) == 2);
    CHECKF(sel[0] == 0 && sel[1] == 1, "selected %d %d", sel[0], sel[1]);
}
