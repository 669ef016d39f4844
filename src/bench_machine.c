/* Machine limits for lantern bench, at the pool's thread count:
 *   read   every thread sums 64-bit words of its slices of one buffer;
 *   triad  STREAM's a = b + s*c, counted as 3 arrays of traffic (the
 *          write-allocate read is not counted, as in STREAM);
 *   FMA    the kernel table's register-only FMA probe on every thread.
 * One buffer of max(1 GiB, 4 x LLC), so that caches cannot serve it, holds
 * the read words and then the three triad arrays. The probe stays open for
 * the whole run: the bench takes a read pass after every decoded token and an
 * FMA pass around every prefill, so each limit is measured in the same
 * moments as the work it is compared with (the OS lends cores to others), and
 * a read pass also flushes the caches between tokens. */
#include "bench.h"
#include "kernels.h"
#include "threads.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SLICES_PER_THREAD 8
#define MAX_SLICES (LT_MAX_THREADS * SLICES_PER_THREAD)

struct lt_bench_probe {
    uint64_t *words;              /* the buffer as read words */
    float *a, *b, *c;             /* and as the three triad arrays */
    int64_t n_words, n_floats, n_slices;
    uint64_t bytes;
    int triad_ready;
    int64_t fma_iters;            /* per item, calibrated to about 40 ms a pass */
    uint64_t sums[MAX_SLICES];    /* keeps the reads alive */
    double flops[MAX_SLICES];
};

static void slice_range(int64_t n, int64_t n_slices, int64_t i, int64_t *lo, int64_t *hi) {
    *lo = n * i / n_slices;
    *hi = n * (i + 1) / n_slices;
}

/* first touch by the threads that will stream the slices */
static void fill_words_item(void *ctx, int64_t i, int tid) {
    lt_bench_probe *p = ctx;
    (void)tid;
    int64_t lo, hi;
    slice_range(p->n_words, p->n_slices, i, &lo, &hi);
    for (int64_t w = lo; w < hi; w++) p->words[w] = (uint64_t)w * 0x9E3779B97F4A7C15ull;
}

static void fill_triad_item(void *ctx, int64_t i, int tid) {
    lt_bench_probe *p = ctx;
    (void)tid;
    int64_t lo, hi;
    slice_range(p->n_floats, p->n_slices, i, &lo, &hi);
    for (int64_t f = lo; f < hi; f++) p->a[f] = 0.0f, p->b[f] = 1.0f, p->c[f] = 2.0f;
}

static void read_item(void *ctx, int64_t i, int tid) {
    lt_bench_probe *p = ctx;
    (void)tid;
    int64_t lo, hi;
    slice_range(p->n_words, p->n_slices, i, &lo, &hi);
    uint64_t s = 0;
    for (int64_t w = lo; w < hi; w++) s += p->words[w];
    p->sums[i] = s;
}

static void triad_item(void *ctx, int64_t i, int tid) {
    lt_bench_probe *p = ctx;
    (void)tid;
    int64_t lo, hi;
    slice_range(p->n_floats, p->n_slices, i, &lo, &hi);
    float *restrict a = p->a;
    const float *restrict b = p->b, *restrict c = p->c;
    for (int64_t f = lo; f < hi; f++) a[f] = b[f] + 3.0f * c[f];
}

static void fma_item(void *ctx, int64_t i, int tid) {
    lt_bench_probe *p = ctx;
    (void)tid;
    p->flops[i] = lt_kern()->probe_fma(p->fma_iters);
}

static double timed(lt_bench_probe *p, lt_task_fn fn) {
    double t0 = lt_time_s();
    lt_parallel_for(p->n_slices, fn, p);
    return lt_time_s() - t0;
}

lt_status lt_bench_probe_create(lt_bench_probe **out, lt_error *err) {
    long llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
    *out = NULL;
    lt_bench_probe *p = lt_calloc(1, sizeof *p, "bench probe", err);
    if (!p) return LT_ERR_NOMEM;
    p->bytes = LT_MAX((uint64_t)1 << 30, 4 * (uint64_t)(llc > 0 ? llc : 0));
    p->words = malloc(p->bytes);
    if (!p->words) {
        lt_status st = lt_fail(err, LT_ERR_NOMEM, "bench: out of memory for a %llu MiB bandwidth buffer",
                               (unsigned long long)(p->bytes >> 20));
        free(p);
        return st;
    }
    p->n_words = (int64_t)(p->bytes / 8);
    p->n_floats = (int64_t)(p->bytes / 12);
    p->a = (float *)(void *)p->words;
    p->b = p->a + p->n_floats;
    p->c = p->b + p->n_floats;
    p->n_slices = LT_MIN((int64_t)lt_threads_count() * SLICES_PER_THREAD, MAX_SLICES);
    lt_parallel_for(p->n_slices, fill_words_item, p);
    for (p->fma_iters = 1 << 14; p->fma_iters < ((int64_t)1 << 40); p->fma_iters *= 4)
        if (timed(p, fma_item) > 0.01) break;
    *out = p;
    return LT_OK;
}

void lt_bench_probe_free(lt_bench_probe *p) {
    if (!p) return;
    free(p->words);
    free(p);
}

uint64_t lt_bench_probe_bytes(const lt_bench_probe *p) { return p->bytes; }

double lt_bench_probe_read(lt_bench_probe *p) {
    if (p->triad_ready) { /* the triad overwrote the words */
        lt_parallel_for(p->n_slices, fill_words_item, p);
        p->triad_ready = 0;
    }
    return (double)p->bytes / timed(p, read_item) * 1e-9;
}

double lt_bench_probe_triad(lt_bench_probe *p) {
    if (!p->triad_ready) {
        lt_parallel_for(p->n_slices, fill_triad_item, p);
        p->triad_ready = 1;
    }
    return 12.0 * (double)p->n_floats / timed(p, triad_item) * 1e-9;
}

double lt_bench_probe_fma(lt_bench_probe *p) {
    double t = timed(p, fma_item), flops = 0.0;
    for (int64_t i = 0; i < p->n_slices; i++) flops += p->flops[i];
    return flops / t * 1e-9;
}
