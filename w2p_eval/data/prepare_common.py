"""Helpers shared by every `prepare` mode: finishing a dataset folder, prepare.log, the summary line."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from w2p_eval.data.manifest import write_dataset
from w2p_eval.errors import InputError
from w2p_eval.utils import Skips, atomic_write_text

log = logging.getLogger(__name__)

PREPARE_LOG = "prepare.log"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
VIDEO_SUFFIXES = (".mp4", ".mpg", ".mpeg", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".flv", ".wmv")


def summary_line(df, skips: Skips) -> str:
    """One line: pairs, faces, identities and the skips by reason."""
    n_faces = df["face_id"].nunique() if len(df) else 0
    n_ids = df["identity"].nunique() if len(df) else 0
    return f"{len(df)} pairs, {n_faces} faces, {n_ids} identities; {skips.summary()}"


def finish_dataset(tmp: Path, df, info: dict, skips: Skips) -> str:
    """Write manifest.csv, dataset.json (with ``skipped`` counts) and prepare.log into ``tmp``.

    Raises InputError when no pair survived (the folder is then never moved into place).
    Returns the summary line.
    """
    if len(df) == 0:
        raise InputError(f"expected at least one usable speech-face pair, got none ({skips.summary()})")
    write_dataset(tmp, df, {**info, "skipped": dict(skips.counts)})
    line = summary_line(df, skips)
    lines = [f"kind: {info.get('kind')}", f"seed: {info.get('seed')}"]
    lines += [f"skipped\t{item}\t{reason}" for item, reason in skips.items]
    lines.append(f"summary: {line}")
    atomic_write_text(tmp / PREPARE_LOG, "\n".join(lines) + "\n")
    log.info("%s", line)
    return line


def require_dir(src: str | os.PathLike, what: str) -> Path:
    """SRC must be an existing, non-empty folder (InputError otherwise)."""
    src = Path(src)
    if not src.exists():
        raise InputError(f"expected {what}, got a missing path ({src})")
    if not src.is_dir():
        raise InputError(f"expected {what} (a folder), got a file ({src})")
    if not any(src.iterdir()):
        raise InputError(f"expected {what}, got an empty folder ({src})")
    return src


def read_summary(data_dir: str | os.PathLike) -> str:
    """The summary line of a finished dataset's prepare.log ('' when absent)."""
    path = Path(data_dir) / PREPARE_LOG
    if not path.is_file():
        return ""
    for line in reversed(path.read_text().splitlines()):
        if line.startswith("summary: "):
            return line[len("summary: "):]
    return ""
