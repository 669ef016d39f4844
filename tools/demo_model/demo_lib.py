"""Shared code for the demo model: building the HF model (+ an MTP head that HF does
not implement), training-time hooks (indexer distillation, expert load balancing),
quantisation views (FP8/FP4/BF16 exactly as exported), the HF <-> official name
mapping, data windows and evaluation.

The official format, quantisers and the official->HF mapping come from
tools/oracle/v4_format.py; the MTP forward follows shared/docs/v4-architecture.md
§4.6 (and tools/oracle/ref_v4.py mtp_forward, which export.py checks it against).
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools", "oracle"))

import demo_config as dc  # noqa: E402
import v4_format  # noqa: E402
from transformers import DeepseekV4ForCausalLM  # noqa: E402
from transformers.masking_utils import create_sliding_window_causal_mask  # noqa: E402
from transformers.models.deepseek_v4 import modeling_deepseek_v4 as mv4  # noqa: E402

BOS, EOS = 0, 1


# ---------------------------------------------------------------- model

class MTP(nn.Module):
    """Official MTP block mtp.0 (spec §4.6): a sliding-only, score-routed decoder
    block fed with e_proj(enorm(embed(next token))) + h_proj(hnorm(main streams)),
    then its own hc_head and norm, and the trunk's head. Row t (position t) sees
    token t+1 and the trunk's final streams at t, and predicts token t+2."""

    def __init__(self, c):
        super().__init__()
        self.cfg = dc.hf_config(c, mtp=True)
        D, eps = c["hidden_size"], c["rms_norm_eps"]
        self.e_proj = nn.Linear(D, D, bias=False)
        self.h_proj = nn.Linear(D, D, bias=False)
        self.enorm = mv4.DeepseekV4RMSNorm(D, eps=eps)
        self.hnorm = mv4.DeepseekV4RMSNorm(D, eps=eps)
        self.norm = mv4.DeepseekV4RMSNorm(D, eps=eps)
        self.layer = mv4.DeepseekV4DecoderLayer(self.cfg, 0)
        self.hc_head = mv4.DeepseekV4HyperHead(self.cfg)
        self.rotary_emb = mv4.DeepseekV4RotaryEmbedding(self.cfg)

    def forward(self, embed_w, head_w, ids, X_main):
        """ids [B, T], X_main [B, T, hc, D] (trunk streams before hc_head) ->
        logits [B, T-1, V]; row t predicts ids[t+2]."""
        nxt = ids[:, 1:]
        e = self.e_proj(self.enorm(F.embedding(nxt, embed_w)))
        x = self.h_proj(self.hnorm(X_main[:, :-1]))
        X = e.unsqueeze(2) + x
        B, T = nxt.shape
        pos = torch.arange(T).unsqueeze(0).expand(B, -1)
        pe = {"main": self.rotary_emb(e, position_ids=pos, layer_type="main"),
              "compress": self.rotary_emb(e, position_ids=pos, layer_type="compress")}
        mask = create_sliding_window_causal_mask(config=self.cfg, inputs_embeds=e, attention_mask=None,
                                                 cache=None, position_ids=pos)
        X = self.layer(X, position_embeddings=pe, position_ids=pos, attention_mask=mask, input_ids=nxt, cache=None)
        return F.linear(self.norm(self.hc_head(X)), head_w)


def fill_tid2eid(model, c, token_counts, seed):
    """Hash-routing tables: token v -> num_experts_per_tok distinct experts.
    Tokens are ranked by training frequency and dealt out round-robin so each
    expert gets a similar load; each hash layer permutes the expert ids."""
    E, K, V = c["n_routed_experts"], c["num_experts_per_tok"], c["vocab_size"]
    order = torch.argsort(-token_counts.double(), stable=True)
    rank = torch.empty(V, dtype=torch.long)
    rank[order] = torch.arange(V)
    cols = [rank % E]
    for k in range(1, K):
        # distinct from all earlier picks: offset by k..E-1 steps, varied with the rank
        cols.append((rank + k + (rank // E) % (E - K + 1)) % E)
    base = torch.stack(cols, 1)
    g = torch.Generator().manual_seed(seed)
    for layer in range(c["num_hash_layers"]):
        perm = torch.randperm(E, generator=g)
        router = model.model.layers[layer].mlp.gate
        assert isinstance(router, mv4.DeepseekV4HashRouter)
        router.tid2eid.copy_(perm[base])
        t = router.tid2eid
        assert int(t.min()) >= 0 and int(t.max()) < E
        assert all(len(set(r)) == K for r in t[:64].tolist())


def build(c, seed, token_counts=None):
    """Fresh HF trunk (float32, eager) and MTP head with HF's initialisation."""
    torch.manual_seed(seed)
    model = DeepseekV4ForCausalLM(dc.hf_config(c)).float()
    mtp = MTP(c).float()
    mtp.apply(model._init_weights)
    if token_counts is None:
        token_counts = torch.zeros(c["vocab_size"])
    fill_tid2eid(model, c, token_counts, seed)
    return model, mtp


def final_streams(model):
    """Registers a hook that keeps the trunk's final streams (input of hc_head)."""
    box = {}

    def hook(mod, args):
        box["X"] = args[0]
    model.model.hc_head.register_forward_pre_hook(hook)
    return box


# ---------------------------------------------------------------- training hooks

class IndexerDistill:
    """Trains the lightning indexers (whose top-k is not differentiable) by
    distillation, as DeepSeek does for DSA: for every CSA layer the indexer's
    scores over the compressed entries are pulled (cross-entropy / KL) toward the
    head-averaged attention distribution of the main queries over the same
    entries. The indexer's inputs are detached, so this loss only trains the
    indexer (wq_b, weights_proj and its compressor)."""

    def __init__(self, model):
        self.active = False
        self.losses = []
        self.scores = {}
        for layer in model.model.layers:
            comp = layer.self_attn.compressor
            if isinstance(comp, mv4.DeepseekV4CSACompressor):
                comp.indexer.register_forward_pre_hook(self._detach)
                comp.indexer.scorer.register_forward_hook(self._keep_scores(comp))
                comp.register_forward_hook(self._loss(layer.self_attn))

    def _detach(self, mod, args):
        if not self.active:
            return None
        return (args[0].detach(), args[1].detach()) + tuple(args[2:])

    def _keep_scores(self, comp):
        def hook(mod, args, out):
            if self.active:
                self.scores[id(comp)] = out
        return hook

    def _loss(self, attn):
        def hook(comp, args, out):
            if not self.active:
                return
            hs, qr, pos = args[0], args[1], args[2]
            ckv = out[0].detach()[:, 0]                                   # [B, n, d]
            scores = self.scores.pop(id(comp))                            # [B, T, n]
            B, T, _ = hs.shape
            n = ckv.shape[1]
            if n == 0:
                return
            with torch.no_grad():
                q = attn.q_b_proj(qr).view(B, T, -1, attn.head_dim).transpose(1, 2)
                q = attn.q_b_norm(q)
                cos, sin = comp.rotary_emb(hs, position_ids=pos, layer_type="compress")
                q = mv4.apply_rotary_pos_emb(q, cos, sin)                 # [B, H, T, d]
                logits = torch.einsum("bhtd,bnd->bhtn", q, ckv) * attn.scaling
                vis = torch.arange(n)[None, None, :] < ((pos + 1) // comp.compress_rate)[:, :, None]
                vis = vis.expand(B, T, n)                                 # [B, T, n]
                logits = logits.masked_fill(~vis[:, None], float("-inf"))
                rows = vis.any(-1)                                        # [B, T]
                # rows with no visible entry would be all -inf; give them zeros, then drop them
                p = torch.softmax(logits.masked_fill(~rows[:, None, :, None], 0.0), -1).mean(1)  # [B,T,n]
                p = torch.where(vis, p, torch.zeros_like(p))
            logq = torch.log_softmax(scores.float().masked_fill(~vis, -1e9), -1)
            ce = -(p * logq).sum(-1)
            ent = -(p * torch.log(p.clamp_min(1e-30))).sum(-1)
            kl = (ce - ent)[rows]
            self.losses.append(kl.mean())
        return hook

    def pop(self):
        loss = torch.stack(self.losses).mean() if self.losses else torch.zeros(())
        self.losses = []
        return loss


class LoadBalance:
    """Auxiliary-loss-free load balancing (DeepSeek-V3): after each step every
    score-routed layer's e_score_correction_bias (official ffn.gate.bias) moves by
    +-rate toward equal expert load, from that step's expert counts. It only
    affects which experts are selected, not their weights."""

    def __init__(self, modules, rate):
        self.rate = rate
        self.active = False
        self.routers = [m for mod in modules for m in mod.modules() if isinstance(m, mv4.DeepseekV4TopKRouter)]
        self.hash_routers = [m for mod in modules for m in mod.modules() if isinstance(m, mv4.DeepseekV4HashRouter)]
        self.step_counts, self.counts = {}, {}
        for r in self.routers + self.hash_routers:
            r.register_forward_hook(self._count)

    def _count(self, mod, args, out):
        if self.active:
            c = torch.bincount(out[2].reshape(-1), minlength=mod.num_experts).float()
            self.step_counts[id(mod)] = self.step_counts.get(id(mod), 0) + c
            self.counts[id(mod)] = self.counts.get(id(mod), 0) + c

    @torch.no_grad()
    def update(self):
        for r in self.routers:
            c = self.step_counts.get(id(r))
            if c is not None:
                r.e_score_correction_bias += self.rate * torch.sign(c.mean() - c)
                r.e_score_correction_bias -= r.e_score_correction_bias.mean()
        self.step_counts = {}

    def stats(self):
        """max/mean expert load per router (hash layers first) since the last reset."""
        out = []
        for r in self.hash_routers + self.routers:
            c = self.counts.get(id(r))
            if c is not None:
                out.append(float(c.max() / c.mean()))
        return out

    def reset(self):
        self.counts = {}


# ---------------------------------------------------------------- HF <-> official

_LEAF_TO_HF = dict(v4_format._HF_LEAF)


def hf_to_official(model, mtp, c):
    """Trained modules -> {official name: float32 tensor (int64 for tid2eid)}."""
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    out = {
        "embed.weight": sd.pop("model.embed_tokens.weight"),
        "head.weight": sd.pop("lm_head.weight"),
        "norm.weight": sd.pop("model.norm.weight"),
        "hc_head_fn": sd.pop("model.hc_head.hc_fn"),
        "hc_head_base": sd.pop("model.hc_head.hc_base"),
        "hc_head_scale": sd.pop("model.hc_head.hc_scale"),
    }

    def block(src, src_prefix, dst_prefix):
        for leaf, hf in _LEAF_TO_HF.items():
            if src_prefix + hf in src:
                out[dst_prefix + leaf] = src.pop(src_prefix + hf)
        gu = src.pop(src_prefix + "mlp.experts.gate_up_proj")
        dn = src.pop(src_prefix + "mlp.experts.down_proj")
        inter = c["moe_intermediate_size"]
        for e in range(c["n_routed_experts"]):
            out[f"{dst_prefix}ffn.experts.{e}.w1.weight"] = gu[e, :inter]
            out[f"{dst_prefix}ffn.experts.{e}.w3.weight"] = gu[e, inter:]
            out[f"{dst_prefix}ffn.experts.{e}.w2.weight"] = dn[e]

    for layer in range(c["num_hidden_layers"]):
        block(sd, f"model.layers.{layer}.", f"layers.{layer}.")
    left = [k for k in sd if "inv_freq" not in k]
    assert not left, f"unmapped HF tensors: {left[:8]}"
    if mtp is not None:
        ms = {k: v.detach() for k, v in mtp.state_dict().items()}
        p = "mtp.0."
        for ours, official in (("e_proj.weight", "e_proj.weight"), ("h_proj.weight", "h_proj.weight"),
                               ("enorm.weight", "enorm.weight"), ("hnorm.weight", "hnorm.weight"),
                               ("norm.weight", "norm.weight"), ("hc_head.hc_fn", "hc_head_fn"),
                               ("hc_head.hc_base", "hc_head_base"), ("hc_head.hc_scale", "hc_head_scale")):
            out[p + official] = ms.pop(ours)
        block(ms, "layer.", p)
        left = [k for k in ms if "inv_freq" not in k]
        assert not left, f"unmapped MTP tensors: {left[:8]}"
    return out


def official_to_modules(values, c, model, mtp):
    """Loads official-name float32 values (dequantised) into the HF trunk and MTP (strict)."""
    sd = v4_format.trunk_to_hf(values, c)
    for k, v in model.state_dict().items():
        if "inv_freq" in k:
            sd[k] = v
    model.load_state_dict(sd, strict=True)
    if mtp is not None:
        p = "mtp.0."
        ms = v4_format.block_to_hf(values, p, "layer.", c["n_routed_experts"])
        for ours, official in (("e_proj.weight", "e_proj.weight"), ("h_proj.weight", "h_proj.weight"),
                               ("enorm.weight", "enorm.weight"), ("hnorm.weight", "hnorm.weight"),
                               ("norm.weight", "norm.weight"), ("hc_head.hc_fn", "hc_head_fn"),
                               ("hc_head.hc_base", "hc_head_base"), ("hc_head.hc_scale", "hc_head_scale")):
            ms[ours] = values[p + official]
        for k, v in mtp.state_dict().items():
            if "inv_freq" in k:
                ms[k] = v
        mtp.load_state_dict(ms, strict=True)


def official_kinds(c):
    return {name: kind for name, shape, kind, init in v4_format.model_inventory(c)}


def quantize_official(values, c):
    """official float values -> (stored tensors in file dtypes, dequantised float32 values)."""
    block = c["quantization_config"]["weight_block_size"]
    inv = v4_format.model_inventory(c)
    assert set(n for n, *_ in inv) == set(values), (
        sorted(set(n for n, *_ in inv) ^ set(values))[:10])
    stored, deq = {}, {}
    for name, shape, kind, _ in inv:
        w = values[name]
        assert tuple(w.shape) == tuple(shape), (name, tuple(w.shape), shape)
        if kind == "i64":
            stored[name] = deq[name] = w.to(torch.int64).contiguous()
        elif kind == "fp8":
            q, s, d = v4_format.quant_fp8(w.float(), block)
            stored[name], stored[name[: -len("weight")] + "scale"], deq[name] = q, s, d
        elif kind == "fp4":
            q, s, d = v4_format.quant_fp4(w.float())
            stored[name], stored[name[: -len("weight")] + "scale"], deq[name] = q, s, d
        elif kind == "bf16":
            stored[name] = w.to(torch.bfloat16).contiguous()
            deq[name] = stored[name].float()
        elif kind == "f32":
            stored[name] = deq[name] = w.float().contiguous()
        else:
            raise ValueError(kind)
    return stored, deq


def qat_view(model, mtp, c):
    """Per trainable HF tensor, a function giving its exported (dequantised) value.
    Built from the official inventory so it quantises exactly like the export."""
    kinds = official_kinds(c)
    block = c["quantization_config"]["weight_block_size"]
    names = {}
    for prefix, mod in (("", model), ("mtp.", mtp)):
        for n, p in mod.named_parameters():
            names[prefix + n] = p

    def kind_of(hf_name):
        if hf_name.startswith("mtp."):
            rest = hf_name[len("mtp."):]
            direct = {"e_proj.weight": "fp8", "h_proj.weight": "fp8"}
            if rest in direct:
                return direct[rest]
            if rest.startswith("layer."):
                leaf = rest[len("layer."):]
                off_prefix = "mtp.0."
            else:
                return None
        elif hf_name.startswith("model.layers."):
            parts = hf_name.split(".")
            leaf = ".".join(parts[3:])
            off_prefix = f"layers.{parts[2]}."
        else:
            return {"model.embed_tokens.weight": "bf16", "lm_head.weight": "bf16",
                    "model.norm.weight": "bf16"}.get(hf_name)
        if leaf in ("mlp.experts.gate_up_proj", "mlp.experts.down_proj"):
            return "fp4"
        for off, hf in _LEAF_TO_HF.items():
            if hf == leaf:
                return kinds[off_prefix + off]
        return None

    def make(kind):
        if kind == "fp8":
            return lambda w: fast_fp8(w, block)
        if kind == "fp4":
            return fast_fp4
        if kind == "bf16":
            return lambda w: w.to(torch.bfloat16).float()
        return None

    out = []
    for n, p in names.items():
        k = kind_of(n)
        f = make(k)
        if f is not None:
            out.append((n, p, f, k))
    return out


# Fast equivalents of v4_format.quant_fp8/quant_fp4's dequantised output, for the
# training loop (check_fast_quant asserts they agree bit for bit).
_E2M1_UP = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0])    # decision points between grid values
_E2M1_TIES_UP = (0.75, 1.75, 3.5)                                   # ties that round up to the even code
_E2M1_VALUES = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])


def fast_fp8(w, block):
    out_f, in_f = w.shape
    b0, b1 = block
    so, si = -(-out_f // b0), -(-in_f // b1)
    pad = w.new_zeros(so * b0, si * b1)
    pad[:out_f, :in_f] = w
    blocks = pad.view(so, b0, si, b1)
    amax = blocks.abs().amax(dim=(1, 3), keepdim=True).clamp_min(1e-30)
    scale = torch.exp2(torch.ceil(torch.log2(amax / v4_format.FP8_MAX)))
    q = torch.clamp(blocks / scale, -v4_format.FP8_MAX, v4_format.FP8_MAX).to(torch.float8_e4m3fn).float()
    return (q * scale).view(so * b0, si * b1)[:out_f, :in_f].contiguous()


def fast_fp4(w):
    shape = w.shape
    blocks = w.reshape(-1, shape[-1] // v4_format.FP4_BLOCK, v4_format.FP4_BLOCK)
    amax = blocks.abs().amax(dim=-1, keepdim=True).clamp_min(1e-30)
    scale = torch.exp2(torch.ceil(torch.log2(amax / v4_format.FP4_MAX)))
    x = torch.clamp(blocks / scale, -v4_format.FP4_MAX, v4_format.FP4_MAX)
    m = x.abs()
    code = torch.bucketize(m, _E2M1_UP, right=False)                 # ties go to the lower value ...
    for t in _E2M1_TIES_UP:                                          # ... except where the upper one is even
        code = code + (m == t).long()
    return (torch.sign(x) * _E2M1_VALUES[code] * scale).view(shape)


def check_fast_quant(view, c):
    """The fast quantisers must reproduce v4_format's dequantised values exactly."""
    block = c["quantization_config"]["weight_block_size"]
    for n, p, f, kind in view:
        w = p.detach()
        if kind == "fp4":
            ref = v4_format.quant_fp4(w.reshape(-1, w.shape[-1]))[2].view(w.shape)
        elif kind == "fp8":
            ref = v4_format.quant_fp8(w, block)[2]
        else:
            continue
        assert torch.equal(f(w), ref), n
    # every e2m1 grid point, midpoint and tie, in blocks whose amax 6 fixes the scale at 1
    grid = torch.arange(-6 * 8, 6 * 8 + 1).float() / 8
    grid = torch.cat([grid, grid[:31 * 4 - grid.numel()]]).view(4, 31)
    w = torch.cat([torch.full((4, 1), 6.0), grid], 1).view(1, -1)
    assert torch.equal(fast_fp4(w), v4_format.quant_fp4(w)[2])


class QuantSwap:
    """Puts exported (quantised) values into the parameters and restores the
    float32 masters afterwards (quantisation-aware training with a straight-
    through estimator, and evaluation of the exported view)."""

    def __init__(self, view):
        self.view = view
        self.masters = None

    @torch.no_grad()
    def __enter__(self):
        self.masters = [p.detach().clone() for _, p, _, _ in self.view]
        for _, p, f, _ in self.view:
            p.copy_(f(p.detach()))
        return self

    @torch.no_grad()
    def restore(self):
        for (_, p, _, _), m in zip(self.view, self.masters):
            p.copy_(m)
        self.masters = None

    def __exit__(self, *a):
        if self.masters is not None:
            self.restore()


# ---------------------------------------------------------------- data and evaluation

def eval_windows(ids, T):
    """Held-out token stream -> non-overlapping windows [BOS] + 255 tokens."""
    n = (len(ids) // (T - 1)) * (T - 1)
    chunks = torch.as_tensor(ids[:n], dtype=torch.long).view(-1, T - 1)
    return torch.cat([torch.full((chunks.shape[0], 1), BOS, dtype=torch.long), chunks], 1)


@torch.no_grad()
def stream_loss(model, ids, T):
    """`lantern perplexity --ctx T` protocol: [BOS] + the whole text as one stream, cut
    into non-overlapping windows of T tokens (the last one shorter); every token but
    the first of each window is scored. Returns (mean loss, scored tokens)."""
    model.eval()
    stream = torch.tensor([BOS] + list(ids), dtype=torch.long)
    tot, cnt = 0.0, 0
    for i in range(0, len(stream), T):
        x = stream[i:i + T][None]
        if x.shape[1] < 2:
            continue
        logits = model(input_ids=x, use_cache=False).logits[0]
        tot += F.cross_entropy(logits[:-1], x[0, 1:], reduction="sum").item()
        cnt += x.shape[1] - 1
    return tot / cnt, cnt


@torch.no_grad()
def evaluate(model, mtp, box, windows, batch=8):
    """Mean next-token loss over every predicted position of the windows, plus the
    MTP head's loss/top-1 accuracy for token t+2 when mtp is given."""
    model.eval()
    tot, cnt, mtot, mcnt, macc = 0.0, 0, 0.0, 0, 0
    for i in range(0, windows.shape[0], batch):
        x = windows[i:i + batch]
        logits = model(input_ids=x, use_cache=False).logits
        tot += F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                               reduction="sum").item()
        cnt += x[:, 1:].numel()
        if mtp is not None:
            ml = mtp(model.model.embed_tokens.weight, model.lm_head.weight, x, box["X"])[:, :-1]
            tgt = x[:, 2:]
            mtot += F.cross_entropy(ml.reshape(-1, ml.shape[-1]), tgt.reshape(-1), reduction="sum").item()
            macc += (ml.argmax(-1) == tgt).sum().item()
            mcnt += tgt.numel()
    model.train()
    r = {"loss": tot / cnt}
    if mcnt:
        r["mtp_loss"], r["mtp_acc"] = mtot / mcnt, macc / mcnt
    return r
