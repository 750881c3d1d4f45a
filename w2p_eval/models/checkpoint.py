"""Checkpoints: one .pt file of tensors and builtins, written atomically, read with weights_only=True.

Layout (version 1): ``format``, ``version``, ``model``, ``epoch``, ``identities``, ``image_size`` (int),
``audio_seconds`` (float), ``config`` (the training config), ``state`` / ``optim`` (state dicts),
``extra``, ``meta`` (versions, git commit, time, data hash). The typed fields of :data:`TOP_LEVEL`
are stored once, at the top level: :func:`save_checkpoint` leaves them out of ``config`` when they
agree, and :func:`load_checkpoint` puts them back, so readers see a complete ``config`` from old
checkpoints (which stored them twice) and new ones alike.
"""

from __future__ import annotations

import datetime as _dt
import errno
import os
import pickle
import re
import zipfile
from pathlib import Path

from w2p_eval.errors import InputError
from w2p_eval.lazy import torch
from w2p_eval.utils import atomic_path, git_commit, package_versions, sha256_file
from w2p_eval.validate import CHECKPOINT_VERSIONS, check_checkpoint

FORMAT = "w2p-eval-checkpoint"
CKPT_DIR = "checkpoints"
_EPOCH_RE = re.compile(r"epoch_(\d+)\.pt$")
TOP_LEVEL = ("image_size", "audio_seconds")  # config keys stored once, as typed top-level fields


def checkpoint_path(run_dir: str | os.PathLike, epoch: int) -> Path:
    return Path(run_dir) / CKPT_DIR / f"epoch_{epoch:04d}.pt"


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: str,
    epoch: int,
    config: dict,
    identities: list[str],
    image_size: int,
    audio_seconds: float,
    state: dict[str, dict],
    optim: dict[str, dict] | None = None,
    data_hash: str | None = None,
    extra: dict | None = None,
    teachers: list[str] | None = None,
) -> Path:
    """Write a checkpoint atomically (temp file + fsync + os.replace): a kill at any moment leaves
    either the previous file or the complete new one, never a file that fails to load.

    ``teachers``: the pretrained networks the training losses used (``meta["teachers"]``, e.g. SF2F's
    perceptual loss); the report marks rows scored by a judge among them (:func:`teachers_of`)."""
    typed = {"image_size": int(image_size), "audio_seconds": float(audio_seconds)}
    config = {k: v for k, v in config.items() if not (k in TOP_LEVEL and v == typed[k])}
    ckpt = {
        "format": FORMAT,
        "version": 1,
        "model": model,
        "epoch": int(epoch),
        "config": config,
        "identities": list(identities),
        **typed,
        "state": state,
        "optim": optim or {},
        "extra": extra or {},
        "meta": {
            "versions": package_versions(),
            "git_commit": git_commit(),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "data_hash": data_hash,
            "teachers": list(teachers or []),
        },
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            torch.save(ckpt, tmp)
        except RuntimeError as exc:  # torch reports a failed write (disk full) as RuntimeError
            raise OSError(errno.EIO, f"writing the checkpoint failed ({str(exc).splitlines()[0][:100]}); "
                                     f"is the disk full?", str(path)) from None
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str = "cpu") -> dict:
    """Load a w2p-eval checkpoint with ``weights_only=True`` (no arbitrary unpickling).

    Raises InputError for a missing file, a file that is not a checkpoint, or one that holds
    pickled code (callables, custom classes) - those are refused, never executed.
    """
    ckpt = _load(path, map_location)
    check_checkpoint(ckpt, path)
    for key in TOP_LEVEL:
        ckpt["config"].setdefault(key, ckpt[key])
    ckpt["path"] = str(path)
    return ckpt


META_KEYS = ("model", "epoch", "image_size", "audio_seconds", "identities")


def read_checkpoint_meta(path: str | os.PathLike) -> dict:
    """A checkpoint's metadata (:data:`META_KEYS`) without loading its weights: the file is memory-mapped
    (``torch.load(mmap=True, weights_only=True)``), so tensors stay on disk and only the small fields are read.
    Same refusals as :func:`load_checkpoint` for a missing, foreign or unsafe file; the weights' checks
    (finite, shapes) happen when the checkpoint is loaded to generate. What evaluate reads to decide that a
    checkpoint is already in the store (its run, model, epoch and content hash)."""
    ckpt = _load(path, "cpu", mmap=True)
    meta = {k: ckpt.get(k) for k in META_KEYS}
    del ckpt  # drops the mapping
    if not isinstance(meta["model"], str):
        raise InputError(f"expected a model name (text) in checkpoint {path}, got {meta['model']!r}")
    if isinstance(meta["epoch"], bool) or not isinstance(meta["epoch"], int) or meta["epoch"] < 0:
        raise InputError(f"expected an integer >= 0 for epoch in checkpoint {path}, got {meta['epoch']!r}")
    return meta


def teachers_of(path: str | os.PathLike) -> list[str]:
    """The networks a checkpoint's generator was trained against (``meta["teachers"]``, e.g. SF2F's perceptual
    loss network); [] for checkpoints without the field and for a file that is gone or not a checkpoint
    (the report, which asks, must still build). Read memory-mapped, without the weights."""
    try:
        ckpt = _load(path, "cpu", mmap=True)
    except InputError:
        return []
    teachers = (ckpt.get("meta") or {}).get("teachers") or []
    del ckpt
    return [str(t) for t in teachers] if isinstance(teachers, (list, tuple)) else []


def _load(path: str | os.PathLike, map_location: str, mmap: bool = False) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"expected a checkpoint file (.pt), got missing path {path}")
    if not zipfile.is_zipfile(path):
        raise InputError(f"expected a readable torch checkpoint (a torch.save zip file), got {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        lines = [ln for ln in str(exc).splitlines() if "Unsupported" in ln or "GLOBAL" in ln]
        first = lines[0].strip() if lines else "unsafe content"
        raise InputError(
            f"refusing to load {path}: it holds objects other than tensors and plain data "
            f"(weights_only=True refused it: {first[:160]})"
        ) from None
    except Exception as exc:  # corrupt zip, truncated file, not a torch file at all
        raise InputError(f"expected a readable torch checkpoint, got {path} ({exc.__class__.__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        got = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise InputError(f"expected a w2p-eval checkpoint (format {FORMAT!r}), got {got!r} in {path}")
    if ckpt.get("version") not in CHECKPOINT_VERSIONS:
        check_checkpoint(ckpt, path)  # the one message for an unknown version
    return ckpt


def list_checkpoints(path: str | os.PathLike) -> list[Path]:
    """A checkpoint file -> [it]; a run folder -> its checkpoints sorted by epoch."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        folder = path / CKPT_DIR if (path / CKPT_DIR).is_dir() else path
        found = sorted((p for p in folder.glob("epoch_*.pt") if _EPOCH_RE.search(p.name)),
                       key=lambda p: int(_EPOCH_RE.search(p.name).group(1)))
        if found:
            return found
        raise InputError(f"expected checkpoints (checkpoints/epoch_NNNN.pt) in run folder {path}, found none")
    raise InputError(f"expected a checkpoint file or run folder, got missing path {path}")


def checkpoint_hash(path: str | os.PathLike) -> str:
    return sha256_file(path)
