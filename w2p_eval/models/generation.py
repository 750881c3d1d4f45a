"""Run a checkpoint's generator over a dataset split: the faces every metric scores."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from w2p_eval.errors import InputError

log = logging.getLogger(__name__)


@dataclass
class GeneratedSet:
    """Generated and real faces of one split, row-aligned.

    ``fake`` and ``real`` are uint8 [N, S, S, 3] RGB at the generator's output size S (real faces
    are resized to S, so both go through the same resolution pipeline before any judge).
    """

    pair_ids: list[str]
    identities: list[str]  # per row
    labels: np.ndarray  # int64 [N], index into ``identity_names``
    identity_names: list[str]
    fake: np.ndarray
    real: np.ndarray
    ckpt_path: str
    model: str
    epoch: int
    image_size: int
    audio_seconds: float
    meta: dict = field(default_factory=dict)


def check_compatible(ckpt: dict, dataset) -> None:
    """One-line error naming both values when checkpoint and dataset disagree."""
    if list(ckpt["identities"]) != list(dataset.identities):
        raise InputError(
            f"checkpoint {ckpt.get('path')} was trained on {len(ckpt['identities'])} identities "
            f"({', '.join(ckpt['identities'][:4])}...), the dataset has {len(dataset.identities)} "
            f"({', '.join(dataset.identities[:4])}...)"
        )


def generate_split(
    ckpt_path: str | os.PathLike,
    data_dir: str | os.PathLike,
    split: str = "test",
    protocol: str = "seen",
    device: str | None = None,
    batch_size: int = 64,
    seed: int = 0,
    image_size: int | None = None,
    audio_seconds: float | None = None,
    stochastic: bool = False,
) -> GeneratedSet:
    """Generate one face per pair of ``split``.

    ``image_size``/``audio_seconds``, when given, must match the checkpoint (InputError naming
    both values otherwise). ``stochastic=True`` keeps dropout on as the original inference did.
    """
    from w2p_eval.data.dataset import PairDataset
    from w2p_eval.data.images import tensor_to_uint8
    from w2p_eval.models.checkpoint import load_checkpoint
    from w2p_eval.models.registry import load_generator
    from w2p_eval.utils import select_device

    device = select_device(device)
    ckpt = load_checkpoint(ckpt_path)
    for name, want in (("image size", image_size), ("audio length (s)", audio_seconds)):
        key = "image_size" if name == "image size" else "audio_seconds"
        if want is not None and float(want) != float(ckpt[key]):
            raise InputError(f"requested {name} {want} but checkpoint {ckpt_path} has {ckpt[key]}")
    ds = PairDataset(
        data_dir, split=split, protocol=protocol, image_size=int(ckpt["image_size"]),
        audio_seconds=float(ckpt["audio_seconds"]), cache=False,
    )
    check_compatible(ckpt, ds)
    gen = load_generator(ckpt, device=device)
    if stochastic:
        gen.train()
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0)
    torch.manual_seed(seed)
    fakes, reals = [], []
    with torch.no_grad():
        for batch in loader:
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            out = gen.generate(batch)
            fakes.append(tensor_to_uint8(out))
            reals.append(tensor_to_uint8((batch["image"] + 1) / 2))
    if not fakes:
        raise InputError(f"expected pairs in split {split!r} ({protocol} protocol) of {data_dir}, found none")
    return GeneratedSet(
        pair_ids=list(ds.df["pair_id"]),
        identities=list(ds.df["identity"]),
        labels=ds.labels,
        identity_names=list(ds.identities),
        fake=np.concatenate(fakes),
        real=np.concatenate(reals),
        ckpt_path=str(Path(ckpt_path)),
        model=str(ckpt["model"]),
        epoch=int(ckpt["epoch"]),
        image_size=int(ckpt["image_size"]),
        audio_seconds=float(ckpt["audio_seconds"]),
        meta={"config": ckpt.get("config", {}), **ckpt.get("meta", {})},
    )
