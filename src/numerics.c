/* Rounding points of the REFERENCE numeric mode (spec 3.4-3.6). */
#include "numerics.h"
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
    lt_linear_rows(W, X, n, Y, ldy, r0, r1, act_block(nm, W, kind));
    if (kind == LT_LIN_F32 || !lt_num_ref(nm)) return;
    for (int64_t t = 0; t < n; t++) lt_round_bf16_n(Y + t * ldy + r0, r1 - r0);
}

void lt_num_store(const lt_num *nm, float *x, int64_t n) {
    if (lt_num_ref(nm)) lt_round_bf16_n(x, n);
}

/* whether a round trip over rows of `width` in blocks of `block` happens */
static int qat_applies(const lt_num *nm, int64_t width, int block) {
    return nm->qat ? width % block == 0 : lt_num_ref(nm);
}

void lt_num_qat_fp8(const lt_num *nm, float *x, int64_t n, int64_t stride, int64_t width, int block) {
    if (!qat_applies(nm, width, block)) return;
    for (int64_t t = 0; t < n; t++) lt_fake_quant_fp8(x + t * stride, width, block);
}

void lt_num_qat_fp4(const lt_num *nm, float *x, int64_t n, int64_t stride) {
    if (!qat_applies(nm, stride, 32)) return;
    for (int64_t t = 0; t < n; t++) lt_fake_quant_fp4(x + t * stride, stride, 32);
}

/* one block: amax/6 rounded to E4M3 as the scale (not a power of two), then
 * the e2m1 grid (RNE, saturating at +-6) */
static void fake_quant_fp4_e4m3(float *x, int64_t n) {
    float amax = 6.0f * 0x1p-9f;
    for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    float s = lt_fp8_e4m3_to_f32(lt_f32_to_fp8_e4m3(amax / 6.0f));
    for (int64_t i = 0; i < n; i++) x[i] = lt_fp4_e2m1_to_f32(lt_f32_to_fp4_e2m1(x[i] / s)) * s;
}

void lt_num_qat_fp4_e4m3(const lt_num *nm, float *x, int64_t n, int64_t stride, int block) {
    if (!qat_applies(nm, stride, block)) return;
    for (int64_t t = 0; t < n; t++)
        for (int64_t b = 0; b < stride; b += block) fake_quant_fp4_e4m3(x + t * stride + b, block);
}

/* REFERENCE: Attention.forward's `q *= torch.rsqrt(q.square().mean(-1,
 * keepdim=True) + eps)` on the bf16 q: every op rounds to bf16 (square, the
 * mean - an fp32 sum rounded once -, + eps, rsqrt, the product) */
void lt_num_q_rescale(const lt_num *nm, float *q, int64_t n, float eps) {
    if (!lt_num_ref(nm)) {
        lt_rmsnorm(q, q, NULL, n, eps);
        return;
    }
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += lt_round_bf16(q[i] * q[i]);
    float ms = lt_round_bf16((float)(ss / (double)n));
    float r = lt_round_bf16(1.0f / sqrtf(lt_round_bf16(ms + eps)));
    for (int64_t i = 0; i < n; i++) q[i] = lt_round_bf16(q[i] * r);
}

/* REFERENCE: kernel.py sparse_attn_kernel, one step of its loop over blocks:
 * scores_max = max(scores_max_prev, reduce_max(acc_s)), scores_scale =
 * exp(prev - max), acc_s = exp(s - max) in fp32, scores_sum from the
 * unrounded acc_s, sum_exp = sum_exp * scale + scores_sum, acc_s_cast (bf16)
 * for the P.V gemm. A first block without a valid slot gives NaN, as in the
 * kernel (exp(-inf - -inf)); the official rows start with the query's own
 * key. */
float lt_num_attn_block(lt_num_attn_acc *acc, float *p, int64_t n) {
    float mx = acc->max, s = 0.0f;
    for (int64_t j = 0; j < n; j++) mx = fmaxf(mx, p[j]);
    float r = expf(acc->max - mx);
    for (int64_t j = 0; j < n; j++) {
        float e = expf(p[j] - mx);
        s += e;
        p[j] = lt_round_bf16(e);
    }
    acc->sum = acc->sum * r + s;
    acc->max = mx;
    return r;
}

/* after the loop: sum_exp += exp(attn_sink - scores_max); acc_o /= sum_exp */
float lt_num_attn_divisor(const lt_num_attn_acc *acc, float sink) { return acc->sum + expf(sink - acc->max); }

/* EXACT: the softmax over the keys and the sink, normalised here.
 * REFERENCE: one block of sparse_attn_kernel's online softmax (above): the
 * max over the keys only, bf16 exp(s - max) for P.V, the unrounded terms
 * plus exp(sink - max) as the divisor */
float lt_num_attn_softmax(const lt_num *nm, float *p, int64_t n, float sink) {
    if (lt_num_ref(nm)) {
        lt_num_attn_acc acc = LT_NUM_ATTN_ACC_INIT;
        if (n > 0) lt_num_attn_block(&acc, p, n); /* no row: divisor inf, o = 0 */
        return lt_num_attn_divisor(&acc, sink);
    }
    float mx = sink;
    for (int64_t j = 0; j < n; j++) mx = p[j] > mx ? p[j] : mx;
    double den = exp((double)(sink - mx));
    for (int64_t j = 0; j < n; j++) {
        p[j] = expf(p[j] - mx);
        den += p[j];
    }
    float inv = (float)(1.0 / den);
    for (int64_t j = 0; j < n; j++) p[j] *= inv;
    return 1.0f;
}

/* REFERENCE: Indexer.forward on bf16 tensors: einsum(q, kv) gives bf16 dots
 * (fp32 accumulation), relu, `* weights` bf16 products, .sum(dim=heads) an
 * fp32 sum rounded once to bf16 (top-k then ranks bf16 values) */
float lt_num_index_score(const lt_num *nm, const float *q, const float *wt, const float *k, int64_t hi, int64_t di) {
    int ref = lt_num_ref(nm);
    float s = 0.0f;
    for (int64_t h = 0; h < hi; h++) {
        float dot = lt_dot(q + h * di, k, di);
        if (ref) dot = lt_round_bf16(dot);
        float term = wt[h] * (dot > 0 ? dot : 0);
        s += ref ? lt_round_bf16(term) : term;
    }
    return ref ? lt_round_bf16(s) : s;
}

/* REFERENCE: MoE.forward: y = 0 (fp32), `y[idx] += expert(...)` for the
 * routed experts in ascending id, then `y += self.shared_experts(x)`;
 * EXACT keeps the shared expert first */
int lt_num_shared_expert_last(const lt_num *nm) { return lt_num_ref(nm); }
