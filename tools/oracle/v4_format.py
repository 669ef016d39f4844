"""Official DeepSeek-V4 checkpoint format: tensor inventory, FP8/FP4 quantisation,
safetensors writing, and the official-name -> HF-name mapping.

Spec: shared/docs/v4-architecture.md sections 3.4 (quantised linears), 4.9 (tensor
inventory) and 6 (checkpoint format). Everything here is deterministic given a
torch.Generator.

Quantisation conventions (section 3.4 / 6):
  FP8   weight F8_E4M3 [out, in], scale F8_E8M0 [ceil(out/B0), ceil(in/B1)],
        w = fp8 * 2^(byte-127)          (the scale multiplies; partial blocks use ceil)
  FP4   weight I8 [out, in/2] (low nibble = even element), scale F8_E8M0 [out, in/32],
        e2m1 table [0,.5,1,1.5,2,3,4,6, -0,-.5,-1,-1.5,-2,-3,-4,-6]
  BF16  norms, gate.weight, compressor wkv/wgate, indexer weights_proj, embed, head
  F32   hc_*, attn_sink, ape, gate.bias
  I64   gate.tid2eid
"""
import json
import math
import os

import torch

FP8_MAX = 448.0
FP4_MAX = 6.0
FP4_BLOCK = 32
E2M1_GRID = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])
E2M1_TABLE = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]


# ---------------------------------------------------------------- inventory

def layer_kind(ratio):
    """compress_ratios entry -> layer kind; the official code (Compressor.overlap =
    ratio == 4, Attention: indexer only when ratio == 4) makes every other nonzero
    ratio a non-overlapping HCA layer."""
    if ratio == 0:
        return "sliding"
    return "csa" if ratio == 4 else "hca"


def block_inventory(c, prefix, ratio, hashed):
    """Tensors of one Block (trunk layer or MTP block), official names.
    Each entry: (name, shape, kind, init) with kind in fp8/fp4/bf16/f32/i64."""
    D, H, hd, Q = c["hidden_size"], c["num_attention_heads"], c["head_dim"], c["q_lora_rank"]
    G, R = c["o_groups"], c["o_lora_rank"]
    E, I, K = c["n_routed_experts"], c["moe_intermediate_size"], c["num_experts_per_tok"]
    hc = c["hc_mult"]
    mix = (2 + hc) * hc
    nI, dI = c["index_n_heads"], c["index_head_dim"]
    inv = []

    def add(name, shape, kind, init):
        inv.append((prefix + name, tuple(shape), kind, init))

    # attention
    add("attn.attn_sink", [H], "f32", ("normal", 0.5, 1.0))
    add("attn.q_norm.weight", [Q], "bf16", ("uniform", 0.6, 1.4))
    add("attn.kv_norm.weight", [hd], "bf16", ("uniform", 0.8, 2.2))
    add("attn.wq_a.weight", [Q, D], "fp8", ("normal", 0.0, 1.0 / math.sqrt(D)))
    add("attn.wq_b.weight", [H * hd, Q], "fp8", ("normal", 0.0, 1.0 / math.sqrt(Q)))
    add("attn.wkv.weight", [hd, D], "fp8", ("normal", 0.0, 1.0 / math.sqrt(D)))
    add("attn.wo_a.weight", [G * R, H * hd // G], "fp8", ("normal", 0.0, 1.0 / math.sqrt(H * hd // G)))
    add("attn.wo_b.weight", [D, G * R], "fp8", ("normal", 0.0, 1.0 / math.sqrt(G * R)))
    kind = layer_kind(ratio)
    if kind != "sliding":
        coff = 2 if kind == "csa" else 1
        add("attn.compressor.ape", [ratio, coff * hd], "f32", ("normal", 0.0, 1.0))
        add("attn.compressor.norm.weight", [hd], "bf16", ("uniform", 0.8, 2.2))
        add("attn.compressor.wgate.weight", [coff * hd, D], "bf16", ("normal", 0.0, 2.0 / math.sqrt(D)))
        add("attn.compressor.wkv.weight", [coff * hd, D], "bf16", ("normal", 0.0, 1.0 / math.sqrt(D)))
    if kind == "csa":
        add("attn.indexer.compressor.ape", [ratio, 2 * dI], "f32", ("normal", 0.0, 1.0))
        add("attn.indexer.compressor.norm.weight", [dI], "bf16", ("uniform", 0.6, 1.4))
        add("attn.indexer.compressor.wgate.weight", [2 * dI, D], "bf16", ("normal", 0.0, 2.0 / math.sqrt(D)))
        add("attn.indexer.compressor.wkv.weight", [2 * dI, D], "bf16", ("normal", 0.0, 1.0 / math.sqrt(D)))
        add("attn.indexer.weights_proj.weight", [nI, D], "bf16", ("normal", 0.0, 2.0 / math.sqrt(D)))
        add("attn.indexer.wq_b.weight", [nI * dI, Q], "fp8", ("normal", 0.0, 1.0 / math.sqrt(Q)))
    add("attn_norm.weight", [D], "bf16", ("uniform", 0.6, 1.4))
    # MoE (section 4.4); w1/w3 are scaled so that a few pre-activations hit the
    # swiglu clamp at 10.
    for e in range(E):
        add(f"ffn.experts.{e}.w1.weight", [I, D], "fp4", ("normal", 0.0, 3.0 / math.sqrt(D)))
        add(f"ffn.experts.{e}.w2.weight", [D, I], "fp4", ("normal", 0.0, 0.5 / math.sqrt(I)))
        add(f"ffn.experts.{e}.w3.weight", [I, D], "fp4", ("normal", 0.0, 3.0 / math.sqrt(D)))
    if hashed:
        add("ffn.gate.tid2eid", [c["vocab_size"], K], "i64", ("tid2eid", E))
    else:
        add("ffn.gate.bias", [E], "f32", ("normal", 0.0, 0.3))
    add("ffn.gate.weight", [E, D], "bf16", ("normal", 0.0, 2.5 / math.sqrt(D)))
    add("ffn.shared_experts.w1.weight", [I, D], "fp8", ("normal", 0.0, 3.0 / math.sqrt(D)))
    add("ffn.shared_experts.w2.weight", [D, I], "fp8", ("normal", 0.0, 0.5 / math.sqrt(I)))
    add("ffn.shared_experts.w3.weight", [I, D], "fp8", ("normal", 0.0, 3.0 / math.sqrt(D)))
    add("ffn_norm.weight", [D], "bf16", ("uniform", 0.6, 1.4))
    # mHC sites (section 3.3)
    for site in ("attn", "ffn"):
        add(f"hc_{site}_base", [mix], "f32", ("normal", 0.0, 0.7))
        add(f"hc_{site}_fn", [mix, hc * D], "f32", ("normal", 0.0, 1.0 / math.sqrt(hc * D)))
        add(f"hc_{site}_scale", [3], "f32", ("uniform", 0.5, 2.5))
    return inv


def model_inventory(c):
    """Full official tensor inventory for a V4 config (section 4.9 + MTP 4.6)."""
    D, V, hc = c["hidden_size"], c["vocab_size"], c["hc_mult"]
    n = c["num_hidden_layers"]
    ratios = c["compress_ratios"]
    inv = [
        ("embed.weight", (V, D), "bf16", ("normal", 0.0, 1.0)),
        ("hc_head_base", (hc,), "f32", ("normal", 0.0, 0.7)),
        ("hc_head_fn", (hc, hc * D), "f32", ("normal", 0.0, 1.0 / math.sqrt(hc * D))),
        ("hc_head_scale", (1,), "f32", ("uniform", 0.5, 2.0)),
        ("head.weight", (V, D), "bf16", ("normal", 0.0, 2.0 / math.sqrt(D))),
        ("norm.weight", (D,), "bf16", ("uniform", 0.6, 1.4)),
    ]
    for layer in range(n):
        inv += block_inventory(c, f"layers.{layer}.", ratios[layer], layer < c["num_hash_layers"])
    for k in range(c["num_nextn_predict_layers"]):
        # The MTP block is Block(layer_id = n + k): ratio compress_ratios[n + k]
        # (0 = sliding only) and never hashed (n + k >= num_hash_layers).
        p = f"mtp.{k}."
        inv += block_inventory(c, p, ratios[n + k], False)
        inv += [
            (p + "e_proj.weight", (D, D), "fp8", ("normal", 0.0, 1.0 / math.sqrt(D))),
            (p + "enorm.weight", (D,), "bf16", ("uniform", 0.6, 1.4)),
            (p + "h_proj.weight", (D, D), "fp8", ("normal", 0.0, 1.0 / math.sqrt(D))),
            (p + "hc_head_base", (hc,), "f32", ("normal", 0.0, 0.7)),
            (p + "hc_head_fn", (hc, hc * D), "f32", ("normal", 0.0, 1.0 / math.sqrt(hc * D))),
            (p + "hc_head_scale", (1,), "f32", ("uniform", 0.5, 2.0)),
            (p + "hnorm.weight", (D,), "bf16", ("uniform", 0.6, 1.4)),
            (p + "norm.weight", (D,), "bf16", ("uniform", 0.6, 1.4)),
        ]
    return inv


# ---------------------------------------------------------------- quantisation

def e8m0_from_exp(exp):
    """Integer exponents -> F8_E8M0 tensor (byte = exp + 127)."""
    b = (exp + 127).to(torch.int32)
    assert int(b.min()) >= 1 and int(b.max()) <= 254, "E8M0 exponent out of range"
    return b.to(torch.uint8).view(torch.float8_e8m0fnu)


def e8m0_to_float(s):
    return torch.exp2(s.view(torch.uint8).to(torch.float32) - 127.0)


def pow2_ceil_exp(amax, qmax):
    """Smallest e with amax / 2^e <= qmax (the UE8M0 'ceil' rounding)."""
    amax = torch.clamp(amax, min=1e-30)
    return torch.ceil(torch.log2(amax / qmax)).to(torch.int32)


def quant_fp8(w, block):
    """w float32 [out, in] -> (F8_E4M3 weight, F8_E8M0 scale [ceil(out/b0), ceil(in/b1)],
    dequantised float32). Partial edge blocks take their own amax."""
    out_f, in_f = w.shape
    b0, b1 = block
    so, si = -(-out_f // b0), -(-in_f // b1)
    pad = torch.zeros(so * b0, si * b1)
    pad[:out_f, :in_f] = w
    blocks = pad.view(so, b0, si, b1)
    amax = blocks.abs().amax(dim=(1, 3))
    exp = pow2_ceil_exp(amax, FP8_MAX)
    scale = torch.exp2(exp.float())
    full = scale.repeat_interleave(b0, 0).repeat_interleave(b1, 1)[:out_f, :in_f]
    q = torch.clamp(w / full, -FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    deq = q.float() * full
    return q, e8m0_from_exp(exp), deq


def round_e2m1(x):
    """Round-to-nearest-even onto the e2m1 grid (|x| <= 6 assumed). Returns 4-bit codes."""
    mag = x.abs()
    grid = E2M1_GRID
    # distance to each grid point; ties go to the even code (mantissa bit 0)
    d = (mag.unsqueeze(-1) - grid).abs()
    best = d.min(dim=-1, keepdim=True).values
    cand = (d <= best + 0.0)  # all minimisers
    idx = torch.arange(8)
    even_pref = torch.where(cand, (idx % 2) * 8 + idx, torch.full_like(idx, 99))
    code = even_pref.argmin(dim=-1)
    sign = (x < 0) & (code > 0)
    return code + 8 * sign.long()


def quant_fp4(w):
    """w float32 [out, in] -> (I8 packed [out, in/2], F8_E8M0 scale [out, in/32], dequantised)."""
    out_f, in_f = w.shape
    assert in_f % FP4_BLOCK == 0
    blocks = w.view(out_f, in_f // FP4_BLOCK, FP4_BLOCK)
    amax = blocks.abs().amax(dim=-1)
    exp = pow2_ceil_exp(amax, FP4_MAX)
    scale = torch.exp2(exp.float()).unsqueeze(-1)
    code = round_e2m1(torch.clamp(blocks / scale, -FP4_MAX, FP4_MAX)).view(out_f, in_f)
    table = torch.tensor(E2M1_TABLE)
    deq = (table[code].view(out_f, in_f // FP4_BLOCK, FP4_BLOCK) * scale).view(out_f, in_f)
    packed = (code[:, 0::2] | (code[:, 1::2] << 4)).to(torch.uint8).view(torch.int8)
    return packed, e8m0_from_exp(exp), deq


def draw(shape, init, gen):
    kind = init[0]
    if kind == "normal":
        return torch.randn(shape, generator=gen) * init[2] + init[1]
    if kind == "uniform":
        return torch.rand(shape, generator=gen) * (init[2] - init[1]) + init[1]
    raise ValueError(kind)


def make_weights(c, seed):
    """Random official checkpoint for config c.
    Returns (stored: name -> tensor in file dtype, values: name -> float32 dequantised
    value, or int64 for tid2eid). Scale tensors are named <module>.scale."""
    gen = torch.Generator().manual_seed(seed)
    block = c["quantization_config"]["weight_block_size"]
    stored, values = {}, {}
    for name, shape, kind, init in model_inventory(c):
        if kind == "i64":
            E = init[1]
            rows = [torch.randperm(E, generator=gen)[: shape[1]] for _ in range(shape[0])]
            t = torch.stack(rows).to(torch.int64)
            stored[name] = values[name] = t
            continue
        w = draw(shape, init, gen)
        if kind == "fp8":
            # vary the magnitude per scale block so that each block gets its own scale
            so, si = -(-shape[0] // block[0]), -(-shape[1] // block[1])
            mult = torch.exp2(torch.rand(so, si, generator=gen) * 2.0 - 1.0)
            w = w * mult.repeat_interleave(block[0], 0).repeat_interleave(block[1], 1)[: shape[0], : shape[1]]
            q, s, deq = quant_fp8(w, block)
            stored[name], stored[name[: -len("weight")] + "scale"] = q, s
            values[name] = deq
        elif kind == "fp4":
            q, s, deq = quant_fp4(w)
            stored[name], stored[name[: -len("weight")] + "scale"] = q, s
            values[name] = deq
        elif kind == "bf16":
            stored[name] = w.to(torch.bfloat16)
            values[name] = stored[name].float()
        elif kind == "f32":
            stored[name] = w.float().contiguous()
            values[name] = stored[name]
        else:
            raise ValueError(kind)
    return stored, values


# ---------------------------------------------------------------- official -> HF names

_HF_LEAF = {
    "attn.attn_sink": "self_attn.sinks",
    "attn.q_norm.weight": "self_attn.q_a_norm.weight",
    "attn.kv_norm.weight": "self_attn.kv_norm.weight",
    "attn.wq_a.weight": "self_attn.q_a_proj.weight",
    "attn.wq_b.weight": "self_attn.q_b_proj.weight",
    "attn.wkv.weight": "self_attn.kv_proj.weight",
    "attn.wo_a.weight": "self_attn.o_a_proj.weight",
    "attn.wo_b.weight": "self_attn.o_b_proj.weight",
    "attn.compressor.ape": "self_attn.compressor.position_bias",
    "attn.compressor.norm.weight": "self_attn.compressor.kv_norm.weight",
    "attn.compressor.wgate.weight": "self_attn.compressor.gate_proj.weight",
    "attn.compressor.wkv.weight": "self_attn.compressor.kv_proj.weight",
    "attn.indexer.compressor.ape": "self_attn.compressor.indexer.position_bias",
    "attn.indexer.compressor.norm.weight": "self_attn.compressor.indexer.kv_norm.weight",
    "attn.indexer.compressor.wgate.weight": "self_attn.compressor.indexer.gate_proj.weight",
    "attn.indexer.compressor.wkv.weight": "self_attn.compressor.indexer.kv_proj.weight",
    "attn.indexer.weights_proj.weight": "self_attn.compressor.indexer.scorer.weights_proj.weight",
    "attn.indexer.wq_b.weight": "self_attn.compressor.indexer.q_b_proj.weight",
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn.gate.weight": "mlp.gate.weight",
    "ffn.gate.bias": "mlp.gate.e_score_correction_bias",
    "ffn.gate.tid2eid": "mlp.gate.tid2eid",
    "ffn.shared_experts.w1.weight": "mlp.shared_experts.gate_proj.weight",
    "ffn.shared_experts.w2.weight": "mlp.shared_experts.down_proj.weight",
    "ffn.shared_experts.w3.weight": "mlp.shared_experts.up_proj.weight",
    "hc_attn_fn": "attn_hc.fn", "hc_attn_base": "attn_hc.base", "hc_attn_scale": "attn_hc.scale",
    "hc_ffn_fn": "ffn_hc.fn", "hc_ffn_base": "ffn_hc.base", "hc_ffn_scale": "ffn_hc.scale",
}


def block_to_hf(values, src_prefix, dst_prefix, n_experts):
    """Official block tensors (dequantised) -> HF DeepseekV4DecoderLayer state dict.
    Routed experts are fused: gate_up_proj[e] = cat(w1, w3) (gate rows first, as
    DeepseekV4Experts._apply_gate chunks them), down_proj[e] = w2."""
    sd = {}
    for leaf, hf in _HF_LEAF.items():
        if src_prefix + leaf in values:
            sd[dst_prefix + hf] = values[src_prefix + leaf]
    w1 = [values[f"{src_prefix}ffn.experts.{e}.w1.weight"] for e in range(n_experts)]
    w2 = [values[f"{src_prefix}ffn.experts.{e}.w2.weight"] for e in range(n_experts)]
    w3 = [values[f"{src_prefix}ffn.experts.{e}.w3.weight"] for e in range(n_experts)]
    sd[dst_prefix + "mlp.experts.gate_up_proj"] = torch.stack([torch.cat([a, b], 0) for a, b in zip(w1, w3)])
    sd[dst_prefix + "mlp.experts.down_proj"] = torch.stack(w2)
    return sd


_HF_TOP = {
    "embed.weight": "model.embed_tokens.weight",
    "head.weight": "lm_head.weight",
    "norm.weight": "model.norm.weight",
    "hc_head_fn": "model.hc_head.hc_fn",
    "hc_head_base": "model.hc_head.hc_base",
    "hc_head_scale": "model.hc_head.hc_scale",
}


def hf_name(official):
    """HF state-dict name of an official trunk tensor (not routed experts, not mtp.*)."""
    if official in _HF_TOP:
        return _HF_TOP[official]
    _, layer, leaf = official.split(".", 2)
    return f"model.layers.{layer}." + _HF_LEAF[leaf]


def trunk_to_hf(values, c):
    """Official (dequantised) trunk tensors -> HF DeepseekV4ForCausalLM state dict (mtp.* excluded)."""
    sd = {hf: values[off] for off, hf in _HF_TOP.items()}
    for layer in range(c["num_hidden_layers"]):
        sd.update(block_to_hf(values, f"layers.{layer}.", f"model.layers.{layer}.", c["n_routed_experts"]))
    return sd


# ---------------------------------------------------------------- files

def tensor_nbytes(t):
    return t.numel() * t.element_size()


_ST_DTYPE = {
    torch.float32: "F32", torch.bfloat16: "BF16", torch.int64: "I64", torch.int8: "I8",
    torch.float8_e4m3fn: "F8_E4M3", torch.float8_e8m0fnu: "F8_E8M0",
}


def save_safetensors(path, tensors, metadata=None):
    """Deterministic safetensors writer: header keys (and data) in name order,
    __metadata__ keys sorted, header padded with spaces to 8 bytes. (The safetensors
    library serialises __metadata__ from a hash map, so its byte output varies.)"""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(metadata[k]) for k in sorted(metadata)}
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        raw = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _ST_DTYPE[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for raw in blobs:
            f.write(raw)


def write_checkpoint(folder, stored, shards=None):
    """Write stored tensors as model.safetensors, or, when shards is a list of name
    lists, as model-0000k-of-0000n.safetensors + model.safetensors.index.json."""
    os.makedirs(folder, exist_ok=True)
    for f in os.listdir(folder):
        if f.startswith("model") and (f.endswith(".safetensors") or f.endswith(".index.json")):
            os.remove(os.path.join(folder, f))
    if shards is None:
        save_safetensors(os.path.join(folder, "model.safetensors"), stored, {"format": "pt"})
        return ["model.safetensors"]
    assert sorted(sum(shards, [])) == sorted(stored), "shards must partition the tensors"
    n = len(shards)
    weight_map, files = {}, []
    for k, names in enumerate(shards):
        fname = f"model-{k + 1:05d}-of-{n:05d}.safetensors"
        save_safetensors(os.path.join(folder, fname), {name: stored[name] for name in names}, {"format": "pt"})
        files.append(fname)
        for name in names:
            weight_map[name] = fname
    index = {
        "metadata": {"total_size": sum(tensor_nbytes(t) for t in stored.values())},
        "weight_map": {k: weight_map[k] for k in sorted(weight_map)},
    }
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    return files
