"""Train the embedded demo model (models/demo) on CPU (--threads, default 1).

  OMP_NUM_THREADS=2 nice -n 5 tools/oracle/.venv/bin/python tools/demo_model/train.py --threads 2 --deadline 19:54

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

--deadline (UTC wall-clock, "HH:MM" today or "YYYY-MM-DDTHH:MM") is a hard stop,
and with it the step count is fitted to the time left: after --fit-after steps the
measured seconds per step set --steps so that the run (QAT steps cost about
--qat-cost times a plain step, plus the evaluations) ends before the deadline, and
it is refitted every 50 steps during the first half, so the cosine schedule and the
QAT finish match the steps the run can actually afford. The fitted count is logged.
"""
import argparse
import datetime
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


def parse_deadline(s):
    """UTC "HH:MM[:SS]" (today) or ISO "YYYY-MM-DDTHH:MM[:SS]" -> epoch seconds."""
    utc = datetime.timezone.utc
    if "T" in s or "-" in s:
        d = datetime.datetime.fromisoformat(s)
        d = d.replace(tzinfo=utc) if d.tzinfo is None else d
        return d.timestamp()
    parts = [int(v) for v in s.split(":")]
    now = datetime.datetime.now(utc)
    d = now.replace(hour=parts[0], minute=parts[1], second=parts[2] if len(parts) > 2 else 0, microsecond=0)
    return d.timestamp()


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
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--deadline", default=None, help="UTC wall-clock hard stop; fits --steps to it")
    ap.add_argument("--fit-after", type=int, default=20, help="steps measured before fitting --steps")
    ap.add_argument("--qat-cost", type=float, default=1.25, help="QAT step time / plain step time")
    ap.add_argument("--reserve-s", type=float, default=60.0, help="seconds kept free before the deadline")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    deadline = parse_deadline(args.deadline) if args.deadline else None
    if deadline is not None:
        print(f"deadline {datetime.datetime.fromtimestamp(deadline, datetime.timezone.utc).isoformat()}, "
              f"{(deadline - time.time()) / 60:.1f} min from now", flush=True)
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
    step_time, step_count, eval_time, n_evals = 0.0, 0, 0.0, 0
    fitted = []

    def fit_steps():
        """Choose args.steps so that the remaining steps and evaluations end before the deadline."""
        sps = step_time / step_count
        ev = eval_time / n_evals if n_evals else 12 * sps
        left = deadline - time.time() - args.reserve_s
        # remaining cost for a total of n steps: plain steps to qat_start, QAT steps after, evals, final eval
        best_n = step
        for n in range(step, step + 20000):
            qs = max(step, int(n * (1 - args.qat_frac)))
            cost = (qs - step) * sps + (n - qs) * sps * args.qat_cost
            cost += ((n // args.eval_every) - (step // args.eval_every) + 1) * ev
            if cost > left:
                break
            best_n = n
        if best_n != args.steps:
            print(f"fit: {sps:.2f} s/step, eval {ev:.0f} s, {left / 60:.1f} min left -> steps {args.steps} -> {best_n}",
                  flush=True)
            fitted.append({"at_step": step, "s_per_step": sps, "steps": best_n})
            args.steps = best_n

    while step < args.steps:
        if deadline is not None and step < qat_start and step < args.steps // 2 and (
                step_count == args.fit_after or (step_count > args.fit_after and step % 50 == 0)):
            fit_steps()
            qat_start = int(args.steps * (1 - args.qat_frac))
        ts = time.time()
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
        if step > start + 3:  # the first steps include warm-up costs
            step_time += time.time() - ts
            step_count += 1
        tr_loss, tr_mtp, tr_idx, tr_n = tr_loss + loss.item(), tr_mtp + mloss.item(), tr_idx + iloss.item(), tr_n + 1
        elapsed = elapsed0 + time.time() - t0
        if step % 10 == 0:
            tps = (step - start) * args.batch * T / (time.time() - t0)
            print(f"step {step} loss {tr_loss / tr_n:.4f} mtp {tr_mtp / tr_n:.4f} idx-kl {tr_idx / tr_n:.4f} "
                  f"lr {lr_at(step - 1, args):.2e}{' qat' if qat else ''} {tps:.0f} tok/s "
                  f"{elapsed / 60:.1f} min", flush=True)
        over_time = elapsed > args.max_minutes * 60
        if deadline is not None and step_count:
            # stop while a final evaluation still fits before the deadline
            ev = eval_time / n_evals if n_evals else 12 * step_time / step_count
            over_time = over_time or time.time() + step_time / step_count * args.qat_cost + ev > deadline
        if step % args.eval_every == 0 or step == args.steps or over_time:
            te = time.time()
            loads = balance.stats()
            balance.reset()
            ev = dl.evaluate(model, mtp, box, windows)
            with dl.QuantSwap(view):
                evq = dl.evaluate(model, mtp, box, windows)
            rec = {"step": step, "train_loss": tr_loss / tr_n, "train_mtp": tr_mtp / tr_n, "idx_kl": tr_idx / tr_n,
                   "valid": ev, "valid_exported": evq, "elapsed_s": elapsed,
                   "max_load": [round(v, 2) for v in loads], "steps_planned": args.steps,
                   "threads": args.threads, "fitted": list(fitted)}
            log.append(rec)
            tr_loss, tr_mtp, tr_idx, tr_n = 0.0, 0.0, 0.0, 0
            print("eval " + json.dumps(rec), flush=True)
            if evq["loss"] < best:
                best = evq["loss"]
                save(best_path, step)
            save(last_path, step)
            eval_time += time.time() - te
            n_evals += 1
        if over_time:
            print(f"time budget of {args.max_minutes} min spent at step {step}; stopping", flush=True)
            break
    with open(os.path.join(args.work, "train_log.json"), "w") as f:
        json.dump(log, f, indent=1)
    print(f"done: step {step}, best held-out loss (exported view, {args.eval_windows} windows) {best:.4f}", flush=True)


if __name__ == "__main__":
    main()
