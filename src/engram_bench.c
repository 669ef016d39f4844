/* Engram lookup benchmark: a synthetic table of real row size, resident vs
 * evicted from the page cache, with and without prefetch. */
#include "engram.h"
#include "quant.h"
#include "threads.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>


/* One V4.1-Flash Engram layer (spec 5.3): D 5120, hc 4, G 24 rows of 256. */
#define BENCH_D 5120
#define BENCH_HC 4
#define BENCH_G 24
#define BENCH_HD 256
#define BENCH_CHUNK (8u << 20)

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

typedef enum { FILL_FP8_RANDOM, FILL_BYTE, FILL_F32 } bench_fill;

typedef struct {
    const char *name, *dtype;
    int64_t d0, d1, elem;  /* elem: bytes per element */
    bench_fill fill;
    uint8_t byte;          /* FILL_BYTE */
    float value;           /* FILL_F32 */
} bench_tensor;

static lt_status write_all(int fd, const void *p, size_t n, const char *path, lt_error *err) {
    for (size_t done = 0; done < n;) {
        ssize_t w = write(fd, (const char *)p + done, n - done);
        if (w <= 0) return lt_fail(err, LT_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        done += (size_t)w;
    }
    return LT_OK;
}

/* Random FP8 codes have the top exponent bit clear: |v| <= 1.875, never NaN. */
static void fill_chunk(const bench_tensor *t, uint8_t *buf, size_t n, uint64_t *seed) {
    if (t->fill == FILL_BYTE) memset(buf, t->byte, n);
    for (size_t i = 0; t->fill == FILL_F32 && i < n; i += 4) memcpy(buf + i, &t->value, 4);
    for (size_t i = 0; t->fill == FILL_FP8_RANDOM && i < n; i += 8) {
        uint64_t r = splitmix64(seed) & 0xBFBFBFBFBFBFBFBFULL;
        memcpy(buf + i, &r, LT_MIN(n - i, 8));
    }
}

static lt_status write_tensor(int fd, const bench_tensor *t, uint8_t *buf, uint64_t *seed, const char *path,
                              lt_error *err) {
    lt_status st = LT_OK;
    for (uint64_t left = (uint64_t)(t->d0 * t->d1 * t->elem); left && st == LT_OK;) {
        size_t n = left < BENCH_CHUNK ? (size_t)left : BENCH_CHUNK;
        fill_chunk(t, buf, n, seed);
        st = write_all(fd, buf, n, path, err);
        left -= n;
    }
    return st;
}

/* The bench layer as a safetensors file: the table (random rows, unit
 * scales), wkv (random, scale 2^-7) and unit gate weights. Kept when a file
 * of the right size is already there. */
static lt_status bench_write(const char *path, int64_t rows, lt_error *err) {
    const bench_tensor ts[] = {
        {"layers.1.engram.embed.weight", "F8_E4M3", rows, BENCH_HD, 1, FILL_FP8_RANDOM, 0, 0},
        {"layers.1.engram.embed.scale", "F8_E8M0", rows, BENCH_HD / 32, 1, FILL_BYTE, 127, 0},
        {"layers.1.engram.wkv.weight", "F8_E4M3", (BENCH_HC + 1) * BENCH_D, BENCH_G * BENCH_HD, 1, FILL_FP8_RANDOM, 0, 0},
        {"layers.1.engram.wkv.scale", "F8_E8M0", (BENCH_HC + 1) * BENCH_D / 32, BENCH_G * BENCH_HD / 32, 1, FILL_BYTE,
         120, 0},
        {"layers.1.engram.q_weight", "F32", BENCH_HC, BENCH_D, 4, FILL_F32, 0, 1.0f},
        {"layers.1.engram.k_weight", "F32", BENCH_HC, BENCH_D, 4, FILL_F32, 0, 1.0f},
    };
    int nt = (int)(sizeof ts / sizeof ts[0]);
    char header[2048];
    int h = snprintf(header, sizeof header, "{");
    uint64_t off = 0;
    for (int i = 0; i < nt; i++) {
        uint64_t bytes = (uint64_t)(ts[i].d0 * ts[i].d1 * ts[i].elem);
        h += snprintf(header + h, sizeof header - (size_t)h, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld,%lld],"
                      "\"data_offsets\":[%llu,%llu]}", i ? "," : "", ts[i].name, ts[i].dtype, (long long)ts[i].d0,
                      (long long)ts[i].d1, (unsigned long long)off, (unsigned long long)(off + bytes));
        off += bytes;
    }
    h += snprintf(header + h, sizeof header - (size_t)h, "}");
    while (h % 8) header[h++] = ' ';
    uint64_t total = 8 + (uint64_t)h + off;
    struct stat sb;
    if (stat(path, &sb) == 0 && (uint64_t)sb.st_size == total) return LT_OK;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return lt_fail(err, LT_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    uint8_t *buf = malloc(BENCH_CHUNK);
    uint64_t hl = (uint64_t)h, seed = 41;
    lt_status st = buf ? write_all(fd, &hl, 8, path, err) : lt_fail(err, LT_ERR_NOMEM, "out of memory");
    if (st == LT_OK) st = write_all(fd, header, (size_t)h, path, err);
    for (int i = 0; i < nt && st == LT_OK; i++) st = write_tensor(fd, &ts[i], buf, &seed, path, err);
    free(buf);
    if (st == LT_OK && fsync(fd)) st = lt_fail(err, LT_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
    if (close(fd) && st == LT_OK) st = lt_fail(err, LT_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    return st;
}

/* Drops the table from this process's page table and from the page cache. */
static void bench_evict(const lt_engram_layer *e, const lt_store *s) {
    const void *parts[2] = {e->rows, e->scales};
    uint64_t sizes[2] = {(uint64_t)e->n_rows * (uint64_t)e->hd, (uint64_t)e->n_rows * (uint64_t)(e->hd / 32)};
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < 2; i++) {
        uintptr_t a = (uintptr_t)parts[i] & ~(page - 1);
        madvise((void *)a, (uintptr_t)parts[i] + sizes[i] - a, MADV_DONTNEED);
        const lt_st_file *f = &s->files[0];
        posix_fadvise(f->fd, (off_t)(a - (uintptr_t)f->map), (off_t)((uintptr_t)parts[i] + sizes[i] - a),
                      POSIX_FADV_DONTNEED);
    }
}

/* Fraction of the rows of ids[n] whose first page is in memory. */
static double bench_resident(const lt_engram_layer *e, const int64_t *ids, int64_t n) {
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    int64_t in = 0;
    for (int64_t i = 0; i < n; i++) {
        unsigned char v = 0;
        uintptr_t a = (uintptr_t)(e->rows + ids[i] * e->hd) & ~(page - 1);
        if (mincore((void *)a, page, &v) == 0 && (v & 1)) in++;
    }
    return n ? (double)in / (double)n : 0;
}

/* The layers before the Engram layer, as ms of busy work on every thread. */
static void spin_item(void *ctx, int64_t item, int tid) {
    (void)item;
    (void)tid;
    for (double end = lt_time_s() + *(const double *)ctx * 1e-3; lt_time_s() < end;) {}
}

static void spin_ms(double ms) { lt_parallel_for(lt_threads_count(), spin_item, &ms); }

typedef struct {
    double lookup_ms, lookup_p50, lookup_max, mix_ms;  /* per step: rows; wkv + gate */
} bench_result;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* n_tokens decode steps: [prefetch,] the lead time (standing in for the
 * layers before), then the timed lookup and wkv + gate. ms: scratch [n_tokens]. */
static bench_result bench_steps(const lt_engram_layer *e, lt_engram_prefetcher *pf, const int64_t *ids,
                                int n_tokens, double ahead_ms, float *X, float *emb, float *kv, double *ms) {
    lt_num nm = {.mode = LT_NUMERICS_EXACT};
    bench_result r = {0, 0, 0, 0};
    for (int t = 0; t < n_tokens; t++) {
        const int64_t *id = ids + (int64_t)t * BENCH_G;
        if (pf) lt_engram_prefetch(pf, e, id, 1);
        spin_ms(ahead_ms);
        double t0 = lt_time_s();
        lt_engram_lookup(e, id, 1, emb);
        double t1 = lt_time_s();
        lt_engram_mix(e, &nm, X, NULL, 1, emb, kv);
        ms[t] = (t1 - t0) * 1e3;
        r.lookup_ms += ms[t] / n_tokens;
        r.mix_ms += (lt_time_s() - t1) * 1e3 / n_tokens;
    }
    qsort(ms, (size_t)n_tokens, sizeof *ms, cmp_double);
    r.lookup_p50 = ms[n_tokens / 2];
    r.lookup_max = ms[n_tokens - 1];
    return r;
}

/* One line: the step's lookup (mean, median, max), wkv + gate, and the
 * lookup's extra time over the resident run as a share of its whole step. */
static void bench_report(FILE *out, const char *what, bench_result r, const bench_result *base, double resident) {
    fprintf(out, "  %-27s %8.3f %8.3f %8.3f %9.2f", what, r.lookup_ms, r.lookup_p50, r.lookup_max, r.mix_ms);
    if (base) {
        double stall = r.lookup_ms - base->lookup_ms;
        fprintf(out, " %+9.3f %+8.2f%%", stall, 100.0 * stall / (base->lookup_ms + base->mix_ms));
    } else {
        fprintf(out, " %9s %9s", "-", "-");
    }
    fprintf(out, " %7.1f%%\n", 100.0 * resident);
}

int lt_engram_bench(const char *path, int64_t rows, int n_tokens, double ahead_ms, FILE *out, lt_error *err) {
    if (rows < 1 || n_tokens < 1) {
        lt_fail(err, LT_ERR_ARG, "Engram bench: rows (%lld) and n_tokens (%d) must be >= 1", (long long)rows, n_tokens);
        return 1;
    }
    lt_config c = {.arch = LT_ARCH_V41, .dim = BENCH_D, .hc_mult = BENCH_HC, .n_engram_layers = 1,
                   .engram_layer_ids = {1}, .engram_num_embeddings = {rows}, .engram_max_ngram_size = 4,
                   .engram_n_heads = BENCH_G / 3, .engram_head_dim = BENCH_HD, .weight_fp8 = 1, .block_r = 32,
                   .block_c = 32, .rms_norm_eps = 1e-20};
    lt_store s = {0};
    lt_engram_layer e;
    lt_engram_prefetcher *pf = NULL;
    int64_t per = (int64_t)n_tokens * BENCH_G;
    int64_t *ids = malloc((size_t)(3 * per) * sizeof *ids);
    float *X = malloc(sizeof(float) * BENCH_HC * BENCH_D), *emb = malloc(sizeof(float) * BENCH_G * BENCH_HD);
    float *kv = malloc(sizeof(float) * (BENCH_HC + 1) * BENCH_D);
    double *ms = malloc((size_t)n_tokens * sizeof *ms);
    lt_status st = ids && X && emb && kv && ms ? LT_OK : lt_fail(err, LT_ERR_NOMEM, "out of memory");
    if (st == LT_OK) st = bench_write(path, rows, err);
    if (st == LT_OK) st = lt_store_open_file(&s, path, err);
    if (st == LT_OK) st = lt_engram_layer_bind(&e, &s, &c, 1, err);
    if (st == LT_OK) st = lt_engram_prefetcher_create(&pf, BENCH_G, err);
    if (st == LT_OK) {
        uint64_t seed = 7;
        for (int64_t i = 0; i < 3 * per; i++) ids[i] = (int64_t)(splitmix64(&seed) % (uint64_t)rows);
        for (int i = 0; i < BENCH_HC * BENCH_D; i++) X[i] = (float)((double)(splitmix64(&seed) >> 11) / 9007199254740992.0 - 0.5);
        const int64_t *warm = ids, *cold = ids + per, *pref = ids + 2 * per;
        for (int t = 0; t < n_tokens; t++) lt_engram_prefetch(pf, &e, warm + (int64_t)t * BENCH_G, 1);
        lt_engram_prefetch_wait(pf);
        bench_steps(&e, NULL, warm, 1, 0, X, emb, kv, ms); /* wkv paged in */
        double res_warm = bench_resident(&e, warm, per);
        bench_result base = bench_steps(&e, NULL, warm, n_tokens, ahead_ms, X, emb, kv, ms);
        bench_evict(&e, &s);
        double res_cold = bench_resident(&e, cold, per);
        bench_result r_cold = bench_steps(&e, NULL, cold, n_tokens, ahead_ms, X, emb, kv, ms);
        bench_evict(&e, &s);
        double res_pref = bench_resident(&e, pref, per);
        bench_result r_pref = bench_steps(&e, pf, pref, n_tokens, ahead_ms, X, emb, kv, ms);
        fprintf(out, "Engram lookup + gate, one V4.1 layer (D %d, hc %d, %d rows of %d), %d decode steps, %d threads\n",
                BENCH_D, BENCH_HC, BENCH_G, BENCH_HD, n_tokens, lt_threads_count());
        fprintf(out, "table %s: %lld rows, %.2f GB; prefetch issued %.1f ms before the layer\n", path,
                (long long)rows, (double)rows * (BENCH_HD + BENCH_HD / 32) / 1e9, ahead_ms);
        fprintf(out, "  %-27s %8s %8s %8s %9s %9s %9s %8s\n", "", "lookup", "p50", "max", "wkv+gate", "stall",
                "overhead", "rows in");
        fprintf(out, "  %-27s %8s %8s %8s %9s %9s %9s %8s\n", "setting", "ms", "ms", "ms", "ms", "ms", "of step",
                "memory");
        bench_report(out, "rows resident", base, NULL, res_warm);
        bench_report(out, "table evicted, no prefetch", r_cold, &base, res_cold);
        bench_report(out, "table evicted, prefetch", r_pref, &base, res_pref);
    }
    lt_engram_prefetcher_free(pf);
    lt_store_close(&s);
    free(ids);
    free(X);
    free(emb);
    free(kv);
    free(ms);
    return st == LT_OK ? 0 : 1;
}
