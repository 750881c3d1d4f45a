"""The WAV2PIX training loop (also the ``l1_regression`` baseline with ``adversarial: false``).

``train(config, data_dir, out_dir, *, resume, device)`` is the registry's trainer. It writes
RUN/checkpoints/epoch_NNNN.pt (every ``checkpoint_every`` epochs and at the end, atomically),
RUN/losses.jsonl (one line per epoch, every loss term) and RUN/samples/epoch_NNNN.png (faces
for fixed test pairs). Under ``torchrun`` it runs data-parallel (see train/ddp.py); only rank 0
writes. Same seed + same data on CPU -> identical weights: the data order, the wrong-face draws
and dropout are all re-seeded from (seed, epoch, rank) at the start of every epoch, so a resumed
run continues exactly as the uninterrupted one would.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from w2p_eval.data.audio import SAMPLE_RATE
from w2p_eval.errors import InputError, RunFailed
from w2p_eval.train import ddp
from w2p_eval.train.steps import LOSS_KEYS, GanStep, WrongPool, make_optimizers, wrong_images

log = logging.getLogger(__name__)

# The reference settings (../shared/docs/wav2pix-reference.md); YAML and CLI values override them.
DEFAULTS: dict = {
    "model": "wav2pix",
    "image_size": 64,
    "audio_seconds": 1.0,
    "epochs": 200,
    "batch_size": 64,          # global batch, split across torchrun processes
    "lr_g": 1.0e-4,
    "lr_d": 4.0e-4,
    "betas": [0.5, 0.999],
    "real_label": 0.9,
    "adv_weight": 1.0,
    "feature_weight": 100.0,
    "l1_weight": 50.0,
    "aux_weight": 20.0,
    "adversarial": True,
    "checkpoint_every": 10,
    "protocol": "seen",
    "seed": 0,
    "num_workers": 0,
    "threads": None,
    "n_samples": 8,            # faces drawn into RUN/samples/ at each checkpoint
}


def _epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    return (int(seed) * 1_000_003 + epoch * 7919 + rank * 104_729) % (2**63 - 1)


def check_config(cfg: dict) -> None:
    """Validate a resolved config (called before anything is written); one-line InputError."""
    if int(cfg["image_size"]) not in (64, 128):
        raise InputError(f"expected image_size 64 or 128, got {cfg['image_size']}")
    for key in ("epochs", "batch_size", "checkpoint_every"):
        if int(cfg[key]) < 1:
            raise InputError(f"expected {key} >= 1, got {cfg[key]}")
    if not 0 < float(cfg["audio_seconds"]) <= 10:
        raise InputError(f"expected audio_seconds in (0, 10], got {cfg['audio_seconds']}")
    from w2p_eval.models.wav2pix import min_audio_samples, n_audio_samples

    if n_audio_samples(cfg["audio_seconds"]) < min_audio_samples():
        raise InputError(f"expected audio_seconds >= {min_audio_samples() / SAMPLE_RATE:.3f} (the speech encoder's "
                         f"shortest input), got {cfg['audio_seconds']}")


def _build(cfg: dict, identities: list[str], device: str):
    from w2p_eval.models.wav2pix import Discriminator, Wav2Pix

    gen = Wav2Pix(identities, int(cfg["image_size"]), float(cfg["audio_seconds"]), model_name=cfg["model"])
    disc = Discriminator(int(cfg["image_size"])) if cfg["adversarial"] else None
    gen.to(device).train()
    if disc is not None:
        disc.to(device).train()
    return gen, disc


def _last_checkpoint(out_dir: Path) -> dict | None:
    """The newest checkpoint of the run that loads, or None (stale temp files are removed)."""
    from w2p_eval.models.checkpoint import CKPT_DIR, list_checkpoints, load_checkpoint

    folder = out_dir / CKPT_DIR
    if not folder.is_dir():
        return None
    for stale in folder.glob(".epoch_*"):
        stale.unlink(missing_ok=True)
    try:
        paths = list_checkpoints(folder)
    except InputError:
        return None
    for path in reversed(paths):
        try:
            return load_checkpoint(path)
        except InputError as exc:
            log.warning("skipping unloadable checkpoint: %s", exc)
    return None


def _trim_losses(path: Path, last_epoch: int) -> None:
    """Drop loss lines of epochs after the checkpoint we resume from (they will be redone)."""
    from w2p_eval.utils import atomic_write_text

    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["epoch"] <= last_epoch:
                keep.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a half-written last line from a killed run
    atomic_write_text(path, "".join(k + "\n" for k in keep))


def _append_jsonl(path: Path, row: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(row, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _sample_batch(data_dir: Path, cfg: dict, train_ds) -> dict | None:
    """Fixed pairs to draw at each checkpoint: spread over the test split (train split if empty)."""
    from w2p_eval.data.dataset import PairDataset

    n = int(cfg.get("n_samples") or 0)
    if n <= 0:
        return None
    test = PairDataset(data_dir, "test", cfg["protocol"], int(cfg["image_size"]), float(cfg["audio_seconds"]),
                       cache=False)
    ds = test if len(test) else train_ds
    if not len(ds):
        return None
    idx = np.linspace(0, len(ds) - 1, num=min(n, len(ds))).round().astype(int)
    items = [ds[int(i)] for i in idx]
    return {"audio": torch.stack([it["audio"] for it in items]), "image": torch.stack([it["image"] for it in items])}


def save_grid(path: Path, faces: torch.Tensor, ncol: int | None = None) -> None:
    """faces float [N, 3, S, S] in [0, 1] -> one PNG grid (atomic)."""
    from w2p_eval.data.images import save_png, tensor_to_uint8
    from w2p_eval.utils import atomic_path

    imgs = tensor_to_uint8(faces)
    n, s = imgs.shape[0], imgs.shape[1]
    ncol = ncol or n
    nrow = math.ceil(n / ncol)
    grid = np.full((nrow * s, ncol * s, 3), 255, np.uint8)
    for i, img in enumerate(imgs):
        r, c = divmod(i, ncol)
        grid[r * s:(r + 1) * s, c * s:(c + 1) * s] = img
    with atomic_path(path) as tmp:
        save_png(tmp, grid)


def train(config: dict, data_dir: Path, out_dir: Path, *, resume: bool = False, device: str | None = None) -> list[Path]:
    """Train WAV2PIX (or l1_regression) with ``config`` (already resolved) -> checkpoints written."""
    from tqdm import tqdm

    from w2p_eval.data.dataset import PairDataset
    from w2p_eval.data.manifest import manifest_hash
    from w2p_eval.models.checkpoint import checkpoint_path, list_checkpoints, save_checkpoint
    from w2p_eval.utils import set_threads

    cfg = {**DEFAULTS, **config}
    if cfg["model"] == "l1_regression":
        cfg["adversarial"] = False  # the baseline is WAV2PIX's G trained without D
    check_config(cfg)
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    set_threads(cfg.get("threads"))
    dist = ddp.setup(device)
    device = dist.device
    try:
        ds = PairDataset(data_dir, "train", cfg["protocol"], int(cfg["image_size"]), float(cfg["audio_seconds"]))
        if len(ds) < 2:
            raise InputError(f"expected at least 2 training pairs ({cfg['protocol']} protocol) in {data_dir}, got {len(ds)}")
        per_rank = max(2, int(cfg["batch_size"]) // dist.world_size)
        torch.manual_seed(_epoch_seed(cfg["seed"], 0))
        gen, disc = _build(cfg, ds.identities, device)
        opt_g, opt_d = make_optimizers(gen, disc, cfg)
        start_epoch, written = 0, []
        if resume:
            ckpt = _last_checkpoint(out_dir)
            if ckpt is not None:
                if ckpt["identities"] != ds.identities:
                    raise InputError(f"cannot resume: {ckpt['path']} has {len(ckpt['identities'])} identities, "
                                     f"the dataset has {len(ds.identities)}")
                gen.load_state_dict(ckpt["state"]["generator"])
                opt_g.load_state_dict(ckpt["optim"]["generator"])
                if disc is not None:
                    disc.load_state_dict(ckpt["state"]["discriminator"])
                    opt_d.load_state_dict(ckpt["optim"]["discriminator"])
                start_epoch = int(ckpt["epoch"])
                log.info("resuming from %s (epoch %d)", ckpt["path"], start_epoch)
            else:
                log.info("--resume: no complete checkpoint in %s, starting from scratch", out_dir)
        if dist.is_main:
            _trim_losses(out_dir / "losses.jsonl", start_epoch)
            (out_dir / "samples").mkdir(parents=True, exist_ok=True)
        g_model, d_model = dist.wrap(gen), dist.wrap(disc) if disc is not None else None
        step = GanStep(g_model, d_model, opt_g, opt_d, cfg)
        sampler = torch.utils.data.DistributedSampler(
            ds, num_replicas=dist.world_size, rank=dist.rank, shuffle=True, seed=int(cfg["seed"]))
        loader = torch.utils.data.DataLoader(ds, batch_size=per_rank, sampler=sampler,
                                             num_workers=int(cfg["num_workers"]), drop_last=False)
        pool = WrongPool(ds)
        samples = _sample_batch(data_dir, cfg, ds) if dist.is_main else None
        data_hash = manifest_hash(data_dir)
        epochs = int(cfg["epochs"])
        bar = tqdm(total=(epochs - start_epoch) * len(loader), desc="train", disable=not dist.is_main,
                   dynamic_ncols=True, leave=True)
        for epoch in range(start_epoch + 1, epochs + 1):
            t0 = time.time()
            sampler.set_epoch(epoch)
            torch.manual_seed(_epoch_seed(cfg["seed"], epoch, dist.rank))
            rng = torch.Generator().manual_seed(_epoch_seed(cfg["seed"], epoch, dist.rank) + 1)
            sums = dict.fromkeys(LOSS_KEYS, 0.0)
            counts = dict.fromkeys(LOSS_KEYS, 0)
            n_pairs = 0
            for batch in loader:
                if batch["audio"].shape[0] < 2:  # BatchNorm needs 2+ rows
                    bar.update(1)
                    continue
                audio = batch["audio"].to(device, non_blocking=True)
                real = batch["image"].to(device, non_blocking=True)
                labels = batch["label"].to(device, non_blocking=True)
                wrong = wrong_images(real, labels, rng, pool) if step.adversarial else None
                logs = step(audio, real, labels, wrong)
                for k, v in logs.items():
                    sums[k] += v * len(labels)
                    counts[k] += len(labels)
                n_pairs += len(labels)
                bar.update(1)
                bar.set_postfix({k: f"{logs[k]:.3f}" for k in ("d_loss", "g_loss", "g_l1", "g_aux") if k in logs},
                                refresh=False)
            row = dist.reduce_means(sums, counts)
            bad = sorted(k for k, v in row.items() if not math.isfinite(v))
            if bad:
                bar.close()
                try:
                    last = list_checkpoints(out_dir)[-1]
                except InputError:
                    last = None
                raise RunFailed(f"training diverged at epoch {epoch}: non-finite {', '.join(bad)}; last complete "
                                f"checkpoint: {last or 'none'} (lower lr_g/lr_d, or continue from it with --resume)")
            row.update(epoch=epoch, pairs=dist.sum_int(n_pairs), seconds=round(time.time() - t0, 3))
            bar.set_description(f"epoch {epoch}/{epochs}")
            if dist.is_main:
                _append_jsonl(out_dir / "losses.jsonl", row)
                if epoch % int(cfg["checkpoint_every"]) == 0 or epoch == epochs:
                    state = {"generator": gen.state_dict()}
                    optim = {"generator": opt_g.state_dict()}
                    if disc is not None:
                        state["discriminator"] = disc.state_dict()
                        optim["discriminator"] = opt_d.state_dict()
                    path = save_checkpoint(
                        checkpoint_path(out_dir, epoch), model=cfg["model"], epoch=epoch, config=cfg,
                        identities=ds.identities, image_size=int(cfg["image_size"]),
                        audio_seconds=float(cfg["audio_seconds"]), state=state, optim=optim, data_hash=data_hash,
                        extra={"losses": row, "world_size": dist.world_size},
                    )
                    written.append(path)
                    if samples is not None:
                        gen.eval()
                        save_grid(out_dir / "samples" / f"epoch_{epoch:04d}.png", gen.generate(samples))
                        gen.train()
                        if not (out_dir / "samples" / "real.png").exists():
                            save_grid(out_dir / "samples" / "real.png", (samples["image"] + 1) / 2)
            dist.barrier()
        bar.close()
        return written
    finally:
        dist.teardown()
