#!/usr/bin/env python3
"""Tiny DeepSeek-V4.1 fixtures (tests/fixtures/v41-*) and real-config Engram hash vectors.

No transformers release ships `deepseek_v41` (tests/fixtures/README-v41.md), so the
oracle is ref_v41.py: an independent float32 re-implementation of HF deepseek_v41 @
0a2080b4. Every fixture folder holds:
  config.json            composite V4.1 config (model_type deepseek_v41, text_config,
                         top-level quantization_config with expert_dtype fp4)
  model.safetensors      official names and dtypes (or shards + index), FP8 weights with
                         F8_E8M0 scales, FP4 experts, Engram tables (F8_E4M3 + per-row scales)
  tokenizer.json, tokenizer_config.json   the tiny byte-level BPE of tiny_tokenizer.py
  oracle.safetensors     ref_v41 outputs (README-v41.md lists the tensors)
  oracle_reference.safetensors   the same outputs in REFERENCE numerics (ref_v41.RefModel)

Subcommands:
  build   [--only NAME]   write the fixtures (default)
  verify  [NAME ...]      re-read the files, dequantise independently, recompute, compare
  check                   module-level cross-checks of ref_v41 (HF V4 classes, brute force)
  hashes  [--out PATH]    write the real-config Engram hash vectors (tests/data/engram/)
  reference [NAME ...]    (re)write oracle_reference.safetensors of built fixtures from their files

Usage: tools/oracle/.venv/bin/python tools/oracle/make_fixtures_v41.py build
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import make_fixtures  # noqa: E402  (V4 fixture helpers: INPUT_TEXT, pack_topk, sort_route, REPO)
import ref_v4  # noqa: E402
import ref_v41  # noqa: E402
import tiny_tokenizer  # noqa: E402
import v4_format  # noqa: E402

REPO = make_fixtures.REPO
ORACLE_NAME = "lantern ref_v41 (independent re-implementation of HF deepseek_v41 @0a2080b4)"
ORACLE_VERSION = "1"
HF_COMMIT = "0a2080b43eb64e6d448186a4f3f0bc9c618f4797"

# Decision margins a seed must clear (see README-v41.md, "Decision margins").
MIN_ROUTER_GAP = 5e-4
MIN_INDEXER_GAP = 5e-4
MIN_CANDIDATE_GAP = 5e-4
MIN_GREEDY_GAP = 5e-3
# QAT rounding boundaries (QuantProbe): every value whose rounding step is large must
# sit at least this far from a boundary, in units of its block maximum, and every block
# scale this far (relative) from the point where it would change.
MIN_QUANT_MARGIN = 1e-6
# FP8 values with a smaller step (1/4096 .. 1/32 of the block maximum, FP8_SMALL_STEP) move
# the logits by ~1e-5 .. 1e-3 of their maximum when they round the other way (v41-tiny seed
# 4668: a step of 1/514 of the block maximum moved them by 1.4e-4 in the C engine), so they
# need a margin too. There are ~2x more of them than large-step ones and their smallest
# distance is typically ~1e-7 of the block maximum, hence a lower bar than MIN_QUANT_MARGIN;
# it is still 2x the median fp32 noise at the QAT inputs (fp32 vs a float64 rerun: 1.4-1.9e-7
# of the block maximum). README-v41.md, "QAT margins of the small FP8 steps".
MIN_FP8_SMALL_MARGIN = 3e-7
# Indexer q/k FP4 values only feed the top-k choice, which MIN_INDEXER_GAP and the
# jitter test guard; they are 70-80% of all quantised values, so a lower bar.
MIN_INDEX_QUANT_MARGIN = 2e-7
# The same forward (and greedy loop) in float64 must make every decision identically and
# move the logits by at most this much (a QAT rounding flip moves them by ~1e-3 .. 1).
MAX_FP64_LOGITS = 1e-4
JITTER = 2e-7          # noise (times the block maximum) injected at every QAT input in the jitter test
JITTER_TRIALS = 3


# ---------------------------------------------------------------- configs

def v41_config(text, block, quant_extra=None):
    """Composite official V4.1 config.json: top-level ids and quantization_config, the
    text model under text_config. No vision_config (the checkpoint then has no
    vision tensors) and no image_token_id (it would have to be a tiny-vocab id)."""
    q = {"quant_method": "fp8", "activation_scheme": "dynamic", "weight_block_size": list(block),
         "scale_fmt": "ue8m0", "expert_dtype": "fp4"}
    q.update(quant_extra or {})
    return {
        "architectures": ["DeepseekV41ForCausalLM"],
        "model_type": "deepseek_v41",
        "dtype": "float32",                           # the oracle computes in fp32 (EXACT numerics)
        "bos_token_id": 0,
        "eos_token_id": 1,
        "pad_token_id": 2,
        "tie_word_embeddings": False,
        "quantization_config": q,
        "text_config": text,
    }


def text_config(**kw):
    """text_config with the key set of the released V4.1-Flash config (reconstructed,
    shared/docs/configs/) plus gate_temp and HF's engram_pad_id spelling."""
    c = {
        "model_type": "deepseek_v41_text",
        "vocab_size": 512, "hidden_size": None, "moe_intermediate_size": None, "num_hidden_layers": None,
        "num_attention_heads": None, "num_key_value_heads": 1, "head_dim": None, "qk_rope_head_dim": None,
        "q_lora_rank": None, "o_lora_rank": None, "o_groups": None, "hidden_act": "silu", "swiglu_limit": 10.0,
        "rms_norm_eps": 1e-20, "attention_bias": False, "tie_word_embeddings": False,
        "max_position_embeddings": None, "rope_theta": 10000, "rope_scaling": None,
        "n_routed_experts": None, "n_shared_experts": 1, "num_experts_per_tok": None,
        "scoring_func": "sqrtsoftplus", "topk_method": "noaux_tc", "norm_topk_prob": True,
        "routed_scaling_factor": None, "gate_temp": 1.0, "sliding_window": None, "compress_ratios": None,
        "compress_rope_theta": 160000, "kv_source_layer_ids": None, "index_source_layer_ids": None,
        "index_n_heads": None, "index_head_dim": None, "index_topk": None, "candidate_source_layer_id": None,
        "candidate_topk_blocks": None, "candidate_block_size": None, "hc_mult": 4, "hc_sinkhorn_iters": 20,
        "hc_eps": 1e-06, "engram_layer_ids": None, "engram_num_embeddings": None, "engram_max_ngram_size": 4,
        "engram_vocab_size": None, "engram_n_heads": 8, "engram_head_dim": None, "engram_pad_token_id": 2,
        "engram_pad_id": 2, "engram_compressed_vocab_size": None, "num_nextn_predict_layers": 0,
        "dspark_noise_token_id": None,
    }
    for k, v in kw.items():
        assert k in c, k
        c[k] = v
    c["dspark_noise_token_id"] = c["vocab_size"] - 1   # the C parser range-checks it; no DSpark stages here
    return c


INPUT_TEXT = make_fixtures.INPUT_TEXT

FIXTURES = {
    "v41-tiny": dict(
        description=("Flash-like tiny V4.1: compress_ratios [0,0,2,2,2,2,1,1,1,1,1]; KV sources 2,4 (ratio 2) and "
                     "6 (ratio 1, CED decoder); index sources 2,4 (Full), 6 (Full + candidate source) and 9 "
                     "(Reindex inside the candidate mask); layers 3,5,7,8 reuse, and 10 in the partial final "
                     "group (9,10) of a stride-3 schedule; "
                     "Engram on layers 1 (sliding) and 4 (a KV source); 4x64 heads, rope 16, q_lora 48 (partial "
                     "32-blocks), 8 experts top-2, 32x32 FP8 blocks, rms_norm_eps 1e-20, single model.safetensors."),
        text=dict(hidden_size=64, moe_intermediate_size=64, num_hidden_layers=11, num_attention_heads=4, head_dim=64,
                  qk_rope_head_dim=16, q_lora_rank=48, o_lora_rank=32, o_groups=2, max_position_embeddings=65536,
                  rope_scaling={"rope_type": "yarn", "factor": 16, "beta_fast": 32, "beta_slow": 1,
                                "original_max_position_embeddings": 4096},
                  n_routed_experts=8, num_experts_per_tok=2, routed_scaling_factor=1.5, sliding_window=8,
                  compress_ratios=[0, 0, 2, 2, 2, 2, 1, 1, 1, 1, 1], kv_source_layer_ids=[2, 4, 6],
                  index_source_layer_ids=[2, 4, 6, 9], index_n_heads=8, index_head_dim=32, index_topk=4,
                  candidate_source_layer_id=6, candidate_topk_blocks=3, candidate_block_size=4,
                  engram_layer_ids=[1, 4], engram_vocab_size=128, engram_head_dim=64),
        block=[32, 32],
        T=67,
        greedy_prompt_text="The quick brown fox jumps over the lazy dog.",
        n_greedy=32,
        seed=4722,
        shards=None,
    ),
    "v41-tiny-b": dict(
        description=("Different sharing layout: compress_ratios [0,2,2,2,1,1,1,1]; KV sources 1 (ratio 2) and 4 "
                     "(ratio 1); index sources 1 (Full), 2 (Reindex at ratio 2, before the candidate source), 4 "
                     "(Full, NOT the candidate source), 5 (Reindex + candidate source) and 7 (Reindex inside the "
                     "candidate mask); Engram on layers 0 (first layer, seed 0) and 5; 8x32 heads, rope 8, hidden "
                     "96, o_groups 4 / o_lora 24, 8 experts top-3, route scale 2.5, gate_temp 0.8, 6 Sinkhorn "
                     "iterations, 16x16 FP8 blocks, rms_norm_eps 1e-6, 3 shards with the Engram tables last."),
        text=dict(hidden_size=96, moe_intermediate_size=32, num_hidden_layers=8, num_attention_heads=8, head_dim=32,
                  qk_rope_head_dim=8, q_lora_rank=64, o_lora_rank=24, o_groups=4, max_position_embeddings=65536,
                  rope_scaling={"rope_type": "yarn", "factor": 8, "beta_fast": 32, "beta_slow": 1,
                                "original_max_position_embeddings": 8192},
                  n_routed_experts=8, num_experts_per_tok=3, routed_scaling_factor=2.5, gate_temp=0.8,
                  sliding_window=16, rms_norm_eps=1e-6, hc_sinkhorn_iters=6,
                  compress_ratios=[0, 2, 2, 2, 1, 1, 1, 1], kv_source_layer_ids=[1, 4],
                  index_source_layer_ids=[1, 2, 4, 5, 7], index_n_heads=6, index_head_dim=32, index_topk=6,
                  candidate_source_layer_id=5, candidate_topk_blocks=4, candidate_block_size=4,
                  engram_layer_ids=[0, 5], engram_vocab_size=160, engram_head_dim=32),
        block=[16, 16],
        T=80,
        greedy_prompt_text="Once upon a time, in a small village by the sea,",
        n_greedy=32,
        seed=4684,
        shards=3,
    ),
}


# ---------------------------------------------------------------- inventory and weights

def model_inventory_v41(c):
    """Official V4.1 tensor inventory (spec 5, 6) of text config c (trunk only; no DSpark
    stages since num_nextn_predict_layers is 0, no vision tower). Entries are
    (name, shape, kind, init); kind adds 'engram' (F8_E4M3 rows with one E8M0 scale
    per row and 32 columns) to v4_format's fp8/fp4/bf16/f32."""
    D, H, d, Q = c["hidden_size"], c["num_attention_heads"], c["head_dim"], c["q_lora_rank"]
    G, R, E, I = c["o_groups"], c["o_lora_rank"], c["n_routed_experts"], c["moe_intermediate_size"]
    S, V, n = c["hc_mult"], c["vocab_size"], c["num_hidden_layers"]
    nI, dI = c["index_n_heads"], c["index_head_dim"]
    mix = (2 + S) * S
    roles = ref_v41.layer_roles(c)
    inv = [
        ("embed.weight", (V, D), "bf16", ("normal", 0.0, 1.0)),
        ("head.weight", (V, D), "bf16", ("normal", 0.0, 2.0 / math.sqrt(D))),
        ("norm.weight", (D,), "bf16", ("uniform", 0.6, 1.4)),
    ]
    for layer in range(n):
        p = f"layers.{layer}."

        def add(name, shape, kind, init):
            inv.append((p + name, tuple(shape), kind, init))

        add("attn.attn_sink", [H], "f32", ("normal", 0.5, 1.0))
        add("attn.q_norm.weight", [Q], "bf16", ("uniform", 0.6, 1.4))
        add("attn.kv_norm.weight", [d], "bf16", ("uniform", 0.8, 2.2))
        add("attn.wq_a.weight", [Q, D], "fp8", ("normal", 0.0, 1.0 / math.sqrt(D)))
        add("attn.wq_b.weight", [H * d, Q], "fp8", ("normal", 0.0, 1.0 / math.sqrt(Q)))
        add("attn.wkv.weight", [d, D], "fp8", ("normal", 0.0, 1.0 / math.sqrt(D)))
        add("attn.wo_a.weight", [G * R, H * d // G], "fp8", ("normal", 0.0, 1.0 / math.sqrt(H * d // G)))
        add("attn.wo_b.weight", [D, G * R], "fp8", ("normal", 0.0, 1.0 / math.sqrt(G * R)))
        r = roles[layer]
        if r["ratio"] and r["is_kv_source"]:
            add("attn.compressor.wkv.weight", [d, D], "bf16", ("normal", 0.0, 1.0 / math.sqrt(D)))
            if r["ratio"] > 1:
                add("attn.compressor.wgate.weight", [d, D], "bf16", ("normal", 0.0, 2.0 / math.sqrt(D)))
            add("attn.compressor.norm.weight", [d], "bf16", ("uniform", 0.8, 2.2))
            # the C inventory lists wk/k_norm on every KV source (HF: KV sources that are index sources)
            add("attn.indexer.wk.weight", [dI, d], "bf16", ("normal", 0.0, 1.0 / math.sqrt(d)))
            add("attn.indexer.k_norm.weight", [dI], "bf16", ("uniform", 0.6, 1.4))
        if r["ratio"] and r["is_index_source"]:
            add("attn.indexer.wq_b.weight", [nI * dI, Q], "fp8", ("normal", 0.0, 1.0 / math.sqrt(Q)))
            add("attn.indexer.weights_proj.weight", [nI, D], "bf16", ("normal", 0.0, 2.0 / math.sqrt(D)))
        add("attn_norm.weight", [D], "bf16", ("uniform", 0.6, 1.4))
        for e in range(E):
            add(f"ffn.experts.{e}.w1.weight", [I, D], "fp4", ("normal", 0.0, 3.0 / math.sqrt(D)))
            add(f"ffn.experts.{e}.w2.weight", [D, I], "fp4", ("normal", 0.0, 0.5 / math.sqrt(I)))
            add(f"ffn.experts.{e}.w3.weight", [I, D], "fp4", ("normal", 0.0, 3.0 / math.sqrt(D)))
        add("ffn.gate.bias", [E], "f32", ("normal", 0.0, 0.3))
        add("ffn.gate.bias_vl", [E], "f32", ("normal", 0.0, 0.3))
        add("ffn.gate.weight", [E, D], "bf16", ("normal", 0.0, 2.5 / math.sqrt(D)))
        add("ffn.shared_experts.w1.weight", [I, D], "fp8", ("normal", 0.0, 3.0 / math.sqrt(D)))
        add("ffn.shared_experts.w2.weight", [D, I], "fp8", ("normal", 0.0, 0.5 / math.sqrt(I)))
        add("ffn.shared_experts.w3.weight", [I, D], "fp8", ("normal", 0.0, 3.0 / math.sqrt(D)))
        add("ffn_norm.weight", [D], "bf16", ("uniform", 0.6, 1.4))
        for site in ("attn", "ffn"):
            add(f"hc_{site}_base", [mix], "f32", ("normal", 0.0, 0.7))
            add(f"hc_{site}_fn", [mix, S * D], "f32", ("normal", 0.0, 1.0 / math.sqrt(S * D)))
            add(f"hc_{site}_scale", [3], "f32", ("uniform", 0.5, 2.5))
        if layer in (c["engram_layer_ids"] or []):
            slot = c["engram_layer_ids"].index(layer)
            cols = (c["engram_max_ngram_size"] - 1) * c["engram_n_heads"] * c["engram_head_dim"]
            add("engram.embed.weight", [c["engram_num_embeddings"][slot], c["engram_head_dim"]], "engram",
                ("normal", 0.0, 1.0))
            add("engram.wkv.weight", [(S + 1) * D, cols], "fp8", ("normal", 0.0, 1.0 / math.sqrt(cols)))
            add("engram.q_weight", [S, D], "bf16", ("uniform", 0.5, 1.5))
            add("engram.k_weight", [S, D], "bf16", ("uniform", 0.5, 1.5))
    return inv


def make_weights_v41(c, block, seed):
    """Random official V4.1 checkpoint: (stored name -> file-dtype tensor, values name ->
    float32 dequantised value). Quantisers are v4_format's (section 3.4); every FP8
    block (and every Engram row block) gets its own random 2^U(-1,1) magnitude so the
    scales really differ."""
    gen = torch.Generator().manual_seed(seed)
    stored, values = {}, {}
    for name, shape, kind, init in model_inventory_v41(c):
        w = v4_format.draw(shape, init, gen)
        if kind in ("fp8", "engram"):
            b = (1, 32) if kind == "engram" else tuple(block)
            so, si = -(-shape[0] // b[0]), -(-shape[1] // b[1])
            mult = torch.exp2(torch.rand(so, si, generator=gen) * 2.0 - 1.0)
            w = w * mult.repeat_interleave(b[0], 0).repeat_interleave(b[1], 1)[: shape[0], : shape[1]]
            q, s, deq = v4_format.quant_fp8(w, b)
            stored[name], stored[name[: -len("weight")] + "scale"] = q, s
            values[name] = deq
        elif kind == "fp4":
            q, s, deq = v4_format.quant_fp4(w)
            stored[name], stored[name[: -len("weight")] + "scale"] = q, s
            values[name] = deq
        elif kind == "bf16":
            stored[name] = w.to(torch.bfloat16)
            values[name] = stored[name].float()
        elif kind == "f32":
            stored[name] = values[name] = w.float().contiguous()
        else:
            raise ValueError(kind)
    return stored, values


def shard_plan_v41(stored, c, n_shards):
    """Like the release: the Engram tables (embed.weight/.scale) in the last shard,
    embed + the first half of the layers first, the rest (and head/norm) in between."""
    assert n_shards == 3
    n = c["num_hidden_layers"]
    table = [k for k in stored if ".engram.embed." in k]
    first = [k for k in stored if k not in table and (k == "embed.weight" or
                                                      (k.startswith("layers.") and int(k.split(".")[1]) < n // 2))]
    mid = [k for k in stored if k not in table and k not in first]
    return [first, mid, table]


# ---------------------------------------------------------------- QAT margin probe and jitter

class QuantProbe:
    """Wraps ref_v41's fake-quant functions while a forward runs.

    Margins: for every quantised value, how far it sits from the rounding boundary of
    its grid, in units of its block's absolute maximum (a second fp32 implementation
    differs from this one by roughly eps * amax, not eps * |x|). Only flips that move a
    value by a measurable fraction of its block's maximum are counted: every FP4 value
    (a step is 8-33% of amax), FP8 values whose step is >= FP8_BIG_STEP of the block
    maximum ('fp8_value') and those whose step is >= FP8_SMALL_STEP ('fp8_small_value').
    step_margin holds the same minima in units of the rounding step (reported only).
    Block scales: relative distance of the scale's argument from the point where the
    chosen scale changes (power of two, or E4M3 midpoint).

    Jitter (optional): adds jitter * amax_block * N(0,1) to every QAT input, so that
    the effect of a slightly different implementation can be measured."""

    def __init__(self, jitter=0.0, seed=0):
        self.jitter = jitter
        self.gen = torch.Generator().manual_seed(seed)
        self.margin, self.count, self.step_margin = {}, {}, {}
        self.orig = (ref_v41.fq_fp8, ref_v41.fq_fp4)

    def __enter__(self):
        ref_v41.fq_fp8, ref_v41.fq_fp4 = self.fp8, self.fp4
        return self

    def __exit__(self, *a):
        ref_v41.fq_fp8, ref_v41.fq_fp4 = self.orig

    def _noise(self, x, block):
        if not self.jitter or x.shape[-1] % block:
            return x
        b = x.reshape(*x.shape[:-1], -1, block)
        amax = b.abs().amax(-1, keepdim=True)
        return (b + self.jitter * amax * torch.randn(b.shape, generator=self.gen)).reshape(x.shape)

    def _note(self, key, rel):
        rel = rel[torch.isfinite(rel)]
        if rel.numel():
            self.margin[key] = min(self.margin.get(key, float("inf")), float(rel.min()))
            self.count[key] = self.count.get(key, 0) + int(rel.numel())

    def _note_step(self, key, rel):
        """The same distances in units of the rounding step (reported, not gated)."""
        if rel.numel():
            self.step_margin[key] = min(self.step_margin.get(key, float("inf")), float(rel.min()))

    def fp8(self, x, block=32):
        x = self._noise(x, block)
        if x.shape[-1] % block == 0:
            b = x.reshape(*x.shape[:-1], -1, block)
            t = b.abs().amax(-1).clamp_min(1e-4) * (1.0 / 448.0)
            self._note("fp8_scale", pow2_boundary_rel(t))
            scale = ref_v41.pow2_at_least(t)[..., None]
            y = (b / scale).clamp(-448, 448)
            ymax = y.abs().amax(-1, keepdim=True)
            dist, step = boundary_dist(y, E4M3_POS)
            ym = ymax.expand_as(y).flatten()
            big = step >= FP8_BIG_STEP * ym
            small = ~big & (step >= FP8_SMALL_STEP * ym)
            self._note("fp8_value", (dist / ym)[big])
            self._note("fp8_small_value", (dist / ym)[small])
            self._note_step("fp8_value", (dist / step)[big | small])
        return self.orig[0](x, block)

    def fp4(self, x, block, e4m3_scale):
        x = self._noise(x, block)
        if x.shape[-1] % block == 0:
            b = x.reshape(*x.shape[:-1], -1, block)
            amax = b.abs().amax(-1)
            if e4m3_scale:
                t = amax.clamp_min(6.0 * 2.0 ** -9) / 6.0
                self._note("fp4_e4m3_scale", boundary_dist(t, E4M3_POS)[0] / t.flatten())
                scale = t.to(torch.float8_e4m3fn).float()[..., None]
            else:
                t = amax.clamp_min(6.0 * 2.0 ** -126) * (1.0 / 6.0)
                self._note("fp4_pow2_scale", pow2_boundary_rel(t))
                scale = ref_v41.pow2_at_least(t)[..., None]
            y = (b / scale).clamp(-6, 6)
            ymax = y.abs().amax(-1, keepdim=True).expand_as(y).flatten()
            key = "fp4_kv_value" if e4m3_scale else "fp4_index_value"
            dist, step = boundary_dist(y, E2M1_POS)
            self._note(key, dist / ymax)
            self._note_step(key, dist / step)
        return self.orig[1](x, block, e4m3_scale)


FP8_BIG_STEP = 1.0 / 32     # FP8 steps of >= 3% of the block maximum: MIN_QUANT_MARGIN
FP8_SMALL_STEP = 1.0 / 4096  # FP8 steps from here to FP8_BIG_STEP: MIN_FP8_SMALL_MARGIN; smaller flips are
                             # noise-sized (< ~1e-5 of max|logit|, README-v41.md)
E4M3_POS = torch.arange(0, 127, dtype=torch.uint8).view(torch.float8_e4m3fn).float()   # 0 .. 448
E2M1_POS = torch.tensor(ref_v41.E2M1_VALUES)


def boundary_dist(y, grid):
    """For |y| on a sorted non-negative grid: distance to the nearest rounding midpoint
    and the size of the jump a crossing would cause (the grid step there)."""
    a = y.abs().flatten().double()
    g = grid.double()
    mids = (g[1:] + g[:-1]) / 2
    steps = g[1:] - g[:-1]
    i = torch.searchsorted(mids, a).clamp(0, mids.numel() - 1)      # mids[i-1] < a <= mids[i]
    lo = (i - 1).clamp(min=0)
    d_hi, d_lo = (mids[i] - a).abs(), (a - mids[lo]).abs()
    use_lo = d_lo < d_hi
    dist = torch.where(use_lo, d_lo, d_hi)
    step = torch.where(use_lo, steps[lo], steps[i])
    return dist.float(), step.float()


def pow2_boundary_rel(t):
    """Distance of t from the nearest power of two, relative (the ceil flips there)."""
    t = t.double()
    e = torch.round(torch.log2(t))
    return ((t / torch.exp2(e)) - 1).abs().float()


# ---------------------------------------------------------------- oracle

def decision_gaps(ref, c, T):
    """Smallest margin of every discrete choice of one forward."""
    k = c["num_experts_per_tok"]
    g = {"router": float("inf"), "indexer": float("inf"), "candidate": float("inf")}
    for tr in ref["traces"]:
        srt = tr["biased_scores"].sort(dim=-1, descending=True).values
        g["router"] = min(g["router"], float((srt[:, k - 1] - srt[:, k]).min()))
        if "index_scores" in tr:
            sc = tr["index_scores"]
            K = min(c["index_topk"], sc.shape[1])
            for t in range(T):
                v = sc[t][torch.isfinite(sc[t])].sort(descending=True).values
                if v.numel() > K:
                    g["indexer"] = min(g["indexer"], float(v[K - 1] - v[K]))
        if "candidate_blocks" in tr:
            sc = tr["index_scores"]
            bs, kb = c["candidate_block_size"], c["candidate_topk_blocks"]
            n = sc.shape[1]
            for t in range(T):
                nvis = (t + 1) // tr["role"]["ratio"]
                if nvis == 0:
                    continue
                forced = (nvis - 1) // bs
                blk = [float(sc[t, b * bs:min(n, (b + 1) * bs)].max()) for b in range(-(-n // bs))]
                free = sorted((s for b, s in enumerate(blk) if b != forced and math.isfinite(s)), reverse=True)
                if len(free) > kb - 1:
                    g["candidate"] = min(g["candidate"], free[kb - 2] - free[kb - 1] if kb > 1 else float("inf"))
    return g


def pack_blocks(keep, width):
    """[T, nb] bool -> [T, width] kept block ids ascending, then -1."""
    T = keep.shape[0]
    out = torch.full((T, width), -1, dtype=torch.int64)
    for t in range(T):
        v = torch.nonzero(keep[t]).flatten().tolist()
        out[t, : len(v)] = torch.tensor(v, dtype=torch.int64)
    return out


def oracle_tensors(ref, c, ids, hasher):
    n, k = c["num_hidden_layers"], c["num_experts_per_tok"]
    res = {"input_ids": ids, "logits": ref["logits"], "final_hidden": ref["final_hidden"],
           "engram.token_map": hasher.token_map.clone()}
    for layer in range(n):
        tr = ref["traces"][layer]
        res[f"hidden.{layer}"] = ref["hidden"][layer]
        e, w = make_fixtures.sort_route(tr["experts"], tr["weights"])
        res[f"router.{layer}.experts"], res[f"router.{layer}.weights"] = e.to(torch.int64), w.float()
        if "index_sel" in tr:
            sel = tr["index_sel"]
            top = torch.where(sel, torch.arange(sel.shape[1])[None, :], torch.full_like(sel, -1, dtype=torch.int64))
            res[f"indexer.{layer}.topk"] = make_fixtures.pack_topk(top, c["index_topk"])
        if "candidate_blocks" in tr:
            res[f"indexer.{layer}.candidate_blocks"] = pack_blocks(tr["candidate_blocks"], c["candidate_topk_blocks"])
        if "engram_gate" in tr:
            res[f"engram.{layer}.hash_ids"] = ref["hash"][layer].to(torch.int64)
            res[f"engram.{layer}.gate"] = tr["engram_gate"].float()
    return res


def run_one(c, values, ids, prompt, n_greedy, hasher):
    """Oracle outputs and acceptance measures of one weight draw, cheapest gates first:
    decision gaps and QAT margins of the fp32 forward; the same forward in float64 (a
    second, more precise implementation: a QAT rounding flip shows up as a jump);
    greedy decoding in fp32 and again in float64."""
    with QuantProbe() as probe:
        ref = ref_v41.forward(values, c, ids, hasher)
    gaps = decision_gaps(ref, c, ids.shape[0])
    gaps["quant_margin"] = min(v for k, v in probe.margin.items() if k not in ("fp4_index_value", "fp8_small_value"))
    gaps["fp8_small_margin"] = probe.margin.get("fp8_small_value", float("inf"))
    gaps["index_quant_margin"] = probe.margin.get("fp4_index_value", float("inf"))
    res = oracle_tensors(ref, c, ids, hasher)
    if not forward_ok(gaps):
        return res, gaps, probe, False
    v64 = {k: (v.double() if v.is_floating_point() else v) for k, v in values.items()}
    r64 = oracle_tensors(ref_v41.forward(v64, c, ids, hasher), c, ids, hasher)
    gaps["fp64_logits"] = float((r64["logits"] - res["logits"]).abs().max())
    gaps["fp64_hidden_rel"] = max(float((r64[f"hidden.{i}"] - res[f"hidden.{i}"]).abs().max()
                                        / res[f"hidden.{i}"].abs().max()) for i in range(c["num_hidden_layers"]))
    gaps["fp64_decisions_equal"] = all(torch.equal(res[k], r64[k]) for k in res
                                       if k.endswith(("experts", "topk", "blocks")))
    if not (gaps["fp64_decisions_equal"] and gaps["fp64_logits"] <= MAX_FP64_LOGITS):
        return res, gaps, probe, False
    toks, g_gaps = ref_v41.greedy(values, c, prompt, n_greedy, hasher)
    res["greedy_prompt"], res["greedy_tokens"] = prompt, toks
    gaps["greedy"] = min(g_gaps)
    gaps["greedy_special"] = bool(((toks == 0) | (toks == 1)).any())
    if gaps["greedy"] < MIN_GREEDY_GAP or gaps["greedy_special"]:
        return res, gaps, probe, False
    toks64, g64 = ref_v41.greedy(v64, c, prompt, n_greedy, hasher)
    gaps["fp64_greedy_equal"] = bool(torch.equal(toks64, toks))
    gaps["fp64_greedy_gap_change"] = max(abs(a - b) for a, b in zip(g_gaps, g64))
    # a QAT flip inside some greedy forward may move that step's logits a little: it must
    # stay well inside the smallest greedy margin
    if not (gaps["fp64_greedy_equal"] and gaps["fp64_greedy_gap_change"] <= gaps["greedy"] / 4):
        return res, gaps, probe, False
    # last and most expensive: JITTER * amax noise at every QAT input moves no decision
    worst = jitter_test(c, values, ids, hasher, res)
    with QuantProbe(jitter=JITTER, seed=99):
        jtoks, _ = ref_v41.greedy(values, c, prompt, n_greedy, hasher)
    gaps["jitter_decisions_equal"] = worst["decisions_equal"]
    gaps["jitter_greedy_equal"] = bool(torch.equal(jtoks, toks))
    gaps["jitter_logits"] = worst["logits"]
    return res, gaps, probe, gaps["jitter_decisions_equal"] and gaps["jitter_greedy_equal"]


def forward_ok(g):
    return (g["router"] >= MIN_ROUTER_GAP and g["indexer"] >= MIN_INDEXER_GAP
            and g["candidate"] >= MIN_CANDIDATE_GAP and g["quant_margin"] >= MIN_QUANT_MARGIN
            and g["fp8_small_margin"] >= MIN_FP8_SMALL_MARGIN and g["index_quant_margin"] >= MIN_INDEX_QUANT_MARGIN)


def jitter_test(c, values, ids, hasher, res):
    """Rerun the forward with JITTER * amax noise at every QAT input: how far the
    outputs move and whether any discrete decision changes."""
    worst = {"logits": 0.0, "hidden_rel": 0.0, "final_hidden": 0.0, "decisions_equal": True}
    for trial in range(JITTER_TRIALS):
        with QuantProbe(jitter=JITTER, seed=trial):
            jres = oracle_tensors(ref_v41.forward(values, c, ids, hasher), c, ids, hasher)
        for key in jres:
            if key.startswith(("router.", "indexer.")) and key.endswith(("experts", "topk", "blocks")):
                worst["decisions_equal"] &= torch.equal(res[key], jres[key])
        worst["logits"] = max(worst["logits"], float((jres["logits"] - res["logits"]).abs().max()))
        worst["final_hidden"] = max(worst["final_hidden"],
                                    float((jres["final_hidden"] - res["final_hidden"]).abs().max()))
        for layer in range(c["num_hidden_layers"]):
            a, b = jres[f"hidden.{layer}"], res[f"hidden.{layer}"]
            worst["hidden_rel"] = max(worst["hidden_rel"], float((a - b).abs().max() / b.abs().max()))
    return worst


def build_fixture(name, spec, out_root, log, max_tries=1500):
    folder = os.path.join(out_root, name)
    tok_text, tok = tiny_tokenizer.build(spec["text"].get("vocab_size", 512))
    token_map, n_comp = ref_v41.compressed_token_map(tok)
    text = dict(spec["text"])
    text["engram_compressed_vocab_size"] = n_comp
    primes = ref_v41.engram_primes(text["engram_layer_ids"], text["engram_vocab_size"], 4, 8)
    text["engram_num_embeddings"] = [sum(p for row in lp for p in row) for lp in primes]
    tc = text_config(**text)
    full = v41_config(tc, spec["block"])
    c = dict(tc)                                       # flat text config for the reference
    hasher = ref_v41.EngramHasher(c, token_map, n_comp)
    body = tok.encode(INPUT_TEXT, add_special_tokens=False).ids
    ids = torch.tensor([0] + body[: spec["T"] - 1], dtype=torch.int64)
    prompt = torch.tensor(tok.encode(spec["greedy_prompt_text"], add_special_tokens=False).ids, dtype=torch.int64)
    log(f"{name}: T={ids.shape[0]} prompt={prompt.shape[0]} compressed vocab={n_comp} "
        f"engram rows={c['engram_num_embeddings']}")
    for attempt in range(max_tries):
        seed = spec["seed"] + attempt
        stored, values = make_weights_v41(c, spec["block"], seed)
        res, gaps, probe, ok = run_one(c, values, ids, prompt, spec["n_greedy"], hasher)
        log(f"  seed {seed}: " + " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                          for k, v in gaps.items()) + f" -> {'ok' if ok else 'retry'}")
        if ok:
            break
    else:
        raise RuntimeError(f"{name}: no seed with clear decisions in {max_tries} tries")
    worst = jitter_test(c, values, ids, hasher, res)
    log(f"  jitter {JITTER:g}*amax at every QAT input, {JITTER_TRIALS} trials: {json.dumps(worst)}")
    with QuantProbe(jitter=10 * JITTER, seed=7):
        big = oracle_tensors(ref_v41.forward(values, c, ids, hasher), c, ids, hasher)
    worst["logits_at_10x_jitter"] = float((big["logits"] - res["logits"]).abs().max())
    log(f"  logits change at {10 * JITTER:g}*amax jitter: {worst['logits_at_10x_jitter']:.3g}")
    n = c["num_hidden_layers"]
    stats = {
        "logits_std": float(res["logits"].std()), "logits_absmax": float(res["logits"].abs().max()),
        "hidden_absmax": max(float(res[f"hidden.{i}"].abs().max()) for i in range(n)),
        "experts_used_per_layer": [int(res[f"router.{i}.experts"].unique().numel()) for i in range(n)],
        "greedy_distinct_tokens": int(res["greedy_tokens"].unique().numel()),
        "engram_gate_range": [[float(res[f"engram.{l}.gate"].min()), float(res[f"engram.{l}.gate"].max())]
                              for l in c["engram_layer_ids"]],
        "quant_margins": probe.margin, "quant_counts": probe.count, "quant_step_margins": probe.step_margin,
    }
    log(f"  stats: {json.dumps(stats)}")

    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(full, f, indent=2)
        f.write("\n")
    with open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(tok_text)
        f.write("\n")
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tiny_tokenizer.TOKENIZER_CONFIG, f, indent=2, ensure_ascii=False)
        f.write("\n")
    shards = shard_plan_v41(stored, c, spec["shards"]) if spec["shards"] else None
    files = v4_format.write_checkpoint(folder, stored, shards)
    meta = {
        "format": "lantern-oracle",
        "version": ORACLE_VERSION,
        "oracle": ORACLE_NAME,
        "hf_reference": f"huggingface/transformers {HF_COMMIT} src/transformers/models/deepseek_v41 (read, not run)",
        "transformers": "none (no release ships deepseek_v41)",
        "torch": torch.__version__,
        "fixture": name,
        "description": spec["description"],
        "seed": str(seed),
        "input_text": INPUT_TEXT,
        "input_ids_note": "input_ids = [bos] + tokenizer.encode(input_text)[:T-1]",
        "greedy_prompt_text": spec["greedy_prompt_text"],
        "greedy_prompt_note": "greedy_prompt = tokenizer.encode(greedy_prompt_text), no BOS (add_bos_token=false)",
        "greedy_method": "full-recompute argmax loop of ref_v41.forward (no cache), eos not special",
        "min_gaps": json.dumps(gaps),
        "jitter_test": json.dumps(dict(worst, noise_times_block_amax=JITTER, trials=JITTER_TRIALS)),
        "quant_margins": json.dumps(probe.margin),
        "quant_step_margins": json.dumps(probe.step_margin),
        "checkpoint_files": json.dumps(files),
    }
    v4_format.save_safetensors(os.path.join(folder, "oracle.safetensors"),
                               {k: v.contiguous() for k, v in res.items()}, meta)
    write_reference(folder, log)
    sizes = {f: os.path.getsize(os.path.join(folder, f)) for f in sorted(os.listdir(folder))}
    log(f"  wrote {folder}: {json.dumps(sizes)} total {sum(sizes.values())}")
    return folder


# ---------------------------------------------------------------- verify (from the files alone)

def dequant_engram(w, s):
    """F8_E4M3 [rows, hd] with F8_E8M0 [rows, hd/32]: one scale per row and 32 columns."""
    import verify_fixtures as vf
    rows, hd = w.shape
    assert s.shape == (rows, hd // 32), (w.shape, s.shape)
    return vf.E4M3[w] * np.repeat(vf.e8m0(s), 32, 1)


def dequantised_values(raw, c, block):
    """Official name -> float32 value of every inventory tensor of a checkpoint read by
    verify_fixtures.load_checkpoint, decoded from the bit layouts with numpy."""
    import verify_fixtures as vf
    values = {}
    for name, shape, kind, _ in model_inventory_v41(c):
        w = vf.to_array(*raw[name])
        if kind in ("fp8", "fp4", "engram"):
            s = vf.to_array(*raw[name[:-6] + "scale"])
            w = (vf.dequant_fp8(w, s, block) if kind == "fp8" else
                 vf.dequant_fp4(w, s) if kind == "fp4" else dequant_engram(w, s))
        values[name] = torch.from_numpy(w.astype(np.float32))
    return values


@torch.no_grad()
def verify(folder):
    """Independent re-read: safetensors parsed by verify_fixtures' own reader, FP8/FP4/
    Engram decoded from bit layouts with numpy, inventory compared name by name, then
    ref_v41 recomputed on those values and compared with the stored oracle."""
    import verify_fixtures as vf
    from tokenizers import Tokenizer

    problems, report = [], []
    full = json.load(open(os.path.join(folder, "config.json")))
    c = dict(full["text_config"])
    block = full["quantization_config"]["weight_block_size"]
    if full.get("model_type") != "deepseek_v41" or full["quantization_config"].get("expert_dtype") != "fp4":
        problems.append("config is not a composite deepseek_v41 config with expert_dtype fp4")
    raw = vf.load_checkpoint(folder, c, problems)
    expected = {}
    for name, shape, kind, _ in model_inventory_v41(c):
        if kind == "fp4":
            expected[name] = ("I8", (shape[0], shape[1] // 2))
            expected[name[:-6] + "scale"] = ("F8_E8M0", (shape[0], shape[1] // 32))
        elif kind == "fp8":
            expected[name] = ("F8_E4M3", shape)
            expected[name[:-6] + "scale"] = ("F8_E8M0", (-(-shape[0] // block[0]), -(-shape[1] // block[1])))
        elif kind == "engram":
            expected[name] = ("F8_E4M3", shape)
            expected[name[:-6] + "scale"] = ("F8_E8M0", (shape[0], shape[1] // 32))
        else:
            expected[name] = (vf.KIND_DTYPE[kind], shape)
    for name in sorted(set(expected) | set(raw)):
        if name not in raw:
            problems.append(f"missing tensor {name}")
        elif name not in expected:
            problems.append(f"unexpected tensor {name}")
        elif (raw[name][0], raw[name][1]) != expected[name]:
            problems.append(f"{name}: {raw[name][0]}{list(raw[name][1])}, expected {expected[name]}")
    if problems:
        return problems, report
    values = dequantised_values(raw, c, block)
    report.append(f"  inventory: {len(raw)} tensors, names/dtypes/shapes as expected")
    o_raw, meta = vf.read_safetensors(os.path.join(folder, "oracle.safetensors"))
    oracle = {}
    for k, (dt, shape, b) in o_raw.items():
        a = vf.to_array(dt, shape, b)
        oracle[k] = torch.from_numpy(a.copy()) if dt == "I64" else torch.from_numpy(a.astype(np.float32))
    if meta.get("oracle") != ORACLE_NAME or meta.get("format") != "lantern-oracle":
        problems.append(f"oracle metadata: {meta.get('oracle')}")
    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    token_map, n_comp = ref_v41.compressed_token_map(tok)
    if tok.get_vocab_size() != c["vocab_size"]:
        problems.append("tokenizer vocab size differs from config")
    if n_comp != c["engram_compressed_vocab_size"]:
        problems.append(f"compressed vocab {n_comp} != engram_compressed_vocab_size")
    if token_map != oracle["engram.token_map"].tolist():
        problems.append("engram.token_map differs from the tokenizer-derived map")
    if tok.encode(meta["greedy_prompt_text"], add_special_tokens=False).ids != oracle["greedy_prompt"].tolist():
        problems.append("greedy_prompt_text does not encode to greedy_prompt")
    body = tok.encode(meta["input_text"], add_special_tokens=False).ids
    if [0] + body[: oracle["input_ids"].shape[0] - 1] != oracle["input_ids"].tolist():
        problems.append("input_text does not encode to input_ids")
    hasher = ref_v41.EngramHasher(c, token_map, n_comp)
    ids = oracle["input_ids"]
    ref = ref_v41.forward(values, c, ids, hasher)
    got = oracle_tensors(ref, c, ids, hasher)
    got["greedy_prompt"] = oracle["greedy_prompt"]
    got["greedy_tokens"], _ = ref_v41.greedy(values, c, oracle["greedy_prompt"], oracle["greedy_tokens"].shape[0],
                                             hasher)
    # the scalar hash restatement must agree with the stored hash ids
    for s, lid in enumerate(c["engram_layer_ids"]):
        flat = [p for row in hasher.primes[s] for p in row]
        sc = ref_v41.engram_hash_scalar(ids.tolist(), [True] * ids.shape[0], token_map, hasher.pad,
                                        hasher.mult[s], hasher.primes[s], hasher.offsets[s], 4)
        if sc != oracle[f"engram.{lid}.hash_ids"].tolist() or max(max(r) for r in sc) >= sum(flat):
            problems.append(f"engram.{lid}.hash_ids: scalar hash disagrees or exceeds the table")
    report.append("  recomputed from the files vs stored oracle:")
    for k in sorted(oracle):
        if k not in got:
            problems.append(f"oracle tensor {k} not re-derived")
            continue
        vf.compare(k, got[k], oracle[k], 0.0, report, problems)
    for k in got:
        if k not in oracle:
            problems.append(f"oracle lacks {k}")
    r_raw, _ = vf.read_safetensors(os.path.join(folder, REFERENCE_FILE))
    ref = reference_tensors(ref_v41.reference_forward(values, c, ids, block[1], hasher), c, ids, hasher)
    report.append(f"  recomputed REFERENCE numerics vs stored {REFERENCE_FILE}:")
    for k in sorted(set(r_raw) | set(ref)):
        if k not in r_raw or k not in ref:
            problems.append(f"{REFERENCE_FILE}: {k} only on one side")
            continue
        a = vf.to_array(*r_raw[k])
        vf.compare(k, ref[k], torch.from_numpy(a.copy() if r_raw[k][0] == "I64" else a.astype(np.float32)), 0.0,
                   report, problems)
    return problems, report


# ---------------------------------------------------------------- REFERENCE-numerics oracle

REFERENCE_FILE = "oracle_reference.safetensors"
REFERENCE_NAME = "lantern ref_v41.RefModel (official V4.1 inference rounding points, independent)"


def reference_tensors(ref, c, ids, hasher):
    """The oracle.safetensors set of a REFERENCE run, less what repeats the exact oracle
    (token map, hash ids) and less the residuals of blocks other than block 0 and the
    first CSA2 block, the two a C comparison can check before decisions diverge."""
    first_csa = next(l for l, r in enumerate(c["compress_ratios"]) if r)
    keep_hidden = ("hidden.0", f"hidden.{first_csa}")
    res = oracle_tensors(ref, c, ids, hasher)
    return {k: v for k, v in res.items() if not (k == "engram.token_map" or k.endswith(".hash_ids") or
                                                 k.startswith("hidden.") and k not in keep_hidden)}


@torch.no_grad()
def write_reference(folder, log=print):
    """REFERENCE-numerics outputs of an existing fixture, from its files alone, into
    REFERENCE_FILE (a file of its own: model files and oracle.safetensors stay
    byte-identical). Tensors as in oracle.safetensors (README-v41.md), see
    reference_tensors."""
    import verify_fixtures as vf
    from tokenizers import Tokenizer

    problems = []
    full = json.load(open(os.path.join(folder, "config.json")))
    c = dict(full["text_config"])
    block = full["quantization_config"]["weight_block_size"]
    values = dequantised_values(vf.load_checkpoint(folder, c, problems), c, block)
    assert not problems, problems
    o_raw, meta = vf.read_safetensors(os.path.join(folder, "oracle.safetensors"))
    ids = torch.from_numpy(vf.to_array(*o_raw["input_ids"]).astype(np.int64))
    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    hasher = ref_v41.EngramHasher(c, *ref_v41.compressed_token_map(tok))
    ref = ref_v41.reference_forward(values, c, ids, block[1], hasher)
    res = reference_tensors(ref, c, ids, hasher)
    exact = torch.from_numpy(vf.to_array(*o_raw["logits"]).astype(np.float32))
    rel = float((res["logits"] - exact).abs().max() / exact.abs().max())
    top1 = float((res["logits"].argmax(-1) == exact.argmax(-1)).float().mean())
    top2 = res["logits"].topk(2, dim=-1).values
    log(f"{os.path.basename(folder)}: REFERENCE vs EXACT oracle: max |dlogit| / max |logit| {rel:.3g}, top-1 "
        f"{100 * top1:.1f}%; smallest top-1 margin {float((top2[:, 0] - top2[:, 1]).min()):.3g}")
    rmeta = {"format": "lantern-oracle", "version": ORACLE_VERSION, "oracle": REFERENCE_NAME,
             "numerics": "reference", "fixture": meta["fixture"], "seed": meta["seed"],
             "vs_exact_oracle": json.dumps({"max_rel_logit": rel, "top1_agreement": top1})}
    v4_format.save_safetensors(os.path.join(folder, REFERENCE_FILE), {k: v.contiguous() for k, v in res.items()},
                               rmeta)


# ---------------------------------------------------------------- Engram hash vectors (real config)

HASH_MAGIC = b"LTENGHV1"


def write_hash_vectors(path, min_positions=5000, seed=4141, log=print):
    """Hash ids of the released V4.1 Engram (layers 1 and 14, engram_vocab_size 16,000,000,
    compressed vocabulary 99,092 from the V4.1 tokenizer) for random token sequences.
    Format: tests/fixtures/README-v41.md, "Engram hash vectors"."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(os.path.dirname(REPO), "shared", "assets", "deepseek-v4",
                                           "tokenizer-v41", "tokenizer.json"))
    token_map, n_comp = ref_v41.compressed_token_map(tok)
    assert n_comp == 99092, n_comp
    c = dict(engram_layer_ids=[1, 14], engram_max_ngram_size=4, engram_n_heads=8, engram_vocab_size=16000000,
             engram_compressed_vocab_size=99092, engram_num_embeddings=[384006168, 384016682], engram_pad_id=2)
    h = ref_v41.EngramHasher(c, token_map, n_comp)
    V = len(token_map)
    rng = np.random.default_rng(seed)
    # raw ids whose compressed id is near the top of the range: the largest products
    top_ids = [i for i in range(V) if token_map[i] >= n_comp - 64]
    seqs, n_pos = [], 0
    while n_pos < min_positions:
        s = len(seqs)
        L = int(rng.integers(1, 64))
        ids = rng.integers(0, V, size=L)
        if s % 4 == 1:
            ids = np.array([top_ids[j] for j in rng.integers(0, len(top_ids), size=L)])
        if s % 4 == 2:
            ids[rng.random(L) < 0.3] = 2                         # the pad token itself in the text
        live = np.ones(L, dtype=bool)
        if s % 5 == 3:
            live[rng.random(L) < 0.15] = False                   # dead (image) positions
        seqs.append((ids.astype(np.int64), live))
        n_pos += L
    with open(path, "wb") as f:
        f.write(HASH_MAGIC)
        f.write(struct.pack("<8i", 1, 2, 4, 8, V, n_comp, 2, h.pad))
        f.write(struct.pack("<q", 16000000))
        f.write(struct.pack("<2q", *h.layer_ids))
        f.write(struct.pack("<2q", *h.rows))
        for s in range(2):
            f.write(struct.pack("<4q", *h.mult[s]))
        for s in range(2):
            f.write(struct.pack("<24q", *[p for row in h.primes[s] for p in row]))
        for s in range(2):
            f.write(struct.pack("<24q", *h.offsets[s]))
        f.write(struct.pack("<2i", len(seqs), n_pos))
        for ids, live in seqs:
            comp = h.token_map[torch.from_numpy(ids)]
            win = h.lookback(comp, torch.from_numpy(live))
            out = torch.stack([h.hash_windows(win, s) for s in range(2)], 1)     # [L, 2, 24]
            for s in range(2):       # the plain-integer restatement must agree
                sc = ref_v41.engram_hash_scalar(ids.tolist(), live.tolist(), token_map, h.pad, h.mult[s],
                                                h.primes[s], h.offsets[s], 4)
                assert sc == out[:, s].tolist()
            assert int(out.max()) < 2 ** 31
            f.write(struct.pack("<i", len(ids)))
            f.write(ids.astype("<i4").tobytes())
            f.write(comp.numpy().astype("<i4").tobytes())
            f.write(np.pad(live.astype(np.uint8), (0, -len(ids) % 4)).tobytes())
            f.write(out.numpy().astype("<i4").tobytes())
    log(f"wrote {path}: {len(seqs)} sequences, {n_pos} positions, {2 * n_pos} hash vectors of 24, "
        f"{os.path.getsize(path)} bytes; multipliers {h.mult}")
    return path


def read_hash_vectors(path):
    """Reader for the format above (used to re-check the file)."""
    b = open(path, "rb").read()
    assert b[:8] == HASH_MAGIC
    o = 8
    ver, nl, N, nh, V, nc, pad_raw, pad = struct.unpack_from("<8i", b, o); o += 32
    (ev,) = struct.unpack_from("<q", b, o); o += 8
    lids = struct.unpack_from(f"<{nl}q", b, o); o += 8 * nl
    rows = struct.unpack_from(f"<{nl}q", b, o); o += 8 * nl
    mult = [struct.unpack_from(f"<{N}q", b, o + 8 * N * s) for s in range(nl)]; o += 8 * N * nl
    cols = (N - 1) * nh
    primes = [struct.unpack_from(f"<{cols}q", b, o + 8 * cols * s) for s in range(nl)]; o += 8 * cols * nl
    offs = [struct.unpack_from(f"<{cols}q", b, o + 8 * cols * s) for s in range(nl)]; o += 8 * cols * nl
    nseq, npos = struct.unpack_from("<2i", b, o); o += 8
    seqs = []
    for _ in range(nseq):
        (L,) = struct.unpack_from("<i", b, o); o += 4
        ids = np.frombuffer(b, "<i4", L, o); o += 4 * L
        comp = np.frombuffer(b, "<i4", L, o); o += 4 * L
        live = np.frombuffer(b, np.uint8, L, o).astype(bool); o += L + (-L % 4)
        out = np.frombuffer(b, "<i4", L * nl * cols, o).reshape(L, nl, cols); o += 4 * L * nl * cols
        seqs.append((ids, comp, live, out))
    assert o == len(b) and sum(len(s[0]) for s in seqs) == npos
    return dict(version=ver, layer_ids=lids, rows=rows, mult=mult, primes=primes, offsets=offs, pad=pad,
                pad_raw=pad_raw, vocab=V, engram_vocab_size=ev, compressed_vocab=nc, seqs=seqs, n_positions=npos)


def crosscheck_engram_txt(log=print):
    """If the Engram owner's digest files (tests/data/engram/hash_*.txt: per position the
    FNV-1a 64 of the position's hash ids as int64, layers in order) exist, recompute every
    listed position with ref_v41.EngramHasher and count mismatches. Returns (ok, bad)."""
    import glob
    from tokenizers import Tokenizer

    files = sorted(glob.glob(os.path.join(REPO, "tests", "data", "engram", "hash_*.txt")))
    if not files:
        log("  (no tests/data/engram/hash_*.txt to cross-check)")
        return 0, 0
    tok = Tokenizer.from_file(os.path.join(os.path.dirname(REPO), "shared", "assets", "deepseek-v4",
                                           "tokenizer-v41", "tokenizer.json"))
    token_map, n_comp = ref_v41.compressed_token_map(tok)

    def fnv1a64(data):
        x = 0xcbf29ce484222325
        for byte in data:
            x = ((x ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
        return x

    ok = bad = 0
    for fname in files:
        lines = open(fname).read().splitlines()
        head = next(ln for ln in lines if ln.startswith("config")).split()
        kv = dict(zip(head[1::2], head[2::2]))
        layers = [int(x) for x in kv["layers"].split(",")]
        c = dict(engram_layer_ids=layers, engram_max_ngram_size=int(kv["max_ngram"]),
                 engram_n_heads=int(kv["heads"]), engram_vocab_size=int(kv["vocab_size"]),
                 engram_compressed_vocab_size=n_comp, engram_pad_id=int(kv["pad_token"]))
        h = ref_v41.EngramHasher(c, token_map, n_comp)
        f_ok = f_bad = 0
        for i, ln in enumerate(lines):
            if not ln.startswith("seq "):
                continue
            toks = [int(x) for x in lines[i + 1].split()[1:]]
            live = torch.tensor([x == "1" for x in lines[i + 2].split()[1:]])
            digest = [int(x, 16) for x in next(l2 for l2 in lines[i + 1:] if l2.startswith("digest")).split()[1:]]
            win = h.lookback(h.token_map[torch.tensor(toks)], live)
            out = torch.stack([h.hash_windows(win, s) for s in range(len(layers))], 1)
            for p in range(len(toks)):
                same = fnv1a64(np.asarray(out[p].flatten(), dtype="<i8").tobytes()) == digest[p]
                f_ok, f_bad = f_ok + same, f_bad + (not same)
        log(f"  {os.path.basename(fname)} (layers {layers}, max n-gram {kv['max_ngram']}, {kv['heads']} heads, "
            f"vocab {kv['vocab_size']}, pad {kv['pad_token']}): {f_ok} positions agree, {f_bad} differ")
        ok, bad = ok + f_ok, bad + f_bad
    return ok, bad


# ---------------------------------------------------------------- module checks

@torch.no_grad()
def module_checks(log=print):
    """ref_v41's pieces against HF transformers' V4 classes (same semantics there) and
    against brute-force restatements; returns the number of failures."""
    from transformers import DeepseekV4Config
    from transformers.models.deepseek_v4 import modeling_deepseek_v4 as hf4

    torch.manual_seed(0)
    fails = []

    def check(name, a, b, tol):
        """tol is relative to max|b| (at least 1) for floats, a count for integers."""
        a, b = a.detach(), b.detach()
        if a.dtype.is_floating_point:
            d = float((a.float() - b.float()).abs().max()) / max(1.0, float(b.float().abs().max()))
        else:
            d = float((a != b).sum())
        ok = d <= tol
        log(f"  {'ok ' if ok else 'BAD'} {name:66s} {'rel' if a.dtype.is_floating_point else 'cnt'} "
            f"{d:.3g} (tol {tol:g})")
        if not ok:
            fails.append(name)

    spec = FIXTURES["v41-tiny"]["text"]
    D, S, T, d = spec["hidden_size"], 4, 67, spec["head_dim"]
    kw = dict(hidden_size=D, num_attention_heads=4, head_dim=d, q_lora_rank=48, o_groups=2, o_lora_rank=32,
              qk_rope_head_dim=16, num_hidden_layers=2, layer_types=["heavily_compressed_attention"] * 2,
              compress_rates={"compressed_sparse_attention": 4, "heavily_compressed_attention": 2},
              mlp_layer_types=["moe", "moe"], moe_intermediate_size=64, n_routed_experts=8, num_experts_per_tok=2,
              hc_mult=S, hc_sinkhorn_iters=20, rms_norm_eps=1e-20, routed_scaling_factor=1.5, sliding_window=8,
              max_position_embeddings=65536, vocab_size=512, index_n_heads=8, index_head_dim=32, index_topk=4,
              rope_theta=10000, compress_rope_theta=160000, num_nextn_predict_layers=0,
              rope_scaling={"type": "yarn", "factor": 16, "original_max_position_embeddings": 4096,
                            "beta_fast": 32, "beta_slow": 1})
    cfg = DeepseekV4Config(**kw)
    cfg._attn_implementation = "eager"
    cfg._experts_implementation = "eager"
    c = dict(spec, rms_norm_eps=1e-20, hc_sinkhorn_iters=20, hc_eps=1e-6, hc_mult=S, swiglu_limit=10.0,
             rope_theta=10000, compress_rope_theta=160000, gate_temp=1.0, norm_topk_prob=True)
    pos = torch.arange(T)[None]

    # 1. RoPE tables: 'main' (plain) and 'compress' (YaRN, no mscale)
    rot = hf4.DeepseekV4RotaryEmbedding(cfg)
    tabs = ref_v41.tables(c, T)
    x = torch.randn(1, T, D)
    for lt in ("main", "compress"):
        cos, sin = rot(x, position_ids=pos, layer_type=lt)
        check(f"rope table '{lt}' cos/sin vs DeepseekV4RotaryEmbedding", torch.cat([tabs[lt][0], tabs[lt][1]]),
              torch.cat([cos[0], sin[0]]), 1e-6)
    # 2. rotation and inverse rotation on [T, H, d]
    q = torch.randn(1, T, 4, d)
    cos, sin = rot(x, position_ids=pos, layer_type="compress")
    hf_q = hf4.apply_rotary_pos_emb(q.transpose(1, 2), cos, sin).transpose(1, 2)[0]
    c0, s0 = tabs["compress"]
    check("interleaved RoPE vs apply_rotary_pos_emb", ref_v4.rope(q[0], c0[:, None], s0[:, None]), hf_q, 1e-5)
    hf_qi = hf4.apply_rotary_pos_emb(q.transpose(1, 2), cos, -sin).transpose(1, 2)[0]
    check("inverse RoPE vs apply_rotary_pos_emb(-sin)", ref_v4.rope(q[0], c0[:, None], s0[:, None], inverse=True),
          hf_qi, 1e-5)
    # 3. RMSNorm with eps 1e-20
    nrm = hf4.DeepseekV4RMSNorm(D, eps=1e-20)
    nrm.weight.data.uniform_(0.6, 1.4)
    check("RMSNorm (eps 1e-20) vs DeepseekV4RMSNorm", ref_v4.rmsnorm(x[0], nrm.weight.data, 1e-20), nrm(x)[0], 1e-6)
    # 4. mHC mixes: post, comb, collapse(pre)
    hcm = hf4.DeepseekV4HyperConnection(cfg)
    hcm.fn.data.normal_(0, 1 / math.sqrt(S * D))
    hcm.base.data.normal_(0, 0.7)
    hcm.scale.data.uniform_(0.5, 2.5)
    X = torch.randn(1, T, S, D)
    post, comb, coll = hcm(X)
    rpre, rpost, rcomb = ref_v4.hc_mixes(X[0], hcm.fn.data, hcm.scale.data, hcm.base.data, S, 20, 1e-6, 1e-20)
    check("mHC post vs DeepseekV4HyperConnection", rpost, post[0], 2e-6)
    check("mHC comb (Sinkhorn 20) vs DeepseekV4HyperConnection", rcomb, comb[0], 1e-6)
    check("mHC collapse(pre) vs DeepseekV4HyperConnection", ref_v41.collapse(X[0], rpre), coll[0], 1e-5)
    out = torch.randn(T, D)
    check("mHC expand vs comb^T X + post*out", ref_v4.hc_expand(out, X[0], rpost, rcomb),
          rpost[..., None] * out[:, None] + torch.einsum("tjk,tjd->tkd", rcomb, X[0]), 1e-5)
    # 5. ratio-2 compressor + RoPE at g*2 vs the V4 HCA compressor at rate 2 with zero position bias
    hca = hf4.DeepseekV4HCACompressor(cfg)
    hca.kv_proj.weight.data.normal_(0, 1 / math.sqrt(D))
    hca.gate_proj.weight.data.normal_(0, 2 / math.sqrt(D))
    hca.position_bias.data.zero_()
    hca.kv_norm.weight.data.uniform_(0.8, 2.2)
    h = torch.randn(1, T, D)
    ckv, _ = hca(h, None, pos, None, 0)
    W = {"c.wkv.weight": hca.kv_proj.weight.data, "c.wgate.weight": hca.gate_proj.weight.data,
         "c.norm.weight": hca.kv_norm.weight.data}
    lat = ref_v41.compressor(h[0], W, "c.", 2, 1e-20)
    gp = torch.arange(lat.shape[0]) * 2
    check("ratio-2 compressor + RoPE(2g) vs DeepseekV4HCACompressor(rate 2, ape 0)",
          ref_v4.rope(lat, c0[gp], s0[gp]), ckv[0, 0], 1e-5)
    # 6. attention core with sink
    att = hf4.DeepseekV4Attention(cfg, 0)
    att.sinks.data.normal_(0.5, 1.0)
    qh = torch.randn(1, 4, T, d)
    kvh = torch.randn(1, 1, T + 10, d)
    allow = torch.rand(T, T + 10) < 0.5
    allow[:, 0] = True
    mask = torch.zeros(T, T + 10).masked_fill(~allow, float("-inf"))[None, None]
    o_hf, _ = hf4.eager_attention_forward(att, qh, kvh, kvh, mask, scaling=d ** -0.5)
    s = torch.einsum("htd,kd->htk", qh[0], kvh[0, 0]) * d ** -0.5
    s = s.masked_fill(~allow[None], float("-inf"))
    prob = torch.cat([s, att.sinks.data[:, None, None].expand(4, T, 1)], -1).softmax(-1)[..., :-1]
    check("sink attention (as in ref_v41.attention) vs eager_attention_forward",
          torch.einsum("htk,kd->thd", prob, kvh[0, 0]), o_hf[0], 1e-5)
    # 7. grouped wo_a
    gl = hf4.DeepseekV4GroupedLinear(4 * d // 2, 2 * 32, 2)
    gl.weight.data.normal_(0, 0.1)
    o = torch.randn(T, 4, d)
    mine = torch.einsum("tgi,gri->tgr", o.reshape(T, 2, -1), gl.weight.data.view(2, 32, -1))
    check("grouped wo_a vs DeepseekV4GroupedLinear", mine, gl(o.reshape(1, T, 2, -1))[0], 1e-5)
    # 8. MoE (gate_temp 1, no hash): router, clamped experts, shared expert
    moe = hf4.DeepseekV4SparseMoeBlock(cfg, 0)
    moe.gate.weight.data.normal_(0, 2.5 / math.sqrt(D))
    moe.gate.e_score_correction_bias.data.normal_(0, 0.3)
    moe.experts.gate_up_proj.data.normal_(0, 3 / math.sqrt(D))
    moe.experts.down_proj.data.normal_(0, 0.5 / math.sqrt(64))
    for m in (moe.shared_experts.gate_proj, moe.shared_experts.up_proj):
        m.weight.data.normal_(0, 3 / math.sqrt(D))
    moe.shared_experts.down_proj.weight.data.normal_(0, 0.5 / math.sqrt(64))
    Wm = {"f.gate.weight": moe.gate.weight.data, "f.gate.bias": moe.gate.e_score_correction_bias.data,
          "f.shared_experts.w1.weight": moe.shared_experts.gate_proj.weight.data,
          "f.shared_experts.w3.weight": moe.shared_experts.up_proj.weight.data,
          "f.shared_experts.w2.weight": moe.shared_experts.down_proj.weight.data}
    for e in range(8):
        Wm[f"f.experts.{e}.w1.weight"], Wm[f"f.experts.{e}.w3.weight"] = moe.experts.gate_up_proj.data[e].chunk(2)
        Wm[f"f.experts.{e}.w2.weight"] = moe.experts.down_proj.data[e]
    hm = torch.randn(1, T, D) * 2
    tr = {}
    y = ref_v41.moe(hm[0], Wm, "f.", c, tr)
    _, w_hf, i_hf = moe.gate(hm)
    check("MoE output vs DeepseekV4SparseMoeBlock", y, moe(hm)[0], 2e-6)
    e1, w1 = make_fixtures.sort_route(tr["experts"], tr["weights"])
    e2, w2 = make_fixtures.sort_route(i_hf, w_hf)
    check("router experts vs DeepseekV4TopKRouter", e1, e2, 0)
    check("router weights vs DeepseekV4TopKRouter", w1, w2, 1e-6)
    # 9. indexer score (without FP4) vs DeepseekV4IndexerScorer
    sc = hf4.DeepseekV4IndexerScorer(cfg)
    sc.weights_proj.weight.data.normal_(0, 2 / math.sqrt(D))
    qi, ki, hi = torch.randn(1, T, 8, 32), torch.randn(1, 20, 32), torch.randn(1, T, D)
    hf_s = sc(qi, ki, hi)[0]
    wts = (hi[0] @ sc.weights_proj.weight.data.T) * 8 ** -0.5
    mine = (torch.einsum("thd,nd->thn", qi[0], ki[0]).relu() * 32 ** -0.5 * wts[:, :, None]).sum(1)
    check("index score (as in ref_v41.index_select) vs DeepseekV4IndexerScorer", mine, hf_s, 1e-5)

    # 10. fake quantisers vs v4_format's independent quantisers / brute force
    xx = torch.randn(64, 256) * torch.exp2(torch.randint(-6, 6, (64, 1)).float())
    _, _, deq4 = v4_format.quant_fp4(xx)
    check("FP4 pow-2 block-32 round trip vs v4_format.quant_fp4", ref_v41.fq_fp4(xx, 32, False), deq4, 0)
    _, _, deq8 = v4_format.quant_fp8(xx, (1, 32))
    check("FP8 pow-2 block-32 round trip vs v4_format.quant_fp8(1x32)", ref_v41.fq_fp8(xx, 32), deq8, 0)
    check("FP4 E4M3-scale block-16 round trip vs brute force", ref_v41.fq_fp4(xx, 16, True), brute_fp4_e4m3(xx), 0)
    ties = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -0.25, -0.75, -5.0, 5.5, 6.0, 0.1])
    check("e2m1 ties to even", ref_v41.e2m1_round(ties),
          torch.tensor([0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0, -0.0, -1.0, -4.0, 6.0, 6.0, 0.0]), 0)
    tt = torch.tensor([1.0, 1.5, 2.0, 0.75, 2.0 ** -126, 3.0 * 2.0 ** -20, 448.0 / 447])
    check("pow2_at_least vs 2^ceil(log2)", ref_v41.pow2_at_least(tt),
          torch.tensor([2.0 ** math.ceil(math.log2(v)) for v in tt.double().tolist()]), 0)

    # 11. candidate blocks and top-k vs per-query loops
    g = torch.Generator().manual_seed(5)
    n, bs, kb = 37, 4, 3
    score = torch.randn(T, n, generator=g)
    nvis = torch.arange(1, T + 1).clamp(max=n)
    score = score.masked_fill(torch.arange(n)[None] >= nvis[:, None], float("-inf"))
    cm, ck = ref_v41.candidate_blocks(score, nvis, kb, bs)
    bad = 0
    for t in range(T):
        blocks = [max(score[t, b * bs:(b + 1) * bs].tolist()) for b in range(-(-n // bs))]
        forced = (int(nvis[t]) - 1) // bs
        order = sorted((b for b in range(len(blocks)) if math.isfinite(blocks[b]) and b != forced),
                       key=lambda b: -blocks[b])
        keep = set(order[: kb - 1]) | {forced}
        bad += sorted(keep) != torch.nonzero(ck[t]).flatten().tolist()
    check("candidate blocks vs per-query loop", torch.tensor(bad), torch.tensor(0), 0)

    # 12. Engram: scalar gate vs vectorised; prime rule on the real config
    We = {"e.embed.weight": torch.randn(500, 64), "e.wkv.weight": torch.randn(5 * D, 24 * 64) / 40,
          "e.q_weight": torch.rand(S, D) + 0.5, "e.k_weight": torch.rand(S, D) + 0.5}
    rows = torch.randint(0, 500, (T, 24))
    Xe = torch.randn(T, S, D)
    Xo, gate = ref_v41.engram(Xe, rows, We, "e.", c)
    kvv = We["e.embed.weight"][rows].reshape(T, -1) @ We["e.wkv.weight"].T
    worst = 0.0
    for t in range(0, T, 7):
        for i in range(S):
            key = kvv[t, i * D:(i + 1) * D].double()
            xv = Xe[t, i].double()
            w = (We["e.q_weight"][i] * We["e.k_weight"][i]).double()
            dot = float((xv * w * key).sum()) / math.sqrt(float(xv.pow(2).mean())) \
                / math.sqrt(float(key.pow(2).mean())) / math.sqrt(D)
            gv = 1 / (1 + math.exp(-math.copysign(math.sqrt(max(abs(dot), 1e-6)), dot)))
            worst = max(worst, abs(gv - float(gate[t, i])))
            worst = max(worst, float((Xo[t, i].double() - xv - gv * kvv[t, 4 * D:].double()).abs().max()))
    check("Engram gate/update vs scalar float64 restatement", torch.tensor(worst), torch.tensor(0.0), 2e-5)
    pr = ref_v41.engram_primes([1, 14], 16000000, 4, 8)
    sums = [sum(p for row in lp for p in row) for lp in pr]
    check("real Engram primes sum to engram_num_embeddings", torch.tensor(sums), torch.tensor([384006168, 384016682]),
          0)
    check("first real primes 16000057, 16000079, 16000081", torch.tensor(pr[0][0][:3]),
          torch.tensor([16000057, 16000079, 16000081]), 0)
    # 13. sharing roles of both fixtures vs the C rule (latest source at or before)
    for name, fx in FIXTURES.items():
        t = fx["text"]
        roles = ref_v41.layer_roles(t)
        bad = 0
        for l, r in enumerate(roles):
            if not r["ratio"]:
                continue
            kv = max(s for s in t["kv_source_layer_ids"] if s <= l)
            ix = max(s for s in t["index_source_layer_ids"] if s <= l)
            bad += (r["kv_source"], r["index_source"]) != (kv, ix)
            bad += t["compress_ratios"][kv] != r["ratio"] or max(s for s in t["kv_source_layer_ids"] if s <= ix) != kv
        check(f"{name}: sharing groups = latest source at or before (C rule)", torch.tensor(bad), torch.tensor(0), 0)
    # 14. the Engram owner's independently produced real-config digests, if present
    ok, bad = crosscheck_engram_txt(log)
    check(f"Engram hash ids vs tests/data/engram/hash_*.txt digests ({ok} positions)", torch.tensor(bad),
          torch.tensor(0), 0)
    log(f"module checks: {len(fails)} failed")
    return len(fails)


def brute_fp4_e4m3(x, block=16):
    """FP4 round trip with E4M3 block scales, decided by exhaustive search: the scale is
    the e4m3 value nearest amax/6 (ties to the even code), each element the e2m1 grid
    value nearest x/scale (ties to the even code)."""
    e4 = E4M3_POS.double()
    grid = torch.tensor(ref_v41.E2M1_VALUES, dtype=torch.float64)
    out = torch.empty_like(x)
    xb = x.reshape(-1, block)
    ob = out.view(-1, block)
    for r in range(xb.shape[0]):
        t = max(float(xb[r].abs().max()), 6.0 * 2.0 ** -9) / 6.0
        t = float(torch.tensor(t, dtype=torch.float32))          # the division happens in fp32
        dist = (e4 - t).abs()
        cand = torch.nonzero(dist == dist.min()).flatten()
        s = float(e4[cand[0] if len(cand) == 1 else [int(i) for i in cand if int(i) % 2 == 0][0]])
        for j in range(block):
            y = max(-6.0, min(6.0, float(torch.tensor(float(xb[r, j]) / s, dtype=torch.float32))))
            dd = (grid - abs(y)).abs()
            cc = torch.nonzero(dd == dd.min()).flatten().tolist()
            code = cc[0] if len(cc) == 1 else [i for i in cc if i % 2 == 0][0]
            ob[r, j] = math.copysign(float(grid[code]), y) * s
    return out


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", nargs="?", default="build", choices=["build", "verify", "check", "hashes", "reference"])
    ap.add_argument("names", nargs="*")
    ap.add_argument("--only", action="append")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    log = lambda s: print(s, flush=True)  # noqa: E731
    if args.cmd == "build":
        out = args.out or os.path.join(REPO, "tests", "fixtures")
        for name in args.only or list(FIXTURES):
            build_fixture(name, FIXTURES[name], out, log)
    elif args.cmd == "verify":
        root = os.path.join(REPO, "tests", "fixtures")
        failed = 0
        for name in args.names or list(FIXTURES):
            problems, report = verify(os.path.join(root, name))
            print(f"{name}: {'OK' if not problems else 'FAILED'}")
            for line in report:
                print(line)
            for p in problems:
                print(f"  PROBLEM: {p}")
            failed += bool(problems)
        sys.exit(1 if failed else 0)
    elif args.cmd == "reference":
        root = os.path.join(REPO, "tests", "fixtures")
        for name in args.names or list(FIXTURES):
            write_reference(os.path.join(root, name), log)
    elif args.cmd == "check":
        sys.exit(1 if module_checks(log) else 0)
    elif args.cmd == "hashes":
        # tests/data/engram/ (owned by src/engram.c's engineer) already holds equivalent
        # real-config vectors (hash_v41.txt), so ours live with the fixtures.
        path = args.out or os.path.join(REPO, "tests", "fixtures", "v41-engram-hash-vectors.bin")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_hash_vectors(path, log=log)
        d = read_hash_vectors(path)
        log(f"re-read: {len(d['seqs'])} sequences, {d['n_positions']} positions, layers {d['layer_ids']}")


if __name__ == "__main__":
    main()
