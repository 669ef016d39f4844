/* Synthetic V4 layers at the real dimensions for lantern bench (bench.h).
 *
 * Every matrix product of a token is here, in the release's weight format:
 * FP8 e4m3 with UE8M0 block scales (attention, shared expert, indexer wq_b),
 * FP4 e2m1 with per-32 scales (routed experts), BF16 (compressors, indexer
 * weights_proj, router gate, head), F32 (mHC mixes). Values are random; only
 * bytes and shapes matter. The elementwise steps between products (norms,
 * RoPE, mHC mixing, SwiGLU) are left out: they touch kilobytes per token
 * against the hundreds of megabytes of weights.
 *
 * Layers are the real layers 2, 3, ... (the first ones with compression and
 * score routing), each with its own kind (bench_arch.c). Routed experts: a
 * pool of the layer's experts is materialised (all of them when memory
 * allows); each decoded token picks n_active distinct ones at random, so it
 * reads fresh expert weights as the real model does. Prefill gives every
 * token its own random experts, groups tokens by expert and runs each expert
 * once over its tokens. */
#include "bench.h"
#include "linear.h"
#include "quant.h"
#include "threads.h"
#include "util.h"
#include "weights.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIRST_LAYER 2
#define FILL_CHUNK ((int64_t)4 << 20)

/* dense products of a layer, in the order a token runs them */
enum {
    W_HC_ATTN,      /* F32 [24, 4D] mHC mixes of the attention site */
    W_WQ_A,         /* FP8 [Q, D] */
    W_WQ_B,         /* FP8 [H*hd, Q] */
    W_WKV,          /* FP8 [hd, D] */
    W_CMP_WKV,      /* BF16 [c*hd, D] compressor (KV sources) */
    W_CMP_WGATE,    /* BF16 [c*hd, D] */
    W_IDX_WQ_B,     /* FP8 [Hi*di, Q] indexer (index sources) */
    W_IDX_PROJ,     /* BF16 [Hi, D] */
    W_IDX_CMP_WKV,  /* BF16 [2*di, D] the indexer's own compressor (V4 CSA) */
    W_IDX_CMP_WGATE,
    W_WO_A,         /* FP8 [G*R, H*hd/G], applied per group */
    W_WO_B,         /* FP8 [D, G*R] */
    W_HC_FFN,       /* F32 [24, 4D] */
    W_GATE,         /* BF16 [E, D] router */
    W_SH_W1,        /* FP8 [I, D] shared expert */
    W_SH_W3,
    W_SH_W2,        /* FP8 [D, I] */
    W_DENSE
};

typedef struct {
    lt_weight w[W_DENSE];     /* rows == 0: absent in this layer */
    lt_weight (*experts)[3];  /* [n_pool]: w1, w3 FP4 [I, D]; w2 FP4 [D, I] */
} bench_layer;

struct lt_bench_model {
    const lt_bench_arch *a;
    int n_layers, n_pool;
    bench_layer *layers;
    lt_weight head;           /* BF16 [vocab, D]; rows == 0 without --head */
    void **allocs;            /* every weight buffer, for free */
    int64_t n_allocs, cap_allocs;
    int64_t max_in, max_out;  /* floats of the largest product input / output per token */
    float *x, *y;             /* decode activations [max_in], [max_out] */
    float *xs, *h, *ys;       /* a token's experts: inputs [k, D], hidden [2, k, I], outputs [k, D] */
    int64_t *off;             /* [k + 1]: expert j's row is j */
    int *perm;                /* [n_pool] expert draw */
    uint64_t rng;
};

/* ---- random weights ----------------------------------------------------- */

/* byte patterns of plausible values: FP8 codes as a trained block's (below),
 * any FP4 codes, scales 2^-7..2^0, BF16/F32 near 2^-7 */
typedef enum { FILL_FP8, FILL_RAW, FILL_SCALE, FILL_BF16, FILL_F32 } fill_kind;

typedef struct {
    uint8_t *p;
    int64_t bytes;
    fill_kind kind;
    uint64_t seed;
} fill_job;

/* FP8 codes drawn like a trained weight block's: normal values whose scale
 * puts the block's largest (4.3 sigma, as for 128 x 128 draws) at 448, the
 * UE8M0 scale's target, rounded to e4m3; so codes below 2^-6 (subnormal)
 * are as rare as in a checkpoint (~1e-4), which the kernels' fast paths
 * rely on. Indexed by 16 random bits: entry u is the normal quantile
 * (u + 1/2) / 2^16, found by bisection on erfc. */
static uint8_t fp8_codes[1 << 16];
static pthread_once_t fp8_codes_once = PTHREAD_ONCE_INIT;

static void fp8_codes_fill(void) {
    const double sigma = 448.0 / 4.3;
    for (int u = 0; u < (1 << 16); u++) {
        double p = (u + 0.5) / (1 << 16), lo = -8.0, hi = 8.0;
        for (int it = 0; it < 40; it++) {
            double mid = 0.5 * (lo + hi);
            if (0.5 * erfc(-mid / sqrt(2.0)) < p) lo = mid;
            else hi = mid;
        }
        fp8_codes[u] = lt_f32_to_fp8_e4m3((float)(0.5 * (lo + hi) * sigma));
    }
}

static void fill_item(void *ctx, int64_t i, int tid) {
    const fill_job *j = ctx;
    (void)tid;
    int64_t lo = i * FILL_CHUNK, hi = LT_MIN_I64(lo + FILL_CHUNK, j->bytes);
    uint64_t s = j->seed ^ (uint64_t)i * 0xD1B54A32D192ED03ull;
    if (j->kind == FILL_FP8) {
        for (int64_t b = lo; b < hi; b += 4) {
            uint64_t v = lt_splitmix64(&s);
            for (int k = 0; k < 4 && b + k < hi; k++) j->p[b + k] = fp8_codes[(v >> (16 * k)) & 0xFFFF];
        }
        return;
    }
    static const uint64_t and_mask[] = {0, ~0ull, 0x0707070707070707ull, 0x80FF80FF80FF80FFull,
                                        0x807FFFFF807FFFFFull};
    static const uint64_t or_mask[] = {0, 0, 0x7878787878787878ull, 0x3C003C003C003C00ull, 0x3C0000003C000000ull};
    for (int64_t b = lo; b < hi; b += 8) {
        uint64_t v = (lt_splitmix64(&s) & and_mask[j->kind]) | or_mask[j->kind];
        memcpy(j->p + b, &v, (size_t)LT_MIN_I64(8, hi - b));
    }
}

static void *alloc_filled(lt_bench_model *m, int64_t bytes, fill_kind kind, lt_error *err) {
    if (m->n_allocs == m->cap_allocs) {
        int64_t cap = m->cap_allocs ? 2 * m->cap_allocs : 256;
        void **a = realloc(m->allocs, (size_t)cap * sizeof *a);
        if (!a) return lt_fail(err, LT_ERR_NOMEM, "bench: out of memory"), NULL;
        m->allocs = a;
        m->cap_allocs = cap;
    }
    uint8_t *p = malloc((size_t)LT_MAX(bytes, 1));
    if (!p) return lt_fail(err, LT_ERR_NOMEM, "bench: out of memory for a %lld-byte weight", (long long)bytes), NULL;
    m->allocs[m->n_allocs++] = p;
    if (kind == FILL_FP8) pthread_once(&fp8_codes_once, fp8_codes_fill);
    fill_job j = {p, bytes, kind, lt_splitmix64(&m->rng)};
    lt_parallel_for((bytes + FILL_CHUNK - 1) / FILL_CHUNK, fill_item, &j);
    return p;
}

static lt_status make_weight(lt_bench_model *m, lt_weight *w, lt_wtype t, int64_t rows, int64_t cols,
                             lt_error *err) {
    int b = m->a->block;
    *w = (lt_weight){.type = t, .rows = rows, .cols = cols, .name = "synthetic"};
    int64_t data = rows * cols, scales = 0;
    fill_kind kind = FILL_F32;
    switch (t) {
    case LT_W_FP8:
        w->block_r = w->block_c = b;
        scales = ((rows + b - 1) / b) * ((cols + b - 1) / b);
        kind = FILL_FP8;
        break;
    case LT_W_FP4:
        w->block_r = 1, w->block_c = 32;
        data /= 2;
        scales = rows * (cols / 32);
        kind = FILL_RAW;
        break;
    case LT_W_BF16: data *= 2, kind = FILL_BF16; break;
    default: data *= 4; break;
    }
    if (!(w->data = alloc_filled(m, data, kind, err))) return LT_ERR_NOMEM;
    if (scales && !(w->scale = alloc_filled(m, scales, FILL_SCALE, err))) return LT_ERR_NOMEM;
    m->max_in = LT_MAX(m->max_in, cols);
    m->max_out = LT_MAX(m->max_out, rows);
    return LT_OK;
}

/* ---- the model ---------------------------------------------------------- */

/* rows x cols of every dense product of real layer l (0 x 0 when absent) */
static void dense_shapes(const lt_bench_arch *a, int l, int64_t shape[W_DENSE][2], lt_wtype type[W_DENSE]) {
    lt_bench_layer_kind k = lt_bench_layer(a, l);
    int64_t D = a->dim, hd = a->head_dim, HD = (int64_t)a->n_heads * hd, GR = (int64_t)a->o_groups * a->o_rank;
    int64_t c = a->v41 ? 1 : (k.ratio == 4 ? 2 : 1); /* compressor width: CSA overlaps two windows */
    int64_t di = a->index_dim, I = a->moe_inter;
    memset(shape, 0, sizeof(int64_t) * W_DENSE * 2);
    static const lt_wtype types[W_DENSE] = {
        [W_HC_ATTN] = LT_W_F32, [W_WQ_A] = LT_W_FP8, [W_WQ_B] = LT_W_FP8, [W_WKV] = LT_W_FP8,
        [W_CMP_WKV] = LT_W_BF16, [W_CMP_WGATE] = LT_W_BF16, [W_IDX_WQ_B] = LT_W_FP8, [W_IDX_PROJ] = LT_W_BF16,
        [W_IDX_CMP_WKV] = LT_W_BF16, [W_IDX_CMP_WGATE] = LT_W_BF16, [W_WO_A] = LT_W_FP8, [W_WO_B] = LT_W_FP8,
        [W_HC_FFN] = LT_W_F32, [W_GATE] = LT_W_BF16, [W_SH_W1] = LT_W_FP8, [W_SH_W3] = LT_W_FP8,
        [W_SH_W2] = LT_W_FP8,
    };
    memcpy(type, types, sizeof types);
#define SET(i, r, cc) (shape[i][0] = (r), shape[i][1] = (cc))
    SET(W_HC_ATTN, 24, 4 * D);
    SET(W_WQ_A, a->q_rank, D);
    SET(W_WQ_B, HD, a->q_rank);
    SET(W_WKV, hd, D);
    if (k.compressor) {
        SET(W_CMP_WKV, c * hd, D);
        if (k.ratio != 1) SET(W_CMP_WGATE, c * hd, D); /* V4.1 ratio 1 has no gate */
    }
    if (k.indexer) {
        SET(W_IDX_WQ_B, (int64_t)a->index_heads * di, a->q_rank);
        SET(W_IDX_PROJ, a->index_heads, D);
        if (!a->v41) SET(W_IDX_CMP_WKV, 2 * di, D), SET(W_IDX_CMP_WGATE, 2 * di, D);
    }
    SET(W_WO_A, GR, HD / a->o_groups);
    SET(W_WO_B, D, GR);
    SET(W_HC_FFN, 24, 4 * D);
    SET(W_GATE, a->n_experts, D);
    SET(W_SH_W1, I, D);
    SET(W_SH_W3, I, D);
    SET(W_SH_W2, D, I);
#undef SET
}

/* stored bytes of a rows x cols weight of type t (data + scales) */
static uint64_t shape_bytes(lt_wtype t, int64_t rows, int64_t cols, int block) {
    uint64_t n = (uint64_t)(rows * cols);
    switch (t) {
    case LT_W_FP8: return n + (uint64_t)(((rows + block - 1) / block) * ((cols + block - 1) / block));
    case LT_W_FP4: return n / 2 + n / 32;
    case LT_W_BF16: return 2 * n;
    default: return 4 * n;
    }
}

static uint64_t expert_bytes(const lt_bench_arch *a) {
    return 3 * shape_bytes(LT_W_FP4, a->moe_inter, a->dim, 32);
}

static uint64_t mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    if (f) fclose(f);
    return (uint64_t)kb << 10;
}

lt_status lt_bench_model_create(lt_bench_model **out, const lt_bench_arch *a, int n_layers, int experts, int head,
                                int verbose, lt_error *err) {
    *out = NULL;
    if (n_layers < 1 || FIRST_LAYER + n_layers > a->n_layers)
        return lt_fail(err, LT_ERR_ARG, "bench: --layers %d must be in [1, %d] for %s", n_layers,
                       a->n_layers - FIRST_LAYER, a->name);
    lt_bench_model *m = lt_calloc(1, sizeof *m, "bench model", err);
    if (!m) return LT_ERR_NOMEM;
    m->a = a;
    m->n_layers = n_layers;
    m->rng = 0x1A2B3C4D5E6F7788ull;
    uint64_t dense = 0;
    for (int l = 0; l < n_layers; l++) {
        int64_t shape[W_DENSE][2];
        lt_wtype type[W_DENSE];
        dense_shapes(a, FIRST_LAYER + l, shape, type);
        for (int i = 0; i < W_DENSE; i++) dense += shape_bytes(type[i], shape[i][0], shape[i][1], a->block);
    }
    if (head) dense += shape_bytes(LT_W_BF16, a->vocab, a->dim, a->block);
    uint64_t budget = mem_available() / 2;
    int64_t fit = budget > dense ? (int64_t)((budget - dense) / (expert_bytes(a) * (uint64_t)n_layers)) : 0;
    m->n_pool = experts > 0 ? experts : (int)LT_MIN_I64(fit, a->n_experts);
    m->n_pool = LT_MAX(LT_MIN(m->n_pool, a->n_experts), a->n_active);
    if (verbose)
        fprintf(stderr, "bench: materialising %d layers of %s with %d of %d routed experts each (%.2f GiB)\n",
                n_layers, a->name, m->n_pool, a->n_experts,
                (double)(dense + (uint64_t)m->n_pool * (uint64_t)n_layers * expert_bytes(a)) / (1 << 30));
    lt_status st = LT_OK;
    m->layers = lt_calloc((size_t)n_layers, sizeof *m->layers, "bench layers", err);
    if (!m->layers) st = LT_ERR_NOMEM;
    for (int l = 0; l < n_layers && st == LT_OK; l++) {
        bench_layer *L = &m->layers[l];
        int64_t shape[W_DENSE][2];
        lt_wtype type[W_DENSE];
        dense_shapes(a, FIRST_LAYER + l, shape, type);
        for (int i = 0; i < W_DENSE && st == LT_OK; i++)
            if (shape[i][0]) st = make_weight(m, &L->w[i], type[i], shape[i][0], shape[i][1], err);
        if (st == LT_OK && !(L->experts = lt_calloc((size_t)m->n_pool, sizeof *L->experts, "bench experts", err)))
            st = LT_ERR_NOMEM;
        for (int e = 0; e < m->n_pool && st == LT_OK; e++) {
            st = make_weight(m, &L->experts[e][0], LT_W_FP4, a->moe_inter, a->dim, err);
            if (st == LT_OK) st = make_weight(m, &L->experts[e][1], LT_W_FP4, a->moe_inter, a->dim, err);
            if (st == LT_OK) st = make_weight(m, &L->experts[e][2], LT_W_FP4, a->dim, a->moe_inter, err);
        }
    }
    if (st == LT_OK && head) st = make_weight(m, &m->head, LT_W_BF16, a->vocab, a->dim, err);
    if (st == LT_OK) {
        m->max_in = LT_MAX(m->max_in, (int64_t)a->n_heads * a->head_dim); /* wo_a's groups read all heads */
        m->x = lt_calloc((size_t)m->max_in, sizeof *m->x, "bench activations", err);
        m->y = lt_calloc((size_t)m->max_out, sizeof *m->y, "bench outputs", err);
        m->xs = lt_calloc((size_t)(a->n_active * a->dim), sizeof *m->xs, "bench expert inputs", err);
        m->h = lt_calloc((size_t)(2 * a->n_active * a->moe_inter), sizeof *m->h, "bench expert hidden", err);
        m->ys = lt_calloc((size_t)(a->n_active * a->dim), sizeof *m->ys, "bench expert outputs", err);
        m->off = lt_calloc((size_t)a->n_active + 1, sizeof *m->off, "bench expert rows", err);
        m->perm = lt_calloc((size_t)m->n_pool, sizeof *m->perm, "bench expert draw", err);
        if (!m->x || !m->y || !m->xs || !m->h || !m->ys || !m->off || !m->perm) st = LT_ERR_NOMEM;
    }
    if (st != LT_OK) {
        lt_bench_model_free(m);
        return st;
    }
    for (int64_t i = 0; i < m->max_in; i++) /* bf16 values, as REFERENCE numerics store activations (wo_a reads them so) */
        m->x[i] = lt_round_bf16((float)(lt_splitmix64(&m->rng) >> 40) * 0x1p-24f - 0.5f);
    for (int e = 0; e < m->n_pool; e++) m->perm[e] = e;
    for (int j = 0; j <= a->n_active; j++) m->off[j] = j;
    *out = m;
    return LT_OK;
}

void lt_bench_model_free(lt_bench_model *m) {
    if (!m) return;
    for (int64_t i = 0; i < m->n_allocs; i++) free(m->allocs[i]);
    free(m->allocs);
    if (m->layers)
        for (int l = 0; l < m->n_layers; l++) free(m->layers[l].experts);
    free(m->layers);
    free(m->x);
    free(m->y);
    free(m->xs);
    free(m->h);
    free(m->ys);
    free(m->off);
    free(m->perm);
    free(m);
}

int lt_bench_model_experts(const lt_bench_model *m) { return m->n_pool; }

uint64_t lt_bench_model_bytes(const lt_bench_model *m) {
    uint64_t b = m->head.rows ? lt_weight_bytes(&m->head) : 0;
    for (int l = 0; l < m->n_layers; l++) {
        for (int i = 0; i < W_DENSE; i++)
            if (m->layers[l].w[i].rows) b += lt_weight_bytes(&m->layers[l].w[i]);
        b += (uint64_t)m->n_pool * expert_bytes(m->a);
    }
    return b;
}

uint64_t lt_bench_decode_bytes(const lt_bench_model *m) {
    uint64_t b = m->head.rows ? lt_weight_bytes(&m->head) : 0;
    for (int l = 0; l < m->n_layers; l++) {
        for (int i = 0; i < W_DENSE; i++)
            if (m->layers[l].w[i].rows) b += lt_weight_bytes(&m->layers[l].w[i]);
        b += (uint64_t)m->a->n_active * expert_bytes(m->a);
    }
    return b;
}

/* ---- running ------------------------------------------------------------ */

/* Rows r0..r1 of Y = X Wᵀ as the default (REFERENCE) numerics run them: an
 * FP8/FP4 weight sees FP8-quantised activation blocks (spec 3.4), except
 * wo_a (act_quant 0: the reference reads it as bf16) */
static void product(const lt_bench_model *m, const lt_weight *w, int quantise, const float *X, int64_t n, float *Y,
                    int64_t ldy, int64_t r0, int64_t r1) {
    int act = quantise && (w->type == LT_W_FP8 || w->type == LT_W_FP4) ? m->a->block : 0;
    lt_linear_rows(w, X, n, Y, ldy, r0, r1, act);
}

static void linear(const lt_bench_model *m, const lt_weight *w, const float *X, int64_t n, float *Y) {
    product(m, w, 1, X, n, Y, w->rows, 0, w->rows);
}

/* independent products as one parallel loop, quantised as product() does
 * when `quantise` */
static void batch(const lt_bench_model *m, lt_product *p, int count, int quantise) {
    for (int i = 0; i < count; i++)
        p[i].act_block = quantise && (p[i].W->type == LT_W_FP8 || p[i].W->type == LT_W_FP4) ? m->a->block : 0;
    lt_linear_batch(p, count);
}

/* the experts ids[0..ne) over their tokens: rows off[j]..off[j + 1] of X
 * (n x D) -> H1, H3 (n x I) -> Y (n x D); w1 and w3 of all of them as one
 * parallel loop, then w2, as the forward pass batches them (moe.c) */
static void experts(const lt_bench_model *m, const bench_layer *L, const int *ids, const int64_t *off, int ne,
                    const float *X, float *H1, float *H3, float *Y) {
    const int64_t D = m->a->dim, I = m->a->moe_inter;
    lt_product p[LT_BATCH_MAX];
    if (ne <= 0) return;
    for (int j = 0; j < ne; j++) {
        const lt_weight *w = L->experts[ids[j]];
        int64_t t = off[j], nt = off[j + 1] - off[j];
        p[2 * j] = (lt_product){&w[0], X + t * D, nt, H1 + t * I, I, 0, I, 0};
        p[2 * j + 1] = (lt_product){&w[1], X + t * D, nt, H3 + t * I, I, 0, I, 0};
    }
    batch(m, p, 2 * ne, 1);
    for (int j = 0; j < ne; j++)
        p[j] = (lt_product){&L->experts[ids[j]][2], H1 + off[j] * I, off[j + 1] - off[j], Y + off[j] * D, D, 0, D, 0};
    batch(m, p, ne, 1);
}

/* Y[n, rows] = X[n, cols] Wᵀ for every dense product of the layer; X holds
 * n * max_in floats, Y n * max_out. Returns the flops. */
static double dense_products(const lt_bench_model *m, const bench_layer *L, const float *X, float *Y, int64_t n) {
    double flops = 0.0;
    for (int i = 0; i < W_DENSE; i++) {
        const lt_weight *w = &L->w[i];
        if (!w->rows) continue;
        if (i == W_WO_A) { /* block-diagonal: group g reads its heads' slice; decode batches them (attention.c) */
            int64_t G = m->a->o_groups, R = w->rows / G;
            lt_product p[LT_BATCH_MAX];
            for (int64_t g = 0; g < G; g++) {
                p[g] = (lt_product){w, X + g * n * w->cols, n, Y, w->rows, g * R, (g + 1) * R, 0};
                if (n > 1 || G > LT_BATCH_MAX) batch(m, &p[g], 1, 0);
            }
            if (n == 1 && G <= LT_BATCH_MAX) batch(m, p, (int)G, 0);
            flops += 2.0 * (double)(n * R * w->cols * G);
        } else {
            linear(m, w, X, n, Y);
            flops += 2.0 * (double)(n * w->rows * w->cols);
        }
    }
    return flops;
}

/* the first k entries of perm become k distinct random experts */
static void draw_experts(lt_bench_model *m, int k) {
    for (int i = 0; i < k; i++) {
        int j = i + (int)(lt_splitmix64(&m->rng) % (uint64_t)(m->n_pool - i)), t = m->perm[i];
        m->perm[i] = m->perm[j];
        m->perm[j] = t;
    }
}

/* one decoded token; with caches, each layer's attention runs after its
 * products, timed into r */
static void decode_token(lt_bench_model *m, lt_bench_attn *const *attn, lt_bench_ctx_result *r) {
    const int k = m->a->n_active;
    const int64_t D = m->a->dim;
    for (int l = 0; l < m->n_layers; l++) {
        const bench_layer *L = &m->layers[l];
        dense_products(m, L, m->x, m->y, 1);
        if (attn) lt_bench_attn_token(attn[l], &r->index_seconds, &r->attn_seconds, &r->kv_bytes_read);
        draw_experts(m, k);
        for (int j = 0; j < k; j++) memcpy(m->xs + j * D, m->x, sizeof(float) * (size_t)D); /* as moe.c gathers */
        experts(m, L, m->perm, m->off, k, m->xs, m->h, m->h + k * m->a->moe_inter, m->ys);
    }
    if (m->head.rows) linear(m, &m->head, m->x, 1, m->y);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define MAX_TOKENS 256

static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof t[0], cmp_double);
    return t[n / 2];
}

void lt_bench_decode(lt_bench_model *m, int tokens, lt_bench_probe *p, lt_bench_machine *mach, double *fastest,
                     double *med) {
    double t[MAX_TOKENS];
    tokens = LT_MAX(1, LT_MIN(tokens, MAX_TOKENS));
    decode_token(m, NULL, NULL); /* warm-up: threads awake, page tables touched */
    for (int i = 0; i < tokens; i++) {
        mach->read_gbs = LT_MAX(mach->read_gbs, lt_bench_probe_read(p)); /* also flushes the caches */
        double t0 = lt_time_s();
        decode_token(m, NULL, NULL);
        t[i] = lt_time_s() - t0;
    }
    *med = median(t, tokens);
    *fastest = t[0];
}

lt_status lt_bench_decode_ctx(lt_bench_model *m, const int64_t *ctx, int n, int tokens, lt_bench_probe *p,
                              lt_bench_machine *mach, lt_bench_ctx_result *r, lt_error *err) {
    lt_bench_attn **attn = lt_calloc((size_t)(n * m->n_layers), sizeof *attn, "bench caches", err);
    double *t = lt_calloc((size_t)(n * MAX_TOKENS), sizeof *t, "bench times", err);
    lt_status st = attn && t ? LT_OK : LT_ERR_NOMEM;
    for (int c = 0; c < n && st == LT_OK; c++)
        for (int l = 0; l < m->n_layers && st == LT_OK; l++)
            st = lt_bench_attn_create(&attn[c * m->n_layers + l], m->a, FIRST_LAYER + l, ctx[c], err);
    if (st == LT_OK) {
        tokens = LT_MAX(1, LT_MIN(tokens, MAX_TOKENS));
        for (int c = 0; c < n; c++) {
            r[c] = (lt_bench_ctx_result){.seconds = 1e30};
            lt_bench_ctx_result warm = {0};
            decode_token(m, attn + c * m->n_layers, &warm);
        }
        for (int i = 0; i < tokens; i++)
            for (int c = 0; c < n; c++) {
                lt_bench_ctx_result one = {0};
                mach->read_gbs = LT_MAX(mach->read_gbs, lt_bench_probe_read(p));
                double t0 = lt_time_s();
                decode_token(m, attn + c * m->n_layers, &one);
                one.seconds = t[c * MAX_TOKENS + i] = lt_time_s() - t0;
                if (one.seconds < r[c].seconds) r[c] = one;
            }
        for (int c = 0; c < n; c++) r[c].median_seconds = median(t + c * MAX_TOKENS, tokens);
    }
    for (int i = 0; attn && i < n * m->n_layers; i++) lt_bench_attn_free(attn[i]);
    free(attn);
    free(t);
    return st;
}

/* prefill buffers: token activations and the routed experts' working set */
typedef struct {
    float *X, *Y;        /* [n, max_in], [n, max_out] */
    float *xe, *h1, *h3; /* [n, D], [n, I], [n, I] a batch of experts' tokens */
    float *acc;          /* [n, D] routed output */
    int *route;          /* [n, k] experts of each token */
    int *order, *start;  /* tokens sorted by expert; [n_pool + 1] offsets */
} prefill_buf;

static void prefill_free(prefill_buf *b) {
    free(b->X), free(b->Y), free(b->xe), free(b->h1), free(b->h3), free(b->acc);
    free(b->route), free(b->order), free(b->start);
}

static double routed_prefill(lt_bench_model *m, const bench_layer *L, prefill_buf *b, int64_t n,
                             uint64_t *bytes) {
    const int k = m->a->n_active;
    const int64_t D = m->a->dim, I = m->a->moe_inter;
    double flops = 0.0;
    memset(b->start, 0, sizeof(int) * (size_t)(m->n_pool + 1));
    for (int64_t t = 0; t < n; t++) {
        draw_experts(m, k);
        for (int i = 0; i < k; i++) b->route[t * k + i] = m->perm[i], b->start[m->perm[i] + 1]++;
    }
    for (int e = 0; e < m->n_pool; e++) b->start[e + 1] += b->start[e];
    for (int64_t t = 0; t < n * k; t++) b->order[b->start[b->route[t]]++] = (int)(t / k); /* counting sort */
    for (int e = m->n_pool; e > 0; e--) b->start[e] = b->start[e - 1];
    b->start[0] = 0;
    memset(b->acc, 0, sizeof(float) * (size_t)(n * D));
    int ids[LT_BATCH_MAX / 2];
    int64_t off[LT_BATCH_MAX / 2 + 1];
    for (int e = 0; e < m->n_pool;) { /* batches of consecutive experts whose tokens fit n rows, as moe.c */
        int ne = 0;
        off[0] = 0;
        for (; e < m->n_pool && ne < LT_BATCH_MAX / 2; e++) {
            int64_t nt = b->start[e + 1] - b->start[e];
            if (!nt) continue;
            if (off[ne] + nt > n) break;
            for (int64_t i = 0; i < nt; i++)
                memcpy(b->xe + (off[ne] + i) * D, b->X + (int64_t)b->order[b->start[e] + i] * D, sizeof(float) * (size_t)D);
            ids[ne] = e;
            off[ne + 1] = off[ne] + nt;
            ne++;
            flops += 2.0 * 3.0 * (double)(nt * I * D);
            *bytes += expert_bytes(m->a);
        }
        experts(m, L, ids, off, ne, b->xe, b->h1, b->h3, b->xe); /* w2 overwrites the inputs */
        for (int j = 0; j < ne; j++)
            for (int64_t i = 0; i < off[j + 1] - off[j]; i++) {
                float *o = b->acc + (int64_t)b->order[b->start[ids[j]] + i] * D;
                for (int64_t c = 0; c < D; c++) o[c] += b->xe[(off[j] + i) * D + c];
            }
    }
    return flops;
}

lt_status lt_bench_prefill(lt_bench_model *m, int64_t n, lt_bench_probe *p, lt_bench_machine *mach,
                           lt_bench_prefill_result *r, lt_error *err) {
    const int64_t D = m->a->dim, I = m->a->moe_inter;
    prefill_buf b = {
        malloc(sizeof(float) * (size_t)(n * m->max_in)), malloc(sizeof(float) * (size_t)(n * m->max_out)),
        malloc(sizeof(float) * (size_t)(n * D)),         malloc(sizeof(float) * (size_t)(n * I)),
        malloc(sizeof(float) * (size_t)(n * I)),         malloc(sizeof(float) * (size_t)(n * D)),
        malloc(sizeof(int) * (size_t)(n * m->a->n_active)), malloc(sizeof(int) * (size_t)(n * m->a->n_active)),
        malloc(sizeof(int) * (size_t)(m->n_pool + 1)),
    };
    if (!b.X || !b.Y || !b.xe || !b.h1 || !b.h3 || !b.acc || !b.route || !b.order || !b.start) {
        prefill_free(&b);
        return lt_fail(err, LT_ERR_NOMEM, "bench: out of memory for a %lld-token prefill", (long long)n);
    }
    for (int64_t t = 0; t < n; t++) memcpy(b.X + t * m->max_in, m->x, sizeof(float) * (size_t)m->max_in);
    *r = (lt_bench_prefill_result){.seconds = 1e30};
    mach->fma_gflops = LT_MAX(mach->fma_gflops, lt_bench_probe_fma(p));
    for (int run = 0; run < LT_BENCH_PREFILL_RUNS; run++) {
        double t0 = lt_time_s(), flops = 0.0;
        uint64_t bytes = 0;
        for (int l = 0; l < m->n_layers; l++) {
            const bench_layer *L = &m->layers[l];
            flops += dense_products(m, L, b.X, b.Y, n);
            for (int i = 0; i < W_DENSE; i++)
                if (L->w[i].rows) bytes += lt_weight_bytes(&L->w[i]);
            flops += routed_prefill(m, L, &b, n, &bytes);
        }
        if (m->head.rows) { /* logits of the last token only */
            linear(m, &m->head, b.X + (n - 1) * D, 1, b.Y);
            flops += 2.0 * (double)(m->head.rows * D);
            bytes += lt_weight_bytes(&m->head);
        }
        double t = lt_time_s() - t0;
        r->flops = flops, r->weight_bytes = bytes;
        r->seconds = LT_MIN(r->seconds, t), r->slowest_seconds = LT_MAX(r->slowest_seconds, t);
    }
    mach->fma_gflops = LT_MAX(mach->fma_gflops, lt_bench_probe_fma(p));
    prefill_free(&b);
    return LT_OK;
}
