/* V4.1 Engram (spec 5.3): compressed token map, numpy-exact multipliers,
 * prime buckets, the rolling n-gram hash with its position history, the
 * table lookup and gate, and row prefetch. The numpy generator lives in
 * engram_rng.c, the token map in engram_map.c, the benchmark in engram_bench.c.
 *
 * The arbiter is HF transformers' deepseek_v41 (modeling_deepseek_v41.py,
 * commit 0a2080b4); tests/test_engram.c checks every part against vectors
 * made by tools/oracle/make_engram_vectors.py from that code. It agrees with
 * spec 5.3 except on two points, where this file does:
 *   - HF calls the layer without a token mask (it has no vision path), so its
 *     gate is never shut; dead (image) tokens here get gate 0 as 5.3 says,
 *     and are DEAD in the hash exactly as in HF's hash state;
 *   - HF never rounds the gathered rows to bf16 (5.3 step 2 does); the rows
 *     are fp8 times a power of two, exact in bf16, so it makes no difference.
 * The map is computed at load from the tokenizer rather than shipped (5.3
 * step 1 suggests shipping it): it equals HF's entry for entry on the real
 * V4.1 tokenizer (the test), and it follows any other tokenizer. */
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

typedef __uint128_t u128;

/* ==== multipliers and primes (5.3 Hashing 3, 5) ========================== */

void lt_engram_multipliers(int layer_id, int64_t n_classes, int n, int64_t *mult) {
    int64_t bound = LT_MAX(1, INT64_MAX / n_classes / 2);
    lt_pcg64 g;
    lt_pcg64_seed(&g, 10007ULL * (uint64_t)layer_id);
    lt_pcg64_integers(&g, 0, bound, n, mult);
    for (int i = 0; i < n; i++) mult[i] = 2 * mult[i] + 1;
}

static uint64_t mulmod(uint64_t a, uint64_t b, uint64_t m) { return (uint64_t)((u128)a * b % m); }

static uint64_t powmod(uint64_t a, uint64_t e, uint64_t m) {
    uint64_t r = 1;
    for (a %= m; e; e >>= 1, a = mulmod(a, a, m))
        if (e & 1) r = mulmod(r, a, m);
    return r;
}

/* Miller-Rabin with the first twelve prime bases: exact for all 64-bit n */
static int is_prime(uint64_t n) {
    static const uint64_t bases[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37};
    if (n < 2) return 0;
    for (int i = 0; i < 12; i++)
        if (n % bases[i] == 0) return n == bases[i];
    uint64_t d = n - 1;
    int s = 0;
    for (; !(d & 1); s++) d >>= 1;
    for (int i = 0; i < 12; i++) {
        uint64_t x = powmod(bases[i], d, n);
        if (x == 1 || x == n - 1) continue;
        int r = 1;
        for (; r < s && (x = mulmod(x, x, n)) != n - 1; r++) {}
        if (r == s) return 0;
    }
    return 1;
}

/* HF EngramLayout: for each layer, n-gram size and head, the next prime
 * above the previous one, restarting at engram_vocab_size for every n-gram
 * size and skipping primes already taken. The taken primes are always the
 * smallest ones >= engram_vocab_size, so the restart lands just past them:
 * the walk is simply the consecutive primes from engram_vocab_size on. */
static lt_status layout_primes(const lt_config *c, int64_t n, int64_t *prime, lt_error *err) {
    uint64_t p = (uint64_t)c->engram_vocab_size - 1;
    for (int64_t i = 0; i < n; i++) {
        do p++;
        while (p < INT64_MAX && !is_prime(p));
        if (p >= INT64_MAX)
            return lt_fail(err, LT_ERR_CONFIG, "engram_vocab_size %lld leaves no room for %lld int64 primes",
                           (long long)c->engram_vocab_size, (long long)n);
        prime[i] = (int64_t)p;
    }
    return LT_OK;
}

/* offsets within each layer's table, and each table's size against the config */
static lt_status layout_offsets(lt_engram_hasher *h, const lt_config *c, lt_error *err) {
    for (int l = 0; l < h->n_layers; l++) {
        int64_t total = 0, rows = c->engram_num_embeddings[l];
        const int64_t *prime = h->prime + l * h->n_cols;
        int j = 0;
        for (; j < h->n_cols && prime[j] <= rows - total; j++) {
            h->offset[l * h->n_cols + j] = total;
            total += prime[j];
        }
        if (j < h->n_cols || total != rows)
            return lt_fail(err, LT_ERR_CONFIG,
                           "engram layer %d: its %d bucket primes from engram_vocab_size %lld sum to %s%lld, "
                           "but engram_num_embeddings is %lld",
                           c->engram_layer_ids[l], h->n_cols, (long long)c->engram_vocab_size,
                           j < h->n_cols ? "more than " : "", (long long)(j < h->n_cols ? rows : total), (long long)rows);
    }
    return LT_OK;
}

/* ==== the hasher ========================================================== */

static lt_status hasher_map(lt_engram_hasher *h, const lt_config *c, const lt_tokenizer *t, lt_error *err) {
    h->n_vocab = lt_tokenizer_vocab_size(t);
    h->token_map = lt_calloc((size_t)h->n_vocab, sizeof *h->token_map, "Engram token map", err);
    if (!h->token_map) return LT_ERR_NOMEM;
    lt_status st = lt_engram_token_map(t, h->token_map, &h->n_classes, err);
    if (st != LT_OK) return st;
    if (h->n_classes != c->engram_compressed_vocab_size)
        return lt_fail(err, LT_ERR_CONFIG,
                       "the tokenizer gives %lld Engram token classes but engram_compressed_vocab_size is %lld "
                       "(the hash multipliers derive from it: a wrong tokenizer for this model?)",
                       (long long)h->n_classes, (long long)c->engram_compressed_vocab_size);
    if (c->engram_pad_token_id >= h->n_vocab)
        return lt_fail(err, LT_ERR_CONFIG, "engram_pad_token_id %d is outside the vocabulary [0, %d)",
                       c->engram_pad_token_id, h->n_vocab);
    h->pad = h->token_map[c->engram_pad_token_id];
    return LT_OK;
}

lt_status lt_engram_hasher_init(lt_engram_hasher *h, const lt_config *c, const lt_tokenizer *t, lt_error *err) {
    *h = (lt_engram_hasher){.n_layers = c->n_engram_layers, .max_ngram = c->engram_max_ngram_size,
                            .n_heads = c->engram_n_heads};
    h->n_cols = (h->max_ngram - 1) * h->n_heads;
    if (h->n_layers < 1 || h->max_ngram < 2 || h->max_ngram > LT_ENGRAM_MAX_NGRAM || h->n_heads < 1)
        return lt_fail(err, LT_ERR_CONFIG,
                       "Engram needs engram_layer_ids (have %d), engram_max_ngram_size in [2, %d] (is %d) and "
                       "engram_n_heads >= 1 (is %d)",
                       h->n_layers, LT_ENGRAM_MAX_NGRAM, h->max_ngram, h->n_heads);
    size_t cells = (size_t)h->n_layers * (size_t)h->n_cols;
    h->mult = lt_calloc((size_t)h->n_layers * (size_t)h->max_ngram + 2 * cells, sizeof *h->mult, "Engram layout", err);
    lt_status st = h->mult ? hasher_map(h, c, t, err) : LT_ERR_NOMEM;
    if (st == LT_OK) {
        h->prime = h->mult + (size_t)h->n_layers * (size_t)h->max_ngram;
        h->offset = h->prime + cells;
        for (int l = 0; l < h->n_layers; l++)
            lt_engram_multipliers(c->engram_layer_ids[l], h->n_classes, h->max_ngram, h->mult + l * h->max_ngram);
        st = layout_primes(c, (int64_t)cells, h->prime, err);
    }
    if (st == LT_OK) st = layout_offsets(h, c, err);
    if (st != LT_OK) lt_engram_hasher_free(h);
    return st;
}

void lt_engram_hasher_free(lt_engram_hasher *h) {
    free(h->token_map);
    free(h->mult);
    *h = (lt_engram_hasher){0};
}

/* ==== hashing a sequence (5.3 Hashing 2, 4) ============================== */

void lt_engram_history_init(lt_engram_history *hs, int32_t *buf, int64_t cap) {
    hs->tok = buf;
    hs->cap = cap;
    for (int64_t i = 0; i < cap; i++) buf[i] = LT_ENGRAM_DEAD;
}

/* The window of position p: tok[k] = class of p - k; from the first look-back
 * that falls before position 0 or on a DEAD entry on, the pad class. */
static void window(const lt_engram_hasher *h, const lt_engram_history *hs, int64_t p, int64_t *tok) {
    int blocked = 0;
    for (int k = 0; k < h->max_ngram; k++) {
        blocked = blocked || p < k || hs->tok[p - k] == LT_ENGRAM_DEAD;
        tok[k] = blocked ? h->pad : hs->tok[p - k];
    }
}

/* Layer l's ids of one position: r = tok[0]*m[0] ^ ... ^ tok[n-1]*m[n-1]
 * for the n-gram of n tokens, then r mod each of its heads' primes plus the
 * bucket offset. Products are below 2^63 by the choice of the multipliers,
 * so r is never negative and % is the reference's floor modulo. */
static void hash_position(const lt_engram_hasher *h, int l, const int64_t *tok, int64_t *ids) {
    const int64_t *m = h->mult + l * h->max_ngram, *prime = h->prime + l * h->n_cols;
    const int64_t *offset = h->offset + l * h->n_cols;
    int64_t r = tok[0] * m[0];
    for (int n = 1, j = 0; n < h->max_ngram; n++) {
        r ^= tok[n] * m[n];
        for (int head = 0; head < h->n_heads; head++, j++) ids[j] = r % prime[j] + offset[j];
    }
}

lt_status lt_engram_hash(const lt_engram_hasher *h, lt_engram_history *hs, const int32_t *tokens,
                         const uint8_t *live, int64_t pos0, int64_t n, int64_t *ids, lt_error *err) {
    if (pos0 < 0 || n < 0 || pos0 > hs->cap - n)
        return lt_fail(err, LT_ERR_ARG, "Engram: positions [%lld, %lld) do not fit the history of %lld",
                       (long long)pos0, (long long)(pos0 + n), (long long)hs->cap);
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= h->n_vocab)
            return lt_fail(err, LT_ERR_ARG, "Engram: token id %d is not in the vocabulary [0, %d)", tokens[i], h->n_vocab);
    for (int64_t i = 0; i < n; i++)
        hs->tok[pos0 + i] = live && !live[i] ? LT_ENGRAM_DEAD : h->token_map[tokens[i]];
    int64_t tok[LT_ENGRAM_MAX_NGRAM];
    for (int64_t i = 0; i < n; i++) {
        window(h, hs, pos0 + i, tok);
        for (int l = 0; l < h->n_layers; l++) hash_position(h, l, tok, ids + (l * n + i) * h->n_cols);
    }
    return LT_OK;
}

/* ==== one Engram layer: binding ========================================== */

static const lt_tensor *find_table(const lt_store *s, const char *pre, const char *what, lt_dtype dt, int64_t d0,
                                   int64_t d1, lt_error *err) {
    char name[128];
    snprintf(name, sizeof name, "%s%s", pre, what);
    const lt_tensor *t = lt_store_find(s, name);
    if (!t) lt_fail(err, LT_ERR_INVENTORY, "checkpoint has no tensor '%s'", name);
    else if (t->dtype != dt || t->ndim != 2 || t->shape[0] != d0 || t->shape[1] != d1) {
        lt_fail(err, LT_ERR_INVENTORY, "tensor '%s' must be %s [%lld, %lld]", name, lt_dtype_name(dt), (long long)d0,
                (long long)d1);
        t = NULL;
    }
    return t;
}

static lt_status bind_gate_weight(lt_vec *v, const lt_store *s, const char *pre, const char *what, int64_t n,
                                  lt_error *err) {
    char name[128];
    snprintf(name, sizeof name, "%s%s", pre, what);
    const lt_tensor *t = lt_store_find(s, name);
    if (!t) return lt_fail(err, LT_ERR_INVENTORY, "checkpoint has no tensor '%s'", name);
    if ((t->dtype != LT_DT_F32 && t->dtype != LT_DT_BF16) || lt_tensor_numel(t) != n)
        return lt_fail(err, LT_ERR_INVENTORY, "tensor '%s' is %s with %lld elements but must be F32 or BF16 with %lld",
                       name, lt_dtype_name(t->dtype), (long long)lt_tensor_numel(t), (long long)n);
    *v = (lt_vec){.dtype = t->dtype, .data = t->data, .n = n, .name = t->name};
    return LT_OK;
}

/* Rows are read at random: without this, a fault reads ahead around the row. */
static void advise_random(const void *p, uint64_t n) {
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a = (uintptr_t)p & ~(page - 1);
    madvise((void *)a, (uintptr_t)p + n - a, MADV_RANDOM); /* advice only: failure changes nothing */
}

lt_status lt_engram_layer_bind(lt_engram_layer *e, const lt_store *s, const lt_config *c, int layer, lt_error *err) {
    int slot = -1;
    for (int i = 0; i < c->n_engram_layers; i++)
        if (c->engram_layer_ids[i] == layer) slot = i;
    if (slot < 0) return lt_fail(err, LT_ERR_ARG, "layer %d is not in engram_layer_ids", layer);
    *e = (lt_engram_layer){.layer = layer, .slot = slot, .hc = c->hc_mult, .dim = c->dim, .hd = c->engram_head_dim,
                           .n_cols = (c->engram_max_ngram_size - 1) * c->engram_n_heads,
                           .n_rows = c->engram_num_embeddings[slot], .eps = (float)c->rms_norm_eps};
    if (e->hd % 32)
        return lt_fail(err, LT_ERR_CONFIG, "engram_head_dim is %d but must be a multiple of 32", e->hd);
    char pre[64];
    snprintf(pre, sizeof pre, "layers.%d.engram.", layer);
    const lt_tensor *rows = find_table(s, pre, "embed.weight", LT_DT_F8_E4M3, e->n_rows, e->hd, err);
    const lt_tensor *scales = rows ? find_table(s, pre, "embed.scale", LT_DT_F8_E8M0, e->n_rows, e->hd / 32, err) : NULL;
    if (!scales) return LT_ERR_INVENTORY;
    e->rows = rows->data;
    e->scales = scales->data;
    char wkv[80];
    snprintf(wkv, sizeof wkv, "%swkv", pre);
    int64_t D = e->dim, hcD = (int64_t)e->hc * D;
    lt_status st = lt_weight_bind(&e->wkv, s, c, wkv, hcD + D, (int64_t)e->n_cols * e->hd, err);
    if (st == LT_OK && e->wkv.type != LT_W_FP8)
        st = lt_fail(err, LT_ERR_INVENTORY, "tensor '%s' must be F8_E4M3 (Engram wkv)", e->wkv.name);
    if (st == LT_OK) st = bind_gate_weight(&e->q_weight, s, pre, "q_weight", hcD, err);
    if (st == LT_OK) st = bind_gate_weight(&e->k_weight, s, pre, "k_weight", hcD, err);
    if (st != LT_OK) return st;
    advise_random(e->rows, rows->nbytes);
    advise_random(e->scales, scales->nbytes);
    return LT_OK;
}

/* ==== lookup and gate (5.3 Lookup, Gate; HF DeepseekV41Engram.forward) ==== */

typedef struct {
    const lt_engram_layer *e;
    const int64_t *ids;
    const uint8_t *live;
    float *X, *emb, *kv;
    float *gate; /* [n, hc] or NULL */
} forward_job;

/* Token t's G rows, ids[t, G], into emb[t, G * hd]: fp8 * 2^(scale - 127)
 * per 32 columns. The products are exact in fp32 and in bf16 (3 mantissa
 * bits), so the reference's bf16 cast of the rows changes nothing. */
static void gather_token(void *ctx, int64_t t, int tid) {
    const forward_job *j = ctx;
    const lt_engram_layer *e = j->e;
    (void)tid;
    for (int64_t col = t * e->n_cols; col < (t + 1) * e->n_cols; col++) {
        const uint8_t *q = e->rows + j->ids[col] * e->hd, *s = e->scales + j->ids[col] * (e->hd / 32);
        float *out = j->emb + col * e->hd;
        for (int b = 0; b < e->hd / 32; b++) {
            float scale = lt_ue8m0_to_f32(s[b]);
            for (int c = 0; c < 32; c++) out[32 * b + c] = lt_fp8_e4m3_to_f32(q[32 * b + c]) * scale;
        }
    }
}

/* Stream i's gate from its state x[D] and key[D], in fp32 like HF (the
 * element products rounded to fp32, the sums accumulated in double):
 * dot = sum(x * w * key) * rsqrt(mean x^2 + eps) * rsqrt(mean key^2 + eps)
 * / sqrt(D) with w = q_weight * k_weight, gate = sigmoid(signed sqrt(dot)). */
static float stream_gate(const lt_engram_layer *e, int i, const float *x, const float *key) {
    double xx = 0, kk = 0, xwk = 0;
    for (int d = 0; d < e->dim; d++) {
        int64_t at = (int64_t)i * e->dim + d;
        float w = lt_vec_at(&e->q_weight, at) * lt_vec_at(&e->k_weight, at);
        float xw = x[d] * w, x2 = x[d] * x[d], k2 = key[d] * key[d];
        xx += x2;
        kk += k2;
        xwk += xw * key[d];
    }
    float rstd = 1.0f / sqrtf((float)(xx / e->dim) + e->eps) * (1.0f / sqrtf((float)(kk / e->dim) + e->eps));
    float dot = (float)xwk * rstd * (float)(1.0 / sqrt((double)e->dim));
    return lt_sigmoid(copysignf(sqrtf(fmaxf(fabsf(dot), 1e-6f)), dot));
}

/* X_i += gate_i * value for the streams of token t; dead tokens pass untouched */
static void gate_token(void *ctx, int64_t t, int tid) {
    const forward_job *j = ctx;
    const lt_engram_layer *e = j->e;
    (void)tid;
    if (j->live && !j->live[t]) {
        if (j->gate) memset(j->gate + t * e->hc, 0, (size_t)e->hc * sizeof *j->gate);
        return;
    }
    int64_t D = e->dim;
    const float *kv = j->kv + t * (e->hc + 1) * D, *value = kv + e->hc * D;
    float *x = j->X + t * e->hc * D;
    for (int i = 0; i < e->hc; i++) {
        float g = stream_gate(e, i, x + i * D, kv + i * D);
        if (j->gate) j->gate[t * e->hc + i] = g;
        for (int64_t d = 0; d < D; d++) x[i * D + d] += g * value[d];
    }
}

/* Lookup 2: the G rows of each of n tokens into emb[n, G * hd]. A prompt's
 * tokens go to the pool; a decode step's 24 rows (microseconds once
 * prefetched) stay on the caller, as handing them out would cost more. */
void lt_engram_lookup(const lt_engram_layer *e, const int64_t *ids, int64_t n, float *emb) {
    forward_job j = {.e = e, .ids = ids, .emb = emb};
    lt_parallel_for(n, gather_token, &j);
}

/* Lookup 3 and Gate: kv = wkv(emb), then the gated writes into X */
static void mix(const lt_engram_layer *e, const lt_num *nm, float *X, const uint8_t *live, int64_t n, float *emb,
                float *kv, float *gate) {
    forward_job j = {.e = e, .live = live, .X = X, .emb = emb, .kv = kv, .gate = gate};
    lt_num_store(nm, emb, n * e->n_cols * e->hd);
    lt_num_linear(nm, &e->wkv, emb, n, kv, LT_LIN_QUANT);
    lt_parallel_for(n, gate_token, &j);
    lt_num_store(nm, X, n * e->hc * e->dim);
}

void lt_engram_mix(const lt_engram_layer *e, const lt_num *nm, float *X, const uint8_t *live, int64_t n,
                      float *emb, float *kv) {
    mix(e, nm, X, live, n, emb, kv, NULL);
}

void lt_engram_forward(const lt_engram_layer *e, const lt_num *nm, float *X, const int64_t *ids,
                       const uint8_t *live, int64_t n, float *emb, float *kv) {
    lt_engram_forward_gates(e, nm, X, ids, live, n, emb, kv, NULL);
}

void lt_engram_forward_gates(const lt_engram_layer *e, const lt_num *nm, float *X, const int64_t *ids,
                             const uint8_t *live, int64_t n, float *emb, float *kv, float *gate) {
    lt_engram_lookup(e, ids, n, emb);
    mix(e, nm, X, live, n, emb, kv, gate);
}

/* ==== prefetch ============================================================= */

#define PREFETCH_SLOTS 4

typedef struct {
    const lt_engram_layer *e;
    int64_t *ids;  /* [max_ids] */
    int64_t n_ids;
} prefetch_job;

struct lt_engram_prefetcher {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    prefetch_job jobs[PREFETCH_SLOTS]; /* a ring: head is running or next */
    int head, count, stop;
    int64_t max_ids;
};

static void advise_willneed(const void *p, uint64_t n, uintptr_t page) {
    uintptr_t a = (uintptr_t)p & ~(page - 1);
    madvise((void *)a, (uintptr_t)p + n - a, MADV_WILLNEED);
}

/* All reads are started first (the kernel reads them in parallel), then
 * every row is touched, so the layer finds it in its page table. */
static void run_prefetch(const prefetch_job *job) {
    const lt_engram_layer *e = job->e;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    int64_t srow = e->hd / 32;
    for (int64_t i = 0; i < job->n_ids; i++) {
        advise_willneed(e->rows + job->ids[i] * e->hd, (uint64_t)e->hd, page);
        advise_willneed(e->scales + job->ids[i] * srow, (uint64_t)srow, page);
    }
    for (int64_t i = 0; i < job->n_ids; i++) {
        const volatile uint8_t *r = e->rows + job->ids[i] * e->hd, *s = e->scales + job->ids[i] * srow;
        (void)r[0];
        (void)r[e->hd - 1];
        (void)s[0];
        (void)s[srow - 1];
    }
}

static void *prefetch_worker(void *arg) {
    lt_engram_prefetcher *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->count && !p->stop) pthread_cond_wait(&p->wake, &p->mu);
        if (!p->count) break;
        prefetch_job *job = &p->jobs[p->head];
        pthread_mutex_unlock(&p->mu);
        run_prefetch(job);
        pthread_mutex_lock(&p->mu);
        p->head = (p->head + 1) % PREFETCH_SLOTS;
        p->count--;
        pthread_cond_broadcast(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

lt_status lt_engram_prefetcher_create(lt_engram_prefetcher **out, int64_t max_ids, lt_error *err) {
    *out = NULL;
    if (max_ids < 1) return lt_fail(err, LT_ERR_ARG, "Engram prefetcher: max_ids is %lld but must be >= 1", (long long)max_ids);
    lt_engram_prefetcher *p = lt_calloc(1, sizeof *p, "Engram prefetcher", err);
    int64_t *ids = p ? lt_calloc((size_t)(PREFETCH_SLOTS * max_ids), sizeof *ids, "Engram prefetch ids", err) : NULL;
    if (!ids) {
        free(p);
        return LT_ERR_NOMEM;
    }
    for (int i = 0; i < PREFETCH_SLOTS; i++) p->jobs[i].ids = ids + i * max_ids;
    p->max_ids = max_ids;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    int rc = pthread_create(&p->thread, NULL, prefetch_worker, p);
    if (rc) {
        free(ids);
        free(p);
        return lt_fail(err, LT_ERR_NOMEM, "Engram prefetcher: cannot start its thread: %s", strerror(rc));
    }
    *out = p;
    return LT_OK;
}

void lt_engram_prefetcher_free(lt_engram_prefetcher *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p->jobs[0].ids);
    free(p);
}

void lt_engram_prefetch(lt_engram_prefetcher *p, const lt_engram_layer *e, const int64_t *ids, int64_t n) {
    pthread_mutex_lock(&p->mu);
    while (p->count == PREFETCH_SLOTS) pthread_cond_wait(&p->done, &p->mu);
    prefetch_job *job = &p->jobs[(p->head + p->count) % PREFETCH_SLOTS];
    job->e = e;
    job->n_ids = LT_MIN_I64(n * e->n_cols, p->max_ids);
    memcpy(job->ids, ids, (size_t)job->n_ids * sizeof *ids);
    p->count++;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->mu);
}

void lt_engram_prefetch_wait(lt_engram_prefetcher *p) {
    pthread_mutex_lock(&p->mu);
    while (p->count) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
