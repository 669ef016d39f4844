/* V4.1 CSA2 / CED sharing (spec 5.1): KV-source compression with index keys,
 * Full and Reindex scoring, and the two-level candidate selection. */
#include "csa2.h"
#include "kernels.h"
#include "util.h"

#include <math.h>

int lt_csa2_roles(const lt_config *cfg, int layer) {
    if (cfg->arch != LT_ARCH_V41 || cfg->compress_ratios[layer] == 0) return 0;
    int roles = lt_config_kv_source(cfg, layer) == layer ? LT_CSA2_KV_SOURCE : 0, cand = cfg->candidate_source_layer_id;
    if (lt_config_index_source(cfg, layer) != layer) return roles;
    roles |= LT_CSA2_INDEX_SOURCE;
    if (layer == cand) roles |= LT_CSA2_CANDIDATE_SOURCE;
    else if (cand >= 0 && cand < layer) roles |= LT_CSA2_USES_CANDIDATES;
    return roles;
}

void lt_csa2_compress(const lt_attention *a, const lt_config *cfg, const lt_rope *rope, const lt_num *nm,
                      lt_attn_cache *src, lt_attn_scratch *s, const float *h, int64_t n, int64_t pos0) {
    int64_t hd = cfg->head_dim, di = cfg->index_head_dim, rd = rope->dim, first = src->n_cmp;
    float eps = (float)cfg->rms_norm_eps;
    int64_t m = lt_compressor_forward(&a->cmp, NULL, eps, nm, &src->pool, h, n, pos0, s->cmp, s->cs, s->ent, 0);
    if (m == 0) return;
    float *latent = s->ent, *keys = s->cmp; /* the compressor is done with its scratch */
    /* the index keys read the latents before their rotation */
    lt_num_linear(nm, &a->idx.wk, latent, m, keys, LT_LIN_QUANT);
    for (int64_t g = 0; g < m; g++) {
        float *k = keys + g * di, *e = latent + g * hd;
        lt_kern()->rmsnorm(k, k, &a->idx.k_norm, di, eps);
        lt_num_store(nm, k, di);
        lt_rope_angles(rope, (first + g) * a->ratio, s->cs); /* a group rotates at its first position */
        lt_kern()->rope(k + di - rd, s->cs, (int)rd, 0);
        lt_kern()->rope(e + hd - rd, s->cs, (int)rd, 0);
    }
    lt_num_store(nm, keys, m * di);
    lt_num_store(nm, latent, m * hd);
    lt_indexer_quantise(nm, keys, m, di);
    lt_indexer_store(&src->idx, keys, m);
    lt_attention_store_entries(src, s, m, hd); /* the FP4 round trip with E4M3 scales per 16 */
}

/* Level one at the candidate source: block b scores the best of its
 * entries among the nv visible ones; the newest visible entry's block is
 * forced in; the kb best blocks go to out, ascending. Returns the count. */
static int32_t candidate_blocks(const float *score, int64_t nv, int64_t bs, int32_t kb, lt_indexer_scratch *x,
                                int32_t *out) {
    if (nv == 0) return 0;
    int64_t nb = (nv + bs - 1) / bs;
    for (int64_t b = 0; b < nb; b++) {
        float best = -INFINITY;
        for (int64_t w = b * bs; w < nv && w < (b + 1) * bs; w++) best = score[w] > best ? score[w] : best;
        x->blk[b] = best;
    }
    x->blk[nb - 1] = INFINITY;
    return lt_indexer_topk(x->blk, nb, kb, x->heap_s, x->heap_i, out);
}

/* The visible entries of a token's candidate blocks, ascending; returns the count. */
static int64_t candidate_entries(const int32_t *blocks, int32_t n_blocks, int64_t bs, int64_t nv, int32_t *ids) {
    int64_t k = 0;
    for (int32_t i = 0; i < n_blocks; i++)
        for (int64_t w = blocks[i] * bs; w < nv && w < (blocks[i] + 1) * bs; w++) ids[k++] = (int32_t)w;
    return k;
}

void lt_csa2_select(const lt_attention *a, const lt_config *cfg, const lt_rope *rope, const lt_num *nm,
                    const lt_attn_cache *src, lt_attn_scratch *s, const float *h, const float *qr, int64_t n,
                    int64_t pos0) {
    int64_t di = cfg->index_head_dim, Hi = cfg->index_n_heads, bs = cfg->candidate_block_size;
    int32_t K = cfg->index_topk, KB = cfg->candidate_topk_blocks;
    lt_indexer_scratch *x = &s->idx;
    lt_indexer_queries(&a->idx, cfg, rope, nm, qr, n, pos0, x->q, s->cs);
    lt_indexer_weights(&a->idx, cfg, nm, h, n, x->wt);
    for (int64_t t = 0; t < n; t++) {
        int64_t nv = (pos0 + t + 1) / a->ratio;
        const float *wt = x->wt + t * Hi;
        int32_t *sel = x->sel + t * K;
        lt_indexer_query(&src->idx, x, x->q + t * Hi * di, Hi);
        if (a->csa2 & LT_CSA2_USES_CANDIDATES) { /* Reindex: only the candidate entries compete */
            int64_t nc = candidate_entries(x->cand + t * KB, x->n_cand[t], bs, nv, x->ids);
            for (int32_t b = 0; b < x->n_cand[t]; b++) {
                int64_t j0 = x->cand[t * KB + b] * bs;
                lt_indexer_scores(nm, &src->idx, x, wt, j0, LT_MIN_I64(j0 + bs, nv));
            }
            for (int64_t i = 0; i < nc; i++) x->score[i] = x->score[x->ids[i]]; /* ids[i] >= i: in place */
            x->n_sel[t] = lt_indexer_topk(x->score, nc, K, x->heap_s, x->heap_i, sel);
            for (int32_t i = 0; i < x->n_sel[t]; i++) sel[i] = x->ids[sel[i]]; /* ascending stays ascending */
            continue;
        }
        lt_indexer_scores(nm, &src->idx, x, wt, 0, nv); /* Full */
        x->n_sel[t] = lt_indexer_topk(x->score, nv, K, x->heap_s, x->heap_i, sel);
        if (a->csa2 & LT_CSA2_CANDIDATE_SOURCE)
            x->n_cand[t] = candidate_blocks(x->score, nv, bs, KB, x, x->cand + t * KB);
    }
}
