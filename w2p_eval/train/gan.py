"""The WAV2PIX training loop (also the ``l1_regression`` baseline with ``adversarial: false``).

``train(config, data_dir, out_dir, *, resume, device)`` is the registry's trainer. It writes
RUN/checkpoints/epoch_NNNN.pt (every ``checkpoint_every`` epochs and at the end, atomically),
RUN/losses.jsonl (one line per epoch, every loss term) and RUN/samples/epoch_NNNN.png (faces
for fixed test pairs). Under ``torchrun`` it runs data-parallel (see train/ddp.py); only rank 0
writes. Same seed + same data on CPU -> identical weights: the data order, the wrong-face draws
and dropout are all re-seeded from (seed, epoch, rank) at the start of every epoch, so a resumed
run continues exactly as the uninterrupted one would.

Shape: :func:`train` types the resolved config once (:class:`GanConfig`), builds one
:class:`TrainState` (:func:`_setup`: data, models, optimisers, loader), then runs named steps over
it: :func:`_resume`, :func:`_run_epoch`, :func:`_check_finite`, :func:`_save` and
:func:`_draw_samples`. Values are checked before this module runs, once, by
``train/run.py:resolve_config`` (``validate.check_config_values``) and :func:`check_config`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from w2p_eval.data.audio import SAMPLE_RATE
from w2p_eval.data.dataset import PairDataset
from w2p_eval.data.folder import open_dataset
from w2p_eval.data.images import save_png, tensor_to_uint8
from w2p_eval.data.manifest import manifest_hash
from w2p_eval.errors import InputError, RunFailed
from w2p_eval.models.checkpoint import CKPT_DIR, checkpoint_path, list_checkpoints, load_checkpoint, save_checkpoint
from w2p_eval.models.wav2pix import Discriminator, Wav2Pix, min_audio_samples, n_audio_samples
from w2p_eval.train import ddp
from w2p_eval.train.steps import LOSS_KEYS, GanStep, WrongPool, make_optimizers, wrong_images
from w2p_eval.utils import atomic_path, atomic_write_text, set_threads

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
LOSS_SHOWN = ("d_loss", "g_loss", "g_l1", "g_aux")  # the loss terms on the progress bar


def _epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    return (int(seed) * 1_000_003 + epoch * 7919 + rank * 104_729) % (2**63 - 1)


def check_config(cfg: dict) -> None:
    """This trainer's rule beyond ``validate.check_config_values`` (which :func:`resolve_config` already
    applied: image size, audio length range, epochs, batch size ...): the speech encoder's shortest input.
    Called by ``run_training`` before anything is written; one-line InputError."""
    if n_audio_samples(cfg["audio_seconds"]) < min_audio_samples():
        raise InputError(f"expected audio_seconds >= {min_audio_samples() / SAMPLE_RATE:.3f} (the speech encoder's "
                         f"shortest input), got {cfg['audio_seconds']}")


@dataclass(frozen=True)
class GanConfig:
    """A resolved config, typed once. ``raw`` is the dict saved in checkpoints (DEFAULTS filled in for
    keys a direct caller left out; ``adversarial`` forced off for ``l1_regression``, WAV2PIX's G alone)."""

    raw: dict
    model: str
    image_size: int
    audio_seconds: float
    epochs: int
    batch_size: int
    checkpoint_every: int
    seed: int
    protocol: str
    num_workers: int
    n_samples: int
    adversarial: bool
    threads: int | None

    @classmethod
    def of(cls, config: dict) -> "GanConfig":
        raw = {**DEFAULTS, **config}
        if raw["model"] == "l1_regression":
            raw["adversarial"] = False
        return cls(raw=raw, model=str(raw["model"]), image_size=int(raw["image_size"]),
                   audio_seconds=float(raw["audio_seconds"]), epochs=int(raw["epochs"]),
                   batch_size=int(raw["batch_size"]), checkpoint_every=int(raw["checkpoint_every"]),
                   seed=int(raw["seed"]), protocol=str(raw["protocol"]), num_workers=int(raw["num_workers"]),
                   n_samples=int(raw.get("n_samples") or 0), adversarial=bool(raw["adversarial"]),
                   threads=int(raw["threads"]) if raw.get("threads") else None)

    def checkpoint_due(self, epoch: int) -> bool:
        return epoch % self.checkpoint_every == 0 or epoch == self.epochs


@dataclass
class TrainState:
    """Everything one training run carries from step to step (one per process under torchrun)."""

    cfg: GanConfig
    dist: ddp.Dist
    out_dir: Path
    data: PairDataset
    gen: Wav2Pix
    disc: Discriminator | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer | None
    step: GanStep | None = None
    sampler: torch.utils.data.DistributedSampler | None = None
    loader: torch.utils.data.DataLoader | None = None
    pool: WrongPool | None = None
    samples: dict | None = None  # fixed pairs drawn at each checkpoint (rank 0 only)
    data_hash: str = ""
    start_epoch: int = 0
    written: list[Path] = field(default_factory=list)


def train(config: dict, data_dir: Path, out_dir: Path, *, resume: bool = False, device: str | None = None) -> list[Path]:
    """Train WAV2PIX (or l1_regression) with ``config`` (already resolved and checked) -> checkpoints written."""
    cfg = GanConfig.of(config)
    set_threads(cfg.threads)
    dist = ddp.setup(device)
    try:
        state = _setup(cfg, dist, open_dataset(data_dir), Path(out_dir), resume)
        bar = tqdm(total=(cfg.epochs - state.start_epoch) * len(state.loader), desc="train",
                   disable=not dist.is_main, dynamic_ncols=True, leave=True)
        for epoch in range(state.start_epoch + 1, cfg.epochs + 1):
            row = _run_epoch(state, epoch, bar)
            _check_finite(state, epoch, row, bar)
            bar.set_description(f"epoch {epoch}/{cfg.epochs}")
            if dist.is_main:
                _append_jsonl(state.out_dir / "losses.jsonl", row)
                if cfg.checkpoint_due(epoch):
                    state.written.append(_save(state, epoch, row))
                    _draw_samples(state, epoch)
            dist.barrier()
        bar.close()
        return state.written
    finally:
        dist.teardown()


def _setup(cfg: GanConfig, dist: ddp.Dist, data_dir: Path, out_dir: Path, resume: bool) -> TrainState:
    """Data, models (seeded), optimisers, the resumed weights, the loader: the state before epoch 1."""
    ds = PairDataset(data_dir, "train", cfg.protocol, cfg.image_size, cfg.audio_seconds)
    if len(ds) < 2:
        raise InputError(f"expected at least 2 training pairs ({cfg.protocol} protocol) in {data_dir}, got {len(ds)}")
    torch.manual_seed(_epoch_seed(cfg.seed, 0))
    gen = Wav2Pix(ds.identities, cfg.image_size, cfg.audio_seconds, model_name=cfg.model).to(dist.device).train()
    disc = Discriminator(cfg.image_size).to(dist.device).train() if cfg.adversarial else None
    opt_g, opt_d = make_optimizers(gen, disc, cfg.raw)
    state = TrainState(cfg, dist, out_dir, ds, gen, disc, opt_g, opt_d)
    if resume:
        _resume(state)
    if dist.is_main:
        _trim_losses(out_dir / "losses.jsonl", state.start_epoch)
        (out_dir / "samples").mkdir(parents=True, exist_ok=True)
    state.step = GanStep(dist.wrap(gen), dist.wrap(disc) if disc is not None else None, opt_g, opt_d, cfg.raw)
    state.sampler = torch.utils.data.DistributedSampler(ds, num_replicas=dist.world_size, rank=dist.rank,
                                                        shuffle=True, seed=cfg.seed)
    per_rank = max(2, cfg.batch_size // dist.world_size)
    state.loader = torch.utils.data.DataLoader(ds, batch_size=per_rank, sampler=state.sampler,
                                               num_workers=cfg.num_workers, drop_last=False)
    state.pool = WrongPool(ds)
    state.samples = _sample_batch(data_dir, cfg, ds) if dist.is_main else None
    state.data_hash = manifest_hash(data_dir)
    return state


def _resume(state: TrainState) -> None:
    """Load weights and optimiser states of the run's newest loadable checkpoint (if any) into ``state``."""
    ckpt = _last_checkpoint(state.out_dir)
    if ckpt is None:
        log.info("--resume: no complete checkpoint in %s, starting from scratch", state.out_dir)
        return
    if ckpt["identities"] != state.data.identities:
        raise InputError(f"cannot resume: {ckpt['path']} has {len(ckpt['identities'])} identities, "
                         f"the dataset has {len(state.data.identities)}")
    state.gen.load_state_dict(ckpt["state"]["generator"])
    state.opt_g.load_state_dict(ckpt["optim"]["generator"])
    if state.disc is not None:
        state.disc.load_state_dict(ckpt["state"]["discriminator"])
        state.opt_d.load_state_dict(ckpt["optim"]["discriminator"])
    state.start_epoch = int(ckpt["epoch"])
    log.info("resuming from %s (epoch %d)", ckpt["path"], state.start_epoch)


def _run_epoch(state: TrainState, epoch: int, bar) -> dict:
    """One pass over this process's share of the data (re-seeded from (seed, epoch, rank)).

    Returns the epoch's row for losses.jsonl: each loss term's mean over all processes, ``epoch``,
    ``pairs`` (all processes) and ``seconds``.
    """
    cfg, dist, device = state.cfg, state.dist, state.dist.device
    t0 = time.time()
    state.sampler.set_epoch(epoch)
    torch.manual_seed(_epoch_seed(cfg.seed, epoch, dist.rank))
    rng = torch.Generator().manual_seed(_epoch_seed(cfg.seed, epoch, dist.rank) + 1)
    sums, counts, n_pairs = dict.fromkeys(LOSS_KEYS, 0.0), dict.fromkeys(LOSS_KEYS, 0), 0
    for batch in state.loader:
        if batch["audio"].shape[0] < 2:  # BatchNorm needs 2+ rows
            bar.update(1)
            continue
        audio = batch["audio"].to(device, non_blocking=True)   # float32 [B, 1, T]
        real = batch["image"].to(device, non_blocking=True)    # float32 [B, 3, S, S] in [-1, 1]
        labels = batch["label"].to(device, non_blocking=True)  # int64 [B]
        wrong = wrong_images(real, labels, rng, state.pool) if state.step.adversarial else None
        logs = state.step(audio, real, labels, wrong)
        for k, v in logs.items():
            sums[k] += v * len(labels)
            counts[k] += len(labels)
        n_pairs += len(labels)
        bar.update(1)
        bar.set_postfix({k: f"{logs[k]:.3f}" for k in LOSS_SHOWN if k in logs}, refresh=False)
    row = dist.reduce_means(sums, counts)
    row.update(epoch=epoch, pairs=dist.sum_int(n_pairs), seconds=round(time.time() - t0, 3))
    return row


def _check_finite(state: TrainState, epoch: int, row: dict, bar) -> None:
    """A non-finite loss ends the run (RunFailed) naming the terms and the last complete checkpoint."""
    bad = sorted(k for k, v in row.items() if not math.isfinite(v))
    if not bad:
        return
    bar.close()
    try:
        last = list_checkpoints(state.out_dir)[-1]
    except InputError:
        last = None
    raise RunFailed(f"training diverged at epoch {epoch}: non-finite {', '.join(bad)}; last complete "
                    f"checkpoint: {last or 'none'} (lower lr_g/lr_d, or continue from it with --resume)")


def _save(state: TrainState, epoch: int, row: dict) -> Path:
    """RUN/checkpoints/epoch_NNNN.pt: weights and optimiser states of G (and D), the config, the losses."""
    weights, optim = {"generator": state.gen.state_dict()}, {"generator": state.opt_g.state_dict()}
    if state.disc is not None:
        weights["discriminator"] = state.disc.state_dict()
        optim["discriminator"] = state.opt_d.state_dict()
    cfg = state.cfg
    return save_checkpoint(
        checkpoint_path(state.out_dir, epoch), model=cfg.model, epoch=epoch, config=cfg.raw,
        identities=state.data.identities, image_size=cfg.image_size, audio_seconds=cfg.audio_seconds,
        state=weights, optim=optim, data_hash=state.data_hash,
        extra={"losses": row, "world_size": state.dist.world_size},
    )


def _draw_samples(state: TrainState, epoch: int) -> None:
    """RUN/samples/epoch_NNNN.png: the fixed pairs' generated faces (and real.png once)."""
    if state.samples is None:
        return
    folder = state.out_dir / "samples"
    state.gen.eval()
    save_grid(folder / f"epoch_{epoch:04d}.png", state.gen.generate(state.samples))
    state.gen.train()
    if not (folder / "real.png").exists():
        save_grid(folder / "real.png", (state.samples["image"] + 1) / 2)


def _last_checkpoint(out_dir: Path) -> dict | None:
    """The newest checkpoint of the run that loads, or None (stale temp files are removed)."""
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


def _sample_batch(data_dir: Path, cfg: GanConfig, train_ds: PairDataset) -> dict | None:
    """Fixed pairs to draw at each checkpoint, spread over the test split (train split if empty):
    {"audio": float32 [N, 1, T], "image": float32 [N, 3, S, S] in [-1, 1]}, or None."""
    if cfg.n_samples <= 0:
        return None
    test = PairDataset(data_dir, "test", cfg.protocol, cfg.image_size, cfg.audio_seconds, cache=False)
    ds = test if len(test) else train_ds
    if not len(ds):
        return None
    idx = np.linspace(0, len(ds) - 1, num=min(cfg.n_samples, len(ds))).round().astype(int)
    items = [ds[int(i)] for i in idx]
    return {"audio": torch.stack([it["audio"] for it in items]), "image": torch.stack([it["image"] for it in items])}


def save_grid(path: Path, faces: torch.Tensor, ncol: int | None = None) -> None:
    """faces float [N, 3, S, S] in [0, 1] -> one PNG grid (atomic)."""
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
