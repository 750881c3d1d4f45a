"""The dataset folder format: ``manifest.csv`` (one row per speech-face pair) + ``dataset.json``.

See docs/architecture.md for the column contract. Identity labels are indexes into the
sorted identity list stored in dataset.json, so they never change between runs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import soundfile as sf
from PIL import Image
from tqdm import tqdm

from w2p_eval.data.audio import SAMPLE_RATE
from w2p_eval.data.images import open_image
from w2p_eval.errors import InputError
from w2p_eval.outdir import clean_stale_partials, sibling_lock
from w2p_eval.utils import atomic_path, atomic_write_json, make_temp_dir, sha256_file
from w2p_eval.validate import check_dataset_info, check_location, manifest_row_problems, resolve_inside

MANIFEST = "manifest.csv"
DATASET_JSON = "dataset.json"
FORMAT = "w2p-eval-dataset"
COLUMNS = [
    "pair_id", "identity", "split_seen", "split_unseen", "image_path", "audio_path",
    "audio_start", "audio_duration", "source", "source_time", "face_id", "segment_id",
]
SPLITS = ("train", "test")
PROTOCOLS = ("seen", "unseen")


def _check_dir(data_dir: str | os.PathLike) -> Path:
    data_dir = Path(data_dir)
    if not (data_dir / MANIFEST).is_file() or not (data_dir / DATASET_JSON).is_file():
        raise InputError(
            f"expected a w2p-eval dataset folder with {MANIFEST} and {DATASET_JSON} "
            f"(made by `w2p-eval prepare`), got {data_dir}"
        )
    return data_dir


def load_info(data_dir: str | os.PathLike) -> dict:
    data_dir = _check_dir(data_dir)
    try:
        info = json.loads((data_dir / DATASET_JSON).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"expected JSON in {data_dir / DATASET_JSON}, got unreadable text ({exc})") from None
    return check_dataset_info(info, data_dir / DATASET_JSON, FORMAT)


def load_manifest(data_dir: str | os.PathLike, check_files: bool = True):
    """Read and validate ``DATA/manifest.csv`` -> pandas DataFrame (one row per pair).

    With ``check_files`` (the default) pairs whose face image or audio cannot be read (missing,
    corrupt, or holding less audio than the row says) are dropped, counted and logged, and the
    command reports them when it ends (:func:`skipped_report`), so one bad file never aborts a
    training or an evaluation. The check runs once per dataset and process.
    """
    df = _read_manifest(data_dir)
    if check_files:
        df = _drop_unreadable(Path(data_dir), df)
    return df


# (resolved data dir, manifest hash) -> (kept pair ids, {reason: count}, [examples]); one check per process
_CHECKED: dict[tuple[str, str], tuple[frozenset, dict, list]] = {}


def _image_problem(img: Path) -> tuple[str, str] | None:
    try:
        with open_image(img) as im:  # the declared size first (too many pixels: skipped, never decoded)
            im.verify()  # the structure (PNG chunks + CRCs)
        with Image.open(img) as im:
            im.load()  # and every pixel: a truncated JPEG-in-.png or a garbage zlib stream fails here
    except FileNotFoundError:
        return "image missing", str(img)
    except Exception as exc:  # PIL raises many types for a bad file
        return "image unreadable", f"{img} ({exc.__class__.__name__})"
    return None


def _audio_seconds(wav: Path) -> float | tuple[str, str]:
    try:
        info = sf.info(str(wav))
        if info.frames > 0 and info.subtype in ("FLOAT", "DOUBLE"):  # only float samples can be NaN/inf
            x, _ = sf.read(str(wav), dtype="float32", always_2d=True)
            if not np.isfinite(x).all():
                return "audio not finite", f"{wav} (NaN/inf samples)"
    except Exception as exc:  # soundfile raises RuntimeError/LibsndfileError/OSError
        return ("audio unreadable" if wav.exists() else "audio missing"), f"{wav} ({exc.__class__.__name__})"
    if info.frames == 0 or info.samplerate <= 0:
        return "audio empty", str(wav)
    return info.frames / info.samplerate


def _drop_unreadable(data_dir: Path, df):
    """Drop (and count, log, remember for :func:`skipped_report`) pairs whose image or audio is unusable:
    missing, corrupt (every pixel is decoded), non-finite, or holding less audio than
    ``audio_start + audio_duration``. (Rows with bad numbers or paths leaving the dataset were
    already dropped by :func:`_read_manifest`.)"""
    key = (str(data_dir.resolve()), manifest_hash(data_dir))
    if key not in _CHECKED:
        keep, reasons, examples = [], {}, []
        images: dict[str, tuple | None] = {}
        audio: dict[str, float | tuple] = {}
        rows = df[["pair_id", "image_path", "audio_path", "audio_start", "audio_duration"]].itertuples(index=False)
        for row in tqdm(rows, total=len(df), desc="checking files", unit="pair", disable=len(df) < 5000,
                        dynamic_ncols=True):
            if row.image_path not in images:
                images[row.image_path] = _image_problem(resolve_inside(data_dir, row.image_path))
            if row.audio_path not in audio:
                audio[row.audio_path] = _audio_seconds(resolve_inside(data_dir, row.audio_path))
            why = images[row.image_path]
            have = audio[row.audio_path]
            if why is None and isinstance(have, tuple):
                why = have
            need = float(row.audio_start) + float(row.audio_duration)
            if why is None and have + 1e-3 < need:
                why = "audio too short", f"{data_dir / str(row.audio_path)} ({have:.2f} s, the pair needs {need:.2f} s)"
            if why is None:
                keep.append(row.pair_id)
                continue
            reason, detail = why
            reasons[reason] = reasons.get(reason, 0) + 1
            if len(examples) < 3:
                examples.append(f"{row.pair_id}: {reason}: {detail}")
        _CHECKED[key] = (frozenset(keep), reasons, examples)
        if reasons:
            logging.getLogger(__name__).warning(
                "%s: skipping %d of %d pairs with unreadable files (%s); e.g. %s", data_dir,
                sum(reasons.values()), len(df), ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items())),
                "; ".join(examples))
    keep, reasons, _ = _CHECKED[key]
    if not reasons:
        return df
    return df[df["pair_id"].isin(keep)].reset_index(drop=True)


def skipped_report() -> list[str]:
    """One line per dataset whose unreadable pairs were skipped in this process (for the end of a command)."""
    lines = []
    for (path, _), (reasons, examples) in _BAD_ROWS.items():
        if reasons:
            n = sum(reasons.values())
            lines.append(f"skipped {n} manifest row{'s' if n != 1 else ''} of {path} "
                         f"({', '.join(f'{k}: {v}' for k, v in sorted(reasons.items()))}); first: {examples[0]}")
    for (path, _), (keep, reasons, examples) in _CHECKED.items():
        if reasons:
            n = sum(reasons.values())
            lines.append(f"skipped {n} pair{'s' if n != 1 else ''} of {path} with unreadable files "
                         f"({', '.join(f'{k}: {v}' for k, v in sorted(reasons.items()))}); first: {examples[0]}")
    return lines


def _read_manifest(data_dir: str | os.PathLike):
    data_dir = _check_dir(data_dir)
    try:
        df = pd.read_csv(
            data_dir / MANIFEST,
            dtype={"pair_id": str, "identity": str, "face_id": str, "segment_id": str, "source": str},
            keep_default_na=False, na_values={"source_time": ["", "nan", "NaN"]},
        )
    except Exception as exc:  # pandas raises many types for a bad CSV
        raise InputError(f"expected a CSV table in {data_dir / MANIFEST}, got an unreadable file ({exc})") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{data_dir / MANIFEST} lacks columns {missing}; expected {COLUMNS}")
    for col in ("split_seen", "split_unseen"):
        bad = set(df[col]) - set(SPLITS)
        if bad:
            raise InputError(f"{col} must be one of {list(SPLITS)}, got {sorted(bad)} in {data_dir / MANIFEST}")
    if df["pair_id"].duplicated().any():
        dup = df.loc[df["pair_id"].duplicated(), "pair_id"].iloc[0]
        raise InputError(f"pair_id must be unique, got {dup!r} twice in {data_dir / MANIFEST}")
    return _drop_bad_rows(data_dir, df)


# (resolved data dir, manifest hash) -> ({reason: count}, [examples]): rows dropped for bad values or paths
_BAD_ROWS: dict[tuple[str, str], tuple[dict, list]] = {}


def _drop_bad_rows(data_dir: Path, df):
    """Rows whose offsets are not finite non-negative numbers, or whose paths leave the dataset folder
    (absolute, ``..``, symlinks out), are dropped and counted; the numbers become floats."""
    problems = manifest_row_problems(df, data_dir, identities(data_dir))
    if problems:
        reasons: dict[str, int] = {}
        for reason, _ in problems.values():
            reasons[reason] = reasons.get(reason, 0) + 1
        examples = [f"row {i + 2} (pair {df['pair_id'].iloc[i]}): {r}: {d}" for i, (r, d) in
                    sorted(problems.items())[:3]]
        key = (str(data_dir.resolve()), manifest_hash(data_dir))
        if key not in _BAD_ROWS:
            _BAD_ROWS[key] = (reasons, examples)
            logging.getLogger(__name__).info("%s: skipping %d manifest rows (%s); e.g. %s", data_dir,
                                                len(problems), reasons, "; ".join(examples))
        if len(problems) == len(df):  # nothing left: say why here, not "found none" later
            raise InputError(f"expected usable rows in {data_dir / MANIFEST}, got none: all {len(df)} rows were "
                             f"skipped ({', '.join(f'{k}: {v}' for k, v in sorted(reasons.items()))}); first: "
                             f"{examples[0]}")
        df = df.drop(index=df.index[sorted(problems)]).reset_index(drop=True)
    df["audio_start"] = df["audio_start"].astype(float)
    df["audio_duration"] = df["audio_duration"].astype(float)
    return df


def identities(data_dir: str | os.PathLike) -> list[str]:
    """The dataset's identities, sorted (label i == identities[i])."""
    return list(load_info(data_dir)["identities"])


def manifest_hash(data_dir: str | os.PathLike) -> str:
    """Short sha256 of manifest.csv: the key every cache of this dataset uses."""
    return sha256_file(_check_dir(data_dir) / MANIFEST)


def split_frame(df, split: str, protocol: str = "seen"):
    """Rows of one split under one protocol (``seen`` or ``unseen``)."""
    if protocol not in PROTOCOLS:
        raise InputError(f"expected protocol one of {list(PROTOCOLS)}, got {protocol!r}")
    if split not in SPLITS:
        raise InputError(f"expected split one of {list(SPLITS)}, got {split!r}")
    return df[df[f"split_{protocol}"] == split].reset_index(drop=True)


def write_dataset(out_dir: str | os.PathLike, df, info: dict) -> None:
    """Write manifest.csv + dataset.json into ``out_dir`` (atomically, file by file).

    ``info`` gets ``format``, ``version``, ``identities`` (sorted), ``sample_rate`` and ``n_pairs`` filled in.
    """
    out_dir = Path(out_dir)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"manifest lacks columns {missing}")
    df = df[COLUMNS + [c for c in df.columns if c not in COLUMNS]].sort_values("pair_id").reset_index(drop=True)
    full = {
        "format": FORMAT,
        "version": 1,
        "sample_rate": SAMPLE_RATE,
        **info,
        "identities": sorted(set(df["identity"])),
        "n_pairs": int(len(df)),
    }
    with atomic_path(out_dir / MANIFEST) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6f")
    atomic_write_json(out_dir / DATASET_JSON, full)


@contextmanager
def staging_dir(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Build a dataset in a hidden temp folder beside ``out_dir``; move it into place only on success.

    An interrupted prepare leaves no folder at ``out_dir`` that looks complete. An existing
    non-empty ``out_dir`` is refused (InputError) rather than overwritten.
    """
    out_dir = check_location(out_dir, "--out", file=False)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InputError(f"expected --out to be a new or empty folder, got existing {out_dir}")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with sibling_lock(out_dir):  # a second prepare to the same --out is refused while this one runs
        clean_stale_partials(out_dir)
        tmp = make_temp_dir(f".{Path(os.path.abspath(out_dir)).name}.partial-", Path(os.path.abspath(out_dir)).parent)
        try:
            yield tmp
            if out_dir.exists():
                if any(out_dir.iterdir()):
                    raise InputError(f"expected --out to stay empty while preparing, but {out_dir} got files")
                out_dir.rmdir()
            os.replace(tmp, out_dir)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
