"""Train the embedded demo model (models/demo) on CPU with one thread.

  OMP_NUM_THREADS=1 nice -n 10 tools/oracle/.venv/bin/python tools/demo_model/train.py

Model: HF transformers DeepseekV4ForCausalLM (float32, eager attention, eager
experts) with the config of demo_config.py, plus the MTP head of demo_lib.MTP.
Losses: next-token cross-entropy of the trunk; MTP cross-entropy (token t+2) on
detached trunk features (weight --mtp-weight, so the trunk trains as without MTP);
indexer distillation (demo_lib.IndexerDistill, trains only the indexers).
Expert load: auxiliary-loss-free bias updates (demo_lib.LoadBalance).
The last --qat-frac of the steps run quantisation-aware: the forward sees the
exported FP8 / FP4 / BF16 values, the gradient updates float32 masters.

Everything is seeded; batches are a function of (seed, step), so --resume
continues the same run. Checkpoints (WORK/ckpt_last.pt every --eval-every steps,
WORK/ckpt_best.pt on the best held-out loss of the exported view) make a
partial run usable; --max-minutes stops cleanly (saving) when the budget is spent.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import demo_config as dc  # noqa: E402
import demo_lib as dl  # noqa: E402


def load_stream(path, tok):
    """Text -> (token ids int32 tensor, paragraph start offsets)."""
    text = open(path, encoding="utf-8").read()
    enc = tok.encode(text)
    ids = torch.tensor(enc.ids, dtype=torch.int32)
    starts = [0] + [i + 1 for i, t in enumerate(enc.ids) if tok.id_to_token(t).endswith("Ċ")]
    return ids, torch.tensor(starts[:-1], dtype=torch.long)


def batch_at(step, seed, ids, starts, B, T):
    """Deterministic batch for a step: B windows [BOS] + T-1 tokens starting at paragraph starts."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    ok = starts[starts + T - 1 <= len(ids)]
    pick = ok[torch.randint(len(ok), (B,), generator=g)]
    rows = [torch.cat([torch.tensor([dl.BOS]), ids[s:s + T - 1].long()]) for s in pick.tolist()]
    return torch.stack(rows)


def lr_at(step, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    t = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * t)))


def param_groups(model, mtp, wd):
    decay, no_decay = [], []
    for mod in (model, mtp):
        for n, p in mod.named_parameters():
            if not p.requires_grad:
                continue
            # no decay: vectors, the mHC mixing tensors and the compressor position biases
            small = p.ndim < 2 or "_hc." in n or "hc_head." in n or n.endswith("position_bias")
            (no_decay if small else decay).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=os.path.join(dl.ROOT, "build", "demo_model"))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--steps", type=int, default=420)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--mtp-weight", type=float, default=0.3)
    ap.add_argument("--mtp-rows", type=int, default=2, help="batch rows that also train the MTP head")
    ap.add_argument("--indexer-weight", type=float, default=1.0)
    ap.add_argument("--balance-rate", type=float, default=2e-3)
    ap.add_argument("--qat-frac", type=float, default=0.2)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--eval-windows", type=int, default=48, help="held-out windows used during training")
    ap.add_argument("--max-minutes", type=float, default=45.0)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    from tokenizers import Tokenizer

    c = dc.official_config()
    T = dc.SEQ_LEN
    tok = Tokenizer.from_file(os.path.join(args.work, "tokenizer.json"))
    assert tok.get_vocab_size() == c["vocab_size"]
    ids, starts = load_stream(os.path.join(args.work, "train.txt"), tok)
    vids, _ = load_stream(os.path.join(args.work, "valid.txt"), tok)
    windows = dl.eval_windows(vids.tolist(), T)[: args.eval_windows]
    counts = torch.bincount(ids.long(), minlength=c["vocab_size"])
    print(f"train tokens {len(ids)}, paragraphs {len(starts)}, valid tokens {len(vids)}", flush=True)

    model, mtp = dl.build(c, args.seed, counts)
    box = dl.final_streams(model)
    distill = dl.IndexerDistill(model)
    balance = dl.LoadBalance([model, mtp], args.balance_rate)
    view = dl.qat_view(model, mtp, c)
    dl.check_fast_quant(view, c)
    n_params = sum(p.numel() for p in model.parameters()) + sum(p.numel() for p in mtp.parameters())
    print(f"parameters: trunk {sum(p.numel() for p in model.parameters())}, mtp "
          f"{sum(p.numel() for p in mtp.parameters())}, total {n_params}; quantised tensors {len(view)}", flush=True)
    opt = torch.optim.AdamW(param_groups(model, mtp, args.wd), lr=args.lr, betas=(0.9, 0.95), eps=1e-8)

    start, best, log = 0, float("inf"), []
    last_path = os.path.join(args.work, "ckpt_last.pt")
    best_path = os.path.join(args.work, "ckpt_best.pt")
    if args.resume and os.path.exists(last_path):
        ck = torch.load(last_path, weights_only=False)
        model.load_state_dict(ck["model"])
        mtp.load_state_dict(ck["mtp"])
        opt.load_state_dict(ck["opt"])
        start, best, log = ck["step"], ck["best"], ck["log"]
        print(f"resumed at step {start}", flush=True)

    def save(path, step):
        torch.save({"model": model.state_dict(), "mtp": mtp.state_dict(), "opt": opt.state_dict(),
                    "step": step, "best": best, "log": log, "config": c, "args": vars(args)}, path + ".tmp")
        os.replace(path + ".tmp", path)

    qat_start = int(args.steps * (1 - args.qat_frac))
    t0 = time.time()
    elapsed0 = log[-1]["elapsed_s"] if log else 0.0
    tr_loss, tr_mtp, tr_idx, tr_n = 0.0, 0.0, 0.0, 0
    model.train()
    mtp.train()
    step = start
    while step < args.steps:
        x = batch_at(step, args.seed, ids, starts, args.batch, T)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args)
        qat = step >= qat_start
        swap = dl.QuantSwap(view) if qat else None
        if swap:
            swap.__enter__()
        distill.active = balance.active = True
        logits = model(input_ids=x, use_cache=False).logits
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        r = args.mtp_rows
        ml = mtp(model.model.embed_tokens.weight.detach(), model.lm_head.weight.detach(), x[:r],
                 box["X"][:r].detach())[:, :-1]
        mloss = F.cross_entropy(ml.reshape(-1, ml.shape[-1]), x[:r, 2:].reshape(-1))
        iloss = distill.pop()
        distill.active = balance.active = False
        total = loss + args.mtp_weight * mloss + args.indexer_weight * iloss
        opt.zero_grad(set_to_none=True)
        total.backward()
        if swap:
            swap.restore()
        torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], args.clip)
        opt.step()
        balance.update()
        step += 1
        tr_loss, tr_mtp, tr_idx, tr_n = tr_loss + loss.item(), tr_mtp + mloss.item(), tr_idx + iloss.item(), tr_n + 1
        elapsed = elapsed0 + time.time() - t0
        if step % 10 == 0:
            tps = (step - start) * args.batch * T / (time.time() - t0)
            print(f"step {step} loss {tr_loss / tr_n:.4f} mtp {tr_mtp / tr_n:.4f} idx-kl {tr_idx / tr_n:.4f} "
                  f"lr {lr_at(step - 1, args):.2e}{' qat' if qat else ''} {tps:.0f} tok/s "
                  f"{elapsed / 60:.1f} min", flush=True)
        over_time = elapsed > args.max_minutes * 60
        if step % args.eval_every == 0 or step == args.steps or over_time:
            loads = balance.stats()
            balance.reset()
            ev = dl.evaluate(model, mtp, box, windows)
            with dl.QuantSwap(view):
                evq = dl.evaluate(model, mtp, box, windows)
            rec = {"step": step, "train_loss": tr_loss / tr_n, "train_mtp": tr_mtp / tr_n, "idx_kl": tr_idx / tr_n,
                   "valid": ev, "valid_exported": evq, "elapsed_s": elapsed,
                   "max_load": [round(v, 2) for v in loads]}
            log.append(rec)
            tr_loss, tr_mtp, tr_idx, tr_n = 0.0, 0.0, 0.0, 0
            print("eval " + json.dumps(rec), flush=True)
            if evq["loss"] < best:
                best = evq["loss"]
                save(best_path, step)
            save(last_path, step)
        if over_time:
            print(f"time budget of {args.max_minutes} min spent at step {step}; stopping", flush=True)
            break
    with open(os.path.join(args.work, "train_log.json"), "w") as f:
        json.dump(log, f, indent=1)
    print(f"done: step {step}, best held-out loss (exported view, {args.eval_windows} windows) {best:.4f}", flush=True)


if __name__ == "__main__":
    main()
