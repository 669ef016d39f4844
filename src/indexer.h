/* Lightning indexer of CSA layers (spec 4.3 steps 13-17).
 *
 * Keys: the indexer's own overlapping ratio-4 compressor at index_head_dim.
 * Queries: wq_b(qr) per index head, rotated at the token position.
 * Score of entry w for a token: sum_h wt_h * ReLU(q_h . k_w), with head
 * weights wt = weights_proj(h) * di^-1/2 * Hi^-1/2. Only complete, visible
 * entries (w < (pos + 1) / 4) compete; the top index_topk are kept (all of
 * them when fewer are visible). Ties go to the lower entry index.
 * REFERENCE mode adds the Hadamard rotation and FP4 round trips of q and k.
 * V4.1 (src/csa2.h) reuses the queries, head weights, scoring and top-k;
 * its keys come from the KV source's latent (wk, k_norm), and its FP4
 * round trips of q and k (no Hadamard) belong to the model (nm->qat).
 *
 * Dimension letters: n tokens, Hi index heads, di index head dim, Q q rank,
 * K index_topk. */
#ifndef LT_INDEXER_H
#define LT_INDEXER_H

#include "compressor.h"

typedef struct {
    lt_weight wq_b;          /* FP8 [Hi*di, Q] */
    lt_weight weights_proj;  /* BF16 [Hi, D] */
    lt_compressor cmp;       /* V4: ratio 4, overlap, d = di */
    lt_weight wk;            /* V4.1 KV sources: BF16 [di, hd] keys from the latent */
    lt_vec k_norm;           /* V4.1 KV sources: [di] */
} lt_indexer;

/* Per-sequence state: the compressed keys as stored (lt_indexer_store) and
 * the compressor's open windows (V4). */
typedef struct {
    lt_weight keys;  /* [n_keys = keys.rows, di]: FP4 or F32 */
    lt_pool pool;
} lt_indexer_cache;

typedef struct {
    float *q;         /* [n, Hi*di] index queries */
    float *wt;        /* [n, Hi] head weights */
    float *score;     /* [n_ctx / 4] one token's entry scores */
    uint8_t *qs;      /* [Hi * di * 4] one token's queries as stored */
    lt_weight qw;     /* the view of them (lt_indexer_query) */
    float *heap_s;    /* [max(K, KB)] selection heap: scores */
    int32_t *heap_i;  /* [max(K, KB)] selection heap: entry indices */
    int32_t *sel;     /* [n, K] selected entries per token, ascending */
    int32_t *n_sel;   /* [n] how many */
    /* V4.1 two-level selection (KB candidate_topk_blocks, bs candidate_block_size) */
    int32_t *cand;    /* [n, KB] candidate blocks per token, ascending */
    int32_t *n_cand;  /* [n] how many */
    float *blk;       /* [n_ctx / bs + 1] one token's block scores */
    int32_t *ids;     /* [KB * bs] one token's candidate entries */
} lt_indexer_scratch;

/* Extends the key cache with the entries tokens h[n, D] complete, then
 * selects each token's entries from its query latent qr[n, Q]; results in
 * s->sel / s->n_sel. cmp_scratch and cs as in lt_compressor_forward; keys
 * holds the new keys [n / 4 + 1, di] before they are stored. */
void lt_indexer_forward(const lt_indexer *ix, const lt_config *cfg, const lt_rope *rope, const lt_num *nm,
                        lt_indexer_cache *cache, lt_indexer_scratch *s, const float *h, const float *qr,
                        int64_t n, int64_t pos0, float *cmp_scratch, float *cs, float *keys);

/* Index queries q[n, Hi*di] = wq_b(qr) per head, rotated at the token
 * positions pos0.., then quantised (see lt_indexer_quantise). */
void lt_indexer_queries(const lt_indexer *ix, const lt_config *cfg, const lt_rope *rope, const lt_num *nm,
                        const float *qr, int64_t n, int64_t pos0, float *q, float *cs);

/* Head weights wt[n, Hi] = weights_proj(h) * di^-1/2 * Hi^-1/2. */
void lt_indexer_weights(const lt_indexer *ix, const lt_config *cfg, const lt_num *nm, const float *h, int64_t n,
                        float *wt);

/* The round trip of index q/k rows x[n, di]: V4 REFERENCE Hadamard + FP4,
 * V4.1 (nm->qat) FP4 only; nothing otherwise. The FP4 step is left to the
 * storage where it stores FP4 (lt_indexer_store, lt_indexer_query). */
void lt_indexer_quantise(const lt_num *nm, float *x, int64_t n, int64_t di);

/* Index keys and queries are stored as their round trip leaves them: FP4
 * with UE8M0 scales per 32 (68 B per 128-wide key, the weight format the
 * kernels read) wherever the FP4 round trip applies to whole blocks (V4
 * REFERENCE, V4.1), else F32. The scores then run on the kernel table's
 * index_score: lt_indexer_scores. */
int lt_indexer_fp4(const lt_num *nm, int64_t di);
int64_t lt_indexer_key_bytes(const lt_num *nm, int64_t di); /* one stored key */

/* An empty key store over buffers for up to n keys (data: n * di * 4 bytes
 * room, scale: n * di / 32). */
void lt_indexer_cache_init(lt_indexer_cache *c, const lt_num *nm, int64_t di, void *data, uint8_t *scale);

/* Appends m quantised keys x[m, di] (lt_indexer_quantise done); for FP4
 * storage this is their round trip. */
void lt_indexer_store(lt_indexer_cache *c, const float *x, int64_t m);

/* One token's quantised queries q[Hi, di] (lt_indexer_quantise done),
 * stored like the keys in s->qs, viewed by s->qw. */
void lt_indexer_query(const lt_indexer_cache *c, lt_indexer_scratch *s, const float *q, int64_t Hi);

/* That token's scores score[j] = sum_h wt_h ReLU(q_h . keys[j]) for keys j in
 * [j0, j1): the kernel table's index_score across the pool (REFERENCE: with
 * the official Indexer's bf16 roundings, V4 and V4.1). */
void lt_indexer_scores(const lt_num *nm, const lt_indexer_cache *c, lt_indexer_scratch *s, const float *wt, int64_t j0,
                       int64_t j1);

/* The top-k of one token: the k best of score[0..nv) (or all nv when fewer),
 * written ascending to sel; returns the count. heap_s/heap_i hold k. */
int32_t lt_indexer_topk(const float *score, int64_t nv, int32_t k, float *heap_s, int32_t *heap_i, int32_t *sel);

#endif
