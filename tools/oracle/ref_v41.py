"""Independent float32 reference of the DeepSeek-V4.1-Flash text model.

What it follows: the semantics of HF transformers `models/deepseek_v41` at commit
0a2080b4 (read, not copied; see tests/fixtures/README-v41.md for the side-by-side
reading), which shared/docs/v4-architecture.md section 5 describes. Where the two
differ, this file follows HF and README-v41.md says so.

Scope: one sequence, positions 0..T-1, full recompute (no cache), float32 weights
that are the DEQUANTISED checkpoint values, no activation quantisation. The QAT
fake-quant points that HF keeps in its float path ARE applied:
  * window KV: FP8 e4m3 round trip of the whole post-RoPE vector, blocks of 32,
    power-of-two scales (amax floored at 1e-4);
  * compressed KV: FP4 e2m1 round trip after RoPE, blocks of 16, E4M3 scales;
  * indexer keys and queries: FP4 round trip after RoPE, blocks of 32, pow-2 scales.
A fake quant is skipped when the last dim is not a multiple of its block (as HF).

Cross-layer sharing (CSA2) is modelled the way HF's cache path publishes it:
the latest KV source at or before a layer owns the compressed KV and the index
keys, the latest index source at or before it owns the top-k selection, and the
candidate source's block mask constrains every LATER index source. (HF's
use_cache=False path concatenates the entries of successive KV sources instead;
README-v41.md explains why that path is not the oracle.)

Shared with V4 and imported from ref_v4: RMSNorm, RoPE tables (YaRN) and
rotation, mHC mixes (Sinkhorn) and expand.
Letters: T tokens, S = hc_mult streams, D hidden, H heads, d head_dim, G groups.
"""

import numpy as np
import torch
import torch.nn.functional as F

import ref_v4
from ref_v4 import hc_expand, hc_mixes, rmsnorm, rope, rope_table

E2M1_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


# ---------------------------------------------------------------- fake quantisation

def pow2_at_least(t):
    """Smallest power of two >= t (t > 0, normal fp32): frexp gives t = m * 2^e with
    m in [0.5, 1); t is itself a power of two exactly when m == 0.5."""
    m, e = torch.frexp(t)
    return torch.ldexp(torch.ones_like(t), torch.where(m == 0.5, e - 1, e))


def e2m1_round(q):
    """Round (already clamped to [-6, 6]) values onto the e2m1 grid, nearest with ties
    to the even code. Between grid points g_i < g_{i+1} the midpoint goes down when
    code i is even and up when it is odd."""
    mag = q.abs()
    out = torch.zeros_like(mag)
    for i in range(7):
        lo, hi = E2M1_VALUES[i], E2M1_VALUES[i + 1]
        mid = (lo + hi) / 2
        up = (mag > mid) | ((mag == mid) & (i % 2 == 1))
        out = torch.where(up, torch.full_like(mag, hi), out)
    # the loop leaves, for each value, the largest grid point it rounds up to
    return torch.where(torch.signbit(q), -out, out)


def _blocks(x, block):
    n = x.shape[-1]
    return x.reshape(*x.shape[:-1], n // block, block)


def fq_fp8(x, block=32):
    """FP8 e4m3 round trip with one power-of-two scale per `block` channels."""
    if x.shape[-1] % block:
        return x
    b = _blocks(x, block)
    scale = pow2_at_least(b.abs().amax(-1, keepdim=True).clamp_min(1e-4) * (1.0 / 448.0))
    q = (b / scale).clamp(-448.0, 448.0).to(torch.float8_e4m3fn).float()
    return (q * scale).reshape(x.shape)


def fq_fp4(x, block, e4m3_scale):
    """FP4 e2m1 round trip per `block` channels. Scales: E4M3-rounded amax/6 (floor
    6*2^-9) when e4m3_scale, else the power of two >= amax/6 (floor 6*2^-126)."""
    if x.shape[-1] % block:
        return x
    b = _blocks(x, block)
    amax = b.abs().amax(-1, keepdim=True)
    if e4m3_scale:
        scale = (amax.clamp_min(6.0 * 2.0 ** -9) / 6.0).to(torch.float8_e4m3fn).float()
    else:
        scale = pow2_at_least(amax.clamp_min(6.0 * 2.0 ** -126) * (1.0 / 6.0))
    return (e2m1_round((b / scale).clamp(-6.0, 6.0)) * scale).reshape(x.shape)


# ---------------------------------------------------------------- Engram hashing

def compressed_token_map(tokenizer):
    """Engram's compressed vocabulary: every id is decoded on its own (specials kept),
    normalised (NFKC, NFD, strip accents, lowercase, whitespace runs -> one space, a
    lone space protected from Strip, Strip), and ids whose keys agree share a new id,
    numbered by first appearance. Decodes containing U+FFFD (partial UTF-8) are keyed
    by the raw token string; an empty normalised key falls back to the decoded text.
    `tokenizer` is a `tokenizers.Tokenizer`. Returns (list of new ids, count)."""
    from tokenizers import Regex, normalizers

    keep = "\ue000"
    norm = normalizers.Sequence([
        normalizers.NFKC(), normalizers.NFD(), normalizers.StripAccents(), normalizers.Lowercase(),
        normalizers.Replace(Regex(r"[ \t\r\n]+"), " "), normalizers.Replace(Regex(r"^ $"), keep),
        normalizers.Strip(), normalizers.Replace(keep, " "),
    ])
    ids, table = [], {}
    for i in range(tokenizer.get_vocab_size(with_added_tokens=True)):
        text = tokenizer.decode([i], skip_special_tokens=False)
        key = tokenizer.id_to_token(i) if "\ufffd" in text else (norm.normalize_str(text) or text)
        ids.append(table.setdefault(key, len(table)))
    return ids, len(table)


def _is_prime(n):
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    f = 3
    while f * f <= n:
        if n % f == 0:
            return False
        f += 2
    return True


def engram_primes(layer_ids, vocab, max_ngram, n_heads):
    """Bucket moduli [layer][n-gram order 2..N][head]: for each layer and order the
    search restarts just above vocab-1 and takes the next n_heads primes not handed
    out before (in any layer)."""
    used, out = set(), []
    for _ in layer_ids:
        per_layer = []
        for _ in range(max_ngram - 1):
            row, p = [], vocab - 1
            for _ in range(n_heads):
                p += 1
                while not _is_prime(p) or p in used:
                    p += 1
                used.add(p)
                row.append(p)
            per_layer.append(row)
        out.append(per_layer)
    return out


def engram_multipliers(layer_ids, max_ngram, compressed_vocab):
    """Odd int64 multipliers [layer][look-back]: 2r+1 with r the first max_ngram draws of
    numpy default_rng(10007 * layer_id).integers(0, bound, int64),
    bound = max(1, (2^63-1) // compressed_vocab // 2)."""
    bound = max(1, (np.iinfo(np.int64).max // compressed_vocab) // 2)
    rows = []
    for lid in layer_ids:
        r = np.random.default_rng(10007 * lid).integers(0, bound, size=(max_ngram,), dtype=np.int64)
        rows.append([int(v) * 2 + 1 for v in r])
    return rows


def engram_pad_token(c):
    """HF's key is engram_pad_id; the reconstructed release config (and Lantern's C
    parser) spell it engram_pad_token_id. Both default to 2."""
    a, b = c.get("engram_pad_id"), c.get("engram_pad_token_id")
    if a is not None and b is not None and a != b:
        raise ValueError(f"engram_pad_id {a} != engram_pad_token_id {b}")
    return a if a is not None else (b if b is not None else 2)


class EngramHasher:
    """Hash ids of the n-grams that end at each position (section 5.3, HF
    DeepseekV41NgramHashState without the cross-call history: positions are 0..T-1)."""

    def __init__(self, c, token_map, n_compressed):
        if n_compressed != c["engram_compressed_vocab_size"]:
            raise ValueError(f"tokenizer gives {n_compressed} compressed ids, config says "
                             f"{c['engram_compressed_vocab_size']}: every multiplier would differ")
        self.layer_ids = list(c["engram_layer_ids"])
        self.N, self.heads = c["engram_max_ngram_size"], c["engram_n_heads"]
        self.token_map = torch.tensor(token_map, dtype=torch.int64)
        self.pad = int(self.token_map[engram_pad_token(c)])
        self.primes = engram_primes(self.layer_ids, c["engram_vocab_size"], self.N, self.heads)
        self.offsets = []
        for per_layer in self.primes:
            flat = [p for row in per_layer for p in row]
            self.offsets.append([sum(flat[:j]) for j in range(len(flat))])
        # each layer's table has exactly as many rows as its buckets
        self.rows = [sum(p for row in per_layer for p in row) for per_layer in self.primes]
        if list(c.get("engram_num_embeddings") or self.rows) != self.rows:
            raise ValueError(f"engram_num_embeddings {c['engram_num_embeddings']} != bucket totals {self.rows}")
        self.mult = engram_multipliers(self.layer_ids, self.N, n_compressed)

    def lookback(self, compressed, live=None):
        """compressed [T] ids (already mapped) -> [T, N] windows: column k holds the id
        k positions back, or the pad id once the window has passed the sequence start
        or a dead (not live) position; from there on every further column is pad."""
        T = compressed.shape[0]
        live = torch.ones(T, dtype=torch.bool) if live is None else live
        pos = torch.arange(T)
        cut = torch.zeros(T, dtype=torch.bool)
        cols = []
        for k in range(self.N):
            src = (pos - k).clamp_min(0)
            cut = cut | (pos < k) | ~live[src]
            cols.append(torch.where(cut, torch.full_like(pos, self.pad), compressed[src]))
        return torch.stack(cols, -1)

    def hash_windows(self, win, slot):
        """[T, N] windows -> [T, (N-1)*heads] table rows of engram layer number `slot`."""
        mult = torch.tensor(self.mult[slot], dtype=torch.int64)
        prod = win * mult                      # < 2^63 by the choice of the bound
        acc = prod[:, 0]
        cols = []
        for n in range(1, self.N):
            acc = torch.bitwise_xor(acc, prod[:, n])
            p = torch.tensor(self.primes[slot][n - 1], dtype=torch.int64)
            cols.append(acc[:, None] % p)
        return torch.cat(cols, -1) + torch.tensor(self.offsets[slot], dtype=torch.int64)

    def __call__(self, ids, live=None):
        """ids [T] raw token ids -> {layer_id: [T, (N-1)*heads] int64 row ids}."""
        win = self.lookback(self.token_map[ids], live)
        return {lid: self.hash_windows(win, s) for s, lid in enumerate(self.layer_ids)}


def engram_hash_scalar(raw_ids, live, token_map, pad, mult, primes, offsets, N):
    """Plain-integer restatement of the hash (spec 5.3 steps 2-5) for one layer, used
    to cross-check EngramHasher. Returns a list of per-position lists."""
    out = []
    for p in range(len(raw_ids)):
        toks, blocked = [], False
        for k in range(N):
            if p - k < 0 or not live[p - k]:
                blocked = True
            toks.append(pad if blocked else token_map[raw_ids[p - k]])
        r = toks[0] * mult[0]
        row = []
        for n in range(2, N + 1):
            r ^= toks[n - 1] * mult[n - 1]
            for h, pr in enumerate(primes[n - 2]):
                row.append(r % pr + offsets[(n - 2) * len(primes[0]) + h])
        out.append(row)
    return out


def engram(X, rows, W, p, c):
    """Engram block at one layer. X [T, S, D] streams; rows [T, (N-1)*heads] table ids.
    Returns (new X, gate [T, S])."""
    T, S, D = X.shape
    eps = c["rms_norm_eps"]
    emb = W[p + "embed.weight"][rows].reshape(T, -1)          # dequantised rows, flattened
    kv = emb @ W[p + "wkv.weight"].T                          # [T, S*D + D]
    key, value = kv[:, : S * D].view(T, S, D), kv[:, S * D:]
    wt = W[p + "q_weight"] * W[p + "k_weight"]                # [S, D], used only as a product
    r = torch.rsqrt(X.square().mean(-1) + eps) * torch.rsqrt(key.square().mean(-1) + eps)
    dot = (X * wt * key).sum(-1) * r * D ** -0.5
    gate = torch.sigmoid(torch.copysign(dot.abs().clamp_min(1e-6).sqrt(), dot))
    return X + gate[..., None] * value[:, None, :], gate


# ---------------------------------------------------------------- CSA2 attention

def layer_roles(c):
    """Per layer: kv source used, index source used, and its own roles."""
    n = c["num_hidden_layers"]
    ratios = c["compress_ratios"][:n]
    kvs, ixs = list(c["kv_source_layer_ids"]), list(c["index_source_layer_ids"])
    cand = c.get("candidate_source_layer_id", -1)
    roles = []
    for l in range(n):
        if ratios[l] == 0:
            roles.append(dict(ratio=0))
            continue
        kv = max((s for s in kvs if s <= l), default=-1)
        ix = max((s for s in ixs if s <= l), default=-1)
        assert kv >= 0, f"layer {l}: no KV source at or before it"
        roles.append(dict(ratio=ratios[l], kv_source=kv, index_source=ix,
                          is_kv_source=l in kvs, is_index_source=l in ixs,
                          is_candidate_source=l == cand, uses_candidates=0 <= cand < l and l in ixs))
    return roles


def compressor(h, W, p, ratio, eps):
    """KV-source compressor: pre-RoPE latents [T // ratio, d] for the complete groups.
    Ratio 1 projects and normalises every token; ratio r > 1 softmax-pools r tokens per
    channel with the gate projection (no position bias, no overlap)."""
    kv = h @ W[p + "wkv.weight"].T
    if ratio == 1:
        return rmsnorm(kv, W[p + "norm.weight"], eps)
    n = h.shape[0] // ratio
    gate = (h @ W[p + "wgate.weight"].T)[: n * ratio].view(n, ratio, -1)
    pooled = (kv[: n * ratio].view(n, ratio, -1) * gate.softmax(dim=1)).sum(1)
    return rmsnorm(pooled, W[p + "norm.weight"], eps)


def candidate_blocks(score, nvis, k_blocks, bs):
    """Two-level top-k, level one. score [T, n] with invisible entries at -inf,
    nvis [T] visible counts. Per query: block score = max over its bs entries; the
    block holding the newest visible entry ((nvis-1)//bs) is forced in; keep the top
    k_blocks blocks that are not -inf. Returns (entry mask [T, n], kept block ids list)."""
    T, n = score.shape
    nb = -(-n // bs)
    padded = torch.full((T, nb * bs), float("-inf"))
    padded[:, :n] = score
    blk = padded.view(T, nb, bs).amax(-1)
    newest = torch.div(nvis - 1, bs, rounding_mode="floor")      # -1 when nothing is visible
    blk = torch.where(torch.arange(nb)[None, :] == newest[:, None], torch.full_like(blk, float("inf")), blk)
    top = blk.topk(min(k_blocks, nb), dim=-1)
    keep = torch.zeros(T, nb, dtype=torch.bool)
    keep.scatter_(1, top.indices, top.values > float("-inf"))
    return keep.repeat_interleave(bs, dim=1)[:, :n], keep


def index_select(h, qr, keys, W, p, c, ratio, cos, sin, candidates):
    """Index score of an index-source layer against the shared keys [n, di].
    Returns (selected mask [T, n], masked scores [T, n], nvis [T])."""
    T = h.shape[0]
    nI, dI = c["index_n_heads"], c["index_head_dim"]
    q = (qr @ W[p + "indexer.wq_b.weight"].T).view(T, nI, dI)
    q = fq_fp4(rope(q, cos[:T, None], sin[:T, None]), 32, False)
    wts = (h @ W[p + "indexer.weights_proj.weight"].T) * nI ** -0.5
    score = (torch.einsum("thd,nd->thn", q, keys).relu() * dI ** -0.5 * wts[:, :, None]).sum(1)
    n = keys.shape[0]
    nvis = torch.div(torch.arange(1, T + 1), ratio, rounding_mode="floor")
    score = score.masked_fill(torch.arange(n)[None, :] >= nvis[:, None], float("-inf"))
    if candidates is not None:
        score = score.masked_fill(~candidates, float("-inf"))
    k = min(c["index_topk"], n)
    sel = torch.zeros(T, n, dtype=torch.bool)
    if k > 0:
        top = score.topk(k, dim=-1)
        sel.scatter_(1, top.indices, top.values > float("-inf"))
    return sel, score, nvis


def attention(h, W, p, c, role, tabs, shared, trace):
    """One V4.1 attention layer; `shared` carries what sources publish to later layers
    within the forward: 'kv' (compressed entries), 'keys' (index keys), 'sel' (top-k
    mask), 'cand' (candidate mask)."""
    T = h.shape[0]
    H, d, eps, win = c["num_attention_heads"], c["head_dim"], c["rms_norm_eps"], c["sliding_window"]
    ratio = role["ratio"]
    cos, sin = tabs["compress"] if ratio else tabs["main"]
    qr = rmsnorm(h @ W[p + "wq_a.weight"].T, W[p + "q_norm.weight"], eps)
    q = rope((qr @ W[p + "wq_b.weight"].T).view(T, H, d), cos[:T, None], sin[:T, None])   # no q rescale
    kv = rmsnorm(h @ W[p + "wkv.weight"].T, W[p + "kv_norm.weight"], eps)
    kv = fq_fp8(rope(kv, cos[:T], sin[:T]), 32)
    t = torch.arange(T)
    allow = (t[None, :] <= t[:, None]) & (t[None, :] > t[:, None] - win)
    keys = kv
    if ratio:
        if role["is_kv_source"]:
            latent = compressor(h, W, p + "compressor.", ratio, eps)
            pos = torch.arange(latent.shape[0]) * ratio
            if role["is_index_source"]:
                ik = rmsnorm(latent @ W[p + "indexer.wk.weight"].T, W[p + "indexer.k_norm.weight"], eps)
                shared["keys"] = fq_fp4(rope(ik, cos[pos], sin[pos]), 32, False)
            shared["kv"] = fq_fp4(rope(latent, cos[pos], sin[pos]), 16, True)
            shared["kv_ratio"] = ratio
        if role["is_index_source"]:
            cand = shared.get("cand") if role["uses_candidates"] else None
            sel, score, nvis = index_select(h, qr, shared["keys"], W, p, c, ratio, cos, sin, cand)
            if role["is_candidate_source"]:
                cmask, cblocks = candidate_blocks(score, nvis, c["candidate_topk_blocks"], c["candidate_block_size"])
                shared["cand"] = cmask
                trace["candidate_blocks"] = cblocks
            shared["sel"] = sel
            trace["index_scores"], trace["index_sel"] = score, sel
        comp = shared["kv"]
        assert shared["sel"].shape[1] == comp.shape[0], "top-k and compressed KV come from different groups"
        keys = torch.cat([kv, comp], 0)
        allow = torch.cat([allow, shared["sel"]], 1)
    s = torch.einsum("thd,kd->htk", q, keys) * d ** -0.5
    s = s.masked_fill(~allow[None], float("-inf"))
    sink = W[p + "attn_sink"][:, None, None].expand(H, T, 1)
    prob = torch.cat([s, sink], -1).softmax(-1)[..., :-1]
    o = rope(torch.einsum("htk,kd->thd", prob, keys), cos[:T, None], sin[:T, None], inverse=True)
    G, R = c["o_groups"], c["o_lora_rank"]
    o = torch.einsum("tgi,gri->tgr", o.reshape(T, G, -1), W[p + "wo_a.weight"].view(G, R, -1))
    return o.flatten(1) @ W[p + "wo_b.weight"].T


# ---------------------------------------------------------------- MoE

def moe(h, W, p, c, trace):
    """V4.1 MoE: sqrt(softplus(logits / gate_temp)); bias for selection only (bias_vl is
    for image tokens, not used by text); weights normalised with +1e-20 when k > 1,
    times routed_scaling_factor; clamped SwiGLU; one shared expert, same clamps."""
    lim, k = c["swiglu_limit"], c["num_experts_per_tok"]

    def swiglu(x, pre):
        g = (x @ W[pre + "w1.weight"].T).clamp(max=lim)
        u = (x @ W[pre + "w3.weight"].T).clamp(min=-lim, max=lim)
        return F.silu(g) * u

    s = F.softplus((h @ W[p + "gate.weight"].T) / c.get("gate_temp", 1.0)).sqrt()
    biased = s + W[p + "gate.bias"]
    idx = biased.topk(k, dim=-1).indices
    w = s.gather(1, idx)
    if c.get("norm_topk_prob", True) and k > 1:
        w = w / (w.sum(-1, keepdim=True) + 1e-20)
    w = w * c["routed_scaling_factor"]
    trace["experts"], trace["weights"], trace["biased_scores"] = idx, w, biased
    y = torch.zeros_like(h)
    for e in idx.unique().tolist():
        tok, slot = torch.where(idx == e)
        a = swiglu(h[tok], f"{p}experts.{e}.") * w[tok, slot, None]
        y.index_add_(0, tok, a @ W[f"{p}experts.{e}.w2.weight"].T)
    return y + swiglu(h, p + "shared_experts.") @ W[p + "shared_experts.w2.weight"].T


# ---------------------------------------------------------------- model

def tables(c, T):
    """'main' (rope_theta, no YaRN) for ratio-0 layers; 'compress' (compress_rope_theta,
    YaRN when rope_scaling says yarn, no mscale) for every compressed layer."""
    rs = c.get("rope_scaling") or {}
    kind = rs.get("rope_type", rs.get("type", "default"))
    yarn = None
    if kind == "yarn":
        yarn = dict(factor=rs["factor"], orig=rs["original_max_position_embeddings"],
                    beta_fast=rs.get("beta_fast") or 32, beta_slow=rs.get("beta_slow") or 1)
    rd = c["qk_rope_head_dim"]
    return {"main": rope_table(rd, T, c["rope_theta"], None),
            "compress": rope_table(rd, T, c["compress_rope_theta"], yarn)}


def collapse(X, pre):
    return (pre[:, :, None] * X).sum(1)


def forward(W, c, ids, hasher=None):
    """Full-sequence forward from position 0. W: official names -> float32 (dequantised)
    tensors; c: the text config (flat dict). Returns dict(logits [T,V], hidden [L][T,S,D],
    final_hidden [T,D], traces [L] dicts, hash {layer: [T, 24]})."""
    T, S = ids.shape[0], c["hc_mult"]
    n, eps = c["num_hidden_layers"], c["rms_norm_eps"]
    it, he = c["hc_sinkhorn_iters"], c["hc_eps"]
    tabs = tables(c, T)
    roles = layer_roles(c)
    eng_layers = set(c.get("engram_layer_ids") or [])
    hashes = hasher(ids) if eng_layers else {}
    X = W["embed.weight"][ids][:, None, :].expand(T, S, -1).clone()
    pre = torch.zeros(T, S)
    pre[:, 0] = 1.0                                    # the first site reads stream 0 only
    shared, hidden, traces = {}, [], []
    for layer in range(n):
        p, tr = f"layers.{layer}.", {"role": roles[layer]}
        if layer in eng_layers:
            X, tr["engram_gate"] = engram(X, hashes[layer], W, p + "engram.", c)
        a_pre, a_post, a_comb = hc_mixes(X, W[p + "hc_attn_fn"], W[p + "hc_attn_scale"], W[p + "hc_attn_base"],
                                         S, it, he, eps)
        h = rmsnorm(collapse(X, pre), W[p + "attn_norm.weight"], eps)
        X = hc_expand(attention(h, W, p + "attn.", c, roles[layer], tabs, shared, tr), X, a_post, a_comb)
        f_pre, f_post, f_comb = hc_mixes(X, W[p + "hc_ffn_fn"], W[p + "hc_ffn_scale"], W[p + "hc_ffn_base"],
                                         S, it, he, eps)
        h = rmsnorm(collapse(X, a_pre), W[p + "ffn_norm.weight"], eps)
        X = hc_expand(moe(h, W, p + "ffn.", c, tr), X, f_post, f_comb)
        pre = f_pre                                    # consumed by the next site
        hidden.append(X)
        traces.append(tr)
    y = rmsnorm(collapse(X, pre), W["norm.weight"], eps)
    return dict(logits=y @ W["head.weight"].T, hidden=hidden, final_hidden=y, traces=traces, hash=hashes)


def greedy(W, c, prompt, n_new, hasher=None):
    """Full-recompute greedy decode. Returns (tokens [n_new], top1-top2 gaps)."""
    ids, out, gaps = prompt.clone(), [], []
    for _ in range(n_new):
        logits = forward(W, c, ids, hasher)["logits"][-1]
        top2 = logits.topk(2).values
        gaps.append(float(top2[0] - top2[1]))
        nxt = int(logits.argmax())
        out.append(nxt)
        ids = torch.cat([ids, torch.tensor([nxt])])
    return torch.tensor(out, dtype=torch.int64), gaps


# =====================================================================================
# REFERENCE numerics: the rounding points of DeepSeek's official V4.1 inference code
# =====================================================================================
#
# forward() above is the exact (fp32) semantics plus the QAT round trips. RefModel
# below adds what the official V4.1 inference/model.py computes with bf16 activations
# and FP8 activation quantisation, the V4 rounding points (ref_v4.RefModel, whose
# primitives it inherits) carried over to V4.1's structure. Facts used (spec sections
# 3.4-3.6 and 5, which cite the official V4.1 files, and ref_v4's reading of the V4
# code that V4.1 keeps):
#   linear()          FP8/FP4 weight: act_quant in blocks of weight_block_size[1] (32),
#                     pow-2 scales, fp32 partial sums per block, bf16 output; BF16
#                     weight: F.linear in bf16 (bf16 output). wo_a: bf16 einsum on the
#                     dequantised weight, no act quant.
#   RMSNorm           fp32 on x.float(), weight multiply in fp32, .to(bf16).
#   mHC               mixes in fp32 on X.float(); collapse .to(bf16); expand in fp32,
#                     .to(bf16). Single pass: a site collapses with the previous site's
#                     pre; the head collapses with the last FFN pre (bf16), norm, fp32 head.
#   Engram            gathered rows dequantised (exact in bf16), wkv FP8 linear (bf16
#                     key/value), gate in fp32, X + gate * value in fp32 .to(bf16).
#   Attention         q = wq_b(q_norm(wq_a x)), no q rescale, RoPE into bf16;
#                     kv = kv_norm(wkv x), RoPE into bf16, FP8 round trip of all of it
#                     (block 32); sparse_attn (blockwise online softmax, bf16 P, bf16
#                     out); inverse RoPE into bf16; grouped wo_a; wo_b.
#   Compressor        ratio 2: x.float() @ wkv / wgate in fp32, softmax pooling in fp32,
#                     .to(bf16); ratio 1: wkv as a bf16 F.linear; then norm (bf16). Index
#                     keys: k_norm(wk(latent)) (bf16), RoPE into bf16, FP4 (block 32,
#                     pow-2); entries: RoPE into bf16, FP4 (block 16, E4M3 scales).
#   Indexer           q = wq_b(qr), RoPE into bf16, FP4; weights = weights_proj(x) (bf16)
#                     * di^-1/2 Hi^-1/2 (bf16); score = einsum(q, k) (bf16), relu,
#                     * weights (bf16), sum over heads (bf16); candidate blocks and
#                     top-k rank those bf16 scores (ties to the lower id).
#   Gate              x.float() @ W.float(), sqrt(softplus(./gate_temp)), top-k on
#                     score + bias, w / (sum w + 1e-20) * route_scale.
#   MoE               routed experts in ascending id into an fp32 sum, then the shared
#                     expert; .to(bf16). Expert: w1, w3 bf16, clamps, silu * u * weight
#                     (fp32), .to(bf16), w2.
# The sparse_attn index row is the query's window (ascending positions) followed by its
# selected entries (ascending); in the tiny fixtures every row fits one block of 64, so
# its block layout cannot matter there.

class RefModel(ref_v4.RefModel):
    """One forward pass in REFERENCE numerics over dequantised official-name V4.1
    weights W (float32 values); c: the flat text config; block: weight_block_size[1]."""

    def __init__(self, W, c, block, rnd=None):
        super().__init__(W, dict(c, quantization_config={"weight_block_size": [block, block]}), rnd)

    @staticmethod
    def _is_quantised(name):
        fp8 = ("attn.wq_a.", "attn.wq_b.", "attn.wkv.", "attn.wo_b.", "indexer.wq_b.", "shared_experts.",
               "engram.wkv.")
        return any(f in name for f in fp8) or ".experts." in name

    def engram(self, X, rows, p):
        T, S, D = X.shape
        emb = ref_v4.bf16(self.W[p + "embed.weight"][rows].reshape(T, -1))
        kv = self.linear(emb, p + "wkv.weight")
        key, value = kv[:, : S * D].view(T, S, D), kv[:, S * D:]
        eps = self.c["rms_norm_eps"]
        wt = self.W[p + "q_weight"] * self.W[p + "k_weight"]
        r = torch.rsqrt(X.square().mean(-1) + eps) * torch.rsqrt(key.square().mean(-1) + eps)
        dot = (X * wt * key).sum(-1) * r * D ** -0.5
        gate = torch.sigmoid(torch.copysign(dot.abs().clamp_min(1e-6).sqrt(), dot))
        return self.rnd("bf16_store", X + gate[..., None] * value[:, None, :]), gate

    def compressor(self, h, p, ratio):
        W = self.W
        if ratio == 1:
            kv = self.linear(h, p + "wkv.weight")
        else:
            n = h.shape[0] // ratio
            kv = (h @ W[p + "wkv.weight"].T)[: n * ratio].view(n, ratio, -1)
            gate = (h @ W[p + "wgate.weight"].T)[: n * ratio].view(n, ratio, -1)
            kv = self.rnd("bf16_store", (kv * gate.softmax(dim=1)).sum(1))
        return self.norm(kv, p + "norm.weight")

    def index_scores(self, h, qr, keys, p, ratio, cos, sin, candidates):
        """bf16 index scores [T, n] of an index source against the shared keys, with
        invisible (and, after the candidate source, non-candidate) entries at -inf."""
        c, r = self.c, self.rnd
        T = h.shape[0]
        nI, dI = c["index_n_heads"], c["index_head_dim"]
        q = self.rope(self.linear(qr, p + "indexer.wq_b.weight").view(T, nI, dI), cos[:T, None], sin[:T, None])
        q = fq_fp4(q, 32, False)
        b = ref_v4.bf16 if r.on("indexer_score_bf16") else (lambda x: x)
        wts = b(self.linear(h, p + "indexer.weights_proj.weight") * (dI ** -0.5 * nI ** -0.5))
        s = b(torch.einsum("thd,nd->thn", q, keys)).relu()
        score = b(b(s * wts[:, :, None]).sum(1))
        n = keys.shape[0]
        nvis = torch.div(torch.arange(1, T + 1), ratio, rounding_mode="floor")
        score = score.masked_fill(torch.arange(n)[None, :] >= nvis[:, None], float("-inf"))
        if candidates is not None:
            score = score.masked_fill(~candidates, float("-inf"))
        return score, nvis

    @staticmethod
    def top_mask(score, k):
        """The k best entries per row that are not -inf (stable: ties to the lower id), as
        a mask (a forced candidate block scores +inf)."""
        T, n = score.shape
        k = min(k, n)
        order = torch.sort(score, dim=-1, descending=True, stable=True).indices[:, :k]
        keep = torch.zeros(T, n, dtype=torch.bool)
        keep.scatter_(1, order, score.gather(1, order) > float("-inf"))
        return keep

    def candidate_blocks(self, score, nvis):
        c = self.c
        bs, kb = c["candidate_block_size"], c["candidate_topk_blocks"]
        T, n = score.shape
        nb = -(-n // bs)
        padded = torch.full((T, nb * bs), float("-inf"))
        padded[:, :n] = score
        blk = padded.view(T, nb, bs).amax(-1)
        newest = torch.div(nvis - 1, bs, rounding_mode="floor")
        blk = torch.where(torch.arange(nb)[None, :] == newest[:, None], torch.full_like(blk, float("inf")), blk)
        keep = self.top_mask(blk, kb)
        return keep.repeat_interleave(bs, dim=1)[:, :n], keep

    def attention(self, h, p, role, tabs, shared, trace):
        c, W, r = self.c, self.W, self.rnd
        T = h.shape[0]
        H, d, win = c["num_attention_heads"], c["head_dim"], c["sliding_window"]
        ratio = role["ratio"]
        cos, sin = tabs["compress"] if ratio else tabs["main"]
        qr = self.norm(self.linear(h, p + "wq_a.weight"), p + "q_norm.weight")
        q = self.rope(self.linear(qr, p + "wq_b.weight").view(T, H, d), cos[:T, None], sin[:T, None])
        kv = self.norm(self.linear(h, p + "wkv.weight"), p + "kv_norm.weight")
        kv = fq_fp8(self.rope(kv, cos[:T], sin[:T]), 32)
        t = torch.arange(T)
        lo = (t - win + 1).clamp(min=0)
        rel = t[None, :] - lo[:, None]
        slot = torch.where((rel >= 0) & (t[None, :] <= t[:, None]), rel, torch.full_like(rel, -1))
        keys = kv
        if ratio:
            if role["is_kv_source"]:
                latent = self.compressor(h, p + "compressor.", ratio)
                pos = torch.arange(latent.shape[0]) * ratio
                if role["is_index_source"]:
                    ik = self.norm(self.linear(latent, p + "indexer.wk.weight"), p + "indexer.k_norm.weight")
                    shared["keys"] = fq_fp4(self.rope(ik, cos[pos], sin[pos]), 32, False)
                shared["kv"] = fq_fp4(self.rope(latent, cos[pos], sin[pos]), 16, True)
            if role["is_index_source"]:
                cand = shared.get("cand") if role["uses_candidates"] else None
                score, nvis = self.index_scores(h, qr, shared["keys"], p, ratio, cos, sin, cand)
                if role["is_candidate_source"]:
                    shared["cand"], trace["candidate_blocks"] = self.candidate_blocks(score, nvis)
                shared["sel"] = self.top_mask(score, c["index_topk"])
                trace["index_scores"], trace["index_sel"] = score, shared["sel"]
            sel = shared["sel"]
            assert sel.shape[1] == shared["kv"].shape[0], "top-k and compressed KV come from different groups"
            nwin = (slot >= 0).sum(1, keepdim=True)
            cslot = torch.where(sel, nwin + sel.long().cumsum(1) - 1, torch.full(sel.shape, -1, dtype=torch.int64))
            keys = torch.cat([kv, shared["kv"]], 0)
            slot = torch.cat([slot, cslot], 1)
        o = self.sparse_attn(q, keys, slot, W[p + "attn_sink"], d ** -0.5)
        o = self.rope(o, cos[:T, None], sin[:T, None], inverse=True)
        G, R = c["o_groups"], c["o_lora_rank"]
        o = r("linear_out", torch.einsum("tgi,gri->tgr", o.reshape(T, G, -1), W[p + "wo_a.weight"].view(G, R, -1)))
        return self.linear(o.flatten(1), p + "wo_b.weight")

    def moe(self, h, p, trace):
        c, W = self.c, self.W
        k = c["num_experts_per_tok"]
        s = F.softplus((h @ W[p + "gate.weight"].T) / c.get("gate_temp", 1.0)).sqrt()
        biased = s + W[p + "gate.bias"]
        idx = torch.sort(biased, dim=-1, descending=True, stable=True).indices[:, :k]
        w = s.gather(1, idx)
        if c.get("norm_topk_prob", True) and k > 1:
            w = w / (w.sum(-1, keepdim=True) + 1e-20)
        w = w * c["routed_scaling_factor"]
        trace["experts"], trace["weights"], trace["biased_scores"] = idx, w, biased
        y = torch.zeros_like(h)
        for e in range(c["n_routed_experts"]):
            tok, slot = torch.where(idx == e)
            if tok.numel():
                y[tok] += self.expert(h[tok], f"{p}experts.{e}.", w[tok, slot, None])
        return self.rnd("bf16_store", y + self.expert(h, p + "shared_experts."))

    def forward(self, ids, hasher=None):
        """Same outputs as ref_v41.forward, in REFERENCE numerics."""
        c, W, r = self.c, self.W, self.rnd
        T, S = ids.shape[0], c["hc_mult"]
        n, eps = c["num_hidden_layers"], c["rms_norm_eps"]
        it, he = c["hc_sinkhorn_iters"], c["hc_eps"]
        tabs = tables(c, T)
        roles = layer_roles(c)
        eng_layers = set(c.get("engram_layer_ids") or [])
        hashes = hasher(ids) if eng_layers else {}
        X = W["embed.weight"][ids][:, None, :].expand(T, S, -1).clone()
        pre = torch.zeros(T, S)
        pre[:, 0] = 1.0
        shared, hidden, traces = {}, [], []
        for layer in range(n):
            p, tr = f"layers.{layer}.", {"role": roles[layer]}
            if layer in eng_layers:
                X, tr["engram_gate"] = self.engram(X, hashes[layer], p + "engram.")
            a_pre, a_post, a_comb = hc_mixes(X, W[p + "hc_attn_fn"], W[p + "hc_attn_scale"], W[p + "hc_attn_base"],
                                             S, it, he, eps)
            h = self.norm(r("bf16_store", collapse(X, pre)), p + "attn_norm.weight")
            a = self.attention(h, p + "attn.", roles[layer], tabs, shared, tr)
            X = r("bf16_store", hc_expand(a, X, a_post, a_comb))
            f_pre, f_post, f_comb = hc_mixes(X, W[p + "hc_ffn_fn"], W[p + "hc_ffn_scale"], W[p + "hc_ffn_base"],
                                             S, it, he, eps)
            h = self.norm(r("bf16_store", collapse(X, a_pre)), p + "ffn_norm.weight")
            X = r("bf16_store", hc_expand(self.moe(h, p + "ffn.", tr), X, f_post, f_comb))
            pre = f_pre
            hidden.append(X)
            traces.append(tr)
        y = self.norm(r("bf16_store", collapse(X, pre)), "norm.weight")
        return dict(logits=y @ W["head.weight"].T, hidden=hidden, final_hidden=y, traces=traces, hash=hashes)


def reference_forward(W, c, ids, block, hasher=None, off=()):
    """REFERENCE-numerics forward; `off` switches official rounding points off
    (ref_v4.BF16_POINTS names) to measure what each one moves."""
    with torch.no_grad():
        return RefModel(W, c, block, ref_v4.Rounding(block, off)).forward(ids, hasher)
