/* The kernel table's products, split into tiles across the pool.
 *
 * Tiles: decode (n = 1) cuts the rows into about 4 tiles per thread so the
 * dynamic hand-out evens out cores the OS lends elsewhere; a product under
 * LT_MIN_TILE_MACS runs on the caller. Prefill cuts rows into multiples of 64
 * (whole register panels of every table) and, past LT_TOK_TILE activation
 * rows, the activation rows too, so short matrices still feed every thread. */
#include "linear.h"
#include "kernels.h"
#include "threads.h"
#include "util.h"

#define LT_MIN_TILE_MACS (64 * 1024)
#define LT_TOK_TILE 256

typedef struct {
    const lt_kernels *k;
    const lt_weight *W;
    const float *X;
    float *Y;
    int64_t n, ldy, r0, r1;
    int64_t row_tile, n_row_tiles, tok_tile;
    int act_block;
} linear_job;

static void run_tile(void *ctx, int64_t item, int tid) {
    const linear_job *j = ctx;
    (void)tid;
    int64_t ra = j->r0 + (item % j->n_row_tiles) * j->row_tile, rb = LT_MIN_I64(ra + j->row_tile, j->r1);
    int64_t ta = (item / j->n_row_tiles) * j->tok_tile, tb = LT_MIN_I64(ta + j->tok_tile, j->n);
    const float *X = j->X + ta * j->W->cols;
    float *Y = j->Y + ta * j->ldy;
    if (j->act_block) j->k->matmul_actq[j->W->type](j->W, X, tb - ta, Y, j->ldy, ra, rb, j->act_block);
    else j->k->matmul[j->W->type](j->W, X, tb - ta, Y, j->ldy, ra, rb);
}

static int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

void lt_linear_rows(const lt_weight *W, const float *X, int64_t n, float *Y, int64_t ldy, int64_t r0, int64_t r1,
                    int act_block) {
    int64_t rows = r1 - r0;
    if (n <= 0 || rows <= 0) return;
    linear_job j = {lt_kern(), W, X, Y, n, ldy, r0, r1, rows, 1, n, act_block};
    int64_t macs = n * rows * W->cols;
    if (macs >= 2 * LT_MIN_TILE_MACS) {
        int64_t threads = lt_threads_count(), tiles = 4 * threads;
        if (n == 1) {
            int64_t by_work = LT_MAX(LT_MIN_TILE_MACS / LT_MAX(W->cols, 1), 16);
            j.row_tile = round_up(LT_MAX((rows + tiles - 1) / tiles, by_work), 16);
        } else {
            j.tok_tile = n > LT_TOK_TILE ? LT_TOK_TILE : n;
            int64_t tok_tiles = (n + j.tok_tile - 1) / j.tok_tile;
            int64_t per_tok = LT_MAX((tiles + tok_tiles - 1) / tok_tiles, 1);
            j.row_tile = round_up((rows + per_tok - 1) / per_tok, 64);
        }
    }
    j.n_row_tiles = (rows + j.row_tile - 1) / j.row_tile;
    int64_t items = j.n_row_tiles * ((n + j.tok_tile - 1) / j.tok_tile);
    if (items == 1) run_tile(&j, 0, 0);
    else lt_parallel_for(items, run_tile, &j);
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

/* head groups: about two per thread (each group decodes the rows once) */
void lt_attention_rows(const float *q, int64_t nh, const lt_kv_fmt *f, int64_t n_first, const uint8_t *const *rows,
                       int64_t n_rows, const float *sink, float scale, int ref, float *o) {
    attn_job j = {lt_kern(), q, sink, f, rows, n_first, n_rows, nh, nh, scale, o, ref};
    int64_t threads = nh * n_rows * f->d >= 2 * LT_MIN_TILE_MACS ? lt_threads_count() : 1;
    j.group = LT_MIN_I64((nh + 2 * threads - 1) / (2 * threads), LT_ATTN_MAX_HEADS);
    if (threads == 1) j.group = LT_MIN_I64(nh, LT_ATTN_MAX_HEADS);
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
