"""Figures of a WAV2PIX run: samples_grid.png (real faces, then the same test pairs at several epochs)
and loss_curve.png (every loss term per epoch, from RUN/losses.jsonl).

Usage: python reports/training/make_figures.py RUN [--out reports/training] [--epochs 1 2 5 10 20 40 60 80 100]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def sample_grid(run: Path, out: Path, epochs: list[int] | None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    samples = run / "samples"
    avail = sorted(int(p.stem.split("_")[1]) for p in samples.glob("epoch_*.png"))
    epochs = [e for e in (epochs or avail) if e in avail]
    rows = [("real", samples / "real.png")] + [(f"epoch {e}", samples / f"epoch_{e:04d}.png") for e in epochs]
    imgs = [np.asarray(Image.open(p).convert("RGB")) for _, p in rows]
    fig, axes = plt.subplots(len(rows), 1, figsize=(8, 1.05 * len(rows)), dpi=100)
    for ax, (label, _), img in zip(np.atleast_1d(axes), rows, imgs):
        ax.imshow(img)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle("WAV2PIX 64 px, fixed test pairs (eval mode)", fontsize=10)
    fig.tight_layout()
    path = out / "samples_grid.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def loss_curve(run: Path, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in (run / "losses.jsonl").read_text().splitlines() if line.strip()]
    ep = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), dpi=100)
    for k in ("d_loss", "d_real", "d_wrong", "d_fake"):
        axes[0].plot(ep, [r[k] for r in rows], label=k)
    axes[0].set_title("discriminator (LSGAN)")
    axes[0].set_yscale("log")
    for k, w in (("g_adv", 1), ("g_feat", 100), ("g_l1", 50), ("g_aux", 20)):
        axes[1].plot(ep, [w * r[k] for r in rows], label=f"{w} x {k}" if w != 1 else k)
    axes[1].plot(ep, [r["g_loss"] for r in rows], "k", lw=1, label="g_loss")
    axes[1].set_title("generator terms (weighted)")
    axes[1].set_yscale("log")
    for k in ("score_real", "score_wrong", "score_fake"):
        axes[2].plot(ep, [r[k] for r in rows], label=k)
    axes[2].set_title("mean D score (targets 0.9 / 0 / 0)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out / "loss_curve.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--epochs", type=int, nargs="*", default=None)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    print(sample_grid(args.run, args.out, args.epochs))
    print(loss_curve(args.run, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
