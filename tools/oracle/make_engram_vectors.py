#!/usr/bin/env python3
"""Generate the V4.1 Engram test vectors under tests/data/engram/ (spec 5.3).

The arbiter is HF transformers' deepseek_v41 (modeling_deepseek_v41.py at
huggingface/transformers commit 0a2080b43eb64e6d448186a4f3f0bc9c618f4797). The
pinned transformers 5.24.0 of tools/oracle/.venv does not ship deepseek_v41, so
the functions below restate that file's code line for line, over the same
libraries it calls: `tokenizers` normalizers for the compressed token map,
numpy's default_rng for the multipliers, sympy's isprime for the primes, torch
for the hash and the gate.

Files written (all small, all deterministic):
  rng.txt          numpy Generator.integers(low, high, size, dtype=int64) draws
                   for many seeds and bounds (Lemire 64- and 32-bit paths,
                   rejections, the degenerate range)
  token_map_v41.txt  the compressed token map of the real V4.1 tokenizer:
                   its class count and one FNV-1a 64 digest per 1024 entries
  hash_*.txt       configs (layers, primes, multipliers) and random token
                   sequences with liveness masks, chunk plans and one digest
                   of the hash ids per position
  gate.safetensors a small synthetic Engram layer (FP8 table + scales, FP8
                   wkv, q/k weights), inputs and the HF forward's output

Usage: tools/oracle/.venv/bin/python tools/oracle/make_engram_vectors.py [--show FILE SEQ POS]
  --show prints the hash ids of one position (to compare with a failing C test).
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from sympy import isprime
from tokenizers import Regex, Tokenizer, normalizers

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import v4_format  # noqa: E402  (deterministic safetensors writer)

OUT = os.path.join(REPO, "tests", "data", "engram")
SHARED = os.path.join(os.path.dirname(REPO), "shared")
TOKENIZER = os.path.join(SHARED, "assets", "deepseek-v4", "tokenizer-v41", "tokenizer.json")
V41_CONFIG = os.path.join(SHARED, "docs", "configs", "DeepSeek-V4.1-Flash.config.reconstructed.json")
DEAD = -1


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


# ---------------------------------------------------------------- HF deepseek_v41, restated

def build_compressed_token_map(backend, vocab_len):
    """HF build_compressed_token_map (backend = the raw Rust tokenizer)."""
    sentinel = "\ue000"
    normalizer = normalizers.Sequence([
        normalizers.NFKC(),
        normalizers.NFD(),
        normalizers.StripAccents(),
        normalizers.Lowercase(),
        normalizers.Replace(Regex(r"[ \t\r\n]+"), " "),
        normalizers.Replace(Regex(r"^ $"), sentinel),
        normalizers.Strip(),
        normalizers.Replace(sentinel, " "),
    ])
    key_to_new, lookup = {}, [0] * vocab_len
    for token_id in range(vocab_len):
        text = backend.decode([token_id], skip_special_tokens=False)
        if "\ufffd" in text:
            key = backend.id_to_token(token_id)
        else:
            normalized = normalizer.normalize_str(text)
            key = normalized or text
        new_id = key_to_new.get(key)
        if new_id is None:
            new_id = len(key_to_new)
            key_to_new[key] = new_id
        lookup[token_id] = new_id
    return lookup, len(key_to_new)


def find_next_prime(start, seen):
    candidate = start + 1
    while not isprime(candidate) or candidate in seen:
        candidate += 1
    return candidate


def layout_primes(cfg):
    """HF EngramLayout.from_config: primes [L][n-gram - 1][heads]."""
    primes, seen = [], set()
    for _ in cfg["layers"]:
        per_ngram = []
        for _ in range(cfg["max_ngram"] - 1):
            sizes, current = [], cfg["vocab_size"] - 1
            for _ in range(cfg["heads"]):
                current = find_next_prime(current, seen)
                seen.add(current)
                sizes.append(current)
            per_ngram.append(tuple(sizes))
        primes.append(tuple(per_ngram))
    return primes


def compute_hash_multipliers(layer_ids, max_ngram_size, compressed_vocab_size):
    bound = max(1, (np.iinfo(np.int64).max // compressed_vocab_size) // 2)
    rows = []
    for layer_id in layer_ids:
        generator = np.random.default_rng(10007 * layer_id)
        values = generator.integers(low=0, high=bound, size=(max_ngram_size,), dtype=np.int64)
        rows.append(torch.tensor(values * 2 + 1))
    return torch.stack(rows)


class NgramHashState:
    """HF DeepseekV41NgramHashState for batch 1 (same history semantics)."""

    def __init__(self, cfg, token_map, n_classes):
        self.max_ngram_size = cfg["max_ngram"]
        self.primes = torch.tensor(layout_primes(cfg))
        offsets = []
        for layer in layout_primes(cfg):
            flat = [p for per in layer for p in per]
            row, total = [], 0
            for p in flat:
                row.append(total)
                total += p
            offsets.append(row)
        self.offsets = torch.tensor(offsets)
        self.multipliers = compute_hash_multipliers(cfg["layers"], self.max_ngram_size, n_classes)
        self.token_map = torch.tensor(token_map)
        self.pad_id = token_map[cfg["pad_token"]]
        self.history = None

    def __call__(self, input_ids, position_ids, token_mask):
        batch, _ = input_ids.shape
        max_pos = int(position_ids.max().item()) + 1
        if self.history is None or self.history.shape[1] < max_pos:
            grown = torch.full((batch, max(max_pos, 2 * (self.history.shape[1] if self.history is not None else 0))),
                               DEAD, dtype=torch.long)
            if self.history is not None:
                grown[:, : self.history.shape[1]] = self.history
            self.history = grown
        compressed = self.token_map[input_ids]
        if token_mask is not None:
            compressed = torch.where(token_mask, compressed, torch.full_like(compressed, DEAD))
        self.history.scatter_(1, position_ids.long(), compressed)
        positions = position_ids.long()
        tokens, blocked = [], torch.zeros_like(positions, dtype=torch.bool)
        for shift in range(self.max_ngram_size):
            source = self.history.gather(1, (positions - shift).clamp_min(0))
            blocked = blocked | (positions < shift) | (source == DEAD)
            tokens.append(torch.where(blocked, torch.full_like(source, self.pad_id), source))
        tokens = torch.stack(tokens, dim=-1)
        products = tokens.unsqueeze(2) * self.multipliers
        rolling, hashes = products[..., 0], []
        for i in range(1, self.max_ngram_size):
            rolling = torch.bitwise_xor(rolling, products[..., i])
            hashes.append(rolling.unsqueeze(-1) % self.primes[:, i - 1])
        return torch.cat(hashes, dim=-1) + self.offsets.unsqueeze(0)  # [B, S, L, cols]


def engram_forward(x, table, scale, wkv, q_weight, k_weight, ids, live, hc, dim, eps):
    """HF DeepseekV41Engram.forward (+ DeepseekV41EngramEmbedding) in float32."""
    values = F.embedding(ids, table)
    scales = F.embedding(ids, scale)
    values = (values.unflatten(-1, (-1, 32)) * scales.unsqueeze(-1)).flatten(-2)
    kv = F.linear(values.flatten(-2), wkv)
    key, value = kv.split([hc * dim, dim], dim=-1)
    key = key.unflatten(-1, (hc, dim))
    weight = q_weight * k_weight
    h = x
    rstd = torch.rsqrt(h.square().mean(-1) + eps) * torch.rsqrt(key.square().mean(-1) + eps)
    dot = (h * weight * key).sum(-1) * rstd * dim**-0.5
    gate = torch.sigmoid(torch.copysign(dot.abs().clamp_min(1e-6).sqrt(), dot))
    gate = gate.masked_fill(~live.unsqueeze(-1), 0.0)
    return h + gate.unsqueeze(-1) * value.unsqueeze(-2), gate


# ---------------------------------------------------------------- rng.txt

def write_rng():
    """numpy integers(dtype=int64) vectors: per line `seed low high v...`."""
    rs = np.random.default_rng(20260911)
    cases = []
    bound = (np.iinfo(np.int64).max // 99092) // 2
    for seed in range(0, 64):
        cases.append((seed, 0, int(bound), 4))
    for _ in range(96):
        cases.append((int(rs.integers(0, 2**63, dtype=np.uint64)) * 2 + int(rs.integers(0, 2)), 0,
                      int(rs.integers(2, 2**62, dtype=np.int64)), 8))
    highs = [1, 2, 3, 10, 1000, 2**31, 3 * 2**30, 2**32 - 1, 2**32, 2**32 + 1, 3 * 2**61, 2**63 - 1,
             int(bound), 5 * 2**60 + 12345]
    for i, high in enumerate(highs):
        cases.append((1000 + i, 0, high, 16))
        cases.append((2000 + i, -7, high, 16))
    lines = ["# numpy " + np.__version__ + ": default_rng(seed).integers(low, high, size=n, dtype=int64)",
             "# seed low high n values..."]
    for seed, low, high, n in cases:
        values = np.random.default_rng(seed).integers(low, high, size=n, dtype=np.int64)
        lines.append(" ".join(str(v) for v in [seed, low, high, n] + [int(v) for v in values]))
    with open(os.path.join(OUT, "rng.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return len(cases)


# ---------------------------------------------------------------- token_map_v41.txt

def write_token_map(token_map, n_classes):
    data = struct.pack("<%dI" % len(token_map), *token_map)
    lines = ["# compressed token map of shared/assets/deepseek-v4/tokenizer-v41/tokenizer.json",
             "# (HF build_compressed_token_map): FNV-1a 64 of each 1024-entry chunk, u32 little-endian",
             "vocab %d classes %d chunk 1024" % (len(token_map), n_classes)]
    for c in range(0, len(token_map), 1024):
        lines.append("%016x" % fnv1a64(data[4 * c: 4 * min(c + 1024, len(token_map))]))
    with open(os.path.join(OUT, "token_map_v41.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


# ---------------------------------------------------------------- hash_*.txt

def make_sequences(rs, token_map, n_classes, count):
    """Random sequences: uniform ids, ids of the top compressed classes (largest
    products), and liveness masks with DEAD runs (position 0 included)."""
    vocab = len(token_map)
    top = [i for i, c in enumerate(token_map) if c >= n_classes - 64]
    seqs = []
    for s in range(count):
        n = int(rs.integers(40, 260))
        ids = rs.integers(0, vocab, size=n)
        if s % 3 == 1:
            pick = rs.random(n) < 0.7
            ids[pick] = rs.choice(top, size=int(pick.sum()))
        live = np.ones(n, dtype=bool)
        if s % 4 == 2:
            live[0] = False
            for _ in range(int(rs.integers(1, 5))):
                a = int(rs.integers(0, n))
                live[a: a + int(rs.integers(1, 4))] = False
        cuts, p = [], 0
        while p < n:
            step = int(rs.choice([1, 2, 3, 7, 16]))
            cuts.append(min(step, n - p))
            p += cuts[-1]
        seqs.append((ids.tolist(), live.tolist(), cuts))
    return seqs


def write_hash(name, cfg, token_map, n_classes, n_seqs, seed):
    state_cfg = dict(cfg)
    primes = layout_primes(cfg)
    mult = compute_hash_multipliers(cfg["layers"], cfg["max_ngram"], n_classes)
    rows = [sum(sum(per) for per in layer) for layer in primes]
    lines = ["# HF DeepseekV41NgramHashState over the real V4.1 token map; digest = FNV-1a 64 of the",
             "# position's hash ids as int64 little-endian, layer by layer, columns (n-gram, head) in order",
             "config layers %s max_ngram %d heads %d vocab_size %d pad_token %d classes %d" % (
                 ",".join(map(str, cfg["layers"])), cfg["max_ngram"], cfg["heads"], cfg["vocab_size"],
                 cfg["pad_token"], n_classes),
             "rows " + " ".join(map(str, rows))]
    for li in range(len(cfg["layers"])):
        lines.append("primes %d %s" % (li, " ".join(str(p) for per in primes[li] for p in per)))
        lines.append("mult %d %s" % (li, " ".join(str(int(v)) for v in mult[li])))
    rs = np.random.default_rng(seed)
    total = 0
    per_seq = []
    for si, (ids, live, cuts) in enumerate(make_sequences(rs, token_map, n_classes, n_seqs)):
        input_ids, mask = torch.tensor([ids]), torch.tensor([live])
        whole = NgramHashState(state_cfg, token_map, n_classes)(input_ids, torch.arange(len(ids))[None], mask)
        # The reference's own chunked run (history carried across calls) must agree.
        st, parts, p = NgramHashState(state_cfg, token_map, n_classes), [], 0
        for c in cuts:
            parts.append(st(input_ids[:, p: p + c], torch.arange(p, p + c)[None], mask[:, p: p + c]))
            p += c
        assert torch.equal(torch.cat(parts, dim=1), whole), "HF hash state: chunked != whole"
        ids_np = whole[0].numpy().astype("<i8")  # [S, L, cols]
        digests = ["%016x" % fnv1a64(ids_np[t].tobytes()) for t in range(len(ids))]
        total += ids_np.size
        per_seq.append(whole[0])
        lines.append("seq %d %d" % (si, len(ids)))
        lines.append("tokens " + " ".join(map(str, ids)))
        lines.append("live " + " ".join(str(int(v)) for v in live))
        lines.append("chunks " + " ".join(map(str, cuts)))
        lines.append("digest " + " ".join(digests))
    with open(os.path.join(OUT, name), "w") as f:
        f.write("\n".join(lines) + "\n")
    return total, per_seq, mult


# ---------------------------------------------------------------- gate.safetensors

def fp8_codes(rs, shape):
    """Uniform random F8_E4M3 codes without the two NaNs (0x7F, 0xFF)."""
    codes = rs.integers(0, 254, size=shape, dtype=np.int64)
    codes = codes + (codes >= 0x7F)
    return torch.from_numpy(codes.astype(np.uint8)).view(torch.float8_e4m3fn)


def write_gate():
    """A small Engram layer (layer 1 of a config with D 64, hc 2, max n-gram 3,
    2 heads, head_dim 64, table rows 300) and HF's forward over 7 tokens: one
    dead token, one all-zero stream (rstd at eps), the rest random."""
    rs = np.random.default_rng(41)
    D, hc, cols, hdim, rows, T = 64, 2, 4, 64, 300, 7
    table = fp8_codes(rs, (rows, hdim))
    scale = torch.from_numpy(rs.integers(121, 128, size=(rows, hdim // 32)).astype(np.uint8)).view(torch.float8_e8m0fnu)
    wkv = fp8_codes(rs, ((hc + 1) * D, cols * hdim))
    wkv_scale = torch.from_numpy(rs.integers(106, 112, size=((hc + 1) * D // 32, cols * hdim // 32)).astype(np.uint8))
    wkv_scale = wkv_scale.view(torch.float8_e8m0fnu)
    q_weight = torch.from_numpy(rs.normal(1.0, 0.5, size=(hc, D)).astype(np.float32)).bfloat16()
    k_weight = torch.from_numpy(rs.normal(1.0, 0.5, size=(hc, D)).astype(np.float32))
    x = torch.from_numpy(rs.normal(0.0, 1.0, size=(T, hc, D)).astype(np.float32))
    x[3, 1] = 0.0
    ids = torch.from_numpy(rs.integers(0, rows, size=(T, cols)))
    ids[0, 0], ids[1, 3] = 0, rows - 1
    live = torch.ones(T, dtype=torch.bool)
    live[5] = False

    w_deq = wkv.float() * wkv_scale.float().repeat_interleave(32, 0).repeat_interleave(32, 1)
    out, gate = engram_forward(x, table.float(), scale.float(), w_deq, q_weight.float(), k_weight, ids, live,
                               hc, D, 1e-20)
    prefix = "layers.1.engram."
    tensors = {
        prefix + "embed.weight": table, prefix + "embed.scale": scale,
        prefix + "wkv.weight": wkv, prefix + "wkv.scale": wkv_scale,
        prefix + "q_weight": q_weight, prefix + "k_weight": k_weight,
        "test.x": x, "test.ids": ids, "test.live": live.to(torch.int64),
        "test.out": out.contiguous(), "test.gate": gate.contiguous(),
    }
    meta = {"format": "lantern-engram-gate", "version": "1",
            "config": json.dumps({"hidden_size": D, "hc_mult": hc, "engram_layer_ids": [1],
                                  "engram_num_embeddings": [rows], "engram_max_ngram_size": 3,
                                  "engram_n_heads": 2, "engram_head_dim": hdim, "rms_norm_eps": 1e-20,
                                  "weight_block_size": [32, 32]})}
    v4_format.save_safetensors(os.path.join(OUT, "gate.safetensors"), tensors, meta)


# ---------------------------------------------------------------- main

HASH_FILES = {
    # the real V4.1-Flash layout (layers 1 and 14 of the released config)
    "hash_v41.txt": (None, 10, 1),
    # other layer ids and shapes: multipliers of more seeds, a different prime walk
    "hash_other.txt": ({"layers": [0, 7, 39], "max_ngram": 3, "heads": 3, "vocab_size": 1000, "pad_token": 2}, 4, 2),
    "hash_long.txt": ({"layers": [2], "max_ngram": 6, "heads": 1, "vocab_size": 50, "pad_token": 5}, 3, 3),
}


def v41_engram_config():
    with open(V41_CONFIG) as f:
        text = json.load(f)["text_config"]
    return {"layers": text["engram_layer_ids"], "max_ngram": text["engram_max_ngram_size"],
            "heads": text["engram_n_heads"], "vocab_size": text["engram_vocab_size"],
            "pad_token": text["engram_pad_token_id"]}, text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--show", nargs=3, metavar=("FILE", "SEQ", "POS"))
    args = ap.parse_args()
    torch.manual_seed(0)
    backend = Tokenizer.from_file(TOKENIZER)
    token_map, n_classes = build_compressed_token_map(backend, backend.get_vocab_size(with_added_tokens=True))
    v41, text = v41_engram_config()
    assert n_classes == text["engram_compressed_vocab_size"], n_classes
    if args.show:
        cfg, n_seqs, seed = HASH_FILES[args.show[0]]
        os.makedirs("/tmp/engram_show", exist_ok=True)
        global OUT
        OUT = "/tmp/engram_show"
        _, per_seq, _ = write_hash(args.show[0], cfg or v41, token_map, n_classes, n_seqs, seed)
        print(per_seq[int(args.show[1])][int(args.show[2])].tolist())
        return
    os.makedirs(OUT, exist_ok=True)
    print("rng cases", write_rng())
    write_token_map(token_map, n_classes)
    print("token map classes", n_classes)
    for name, (cfg, n_seqs, seed) in HASH_FILES.items():
        total, _, mult = write_hash(name, cfg or v41, token_map, n_classes, n_seqs, seed)
        print(name, "hash ids", total, "max multiplier", int(mult.max()))
    write_gate()
    print("gate.safetensors written")


if __name__ == "__main__":
    main()
