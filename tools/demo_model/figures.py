"""Extra figures for models/demo/README.md, after export.py:

  tools/oracle/.venv/bin/python tools/demo_model/figures.py

- train loss on --train-windows windows ([BOS] + 255 tokens) spread evenly over the
  training text, fp32 masters (WORK/ckpt_best.pt) and exported (models/demo read back);
- routed experts' share of assignments per routing layer on the held-out text (exported);
- sampled continuations (HF, temperature 0.7, top-p 0.9, torch.manual_seed(i) for prompt i).
Writes WORK/figures.json.
"""
import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import demo_config as dc  # noqa: E402
import demo_lib as dl  # noqa: E402
import export  # noqa: E402
from transformers.models.deepseek_v4 import modeling_deepseek_v4 as mv4  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=os.path.join(dl.ROOT, "build", "demo_model"))
    ap.add_argument("--ckpt", default=None, help="default WORK/ckpt_best.pt")
    ap.add_argument("--model", default=os.path.join(dl.ROOT, "models", "demo"))
    ap.add_argument("--train-windows", type=int, default=173)
    ap.add_argument("--sample-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from tokenizers import Tokenizer

    ck = torch.load(args.ckpt or os.path.join(args.work, "ckpt_best.pt"), weights_only=False)
    c, seed = ck["config"], ck["args"]["seed"]
    model, mtp = dl.build(c, seed)
    model.load_state_dict(ck["model"])
    mtp.load_state_dict(ck["mtp"])
    model.eval()
    mtp.eval()
    back, _ = export.read_back(args.model)
    qmodel, qmtp = dl.build(c, seed)
    dl.official_to_modules(back, c, qmodel, qmtp)
    qmodel.eval()
    qmtp.eval()
    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    rep = {"checkpoint_step": ck["step"]}

    tids = tok.encode(open(os.path.join(args.work, "train.txt"), encoding="utf-8").read()).ids
    tw = dl.eval_windows(tids, dc.SEQ_LEN)
    pick = torch.linspace(0, tw.shape[0] - 1, args.train_windows).round().long()
    tw = tw[pick]
    rep["train_fp32"] = dl.evaluate(model, None, None, tw)["loss"]
    rep["train_exported"] = dl.evaluate(qmodel, None, None, tw)["loss"]
    print("train", rep["train_fp32"], rep["train_exported"], flush=True)

    # expert shares on the held-out text, exported weights
    counts = {}

    def hook(name):
        def f(mod, a, out):
            cnt = torch.bincount(out[2].reshape(-1), minlength=mod.num_experts).float()
            counts[name] = counts.get(name, 0) + cnt
        return f
    for i, layer in enumerate(qmodel.model.layers):
        g = layer.mlp.gate
        if isinstance(g, (mv4.DeepseekV4TopKRouter, mv4.DeepseekV4HashRouter)):
            g.register_forward_hook(hook(f"layer{i}"))
    for m in qmtp.modules():
        if isinstance(m, (mv4.DeepseekV4TopKRouter, mv4.DeepseekV4HashRouter)):
            m.register_forward_hook(hook("mtp"))
    vids = tok.encode(open(os.path.join(args.model, "valid.txt"), encoding="utf-8").read()).ids
    vw = dl.eval_windows(vids, dc.SEQ_LEN)
    box = dl.final_streams(qmodel)
    dl.evaluate(qmodel, qmtp, box, vw)
    rep["expert_share_pct"] = {k: [round(x, 1) for x in (100 * cnt / cnt.sum()).tolist()]
                               for k, cnt in counts.items()}
    for k, v in rep["expert_share_pct"].items():
        print("experts", k, "min", min(v), "max", max(v), v, flush=True)

    rep["samples"] = []
    for i, text in enumerate(export.PROMPTS):
        ids = [dl.BOS] + tok.encode(text).ids
        torch.manual_seed(i)
        with torch.no_grad():
            out = qmodel.generate(torch.tensor([ids]), max_new_tokens=args.sample_tokens, do_sample=True,
                                  temperature=0.7, top_p=0.9, use_cache=True, eos_token_id=None,
                                  pad_token_id=1)[0, len(ids):].tolist()
        s = text + tok.decode(out, skip_special_tokens=False)
        rep["samples"].append(s)
        print("sample", i, json.dumps(s, ensure_ascii=False), flush=True)
    with open(os.path.join(args.work, "figures.json"), "w") as f:
        json.dump(rep, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
