#!/usr/bin/env python3
"""Writes tests/data/attention/sparse_attn_blocks.safetensors: one query of
sparse_attn with an index row longer than one 64-slot block, and the output of
ref_v4.online_softmax_attn (the official sparse_attn_kernel's online softmax) for it.
tests/test_reference_numerics.c runs the attn_rows kernel in REFERENCE mode on it.

The row is laid out like an official decode row (Attention.forward): the window
part get_window_topk_idxs(W = 128) for the query at position 39 (positions 0..39,
then 88 slots of -1), then 72 selected compressed entries in an arbitrary (indexer)
order: 200 slots, blocks [0, 64) 40 keys + 24 padding, [64, 128) padding only,
[128, 192) and [192, 200) compressed entries. The compressed keys lean towards q so
that the running max rises in the later blocks (the rescaling is exercised).

Tensors (F32 holding bf16 values where the kernel reads bf16):
  q [H, d], kv [N, d], idx [S] I64 (key of each slot, -1 = padding), sink [H],
  scale [1], out [H, d] the fp32 acc_o / sum_exp (before the bf16 store),
  out_bf16 [H, d] the stored bf16 output.
Usage: tools/oracle/.venv/bin/python tools/oracle/make_attention_vectors.py
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import ref_v4  # noqa: E402
import v4_format  # noqa: E402

OUT = os.path.join(HERE, "..", "..", "tests", "data", "attention", "sparse_attn_blocks.safetensors")
H, D, W, POS, N_CMP, N_SEL = 2, 64, 128, 39, 80, 72


def bf16(x):
    return x.to(torch.bfloat16).to(torch.float32)


def scores(q, kv, idx, scale):
    """s [H, 1, S] in slot order (-inf on padding) and slot [1, S] (slot j holds slot j)."""
    keys = kv[idx.clamp(min=0)]
    s = torch.einsum("hd,kd->hk", q, keys)[:, None, :] * scale
    s = s.masked_fill((idx < 0)[None, None, :], float("-inf"))
    slot = torch.where(idx >= 0, torch.arange(idx.numel()), torch.full_like(idx, -1))[None, :]
    return s, slot, keys


def attend(q, kv, idx, sink, scale):
    s, slot, keys = scores(q, kv, idx, scale)
    return ref_v4.online_softmax_attn(s, slot, keys, sink)[0]


def one_max(q, kv, idx, sink, scale):
    """the former REFERENCE model: one max over the whole row"""
    s, _, keys = scores(q, kv, idx, scale)
    m = s.amax(-1, keepdim=True)
    e = torch.exp(s - m)
    den = e.sum(-1, keepdim=True) + torch.exp(sink[:, None, None] - m)
    return (torch.einsum("htk,kd->thd", bf16(e), keys) / den.permute(1, 0, 2))[0]


def main():
    g = torch.Generator().manual_seed(20260731)
    q = bf16(torch.randn(H, D, generator=g))
    win = torch.randn(POS + 1, D, generator=g)
    u = q.mean(0) / q.mean(0).square().sum()                    # q_h . u ~ 1/2
    lean = 6.0 * D ** 0.5 * torch.arange(N_CMP, dtype=torch.float32) / N_CMP
    cmp = torch.randn(N_CMP, D, generator=g) + lean[:, None] * u[None, :]
    kv = bf16(torch.cat([win, cmp], 0))
    sel = torch.randperm(N_CMP, generator=g)[:N_SEL]
    sel = sel[torch.argsort(sel, stable=True)].flip(0)          # later entries (larger scores) last
    sel = torch.cat([sel[N_SEL // 2:], sel[:N_SEL // 2]])      # ... in an order that is not sorted
    idx = torch.cat([torch.arange(POS + 1), torch.full((W - POS - 1,), -1), POS + 1 + sel]).to(torch.int64)
    sink = torch.tensor([0.3125, -1.75], dtype=torch.float32)
    scale = torch.tensor([D ** -0.5], dtype=torch.float32)
    out = attend(q, kv, idx, sink, scale[0])
    v4_format.save_safetensors(OUT, {"q": q, "kv": kv, "idx": idx, "sink": sink, "scale": scale,
                                     "out": out.contiguous(), "out_bf16": bf16(out).contiguous()},
                               {"generator": "tools/oracle/make_attention_vectors.py"})
    s, _, _ = scores(q, kv, idx, scale[0])
    blocks = [float(s[:, 0, b:b + 64].amax()) for b in range(0, idx.numel(), 64)]
    ref = float(out.abs().max())
    pad_end = torch.cat([idx[idx >= 0], idx[idx < 0]])
    print(f"{idx.numel()} slots, {int((idx >= 0).sum())} keys, block maxima (both heads) {blocks}")
    print(f"max |out| {ref:.4g}; vs one max over the row: {float((one_max(q, kv, idx, sink, scale[0]) - out).abs().max()) / ref:.3g}"
          f" relative; padding moved to the end: {float((attend(q, kv, pad_end, sink, scale[0]) - out).abs().max()) / ref:.3g}")
    print("written", os.path.relpath(OUT))


if __name__ == "__main__":
    with torch.no_grad():
        main()
