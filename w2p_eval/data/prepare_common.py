"""What every `prepare` mode shares: the pair writer, finishing a dataset folder, prepare.log, the summary.

A mode finds its source items and turns each into speech-face pairs; everything else goes through
one :class:`PairWriter`:

    writer = PairWriter(out)                     # nothing touched yet: bad SRC errors come first
    with writer.staging():                       # hidden temp folder beside OUT, faces/ + audio/
        rgb = writer.read_image(path, item)      # None (skip counted) when unreadable
        wave = writer.read_audio(wav, item, min_seconds=1.0)
        writer.add(pair_id=..., image_path=writer.save_face(fid, rgb), audio_path=writer.save_audio(pid, wave), ...)
        return writer.finish(info, test_fraction)  # splits, unreferenced files removed, manifest,
                                                   # dataset.json, prepare.log; moved into place atomically
"""

from __future__ import annotations

import logging
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import click
import numpy as np
import pandas as pd

from w2p_eval.data.audio import SAMPLE_RATE, load_audio, write_wav
from w2p_eval.data.identity_meta import check_identities, coverage_line, read_identity_meta_csv
from w2p_eval.data.images import load_image_rgb, save_png
from w2p_eval.data.manifest import staging_dir, write_dataset
from w2p_eval.data.splits import assign_splits
from w2p_eval.errors import InputError
from w2p_eval.utils import Skips, atomic_write_text

log = logging.getLogger(__name__)

PREPARE_LOG = "prepare.log"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
VIDEO_SUFFIXES = (".mp4", ".mpg", ".mpeg", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".flv", ".wmv")
FACES, AUDIO = "faces", "audio"  # the dataset's sub-folders


def safe_name(text: str) -> str:
    """File-name-safe version of an identity or stem."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


class PairWriter:
    """Writes the pairs of one `prepare` run into a staging folder and finishes the dataset atomically.

    ``skips`` counts every item a mode passes over (by reason); ``rows`` holds the manifest rows
    added so far (the columns of ``manifest.COLUMNS`` plus any mode-specific ones).
    """

    def __init__(self, out: str | os.PathLike, what: str = "items", identity_meta: str | os.PathLike | None = None):
        self.out = out
        # --identity-meta CSV: read and checked now (bad values fail before any work), identities at finish
        self.identity_meta = None if identity_meta is None else read_identity_meta_csv(identity_meta)
        self.skips = Skips(what)
        self.rows: list[dict] = []
        self.root: Path | None = None  # the staging folder while :meth:`staging` is open

    @contextmanager
    def staging(self) -> Iterator["PairWriter"]:
        """The hidden temp folder beside ``out`` (with faces/ and audio/); moved into place only when the
        block ends without an error (see ``manifest.staging_dir``: an existing non-empty ``out`` is refused)."""
        with staging_dir(self.out) as tmp:
            (tmp / FACES).mkdir()
            (tmp / AUDIO).mkdir()
            self.root = tmp
            try:
                yield self
            finally:
                self.root = None

    def skip(self, item: str, reason: str) -> None:
        self.skips.add(item, reason)

    def read_image(self, path: Path, item: str) -> np.ndarray | None:
        """uint8 [H, W, 3] RGB, or None with the skip "unreadable image" counted against ``item``."""
        try:
            return load_image_rgb(path)
        except InputError:
            self.skip(item, "unreadable image")
            return None

    def read_audio(self, path: Path, item: str, min_seconds: float) -> tuple[np.ndarray, float] | None:
        """(float32 [T] mono 16 kHz, seconds), or None with the skip counted against ``item``:
        "unreadable audio", or "wav shorter than S s" below ``min_seconds`` (1 ms tolerance)."""
        try:
            wave = load_audio(path)
        except InputError:
            self.skip(item, "unreadable audio")
            return None
        seconds = len(wave) / SAMPLE_RATE
        if seconds + 1e-3 < min_seconds:
            self.skip(item, f"wav shorter than {min_seconds:g} s")
            return None
        return wave, seconds

    def save_face(self, name: str, rgb: np.ndarray) -> str:
        """uint8 [H, W, 3] RGB -> faces/<name>.png; returns that manifest path."""
        rel = f"{FACES}/{name}.png"
        save_png(self.root / rel, rgb)
        return rel

    def save_audio(self, name: str, wave: np.ndarray) -> str:
        """float [T] in [-1, 1] at 16 kHz -> audio/<name>.wav (PCM16); returns that manifest path."""
        rel = f"{AUDIO}/{name}.wav"
        write_wav(self.root / rel, wave)
        return rel

    def add(self, **row) -> None:
        """One manifest row (one speech-face pair)."""
        self.rows.append(row)

    def finish(self, info: dict, test_fraction: float, *, keep_seen: bool = False,
               regroup: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
               unseen: dict[str, str] | None = None) -> str:
        """Splits (``regroup`` first: mode-specific segment or split_seen columns; ``keep_seen`` keeps a
        split_seen it set; ``unseen`` {identity: train|val|test} replaces the seeded unseen split, e.g. a
        published identity split), files no row names removed, then :func:`finish_dataset`. Returns the summary."""
        df = pd.DataFrame(self.rows)
        if len(df):
            if regroup is not None:
                df = regroup(df)
            df = assign_splits(df, seed=info["seed"], test_fraction=test_fraction, keep_seen=keep_seen)
            if unseen is not None:
                df["split_unseen"] = df["identity"].map(unseen)
            self._remove_unreferenced(df)
            if self.identity_meta is not None:
                info = {**info, "identity_meta": check_identities(self.identity_meta, set(df["identity"]))}
        return finish_dataset(self.root, df, info, self.skips)

    def _remove_unreferenced(self, df: pd.DataFrame) -> None:
        """Delete written files of dropped pairs (so the folder holds only what the manifest names)."""
        used = set(df["image_path"]) | set(df["audio_path"])
        for sub in (FACES, AUDIO):
            for f in (self.root / sub).iterdir():
                if f"{sub}/{f.name}" not in used:
                    f.unlink()


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
    if info.get("identity_meta"):
        line += f"; {coverage_line(info['identity_meta'])}"
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


# the options every mode's `prepare <mode>` sub-command shares (each mode's command lives in its own module)
out_option = click.option("--out", "out", required=True, metavar="DATA", type=click.Path(file_okay=False),
                          help="New (or empty) dataset folder to create; written atomically.")
seed_option = click.option("--seed", default=0, show_default=True, metavar="INT", type=int,
                           help="Seed for audio crops and split choices.")
test_fraction_option = click.option(
    "--test-fraction", default=0.2, show_default=True, metavar="F",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    help="Share of each identity's segments (seen) and of identities (unseen) put in test.")
identity_meta_option = click.option(
    "--identity-meta", "identity_meta", metavar="CSV", type=click.Path(), default=None,
    help="Per-identity labels: CSV with column identity and any of gender (f/m), age (years), ...; <attr>_source "
         "columns say where a label came from. Every identity needs a row.")


def echo_summary(out: str, line: str) -> None:
    """A mode's one line of output: ``<out>: <summary>``."""
    click.echo(f"{out}: {line}")
