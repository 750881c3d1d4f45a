"""Face sources handed over from Python (the API, :func:`w2p_eval.api.evaluate_faces`): an array of faces with
their pair ids, or a callable run over the split like a generator. The other kinds and the shared pieces
(:class:`~w2p_eval.models.sources.SourceItem`, ``set_from_faces``): :mod:`w2p_eval.models.sources`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from w2p_eval.data.dataset import PairDataset
from w2p_eval.errors import InputError
from w2p_eval.lazy import torch
from w2p_eval.models.faces_io import as_uint8_faces, note
from w2p_eval.models.generation import GeneratedSet
from w2p_eval.models.sources import SourceItem, note_missing, set_from_faces, split_rows
from w2p_eval.registry import Entry
from w2p_eval.utils import select_device

REGISTER_SOURCE_KINDS = (
    Entry("python", "ArrayItem", "faces from Python: an array or a callable (the API)", order=30),
)


@dataclass
class ArrayItem(SourceItem):
    """Faces from Python: uint8 [N, S, S, 3] RGB (or float [N, 3, S, S] in [0, 1]) with their pair ids."""

    array: np.ndarray
    pair_ids: list[str]
    run: str = "python"
    kind: str = "python"
    label: str = "python array"
    notes: list[str] = field(default_factory=list, repr=False)
    _hash: str | None = field(default=None, repr=False)

    def __post_init__(self):
        self.array = as_uint8_faces(self.array)
        self.pair_ids = [str(p) for p in self.pair_ids]
        if len(self.pair_ids) != len(self.array):
            raise InputError(f"expected one pair id per face, got {len(self.pair_ids)} ids for {len(self.array)} faces")
        dup = sorted({p for p in self.pair_ids if self.pair_ids.count(p) > 1}) if len(set(self.pair_ids)) < len(
            self.pair_ids) else []
        if dup:
            raise InputError(f"expected distinct pair ids, got duplicates {dup[:5]}")

    @property
    def content_hash(self) -> str:
        if self._hash is None:
            h = hashlib.sha256(np.ascontiguousarray(self.array).tobytes())
            h.update("\0".join(self.pair_ids).encode())
            self._hash = h.hexdigest()[:16]
        return self._hash

    def faces(self, data_dir, *, split="test", protocol="seen", device=None, seed=0, batch_size=64) -> GeneratedSet:
        df = split_rows(data_dir, split, protocol)
        index = {p: i for i, p in enumerate(self.pair_ids)}
        in_split = set(str(p) for p in df["pair_id"])
        unknown = [p for p in self.pair_ids if p not in in_split]
        if len(unknown) == len(self.pair_ids):
            raise InputError(f"expected pair ids of split {split!r} ({protocol} protocol) of {data_dir}, got none of "
                             f"them (e.g. {unknown[:3]})")
        if unknown:
            note(self.notes, f"{self.run}: ignored {len(unknown)} faces whose pair ids are not in the split "
                              f"(e.g. {unknown[:3]})")
        keep = np.array([str(p) in index for p in df["pair_id"]], bool)
        missing = [str(p) for p, k in zip(df["pair_id"], keep) if not k]
        note_missing(f"faces {self.run}", missing, len(df), self.notes)
        rows = df[keep].reset_index(drop=True)
        faces = self.array[[index[str(p)] for p in rows["pair_id"]]]
        return set_from_faces(data_dir, rows, faces, split=split, protocol=protocol, run=self.run, source=self.kind,
                              source_hash=self.content_hash, label=self.label, n_expected=len(df), missing=missing)


@dataclass
class CallableItem(SourceItem):
    """A Python callable ``fn(batch) -> faces`` run over the split like a generator: ``batch`` is a collated
    PairDataset batch (``audio`` float [B, 1, T], ``image``, ``label``, ``pair_id``, ``identity``); faces are
    float [B, 3, S, S] in [0, 1] (tensor or array) or uint8 [B, S, S, 3]."""

    fn: Callable
    run: str = "python"
    image_size: int = 64
    audio_seconds: float = 1.0
    kind: str = "python"
    label: str = "python callable"
    notes: list[str] = field(default_factory=list, repr=False)
    _gs: GeneratedSet | None = field(default=None, repr=False)

    @property
    def content_hash(self) -> str:
        if self._gs is None:
            raise InputError("a callable's faces are hashed once generated: call faces() first")
        return self._gs.source_hash

    def faces(self, data_dir, *, split="test", protocol="seen", device=None, seed=0, batch_size=64) -> GeneratedSet:
        device = select_device(device)
        ds = PairDataset(data_dir, split=split, protocol=protocol, image_size=int(self.image_size),
                         audio_seconds=float(self.audio_seconds), cache=False)
        if len(ds) == 0:
            raise InputError(f"expected pairs in split {split!r} ({protocol} protocol) of {data_dir}, found none")
        loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0)
        torch.manual_seed(seed)
        out = []
        with torch.no_grad():
            for batch in loader:
                batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
                out.append(as_uint8_faces(self.fn(batch)))
        faces = np.concatenate(out)
        if faces.shape[0] != len(ds):
            raise InputError(f"expected the callable to return one face per pair ({len(ds)}), got {faces.shape[0]}")
        source_hash = hashlib.sha256(faces.tobytes()).hexdigest()[:16]
        self._gs = set_from_faces(data_dir, ds.df.reset_index(drop=True), faces, split=split, protocol=protocol,
                                  run=self.run, source=self.kind, source_hash=source_hash, label=self.label,
                                  n_expected=len(ds), missing=[])
        return self._gs
