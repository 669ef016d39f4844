/* The thread pool (threads.h) and the threaded linear layer (linear.h):
 * every item runs exactly once with a valid tid, nested and concurrent calls
 * fall back to serial, resizing works, and lt_linear gives the same bits for
 * any thread count (each output is computed by one tile in a fixed order). */
#include "kernels.h"
#include "linear.h"
#include "test.h"
#include "threads.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    atomic_int *hits;
    atomic_int bad_tid;
    int n_threads;
} count_job;

static void count_item(void *ctx, int64_t i, int tid) {
    count_job *j = ctx;
    atomic_fetch_add(&j->hits[i], 1);
    if (tid < 0 || tid >= j->n_threads) atomic_fetch_add(&j->bad_tid, 1);
}

static void check_counts(int64_t n) {
    count_job j = {calloc((size_t)(n ? n : 1), sizeof(atomic_int)), 0, lt_threads_count()};
    lt_parallel_for(n, count_item, &j);
    int wrong = 0;
    for (int64_t i = 0; i < n; i++) wrong += atomic_load(&j.hits[i]) != 1;
    CHECKF(wrong == 0, "%d of %lld items did not run exactly once", wrong, (long long)n);
    CHECK(atomic_load(&j.bad_tid) == 0);
    free(j.hits);
}

LT_TEST(threads, every_item_once) {
    lt_error err;
    static const int sizes[] = {1, 2, 3, 8};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        CHECK(lt_threads_set(sizes[s], &err) == LT_OK);
        CHECK(lt_threads_count() == sizes[s]);
        check_counts(0);
        check_counts(1);
        check_counts(7);
        check_counts(5000);
    }
    CHECK(lt_threads_set(0, &err) == LT_OK);
    CHECK(lt_threads_count() == lt_threads_physical_cores());
}

LT_TEST(threads, bad_count) {
    lt_error err;
    CHECK(lt_threads_set(-1, &err) == LT_ERR_ARG);
    CHECK(lt_threads_set(LT_MAX_THREADS + 1, &err) == LT_ERR_ARG);
    CHECK(lt_threads_physical_cores() >= 1);
}

/* an inner loop run from inside an item keeps the item's tid */
typedef struct {
    atomic_int total, mismatched;
} nest_job;

typedef struct {
    nest_job *outer;
    int tid;
} inner_ctx;

static void inner_item(void *ctx, int64_t i, int tid) {
    inner_ctx *c = ctx;
    (void)i;
    atomic_fetch_add(&c->outer->total, 1);
    if (tid != c->tid) atomic_fetch_add(&c->outer->mismatched, 1);
}

static void outer_item(void *ctx, int64_t i, int tid) {
    (void)i;
    inner_ctx c = {ctx, tid};
    lt_parallel_for(10, inner_item, &c);
}

LT_TEST(threads, nested_runs_serially) {
    lt_error err;
    CHECK(lt_threads_set(3, &err) == LT_OK);
    nest_job j = {0, 0};
    lt_parallel_for(20, outer_item, &j);
    CHECK(atomic_load(&j.total) == 200);
    CHECK(atomic_load(&j.mismatched) == 0);
    CHECK(lt_threads_set(0, &err) == LT_OK);
}

/* two application threads share the pool: one runs on it, the other serially */
static void *concurrent_caller(void *arg) {
    (void)arg;
    for (int rep = 0; rep < 50; rep++) check_counts(300);
    return NULL;
}

LT_TEST(threads, concurrent_callers) {
    lt_error err;
    CHECK(lt_threads_set(2, &err) == LT_OK);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, concurrent_caller, NULL) == 0);
    concurrent_caller(NULL);
    pthread_join(th, NULL);
    CHECK(lt_threads_set(0, &err) == LT_OK);
}

/* a random FP8 weight [rows, cols] (128 x 128 blocks, no NaN codes, scales
 * from 2^(s0-127)) and n activation rows in [-mag/2, mag/2), owning their
 * buffers */
typedef struct {
    lt_weight W;
    uint8_t *w, *s;
    float *X;
} fp8_case;

static fp8_case make_fp8_case(int64_t rows, int64_t cols, int64_t n, uint32_t seed, int s0, float mag) {
    int64_t ns = (rows + 127) / 128 * (cols / 128);
    fp8_case c = {.w = malloc((size_t)(rows * cols)), .s = malloc((size_t)ns),
                  .X = malloc(sizeof(float) * (size_t)(n * cols))};
    uint32_t v = seed;
    for (int64_t i = 0; i < rows * cols; i++) {
        v = v * 1664525u + 1013904223u;
        c.w[i] = (uint8_t)(v >> 24) & 0x7E; /* no NaN codes */
    }
    for (int64_t i = 0; i < ns; i++) c.s[i] = (uint8_t)(s0 + i % 7);
    for (int64_t i = 0; i < n * cols; i++) {
        v = v * 1664525u + 1013904223u;
        c.X[i] = ((float)(v >> 8) * 0x1p-24f - 0.5f) * mag;
    }
    c.W = (lt_weight){.type = LT_W_FP8, .data = c.w, .scale = c.s, .rows = rows, .cols = cols, .block_r = 128,
                      .block_c = 128, .name = "test"};
    return c;
}

static void free_fp8_case(fp8_case *c) {
    free(c->w);
    free(c->s);
    free(c->X);
}

/* lt_linear equals one kernel call over all rows, bit for bit, at any thread count */
LT_TEST(threads, linear_thread_invariant) {
    enum { ROWS = 130, COLS = 256, N = 300 }; /* N > one token tile */
    fp8_case c = make_fp8_case(ROWS, COLS, N, 12345, 120, 1.0f);
    const lt_weight W = c.W;
    const float *X = c.X;
    float *Y0 = malloc(sizeof(float) * N * ROWS), *Y1 = malloc(sizeof(float) * N * ROWS);
    lt_error err;
    static const int threads[] = {1, 2, 3};
    static const int64_t ns[] = {1, 5, N};
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
        for (int q = 0; q <= 1; q++) {
            int ab = q ? 128 : 0;
            if (ab) lt_kern()->matmul_actq[LT_W_FP8](&W, X, ns[ni], Y0, ROWS, 0, ROWS, ab);
            else lt_kern()->matmul[LT_W_FP8](&W, X, ns[ni], Y0, ROWS, 0, ROWS);
            for (size_t ti = 0; ti < sizeof threads / sizeof threads[0]; ti++) {
                CHECK(lt_threads_set(threads[ti], &err) == LT_OK);
                memset(Y1, 0, sizeof(float) * N * ROWS);
                if (ab) lt_linear_actq(&W, X, ns[ni], Y1, ab);
                else lt_linear(&W, X, ns[ni], Y1);
                CHECKF(!memcmp(Y0, Y1, sizeof(float) * (size_t)(ns[ni] * ROWS)),
                       "lt_linear n=%lld act_block=%d differs at %d threads", (long long)ns[ni], ab, threads[ti]);
            }
        }
    /* a row sub-range into a wider Y (grouped products such as wo_a) */
    const int64_t r0 = 30, r1 = 101, ldy = ROWS + 5;
    float *Ya = malloc(sizeof(float) * 9 * ldy), *Yb = malloc(sizeof(float) * 9 * ldy);
    for (int64_t n = 1; n <= 9; n += 8) {
        for (int64_t i = 0; i < 9 * ldy; i++) Ya[i] = Yb[i] = -1.0f;
        lt_kern()->matmul[LT_W_FP8](&W, X, n, Ya, ldy, r0, r1);
        CHECK(lt_threads_set(2, &err) == LT_OK);
        lt_linear_rows(&W, X, n, Yb, ldy, r0, r1, 0);
        CHECKF(!memcmp(Ya, Yb, sizeof(float) * (size_t)(n * ldy)), "lt_linear_rows n=%lld rows [%lld, %lld)",
               (long long)n, (long long)r0, (long long)r1);
    }
    free(Ya);
    free(Yb);
    CHECK(lt_threads_set(0, &err) == LT_OK);
    free_fp8_case(&c);
    free(Y0);
    free(Y1);
}

/* FP4 (the routed experts): lt_linear_actq is bit for bit the same at 1, 2
 * and 3 threads, for token counts on every path (one row, the few-token
 * tiles, the panels past 128 with a few-token remainder past 256) */
LT_TEST(threads, linear_thread_invariant_fp4) {
    enum { ROWS = 200, COLS = 512, N = 300 };
    uint8_t *w = malloc(ROWS * COLS / 2), *sc = malloc(ROWS * COLS / 32);
    float *X = malloc(sizeof(float) * N * COLS), *Y0 = malloc(sizeof(float) * N * ROWS), *Y1 = malloc(sizeof(float) * N * ROWS);
    uint32_t v = 4242;
    for (int i = 0; i < ROWS * COLS / 2; i++) v = v * 1664525u + 1013904223u, w[i] = (uint8_t)(v >> 24);
    for (int i = 0; i < ROWS * COLS / 32; i++) sc[i] = (uint8_t)(120 + i % 9);
    for (int i = 0; i < N * COLS; i++) v = v * 1664525u + 1013904223u, X[i] = (float)(v >> 8) * 0x1p-24f - 0.5f;
    const lt_weight W = {.type = LT_W_FP4, .data = w, .scale = sc, .rows = ROWS, .cols = COLS, .block_r = 1,
                         .block_c = 32, .name = "test"};
    lt_error err;
    static const int64_t ns[] = {1, 3, 40, 150, N};
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
        for (int t = 1; t <= 3; t++) {
            CHECK(lt_threads_set(t, &err) == LT_OK);
            lt_linear_actq(&W, X, ns[ni], t == 1 ? Y0 : Y1, 128);
            if (t > 1)
                CHECKF(!memcmp(Y0, Y1, sizeof(float) * (size_t)(ns[ni] * ROWS)), "FP4 n=%lld differs at %d threads",
                       (long long)ns[ni], t);
        }
    CHECK(lt_threads_set(0, &err) == LT_OK);
    free(w), free(sc), free(X), free(Y0), free(Y1);
}

/* a batch of products (shared inputs, an empty product, row sub-ranges,
 * quantised and not, 1 to 9 tokens) writes what each product writes alone */
LT_TEST(threads, linear_batch_matches_single) {
    enum { ROWS = 200, COLS = 384, N = 9, P = 6 };
    fp8_case c = make_fp8_case(ROWS, COLS, N, 777, 121, 20.0f);
    const lt_weight W = c.W;
    const float *X = c.X;
    float *Y0 = malloc(sizeof(float) * P * N * ROWS), *Y1 = malloc(sizeof(float) * P * N * ROWS);
    static const struct { int64_t x, n, r0, r1; int act; } spec[P] = {
        {0, 1, 0, ROWS, 128}, {0, 1, 0, ROWS, 128}, /* one input, two products */
        {1, 3, 10, 150, 128}, {1, 3, 0, 0, 128},    /* an empty one */
        {0, 9, 0, ROWS, 32},  {3, 1, 64, ROWS, 0},
    };
    lt_product p[P];
    for (int i = 0; i < P; i++)
        p[i] = (lt_product){&W, X + spec[i].x * COLS, spec[i].n, Y1 + i * N * ROWS, ROWS, spec[i].r0, spec[i].r1,
                            spec[i].act};
    lt_error err;
    for (int th = 1; th <= 2; th++) {
        CHECK(lt_threads_set(th, &err) == LT_OK);
        for (int i = 0; i < P * N * ROWS; i++) Y0[i] = Y1[i] = -1.0f;
        for (int i = 0; i < P; i++) {
            if (spec[i].act) lt_kern()->matmul_actq[LT_W_FP8](&W, p[i].X, p[i].n, Y0 + i * N * ROWS, ROWS, p[i].r0, p[i].r1, spec[i].act);
            else lt_kern()->matmul[LT_W_FP8](&W, p[i].X, p[i].n, Y0 + i * N * ROWS, ROWS, p[i].r0, p[i].r1);
        }
        lt_linear_batch(p, P);
        for (int i = 0; i < P; i++)
            CHECKF(!memcmp(Y0 + i * N * ROWS, Y1 + i * N * ROWS, sizeof(float) * N * ROWS),
                   "product %d of a batch differs from it alone at %d threads", i, th);
    }
    CHECK(lt_threads_set(0, &err) == LT_OK);
    free_fp8_case(&c);
    free(Y0);
    free(Y1);
}
