/* The attention part of a decoded token at a given context length, over
 * synthetic caches, for lantern bench (bench.h). Per layer (spec 4.3):
 *
 *   index scan  index sources score every visible index key (FP4, 68 B) with
 *               FP4 queries (both the reference numerics' round trips) in
 *               lt_index_scores; the forward's lt_indexer_topk keeps the best
 *               index_topk (the O(context) part of decode)
 *   gather      window rows (128) plus the selected compressed rows (CSA,
 *               V4.1) or every compressed row (HCA, context/128), stored
 *               as the REFERENCE numerics store them (bench_formats)
 *   attention   lt_attention_rows over the gathered rows
 *
 * Queries, keys and rows are random; only sizes and access patterns matter.
 * Dimension letters: H heads, hd head dim, Hi index heads, di index dim. */
#include "bench.h"
#include "indexer.h"
#include "kernels.h"
#include "linear.h"
#include "threads.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct lt_bench_attn {
    const lt_bench_arch *a;
    lt_bench_layer_kind kind;
    int64_t n_win, n_cmp, n_att; /* window rows, stored compressed rows, compressed rows attended */
    lt_kv_fmt fmt[2];            /* window, compressed rows */
    uint8_t *win;                /* [n_win] rows */
    uint8_t *cmp;                /* [n_cmp] rows */
    lt_weight keys;              /* FP4 [n_keys, di] (rows == 0: no index scan) */
    lt_weight iq;                /* FP4 [Hi, di] index queries */
    uint8_t *key_data, *key_scale, *iq_data, *iq_scale;
    float *q, *o, *sink;         /* [H, hd], [H, hd], [H] */
    float *wt, *score;           /* [Hi], [n_keys] */
    float *heap_s;               /* [topk] */
    int32_t *heap_i, *sel;       /* [topk] */
    const uint8_t **rows;        /* [n_win + n_att] */
    uint64_t rng;
};

/* ---- synthetic caches --------------------------------------------------- */

typedef struct {
    uint8_t *p;
    int64_t bytes;
    int floats;   /* fill with small floats, else bytes (FP4 codes, UE8M0 near 2^0) */
    int scales;
} fill_job;

static void fill_item(void *ctx, int64_t i, int tid) {
    const fill_job *j = ctx;
    (void)tid;
    int64_t lo = i << 22, hi = LT_MIN_I64(lo + (1 << 22), j->bytes);
    uint64_t s = (uint64_t)i * 0x9E3779B97F4A7C15ull + (uint64_t)j->bytes;
    for (int64_t b = lo; b + 4 <= hi; b += 4) {
        uint32_t v = (uint32_t)lt_splitmix64(&s);
        if (j->floats) v = (v & 0x807FFFFFu) | 0x3E000000u; /* +-[0.125, 0.25) */
        else if (j->scales) v = (v & 0x03030303u) | 0x7C7C7C7Cu;
        memcpy(j->p + b, &v, 4);
    }
}

static void *alloc_filled(int64_t bytes, int floats, int scales) {
    uint8_t *p = malloc((size_t)LT_MAX(bytes, 4));
    if (!p) return NULL;
    fill_job j = {p, bytes, floats, scales};
    lt_parallel_for((bytes + (1 << 22) - 1) >> 22, fill_item, &j);
    return p;
}

/* the rows as the default (REFERENCE) numerics store them (kvrow.h): V4
 * FP8 nope + bf16 RoPE dims; V4.1 FP8 window rows, FP4 compressed rows */
static void bench_formats(const lt_bench_arch *a, lt_kv_fmt fmt[2]) {
    int64_t hd = a->head_dim;
    fmt[0] = a->v41 ? lt_kv_fmt_fp8(hd, hd, 32) : lt_kv_fmt_fp8(hd, hd - a->rope_dim, 64);
    fmt[1] = a->v41 ? lt_kv_fmt_fp4(hd, 16) : fmt[0];
}

typedef struct {
    const lt_kv_fmt *f;
    uint8_t *rows;
    int64_t n;
} pack_job;

enum { PACK_ROWS = 256 };

static void pack_item(void *ctx, int64_t i, int tid) {
    const pack_job *j = ctx;
    float x[LT_ATTN_MAX_DIM];
    uint64_t s = (uint64_t)i * 0x9E3779B97F4A7C15ull + (uint64_t)j->n;
    (void)tid;
    for (int64_t r = i * PACK_ROWS; r < LT_MIN_I64((i + 1) * PACK_ROWS, j->n); r++) {
        for (int c = 0; c < j->f->d; c++) x[c] = (float)((int64_t)(lt_splitmix64(&s) >> 40) - (1 << 23)) * 0x1p-25f;
        lt_kv_pack(j->f, x, j->rows + r * j->f->bytes);
    }
}

/* n rows of values in [-0.25, 0.25), stored in format f */
static uint8_t *alloc_rows(const lt_kv_fmt *f, int64_t n) {
    uint8_t *p = malloc((size_t)LT_MAX(n * f->bytes, 1));
    if (!p) return NULL;
    pack_job j = {f, p, n};
    lt_parallel_for((n + PACK_ROWS - 1) / PACK_ROWS, pack_item, &j);
    return p;
}

lt_status lt_bench_attn_create(lt_bench_attn **out, const lt_bench_arch *a, int layer, int64_t ctx, lt_error *err) {
    *out = NULL;
    lt_bench_attn *c = lt_calloc(1, sizeof *c, "bench attention", err);
    if (!c) return LT_ERR_NOMEM;
    const int64_t H = a->n_heads, hd = a->head_dim, Hi = a->index_heads, di = a->index_dim;
    c->a = a;
    c->kind = lt_bench_layer(a, layer);
    c->rng = 0xC0FFEEull + (uint64_t)layer;
    c->n_win = LT_MIN(a->window, ctx);
    c->n_att = lt_bench_attended(a, layer, ctx);
    c->n_cmp = c->kind.ratio ? ctx / c->kind.ratio : 0;
    int64_t n_keys = lt_bench_index_keys(a, layer, ctx), n_rows = c->n_win + c->n_att;
    bench_formats(a, c->fmt);
    c->win = alloc_rows(&c->fmt[0], c->n_win);
    c->cmp = alloc_rows(&c->fmt[1], c->n_cmp);
    c->q = alloc_filled(H * hd * 4, 1, 0);
    c->o = malloc(sizeof(float) * (size_t)(H * hd));
    c->sink = alloc_filled(H * 4, 1, 0);
    c->rows = malloc(sizeof *c->rows * (size_t)LT_MAX(n_rows, 1));
    int ok = c->win && c->cmp && c->q && c->o && c->sink && c->rows;
    if (ok && n_keys) {
        c->keys = (lt_weight){.type = LT_W_FP4, .rows = n_keys, .cols = di, .block_r = 1, .block_c = 32,
                              .name = "synthetic index keys"};
        c->key_data = alloc_filled(n_keys * di / 2, 0, 0);
        c->key_scale = alloc_filled(n_keys * di / 32, 0, 1);
        c->keys.data = c->key_data;
        c->keys.scale = c->key_scale;
        c->iq = (lt_weight){.type = LT_W_FP4, .rows = Hi, .cols = di, .block_r = 1, .block_c = 32,
                            .name = "synthetic index queries"};
        c->iq_data = alloc_filled(Hi * di / 2, 0, 0);
        c->iq_scale = alloc_filled(Hi * di / 32, 0, 1);
        c->iq.data = c->iq_data;
        c->iq.scale = c->iq_scale;
        c->wt = alloc_filled(Hi * 4, 1, 0);
        c->score = malloc(sizeof(float) * (size_t)n_keys);
        c->heap_s = malloc(sizeof(float) * (size_t)a->index_topk);
        c->heap_i = malloc(sizeof(int32_t) * (size_t)a->index_topk);
        c->sel = malloc(sizeof(int32_t) * (size_t)a->index_topk);
        ok = c->key_data && c->key_scale && c->iq_data && c->iq_scale && c->wt && c->score && c->heap_s &&
             c->heap_i && c->sel;
    }
    if (!ok) {
        lt_bench_attn_free(c);
        return lt_fail(err, LT_ERR_NOMEM, "bench: out of memory for the caches of layer %d at context %lld", layer,
                       (long long)ctx);
    }
    *out = c;
    return LT_OK;
}

void lt_bench_attn_free(lt_bench_attn *c) {
    if (!c) return;
    free(c->win), free(c->cmp), free(c->q), free(c->o), free(c->sink), free(c->rows);
    free(c->key_data), free(c->key_scale), free(c->iq_data), free(c->iq_scale), free(c->wt), free(c->score);
    free(c->heap_s), free(c->heap_i), free(c->sel);
    free(c);
}

uint64_t lt_bench_kv_bytes_per_token(const lt_bench_arch *a) {
    lt_kv_fmt fmt[2];
    bench_formats(a, fmt);
    double bytes = 0.0, row = (double)fmt[1].bytes, key = a->index_dim / 2 + a->index_dim / 32;
    for (int l = 0; l < a->n_layers; l++) {
        lt_bench_layer_kind k = lt_bench_layer(a, l);
        if (k.compressor) bytes += row / k.ratio;
        if (k.compressor && k.indexer) bytes += key / k.ratio;
    }
    return (uint64_t)llround(bytes);
}

/* ---- one token ---------------------------------------------------------- */

void lt_bench_attn_token(lt_bench_attn *c, double *index_seconds, double *attn_seconds, uint64_t *kv_bytes) {
    const int64_t hd = c->a->head_dim;
    double t0 = lt_time_s();
    int64_t n_sel = c->n_att;
    const int32_t *sel = NULL;
    if (c->keys.rows) {
        lt_index_scores(&c->keys, &c->iq, c->wt, 1, c->keys.rows, c->score); /* reference numerics */
        n_sel = lt_indexer_topk(c->score, c->keys.rows, c->a->index_topk, c->heap_s, c->heap_i, c->sel);
        sel = c->sel;
        *kv_bytes += (uint64_t)lt_weight_bytes(&c->keys);
        *index_seconds += lt_time_s() - t0;
    }
    int64_t n = 0;
    for (int64_t j = 0; j < c->n_win; j++) c->rows[n++] = c->win + j * c->fmt[0].bytes;
    for (int64_t j = 0; j < n_sel; j++) {
        /* HCA takes every row; CSA the selection; a V4.1 layer that reuses a
         * source's selection picks rows at random */
        int64_t r = sel ? sel[j] : c->n_att == c->n_cmp ? j : (int64_t)(lt_splitmix64(&c->rng) % (uint64_t)c->n_cmp);
        c->rows[n++] = c->cmp + (r % LT_MAX(c->n_cmp, 1)) * c->fmt[1].bytes;
    }
    lt_attention_rows(c->q, c->a->n_heads, c->fmt, c->n_win, c->rows, n, c->sink, 1.0f / sqrtf((float)hd), 1, c->o);
    *kv_bytes += (uint64_t)(c->n_win * c->fmt[0].bytes + (n - c->n_win) * c->fmt[1].bytes);
    *attn_seconds += lt_time_s() - t0;
}
