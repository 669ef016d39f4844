/* The model and its inference contexts (internal side of lantern.h).
 *
 * lt_model owns the config, the mapped checkpoint and the weight views of
 * every layer (spec 4.9 names; nothing copied). lt_context owns one
 * sequence's caches (sliding-window ring, compressed entries, indexer keys,
 * compressor windows: spec 4.8) and all scratch of a forward pass, sized at
 * creation so that evaluation never allocates.
 *
 * Dimension letters: nb = n_batch tokens per forward run, hc streams,
 * D hidden, V vocabulary, M = (2 + hc) * hc mHC mixes. */
#ifndef LT_MODEL_H
#define LT_MODEL_H

#include "config.h"
#include "engram.h"
#include "forward.h"
#include "mtp.h"
#include "numerics.h"
#include "rope.h"
#include "safetensors.h"

struct lt_model {
    lt_config cfg;
    lt_store store;
    lt_numerics numerics;
    lt_rope rope_main;      /* ratio-0 layers and MTP: rope_theta, no YaRN */
    lt_rope rope_compress;  /* ratio > 0: compress_rope_theta with YaRN */
    lt_weight embed;        /* BF16 [V, D] */
    lt_weight head;         /* BF16 [V, D] */
    lt_vec norm;            /* [D] */
    lt_mhc_head hc_head;    /* hc_head_* (V4; V4.1 has none) */
    lt_block *layers;       /* [n_layers] */
    lt_weight *experts;     /* [(n_layers + has_mtp) * 3 * E]: the w1/w3/w2 views of every lt_moe */
    int has_mtp;
    lt_mtp mtp;
    lt_engram_layer *engram;   /* V4.1: [n_engram_layers], in engram_layer_ids order */
    lt_engram_hasher hasher;   /* V4.1 Engram */
};

/* What a trace callback sees (diagnostics and tests; not for production). */
typedef enum {
    LT_TRACE_HIDDEN,   /* residual after a block: f [n, hc, D] */
    LT_TRACE_ROUTER,   /* a block's routing: idx experts [n, width], f weights [n, width] */
    LT_TRACE_INDEXER,  /* a CSA block's selection: idx [n, width] ascending, count[n] used */
    LT_TRACE_FINAL,    /* after hc_head (V4.1: the last pre collapse) + norm: f [n, D]; layer -1 (trunk) or
                        * n_layers (MTP) */
    LT_TRACE_ENGRAM    /* V4.1: an Engram layer's gates, f [n, hc] (width hc), before its attention */
} lt_trace_kind;

typedef struct {
    lt_trace_kind kind;
    int layer;             /* block index (n_layers for the MTP block) */
    int64_t pos0, n;       /* positions of the rows */
    int64_t width;
    const float *f;
    const int32_t *idx;
    const int32_t *count;
} lt_trace_event;

typedef void (*lt_trace_fn)(void *ud, const lt_trace_event *ev);

struct lt_context {
    lt_model *m;
    int64_t n_ctx, n_batch, pos;
    lt_attn_cache *caches;   /* [n_layers] */
    lt_attn_cache mtp_cache;
    float *mtp_prev;         /* [hc, D] the trunk row of position pos - 1, awaiting its successor */
    lt_num num;              /* numeric mode */
    /* forward scratch */
    float *X;                /* [nb, hc, D] residual streams */
    float *x, *h, *out;      /* [nb, D] collapsed, normed, sub-layer output */
    float *mix;              /* [nb, M] */
    float *pre, *post;       /* [nb, hc] */
    float *carry;            /* [nb, hc] V4.1 single-pass mHC: the pre the next site collapses with */
    float *comb;             /* [nb, hc, hc] */
    lt_attn_scratch attn;
    lt_moe_scratch moe;
    float *mtp_in;           /* [nb, hc, D] trunk rows fed to the MTP head */
    float *mtp_x;            /* [nb, hc, D] MTP streams */
    float *mtp_h;            /* [nb, hc, D] h_proj of the trunk rows */
    int32_t *mtp_tok;        /* [nb] */
    lt_engram_history engram_hist;   /* V4.1: compressed id per position [n_ctx] */
    int64_t *engram_ids;     /* [L, nb, G] hash ids of the batch */
    float *engram_emb;       /* [nb, G * engram_head_dim] */
    float *engram_kv;        /* [nb, (hc + 1) * D] */
    lt_engram_prefetcher *prefetch;
    lt_trace_fn trace;
    void *trace_ud;
    void *arena;             /* every buffer above, carved from one allocation */
    uint64_t cache_bytes;
};

const lt_config *lt_model_config(const lt_model *m);

/* The numerics state a context of this model computes with. */
lt_num lt_model_num(const lt_model *m);

/* lt_kv_bytes_per_token under the model's numerics. */
double lt_model_kv_bytes_per_token(const lt_model *m);

/* Bytes of all caches of a context: window rings, compressed entries and
 * indexer keys for n_ctx tokens, compressor windows, MTP. */
uint64_t lt_context_cache_bytes(const lt_context *c);

/* Like lt_context_eval_all, and also runs the MTP head: row i of mtp_logits
 * [n, V] is the MTP prediction made when tokens[i] arrived, i.e. from the
 * trunk row of the previous position and tokens[i] (a prediction of the
 * token after tokens[i]). Row i is left untouched when there is no previous
 * position (the first token of the sequence). The MTP caches follow only the
 * calls made through this function: use it for every call of a sequence. */
lt_status lt_context_eval_mtp(lt_context *c, const int32_t *tokens, int64_t n, float *logits, float *mtp_logits,
                              lt_error *err);

/* Calls fn for every trace event of later evaluations (NULL stops). */
void lt_context_set_trace(lt_context *c, lt_trace_fn fn, void *ud);

/* Emits a trace event when a callback is set. */
void lt_context_emit(const lt_context *c, const lt_trace_event *ev);

#endif
