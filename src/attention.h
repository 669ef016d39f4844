/* V4 attention of one layer, every kind by compress ratio (spec 4.3, 3.6):
 * ratio 0 sliding window only; 4 CSA (overlapping compressor + lightning
 * indexer); any other ratio HCA (non-overlapping compressor, all visible
 * entries). Every layer also attends its sliding window.
 *
 * Multi-query attention with one shared K=V head of head_dim: low-rank q
 * (wq_a, q_norm, wq_b) with a parameter-free per-head RMS rescale, kv =
 * kv_norm(wkv h), partial interleaved RoPE on the last rope_dim channels,
 * a learned sink per head in the softmax denominator, inverse RoPE on the
 * output, then the grouped low-rank output (wo_a per group, wo_b).
 *
 * Each query GATHERS only its rows (window + selected or visible compressed
 * entries): O(window + top-k) per query, never a dense masked matrix.
 *
 * V4.1 CSA2 (spec 5.1, src/csa2.h) on the same path: no per-head q rescale;
 * the window KV's FP8 round trip covers the whole vector in blocks of 32;
 * every compressed layer attends an index selection of its KV source's
 * entries; the QAT round trips are part of the model (nm->qat).
 *
 * Dimension letters: n tokens, D hidden, H heads, hd head_dim, rd rope dim,
 * Q q_lora_rank, G o_groups, R o_lora_rank, W sliding window. */
#ifndef LT_ATTENTION_H
#define LT_ATTENTION_H

#include "compressor.h"
#include "indexer.h"
#include "kvrow.h"

typedef struct {
    int ratio;             /* compress ratio of the layer: 0, 4 (CSA) or other (HCA); V4.1: 0, 2, 1 */
    int v41;               /* V4.1 CSA2 attention */
    int indexed;           /* attends an index selection: V4 CSA, every V4.1 compressed layer */
    int kv_source;         /* the layer whose compressed entries it attends (itself in V4); -1: none */
    int csa2;              /* V4.1 roles, LT_CSA2_* bits (src/csa2.h) */
    lt_weight wq_a;        /* FP8 [Q, D] */
    lt_vec q_norm;         /* [Q] */
    lt_weight wq_b;        /* FP8 [H*hd, Q] */
    lt_weight wkv;         /* FP8 [hd, D] */
    lt_vec kv_norm;        /* [hd] */
    lt_vec sink;           /* F32 [H] */
    lt_weight wo_a;        /* FP8 [G*R, H*hd/G] */
    lt_weight wo_b;        /* FP8 [D, G*R] */
    lt_compressor cmp;     /* V4 ratio > 0; V4.1 KV sources */
    lt_indexer idx;        /* V4 ratio == 4; V4.1 KV sources (wk, k_norm) and index sources */
} lt_attention;

/* Per-sequence state of one layer's attention (spec 4.8). Rows are stored
 * in the formats of src/kvrow.h (lt_attention_formats). */
typedef struct {
    lt_kv_fmt win_fmt, cmp_fmt;
    uint8_t *win;          /* [W] ring rows: the kv of position p at row p % W */
    uint8_t *cmp;          /* [n_ctx / ratio] compressed entry rows (V4.1: KV sources only) */
    int64_t n_cmp;
    lt_pool pool;          /* the compressor's open windows */
    lt_indexer_cache idx;  /* V4 CSA; V4.1 KV sources (keys only, no pool) */
} lt_attn_cache;

/* Work below which a loop stays on the calling thread (multiply-adds). */
#define LT_PAR_MIN_MACS (64 * 1024)

/* Scratch shared by all layers, sized for n_batch tokens. */
typedef struct {
    float *qr;             /* [n, Q] */
    float *q;              /* [n, H*hd] */
    float *kv;             /* [n, hd] */
    uint8_t *kvp;          /* [n] the chunk's kv rows as stored (win_fmt) */
    float *ent;            /* [n + 1, max(hd, di)] new compressed entries (or index keys) before storage */
    float *o;              /* [n, H*hd] */
    float *og;             /* [n, H*hd/G] one group's heads, gathered */
    float *y;              /* [n, G*R] */
    float *cmp;            /* [2 * n * 2*hd] compressor projections */
    float *cs;             /* [rd] cos/sin */
    const uint8_t **rows;  /* [max_rows] one query's gathered K=V rows */
    float *sink;           /* [H] the layer's sinks as fp32 */
    int64_t max_rows;
    lt_indexer_scratch idx;
} lt_attn_scratch;

/* out[n, D] = attention of the normed inputs h[n, D] at positions pos0..,
 * appending to the layer's caches; src is the cache of its KV source (the
 * layer's own cache in V4 and for V4.1 sources). Selections stay in s->idx. */
void lt_attention_forward(const lt_attention *a, const lt_config *cfg, const lt_rope *rope, const lt_num *nm,
                          lt_attn_cache *cache, lt_attn_cache *src, lt_attn_scratch *s, const float *h, int64_t n,
                          int64_t pos0, float *out);

/* Stores the m compressed entries in s->ent as the cache's rows n_cmp..
 * (the storage is the round trip, kvrow.h). */
void lt_attention_store_entries(lt_attn_cache *cache, const lt_attn_scratch *s, int64_t m, int64_t hd);

/* The storage formats of a layer's window and compressed rows under the
 * numerics nm: lossless for what the model's round trips leave (kvrow.h). */
void lt_attention_formats(const lt_config *cfg, const lt_num *nm, lt_kv_fmt *win, lt_kv_fmt *cmp);

/* KV cache bytes one more token adds (spec 4.8, 5.1): a stored compressed
 * row per `ratio` tokens on every layer that owns compressed KV (V4.1: the
 * KV sources, whose entries the other layers share), plus an index key on
 * CSA layers (V4.1: every KV source). The window ring is a constant. */
double lt_kv_bytes_per_token(const lt_config *c, const lt_num *nm);

#endif
