"""Face sources: everything that yields generated faces for a dataset split, as one :class:`GeneratedSet`.

A source is one or more *items*; each item is one set of faces to score:

- :class:`CheckpointItem` — a w2p-eval checkpoint (a run folder gives one item per checkpoint). The
  checkpoint is loaded once and its content hash computed once, whatever number of suites score it.
- :class:`FolderItem` — a folder of images from any model, one per test pair, named
  ``<pair_id>.<png|jpg|jpeg|webp>`` (flat, or under ``<identity>/``), or listed in the ``manifest.csv``
  that ``w2p-eval generate`` writes. Any square size S; the paired real faces are brought to S exactly as
  for our own generators, so both go through the same resolution pipeline.
- :class:`ArrayItem` — uint8 faces [N, S, S, 3] handed over from Python with their pair ids.
- :class:`CallableItem` — a Python callable ``batch -> faces`` run over the split like a generator.

Pairs a source has no face for, and files it ignored, are counted in the item's own ``notes`` (lines the
command prints at its end; no module-level list), and the rows say over how many pairs they were computed (``n``) and how many were missing (``extra``).
"""

from __future__ import annotations

import abc
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from w2p_eval.data.dataset import PairDataset
from w2p_eval.data.folder import open_dataset
from w2p_eval.data.images import ImageTooLarge, image_to_tensor, load_image_rgb, open_image, tensor_to_uint8
from w2p_eval.errors import InputError
from w2p_eval.models import checkpoint, generation
from w2p_eval.models.checkpoint import checkpoint_hash, list_checkpoints
from w2p_eval.models.generation import GeneratedSet
from w2p_eval.names import resolve
from w2p_eval.registry import Entry, Registry
from w2p_eval.utils import Skips, select_device

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
EXTERNAL_MODEL = "external"
# the largest face a folder may hold: generators draw 64-256 px; a larger file is a counted skip (read from its
# header), so N faces never take more than N x 1024 x 1024 x 3 bytes
FACE_MAX_SIDE = 1024


def _note(notes: list[str] | None, line: str) -> None:
    """A line for the end of the command (missing pairs, ignored files), logged now and kept in ``notes``."""
    log.warning(line)
    if notes is not None and line not in notes:
        notes.append(line)


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
    import torch  # models/ may import torch; kept beside the other lazy imports of this helper

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


def _note_missing(what: str, missing: list[str], n_expected: int, notes: list[str] | None) -> None:
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        _note(notes, f"{what}: {len(missing)} of {n_expected} test pairs have no face ({shown}); "
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
            files = sorted(p for p in _image_files(self.folder)[0])
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
        _note_missing(f"images {self.folder} ({self.run})", missing, len(df), self.notes)
        return set_from_faces(data_dir, df[keep].reset_index(drop=True), faces, split=split, protocol=protocol,
                              run=self.run, source=self.kind, source_hash=self.content_hash, label=self.label,
                              n_expected=len(df), missing=missing)


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
            _note(self.notes, f"{self.run}: ignored {len(unknown)} faces whose pair ids are not in the split "
                              f"(e.g. {unknown[:3]})")
        keep = np.array([str(p) in index for p in df["pair_id"]], bool)
        missing = [str(p) for p, k in zip(df["pair_id"], keep) if not k]
        _note_missing(f"faces {self.run}", missing, len(df), self.notes)
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


def as_uint8_faces(faces) -> np.ndarray:
    """uint8 [N, S, S, 3], or float [N, 3, S, S] / [N, S, S, 3] in [0, 1] (numpy or torch) -> uint8 [N, S, S, 3]."""
    if hasattr(faces, "detach"):
        faces = faces.detach().to("cpu").numpy()
    arr = np.asarray(faces)
    if arr.ndim != 4 or 3 not in (arr.shape[1], arr.shape[3]):
        raise InputError(f"expected faces as an array [N, S, S, 3] (uint8) or [N, 3, S, S] (float in [0, 1]), "
                         f"got shape {tuple(arr.shape)}")
    if arr.shape[1] == 3 and arr.shape[3] != 3:
        arr = arr.transpose(0, 2, 3, 1)
    if arr.shape[1] != arr.shape[2]:
        raise InputError(f"expected square faces, got {arr.shape[1]}x{arr.shape[2]}")
    return np.ascontiguousarray(_to_uint8_values(arr))


FLOAT_TOLERANCE = 0.5 / 255  # float faces may leave [0, 1] by half a grey level (rounding), no more


def _to_uint8_values(arr: np.ndarray) -> np.ndarray:
    """uint8 as is; other integers in [0, 255] converted with a logged note; floats in [0, 1] scaled to
    0-255. Anything else (NaN/inf, floats outside [0, 1] such as 0-255 or [-1, 1] values, integers outside
    [0, 255], booleans) is refused with one line saying what arrived, never clipped into range."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(f"expected faces as uint8 0-255 or float in [0, 1], got dtype {arr.dtype}")
    if arr.size == 0:
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise InputError(f"expected integer faces in 0-255, got values in [{lo}, {hi}] (dtype {arr.dtype})")
        log.warning("faces of dtype %s read as 0-255 grey levels (converted to uint8)", arr.dtype)
        return arr.astype(np.uint8)
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise InputError(f"expected finite face values, got {int((~np.isfinite(arr)).sum())} NaN or inf values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -FLOAT_TOLERANCE or hi > 1 + FLOAT_TOLERANCE:
        hint = (" (0-255 values: pass uint8, or divide by 255)" if hi > 1 and lo >= 0 else
                " ([-1, 1] values: pass (x + 1) / 2)" if lo < 0 and hi <= 1 + FLOAT_TOLERANCE else "")
        raise InputError(f"expected float faces in [0, 1], got values in [{lo:.4g}, {hi:.4g}]{hint}")
    return (np.clip(arr, 0.0, 1.0) * 255.0).round().astype(np.uint8)


# ------------------------------------------------------------------ folders of images
def _image_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(image files, other files) directly in ``folder`` or one level down (``<identity>/``); hidden names
    and links that lead outside ``folder`` are left out."""
    root = folder.resolve()
    images, other = [], []
    for path in sorted(folder.iterdir()):
        entries = sorted(path.iterdir()) if path.is_dir() and not path.name.startswith(".") else [path]
        for f in entries:
            if f.name.startswith(".") or not f.is_file() or f.name == "manifest.csv":
                continue
            if not f.resolve().is_relative_to(root):
                other.append(f)
                continue
            (images if f.suffix.lower() in IMAGE_SUFFIXES else other).append(f)
    return images, other


def _legacy_stem(pair_id: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(pair_id))


def _generate_manifest(folder: Path) -> dict[Path, str]:
    """file -> pair_id from the ``manifest.csv`` that ``w2p-eval generate`` writes (in the folder or its parent),
    keeping only paths that resolve inside ``folder``."""
    root = folder.resolve()
    for base in (folder, folder.parent):
        path = base / "manifest.csv"
        if not path.is_file():
            continue
        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        except Exception:  # noqa: BLE001 - any unreadable CSV is just not a generate manifest
            continue
        if not {"pair_id", "image_path"} <= set(df.columns):
            continue
        out = {}
        for pid, rel in zip(df["pair_id"], df["image_path"]):
            f = (base / rel).resolve()
            if f.is_relative_to(root):
                out[f] = str(pid)
        return out
    return {}


def match_folder(folder: str | os.PathLike, pair_ids: Sequence[str], notes: list[str] | None = None) -> dict[str, Path]:
    """pair_id -> its image in ``folder``. Names: ``<pair_id>.<ext>`` (flat or under ``<identity>/``), the
    file listed for the pair in a ``w2p-eval generate`` manifest, or the older sanitised name.

    InputError (one line) for a missing/empty folder, a folder whose names match no pair id, and a pair
    with two images (e.g. the same stem with two extensions). Files matching no pair are ignored with a note
    (logged, and added to ``notes``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"expected a folder of face images, got {'a file' if folder.exists() else 'missing path'} "
                         f"{folder}")
    images, other = _image_files(folder)
    if not images:
        raise InputError(f"expected images named <pair_id>.png|jpg|jpeg|webp in {folder}, found none"
                         + (f" ({len(other)} other files)" if other else ""))
    wanted = {str(p) for p in pair_ids}
    legacy: dict[str, str | None] = {}
    for p in wanted:
        stem = _legacy_stem(p)
        legacy[stem] = None if stem in legacy and legacy[stem] != p else p
    listed = _generate_manifest(folder)
    found: dict[str, Path] = {}
    unmatched = []
    for f in images:
        pid = listed.get(f.resolve())
        if pid is None or pid not in wanted:
            pid = f.stem if f.stem in wanted else legacy.get(f.stem)
        if pid is None:
            unmatched.append(f)
            continue
        if pid in found:
            raise InputError(f"expected one image per pair, got two for pair {pid!r}: {found[pid].name} and "
                             f"{f.relative_to(folder)} in {folder}")
        found[pid] = f
    if not found:
        example = sorted(wanted)[:2]
        raise InputError(f"expected image names that are pair ids of the split (e.g. {example[0]}.png), got none "
                         f"among {len(images)} images in {folder} (e.g. {images[0].name})")
    ignored = unmatched + other
    if ignored:
        _note(notes, f"images {folder}: ignored {len(ignored)} files matching no test pair "
                     f"(e.g. {', '.join(str(f.relative_to(folder)) for f in ignored[:3])})")
    return found


def _to_rgb8(im) -> np.ndarray:
    """A PIL image of any mode (palette, grayscale, RGBA, 16-bit, float) -> uint8 [H, W, 3] RGB.
    16-bit images are scaled (not clipped) to 8 bits; alpha is dropped."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if im.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        arr = np.clip(arr / peak * 255.0, 0, 255).round().astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if im.mode == "RGBA" or im.mode == "LA" or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def read_faces(files: Sequence[Path | None], folder: Path,
               notes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``files`` (None = no file) -> (uint8 [K, S, S, 3] of the usable ones, bool [len(files)] keep).

    Unreadable and non-square images are skipped and counted (a note at the end); images of different
    sizes are refused (InputError naming two of them), since one model's faces have one size.
    """
    skips = Skips("images")
    keep, sizes = np.zeros(len(files), bool), {}
    faces: np.ndarray | None = None  # one array, filled as files are read (no list of copies to stack)
    k = 0
    for i, f in enumerate(tqdm(files, desc=f"reading {folder.name}", unit="img", leave=False,
                               disable=len(files) < 500)):
        if f is None:
            continue
        try:  # the size comes from the header: an oversized file is skipped before a pixel is decoded
            with open_image(f, max_side=FACE_MAX_SIDE) as im:
                if im.size[0] != im.size[1]:
                    skips.add(str(f.relative_to(folder)), f"not square ({im.size[0]}x{im.size[1]})")
                    continue
                im.load()
                arr = _to_rgb8(im)
        except ImageTooLarge:
            skips.add(str(f.relative_to(folder)), f"larger than {FACE_MAX_SIDE} px")
            continue
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            skips.add(str(f.relative_to(folder)), f"unreadable image ({exc.__class__.__name__})")
            continue
        sizes.setdefault(arr.shape[0], f)
        if len(sizes) > 1:
            (s1, f1), (s2, f2) = list(sizes.items())[:2]
            raise InputError(f"expected faces of one size in {folder}, got {s1} px ({f1.name}) and {s2} px ({f2.name})")
        if faces is None:
            faces = np.empty((sum(x is not None for x in files[i:]),) + arr.shape, np.uint8)
        faces[k] = arr
        k += 1
        keep[i] = True
    if len(skips):
        _note(notes, f"{folder}: {skips.summary()}")
    return (faces[:k] if faces is not None else np.zeros((0, 1, 1, 3), np.uint8)), keep


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


# face-source kinds: ``meta["claim"]`` = "module:attr" of ``claim(path, name=None, final_only=False) -> list of
# SourceItem | None`` (None: not this kind); claimers are asked in order, "fallback" ones last (plugins from the
# ``w2p_eval.sources`` entry-point group are asked before the fallback)
SOURCE_KINDS = Registry("face-source kind", "w2p_eval.sources", [
    Entry("checkpoint", "w2p_eval.models.sources:CheckpointItem", "a w2p-eval checkpoint; a run folder = its checkpoints",
          {"claim": "w2p_eval.models.sources:claim_checkpoints"}),
    Entry("images", "w2p_eval.models.sources:FolderItem", "a folder of faces named <pair_id>.png|jpg|jpeg|webp",
          {"claim": "w2p_eval.models.sources:claim_images", "fallback": True}),
    Entry("python", "w2p_eval.models.sources:ArrayItem", "faces from Python: an array or a callable (the API)"),
])


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
