/* KV compressor: softmax-gated pooling of token projections into long-range
 * entries (spec 4.3 steps 8-11, cache semantics 4.8).
 *
 * Every token s contributes A_s = wkv . h_s and Z_s = wgate . h_s (fp32).
 *   HCA (ratio m != 4): entry w pools tokens [m w, m w + m) per channel,
 *     softmax over the m slots of Z + ape[slot].
 *   CSA (m == 4, overlap): the projections are twice as wide; entry w pools
 *     8 slots, the first half (Ca) of window w-1 and the second half (Cb) of
 *     window w. Window 0's Ca slots are empty (gate -inf).
 * An entry is complete when token m w + m - 1 arrives; it is then RMS-normed
 * and rotated at position m w. The open windows live in an lt_pool, so
 * prefill and token-by-token decode give identical entries.
 *   V4.1 (spec 5.1, KV sources only): m = 2 pools like HCA without ape; m = 1
 *     has no gate (one slot: the entry is the projection itself). The
 *     latent is returned before RoPE; the caller rotates it.
 *
 * The main attention's compressor has width d = head_dim; the indexer's has
 * d = index_head_dim. Dimension letters: D hidden, c = 1 + overlap. */
#ifndef LT_COMPRESSOR_H
#define LT_COMPRESSOR_H

#include "numerics.h"
#include "ops.h"
#include "rope.h"

typedef struct {
    int ratio;           /* m: tokens per entry */
    int overlap;         /* 1 for CSA (m == 4) */
    int64_t d;           /* entry width */
    lt_weight wkv;       /* BF16 [c*d, D] */
    lt_weight wgate;     /* BF16 [c*d, D]; V4.1 ratio 1: none (data NULL, gate 0) */
    lt_vec ape;          /* F32 [m, c*d]: per-slot gate bias; V4.1: none (n 0) */
    lt_vec norm;         /* [d] */
} lt_compressor;

/* The open window(s) of one compressor. */
typedef struct {
    float *kv;     /* [c*m, c*d] projections A of the buffered tokens */
    float *score;  /* [c*m, c*d] gates Z + ape; -inf marks an empty slot */
} lt_pool;

static inline int64_t lt_compressor_slots(const lt_compressor *w) { return (int64_t)(1 + w->overlap) * w->ratio; }
static inline int64_t lt_compressor_width(const lt_compressor *w) { return (int64_t)(1 + w->overlap) * w->d; }

/* Empties the pool (no tokens seen). */
void lt_pool_reset(const lt_compressor *w, lt_pool *p);

/* Adds the token at absolute position pos (A, Z: [c*d]). When pos closes a
 * window ((pos + 1) % m == 0) writes the pooled, not yet normalised entry
 * [d] to out and returns 1; otherwise returns 0. */
int lt_pool_push(const lt_compressor *w, lt_pool *p, const float *A, const float *Z, int64_t pos, float *out);

/* Runs n tokens h[n, D] at positions pos0.. through the compressor and
 * appends every entry they complete, normalised (eps) and rotated (not
 * when rope is NULL), to cache[d] rows from row n_cached on. Returns the
 * new entry count. scratch holds 2 * n * c*d floats, cs rope->dim floats. */
int64_t lt_compressor_forward(const lt_compressor *w, const lt_rope *rope, float eps, const lt_num *nm,
                              lt_pool *p, const float *h, int64_t n, int64_t pos0,
                              float *scratch, float *cs, float *cache, int64_t n_cached);

#endif
