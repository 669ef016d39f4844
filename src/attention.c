/* V4 attention of one layer (spec 4.3, 3.6): queries, the shared K=V head,
 * compressed entries, sparse gathered attention with sinks, grouped output. */
#include "attention.h"
#include "csa2.h"
#include "kernels.h"
#include "linear.h"

#include <math.h>
#include <string.h>

/* steps 1-4: qr = q_norm(wq_a h); q = wq_b qr per head, RMS-rescaled (not
 * in V4.1) and rotated at the token position */
static void queries(const lt_attention *a, const lt_config *cfg, const lt_rope *rope, const lt_num *nm,
                    lt_attn_scratch *s, const float *h, int64_t n, int64_t pos0) {
    int64_t Q = cfg->q_lora_rank, H = cfg->n_heads, hd = cfg->head_dim, rd = rope->dim;
    float eps = (float)cfg->rms_norm_eps;
    lt_num_linear(nm, &a->wq_a, h, n, s->qr, LT_LIN_QUANT);
    for (int64_t t = 0; t < n; t++) lt_kern()->rmsnorm(s->qr + t * Q, s->qr + t * Q, &a->q_norm, Q, eps);
    lt_num_store(nm, s->qr, n * Q);
    lt_num_linear(nm, &a->wq_b, s->qr, n, s->q, LT_LIN_QUANT);
    for (int64_t t = 0; t < n; t++) {
        lt_rope_angles(rope, pos0 + t, s->cs);
        for (int64_t i = 0; i < H; i++) {
            float *qh = s->q + (t * H + i) * hd;
            if (!a->v41) lt_num_q_rescale(nm, qh, hd, eps);
            lt_kern()->rope(qh + hd - rd, s->cs, (int)rd, 0);
        }
    }
    lt_num_store(nm, s->q, n * H * hd);
}

/* steps 5-6: kv = kv_norm(wkv h), rotated; storing the rows (s->kvp) is
 * the FP8 round trip of the nope part in blocks of 64 (V4.1: of the whole
 * vector in blocks of 32), see lt_attention_formats */
static void shared_kv(const lt_attention *a, const lt_config *cfg, const lt_rope *rope, const lt_num *nm,
                      const lt_attn_cache *cache, lt_attn_scratch *s, const float *h, int64_t n, int64_t pos0) {
    int64_t hd = cfg->head_dim, rd = rope->dim;
    lt_num_linear(nm, &a->wkv, h, n, s->kv, LT_LIN_QUANT);
    for (int64_t t = 0; t < n; t++) {
        float *kv = s->kv + t * hd;
        lt_kern()->rmsnorm(kv, kv, &a->kv_norm, hd, (float)cfg->rms_norm_eps);
        lt_num_store(nm, kv, hd);
        lt_rope_angles(rope, pos0 + t, s->cs);
        lt_kern()->rope(kv + hd - rd, s->cs, (int)rd, 0);
    }
    lt_num_store(nm, s->kv, n * hd);
    for (int64_t t = 0; t < n; t++) lt_kv_pack(&cache->win_fmt, s->kv + t * hd, s->kvp + t * cache->win_fmt.bytes);
}

void lt_attention_formats(const lt_config *cfg, const lt_num *nm, lt_kv_fmt *win, lt_kv_fmt *cmp) {
    int64_t hd = cfg->head_dim;
    if (cfg->arch == LT_ARCH_V41) { /* the model's own round trips (nm->qat), where they apply */
        *win = lt_num_qat_on(nm, hd, 32) ? lt_kv_fmt_fp8(hd, hd, 32) : lt_kv_fmt_f32(hd);
        *cmp = lt_num_qat_on(nm, hd, 16) ? lt_kv_fmt_fp4(hd, 16) : lt_kv_fmt_f32(hd);
        return;
    }
    *win = *cmp = lt_num_ref(nm) ? lt_kv_fmt_fp8(hd, hd - cfg->rope_dim, 64) : lt_kv_fmt_f32(hd);
}

double lt_kv_bytes_per_token(const lt_config *c, const lt_num *nm) {
    lt_kv_fmt win, cmp;
    lt_attention_formats(c, nm, &win, &cmp);
    double bytes = 0;
    for (int l = 0; l < c->n_layers; l++) {
        int r = c->compress_ratios[l];
        if (r == 0 || lt_config_kv_source(c, l) != l) continue;
        bytes += (double)cmp.bytes / r;
        if (c->arch == LT_ARCH_V41 || r == 4) bytes += (double)lt_indexer_key_bytes(nm, c->index_head_dim) / r;
    }
    return bytes;
}

/* stores the m entries of s->ent as cache rows n_cmp.. (the round trip) */
void lt_attention_store_entries(lt_attn_cache *cache, const lt_attn_scratch *s, int64_t m, int64_t hd) {
    for (int64_t i = 0; i < m; i++)
        lt_kv_pack(&cache->cmp_fmt, s->ent + i * hd, cache->cmp + (cache->n_cmp + i) * cache->cmp_fmt.bytes);
    cache->n_cmp += m;
}

/* steps 8-17: new compressed entries (stored with the FP8 round trip of
 * their nope part) and, for CSA, the indexer's selection */
static void compressed_entries(const lt_attention *a, const lt_config *cfg, const lt_rope *rope, const lt_num *nm,
                               lt_attn_cache *cache, lt_attn_scratch *s, const float *h, int64_t n, int64_t pos0) {
    int64_t m = lt_compressor_forward(&a->cmp, rope, (float)cfg->rms_norm_eps, nm, &cache->pool, h, n, pos0, s->cmp,
                                      s->cs, s->ent, 0);
    lt_attention_store_entries(cache, s, m, cfg->head_dim);
    if (a->ratio == 4)
        lt_indexer_forward(&a->idx, cfg, rope, nm, &cache->idx, &s->idx, h, s->qr, n, pos0, s->cmp, s->cs, s->ent);
}

/* V4.1 (src/csa2.h): a KV source compresses, an index source selects, a
 * reuse layer attends the latest index source's selection, still in s->idx */
static void csa2_entries(const lt_attention *a, const lt_config *cfg, const lt_rope *rope, const lt_num *nm,
                         lt_attn_cache *src, lt_attn_scratch *s, const float *h, int64_t n, int64_t pos0) {
    if (a->csa2 & LT_CSA2_KV_SOURCE) lt_csa2_compress(a, cfg, rope, nm, src, s, h, n, pos0);
    if (a->csa2 & LT_CSA2_INDEX_SOURCE) lt_csa2_select(a, cfg, rope, nm, src, s, h, s->qr, n, pos0);
}

/* step 18: the K=V rows of token t (chunk row), position p: its window
 * (from this chunk or the ring), then the selected (CSA, V4.1) or all
 * visible (HCA) compressed entries of the KV source's cache.
 * REFERENCE (V4): the rows are the slots of the official index row, in its
 * order, because sparse_attn's online softmax blocks them by slot (the
 * kernel table's attn_rows): Attention.forward puts get_window_topk_idxs first -
 * min(T, W) slots in a prefill from position 0 (T tokens), W in decode -
 * whose positions past p are -1 after the valid ones (NULL rows here), then
 * the compressed part (HCA entries ascending, CSA the indexer's order), whose
 * own -1 padding comes last and changes nothing. A call at pos0 > 0 takes
 * the decode layout; a prompt split into chunks shorter than W gets its
 * first chunk's width, where the official prefill would use min(T, W). */
static int64_t gather_rows(const lt_attention *a, const lt_config *cfg, const lt_num *nm, const lt_attn_cache *cache,
                           const lt_attn_cache *src, lt_attn_scratch *s, int64_t t, int64_t n, int64_t pos0,
                           int64_t *n_win) {
    int64_t W = cfg->sliding_window, p = pos0 + t, k = 0, wb = cache->win_fmt.bytes, cb = src->cmp_fmt.bytes;
    for (int64_t q = p - W + 1 < 0 ? 0 : p - W + 1; q <= p; q++)
        s->rows[k++] = q >= pos0 ? s->kvp + (q - pos0) * wb : cache->win + (q % W) * wb;
    if (lt_num_ref(nm) && !a->v41)
        for (int64_t width = pos0 == 0 && n < W ? n : W; k < width;) s->rows[k++] = NULL;
    *n_win = k;
    if (a->indexed) {
        const int32_t *sel = s->idx.sel + t * cfg->index_topk;
        for (int32_t i = 0; i < s->idx.n_sel[t]; i++) s->rows[k++] = src->cmp + (int64_t)sel[i] * cb;
    } else if (a->ratio > 0) {
        for (int64_t w = 0; w < (p + 1) / a->ratio; w++) s->rows[k++] = src->cmp + w * cb;
    }
    return k;
}

/* steps 18-19 for every token: attention over its rows (the kernel's
 * online softmax, REFERENCE: with the official kernel's roundings), then the
 * inverse rotation at the query position */
static void attend(const lt_attention *a, const lt_config *cfg, const lt_rope *rope, const lt_num *nm,
                   const lt_attn_cache *cache, const lt_attn_cache *src, lt_attn_scratch *s, int64_t n,
                   int64_t pos0) {
    int64_t H = cfg->n_heads, hd = cfg->head_dim, rd = rope->dim;
    const lt_kv_fmt fmt[2] = {cache->win_fmt, src->cmp_fmt};
    float scale = (float)(1.0 / sqrt((double)hd));
    for (int64_t h = 0; h < H; h++) s->sink[h] = lt_vec_at(&a->sink, h);
    for (int64_t t = 0; t < n; t++) {
        int64_t n_win, n_rows = gather_rows(a, cfg, nm, cache, src, s, t, n, pos0, &n_win);
        float *o = s->o + t * H * hd;
        lt_attention_rows(s->q + t * H * hd, H, fmt, n_win, s->rows, n_rows, s->sink, scale, lt_num_ref(nm), o);
        lt_num_store(nm, o, H * hd);
        lt_rope_angles(rope, pos0 + t, s->cs);
        for (int64_t h = 0; h < H; h++) lt_kern()->rope(o + h * hd + hd - rd, s->cs, (int)rd, 1);
        lt_num_store(nm, o, H * hd);
    }
}

/* the ring keeps the last W positions for the next call */
static void remember_window(const lt_config *cfg, lt_attn_cache *cache, const lt_attn_scratch *s, int64_t n,
                            int64_t pos0) {
    int64_t W = cfg->sliding_window, wb = cache->win_fmt.bytes;
    for (int64_t q = (n > W ? pos0 + n - W : pos0); q < pos0 + n; q++)
        memcpy(cache->win + (q % W) * wb, s->kvp + (q - pos0) * wb, (size_t)wb);
}

/* steps 20-22: y_g = wo_a[g] . (heads of group g); out = wo_b . y */
static void grouped_output(const lt_attention *a, const lt_config *cfg, const lt_num *nm, lt_attn_scratch *s,
                           int64_t n, float *out) {
    int64_t G = cfg->o_groups, R = cfg->o_lora_rank, gw = (int64_t)cfg->n_heads * cfg->head_dim / G;
    if (n == 1 && G <= LT_BATCH_MAX) { /* decode: each group's heads lie together in o; one parallel loop */
        lt_product p[LT_BATCH_MAX];
        for (int64_t g = 0; g < G; g++) p[g] = (lt_product){&a->wo_a, s->o + g * gw, 1, s->y, G * R, g * R, (g + 1) * R, 0};
        lt_num_linear_batch(nm, p, (int)G, LT_LIN_BF16);
    } else {
        for (int64_t g = 0; g < G; g++) {
            for (int64_t t = 0; t < n; t++)
                memcpy(s->og + t * gw, s->o + (t * G + g) * gw, (size_t)gw * sizeof *s->og);
            lt_num_linear_rows(nm, &a->wo_a, s->og, n, s->y, G * R, g * R, (g + 1) * R, LT_LIN_BF16);
        }
    }
    lt_num_linear(nm, &a->wo_b, s->y, n, out, LT_LIN_QUANT);
}

void lt_attention_forward(const lt_attention *a, const lt_config *cfg, const lt_rope *rope, const lt_num *nm,
                          lt_attn_cache *cache, lt_attn_cache *src, lt_attn_scratch *s, const float *h, int64_t n,
                          int64_t pos0, float *out) {
    queries(a, cfg, rope, nm, s, h, n, pos0);
    shared_kv(a, cfg, rope, nm, cache, s, h, n, pos0);
    if (a->v41) csa2_entries(a, cfg, rope, nm, src, s, h, n, pos0);
    else if (a->ratio > 0) compressed_entries(a, cfg, rope, nm, cache, s, h, n, pos0);
    attend(a, cfg, rope, nm, cache, src, s, n, pos0);
    remember_window(cfg, cache, s, n, pos0);
    grouped_output(a, cfg, nm, s, n, out);
}
