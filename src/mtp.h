/* The MTP head (spec 4.6, mtp.0.* of the April V4 releases): predicts the
 * token after next from the trunk's residual streams at position p and the
 * embedding of token p+1.
 *
 *   x = e_proj(enorm(embed(tok[p+1]))) + h_proj(hnorm(X_p)) (per stream)
 *   X = block(x) (a sliding-window layer with score routing)
 *   logits = head(norm(hc_head(X)))  (embed and head shared with the trunk)
 *
 * The MTP block keeps its own caches; position p of the MTP sequence is the
 * trunk position of X_p. Dimension letters: n tokens, hc streams, D hidden. */
#ifndef LT_MTP_H
#define LT_MTP_H

#include "forward.h"

typedef struct {
    lt_weight e_proj;      /* FP8 [D, D] */
    lt_weight h_proj;      /* FP8 [D, D] */
    lt_vec enorm, hnorm;   /* [D] */
    lt_vec norm;           /* [D] */
    lt_mhc_head hc_head;   /* mtp.0.hc_head_* */
    lt_block block;        /* mtp.0.attn, mtp.0.ffn, mtp.0.hc_* */
} lt_mtp;

/* The MTP step of a trunk batch: tokens[n] at positions pos0.. produced
 * the trunk rows X[n, hc, D]. The MTP runs one position behind: the row of
 * position pos0 - 1 (kept from the previous batch) with tokens[0], then
 * X[i] with tokens[i + 1]. Row i of mtp_logits [n, V] receives the
 * prediction made with tokens[i]; row 0 is skipped at pos0 == 0. X's last
 * row is kept for the next batch. */
void lt_mtp_run(lt_context *c, const float *X, const int32_t *tokens, int64_t n, int64_t pos0, float *mtp_logits);

#endif
