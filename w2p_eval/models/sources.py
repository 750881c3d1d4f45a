"""Face sources: everything that yields generated faces for a dataset split, as one :class:`GeneratedSet`.

A source is one or more *items*; each item is one set of faces to score:

- :class:`CheckpointItem` — a w2p-eval checkpoint (a run folder gives one item per checkpoint). The
  checkpoint is loaded once and its content hash computed once, whatever number of suites score it.
- :class:`FolderItem` — a folder of images from any model, one per test pair, named
  ``<pair_id>.<png|jpg|jpeg|webp>`` (flat, or under ``<identity>/``), or listed in the ``manifest.csv``
  that ``w2p-eval generate`` writes. Any square size S; the paired real faces are brought to S exactly as
  for our own generators, so both go through the same resolution pipeline.
- :class:`~w2p_eval.models.sources_python.ArrayItem` — uint8 faces [N, S, S, 3] handed over from Python with
  their pair ids, and :class:`~w2p_eval.models.sources_python.CallableItem` — a Python callable ``batch -> faces``
  run over the split like a generator (``sources_python.py``).

Pairs a source has no face for, and files it ignored, are counted in the item's own ``notes`` (lines the
command prints at its end; no module-level list), and the rows say over how many pairs they were computed
(``n``) and how many were missing (``extra``). Reading folders of faces: :mod:`w2p_eval.models.faces_io`.
"""

from __future__ import annotations

import abc
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from w2p_eval.data.folder import open_dataset
from w2p_eval.data.images import image_to_tensor, load_image_rgb, open_image, tensor_to_uint8
from w2p_eval.errors import InputError
from w2p_eval.lazy import torch
from w2p_eval.models import checkpoint, generation
from w2p_eval.models.faces_io import (  # noqa: F401  (FACE_MAX_SIDE, IMAGE_SUFFIXES, read_faces: re-exported)
    FACE_MAX_SIDE, IMAGE_SUFFIXES, image_files, match_folder, note, read_faces)
from w2p_eval.models.checkpoint import checkpoint_hash, list_checkpoints
from w2p_eval.models.generation import GeneratedSet
from w2p_eval.names import resolve
from w2p_eval.registry import Entry, Registry

log = logging.getLogger(__name__)

EXTERNAL_MODEL = "external"


def run_name_of(path: str | os.PathLike) -> str:
    """The one rule for a checkpoint's run name: ``RUN/checkpoints/epoch_N.pt`` and ``RUN/`` -> ``RUN``'s
    folder name; any other checkpoint file -> its stem (``x/foo.pt`` -> ``foo``)."""
    p = Path(path)
    if p.is_dir():
        return p.resolve().name
    return p.parent.parent.name if p.parent.name == "checkpoints" else p.stem


# ------------------------------------------------------------------ real faces of a split
def split_rows(data_dir, split: str, protocol: str):
    """The manifest rows of one split (unreadable pairs already dropped); InputError when there are none."""
    df = open_dataset(data_dir).split(split, protocol)  # only this split's files are content-checked
    if df.empty:
        raise InputError(f"expected pairs in split {split!r} ({protocol} protocol) of {data_dir}, found none")
    return df.reset_index(drop=True)


def real_faces_at(data_dir, image_paths: Sequence[str], size: int) -> np.ndarray:
    """The dataset's real faces brought to ``size`` px exactly as a generator's paired real faces are
    (PairDataset's [-1, 1] tensor, then back to uint8) -> uint8 [N, size, size, 3]."""
    if not len(image_paths):
        return np.zeros((0, size, size, 3), np.uint8)
    paths = list(image_paths)
    return np.concatenate([  # the same elementwise ops, 256 faces per torch call instead of one
        tensor_to_uint8((torch.stack([image_to_tensor(load_image_rgb(Path(data_dir) / p), size)
                                      for p in paths[i:i + 256]]) + 1) / 2) for i in range(0, len(paths), 256)])


def _labels(data_dir, identities: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    names = list(open_dataset(data_dir).identities)
    index = {n: i for i, n in enumerate(names)}
    return np.array([index[n] for n in identities], dtype=np.int64), names


def set_from_faces(data_dir, df, faces: np.ndarray, *, split: str, protocol: str, run: str, source: str,
                   source_hash: str, label: str, n_expected: int, missing: list[str]) -> GeneratedSet:
    """A GeneratedSet of external faces (uint8 [N, S, S, 3], row-aligned with manifest rows ``df``)."""
    size = int(faces.shape[1])
    labels, names = _labels(data_dir, list(df["identity"]))
    return GeneratedSet(
        pair_ids=[str(p) for p in df["pair_id"]], identities=[str(i) for i in df["identity"]], labels=labels,
        identity_names=names, fake=np.ascontiguousarray(faces), real=real_faces_at(data_dir, list(df["image_path"]), size),
        ckpt_path=label, model=EXTERNAL_MODEL, epoch=None, image_size=size, audio_seconds=None,
        meta={"split": split, "protocol": protocol}, run=run, source=source, source_hash=source_hash,
        n_expected=n_expected, missing=list(missing), face_ids=[str(f) for f in df["face_id"]],
    )


def note_missing(what: str, missing: list[str], n_expected: int, notes: list[str] | None) -> None:
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        note(notes, f"{what}: {len(missing)} of {n_expected} test pairs have no face ({shown}); "
                     f"its metrics are over the {n_expected - len(missing)} present")


# ------------------------------------------------------------------ items
class SourceItem(abc.ABC):
    """One set of faces to score. ``run``: the name its rows are stored under; ``kind``: checkpoint,
    images or python; ``label``: what the rows' ``checkpoint`` column says (a path or a description)."""

    run: str
    kind: str
    label: str
    notes: list[str]  # lines for the end of the command: pairs without a face, ignored files

    @property
    def epoch(self) -> int | None:
        return None

    @property
    def model(self) -> str:
        return EXTERNAL_MODEL

    @property
    @abc.abstractmethod
    def content_hash(self) -> str:
        """Hash of what is scored (checkpoint bytes or faces); computed once."""

    @abc.abstractmethod
    def faces(self, data_dir, *, split: str = "test", protocol: str = "seen", device: str | None = None,
              seed: int = 0, batch_size: int = 64) -> GeneratedSet:
        """The GeneratedSet of this item for ``split`` of ``data_dir``."""

    def check(self, data_dir, *, split: str = "test", protocol: str = "seen") -> None:
        """Refuse a source that cannot be scored (InputError, one line) before anything is generated."""

    def load(self) -> None:
        """Load what scoring needs and check it (a checkpoint's weights); nothing for other sources."""

    def release(self) -> None:
        """Drop what was loaded (a checkpoint's weights) once every suite has scored the item."""

    def recall(self, model: str, epoch) -> None:
        """``model`` and ``epoch`` as a results store recorded them for this item's content hash, so that a
        checkpoint's metadata needs no reading (``compare --store``); nothing for other sources."""


@dataclass
class CheckpointItem(SourceItem):
    path: Path
    run: str
    kind: str = "checkpoint"
    notes: list[str] = field(default_factory=list, repr=False)
    _ckpt: dict | None = field(default=None, repr=False)
    _hash: str | None = field(default=None, repr=False)
    _meta: dict | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return str(self.path)

    def checkpoint(self) -> dict:
        """The checkpoint dict, loaded once (weights_only=True)."""
        if self._ckpt is None:
            self._ckpt = checkpoint.load_checkpoint(self.path)
            self._meta = {"model": str(self._ckpt["model"]), "epoch": int(self._ckpt["epoch"])}
        return self._ckpt

    def meta(self) -> dict:
        """model and epoch from the checkpoint's metadata only (memory-mapped, weights never read): enough to
        decide that the item is already in the store."""
        if self._meta is None:
            meta = checkpoint.read_checkpoint_meta(self.path)
            self._meta = {"model": str(meta["model"]), "epoch": int(meta["epoch"])}
        return self._meta

    def recall(self, model: str, epoch) -> None:
        if self._meta is None:  # the rows were written from this same file's metadata (same content hash)
            self._meta = {"model": str(model), "epoch": int(epoch)}

    @property
    def model(self) -> str:
        return self.meta()["model"]

    @property
    def epoch(self) -> int | None:
        return self.meta()["epoch"]

    def load(self) -> None:
        self.checkpoint()  # a broken checkpoint is bad input (exit 2) before its scoring starts

    @property
    def content_hash(self) -> str:
        if self._hash is None:
            self._hash = checkpoint_hash(self.path)
        return self._hash

    def faces(self, data_dir, *, split="test", protocol="seen", device=None, seed=0, batch_size=64) -> GeneratedSet:
        gs = generation.generate_split(self.path, data_dir, split=split, protocol=protocol, device=device,
                            batch_size=batch_size, seed=seed, ckpt=self.checkpoint())
        gs.run, gs.source, gs.source_hash = self.run, self.kind, self.content_hash
        return gs

    def release(self) -> None:
        self._ckpt = None


@dataclass
class FolderItem(SourceItem):
    folder: Path
    run: str
    kind: str = "images"
    notes: list[str] = field(default_factory=list, repr=False)
    _hash: str | None = field(default=None, repr=False)
    _matched: tuple | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return str(self.folder)

    @property
    def content_hash(self) -> str:
        if self._hash is None:
            files = sorted(p for p in image_files(self.folder)[0])
            h = hashlib.sha256()
            for f in files:
                h.update(str(f.relative_to(self.folder)).encode() + b"\0")
                h.update(hashlib.sha256(f.read_bytes()).digest())
            self._hash = h.hexdigest()[:16]
        return self._hash

    def _match(self, data_dir, split: str, protocol: str):
        key = (str(Path(data_dir).resolve()), split, protocol)
        if self._matched is None or self._matched[0] != key:
            df = split_rows(data_dir, split, protocol)
            self._matched = (key, df, match_folder(self.folder, [str(p) for p in df["pair_id"]], self.notes))
        return self._matched[1], self._matched[2]

    def check(self, data_dir, *, split="test", protocol="seen") -> None:
        """Names match pairs, no pair has two images, and the square images have one size (headers only)."""
        _, matched = self._match(data_dir, split, protocol)
        sizes: dict[int, Path] = {}
        for f in matched.values():
            try:
                with open_image(f, max_side=FACE_MAX_SIDE) as im:
                    w, h = im.size
            except Exception:  # noqa: BLE001 - unreadable files are counted skips when the faces are read
                continue
            if w == h and w <= FACE_MAX_SIDE:  # larger ones are skipped and counted when the faces are read
                sizes.setdefault(w, f)
        if len(sizes) > 1:
            (s1, f1), (s2, f2) = sorted(sizes.items())[:2]
            raise InputError(f"expected faces of one size in {self.folder}, got {s1} px ({f1.name}) and "
                             f"{s2} px ({f2.name})")

    def faces(self, data_dir, *, split="test", protocol="seen", device=None, seed=0, batch_size=64) -> GeneratedSet:
        df, matched = self._match(data_dir, split, protocol)
        faces, keep = read_faces([matched.get(str(p)) for p in df["pair_id"]], self.folder, self.notes)
        missing = [str(p) for p, k in zip(df["pair_id"], keep) if not k]
        if not keep.any():
            raise InputError(f"expected readable square images for the test pairs in {self.folder}, got none usable "
                             f"({len(matched)} matched by name)")
        note_missing(f"images {self.folder} ({self.run})", missing, len(df), self.notes)
        return set_from_faces(data_dir, df[keep].reset_index(drop=True), faces, split=split, protocol=protocol,
                              run=self.run, source=self.kind, source_hash=self.content_hash, label=self.label,
                              n_expected=len(df), missing=missing)


# ------------------------------------------------------------------ building sources
def checkpoint_items(path: str | os.PathLike, final_only: bool = False, name: str | None = None) -> list[CheckpointItem]:
    """The checkpoints of a run folder (or one checkpoint file) as items named by :func:`run_name_of`."""
    ckpts = list_checkpoints(path)
    if final_only:
        ckpts = ckpts[-1:]
    run = name or run_name_of(path)
    return [CheckpointItem(path=Path(c), run=run) for c in ckpts]


def folder_item(folder: str | os.PathLike, name: str) -> FolderItem:
    if not name or not str(name).strip():
        raise InputError(f"expected a name for the images in {folder} (--name NAME), got none")
    return FolderItem(folder=Path(folder), run=str(name))


def claim_checkpoints(path: str | os.PathLike, name: str | None = None, final_only: bool = False) -> list | None:
    """A checkpoint file, or a run folder (``checkpoints/`` or ``epoch_*.pt`` inside) -> its items; else None."""
    p = Path(path)
    if p.is_file() or (p.is_dir() and ((p / "checkpoints").is_dir() or any(p.glob("epoch_*.pt")))):
        return checkpoint_items(p, final_only=final_only, name=name)
    return None


def claim_images(path: str | os.PathLike, name: str | None = None, final_only: bool = False) -> list | None:
    """Any other folder -> its images, named ``name`` or the folder's own name."""
    p = Path(path)
    return [folder_item(p, name or p.resolve().name)] if p.is_dir() else None


# face-source kinds, each declared in the module that defines it (``REGISTER_SOURCE_KINDS``, read without importing
# it; checkpoint and images below, python in sources_python.py): ``meta["claim"]`` = "module:attr" of ``claim(path, name=None, final_only=False) ->
# list of SourceItem | None`` (None: not this kind); claimers are asked in order, "fallback" ones last (plugins from
# the ``w2p_eval.sources`` entry-point group are asked before the fallback)
SOURCE_KINDS = Registry("face-source kind", "w2p_eval.sources", packages=("w2p_eval.models",),
                        marker="REGISTER_SOURCE_KINDS")
REGISTER_SOURCE_KINDS = (
    Entry("checkpoint", "CheckpointItem", "a w2p-eval checkpoint; a run folder = its checkpoints",
          {"claim": "w2p_eval.models.sources:claim_checkpoints"}, order=10),
    Entry("images", "FolderItem", "a folder of faces named <pair_id>.png|jpg|jpeg|webp",
          {"claim": "w2p_eval.models.sources:claim_images", "fallback": True}, order=20),
)


def source_items(path: str | os.PathLike, name: str | None = None, final_only: bool = False, *,
                 fallback: bool = True) -> list[SourceItem]:
    """The items of the first source kind that claims ``path`` (fallback kinds last, or never); none -> the
    checkpoint kind's own message (InputError)."""
    kinds = sorted((e for e in SOURCE_KINDS.entries() if "claim" in e.meta or hasattr(e.load(), "claim")),
                   key=lambda e: bool(e.meta.get("fallback")))
    for e in kinds:
        if e.meta.get("fallback") and not fallback:
            continue
        claim = resolve(e.meta["claim"]) if "claim" in e.meta else e.load().claim
        got = claim(path, name=name, final_only=final_only)
        if got is not None:
            return list(got)
    return checkpoint_items(path, final_only=final_only, name=name)  # raises, naming what a run folder holds


def check_distinct_names(items: Sequence[SourceItem]) -> None:
    """Two sources may not share a run name (their rows would mix): InputError naming the name and both sources."""
    seen: dict[str, str] = {}
    for it in items:
        where = it.label
        if it.kind == "checkpoint":
            p = Path(it.label)
            where = str(p.parent.parent if p.parent.name == "checkpoints" else p)
        if it.run in seen and seen[it.run] != where:
            raise InputError(f"expected distinct source names, got {it.run!r} for both {seen[it.run]} and {where}")
        seen.setdefault(it.run, where)
