"""The training loop of the field's generators (voice2face, SF2F): one loop, each model's steps its own.

``run(cfg, data_dir, out_dir, resume=, device=, build=)`` is what ``train/voice2face.py`` and
``train/sf2f.py`` call. It keeps the WAV2PIX trainer's contract (``train/gan.py``): RUN/checkpoints/
epoch_NNNN.pt in the same format (``state``: ``generator`` = the FaceGenerator's weights, ``critic`` =
the discriminators'; ``optim``: one state per optimiser), RUN/losses.jsonl (one line per epoch),
RUN/samples/; the data order and every random draw re-seeded from (seed, epoch, rank), so the same
seed gives the same weights on CPU and ``--resume`` continues exactly as the uninterrupted run would.

Under torchrun each process takes its share of every epoch and the gradients of each optimiser step
are averaged over the processes before the step (:meth:`FieldModels.sync_grads`), which is what
DistributedDataParallel does, without its rule that every parameter takes part in every backward pass
(the stages of these models each train a part). BatchNorm statistics stay per process; rank 0's are saved.

A model's ``build(cfg, ds, device) -> FieldModels`` names its networks, optimisers and its
``step(models, epoch, batch, rng) -> {loss name: float}`` (an epoch's stage is the step's to choose).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as tdist
from tqdm import tqdm

from w2p_eval.data.dataset import PairDataset
from w2p_eval.data.folder import open_dataset
from w2p_eval.data.manifest import manifest_hash
from w2p_eval.errors import InputError
from w2p_eval.models.base import FaceGenerator
from w2p_eval.models.checkpoint import checkpoint_path, save_checkpoint
from w2p_eval.train import ddp
from w2p_eval.train.gan import (_append_jsonl, _check_finite, _epoch_seed, _last_checkpoint,
                                _sample_batch, _trim_losses, save_grid)
from w2p_eval.utils import set_threads

log = logging.getLogger(__name__)

# Keys every field trainer reads (its DEFAULTS add the model's own).
COMMON_DEFAULTS: dict = {
    "image_size": 64,
    "audio_seconds": 1.0,
    "epochs": 200,
    "batch_size": 64,
    "checkpoint_every": 10,
    "protocol": "seen",
    "seed": 0,
    "num_workers": 0,
    "threads": None,
    "n_samples": 8,
    "hflip": True,           # random horizontal flips of the real faces (a model's DEFAULTS say its original's)
}


@dataclass
class FieldModels:
    """The networks and optimisers of one run, and the model's training step."""

    gen: FaceGenerator
    critic: torch.nn.Module | None
    optims: dict[str, torch.optim.Optimizer]
    step: Callable
    total_epochs: int
    cfg: dict = field(default_factory=dict)  # the resolved config (the step's loss weights)
    dist: ddp.Dist | None = None
    extra: dict = field(default_factory=dict)  # saved in the checkpoint's ``extra`` (e.g. SF2F's "fused")
    teachers: tuple[str, ...] = ()  # networks the losses were computed with (recorded in checkpoint meta)
    teacher: torch.nn.Module | None = None  # the perceptual loss's network (SF2F), when used

    def sync_grads(self, opt: torch.optim.Optimizer) -> None:
        """Average ``opt``'s gradients over the torchrun processes (no-op when alone)."""
        if self.dist is None or not self.dist.active:
            return
        for group in opt.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                tdist.all_reduce(p.grad)
                p.grad /= self.dist.world_size

    def update(self, name: str, loss: torch.Tensor) -> None:
        """zero_grad, backward, gradient sync, step of optimiser ``name``."""
        opt = self.optims[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        self.sync_grads(opt)
        opt.step()


def adam(params, lr: float, betas) -> torch.optim.Adam:
    """Adam over the trainable ones of ``params`` (both originals use Adam throughout)."""
    return torch.optim.Adam([p for p in params if p.requires_grad], lr=float(lr), betas=tuple(float(b) for b in betas))


def run(config: dict, data_dir, out_dir, *, resume: bool, device: str | None,
        build: Callable[[dict, PairDataset, str], FieldModels]) -> list[Path]:
    """Train with ``config`` (resolved and checked) -> the checkpoints written (rank 0)."""
    cfg = _Cfg.of(config)
    set_threads(cfg.threads)
    dist = ddp.setup(device)
    try:
        data_dir = open_dataset(data_dir)
        out_dir = Path(out_dir)
        ds = PairDataset(data_dir, "train", cfg.protocol, cfg.image_size, cfg.audio_seconds)
        if len(ds) < 2:
            raise InputError(f"expected at least 2 training pairs ({cfg.protocol} protocol) in {data_dir}, "
                             f"got {len(ds)}")
        torch.manual_seed(_epoch_seed(cfg.seed, 0))
        models = build(cfg.raw, ds, dist.device)
        models.dist = dist
        start = _resume(models, out_dir, ds) if resume else 0
        if dist.is_main:
            _trim_losses(out_dir / "losses.jsonl", start)
            (out_dir / "samples").mkdir(parents=True, exist_ok=True)
        sampler = torch.utils.data.DistributedSampler(ds, num_replicas=dist.world_size, rank=dist.rank,
                                                      shuffle=True, seed=cfg.seed)
        loader = torch.utils.data.DataLoader(ds, batch_size=max(2, cfg.batch_size // dist.world_size),
                                             sampler=sampler, num_workers=cfg.num_workers)
        samples = _sample_batch(data_dir, cfg, ds) if dist.is_main else None
        data_hash, written = manifest_hash(data_dir), []
        bar = tqdm(total=(models.total_epochs - start) * len(loader), desc="train", disable=not dist.is_main,
                   dynamic_ncols=True, leave=True)
        for epoch in range(start + 1, models.total_epochs + 1):
            row = _run_epoch(models, cfg, dist, loader, sampler, epoch, bar)
            _check_finite(_Where(out_dir), epoch, row, bar)
            bar.set_description(f"epoch {epoch}/{models.total_epochs}")
            if dist.is_main:
                _append_jsonl(out_dir / "losses.jsonl", row)
                if epoch % cfg.checkpoint_every == 0 or epoch == models.total_epochs:
                    written.append(_save(models, cfg, ds, out_dir, epoch, row, data_hash))
                    if samples is not None:
                        save_grid(out_dir / "samples" / f"epoch_{epoch:04d}.png", models.gen.generate(samples))
                        if not (out_dir / "samples" / "real.png").exists():
                            save_grid(out_dir / "samples" / "real.png", (samples["image"] + 1) / 2)
            dist.barrier()
        bar.close()
        return written
    finally:
        dist.teardown()


@dataclass(frozen=True)
class _Cfg:
    """The keys the loop reads, typed once (``raw``: the dict saved in checkpoints)."""

    raw: dict
    model: str
    image_size: int
    audio_seconds: float
    batch_size: int
    checkpoint_every: int
    seed: int
    protocol: str
    num_workers: int
    n_samples: int
    threads: int | None
    hflip: bool

    @classmethod
    def of(cls, config: dict) -> "_Cfg":
        raw = {**COMMON_DEFAULTS, **config}
        return cls(raw=raw, model=str(raw["model"]), image_size=int(raw["image_size"]),
                   audio_seconds=float(raw["audio_seconds"]), batch_size=int(raw["batch_size"]),
                   checkpoint_every=int(raw["checkpoint_every"]), seed=int(raw["seed"]),
                   protocol=str(raw["protocol"]), num_workers=int(raw["num_workers"]),
                   n_samples=int(raw.get("n_samples") or 0),
                   threads=int(raw["threads"]) if raw.get("threads") else None, hflip=bool(raw["hflip"]))


@dataclass
class _Where:
    out_dir: Path


def _run_epoch(models: FieldModels, cfg: _Cfg, dist: ddp.Dist, loader, sampler, epoch: int, bar) -> dict:
    """One pass over this process's share of the data -> the epoch's losses.jsonl row (means over processes)."""
    t0 = time.time()
    sampler.set_epoch(epoch)
    torch.manual_seed(_epoch_seed(cfg.seed, epoch, dist.rank))
    rng = torch.Generator().manual_seed(_epoch_seed(cfg.seed, epoch, dist.rank) + 1)
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    n_pairs = 0
    for batch in loader:
        n = batch["audio"].shape[0]
        if n < 2:  # BatchNorm needs 2+ rows
            bar.update(1)
            continue
        real = batch["image"]
        if cfg.hflip:
            flip = torch.rand(n, generator=rng) < 0.5
            real = torch.where(flip[:, None, None, None], real.flip(3), real)
        batch = {"audio": batch["audio"].to(dist.device), "image": real.to(dist.device),
                 "label": batch["label"].to(dist.device)}
        logs = models.step(models, epoch, batch, rng)
        for k, v in logs.items():
            sums[k] = sums.get(k, 0.0) + v * n
            counts[k] = counts.get(k, 0) + n
        n_pairs += n
        bar.update(1)
    row = dist.reduce_means(sums, counts) if sums else {}
    row.update(epoch=epoch, pairs=dist.sum_int(n_pairs), seconds=round(time.time() - t0, 3))
    return row


def _save(models: FieldModels, cfg: _Cfg, ds: PairDataset, out_dir: Path, epoch: int, row: dict,
          data_hash: str) -> Path:
    state = {"generator": models.gen.state_dict()}
    if models.critic is not None:
        state["critic"] = models.critic.state_dict()
    return save_checkpoint(
        checkpoint_path(out_dir, epoch), model=cfg.model, epoch=epoch, config=cfg.raw, identities=ds.identities,
        image_size=cfg.image_size, audio_seconds=cfg.audio_seconds, state=state,
        optim={k: o.state_dict() for k, o in models.optims.items()}, data_hash=data_hash,
        extra={"losses": row, "world_size": models.dist.world_size if models.dist else 1, **models.extra},
        teachers=list(models.teachers),
    )


def _resume(models: FieldModels, out_dir: Path, ds: PairDataset) -> int:
    """Weights and optimiser states of the run's newest loadable checkpoint -> its epoch (0 when none)."""
    ckpt = _last_checkpoint(out_dir)
    if ckpt is None:
        log.info("--resume: no complete checkpoint in %s, starting from scratch", out_dir)
        return 0
    if ckpt["identities"] != ds.identities:
        raise InputError(f"cannot resume: {ckpt['path']} has {len(ckpt['identities'])} identities, "
                         f"the dataset has {len(ds.identities)}")
    models.gen.load_state_dict(ckpt["state"]["generator"])
    if models.critic is not None:
        models.critic.load_state_dict(ckpt["state"]["critic"])
    for name, opt in models.optims.items():
        if name in ckpt["optim"]:
            opt.load_state_dict(ckpt["optim"][name])
    models.extra.update({k: v for k, v in ckpt.get("extra", {}).items() if k in models.extra})
    log.info("resuming from %s (epoch %d)", ckpt["path"], int(ckpt["epoch"]))
    return int(ckpt["epoch"])
