"""Export the trained demo model to models/demo in the official DeepSeek-V4 format,
then check and measure what was written.

  OMP_NUM_THREADS=1 nice -n 10 tools/oracle/.venv/bin/python tools/demo_model/export.py

1. Load WORK/ckpt_best.pt, map the HF trunk + MTP head to official names, quantise
   (FP8 e4m3 + UE8M0 block scales, FP4 e2m1 routed experts, BF16, F32, I64 as in
   the V4-Flash checkpoint) and write two safetensors shards with
   model.safetensors.index.json, config.json, generation_config.json,
   tokenizer.json, tokenizer_config.json and valid.txt.
2. Read the shards back, dequantise them with an independent decoder and check
   they equal the values the quantiser produced.
3. Load the dequantised weights into a fresh HF model (+ MTP head) and measure the
   held-out loss against the float32 masters; cross-check HF and the MTP head
   against tools/oracle/ref_v4.py on one window.
4. Greedy-decode 64 tokens for three prompts (fp32, full recompute per token,
   no cache) and write models/demo/expected_greedy.json; also compare with HF
   generate() using its dynamic cache, and record the smallest decision margins
   (logits, indexer top-k boundary, router top-k boundary) along the way.
Writes a summary to WORK/export_report.json.
"""
import argparse
import json
import os
import shutil
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import demo_config as dc  # noqa: E402
import demo_lib as dl  # noqa: E402
import ref_v4  # noqa: E402  (tools/oracle, put on sys.path by demo_lib)
import v4_format  # noqa: E402
from transformers.models.deepseek_v4 import modeling_deepseek_v4 as mv4  # noqa: E402

PROMPTS = [
    "It is a truth universally acknowledged, that",
    "\"My dear Miss Bennet,\" said Mr. Darcy,",
    "The next morning Emma walked to Hartfield, and",
]
N_GREEDY = 64


def shards_for(names):
    """Two shards: top level + first half of the layers, the rest + MTP."""
    first, second = [], []
    for n in names:
        if n.startswith("mtp.") or (n.startswith("layers.") and int(n.split(".")[1]) >= 3):
            second.append(n)
        else:
            first.append(n)
    return [sorted(first), sorted(second)]


def read_back(folder):
    """Independent reader: safetensors shards -> official float32 values (int64 kept)."""
    from safetensors.torch import load_file

    index = json.load(open(os.path.join(folder, "model.safetensors.index.json")))
    raw = {}
    for f in sorted(set(index["weight_map"].values())):
        raw.update(load_file(os.path.join(folder, f)))
    assert set(raw) == set(index["weight_map"]), "index and shards disagree"
    table = torch.tensor(v4_format.E2M1_TABLE)
    out = {}
    for name, t in raw.items():
        if name.endswith(".scale"):
            continue
        sname = name[: -len("weight")] + "scale" if name.endswith(".weight") else None
        if t.dtype == torch.float8_e4m3fn:
            s = torch.exp2(raw[sname].view(torch.uint8).float() - 127)
            br = -(-t.shape[0] // s.shape[0])
            bc = -(-t.shape[1] // s.shape[1])
            full = s.repeat_interleave(br, 0).repeat_interleave(bc, 1)[: t.shape[0], : t.shape[1]]
            out[name] = t.float() * full
        elif t.dtype == torch.int8:
            b = t.view(torch.uint8).long()
            codes = torch.stack([b & 15, b >> 4], -1).flatten(-2)          # low nibble = even element
            s = torch.exp2(raw[sname].view(torch.uint8).float() - 127)
            out[name] = table[codes] * s.repeat_interleave(v4_format.FP4_BLOCK, 1)
        elif t.dtype in (torch.bfloat16, torch.float32):
            out[name] = t.float()
        elif t.dtype == torch.int64:
            out[name] = t
        else:
            raise ValueError(f"{name}: unexpected dtype {t.dtype}")
    return out, raw


class Margins:
    """Smallest gaps at the decisions an engine must reproduce: the router's top-k
    (score + bias) boundary and the lightning indexer's top-k boundary."""

    def __init__(self, model):
        self.router, self.indexer = float("inf"), float("inf")
        for layer in model.model.layers:
            gate = layer.mlp.gate
            if isinstance(gate, mv4.DeepseekV4TopKRouter):
                gate.register_forward_hook(self._router)
            comp = layer.self_attn.compressor
            if isinstance(comp, mv4.DeepseekV4CSACompressor):
                comp.indexer.scorer.register_forward_hook(self._indexer(comp.indexer))

    def _router(self, mod, args, out):
        s = mod.score_fn(out[0]) + mod.e_score_correction_bias
        top = s.topk(mod.top_k + 1, dim=-1).values
        self.router = min(self.router, float((top[:, -2] - top[:, -1]).min()))

    def _indexer(self, idx):
        def hook(mod, args, out):
            T, n = out.shape[1], out.shape[2]
            pos = torch.arange(T)
            vis = torch.arange(n)[None, :] < ((pos + 1) // idx.compress_rate)[:, None]
            s = out[0].masked_fill(~vis, float("-inf"))
            rows = vis.sum(-1) > idx.index_topk
            if rows.any():
                top = s[rows].topk(idx.index_topk + 1, dim=-1).values
                self.indexer = min(self.indexer, float((top[:, -2] - top[:, -1]).min()))
        return hook


@torch.no_grad()
def greedy(model, ids, n):
    """Greedy continuation by full recompute (no cache); returns (tokens, smallest top1-top2 logit gap)."""
    seq = list(ids)
    gap = float("inf")
    for _ in range(n):
        logits = model(input_ids=torch.tensor([seq]), use_cache=False).logits[0, -1]
        top = logits.topk(2).values
        gap = min(gap, float(top[0] - top[1]))
        seq.append(int(logits.argmax()))
    return seq[len(ids):], gap


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=os.path.join(dl.ROOT, "build", "demo_model"))
    ap.add_argument("--ckpt", default=None, help="default WORK/ckpt_best.pt")
    ap.add_argument("--out", default=os.path.join(dl.ROOT, "models", "demo"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from tokenizers import Tokenizer

    ck = torch.load(args.ckpt or os.path.join(args.work, "ckpt_best.pt"), weights_only=False)
    c = ck["config"]
    seed = ck["args"]["seed"]
    model, mtp = dl.build(c, seed)
    model.load_state_dict(ck["model"])
    mtp.load_state_dict(ck["mtp"])
    model.eval()
    mtp.eval()
    report = {"checkpoint_step": ck["step"], "train_log_last": ck["log"][-1] if ck["log"] else None}

    # 1. export
    values = dl.hf_to_official(model, mtp, c)
    stored, deq = dl.quantize_official(values, c)
    os.makedirs(args.out, exist_ok=True)
    files = v4_format.write_checkpoint(args.out, stored, shards=shards_for(stored))
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
        f.write("\n")
    gen = {"_from_model_config": True, "bos_token_id": 0, "eos_token_id": 1, "do_sample": True,
           "temperature": 0.7, "top_p": 0.9, "transformers_version": "5.24.0"}
    with open(os.path.join(args.out, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)
        f.write("\n")
    for name in ("tokenizer.json", "tokenizer_config.json", "valid.txt"):
        shutil.copyfile(os.path.join(args.work, name), os.path.join(args.out, name))
    print("wrote", args.out, files, flush=True)

    # 2. read back
    back, raw = read_back(args.out)
    assert set(back) == set(deq)
    for k in deq:
        assert torch.equal(back[k], deq[k]), k
    report["tensors"] = len(raw)
    report["dtypes"] = {}
    for t in raw.values():
        key = {torch.float8_e4m3fn: "F8_E4M3", torch.float8_e8m0fnu: "F8_E8M0", torch.int8: "I8",
               torch.bfloat16: "BF16", torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        report["dtypes"][key] = report["dtypes"].get(key, 0) + 1
    print("read back: identical to the quantiser's values", report["dtypes"], flush=True)

    # 3. held-out loss, fp32 masters vs exported
    tok = Tokenizer.from_file(os.path.join(args.out, "tokenizer.json"))
    vtext = open(os.path.join(args.out, "valid.txt"), encoding="utf-8").read()
    windows = dl.eval_windows(tok.encode(vtext).ids, dc.SEQ_LEN)
    box = dl.final_streams(model)
    t0 = time.time()
    report["valid_fp32"] = dl.evaluate(model, mtp, box, windows)
    qmodel, qmtp = dl.build(c, seed)
    dl.official_to_modules(back, c, qmodel, qmtp)
    qmodel.eval()
    qmtp.eval()
    qbox = dl.final_streams(qmodel)
    report["valid_exported"] = dl.evaluate(qmodel, qmtp, qbox, windows)
    report["valid_windows"] = int(windows.shape[0])
    vids = tok.encode(vtext).ids
    report["valid_stream_fp32"] = dl.stream_loss(model, vids, dc.SEQ_LEN)
    report["valid_stream_exported"] = dl.stream_loss(qmodel, vids, dc.SEQ_LEN)
    print("valid, lantern perplexity protocol", report["valid_stream_fp32"], report["valid_stream_exported"],
          flush=True)
    print("valid", report["valid_fp32"], report["valid_exported"], f"{time.time() - t0:.0f} s", flush=True)

    # cross-check against the independent reference on one window
    x = windows[0]
    with torch.no_grad():
        hf_logits = qmodel(input_ids=x[None], use_cache=False).logits[0]
        hf_mtp = qmtp(qmodel.model.embed_tokens.weight, qmodel.lm_head.weight, x[None], qbox["X"])[0]
    r = ref_v4.forward(back, c, x)
    rm, _, _ = ref_v4.mtp_forward(back, c, x, r["X"])
    report["ref_v4_max_abs_diff"] = {"logits": float((hf_logits - r["logits"]).abs().max()),
                                     "mtp_logits": float((hf_mtp - rm).abs().max())}
    print("HF vs ref_v4", report["ref_v4_max_abs_diff"], flush=True)

    # 4. greedy continuations
    margins = Margins(qmodel)
    out = {"model": "models/demo", "mode": "HF transformers 5.24.0 DeepseekV4ForCausalLM, float32, eager, "
           "exported (dequantised) weights, no activation quantisation, greedy argmax, full recompute per token",
           "bos": "ids start with <｜begin▁of▁sentence｜> (0); the tokenizer adds no BOS itself",
           "n_tokens": N_GREEDY,
           "mtp": "mtp_argmax[t] = argmax of the mtp.0 head's logits at row t of ids + greedy (row t takes the "
                  "trunk's final streams at position t and token t+1, and predicts token t+2), computed with "
                  "tools/demo_model/demo_lib.MTP (checked against tools/oracle/ref_v4.mtp_forward)",
           "prompts": []}
    for text in PROMPTS:
        ids = [dl.BOS] + tok.encode(text).ids
        g, gap = greedy(qmodel, ids, N_GREEDY)
        with torch.no_grad():
            cached = qmodel.generate(torch.tensor([ids]), max_new_tokens=N_GREEDY, do_sample=False,
                                     use_cache=True, eos_token_id=None, pad_token_id=1)[0, len(ids):].tolist()
        # MTP head on the whole sequence: row t sees token t+1 and predicts token t+2
        seq = torch.tensor([ids + g])
        with torch.no_grad():
            qmodel(input_ids=seq, use_cache=False)
            ml = qmtp(qmodel.model.embed_tokens.weight, qmodel.lm_head.weight, seq, qbox["X"])[0]
        top2 = ml.topk(2, dim=-1).values
        out["prompts"].append({"text": text, "ids": ids, "greedy": g,
                               "decoded": tok.decode(g, skip_special_tokens=False),
                               "min_logit_gap": round(gap, 4), "hf_generate_cached_agrees": cached == g,
                               "mtp_argmax": ml.argmax(-1).tolist(),
                               "mtp_min_logit_gap": round(float((top2[:, 0] - top2[:, 1]).min()), 4)})
        print(json.dumps(out["prompts"][-1], ensure_ascii=False), flush=True)
    out["min_router_gap"] = margins.router
    out["min_indexer_gap"] = margins.indexer
    with open(os.path.join(args.out, "expected_greedy.json"), "w") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    report["greedy"] = out
    report["files"] = {f: os.path.getsize(os.path.join(args.out, f)) for f in sorted(os.listdir(args.out))}
    report["total_bytes"] = sum(report["files"].values())
    with open(os.path.join(args.work, "export_report.json"), "w") as f:
        json.dump(report, f, ensure_ascii=False, indent=1)
    print(json.dumps({k: report[k] for k in ("files", "total_bytes")}, indent=1))


if __name__ == "__main__":
    main()
