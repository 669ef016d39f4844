/* The MTP head (spec 4.6): one extra block fed by the trunk's residual
 * streams and the next token's embedding, with its own hc_head and norm. */
#include "kernels.h"
#include "model.h"

#include <string.h>

/* x[i] = e_proj(enorm(embed(next))) + h_proj(hnorm(Xp[i])) for each stream i */
static void mtp_inputs(lt_context *c, const lt_mtp *t, const float *Xp, const int32_t *next, int64_t n, float *x) {
    const lt_model *m = c->m;
    int64_t hc = m->cfg.hc_mult, D = m->cfg.dim;
    float eps = (float)m->cfg.rms_norm_eps;
    for (int64_t r = 0; r < n; r++) {
        lt_weight_row(&m->embed, next[r], c->x + r * D);
        lt_kern()->rmsnorm(c->x + r * D, c->x + r * D, &t->enorm, D, eps);
    }
    lt_num_store(&c->num, c->x, n * D);
    lt_num_linear(&c->num, &t->e_proj, c->x, n, c->out, LT_LIN_QUANT);
    for (int64_t r = 0; r < n * hc; r++) lt_kern()->rmsnorm(x + r * D, Xp + r * D, &t->hnorm, D, eps);
    lt_num_store(&c->num, x, n * hc * D);
    lt_num_linear(&c->num, &t->h_proj, x, n * hc, c->mtp_h, LT_LIN_QUANT);
    for (int64_t r = 0; r < n; r++)
        for (int64_t i = 0; i < hc; i++)
            for (int64_t d = 0; d < D; d++) x[(r * hc + i) * D + d] = c->out[r * D + d] + c->mtp_h[(r * hc + i) * D + d];
    lt_num_store(&c->num, x, n * hc * D);
}

void lt_mtp_run(lt_context *c, const float *X, const int32_t *tokens, int64_t n, int64_t pos0, float *mtp_logits) {
    const lt_model *m = c->m;
    const lt_mtp *t = &m->mtp;
    int64_t hcD = (int64_t)m->cfg.hc_mult * m->cfg.dim, V = m->cfg.vocab_size;
    int64_t pending = pos0 > 0, rows = n - 1 + pending, first = !pending;
    /* the trunk rows, one position behind the tokens that follow them */
    memcpy(c->mtp_in, c->mtp_prev, (size_t)(pending * hcD) * sizeof *c->mtp_in);
    memcpy(c->mtp_in + pending * hcD, X, (size_t)((n - 1) * hcD) * sizeof *X);
    memcpy(c->mtp_prev, X + (n - 1) * hcD, (size_t)hcD * sizeof *X);
    if (rows == 0) return;
    int64_t mpos0 = pos0 - pending;
    mtp_inputs(c, t, c->mtp_in, tokens + first, rows, c->mtp_x);
    lt_forward_block(c, &t->block, &c->mtp_cache, c->mtp_x, tokens + first, rows, mpos0);
    lt_trace_event ev = {.kind = LT_TRACE_HIDDEN, .layer = t->block.layer, .pos0 = mpos0, .n = rows,
                         .width = hcD, .f = c->mtp_x};
    lt_context_emit(c, &ev);
    lt_forward_head(c, &t->hc_head, &t->norm, c->mtp_x, rows, mpos0, t->block.layer, mtp_logits + first * V);
}
