/* The kernel table's products, split into tiles across the pool (a batch of
 * products shares one parallel loop; see tile() for the tile sizes), and
 * the attention and indexer loops. */
#include "linear.h"
#include "kernels.h"
#include "threads.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

#define LT_MIN_TILE_MACS (64 * 1024)
#define LT_TOK_TILE 256

/* one product's tiling: row_tile rows by tok_tile activation rows */
typedef struct {
    int64_t row_tile, n_row_tiles, tok_tile, first; /* first: its first item in the batch */
} tiling;

typedef struct {
    const lt_kernels *k;
    const lt_product *p;
    const tiling *tl;
    int count;
} batch_job;

static void run_tile(void *ctx, int64_t item, int tid) {
    const batch_job *j = ctx;
    (void)tid;
    int i = 0;
    while (i + 1 < j->count && j->tl[i + 1].first <= item) i++;
    const lt_product *p = &j->p[i];
    const tiling *t = &j->tl[i];
    int64_t local = item - t->first;
    int64_t ra = p->r0 + (local % t->n_row_tiles) * t->row_tile, rb = LT_MIN_I64(ra + t->row_tile, p->r1);
    int64_t ta = (local / t->n_row_tiles) * t->tok_tile, tb = LT_MIN_I64(ta + t->tok_tile, p->n);
    const float *X = p->X + ta * p->W->cols;
    float *Y = p->Y + ta * p->ldy;
    if (p->act_block) j->k->matmul_actq[p->W->type](p->W, X, tb - ta, Y, p->ldy, ra, rb, p->act_block);
    else j->k->matmul[p->W->type](p->W, X, tb - ta, Y, p->ldy, ra, rb);
}

static int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

static int64_t product_macs(const lt_product *p) { return p->n * (p->r1 - p->r0) * p->W->cols; }

/* Tiles of about an equal share of the batch's work, 4 per thread (the
 * dynamic hand-out evens out cores the OS lends elsewhere), none under
 * LT_MIN_TILE_MACS. Decode tiles are whole 16-row groups; prefill tiles
 * whole 64-row register panels and, past LT_TOK_TILE activation rows, cut
 * the activation rows too. */
static tiling tile(const lt_product *p, int64_t share) {
    int64_t rows = p->r1 - p->r0, cols = LT_MAX(p->W->cols, 1);
    tiling t = {rows, 1, p->n, 0};
    if (product_macs(p) >= 2 * LT_MIN_TILE_MACS) {
        if (p->n == 1) {
            t.row_tile = round_up(LT_MAX((share + cols - 1) / cols, 16), 16);
        } else {
            t.tok_tile = p->n > LT_TOK_TILE ? LT_TOK_TILE : p->n;
            t.row_tile = round_up((share + t.tok_tile * cols - 1) / (t.tok_tile * cols), 64);
        }
        t.row_tile = LT_MIN(t.row_tile, rows);
    }
    t.n_row_tiles = (rows + t.row_tile - 1) / t.row_tile;
    return t;
}

/* a decode product whose quantised row equals what its tiles would quantise */
static int decode_actq(const lt_product *p) { return p->act_block && p->n == 1 && 4096 % p->act_block == 0; }

/* Decode products (one activation row) quantise it once, here, instead of
 * once per tile: each distinct X (w1 and w3 of an expert share one) is
 * copied and fake_quant_fp8'd, and the product runs as a plain matmul on it
 * (the same arithmetic, kernels.h matmul_actq). q gets the products to run;
 * returns the buffer to free (NULL: none, or out of memory and q quantises
 * per tile as before). */
static float *quantise_once(const lt_kernels *k, const lt_product *p, int count, lt_product *q) {
    int64_t floats = 0;
    for (int i = 0; i < count; i++) {
        q[i] = p[i];
        if (decode_actq(&p[i])) floats += p[i].W->cols;
    }
    float *buf = floats ? malloc(sizeof(float) * (size_t)floats) : NULL, *at = buf;
    for (int i = 0; i < count && buf; i++) {
        if (!decode_actq(&p[i])) continue;
        int64_t cols = p[i].W->cols;
        if (i && decode_actq(&p[i - 1]) && p[i - 1].X == p[i].X && p[i - 1].act_block == p[i].act_block &&
            p[i - 1].W->cols == cols) {
            q[i].X = q[i - 1].X; /* the same row, quantised just before */
        } else {
            memcpy(at, p[i].X, sizeof(float) * (size_t)cols);
            k->fake_quant_fp8(at, cols, p[i].act_block);
            q[i].X = at;
            at += cols;
        }
        q[i].act_block = 0;
    }
    return buf;
}

void lt_linear_batch(const lt_product *p, int count) {
    tiling tl[LT_BATCH_MAX];
    lt_product q[LT_BATCH_MAX];
    const lt_kernels *k = lt_kern();
    float *buf = quantise_once(k, p, count, q);
    int64_t total = 0, items = 0;
    for (int i = 0; i < count; i++) total += product_macs(&q[i]);
    int64_t share = LT_MAX(total / (4 * lt_threads_count()), LT_MIN_TILE_MACS);
    for (int i = 0; i < count; i++) {
        if (q[i].n <= 0 || q[i].r1 <= q[i].r0) {
            tl[i] = (tiling){1, 0, 1, items}; /* no items */
            continue;
        }
        tl[i] = tile(&q[i], share);
        tl[i].first = items;
        items += tl[i].n_row_tiles * ((q[i].n + tl[i].tok_tile - 1) / tl[i].tok_tile);
    }
    batch_job j = {k, q, tl, count};
    if (items == 1) run_tile(&j, 0, 0);
    else if (items > 1) lt_parallel_for(items, run_tile, &j);
    free(buf);
}

void lt_linear_rows(const lt_weight *W, const float *X, int64_t n, float *Y, int64_t ldy, int64_t r0, int64_t r1,
                    int act_block) {
    lt_product p = {W, X, n, Y, ldy, r0, r1, act_block};
    lt_linear_batch(&p, 1);
}

void lt_linear(const lt_weight *W, const float *X, int64_t n, float *Y) {
    lt_linear_rows(W, X, n, Y, W->rows, 0, W->rows, 0);
}

void lt_linear_actq(const lt_weight *W, const float *X, int64_t n, float *Y, int act_block) {
    lt_linear_rows(W, X, n, Y, W->rows, 0, W->rows, act_block);
}

/* ---- attention over gathered rows and indexer scores ------------------- */

#define INDEX_KEYS_PER_ITEM 4096

typedef struct {
    const lt_kernels *k;
    const float *q, *sink;
    const lt_kv_fmt *f;
    const uint8_t *const *rows;
    int64_t n_first, n_rows, nh, group;
    float scale, *o;
    int ref;
} attn_job;

static void attn_item(void *ctx, int64_t i, int tid) {
    const attn_job *j = ctx;
    (void)tid;
    int64_t h0 = i * j->group, h1 = LT_MIN_I64(h0 + j->group, j->nh);
    j->k->attn_rows(j->q, j->f, j->n_first, j->rows, j->n_rows, j->sink, j->scale, j->ref, h0, h1, j->o);
}

/* head groups: one per thread (each group decodes the rows once, so more
 * groups repeat that work) */
void lt_attention_rows(const float *q, int64_t nh, const lt_kv_fmt *f, int64_t n_first, const uint8_t *const *rows,
                       int64_t n_rows, const float *sink, float scale, int ref, float *o) {
    attn_job j = {lt_kern(), q, sink, f, rows, n_first, n_rows, nh, nh, scale, o, ref};
    int64_t threads = nh * n_rows * f->d >= 2 * LT_MIN_TILE_MACS ? lt_threads_count() : 1;
    j.group = LT_MIN_I64((nh + threads - 1) / threads, LT_ATTN_MAX_HEADS);
    int64_t items = (nh + j.group - 1) / j.group;
    if (items == 1) attn_item(&j, 0, 0);
    else lt_parallel_for(items, attn_item, &j);
}

typedef struct {
    const lt_kernels *k;
    const lt_weight *K, *Q;
    const float *wt;
    int bf16;
    int64_t n_keys;
    float *score;
} index_job;

static void index_item(void *ctx, int64_t i, int tid) {
    const index_job *j = ctx;
    (void)tid;
    int64_t j0 = i * INDEX_KEYS_PER_ITEM, j1 = LT_MIN_I64(j0 + INDEX_KEYS_PER_ITEM, j->n_keys);
    j->k->index_score(j->K, j->Q, j->wt, j->bf16, j0, j1, j->score);
}

void lt_index_scores(const lt_weight *K, const lt_weight *Q, const float *wt, int bf16, int64_t n_keys,
                     float *score) {
    index_job j = {lt_kern(), K, Q, wt, bf16, n_keys, score};
    lt_parallel_for((n_keys + INDEX_KEYS_PER_ITEM - 1) / INDEX_KEYS_PER_ITEM, index_item, &j);
}
