/* Machine limits for lantern bench, at the pool's thread count:
 *   read   every thread sums 64-bit words of its slices of one buffer;
 *   triad  STREAM's a = b + s*c, counted as 3 arrays of traffic (the
 *          write-allocate read is not counted, as in STREAM);
 *   FMA    the kernel table's register-only FMA probe on every thread.
 * One buffer of max(1 GiB, 4 x LLC), so that caches cannot serve it, holds
 * the read words and then the three triad arrays; each figure is the best of
 * a few passes (the OS lends cores to others). */
#include "bench.h"
#include "kernels.h"
#include "threads.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PASSES 4
#define SLICES_PER_THREAD 8

typedef struct {
    uint64_t *words;
    float *a, *b, *c;
    int64_t n_words, n_floats, n_slices;
    uint64_t sums[LT_MAX_THREADS * SLICES_PER_THREAD];
} bw_job;

static void slice_range(int64_t n, int64_t n_slices, int64_t i, int64_t *lo, int64_t *hi) {
    *lo = n * i / n_slices;
    *hi = n * (i + 1) / n_slices;
}

/* first touch by the threads that will stream the slices */
static void fill_words_item(void *ctx, int64_t i, int tid) {
    bw_job *j = ctx;
    (void)tid;
    int64_t lo, hi;
    slice_range(j->n_words, j->n_slices, i, &lo, &hi);
    for (int64_t w = lo; w < hi; w++) j->words[w] = (uint64_t)w * 0x9E3779B97F4A7C15ull;
}

static void fill_triad_item(void *ctx, int64_t i, int tid) {
    bw_job *j = ctx;
    (void)tid;
    int64_t lo, hi;
    slice_range(j->n_floats, j->n_slices, i, &lo, &hi);
    for (int64_t f = lo; f < hi; f++) j->a[f] = 0.0f, j->b[f] = 1.0f, j->c[f] = 2.0f;
}

static void read_item(void *ctx, int64_t i, int tid) {
    bw_job *j = ctx;
    (void)tid;
    int64_t lo, hi;
    slice_range(j->n_words, j->n_slices, i, &lo, &hi);
    uint64_t s = 0;
    for (int64_t w = lo; w < hi; w++) s += j->words[w];
    j->sums[i] = s;
}

static void triad_item(void *ctx, int64_t i, int tid) {
    bw_job *j = ctx;
    (void)tid;
    int64_t lo, hi;
    slice_range(j->n_floats, j->n_slices, i, &lo, &hi);
    float *restrict a = j->a;
    const float *restrict b = j->b, *restrict c = j->c;
    for (int64_t f = lo; f < hi; f++) a[f] = b[f] + 3.0f * c[f];
}

typedef struct {
    int64_t iters;
    double flops[LT_MAX_THREADS * SLICES_PER_THREAD];
} fma_job;

static void fma_item(void *ctx, int64_t i, int tid) {
    fma_job *j = ctx;
    (void)tid;
    j->flops[i] = lt_kern()->probe_fma(j->iters);
}

static double best_seconds(int64_t items, lt_task_fn fn, void *ctx) {
    double best = 1e30;
    for (int p = 0; p < PASSES; p++) {
        double t0 = lt_time_s();
        lt_parallel_for(items, fn, ctx);
        best = LT_MIN(best, lt_time_s() - t0);
    }
    return best;
}

static double fma_gflops(int threads) {
    fma_job j = {.iters = 1 << 16};
    int64_t items = (int64_t)threads * SLICES_PER_THREAD;
    /* calibrate to about 40 ms per pass */
    for (;;) {
        double t = best_seconds(items, fma_item, &j);
        if (t > 0.02 || j.iters > ((int64_t)1 << 40)) break;
        j.iters *= 4;
    }
    double t = best_seconds(items, fma_item, &j), flops = 0.0;
    for (int64_t i = 0; i < items; i++) flops += j.flops[i];
    return flops / t * 1e-9;
}

lt_status lt_bench_machine_measure(lt_bench_machine *m, lt_error *err) {
    long llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
    uint64_t bytes = LT_MAX((uint64_t)1 << 30, 4 * (uint64_t)(llc > 0 ? llc : 0));
    int threads = lt_threads_count();
    bw_job *j = lt_calloc(1, sizeof *j, "bandwidth job", err);
    if (!j) return LT_ERR_NOMEM;
    j->words = malloc(bytes);
    if (!j->words) {
        free(j);
        return lt_fail(err, LT_ERR_NOMEM, "bench: out of memory for a %llu MiB bandwidth buffer",
                       (unsigned long long)(bytes >> 20));
    }
    j->n_words = (int64_t)(bytes / 8);
    j->n_floats = (int64_t)(bytes / 12);
    j->a = (float *)(void *)j->words;
    j->b = j->a + j->n_floats;
    j->c = j->b + j->n_floats;
    j->n_slices = (int64_t)threads * SLICES_PER_THREAD;
    lt_parallel_for(j->n_slices, fill_words_item, j);
    m->buffer_bytes = bytes;
    m->read_gbs = (double)bytes / best_seconds(j->n_slices, read_item, j) * 1e-9;
    lt_parallel_for(j->n_slices, fill_triad_item, j);
    m->triad_gbs = 12.0 * (double)j->n_floats / best_seconds(j->n_slices, triad_item, j) * 1e-9;
    m->fma_gflops = fma_gflops(threads);
    free(j->words);
    free(j);
    return LT_OK;
}
