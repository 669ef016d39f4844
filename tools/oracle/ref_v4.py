"""Independent fp32 re-implementation of the official DeepSeek-V4 forward pass
(DeepSeek `inference/model.py`, as described in shared/docs/v4-architecture.md
sections 3-4), written against the OFFICIAL tensor names of a dequantised checkpoint.

It is not the oracle: the oracle is HF transformers. This file exists to
  * cross-check HF against the official semantics (same answers up to fp32 noise
    means HF's structure matches the reference once QAT / bf16 / FP8-activation
    rounding is removed), and
  * cross-check the MTP head, which HF does not implement (section 4.6).

Scope: one sequence, prefill from position 0 (start_pos = 0), float32, no QAT
fake-quantisation, no activation quantisation (the "exact" numerics of the C engine).
The second half of the file (RefModel, reference_forward) adds the official code's
rounding points: the "reference" numerics (bf16 / FP8 / FP4), whose outputs are the
*_reference oracle tensors for the C engine's REFERENCE mode (tests/fixtures/README.md).
Dimension letters: T tokens, S = hc_mult streams, D hidden, H heads, d head_dim.
"""
import math

import torch
import torch.nn.functional as F


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps) * w


def rope_table(rd, T, base, yarn):
    """Section 3.2 / official precompute_freqs_cis. yarn = None or dict(factor, orig,
    beta_fast, beta_slow). Returns (cos, sin) [T, rd/2]."""
    freqs = 1.0 / (base ** (torch.arange(0, rd, 2, dtype=torch.float32) / rd))
    if yarn is not None:
        def corr(r):
            return rd * math.log(yarn["orig"] / (r * 2 * math.pi)) / (2 * math.log(base))
        low = max(math.floor(corr(yarn["beta_fast"])), 0)
        high = min(math.ceil(corr(yarn["beta_slow"])), rd - 1)
        if low == high:
            high += 0.001
        ramp = torch.clamp((torch.arange(rd // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
        smooth = 1 - ramp
        freqs = freqs / yarn["factor"] * (1 - smooth) + freqs * smooth
    ang = torch.outer(torch.arange(T, dtype=torch.float32), freqs)
    return ang.cos(), ang.sin()


def rope(x, cos, sin, inverse=False):
    """Interleaved RoPE on the last 2*cos.shape[-1] channels; cos/sin must broadcast
    against x[..., :rd/2] (pass cos[:, None] for [T, heads, dim] tensors)."""
    rd = cos.shape[-1] * 2
    if inverse:
        sin = -sin
    r = x[..., -rd:]
    a, b = r[..., 0::2], r[..., 1::2]
    out = torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)
    return torch.cat([x[..., :-rd], out], dim=-1)


def hc_mixes(X, fn, scale, base, hc, iters, hc_eps, norm_eps):
    """Section 3.3: X [T, S, D] -> pre [T,S], post [T,S], comb [T,S,S]."""
    f = X.flatten(1)
    m = (f @ fn.T) * torch.rsqrt(f.square().mean(-1, keepdim=True) + norm_eps)
    pre = torch.sigmoid(m[:, :hc] * scale[0] + base[:hc]) + hc_eps
    post = 2 * torch.sigmoid(m[:, hc:2 * hc] * scale[1] + base[hc:2 * hc])
    comb = (m[:, 2 * hc:] * scale[2] + base[2 * hc:]).view(-1, hc, hc)
    comb = comb.softmax(-1) + hc_eps
    comb = comb / (comb.sum(-2, keepdim=True) + hc_eps)
    for _ in range(iters - 1):
        comb = comb / (comb.sum(-1, keepdim=True) + hc_eps)
        comb = comb / (comb.sum(-2, keepdim=True) + hc_eps)
    return pre, post, comb


def hc_expand(out, X, post, comb):
    """X'[k] = post_k * out + sum_j comb[j][k] X[j]."""
    return post[:, :, None] * out[:, None, :] + torch.einsum("tjk,tjd->tkd", comb, X)


def hc_head(X, fn, scale, base, hc_eps, norm_eps):
    f = X.flatten(1)
    m = (f @ fn.T) * torch.rsqrt(f.square().mean(-1, keepdim=True) + norm_eps)
    pre = torch.sigmoid(m * scale + base) + hc_eps
    return (pre[:, :, None] * X).sum(1)


def compress(h, W, p, ratio, hd, cos, sin, eps):
    """Official Compressor, prefill: entries [T//ratio, hd] at positions w*ratio."""
    T = h.shape[0]
    overlap = ratio == 4
    kv = h @ W[p + "wkv.weight"].T
    score = h @ W[p + "wgate.weight"].T
    n = T // ratio
    kv = kv[: n * ratio].view(n, ratio, -1)
    score = score[: n * ratio].view(n, ratio, -1) + W[p + "ape"]
    if overlap:
        nk = kv.new_zeros(n, 2 * ratio, hd)
        ns = score.new_full((n, 2 * ratio, hd), float("-inf"))
        nk[:, ratio:], ns[:, ratio:] = kv[..., hd:], score[..., hd:]
        nk[1:, :ratio], ns[1:, :ratio] = kv[:-1, :, :hd], score[:-1, :, :hd]
        kv, score = nk, ns
    c = (kv * score.softmax(dim=1)).sum(dim=1)
    c = rmsnorm(c, W[p + "norm.weight"], eps)
    pos = torch.arange(n) * ratio
    return rope(c, cos[pos], sin[pos])


def indexer(h, qr, W, p, c, cos, sin):
    """Lightning indexer (section 4.3 steps 13-17, without Hadamard/FP4 QAT).
    Returns (top-k ids [T, k] with -1 for invisible picks, masked scores [T, n])."""
    T = h.shape[0]
    nI, dI, ratio = c["index_n_heads"], c["index_head_dim"], 4
    q = (qr @ W[p + "indexer.wq_b.weight"].T).view(T, nI, dI)
    q = rope(q, cos[:T, None], sin[:T, None])
    k = compress(h, W, p + "indexer.compressor.", ratio, dI, cos, sin, c["rms_norm_eps"])
    wts = (h @ W[p + "indexer.weights_proj.weight"].T) * (dI ** -0.5 * nI ** -0.5)
    score = (torch.einsum("thd,wd->thw", q, k).relu() * wts[:, :, None]).sum(1)
    n = k.shape[0]
    vis = torch.arange(n)[None, :] < (torch.arange(1, T + 1)[:, None] // ratio)
    score = score.masked_fill(~vis, float("-inf"))
    top = score.topk(min(c["index_topk"], n), dim=-1).indices
    top = torch.where(top >= (torch.arange(1, T + 1)[:, None] // ratio), -1, top)
    return top, score


def attention(h, W, p, c, ratio, tabs, trace):
    T = h.shape[0]
    H, d, eps, win = c["num_attention_heads"], c["head_dim"], c["rms_norm_eps"], c["sliding_window"]
    cos, sin = tabs["compress"] if ratio else tabs["main"]
    qr = rmsnorm(h @ W[p + "wq_a.weight"].T, W[p + "q_norm.weight"], eps)
    q = (qr @ W[p + "wq_b.weight"].T).view(T, H, d)
    q = q * torch.rsqrt(q.square().mean(-1, keepdim=True) + eps)  # per-head rescale (V4 only)
    q = rope(q, cos[:T, None], sin[:T, None])
    kv = rmsnorm(h @ W[p + "wkv.weight"].T, W[p + "kv_norm.weight"], eps)
    kv = rope(kv, cos[:T], sin[:T])
    t = torch.arange(T)
    allow = (t[None, :] <= t[:, None]) & (t[None, :] > t[:, None] - win)  # window [T, T]
    keys = kv
    if ratio:
        ck = compress(h, W, p + "compressor.", ratio, d, cos, sin, eps)
        n = ck.shape[0]
        if ratio == 4:
            top, _ = indexer(h, qr, W, p, c, cos, sin)
            sel = torch.zeros(T, n + 1, dtype=torch.bool)
            sel.scatter_(1, torch.where(top >= 0, top, n), True)
            cvis = sel[:, :n]
            trace["indexer_topk"] = top
        else:
            cvis = torch.arange(n)[None, :] < ((t + 1) // ratio)[:, None]
        keys = torch.cat([kv, ck], 0)
        allow = torch.cat([allow, cvis], 1)
    s = torch.einsum("thd,kd->htk", q, keys) * d ** -0.5
    s = s.masked_fill(~allow[None], float("-inf"))
    sink = W[p + "attn_sink"][:, None, None].expand(H, T, 1)
    prob = torch.cat([s, sink], -1).softmax(-1)[..., :-1]
    o = torch.einsum("htk,kd->thd", prob, keys)
    o = rope(o, cos[:T, None], sin[:T, None], inverse=True)
    G, R = c["o_groups"], c["o_lora_rank"]
    wo_a = W[p + "wo_a.weight"].view(G, R, -1)
    o = torch.einsum("tgd,grd->tgr", o.reshape(T, G, -1), wo_a)
    return o.flatten(1) @ W[p + "wo_b.weight"].T


def moe(h, W, p, c, ids, hashed, trace):
    lim = c["swiglu_limit"]

    def expert(x, pre):
        g = (x @ W[pre + "w1.weight"].T).clamp(max=lim)
        u = (x @ W[pre + "w3.weight"].T).clamp(min=-lim, max=lim)
        return F.silu(g) * u

    s = F.softplus(h @ W[p + "gate.weight"].T).sqrt()
    if hashed:
        idx = W[p + "gate.tid2eid"][ids]
    else:
        idx = (s + W[p + "gate.bias"]).topk(c["num_experts_per_tok"], dim=-1).indices
    w = s.gather(1, idx)
    w = w / w.sum(-1, keepdim=True) * c["routed_scaling_factor"]
    trace["experts"], trace["weights"] = idx, w
    y = torch.zeros_like(h)
    for e in idx.unique().tolist():
        tok, slot = torch.where(idx == e)
        a = expert(h[tok], f"{p}experts.{e}.") * w[tok, slot, None]
        y.index_add_(0, tok, a @ W[f"{p}experts.{e}.w2.weight"].T)
    sh = expert(h, p + "shared_experts.") @ W[p + "shared_experts.w2.weight"].T
    return y + sh


def block(X, W, p, c, ratio, hashed, ids, tabs, trace):
    hc, it, he, eps = c["hc_mult"], c["hc_sinkhorn_iters"], c["hc_eps"], c["rms_norm_eps"]
    pre, post, comb = hc_mixes(X, W[p + "hc_attn_fn"], W[p + "hc_attn_scale"], W[p + "hc_attn_base"], hc, it, he, eps)
    h = rmsnorm((pre[:, :, None] * X).sum(1), W[p + "attn_norm.weight"], eps)
    X = hc_expand(attention(h, W, p + "attn.", c, ratio, tabs, trace), X, post, comb)
    pre, post, comb = hc_mixes(X, W[p + "hc_ffn_fn"], W[p + "hc_ffn_scale"], W[p + "hc_ffn_base"], hc, it, he, eps)
    h = rmsnorm((pre[:, :, None] * X).sum(1), W[p + "ffn_norm.weight"], eps)
    return hc_expand(moe(h, W, p + "ffn.", c, ids, hashed, trace), X, post, comb)


def tables(c, T):
    rs = c["rope_scaling"]
    rd = c["qk_rope_head_dim"]
    yarn = dict(factor=rs["factor"], orig=rs["original_max_position_embeddings"],
                beta_fast=rs["beta_fast"], beta_slow=rs["beta_slow"])
    return {"main": rope_table(rd, T, c["rope_theta"], None),
            "compress": rope_table(rd, T, c["compress_rope_theta"], yarn)}


def forward(W, c, ids):
    """Trunk forward. Returns dict(logits [T,V], hidden [L][T,S,D], final_hidden [T,D],
    traces [L] dicts with experts/weights/indexer_topk, X [T,S,D] final streams)."""
    T = ids.shape[0]
    tabs = tables(c, T)
    X = W["embed.weight"][ids][:, None, :].expand(T, c["hc_mult"], -1).clone()
    hidden, traces = [], []
    for layer in range(c["num_hidden_layers"]):
        tr = {}
        X = block(X, W, f"layers.{layer}.", c, c["compress_ratios"][layer], layer < c["num_hash_layers"],
                  ids, tabs, tr)
        hidden.append(X)
        traces.append(tr)
    eps = c["rms_norm_eps"]
    y = rmsnorm(hc_head(X, W["hc_head_fn"], W["hc_head_scale"], W["hc_head_base"], c["hc_eps"], eps),
                W["norm.weight"], eps)
    return dict(logits=y @ W["head.weight"].T, hidden=hidden, final_hidden=y, traces=traces, X=X)


def mtp_forward(W, c, ids, X_main, k=0):
    """MTP block mtp.k (section 4.6, official MTPBlock.forward with start_pos = 0).
    Row t uses token ids[t+1] and the main model's final streams X_main[t] (before
    hc_head); positions 0..T-2. Returns (logits [T-1, V], streams [T-1, S, D], trace)."""
    p = f"mtp.{k}."
    eps = c["rms_norm_eps"]
    nxt = ids[1:]
    Xm = X_main[:-1]
    e = rmsnorm(W["embed.weight"][nxt], W[p + "enorm.weight"], eps) @ W[p + "e_proj.weight"].T
    x = rmsnorm(Xm, W[p + "hnorm.weight"], eps) @ W[p + "h_proj.weight"].T
    X = e[:, None, :] + x
    tabs = tables(c, nxt.shape[0])
    tr = {}
    n = c["num_hidden_layers"]
    X = block(X, W, p, c, c["compress_ratios"][n + k], False, nxt, tabs, tr)
    y = rmsnorm(hc_head(X, W[p + "hc_head_fn"], W[p + "hc_head_scale"], W[p + "hc_head_base"], c["hc_eps"], eps),
                W[p + "norm.weight"], eps)
    return y @ W["head.weight"].T, X, tr


# =====================================================================================
# REFERENCE numerics: the rounding points of the official inference/model.py + kernel.py
# =====================================================================================
#
# The functions above are the "exact" semantics (fp32, no quantisation). Everything below
# reproduces what the official code computes when it runs with bf16 activations, FP8
# activation quantisation and its QAT round trips (spec sections 3.4-3.6, 8 "reference
# numerics"). Every tensor is held in float32; each place where the official code stores
# or casts to a narrower type is one call of Rounding.__call__ with a named point, so a
# point can be switched off to measure how much it matters (see DROP_POINTS).
#
# Facts used, read from the official code (model.py / kernel.py, S3 copies):
#   linear()            FP8/FP4 weight: act_quant(x, block) (amax >= 1e-4, pow-2 scale
#                       2^ceil(log2(amax * fp32(1/448))), e4m3 RNE of clamp(x/s, +-448)),
#                       fp8_gemm / fp4_gemm: fp32 partial sums per K block times s_a*s_w,
#                       fp32 accumulation over blocks, bf16 output. BF16 weight: F.linear
#                       in bf16 (fp32 accumulate, bf16 output).
#   RMSNorm             fp32 on x.float(); (weight_fp32 * (x * rsqrt(mean x^2 + eps))).to(bf16)
#   hc_pre / hc_head    fp32 on X.float(); the collapse .to(bf16)
#   hc_post             post*x + sum_j comb[j,k] X[j] in fp32, .type_as(x) -> bf16
#   Attention.forward   q = wq_b(q_norm(wq_a x)); q *= rsqrt(q.square().mean(-1) + eps) in
#                       bf16 tensor arithmetic (every op rounds); apply_rotary_emb writes
#                       back into the bf16 tensor; kv = kv_norm(wkv x), rope, then
#                       act_quant(kv[..., :-rd], 64, ue8m0, inplace) (FP8 round trip);
#                       sparse_attn; inverse rope into bf16; wo_a as a bf16 einsum on the
#                       bf16-dequantised weight (no act quant); wo_b FP8.
#   sparse_attn kernel  scores fp32 (bf16 q, kv); per block of 64 keys: running max over the
#                       keys only (the sink is not in the max), acc_s = exp(s - max) in fp32,
#                       sum_exp += fp32 sum of acc_s, acc_s cast to bf16 and multiplied with
#                       kv (fp32 accumulate); after the loop sum_exp += exp(sink - max),
#                       o = acc_o / sum_exp, cast to bf16. So the bf16 rounding is on the
#                       UNNORMALISED exp(s - max), and the denominator uses unrounded terms.
#   Compressor          x.float() @ wkv/wgate (fp32 weights), softmax pooling in fp32,
#                       .to(bf16), norm (bf16 out), rope into bf16, then act_quant(nope, 64)
#                       (main) or rotate_activation (Hadamard, bf16 out) + fp4_act_quant(32)
#                       (indexer).
#   Indexer             q = wq_b(qr), rope, Hadamard, FP4 round trip; weights =
#                       weights_proj(x) (bf16 linear) * (di^-1/2 * Hi^-1/2) (bf16 multiply);
#                       score = einsum(q, k) in bf16 (bf16 output), relu, * weights (bf16),
#                       .sum over heads (bf16 output); topk.
#   Gate                linear(x.float(), W.float()) fp32, sqrt(softplus), topk on score+bias,
#                       weights = score / sum (plain division) * route_scale.
#   Expert              w1, w3 (bf16 outputs) .float(); clamps; silu(g)*u; *weight (fp32);
#                       .to(bf16); w2 (bf16 output).
#   MoE                 y = zeros fp32; routed experts added in ascending expert id, then
#                       the shared expert; y.type_as(x) -> bf16.
#   ParallelHead        hc_head -> bf16, norm -> bf16, F.linear(x.float(), head fp32) fp32.
#
# Deviation by necessity: the official kernels support only multiples of 128 for the
# activation block; the fixtures use weight_block_size[1] (32 or 128) as the activation
# block and let the last partial block (q_lora 48, hidden 96) have its own scale, as
# Lantern does.

BF16_POINTS = (
    "bf16_store",        # the bf16 activation between ops (norm outputs, collapse, expand, ...)
    "linear_out",        # bf16 output of every FP8/FP4/BF16 linear
    "act_quant",         # FP8 activation quantisation inside FP8/FP4 linears
    "q_rescale_bf16",    # the per-head q rescale done in bf16 tensor arithmetic
    "qat_window_kv",     # FP8 round trip of the window KV nope dims
    "qat_compressed_kv", # FP8 round trip of the compressed KV nope dims
    "indexer_fp4",       # Hadamard + FP4 round trip of index q and k
    "indexer_score_bf16",  # bf16 einsum / multiply / head-sum of the index scores
    "attn_p_bf16",       # bf16 cast of exp(s - max) before P.V in sparse_attn
)


# Lantern's own choices where they differ from the official code (tools/oracle README,
# "REFERENCE numerics"); used only to explain the C-vs-official figures, never for oracles.
LANTERN_VARIANTS = (
    "q_rescale_fp32",      # per-head q rescale in fp32, one bf16 rounding of the product
    "indexer_score_fp32",  # index scores in fp32 (no bf16 einsum / multiply / head sum)
    "attn_p_normalised",   # bf16 rounding of the normalised probabilities
    "moe_shared_first",    # shared expert first, then routed experts
)


class Rounding:
    """Which official rounding points are applied. Default: all of them. `off` switches
    points off (no rounding there); `lantern` replaces points by Lantern's variants."""

    def __init__(self, act_block, off=(), lantern=()):
        unknown = (set(off) - set(BF16_POINTS)) | (set(lantern) - set(LANTERN_VARIANTS))
        assert not unknown, unknown
        self.act_block = act_block
        self.off = set(off)
        self.lantern = set(lantern)
        for v, point in (("q_rescale_fp32", "q_rescale_bf16"), ("indexer_score_fp32", "indexer_score_bf16"),
                         ("attn_p_normalised", "attn_p_bf16")):
            if v in self.lantern:
                self.off.add(point)

    def on(self, point):
        return point not in self.off

    def __call__(self, point, x):
        """bf16 rounding of x at `point` (a no-op when the point is switched off)."""
        return bf16(x) if self.on(point) else x


def bf16(x):
    return x.to(torch.bfloat16).to(torch.float32)


def _pow2_ceil(v):
    """2^ceil(log2 v) for positive fp32 v, exactly (the kernels' fast_log2_ceil reads the
    exponent bits and adds one when the mantissa is non-zero)."""
    m, e = torch.frexp(v)           # v = m * 2^e, m in [0.5, 1)
    e = e - (m == 0.5).to(e.dtype)  # an exact power of two keeps its exponent
    return torch.ldexp(torch.ones_like(v), e)


def _blocks(x, block):
    """Split the last dim into blocks of `block` (the last one may be partial)."""
    n = x.shape[-1]
    return [(b, min(b + block, n)) for b in range(0, n, block)]


def fp8_round_trip(x, block):
    """act_quant(..., inplace=True): e4m3 quantise-dequantise with one pow-2 scale per block."""
    out = torch.empty_like(x)
    inv = torch.tensor(1.0 / 448.0, dtype=torch.float32)
    for b0, b1 in _blocks(x, block):
        blk = x[..., b0:b1]
        amax = blk.abs().amax(-1, keepdim=True).clamp(min=1e-4)
        s = _pow2_ceil(amax * inv)
        q = (blk / s).clamp(-448.0, 448.0).to(torch.float8_e4m3fn).to(torch.float32)
        out[..., b0:b1] = q * s
    return out


def _e2m1_rne(v):
    """Round |v| <= 6 to the e2m1 grid with ties to the even mantissa."""
    a = v.abs()
    step = torch.where(a < 2, torch.full_like(a, 0.5), torch.where(a < 4, torch.ones_like(a), torch.full_like(a, 2.0)))
    r = torch.round(a / step) * step   # torch.round: half to even, = even mantissa here
    return torch.copysign(r.clamp(max=6.0), v)


def fp4_round_trip(x, block=32):
    """fp4_act_quant(..., inplace=True): e2m1 quantise-dequantise, pow-2 scale per block."""
    out = torch.empty_like(x)
    inv = torch.tensor(1.0 / 6.0, dtype=torch.float32)
    for b0, b1 in _blocks(x, block):
        blk = x[..., b0:b1]
        amax = blk.abs().amax(-1, keepdim=True).clamp(min=6.0 * 2.0 ** -126)
        s = _pow2_ceil(amax * inv)
        out[..., b0:b1] = _e2m1_rne((blk / s).clamp(-6.0, 6.0)) * s
    return out


def hadamard(x):
    """Normalised Walsh-Hadamard transform over the last dim (power of two), fp32."""
    n = x.shape[-1]
    y = x.reshape(-1, n).clone()
    h = 1
    while h < n:
        y = y.view(-1, n // (2 * h), 2, h)
        a, b = y[:, :, 0, :], y[:, :, 1, :]
        y = torch.stack([a + b, a - b], dim=2).reshape(-1, n)
        h *= 2
    return (y * n ** -0.5).view(x.shape)


# kernel.py sparse_attn_kernel: `block = 64` index slots per step of its online softmax
SPARSE_ATTN_BLOCK = 64


def online_softmax_attn(s, slot, keys, sink):
    """sparse_attn_kernel's online softmax. s [H, T, N] fp32 scores (-inf where masked),
    slot [T, N] each key's place in the query's index row (-1: not in it), keys [N, d],
    sink [H]. Per block b of SPARSE_ATTN_BLOCK slots, in slot order: m' = max(m, max of
    the block's scores) (the sink never enters the max), r = exp(m - m'), acc_s =
    exp(s - m') fp32, sum_exp = sum_exp * r + sum(acc_s) (unrounded), acc_o = acc_o * r +
    bf16(acc_s) @ kv; after the last block sum_exp += exp(sink - m), o = acc_o / sum_exp
    (fp32; the caller stores it to bf16). Masked slots (-1 padding) only move the block
    boundaries. A row whose first block has no valid key would give NaN as in the kernel
    (exp(-inf - -inf)); the official rows always start with the query's own key."""
    H, T, N = s.shape
    blk = torch.where(slot >= 0, slot // SPARSE_ATTN_BLOCK, torch.full_like(slot, -1))
    nb = int(blk.max()) + 1 if slot.numel() else 0
    m = torch.full((H, T, 1), float("-inf"))
    sum_exp = torch.zeros(H, T, 1)
    acc_o = torch.zeros(T, H, keys.shape[1])
    for b in range(nb):
        sb = s.masked_fill(~(blk == b)[None], float("-inf"))
        m_new = torch.maximum(m, sb.amax(-1, keepdim=True))
        r = torch.exp(m - m_new)
        e = torch.exp(sb - m_new)
        sum_exp = sum_exp * r + e.sum(-1, keepdim=True)
        acc_o = acc_o * r.permute(1, 0, 2) + torch.einsum("htk,kd->thd", bf16(e), keys)
        m = m_new
    sum_exp = sum_exp + torch.exp(sink[:, None, None] - m)
    return acc_o / sum_exp.permute(1, 0, 2)


class RefModel:
    """One forward pass in REFERENCE numerics over a dequantised official-name checkpoint.
    W: name -> float32 tensor (the dequantised values), c: official config."""

    def __init__(self, W, c, rnd=None):
        self.W, self.c = W, c
        self.rnd = rnd or Rounding(c["quantization_config"]["weight_block_size"][1])
        self.quantised = {n for n in W if n.endswith(".weight") and self._is_quantised(n)}

    @staticmethod
    def _is_quantised(name):
        fp8 = ("attn.wq_a.", "attn.wq_b.", "attn.wkv.", "attn.wo_b.", "indexer.wq_b.", "shared_experts.",
               "e_proj.", "h_proj.")
        return any(f in name for f in fp8) or ".experts." in name

    # ---- primitives
    def linear(self, x, name):
        """official linear(): act quant + fp8/fp4 gemm (bf16 out) or a bf16 F.linear."""
        W, r = self.W[name], self.rnd
        if name in self.quantised and r.on("act_quant"):
            xq = fp8_round_trip(x, r.act_block)
            y = torch.zeros(*x.shape[:-1], W.shape[0])
            for b0, b1 in _blocks(x, r.act_block):   # fp32 partial sum per K block
                y = y + xq[..., b0:b1] @ W[:, b0:b1].T
        else:
            y = x @ W.T
        return r("linear_out", y)

    def norm(self, x, name):
        eps = self.c["rms_norm_eps"]
        return self.rnd("bf16_store", self.W[name] * (x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)))

    def rope(self, x, cos, sin, inverse=False):
        return self.rnd("bf16_store", rope(x, cos, sin, inverse))

    # ---- attention
    def q_rescale(self, q):
        eps = self.c["rms_norm_eps"]
        if not self.rnd.on("q_rescale_bf16"):   # fp32, one rounding of the product
            return self.rnd("bf16_store", q * torch.rsqrt(q.square().mean(-1, keepdim=True) + eps))
        # q *= torch.rsqrt(q.square().mean(-1, keepdim=True) + eps) on a bf16 tensor
        ms = bf16(bf16(q * q).mean(-1, keepdim=True))
        return bf16(q * bf16(torch.rsqrt(bf16(ms + eps))))

    def compress(self, h, p, ratio, hd, cos, sin, index):
        T = h.shape[0]
        W, r = self.W, self.rnd
        kv = h @ W[p + "wkv.weight"].T          # fp32 weights on x.float()
        score = h @ W[p + "wgate.weight"].T
        n = T // ratio
        kv = kv[: n * ratio].view(n, ratio, -1)
        score = score[: n * ratio].view(n, ratio, -1) + W[p + "ape"]
        if ratio == 4:
            nk = kv.new_zeros(n, 2 * ratio, hd)
            ns = score.new_full((n, 2 * ratio, hd), float("-inf"))
            nk[:, ratio:], ns[:, ratio:] = kv[..., hd:], score[..., hd:]
            nk[1:, :ratio], ns[1:, :ratio] = kv[:-1, :, :hd], score[:-1, :, :hd]
            kv, score = nk, ns
        c = r("bf16_store", (kv * score.softmax(dim=1)).sum(dim=1))
        c = self.norm(c, p + "norm.weight")
        pos = torch.arange(n) * ratio
        c = self.rope(c, cos[pos], sin[pos])
        rd = cos.shape[-1] * 2
        if index:
            if r.on("indexer_fp4"):
                c = fp4_round_trip(bf16(hadamard(c)))
        elif r.on("qat_compressed_kv"):
            c = torch.cat([fp8_round_trip(c[:, :-rd], 64), c[:, -rd:]], -1)
        return c

    def indexer(self, h, qr, p, cos, sin):
        c, r = self.c, self.rnd
        T = h.shape[0]
        nI, dI, ratio = c["index_n_heads"], c["index_head_dim"], 4
        q = self.linear(qr, p + "indexer.wq_b.weight").view(T, nI, dI)
        q = self.rope(q, cos[:T, None], sin[:T, None])
        if r.on("indexer_fp4"):
            q = fp4_round_trip(bf16(hadamard(q)))
        k = self.compress(h, p + "indexer.compressor.", ratio, dI, cos, sin, index=True)
        wts = self.linear(h, p + "indexer.weights_proj.weight")
        b = (lambda x: bf16(x)) if r.on("indexer_score_bf16") else (lambda x: x)
        wts = b(wts * (dI ** -0.5 * nI ** -0.5))
        s = b(torch.einsum("thd,wd->thw", q, k)).relu()
        score = b(b(s * wts[:, :, None]).sum(1))
        n = k.shape[0]
        vis = torch.arange(n)[None, :] < (torch.arange(1, T + 1)[:, None] // ratio)
        score = score.masked_fill(~vis, float("-inf"))
        kk = min(c["index_topk"], n)
        # ties (likely in bf16) go to the lower entry id: a stable descending sort
        order = torch.sort(score, dim=-1, descending=True, stable=True).indices[:, :kk]
        top = torch.where(order >= (torch.arange(1, T + 1)[:, None] // ratio), -1, order)
        return top, score

    def sparse_attn(self, q, keys, slot, sink, scale):
        """kernel.py sparse_attn_kernel. slot [T, N] (int64): the place of key k in query t's
        index row (topk_idxs) as the official code lays it out (official_slots), -1 where
        the query does not see the key. The kernel walks the row in blocks of
        SPARSE_ATTN_BLOCK slots (online softmax); each key belongs to block slot // 64.
        The sums run over the key axis, not in slot order: the kernel's reduction order
        is not modelled (fp32-level only), the block membership is."""
        s = torch.einsum("thd,kd->htk", q, keys) * scale
        allow = slot >= 0
        s = s.masked_fill(~allow[None], float("-inf"))
        if not self.rnd.on("attn_p_bf16") or "attn_p_normalised" in self.rnd.lantern:
            # the diagnostics (never the oracle): one softmax over the whole row
            M = s.amax(-1, keepdim=True)
            e = torch.exp(s - M)
            den = e.sum(-1, keepdim=True) + torch.exp(sink[:, None, None] - M)
            if "attn_p_normalised" in self.rnd.lantern:
                o = torch.einsum("htk,kd->thd", bf16(e / den), keys)
            else:
                o = torch.einsum("htk,kd->thd", e, keys) / den.permute(1, 0, 2)
            return self.rnd("bf16_store", o)
        return self.rnd("bf16_store", online_softmax_attn(s, slot, keys, sink))

    @staticmethod
    def official_slots(T, win, n, ratio, top):
        """slot [T, T + n] of each key in each query's topk_idxs row (see sparse_attn), for
        a prefill from position 0 (Attention.forward): get_window_topk_idxs gives
        min(T, win) slots, positions max(0, t-win+1) + j ascending, -1 for those past t
        (the padding sits after the query's valid window keys, before the compressed
        part); then the compressed part: HCA get_compress_topk_idxs (entries ascending,
        -1 after), CSA the indexer's top-k in its (descending score) order, -1 last."""
        t = torch.arange(T)
        wp = min(T, win)
        lo = (t - win + 1).clamp(min=0)
        kpos = torch.arange(T)
        rel = kpos[None, :] - lo[:, None]                       # window slot of key position
        ok = (kpos[None, :] <= t[:, None]) & (rel >= 0) & (rel < wp)
        slot = torch.where(ok, rel, torch.full_like(rel, -1))
        if ratio:
            if ratio == 4:
                cs = torch.full((T, n), -1, dtype=torch.int64)
                for tt in range(T):
                    for j, c in enumerate(top[tt].tolist()):
                        if c >= 0:
                            cs[tt, c] = wp + j
            else:
                c = torch.arange(n)
                vis = c[None, :] < ((t + 1) // ratio)[:, None]
                cs = torch.where(vis, wp + c[None, :].expand(T, n), torch.full((T, n), -1, dtype=torch.int64))
            slot = torch.cat([slot, cs], 1)
        return slot

    def attention(self, h, p, ratio, tabs, trace):
        c, W, r = self.c, self.W, self.rnd
        T = h.shape[0]
        H, d, win = c["num_attention_heads"], c["head_dim"], c["sliding_window"]
        cos, sin = tabs["compress"] if ratio else tabs["main"]
        rd = cos.shape[-1] * 2
        qr = self.norm(self.linear(h, p + "wq_a.weight"), p + "q_norm.weight")
        q = self.linear(qr, p + "wq_b.weight").view(T, H, d)
        q = self.rope(self.q_rescale(q), cos[:T, None], sin[:T, None])
        kv = self.norm(self.linear(h, p + "wkv.weight"), p + "kv_norm.weight")
        kv = self.rope(kv, cos[:T], sin[:T])
        if r.on("qat_window_kv"):
            kv = torch.cat([fp8_round_trip(kv[:, :-rd], 64), kv[:, -rd:]], -1)
        keys, n, top = kv, 0, None
        if ratio:
            ck = self.compress(h, p + "compressor.", ratio, d, cos, sin, index=False)
            n = ck.shape[0]
            if ratio == 4:
                top, score = self.indexer(h, qr, p, cos, sin)
                trace["indexer_topk"], trace["indexer_score"] = top, score
            keys = torch.cat([kv, ck], 0)
        slot = self.official_slots(T, win, n, ratio, top)
        o = self.sparse_attn(q, keys, slot, W[p + "attn_sink"], d ** -0.5)
        o = self.rope(o, cos[:T, None], sin[:T, None], inverse=True)
        G, R = c["o_groups"], c["o_lora_rank"]
        wo_a = W[p + "wo_a.weight"].view(G, R, -1)    # bf16 einsum, no act quant
        o = r("linear_out", torch.einsum("tgd,grd->tgr", o.reshape(T, G, -1), wo_a))
        return self.linear(o.flatten(1), p + "wo_b.weight")

    # ---- MoE
    def expert(self, x, pre, w=None):
        lim = self.c["swiglu_limit"]
        g = self.linear(x, pre + "w1.weight").clamp(max=lim)
        u = self.linear(x, pre + "w3.weight").clamp(min=-lim, max=lim)
        a = F.silu(g) * u
        if w is not None:
            a = w * a
        return self.linear(self.rnd("bf16_store", a), pre + "w2.weight")

    def moe(self, h, p, ids, hashed, trace):
        c, W = self.c, self.W
        s = F.softplus(h @ W[p + "gate.weight"].T).sqrt()
        biased = s if hashed else s + W[p + "gate.bias"]
        if hashed:
            idx = W[p + "gate.tid2eid"][ids]
        else:
            idx = torch.sort(biased, dim=-1, descending=True, stable=True).indices[:, : c["num_experts_per_tok"]]
        w = s.gather(1, idx)
        w = w / w.sum(-1, keepdim=True) * c["routed_scaling_factor"]
        trace["experts"], trace["weights"], trace["gate_score"] = idx, w, biased
        sh = self.expert(h, p + "shared_experts.")
        y = sh.clone() if "moe_shared_first" in self.rnd.lantern else torch.zeros_like(h)
        for e in range(c["n_routed_experts"]):
            tok, slot = torch.where(idx == e)
            if tok.numel():
                y[tok] += self.expert(h[tok], f"{p}experts.{e}.", w[tok, slot, None])
        if "moe_shared_first" not in self.rnd.lantern:
            y = y + sh
        return self.rnd("bf16_store", y)

    # ---- blocks
    def block(self, X, p, ratio, hashed, ids, tabs, trace):
        c, W, r = self.c, self.W, self.rnd
        hc, it, he, eps = c["hc_mult"], c["hc_sinkhorn_iters"], c["hc_eps"], c["rms_norm_eps"]
        pre, post, comb = hc_mixes(X, W[p + "hc_attn_fn"], W[p + "hc_attn_scale"], W[p + "hc_attn_base"],
                                   hc, it, he, eps)
        h = self.norm(r("bf16_store", (pre[:, :, None] * X).sum(1)), p + "attn_norm.weight")
        X = r("bf16_store", hc_expand(self.attention(h, p + "attn.", ratio, tabs, trace), X, post, comb))
        pre, post, comb = hc_mixes(X, W[p + "hc_ffn_fn"], W[p + "hc_ffn_scale"], W[p + "hc_ffn_base"],
                                   hc, it, he, eps)
        h = self.norm(r("bf16_store", (pre[:, :, None] * X).sum(1)), p + "ffn_norm.weight")
        return r("bf16_store", hc_expand(self.moe(h, p + "ffn.", ids, hashed, trace), X, post, comb))

    def forward(self, ids):
        """Trunk forward: dict(logits [T,V] fp32, hidden [L][T,S,D], traces [L])."""
        c, W, r = self.c, self.W, self.rnd
        T = ids.shape[0]
        tabs = tables(c, T)
        X = W["embed.weight"][ids][:, None, :].expand(T, c["hc_mult"], -1).clone()
        hidden, traces = [], []
        for layer in range(c["num_hidden_layers"]):
            tr = {}
            X = self.block(X, f"layers.{layer}.", c["compress_ratios"][layer], layer < c["num_hash_layers"],
                           ids, tabs, tr)
            hidden.append(X)
            traces.append(tr)
        eps = c["rms_norm_eps"]
        y = self.norm(r("bf16_store", hc_head(X, W["hc_head_fn"], W["hc_head_scale"], W["hc_head_base"],
                                              c["hc_eps"], eps)), "norm.weight")
        return dict(logits=y @ W["head.weight"].T, hidden=hidden, traces=traces, final_hidden=y)


def reference_forward(W, c, ids, off=(), lantern=()):
    """REFERENCE-numerics forward (official rounding points; see Rounding for off/lantern)."""
    with torch.no_grad():
        rnd = Rounding(c["quantization_config"]["weight_block_size"][1], off, lantern)
        return RefModel(W, c, rnd).forward(ids)


def decision_margins(ref, c):
    """Smallest gaps of the reference run: top-1 logit margin per position [T], and the
    k-th minus (k+1)-th (score+bias) of every non-hash routing row and visible indexer row."""
    top2 = ref["logits"].topk(2, dim=-1).values
    logit_margin = top2[:, 0] - top2[:, 1]
    router, indexer, ties = float("inf"), float("inf"), 0
    k, K = c["num_experts_per_tok"], c["index_topk"]
    for layer, tr in enumerate(ref["traces"]):
        if layer >= c["num_hash_layers"]:
            v = tr["gate_score"].sort(-1, descending=True).values
            router = min(router, float((v[:, k - 1] - v[:, k]).min()))
        if "indexer_score" in tr:
            s = tr["indexer_score"]
            for t in range(s.shape[0]):
                vis = s[t][torch.isfinite(s[t])].sort(descending=True).values
                if vis.numel() > K:
                    gap = float(vis[K - 1] - vis[K])
                    indexer = min(indexer, gap)
                    ties += gap == 0
    return logit_margin, dict(router=router, indexer=indexer, indexer_ties=ties)
