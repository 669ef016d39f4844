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
