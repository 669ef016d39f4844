/* V4.1 CSA2 / CED sharing (spec 5.1; HF deepseek_v41 as the oracle reads it,
 * tools/oracle/ref_v41.py): who compresses, who scores, who reuses.
 *
 * Roles of a compressed layer (ratio 2 or 1), from the config:
 *   KV source: runs the compressor (no ape, no overlap) on its own input;
 *     each complete group g gives a latent (RMS-normed, not rotated), from
 *     which come the index key k_norm(wk latent) -> RoPE at g*ratio -> FP4
 *     (blocks of 32, power-of-two scales) and the entry RoPE(latent) -> FP4
 *     (blocks of 16, E4M3 scales). Later layers of the group attend these.
 *   Index source: scores the group's keys with its own wq_b / weights_proj
 *     and keeps the top index_topk. "Full" scores every visible entry;
 *     "Reindex" (an index source after the candidate source) scores only the
 *     entries of that token's candidate blocks.
 *   Candidate source: also ranks blocks of candidate_block_size entries by
 *     their best score, forces in the block of the newest visible entry and
 *     keeps the top candidate_topk_blocks blocks, which later Reindex layers
 *     search.
 *   Reuse: any other compressed layer attends the selection of the latest
 *     index source (it is still in the scratch: only index sources write it),
 *     a partially filled final group of a strided schedule included, as in
 *     the oracle and HF's cache path.
 *
 * Partially filled groups: the oracle, like HF's forward, forms an entry only
 * from a complete group (T // ratio entries for T tokens) and a query at
 * position t sees (t + 1) // ratio of them; the tokens of an open group are
 * reachable only through the sliding window. The compressor's pool does the
 * same, so decode and prefill agree.
 *
 * Dimension letters: n tokens, hd head_dim, di index_head_dim, Hi index heads,
 * K index_topk, KB candidate_topk_blocks, bs candidate_block_size. */
#ifndef LT_CSA2_H
#define LT_CSA2_H

#include "attention.h"

enum {
    LT_CSA2_KV_SOURCE = 1,
    LT_CSA2_INDEX_SOURCE = 2,
    LT_CSA2_CANDIDATE_SOURCE = 4,
    LT_CSA2_USES_CANDIDATES = 8   /* an index source after the candidate source (Reindex) */
};

/* The roles of layer l (LT_CSA2_* bits; 0 for sliding-only layers). */
int lt_csa2_roles(const lt_config *cfg, int layer);

/* KV source: appends the entries and index keys that tokens h[n, D] at
 * positions pos0.. complete to the source's cache. */
void lt_csa2_compress(const lt_attention *a, const lt_config *cfg, const lt_rope *rope, const lt_num *nm,
                      lt_attn_cache *src, lt_attn_scratch *s, const float *h, int64_t n, int64_t pos0);

/* Index source: each token's selection (s->idx.sel / n_sel) among the
 * visible entries of the source's keys, from the query latent qr[n, Q];
 * the candidate source also leaves s->idx.cand / n_cand. */
void lt_csa2_select(const lt_attention *a, const lt_config *cfg, const lt_rope *rope, const lt_num *nm,
                    const lt_attn_cache *src, lt_attn_scratch *s, const float *h, const float *qr, int64_t n,
                    int64_t pos0);

#endif
