#!/usr/bin/env python3
"""Generate the tiny DeepSeek-V4 oracle fixtures under tests/fixtures/.

For each fixture this writes tests/fixtures/<name>/:
  config.json                 official flat V4 config (like the released V4-Flash one)
  model.safetensors           official tensor names/dtypes (or shards + index.json)
  tokenizer.json, tokenizer_config.json   tiny byte-level BPE with the V4 structure
  oracle.safetensors          HF transformers reference outputs (see README.md)

Procedure (tests/fixtures/README.md has the details):
  1. draw random float weights (fixed seed), quantise them to the official FP8/FP4
     formats, and DEQUANTISE; the dequantised values go into HF in float32, so a C
     engine that dequantises the files sees exactly the same weights;
  2. run HF DeepseekV4ForCausalLM (float32, eager attention, eager experts) for the
     full-sequence logits, per-layer residual streams, routing and indexer picks;
  3. greedy continuation with HF generate (DynamicCache, do_sample=False), checked
     against a cache-free full-recompute argmax loop;
  4. MTP logits with a small driver built from HF modules (HF ignores mtp.*);
  5. cross-check everything against ref_v4.py (independent official-semantics code);
  6. if any routing / indexer / greedy decision is a near-tie, move to the next seed.

Usage: tools/oracle/.venv/bin/python tools/oracle/make_fixtures.py [--only NAME] [--out DIR]
"""
import argparse
import copy
import json
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import ref_v4  # noqa: E402
import tiny_tokenizer  # noqa: E402
import v4_format  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
ORACLE_VERSION = "1"

# Minimum decision margins accepted for a seed (fp32 C vs HF differ by ~1e-5).
# These are >= 50x the fp32 disagreement seen between HF and ref_v4 (~1e-6..1e-5).
MIN_ROUTER_GAP = 5e-4    # (score+bias) k-th minus (k+1)-th, non-hash MoE layers
MIN_INDEXER_GAP = 5e-4   # index score k-th minus (k+1)-th visible entry, CSA layers
MIN_GREEDY_GAP = 5e-3    # top-1 minus top-2 logit at each greedy step


# ---------------------------------------------------------------- fixture definitions

def official_config(**kw):
    """Official flat V4 config.json (key order of the released V4-Flash config)."""
    c = {
        "architectures": ["DeepseekV4ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "expert_dtype": "fp4",
        "hc_eps": 1e-06,
        "hc_mult": 4,
        "hc_sinkhorn_iters": 20,
        "head_dim": None,
        "hidden_act": "silu",
        "hidden_size": None,
        "index_head_dim": None,
        "index_n_heads": None,
        "index_topk": None,
        "initializer_range": 0.02,
        "max_position_embeddings": None,
        "model_type": "deepseek_v4",
        "moe_intermediate_size": None,
        "n_routed_experts": None,
        "n_shared_experts": 1,
        "norm_topk_prob": True,
        "num_attention_heads": None,
        "num_experts_per_tok": None,
        "num_hidden_layers": None,
        "num_hash_layers": None,
        "num_key_value_heads": 1,
        "num_nextn_predict_layers": 1,
        "o_groups": None,
        "o_lora_rank": None,
        "q_lora_rank": None,
        "qk_rope_head_dim": None,
        "quantization_config": {
            "activation_scheme": "dynamic",
            "fmt": "e4m3",
            "quant_method": "fp8",
            "scale_fmt": "ue8m0",
            "weight_block_size": None,
        },
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 10000,
        "routed_scaling_factor": None,
        "scoring_func": "sqrtsoftplus",
        "sliding_window": None,
        "swiglu_limit": 10.0,
        "tie_word_embeddings": False,
        "topk_method": "noaux_tc",
        "torch_dtype": "float32",  # the oracle computes in fp32: Lantern defaults to EXACT
        "transformers_version": "4.57.1",
        "use_cache": True,
        "vocab_size": None,
        "compress_rope_theta": 160000,
        "compress_ratios": None,
    }
    for k, v in kw.items():
        if k == "weight_block_size":
            c["quantization_config"]["weight_block_size"] = v
        else:
            assert k in c, k
            c[k] = v
    missing = [k for k, v in c.items() if v is None] + (
        ["weight_block_size"] if c["quantization_config"]["weight_block_size"] is None else [])
    assert not missing, missing
    n = c["num_hidden_layers"]
    assert len(c["compress_ratios"]) == n + c["num_nextn_predict_layers"]
    return c


INPUT_TEXT = (
    "In the library the shelves hold stories about rivers, mountains, engines and stars. "
    "Some readers prefer poems; others like long novels with maps, letters and secret doors. "
    "Every morning the fisherman walked to the harbour, checked his nets, and told the gulls "
    "about the weather. Numbers are simple friends: 1, 2, 3, 10, 42, 100 and 2026 appear in lists."
)

FIXTURES = {
    "v4-flash-tiny": dict(
        description=("Flash-like tiny V4: compress_ratios [0,0,4,8,4]+MTP[0] (2 sliding-only, CSA ratio 4 with "
                     "lightning indexer, HCA ratio 8), 3 hash-routed layers, 1 MTP layer, 32x32 FP8 blocks "
                     "(partial blocks on q_lora_rank 48), FP4 experts, YaRN with a non-trivial ramp, 20 Sinkhorn "
                     "iterations, single model.safetensors."),
        config=official_config(
            head_dim=64, hidden_size=64, index_head_dim=32, index_n_heads=8, index_topk=4,
            max_position_embeddings=65536, moe_intermediate_size=64, n_routed_experts=8,
            num_attention_heads=4, num_experts_per_tok=2, num_hidden_layers=5, num_hash_layers=3,
            o_groups=2, o_lora_rank=32, q_lora_rank=48, qk_rope_head_dim=16, weight_block_size=[32, 32],
            rope_scaling={"beta_fast": 32, "beta_slow": 1, "factor": 16,
                          "original_max_position_embeddings": 4096, "type": "yarn"},
            routed_scaling_factor=1.5, sliding_window=8, vocab_size=512, hc_sinkhorn_iters=20,
            compress_ratios=[0, 0, 4, 8, 4, 0],
        ),
        T=67,
        greedy_prompt_text="The quick brown fox jumps over the lazy dog.",
        n_greedy=40,
        seed=1000,
        shards=None,
    ),
    "v4-pro-tiny": dict(
        description=("Pro-like tiny V4: compress_ratios [16,16,4,16,4]+MTP[0] (no sliding-only layer, HCA ratio 16 "
                     "at layers 0,1 then CSA/HCA alternating), 8 heads of 32 with rope dim 8, o_groups 4 / "
                     "o_lora_rank 24, hidden 96, 8 experts top-3, routed_scaling_factor 2.5, 3 hash layers, "
                     "128x128 FP8 blocks (all partial), 6 Sinkhorn iterations, sharded into 3 files."),
        config=official_config(
            head_dim=32, hidden_size=96, index_head_dim=32, index_n_heads=6, index_topk=6,
            max_position_embeddings=65536, moe_intermediate_size=96, n_routed_experts=8,
            num_attention_heads=8, num_experts_per_tok=3, num_hidden_layers=5, num_hash_layers=3,
            o_groups=4, o_lora_rank=24, q_lora_rank=64, qk_rope_head_dim=8, weight_block_size=[128, 128],
            rope_scaling={"beta_fast": 32, "beta_slow": 1, "factor": 8,
                          "original_max_position_embeddings": 8192, "type": "yarn"},
            routed_scaling_factor=2.5, sliding_window=16, vocab_size=640, hc_sinkhorn_iters=6,
            compress_ratios=[16, 16, 4, 16, 4, 0],
        ),
        T=85,
        greedy_prompt_text="Once upon a time, in a small village by the sea,",
        n_greedy=40,
        seed=2000,
        shards=3,
    ),
}


# ---------------------------------------------------------------- HF side

def hf_config_kwargs(c):
    """Official config -> DeepseekV4Config kwargs.
    HF folds num_hash_layers -> mlp_layer_types, qk_rope_head_dim -> partial_rotary_factor
    and rope_scaling -> rope_parameters["compress"] itself. Its legacy compress_ratios
    mapping only knows 0/4/128, so layer_types and compress_rates are given explicitly
    (the official rule: 0 = sliding, 4 = CSA, any other ratio = HCA)."""
    n = c["num_hidden_layers"]
    names = {"sliding": "sliding_attention", "csa": "compressed_sparse_attention",
             "hca": "heavily_compressed_attention"}
    ratios = c["compress_ratios"][:n]
    hca = sorted({r for r in ratios if v4_format.layer_kind(r) == "hca"})
    assert len(hca) <= 1, "HF supports one HCA ratio per model"
    kw = {k: copy.deepcopy(v) for k, v in c.items()
          if k not in ("quantization_config", "architectures", "transformers_version", "torch_dtype",
                       "expert_dtype", "compress_ratios")}
    kw["layer_types"] = [names[v4_format.layer_kind(r)] for r in ratios]
    kw["compress_rates"] = {"compressed_sparse_attention": 4,
                            "heavily_compressed_attention": hca[0] if hca else 128}
    return kw


def hf_model(c, values):
    from transformers import DeepseekV4Config, DeepseekV4ForCausalLM

    cfg = DeepseekV4Config(**hf_config_kwargs(c))
    model = DeepseekV4ForCausalLM._from_config(cfg, attn_implementation="eager", experts_implementation="eager",
                                               dtype=torch.float32)
    sd = v4_format.trunk_to_hf(values, c)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected, unexpected
    assert not missing, missing
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr(), "head must be untied"
    return model.eval()


class Recorder:
    """Forward hooks capturing per-layer streams, routing and indexer outputs."""

    def __init__(self, model):
        self.hidden, self.gate, self.index, self.scores = {}, {}, {}, {}
        self.handles = []
        for i, layer in enumerate(model.model.layers):
            self.handles.append(layer.register_forward_hook(self._hid(i)))
            self.handles.append(layer.mlp.gate.register_forward_hook(self._gate(i)))
            comp = layer.self_attn.compressor
            if comp is not None and hasattr(comp, "indexer"):
                self.handles.append(comp.indexer.register_forward_hook(self._idx(i)))
                self.handles.append(comp.indexer.scorer.register_forward_hook(self._score(i)))

    def _hid(self, i):
        def f(mod, args, out):
            self.hidden[i] = out.detach().clone()  # [B, T, hc, D]
        return f

    def _gate(self, i):
        def f(mod, args, out):
            self.gate[i] = (args[0].detach().reshape(-1, args[0].shape[-1]).clone(), out[1].detach().clone(),
                            out[2].detach().clone())
        return f

    def _idx(self, i):
        def f(mod, args, out):
            self.index[i] = out.detach().clone()  # [B, T, k]
        return f

    def _score(self, i):
        def f(mod, args, out):
            self.scores[i] = out.detach().clone()  # [B, T, n_entries]
        return f

    def close(self):
        for h in self.handles:
            h.remove()


def sort_route(idx, w):
    order = idx.argsort(dim=-1)
    return idx.gather(1, order), w.gather(1, order)


def pack_topk(top, k):
    """[T, k'] ids with -1 -> [T, k]: valid ids ascending, then -1 padding."""
    T = top.shape[0]
    out = torch.full((T, k), -1, dtype=torch.int64)
    for t in range(T):
        v = sorted(x for x in top[t].tolist() if x >= 0)
        out[t, : len(v)] = torch.tensor(v, dtype=torch.int64)
    return out


def router_gap(h, gate, k):
    """Margin of the non-hash top-k choice: (score+bias) k-th minus (k+1)-th."""
    s = F.softplus(h @ gate.weight.T).sqrt() + gate.e_score_correction_bias
    srt = s.sort(dim=-1, descending=True).values
    return float((srt[:, k - 1] - srt[:, k]).min())


def indexer_gap(scores, T, k, ratio=4):
    """Margin of the indexer top-k among visible entries (rows with > k visible)."""
    best = float("inf")
    for t in range(T):
        nvis = (t + 1) // ratio
        if nvis > k:
            srt = scores[t, :nvis].sort(descending=True).values
            best = min(best, float(srt[k - 1] - srt[k]))
    return best


def greedy_manual(model, prompt, n):
    """Cache-free greedy loop: full recompute each step. Returns tokens and per-step top1-top2 gaps."""
    ids = prompt.clone()
    out, gaps = [], []
    for _ in range(n):
        logits = model(ids[None], use_cache=False).logits[0, -1]
        top2 = logits.topk(2).values
        gaps.append(float(top2[0] - top2[1]))
        nxt = int(logits.argmax())
        out.append(nxt)
        ids = torch.cat([ids, torch.tensor([nxt])])
    return torch.tensor(out, dtype=torch.int64), gaps


def greedy_generate(model, prompt, n):
    from transformers import GenerationConfig

    gc = GenerationConfig(max_new_tokens=n, min_new_tokens=0, do_sample=False, num_beams=1, use_cache=True,
                          eos_token_id=None, pad_token_id=None, bos_token_id=None)
    model.generation_config.eos_token_id = None  # never stop early; seeds with EOS are rejected anyway
    seq = model.generate(prompt[None], generation_config=gc)
    return seq[0, prompt.shape[0]:].clone()


def hf_mtp(model, c, values, ids, X_main):
    """MTP head mtp.0 (spec section 4.6) driven by HF modules: a 1-layer
    DeepseekV4DecoderLayer configured as sliding_attention + score-routed moe, HF
    RMSNorm / Linear / HyperHead for enorm, hnorm, e_proj, h_proj, hc_head, norm,
    and the trunk's lm_head. Row t: token ids[t+1] with X_main[t]; positions 0..T-2."""
    from transformers import DeepseekV4Config
    from transformers.models.deepseek_v4.modeling_deepseek_v4 import (
        DeepseekV4DecoderLayer, DeepseekV4HyperHead, DeepseekV4RMSNorm)

    n = c["num_hidden_layers"]
    assert c["compress_ratios"][n] == 0, "MTP block is sliding-only in V4"
    kw = hf_config_kwargs(c)
    kw.update(num_hidden_layers=1, layer_types=["sliding_attention"], mlp_layer_types=["moe"])
    mcfg = DeepseekV4Config(**kw)
    mcfg._attn_implementation = "eager"
    mcfg._experts_implementation = "eager"
    D, eps = c["hidden_size"], c["rms_norm_eps"]
    layer = DeepseekV4DecoderLayer(mcfg, 0).float().eval()
    sd = v4_format.block_to_hf(values, "mtp.0.", "", c["n_routed_experts"])
    missing, unexpected = layer.load_state_dict(sd, strict=False)
    assert not unexpected and not missing, (missing, unexpected)

    def norm(name):
        m = DeepseekV4RMSNorm(D, eps=eps).float()
        m.weight.data.copy_(values[name])
        return m

    def linear(name):
        m = torch.nn.Linear(D, D, bias=False).float()
        m.weight.data.copy_(values[name])
        return m

    head = DeepseekV4HyperHead(mcfg).float()
    head.hc_fn.data.copy_(values["mtp.0.hc_head_fn"])
    head.hc_base.data.copy_(values["mtp.0.hc_head_base"])
    head.hc_scale.data.copy_(values["mtp.0.hc_head_scale"])
    enorm, hnorm, mnorm = norm("mtp.0.enorm.weight"), norm("mtp.0.hnorm.weight"), norm("mtp.0.norm.weight")
    e_proj, h_proj = linear("mtp.0.e_proj.weight"), linear("mtp.0.h_proj.weight")

    nxt = ids[1:][None]                       # [1, T-1]
    S = nxt.shape[1]
    e = e_proj(enorm(model.model.embed_tokens(nxt)))             # [1, T-1, D]
    x = h_proj(hnorm(X_main[:, :-1]))                            # [1, T-1, hc, D]
    X = e.unsqueeze(2) + x
    pos = torch.arange(S)[None]
    pe = {lt: model.model.rotary_emb(e, position_ids=pos, layer_type=lt) for lt in ("main", "compress")}
    q, k = torch.arange(S)[:, None], torch.arange(S)[None, :]
    allow = (k <= q) & (k > q - c["sliding_window"])
    mask = torch.zeros(S, S).masked_fill(~allow, float("-inf"))[None, None]
    route = {}
    hook = layer.mlp.gate.register_forward_hook(
        lambda mod, args, out: route.update(h=args[0].reshape(-1, D).clone(), w=out[1].clone(), i=out[2].clone()))
    X = layer(X, position_embeddings=pe, position_ids=pos, attention_mask=mask, input_ids=nxt, cache=None)
    hook.remove()
    logits = model.lm_head(mnorm(head(X)))
    gap = router_gap(route["h"], layer.mlp.gate, c["num_experts_per_tok"])
    return logits[0], X[0], route, gap


# ---------------------------------------------------------------- one fixture

def maxdiff(a, b):
    return float((a.float() - b.float()).abs().max())


@torch.no_grad()
def run_oracle(spec, c, values, ids, prompt, log):
    """HF oracle outputs + decision margins + ref_v4 cross-check for one weight draw."""
    model = hf_model(c, values)
    T, n, k = ids.shape[0], c["num_hidden_layers"], c["num_experts_per_tok"]
    rec = Recorder(model)
    out = model(ids[None], use_cache=False)
    rec.close()
    logits = out.logits[0]
    res = {"input_ids": ids, "logits": logits,
           # last_hidden_state = norm(hc_head(X)), the input of lm_head
           "final_hidden": model.model(ids[None], use_cache=False).last_hidden_state[0]}
    gaps = {"router": float("inf"), "indexer": float("inf")}
    for layer in range(n):
        res[f"hidden.{layer}"] = rec.hidden[layer][0]
        h, w, idx = rec.gate[layer]
        e_sorted, w_sorted = sort_route(idx, w)
        res[f"router.{layer}.experts"] = e_sorted.to(torch.int64)
        res[f"router.{layer}.weights"] = w_sorted.float()
        if not model.model.layers[layer].mlp.is_hash:
            gaps["router"] = min(gaps["router"], router_gap(h, model.model.layers[layer].mlp.gate, k))
        if layer in rec.index:
            res[f"indexer.{layer}.topk"] = pack_topk(rec.index[layer][0], c["index_topk"])
            gaps["indexer"] = min(gaps["indexer"], indexer_gap(rec.scores[layer][0], T, c["index_topk"]))
    # the cache-based prefill must agree with the stateless one
    cached = model(ids[None], use_cache=True).logits[0]
    log(f"  prefill use_cache=True vs False: max|d| = {maxdiff(cached, logits):.3g}")
    assert maxdiff(cached, logits) < 1e-4
    # greedy continuation
    g_hf = greedy_generate(model, prompt, spec["n_greedy"])
    g_man, g_gaps = greedy_manual(model, prompt, spec["n_greedy"])
    log(f"  greedy: generate(DynamicCache) == full-recompute loop: {bool(torch.equal(g_hf, g_man))}")
    assert torch.equal(g_hf, g_man), (g_hf.tolist(), g_man.tolist())
    res["greedy_prompt"], res["greedy_tokens"] = prompt, g_hf
    gaps["greedy"] = min(g_gaps)
    gaps["greedy_special"] = bool(((g_hf == c["bos_token_id"]) | (g_hf == c["eos_token_id"])).any())
    # MTP
    X_main = rec.hidden[n - 1]
    mtp_logits, mtp_X, mtp_route, mtp_gap = hf_mtp(model, c, values, ids, X_main)
    res["mtp_logits"], res["mtp_hidden"] = mtp_logits, mtp_X
    e_sorted, w_sorted = sort_route(mtp_route["i"], mtp_route["w"])
    res["mtp_router.experts"], res["mtp_router.weights"] = e_sorted.to(torch.int64), w_sorted.float()
    gaps["router"] = min(gaps["router"], mtp_gap)
    # independent official-semantics reference
    ref = ref_v4.forward(values, c, ids)
    ref_mtp, _, _ = ref_v4.mtp_forward(values, c, ids, ref["X"])
    cross = {
        "logits": maxdiff(ref["logits"], logits),
        "final_hidden": maxdiff(ref["final_hidden"], res["final_hidden"]),
        "hidden": max(maxdiff(ref["hidden"][i], res[f"hidden.{i}"]) for i in range(n)),
        "mtp_logits": maxdiff(ref_mtp, mtp_logits),
        "router_experts_equal": all(torch.equal(sort_route(ref["traces"][i]["experts"], ref["traces"][i]["weights"])[0],
                                                res[f"router.{i}.experts"]) for i in range(n)),
        "indexer_equal": all(torch.equal(pack_topk(ref["traces"][i]["indexer_topk"], c["index_topk"]),
                                         res[f"indexer.{i}.topk"]) for i in range(n) if f"indexer.{i}.topk" in res),
    }
    # activity statistics (non-degeneracy)
    stats = {
        "logits_std": float(logits.std()),
        "logits_absmax": float(logits.abs().max()),
        "mtp_logits_std": float(mtp_logits.std()),
        "experts_used_per_layer": [int(res[f"router.{i}.experts"].unique().numel()) for i in range(n)],
        "greedy_distinct_tokens": int(g_hf.unique().numel()),
    }
    return res, gaps, cross, stats


def reference_oracle(c, values, ids, log):
    """REFERENCE-numerics outputs (ref_v4.reference_forward: the official code's bf16 / FP8 /
    FP4 rounding points) for Lantern's REFERENCE mode, plus their decision margins and how far
    the outputs move when one rounding point is switched off (the sensitivity that makes the
    comparison a proof that every point is in place). Computed after the seed is chosen: the
    seed search and every HF tensor are unaffected.

    Also a second, clearly separate set `*_reference_lantern`: the same rounding points except
    Lantern's own choices where they differ from the official code (ref_v4.LANTERN_VARIANTS,
    listed in tests/fixtures/README.md). It is a diagnostic, not the oracle: it isolates those
    known differences so that every other rounding point can be checked bit for bit."""
    T, n, k, K = ids.shape[0], c["num_hidden_layers"], c["num_experts_per_tok"], c["index_topk"]
    csa = [layer for layer in range(n) if c["compress_ratios"][layer] == 4]
    ref = ref_v4.reference_forward(values, c, ids)
    again = ref_v4.reference_forward(values, c, ids)
    assert torch.equal(ref["logits"], again["logits"]), "reference forward is not deterministic"
    lan = ref_v4.reference_forward(values, c, ids, lantern=ref_v4.LANTERN_VARIANTS)
    res = {}
    for suffix, run, hidden_layers in (("", ref, range(n)), ("_lantern", lan, [0])):
        res[f"logits_reference{suffix}"] = run["logits"].float()
        for layer in range(n):
            tr = run["traces"][layer]
            e_sorted, w_sorted = sort_route(tr["experts"], tr["weights"])
            res[f"router_reference{suffix}.{layer}.experts"] = e_sorted.to(torch.int64)
            res[f"router_reference{suffix}.{layer}.weights"] = w_sorted.float()
            if "indexer_topk" in tr:
                res[f"indexer_reference{suffix}.{layer}.topk"] = pack_topk(tr["indexer_topk"], K)
        for layer in hidden_layers:
            res[f"hidden_reference{suffix}.{layer}"] = run["hidden"][layer].float()
    margin, gaps = ref_v4.decision_margins(ref, c)

    def agreement(other, base):
        top1 = float((other["logits"].argmax(-1) == base["logits"].argmax(-1)).float().mean())
        rel = float(((other["logits"] - base["logits"]).abs().amax(-1) / base["logits"].abs().amax(-1)).max())
        eq0 = float((other["hidden"][0] == base["hidden"][0]).float().mean())
        ix = int((pack_topk(other["traces"][csa[0]]["indexer_topk"], K)
                  != pack_topk(base["traces"][csa[0]]["indexer_topk"], K)).any(-1).sum())
        return {"top1": round(top1, 4), "rel": float(f"{rel:.3g}"), "layer0_bit_equal": round(eq0, 4),
                "first_csa_indexer_rows_differ": ix}

    sens = {p: agreement(ref_v4.reference_forward(values, c, ids, off=[p]), ref) for p in ref_v4.BF16_POINTS}
    lan_sens = {}
    for p in ref_v4.BF16_POINTS:
        if p in ("q_rescale_bf16", "indexer_score_bf16", "attn_p_bf16"):
            continue  # replaced by Lantern's variants in this set
        lan_sens[p] = agreement(ref_v4.reference_forward(values, c, ids, off=[p], lantern=ref_v4.LANTERN_VARIANTS),
                                lan)
    no_p = [v for v in ref_v4.LANTERN_VARIANTS if v != "attn_p_normalised"]
    lan_sens["attn_p_unrounded"] = agreement(
        ref_v4.reference_forward(values, c, ids, off=["attn_p_bf16"], lantern=no_p), lan)
    lan_sens["official"] = agreement(ref, lan)
    exact = ref_v4.forward(values, c, ids)
    meta = {
        "reference_top1_margin_min": f"{float(margin.min()):.6g}",
        "reference_top1_margins": json.dumps([float(f"{float(m):.4g}") for m in margin]),
        "reference_min_gaps": json.dumps(gaps),
        "reference_sensitivity": json.dumps(sens),
        "reference_lantern_variants": json.dumps(list(ref_v4.LANTERN_VARIANTS)),
        "reference_lantern_sensitivity": json.dumps(lan_sens),
        "reference_vs_hf_top1": f"{float((ref['logits'].argmax(-1) == exact['logits'].argmax(-1)).float().mean()):.4f}",
    }
    log(f"  reference: min top-1 margin {meta['reference_top1_margin_min']}, gaps {meta['reference_min_gaps']}")
    log(f"  reference: one rounding point off: {meta['reference_sensitivity']}")
    log(f"  reference_lantern: one rounding point off: {meta['reference_lantern_sensitivity']}")
    return res, meta


def build_fixture(name, spec, out_root, log, max_tries=40):
    c = spec["config"]
    folder = os.path.join(out_root, name)
    tok_text, tok = tiny_tokenizer.build(c["vocab_size"])
    body = tok.encode(INPUT_TEXT, add_special_tokens=False).ids
    assert len(body) >= spec["T"] - 1, (len(body), spec["T"])
    ids = torch.tensor([c["bos_token_id"]] + body[: spec["T"] - 1], dtype=torch.int64)
    prompt = torch.tensor(tok.encode(spec["greedy_prompt_text"], add_special_tokens=False).ids, dtype=torch.int64)
    log(f"{name}: T={ids.shape[0]} prompt={prompt.shape[0]} tokens, vocab={c['vocab_size']}")
    for attempt in range(max_tries):
        seed = spec["seed"] + attempt
        stored, values = v4_format.make_weights(c, seed)
        res, gaps, cross, stats = run_oracle(spec, c, values, ids, prompt, log)
        ok = (gaps["router"] >= MIN_ROUTER_GAP and gaps["indexer"] >= MIN_INDEXER_GAP
              and gaps["greedy"] >= MIN_GREEDY_GAP and not gaps["greedy_special"])
        log(f"  seed {seed}: gaps {json.dumps(gaps)} -> {'ok' if ok else 'retry'}")
        if ok:
            break
    else:
        raise RuntimeError(f"{name}: no seed with clear decisions in {max_tries} tries")
    log(f"  ref_v4 vs HF: {json.dumps(cross)}")
    assert cross["logits"] < 1e-3 and cross["mtp_logits"] < 1e-3, cross
    assert cross["router_experts_equal"] and cross["indexer_equal"], cross
    log(f"  stats: {json.dumps(stats)}")

    # ---- write the checkpoint folder
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
        f.write("\n")
    with open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(tok_text)
        f.write("\n")
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tiny_tokenizer.TOKENIZER_CONFIG, f, indent=2, ensure_ascii=False)
        f.write("\n")
    shards = None
    if spec["shards"]:
        shards = shard_plan(stored, c, spec["shards"])
    files = v4_format.write_checkpoint(folder, stored, shards)

    # ---- oracle
    import transformers
    hf_cfg = hf_config_kwargs(c)
    meta = {
        "format": "lantern-oracle",
        "version": ORACLE_VERSION,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "fixture": name,
        "description": spec["description"],
        "seed": str(seed),
        "input_text": INPUT_TEXT,
        "input_ids_note": "input_ids = [bos] + tokenizer.encode(input_text)[:T-1]",
        "greedy_prompt_text": spec["greedy_prompt_text"],
        "greedy_prompt_note": "greedy_prompt = tokenizer.encode(greedy_prompt_text), no BOS (add_bos_token=false)",
        "greedy_method": ("HF generate(do_sample=False, DynamicCache, eos disabled); identical to a cache-free "
                          "full-recompute argmax loop"),
        "min_gaps": json.dumps(gaps),
        "hf_layer_types": json.dumps(hf_cfg["layer_types"]),
        "hf_compress_rates": json.dumps(hf_cfg["compress_rates"]),
        "ref_v4_maxdiff": json.dumps(cross),
        "checkpoint_files": json.dumps(files),
    }
    ref_res, ref_meta = reference_oracle(c, values, ids, log)
    meta.update(ref_meta)
    res.update(ref_res)
    tensors = {k: v.contiguous() for k, v in res.items()}
    v4_format.save_safetensors(os.path.join(folder, "oracle.safetensors"), tensors, meta)
    sizes = {f: os.path.getsize(os.path.join(folder, f)) for f in sorted(os.listdir(folder))}
    log(f"  wrote {folder}: {json.dumps(sizes)}")
    return folder


def shard_plan(stored, c, n_shards):
    """Deterministic split: shard 1 = embed + first layer, last shard = head/norm/hc_head/mtp,
    the middle shard(s) = the remaining layers in order."""
    n = c["num_hidden_layers"]
    first = [k for k in stored if k == "embed.weight" or k.startswith("layers.0.")]
    last = [k for k in stored if not k.startswith("layers.") and k != "embed.weight"]
    mid_layers = list(range(1, n))
    per = -(-len(mid_layers) // (n_shards - 2))
    groups = [mid_layers[i:i + per] for i in range(0, len(mid_layers), per)]
    mids = [[k for k in stored if k.startswith("layers.") and int(k.split(".")[1]) in g] for g in groups]
    plan = [first] + mids + [last]
    assert len(plan) == n_shards
    return plan


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", action="append", help="fixture name (repeatable)")
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    names = args.only or list(FIXTURES)
    for name in names:
        build_fixture(name, FIXTURES[name], args.out, log=lambda s: print(s, flush=True))


if __name__ == "__main__":
    main()
