"""Face images and arrays as uint8 faces: a folder's files matched to test pairs by name (:func:`match_folder`),
read with their header's size checked first (:func:`read_faces`), and Python arrays brought to uint8
(:func:`as_uint8_faces`). What a source skipped or ignored is logged and added to its ``notes`` (:func:`note`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from w2p_eval.data.images import ImageTooLarge, open_image
from w2p_eval.errors import InputError
from w2p_eval.utils import Skips

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
# the largest face a folder may hold: generators draw 64-256 px; a larger file is a counted skip (read from its
# header), so N faces never take more than N x 1024 x 1024 x 3 bytes
FACE_MAX_SIDE = 1024


def note(notes: list[str] | None, line: str) -> None:
    """A line for the end of the command (missing pairs, ignored files), logged now and kept in ``notes``."""
    log.warning(line)
    if notes is not None and line not in notes:
        notes.append(line)


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


def image_files(folder: Path) -> tuple[list[Path], list[Path]]:
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
    images, other = image_files(folder)
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
        note(notes, f"images {folder}: ignored {len(ignored)} files matching no test pair "
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
        note(notes, f"{folder}: {skips.summary()}")
    return (faces[:k] if faces is not None else np.zeros((0, 1, 1, 3), np.uint8)), keep
