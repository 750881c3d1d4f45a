"""The dataset folder's layout: its two file names, the manifest's columns, splits and protocols, and the
checks every reader starts from (``check_dir``, ``split_frame``).

The bottom of ``data/``: :mod:`w2p_eval.data.folder` (reading) and :mod:`w2p_eval.data.manifest` (the public
read/write functions) build on it, so neither imports the other's importer.
"""

from __future__ import annotations

import os
from pathlib import Path

from w2p_eval.errors import InputError

MANIFEST = "manifest.csv"
DATASET_JSON = "dataset.json"
FORMAT = "w2p-eval-dataset"
COLUMNS = [
    "pair_id", "identity", "split_seen", "split_unseen", "image_path", "audio_path",
    "audio_start", "audio_duration", "source", "source_time", "face_id", "segment_id",
]
SPLITS = ("train", "test")  # what a command scores or trains on
STORED_SPLITS = ("train", "val", "test")  # what a manifest may hold: `val` where a protocol has one (sf2f);
# val rows are never train and never test, so training, evaluation and test lists leave them alone
PROTOCOLS = ("seen", "unseen")


def check_dir(data_dir: str | os.PathLike) -> Path:
    data_dir = Path(data_dir)
    if not (data_dir / MANIFEST).is_file() or not (data_dir / DATASET_JSON).is_file():
        raise InputError(
            f"expected a w2p-eval dataset folder with {MANIFEST} and {DATASET_JSON} "
            f"(made by `w2p-eval prepare`), got {data_dir}"
        )
    return data_dir


def split_frame(df, split: str, protocol: str = "seen"):
    """Rows of one split (``train``, ``test``, or ``val`` where the dataset has one) under one protocol."""
    if protocol not in PROTOCOLS:
        raise InputError(f"expected protocol one of {list(PROTOCOLS)}, got {protocol!r}")
    if split not in STORED_SPLITS:
        raise InputError(f"expected split one of {list(STORED_SPLITS)}, got {split!r}")
    return df[df[f"split_{protocol}"] == split].reset_index(drop=True)
