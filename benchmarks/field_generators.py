"""Training speed (pairs/s) of the field's generators beside WAV2PIX, measured in one run on the same batches.

One full training iteration of each, as ``w2p-eval train`` runs it (forward, losses, every optimiser step):

- wav2pix: ``train.steps.GanStep`` (G, D with wrong faces), the reference losses;
- voice2face stage 2 (the GAN; stage 1, the speaker-classifier pretraining of the voice embedding, is
  cheaper and shown as ``voice2face_embed``): e frozen, g, f + d + c;
- sf2f stage 1 with its perceptual loss through the ``emotion`` teacher, and without it (``sf2f_noteacher``);
  ``sf2f_fuser``: stage 2 (segments through the encoder, the fuser alone trained); ``sf2f_128``: 64 + 128 px.

Usage:  python benchmarks/field_generators.py [--device cpu|cuda] [--batch-size 16] [--iters 3] [--warmup 1]
        [--threads N] [--only NAME,...] [--json OUT.json]
Prints pairs/s per model and the ratio to WAV2PIX's (> 1 = faster than WAV2PIX).
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
from w2p_eval.train import sf2f as train_sf2f  # noqa: E402
from w2p_eval.train import voice2face as train_v2f  # noqa: E402
from w2p_eval.train.steps import GanStep, make_optimizers, wrong_images  # noqa: E402

N_IDS = 10


class _Ids:
    identities = [f"id{k}" for k in range(N_IDS)]


def _batch(n: int, size: int, device: str) -> dict:
    g = torch.Generator().manual_seed(0)
    audio = torch.randn(n, 1, 16000, generator=g)
    return {"audio": (audio / audio.abs().amax(dim=-1, keepdim=True)).to(device),
            "image": (torch.rand(n, 3, size, size, generator=g) * 2 - 1).to(device),
            "label": (torch.arange(n) % N_IDS).to(device)}


def _wav2pix(device: str):
    gen = Wav2Pix(_Ids.identities).to(device).train()
    disc = Discriminator().to(device).train()
    cfg = {"lr_g": 1e-4, "lr_d": 4e-4, "betas": (0.5, 0.999)}
    step = GanStep(gen, disc, *make_optimizers(gen, disc, cfg), cfg)
    rng = torch.Generator().manual_seed(1)
    return lambda b: step(b["audio"], b["image"], b["label"], wrong_images(b["image"], b["label"], rng))


def _field(module, overrides: dict, epoch: int, device: str):
    cfg = {**module.DEFAULTS, **overrides}
    models = module.build(cfg, _Ids, device)
    return lambda b: models.step(models, epoch, b, None)


CASES = {
    "wav2pix": (64, _wav2pix),
    "voice2face": (64, lambda d: _field(train_v2f, {"embed_epochs": 1}, 2, d)),
    "voice2face_embed": (64, lambda d: _field(train_v2f, {"embed_epochs": 1}, 1, d)),
    "sf2f": (64, lambda d: _field(train_sf2f, {"epochs": 1}, 1, d)),
    "sf2f_noteacher": (64, lambda d: _field(train_sf2f, {"epochs": 1, "teacher": "none"}, 1, d)),
    "sf2f_fuser": (64, lambda d: _field(train_sf2f, {"epochs": 1}, 2, d)),
    "sf2f_128": (128, lambda d: _field(train_sf2f, {"epochs": 1, "image_size": 128, "l1_weight": 100.0}, 1, d)),
}


def measure(name: str, device: str, batch_size: int, iters: int, warmup: int) -> float:
    """Pairs per second of ``iters`` iterations of ``name`` after ``warmup`` untimed ones."""
    size, make = CASES[name]
    torch.manual_seed(0)
    step, batch = make(device), _batch(batch_size, size, device)
    for _ in range(warmup):
        step(batch)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        step(batch)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return iters * batch_size / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--only", default=",".join(CASES))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = ["wav2pix", *[n for n in args.only.split(",") if n and n != "wav2pix"]]
    rates = {n: measure(n, args.device, args.batch_size, args.iters, args.warmup) for n in names}
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"device {args.device} ({where}), torch threads {torch.get_num_threads()}, batch {args.batch_size}, "
          f"{args.iters} timed iterations after {args.warmup} warm-up")
    for n, r in rates.items():
        print(f"{n:18s} {r:8.2f} pairs/s   x{r / rates['wav2pix']:.2f} of wav2pix")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": args.device, "batch_size": args.batch_size,
                                               "threads": torch.get_num_threads(), "pairs_per_s": rates}, indent=1))


if __name__ == "__main__":
    main()
