"""Run a checkpoint's generator over a dataset split: the faces every metric scores."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from w2p_eval.data.dataset import PairDataset
from w2p_eval.data.folder import open_dataset
from w2p_eval.data.images import save_png, tensor_to_uint8
from w2p_eval.errors import InputError
from w2p_eval.lazy import torch
from w2p_eval.models import registry
from w2p_eval.models.checkpoint import list_checkpoints, load_checkpoint
from w2p_eval.outdir import claim, owned_folder, refuse_links
from w2p_eval.utils import atomic_path, csv_safe, select_device

log = logging.getLogger(__name__)


@dataclass
class GeneratedSet:
    """Generated and real faces of one split, row-aligned: what every metric suite scores.

    ``fake`` and ``real`` are uint8 [N, S, S, 3] RGB at the generator's output size S (real faces
    are resized to S, so both go through the same resolution pipeline before any judge). Every face
    source makes one (:mod:`w2p_eval.models.sources`): a checkpoint, a folder of another model's
    images, or faces handed over from Python.

    ``run`` is the name the rows are stored under; ``source`` says where the faces came from
    (``checkpoint``, ``images`` or ``python``); ``source_hash`` is the checkpoint's or the faces'
    content hash; ``n_expected`` is the number of pairs in the split and ``missing`` the pair ids a
    source had no face for (rates are over the ``len(pair_ids)`` present). ``checkpoint`` keeps the
    loaded checkpoint dict for suites that read more than faces (the speaker head), else None.
    """

    pair_ids: list[str]
    identities: list[str]  # per row
    labels: np.ndarray  # int64 [N], index into ``identity_names``
    identity_names: list[str]
    fake: np.ndarray
    real: np.ndarray
    ckpt_path: str
    model: str
    epoch: int | None
    image_size: int
    audio_seconds: float | None
    meta: dict = field(default_factory=dict)
    run: str = ""
    source: str = "checkpoint"
    source_hash: str = ""
    n_expected: int | None = None
    missing: list[str] = field(default_factory=list)
    checkpoint: dict | None = field(default=None, repr=False)
    face_ids: list[str] = field(default_factory=list)  # per row: pairs sharing a face share it

    def subset(self, keep: np.ndarray) -> "GeneratedSet":
        """The rows where bool [N] ``keep`` is true (same source and metadata)."""
        idx = np.flatnonzero(np.asarray(keep, bool))
        return dataclasses.replace(
            self, pair_ids=[self.pair_ids[i] for i in idx], identities=[self.identities[i] for i in idx],
            labels=self.labels[idx], fake=self.fake[idx], real=self.real[idx],
            face_ids=[self.face_ids[i] for i in idx] if self.face_ids else [])


def check_compatible(ckpt: dict, dataset) -> None:
    """One-line error naming both values when checkpoint and dataset disagree."""
    if list(ckpt["identities"]) != list(dataset.identities):
        raise InputError(
            f"checkpoint {ckpt.get('path')} was trained on {len(ckpt['identities'])} identities "
            f"({', '.join(ckpt['identities'][:4])}...), the dataset has {len(dataset.identities)} "
            f"({', '.join(dataset.identities[:4])}...)"
        )


def _check_requested(ckpt: dict, ckpt_path, image_size: int | None, audio_seconds: float | None) -> None:
    """Refuse a requested image size or audio length that is not the checkpoint's (naming both values)."""
    for name, key, want in (("image size", "image_size", image_size),
                            ("audio length (s)", "audio_seconds", audio_seconds)):
        if want is not None and float(want) != float(ckpt[key]):
            raise InputError(f"requested {name} {want} but checkpoint {ckpt_path} has {ckpt[key]}")


def _run_generator(gen, ds, device, batch_size: int, seed: int, ckpt_path):
    """(fake, real) uint8 [N, H, W, 3] arrays for every pair of ``ds`` in order; (None, None) when empty."""
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0)
    torch.manual_seed(seed)
    fakes, reals = [], []
    with torch.no_grad():
        for batch in loader:
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            out = gen.generate(batch)
            if tuple(out.shape[1:]) != (3, ds.image_size, ds.image_size):
                raise InputError(f"expected checkpoint {ckpt_path} to generate [3, {ds.image_size}, {ds.image_size}] "
                                 f"faces, got {list(out.shape[1:])} (a broken checkpoint)")
            fakes.append(tensor_to_uint8(out))
            reals.append(tensor_to_uint8((batch["image"] + 1) / 2))
    if not fakes:
        return None, None
    return np.concatenate(fakes), np.concatenate(reals)


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
    ckpt: dict | None = None,
) -> GeneratedSet:
    """Generate one face per pair of ``split``.

    ``image_size``/``audio_seconds``, when given, must match the checkpoint (InputError naming
    both values otherwise). ``stochastic=True`` keeps dropout on as the original inference did.
    ``ckpt``: the checkpoint dict already loaded from ``ckpt_path`` (it is then not loaded again).
    """
    device = select_device(device)
    ckpt = ckpt if ckpt is not None else load_checkpoint(ckpt_path)
    _check_requested(ckpt, ckpt_path, image_size, audio_seconds)
    ds = PairDataset(
        data_dir, split=split, protocol=protocol, image_size=int(ckpt["image_size"]),
        audio_seconds=float(ckpt["audio_seconds"]), cache=False,
    )
    check_compatible(ckpt, ds)
    gen = registry.load_generator(ckpt, device=device)
    if stochastic:  # dropout on, as the original inference; models without the switch go to train mode
        gen.set_stochastic(True) if hasattr(gen, "set_stochastic") else gen.train()
    fake, real = _run_generator(gen, ds, device, batch_size, seed, ckpt_path)
    if fake is None:
        raise InputError(f"expected pairs in split {split!r} ({protocol} protocol) of {data_dir}, found none")
    return GeneratedSet(
        pair_ids=list(ds.df["pair_id"]),
        identities=list(ds.df["identity"]),
        labels=ds.labels,
        identity_names=list(ds.identities),
        fake=fake,
        real=real,
        ckpt_path=str(Path(ckpt_path)),
        model=str(ckpt["model"]),
        epoch=int(ckpt["epoch"]),
        image_size=int(ckpt["image_size"]),
        audio_seconds=float(ckpt["audio_seconds"]),
        meta={"config": ckpt.get("config", {}), **ckpt.get("meta", {})},
        n_expected=len(ds.df),
        checkpoint=ckpt,
        face_ids=[str(f) for f in ds.df["face_id"]],
    )


def export_generated(
    ckpt: str | os.PathLike,
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    split: str = "test",
    protocol: str = "seen",
    device: str | None = None,
    batch_size: int = 64,
    seed: int = 0,
    image_size: int | None = None,
    audio_seconds: float | None = None,
    stochastic: bool = False,
) -> Path:
    """Write one PNG per pair of ``split`` for a checkpoint, or for every checkpoint of a run folder.

    Layout: ``OUT/<checkpoint stem>/<pair_id>.png`` plus ``OUT/manifest.csv`` with columns
    pair_id, identity, image_path (relative to OUT), checkpoint, epoch, model. Each file is
    written atomically; the manifest last. Returns the manifest path.
    """
    claim(out_dir, "generate")  # new, empty, or an earlier generate output; never a foreign folder
    list_checkpoints(ckpt)
    data_dir = open_dataset(data_dir)  # read once (bad input is refused before OUT is created)
    refuse_links(out_dir, [Path(p).stem for p in list_checkpoints(ckpt)] + ["manifest.csv"])
    rows = []
    with owned_folder(out_dir, "generate", f"generate folder {out_dir}") as out_dir:
        for path in list_checkpoints(ckpt):
            gs = generate_split(path, data_dir, split=split, protocol=protocol, device=device, batch_size=batch_size,
                                seed=seed, image_size=image_size, audio_seconds=audio_seconds, stochastic=stochastic)
            folder = out_dir / Path(path).stem
            folder.mkdir(parents=True, exist_ok=True)
            for pid, ident, img in zip(gs.pair_ids, gs.identities, gs.fake):
                name = face_file_name(pid)
                with atomic_path(folder / name) as tmp:
                    save_png(tmp, img)
                rows.append({"pair_id": pid, "identity": ident, "image_path": f"{folder.name}/{name}",
                             "checkpoint": str(path), "epoch": gs.epoch, "model": gs.model})
            log.info("%s: wrote %d faces to %s", path, len(gs.pair_ids), folder)
        manifest = out_dir / "manifest.csv"
        with atomic_path(manifest) as tmp:
            csv_safe(pd.DataFrame(rows, columns=["pair_id", "identity", "image_path", "checkpoint", "epoch", "model"])
                     ).to_csv(tmp, index=False)
    return manifest


def face_file_name(pair_id) -> str:
    """A file name for a pair id, unique per id and at most 82 characters: the id's safe characters,
    plus a short hash of the exact id whenever anything was replaced or cut ("x y", "x_y", "x/y" differ)."""
    pid = str(pair_id)
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_" for ch in pid).lstrip(".")
    if safe == pid and 0 < len(safe) <= 64:
        return safe + ".png"
    digest = hashlib.sha256(pid.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{safe[:64] or 'pair'}-{digest}.png"
