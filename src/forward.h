/* The V4 forward pass (spec 4): embedding, the decoder blocks, the head;
 * the V4.1 text model (spec 5) on the same path: single-pass mHC (3.3),
 * CSA2 attention, Engram before the blocks of engram_layer_ids.
 *
 * A call runs n tokens at positions pos0.. through the model in one batch
 * (every product sees all n rows), continuing the sequence held by the
 * context caches; a prompt and a single decoded token take the same path.
 * Longer inputs are cut into runs of the context's n_batch tokens.
 *
 * Dimension letters: n tokens, hc streams, D hidden, V vocabulary. */
#ifndef LT_FORWARD_H
#define LT_FORWARD_H

#include "attention.h"
#include "engram.h"
#include "mhc.h"
#include "moe.h"

/* One decoder block (spec 4.2): layers.L.* or mtp.K.* */
typedef struct {
    int layer;             /* layer id: its compress ratio and hash routing follow from it */
    lt_mhc_site hc_attn;   /* hc_attn_fn/base/scale */
    lt_vec attn_norm;      /* [D] */
    lt_attention attn;
    lt_mhc_site hc_ffn;    /* hc_ffn_fn/base/scale */
    lt_vec ffn_norm;       /* [D] */
    lt_moe moe;
    const lt_engram_layer *engram;  /* V4.1 Engram layers; NULL elsewhere */
} lt_block;

/* X[n, hc, D] <- block(X) at positions pos0.. (tokens: the input ids, for
 * hash routing), appending to the block's caches (and, V4.1, to its KV
 * source's; Engram reads the batch's hash ids from the context). */
void lt_forward_block(lt_context *c, const lt_block *b, lt_attn_cache *cache, float *X, const int32_t *tokens,
                      int64_t n, int64_t pos0);

/* 4.5: logits[n, V] = head . norm(hc_head collapse of X[n, hc, D]) for the
 * rows at positions pos0.., with the trunk's hc_head and norm or the MTP's;
 * layer names the trace event (-1 trunk, n_layers MTP). */
void lt_forward_head(lt_context *c, const lt_mhc_head *hh, const lt_vec *norm, const float *X, int64_t n,
                     int64_t pos0, int layer, float *logits);

/* Runs n tokens. logits (may be NULL) receives the last token's row [V], or
 * with all set every token's [n, V]. mtp_logits, when non-NULL, also runs
 * the MTP head (see lt_context_eval_mtp in model.h). */
lt_status lt_forward(lt_context *c, const int32_t *tokens, int64_t n, float *logits, int all, float *mtp_logits,
                     lt_error *err);

#endif
