/* Rounding points of the REFERENCE numeric mode (spec 3.4-3.6). */
#include "numerics.h"
#include "kernels.h"
#include "linear.h"
#include "ops.h"
#include "quant.h"

#include <math.h>

/* the activation block a product quantises with: the reference's act_quant
 * before fp8_gemm / fp4_gemm, in REFERENCE mode only; 0 = none */
static int act_block(const lt_num *nm, const lt_weight *W, lt_lin_kind kind) {
    int quantised = W->type == LT_W_FP8 || W->type == LT_W_FP4;
    return lt_num_ref(nm) && kind == LT_LIN_QUANT && quantised ? nm->act_block : 0;
}

void lt_num_linear(const lt_num *nm, const lt_weight *W, const float *X, int64_t n, float *Y, lt_lin_kind kind) {
    lt_num_linear_rows(nm, W, X, n, Y, W->rows, 0, W->rows, kind);
}

void lt_num_linear_rows(const lt_num *nm, const lt_weight *W, const float *X, int64_t n, float *Y, int64_t ldy,
                        int64_t r0, int64_t r1, lt_lin_kind kind) {
    lt_product p = {W, X, n, Y, ldy, r0, r1, 0};
    lt_num_linear_batch(nm, &p, 1, kind);
}

void lt_num_linear_batch(const lt_num *nm, lt_product *p, int count, lt_lin_kind kind) {
    for (int i = 0; i < count; i++) p[i].act_block = act_block(nm, p[i].W, kind);
    lt_linear_batch(p, count);
    if (kind == LT_LIN_F32 || !lt_num_ref(nm)) return;
    for (int i = 0; i < count; i++)
        for (int64_t t = 0; t < p[i].n; t++) lt_round_bf16_n(p[i].Y + t * p[i].ldy + p[i].r0, p[i].r1 - p[i].r0);
}

void lt_num_store(const lt_num *nm, float *x, int64_t n) {
    if (lt_num_ref(nm)) lt_round_bf16_n(x, n);
}

int lt_num_qat_on(const lt_num *nm, int64_t width, int block) {
    return nm->qat ? width % block == 0 : lt_num_ref(nm);
}

void lt_num_qat_fp4(const lt_num *nm, float *x, int64_t n, int64_t stride) {
    if (!lt_num_qat_on(nm, stride, 32)) return;
    for (int64_t t = 0; t < n; t++) lt_fake_quant_fp4(x + t * stride, stride, 32);
}

/* REFERENCE: Attention.forward's `q *= torch.rsqrt(q.square().mean(-1,
 * keepdim=True) + eps)` on the bf16 q: every op rounds to bf16 (square, the
 * mean - an fp32 sum rounded once -, + eps, rsqrt, the product) */
void lt_num_q_rescale(const lt_num *nm, float *q, int64_t n, float eps) {
    if (!lt_num_ref(nm)) {
        lt_kern()->rmsnorm(q, q, NULL, n, eps);
        return;
    }
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += lt_round_bf16(q[i] * q[i]);
    float ms = lt_round_bf16((float)(ss / (double)n));
    float r = lt_round_bf16(1.0f / sqrtf(lt_round_bf16(ms + eps)));
    for (int64_t i = 0; i < n; i++) q[i] = lt_round_bf16(q[i] * r);
}

/* REFERENCE: MoE.forward: y = 0 (fp32), `y[idx] += expert(...)` for the
 * routed experts in ascending id, then `y += self.shared_experts(x)`;
 * EXACT keeps the shared expert first */
int lt_num_shared_expert_last(const lt_num *nm) { return lt_num_ref(nm); }
