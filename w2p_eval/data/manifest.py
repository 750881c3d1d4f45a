"""The dataset folder format: ``manifest.csv`` (one row per speech-face pair) + ``dataset.json``.

The public read/write functions of a dataset folder. The layout's names (file names, COLUMNS, SPLITS, PROTOCOLS,
check_dir, split_frame) live in :mod:`w2p_eval.data.layout` and are re-exported here; reading goes through
:mod:`w2p_eval.data.folder`, which builds on the layout only (no import circle).
See docs/architecture.md for the column contract. Identity labels are indexes into the
sorted identity list stored in dataset.json, so they never change between runs.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from w2p_eval.data.audio import SAMPLE_RATE
from w2p_eval.data.folder import DataFolder, open_dataset, read_info, skipped_report  # noqa: F401 (re-exported)
from w2p_eval.data.layout import (  # noqa: F401  (re-exported: the format's names are read from here)
    COLUMNS, DATASET_JSON, FORMAT, MANIFEST, PROTOCOLS, SPLITS, STORED_SPLITS, check_dir, split_frame,
)
from w2p_eval.errors import InputError
from w2p_eval.outdir import clean_stale_partials, sibling_lock
from w2p_eval.utils import atomic_path, atomic_write_json, make_temp_dir, sha256_file
from w2p_eval.validate import check_location


def load_info(data_dir) -> dict:
    """dataset.json, checked (a DataFolder's ``info`` as is; for a path only dataset.json is read)."""
    return data_dir.info if isinstance(data_dir, DataFolder) else read_info(check_dir(data_dir))


def load_manifest(data_dir, check_files: bool = True):
    """The manifest rows -> pandas DataFrame (one row per pair). ``data_dir``: a path or a
    :class:`~w2p_eval.data.folder.DataFolder` (what every command passes down; a path is opened here).

    Rows with bad numbers or paths leaving the dataset are always dropped and counted. With
    ``check_files`` (the default) pairs whose face image or audio cannot be read (missing, corrupt, or
    holding less audio than the row says) are dropped too: this checks EVERY row, so code that reads one
    split asks ``DataFolder.split(split, protocol)`` instead, which checks only those. Skips are reported
    when the command ends (:func:`skipped_report`).
    """
    ds = open_dataset(data_dir)
    return ds.readable(ds.rows) if check_files else ds.rows.copy()


def identities(data_dir) -> list[str]:
    """The dataset's identities, sorted (label i == identities[i])."""
    return list(open_dataset(data_dir).identities)


def manifest_hash(data_dir) -> str:
    """Short sha256 of manifest.csv: the key every cache of this dataset uses (a DataFolder's, as read)."""
    if isinstance(data_dir, DataFolder):
        return data_dir.hash
    return sha256_file(check_dir(data_dir) / MANIFEST)


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
