"""Pairs/second of one full WAV2PIX training iteration: the efficient loop vs the original structure.

Both loops compute the reference losses and update D then G with Adam, on the same models and
batches (batch 64 by default, 10 identities, 1 s audio):

- reference: what the authors' trainer does per iteration: G forward + D on fake, real, wrong
  (3 separate D forwards), D loss back-propagated through G as well (nothing detached), D step;
  then a second G forward and two more D forwards (fake, real), G step.  2 G + 5 D forwards.
- efficient (w2p_eval.train.steps.GanStep, used by `w2p-eval train`): 1 G forward, one batched D
  forward on real+fake+wrong with the fake detached, real features reused, D frozen (no weight
  gradients) for the G step's single D forward on the fakes.  1 G + 2 D forwards.

Usage:  python benchmarks/train_step.py [--device cpu|cuda|all] [--sizes 64 128] [--batch-size 64]
        [--iters 5] [--warmup 2] [--threads N] [--json OUT.json]
Prints one line per (device, size) and the throughput ratio efficient/reference.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from w2p_eval.models.wav2pix import Discriminator, Wav2Pix  # noqa: E402
from w2p_eval.train.steps import GanStep, ReferenceStep, make_optimizers, wrong_images  # noqa: E402

CFG = {"lr_g": 1e-4, "lr_d": 4e-4, "betas": (0.5, 0.999), "real_label": 0.9, "adv_weight": 1.0,
       "feature_weight": 100.0, "l1_weight": 50.0, "aux_weight": 20.0, "adversarial": True}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def make_batch(batch: int, size: int, n_ids: int, device: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    audio = torch.randn(batch, 1, 16000, generator=g)
    audio = audio / audio.abs().amax(dim=-1, keepdim=True)
    images = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    labels = torch.randint(n_ids, (batch,), generator=g)
    labels[:2] = torch.tensor([0, 1])  # at least two identities in the batch
    return audio.to(device), images.to(device), labels.to(device)


def time_loop(kind: str, size: int, batch: int, device: str, iters: int, warmup: int, n_ids: int = 10) -> float:
    """Seconds per iteration (mean over ``iters`` after ``warmup``)."""
    torch.manual_seed(0)
    ids = [f"id{i}" for i in range(n_ids)]
    gen = Wav2Pix(ids, size, 1.0).to(device).train()
    disc = Discriminator(size).to(device).train()
    opt_g, opt_d = make_optimizers(gen, disc, CFG)
    audio, real, labels = make_batch(batch, size, n_ids, device)
    rng = torch.Generator().manual_seed(1)
    if kind == "reference":
        step = ReferenceStep(gen, disc, opt_g, opt_d, CFG)
        wrong = wrong_images(real, labels, rng)  # the original's data loader hands these over
        run = lambda: step(audio, real, labels, wrong)  # noqa: E731
    else:
        step = GanStep(gen, disc, opt_g, opt_d, CFG)
        run = lambda: step(audio, real, labels, wrong_images(real, labels, rng))  # noqa: E731
    for _ in range(warmup):
        run()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        out = run()
    _sync(device)
    dt = (time.perf_counter() - t0) / iters
    assert all(v == v for v in out.values()), f"NaN loss in {kind} loop"
    return dt


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} torch threads"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="all", help="cpu, cuda, or all (cpu + cuda when present)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--cpu-iters", type=int, default=None, help="iterations on CPU (default: --iters)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if not d.startswith("cuda") or torch.cuda.is_available()]
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
    rows = []
    for device in devices:
        iters = args.cpu_iters if (device == "cpu" and args.cpu_iters) else args.iters
        warmup = min(args.warmup, 1) if device == "cpu" else args.warmup
        for size in args.sizes:
            t_ref = time_loop("reference", size, args.batch_size, device, iters, warmup)
            t_eff = time_loop("efficient", size, args.batch_size, device, iters, warmup)
            row = {"device": device, "device_name": device_name(device), "image_size": size,
                   "batch_size": args.batch_size, "iters": iters,
                   "reference_pairs_per_s": args.batch_size / t_ref, "efficient_pairs_per_s": args.batch_size / t_eff,
                   "ratio": t_ref / t_eff, "torch": torch.__version__}
            rows.append(row)
            print(f"{device:5s} {size:4d}px batch {args.batch_size}: reference {row['reference_pairs_per_s']:8.1f} "
                  f"pairs/s  efficient {row['efficient_pairs_per_s']:8.1f} pairs/s  ratio {row['ratio']:.2f}x  "
                  f"({row['device_name']})", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
