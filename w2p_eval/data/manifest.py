"""The dataset folder format: ``manifest.csv`` (one row per speech-face pair) + ``dataset.json``.

See docs/architecture.md for the column contract. Identity labels are indexes into the
sorted identity list stored in dataset.json, so they never change between runs.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from w2p_eval.errors import InputError
from w2p_eval.utils import atomic_path, atomic_write_json, sha256_file

MANIFEST = "manifest.csv"
DATASET_JSON = "dataset.json"
FORMAT = "w2p-eval-dataset"
SAMPLE_RATE = 16000
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
    if info.get("format") != FORMAT:
        raise InputError(f"expected format {FORMAT!r} in {data_dir / DATASET_JSON}, got {info.get('format')!r}")
    return info


def load_manifest(data_dir: str | os.PathLike):
    """Read and validate ``DATA/manifest.csv`` -> pandas DataFrame (one row per pair)."""
    import pandas as pd

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
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InputError(f"expected --out to be a new or empty folder, got existing {out_dir}")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        yield tmp
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def is_nan(x) -> bool:
    return isinstance(x, float) and math.isnan(x)
