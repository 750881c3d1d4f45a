"""`prepare wav2pix-release`: import the WAV2PIX authors' released data.

Input, either:
- the folder layout ``SRC/{train,test}/<identity>/cropped_face_frame_N.png`` +
  ``preprocessed_frame_N.wav`` (paired by N), or
- the original pickled path lists: a folder holding ``*.pkl``/``*.pickle`` files (or one such
  file: its folder's pickles are used), two lists per split (faces, audios; paired by index),
  the split read from the pickle's file name (``train``/``test``) or else from the paths.
  Pickles are read with a restricted unpickler that builds only lists and strings.

Quirks handled: the ".png" files hold JPEG data (decoded by content); colours are stored BGR
and are swapped to RGB; each face appears 5 times under consecutive frame numbers, each copy with
a different audio crop: near-identical consecutive images (and exact duplicates anywhere within an
identity) are grouped into one ``face_id`` and written once.

Splits: when both authors' splits are present, ``split_seen`` keeps them. When only one is present
(the public release ships only ``test``), the seen test set is the last ``test_fraction`` of each
identity's faces in frame order, and the ``guard`` faces just before it are dropped (counted) so
that the +-2-4 s audio windows around neighbouring faces cannot straddle the split.
``split_unseen`` is identity-disjoint (seeded).
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
from PIL import Image
from tqdm import tqdm

from w2p_eval.data.prepare_common import (IMAGE_SUFFIXES, PairWriter, echo_summary, identity_meta_option, out_option,
                                          seed_option, test_fraction_option)
from w2p_eval.data.splits import _n_test
from w2p_eval.errors import InputError
from w2p_eval.registry import Entry
from w2p_eval.utils import Skips

log = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".pkl", ".pickle", ".p")
NEAR_IDENTICAL = 2.0  # mean |difference| of 16x16 grey thumbnails (0-255) below which two images are one face


@dataclass
class ReleaseItem:
    split: str  # "train" | "test" (the authors')
    identity: str
    number: int  # frame number (or list index)
    image: Path
    audio: Path | None


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("refused a bytes constructor other than str.encode('latin1')")
    return text.encode("latin1")


class _ListsOnly(pickle.Unpickler):
    """Unpickler that refuses every global: only lists, strings and other plain literals load."""
    def find_class(self, module, name):
        if (module, name) == ("_codecs", "encode"):  # how protocol 0-2 pickles spell ``bytes``
            return _latin1_bytes
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: only lists of path strings are accepted")


def safe_load_path_list(path: Path) -> list[str]:
    """A pickled list of path strings -> list[str]; InputError for anything else (never runs code)."""
    try:
        with open(path, "rb") as fh:
            obj = _ListsOnly(io.BytesIO(fh.read()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, OverflowError, UnicodeDecodeError) as exc:
        raise InputError(f"expected a pickled list of path strings, got an unsafe or unreadable pickle ({path}: {exc})") from None
    if isinstance(obj, tuple):
        obj = list(obj)
    if not isinstance(obj, list) or not all(isinstance(x, (str, bytes)) for x in obj):
        raise InputError(f"expected a pickled list of path strings, got {type(obj).__name__} ({path})")
    return [x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in obj]


def _number(name: str, default: int) -> int:
    found = re.findall(r"\d+", Path(name).stem)
    return int(found[-1]) if found else default


def _resolve(raw: str, base: Path) -> Path:
    """A path from the authors' machine -> an existing local file (trailing components under ``base``)."""
    p = Path(raw.replace("\\", "/"))
    if p.is_file():
        return p
    parts = p.parts
    for i in range(len(parts)):
        for root in (base, base.parent):
            cand = root.joinpath(*parts[i:]) if parts[i:] else root
            if cand.is_file():
                return cand
    return base / p.name


def _split_of(name: str, paths: list[str]) -> str | None:
    low = name.lower()
    for split in ("train", "test"):
        if split in low:
            return split
    for split in ("train", "test"):
        if paths and all(f"/{split}/" in "/" + x.replace("\\", "/") for x in paths):
            return split
    return None


def items_from_pickles(files: list[Path]) -> list[ReleaseItem]:
    """Items from pickled (faces, audios) path lists per split."""
    lists: dict[str, dict[str, list[str]]] = {}
    for f in sorted(files):
        paths = safe_load_path_list(f)
        if not paths:
            continue
        kind = "faces" if all(Path(x).suffix.lower() in IMAGE_SUFFIXES for x in paths) else (
            "audios" if all(Path(x).suffix.lower() == ".wav" for x in paths) else None)
        split = _split_of(f.name, paths)
        if kind is None or split is None:
            raise InputError(f"expected a pickled list of all-image or all-.wav paths of a train/test split, got {f}")
        lists.setdefault(split, {})[kind] = paths
    items = []
    for split, d in sorted(lists.items()):
        faces, audios = d.get("faces"), d.get("audios")
        if faces is None or audios is None or len(faces) != len(audios):
            raise InputError(
                f"expected two pickled lists (faces, audios) of equal length for split {split}, got "
                f"{len(faces or [])} faces and {len(audios or [])} audios"
            )
        base = files[0].parent
        for i, (fp, ap) in enumerate(zip(faces, audios)):
            img = _resolve(fp, base)
            items.append(ReleaseItem(split, Path(fp.replace("\\", "/")).parent.name, _number(fp, i), img, _resolve(ap, base)))
    if not items:
        raise InputError(f"expected pickled path lists with entries, got empty lists ({files[0].parent})")
    return items


def items_from_folders(src: Path) -> list[ReleaseItem]:
    items = []
    for split in ("train", "test"):
        for ident_dir in sorted(p for p in (src / split).glob("*") if p.is_dir()):
            for img in sorted(ident_dir.iterdir()):
                if img.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                n = _number(img.name, -1)
                wav = ident_dir / f"preprocessed_frame_{n}.wav"
                items.append(ReleaseItem(split, ident_dir.name, n, img, wav if wav.is_file() else None))
    return items


def find_items(src: str | os.PathLike) -> list[ReleaseItem]:
    """Detect the input form (folder layout or pickles) and list the items."""
    src = Path(src)
    if not src.exists():
        raise InputError(f"expected the WAV2PIX release folder or its pickled path lists, got a missing path ({src})")
    if src.is_file():
        if src.suffix.lower() not in PICKLE_SUFFIXES:
            raise InputError(f"expected a release folder or a pickle ({', '.join(PICKLE_SUFFIXES)}), got {src}")
        src = src.parent
    pickles = sorted(p for p in src.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if any((src / s).is_dir() for s in ("train", "test")):
        items = items_from_folders(src)
    elif pickles:
        items = items_from_pickles(pickles)
    else:
        items = []
    if not items:
        raise InputError(
            f"expected {{train,test}}/<identity>/cropped_face_frame_N.png + preprocessed_frame_N.wav "
            f"or pickled path lists, got neither ({src})"
        )
    return items


def _thumb(img: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] -> float32 [16, 16] grey thumbnail (0-255), to compare faces cheaply."""
    return np.asarray(Image.fromarray(img).convert("L").resize((16, 16), Image.BILINEAR), dtype=np.float32)


class _Faces:
    """Which face each release image is: near-identical to the previous image of the same split and
    identity (the 5 copies of one face), or an exact duplicate of any earlier one there, or new."""

    def __init__(self):
        self.prev: tuple | None = None  # (split, identity, thumb, face_id, image_path)
        self.exact: dict[tuple, tuple[str, str]] = {}

    def known(self, it: ReleaseItem, thumb: np.ndarray) -> tuple[str, str] | None:
        """(face_id, image_path) of an earlier copy of this face, or None."""
        if self.prev and self.prev[:2] == (it.split, it.identity) and \
                float(np.abs(self.prev[2] - thumb).mean()) < NEAR_IDENTICAL:
            return self.prev[3], self.prev[4]
        return self.exact.get(self._key(it, thumb))

    def remember(self, it: ReleaseItem, thumb: np.ndarray, face_id: str, image_path: str) -> None:
        self.exact.setdefault(self._key(it, thumb), (face_id, image_path))
        self.prev = (it.split, it.identity, thumb, face_id, image_path)

    @staticmethod
    def _key(it: ReleaseItem, thumb: np.ndarray) -> tuple:
        return it.split, it.identity, hashlib.sha1(np.round(thumb).astype(np.uint8).tobytes()).hexdigest()


def prepare_release(src, out, *, seed: int = 0, test_fraction: float = 0.2, guard: int = 4,
                    min_seconds: float = 1.0, identity_meta=None) -> str:
    """Import the release at ``src`` into a dataset at ``out``; returns the summary line."""
    if guard < 0:
        raise InputError(f"expected --guard >= 0, got {guard}")
    items = sorted(find_items(src), key=lambda it: (it.split, it.identity, it.number))
    writer = PairWriter(out, identity_meta=identity_meta)
    with writer.staging():
        faces = _Faces()
        for it in tqdm(items, desc="release", unit="pair", disable=None):
            _add_item(writer, it, faces, min_seconds)
        info = {"kind": "wav2pix-release", "seed": seed, "bgr_to_rgb": True,
                "authors_splits": sorted(set(it.split for it in items)),
                "params": dict(test_fraction=test_fraction, guard=guard, min_seconds=min_seconds)}
        return writer.finish(info, test_fraction, keep_seen=True,
                             regroup=lambda df: _seen_split(df, test_fraction, guard, writer.skips))


def _add_item(writer: PairWriter, it: ReleaseItem, faces: _Faces, min_seconds: float) -> None:
    """One release image + wav -> one pair; the face image is written once per face."""
    label = f"{it.split}/{it.identity}/{it.image.name}"
    if it.audio is None or not it.audio.is_file():
        writer.skip(label, "no audio file for the image")
        return
    bgr = writer.read_image(it.image, label)
    if bgr is None:
        return
    rgb = bgr[..., ::-1].copy()  # stored BGR -> RGB
    audio = writer.read_audio(it.audio, label, min_seconds)
    if audio is None:
        return
    wave, seconds = audio
    thumb = _thumb(rgb)
    known = faces.known(it, thumb)
    if known is None:
        face_id = f"{it.split}-{it.identity}-f{it.number:06d}"
        known = face_id, writer.save_face(face_id, rgb)
    face_id, image_path = known
    faces.remember(it, thumb, face_id, image_path)
    pid = f"{it.split}-{it.identity}-{it.number:06d}"
    writer.add(
        pair_id=pid, identity=it.identity, image_path=image_path, audio_path=writer.save_audio(pid, wave),
        audio_start=0.0, audio_duration=round(seconds, 4), source=label,
        source_time=math.nan, face_id=face_id, authors_split=it.split, frame=it.number,
    )


def _seen_split(df, test_fraction: float, guard: int, skips: Skips):
    """split_seen + segment_id: the authors' split if both exist, else the tail of each identity."""
    if set(df["authors_split"]) == {"train", "test"}:
        df["split_seen"] = df["authors_split"]
        df["segment_id"] = df["authors_split"] + "-" + df["identity"]
        return df
    keep = np.ones(len(df), bool)
    seen = np.array(["train"] * len(df), dtype=object)
    for _, rows in df.groupby("identity", sort=True):
        faces = list(dict.fromkeys(rows.sort_values("frame")["face_id"]))
        n_test = _n_test(len(faces), test_fraction)
        if n_test == 0:
            continue
        test_faces = set(faces[len(faces) - n_test:])
        guard_faces = set(faces[max(0, len(faces) - n_test - guard): len(faces) - n_test])
        for i in rows.index:
            if df.at[i, "face_id"] in test_faces:
                seen[i] = "test"
            elif df.at[i, "face_id"] in guard_faces:
                keep[i] = False
                skips.add(df.at[i, "pair_id"], "guard face before the seen test faces (audio windows may overlap)")
    df["split_seen"] = seen
    df["segment_id"] = df["identity"] + "-" + df["split_seen"]
    return df[keep].reset_index(drop=True)


# `w2p-eval prepare wav2pix-release` (its options only parse; the work is above)
@click.command("wav2pix-release")
@click.argument("src", metavar="SRC", type=click.Path())
@out_option
@seed_option
@click.option("--guard", default=4, show_default=True, metavar="N", type=click.IntRange(0),
              help="Faces dropped before the seen test tail when the release has a single split.")
@click.option("--min-seconds", default=1.0, show_default=True, metavar="S", type=click.FloatRange(0.0, min_open=True),
              help="Shortest usable wav.")
@test_fraction_option
@identity_meta_option
def command(src, out, seed, guard, min_seconds, test_fraction, identity_meta):
    """The authors' release ({train,test}/<name>/cropped_face_frame_N.png + .wav, or pickled path lists)."""
    echo_summary(out, prepare_release(src, out, seed=seed, test_fraction=test_fraction, guard=guard,
                                      min_seconds=min_seconds, identity_meta=identity_meta))


REGISTER_PREPARE_MODES = (Entry("wav2pix-release", "command", "The WAV2PIX authors' released subset.", order=20),)
