"""`prepare folder`: a generic ``SRC/<identity>/<stem>.{png,jpg,jpeg}`` + ``<stem>.wav`` layout.

Each image with a same-stem WAV is one pair (audio converted to 16 kHz mono PCM16, the whole
file used; images re-saved as RGB PNG at their own size). Exact-duplicate images within an
identity share one ``face_id``. Each stem is its own source segment, unless the stem ends in
``_<number>`` or ``-<number>``: stems that differ only in that number (clips of one recording)
form one segment, so the seen split never puts two parts of one recording on both sides.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from pathlib import Path

import click

from w2p_eval.data.prepare_common import (IMAGE_SUFFIXES, PairWriter, echo_summary, identity_meta_option, out_option,
                                          require_dir, safe_name, seed_option, test_fraction_option)
from w2p_eval.errors import InputError
from w2p_eval.registry import Entry

log = logging.getLogger(__name__)


def recording_of(stem: str) -> str:
    """``talk_003`` -> ``talk``; a stem without a trailing number is its own recording."""
    return re.sub(r"[_-]\d+$", "", stem) or stem


def prepare_folder(src, out, *, seed: int = 0, test_fraction: float = 0.2, min_seconds: float = 1.0,
                   identity_meta=None) -> str:
    """Build a dataset at ``out`` from the folder layout at ``src``; returns the summary line."""
    src = require_dir(src, "a folder of <identity>/<stem>.png|jpg + <stem>.wav")
    ident_dirs = sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    images = [(d, f) for d in ident_dirs for f in sorted(d.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        raise InputError(f"expected <identity>/<stem>.png|jpg image files under SRC, got none ({src})")
    writer = PairWriter(out, identity_meta=identity_meta)
    with writer.staging():
        seen_hash: dict[tuple[str, str], tuple[str, str]] = {}  # (identity, pixels digest) -> (face_id, path)
        for d, f in images:
            _add_pair(writer, d.name, f, seen_hash, min_seconds)
        info = {"kind": "folder", "seed": seed, "params": dict(test_fraction=test_fraction, min_seconds=min_seconds)}
        return writer.finish(info, test_fraction, regroup=_merge_shared_faces)


def _add_pair(writer: PairWriter, ident: str, image: Path, seen_hash: dict, min_seconds: float) -> None:
    """``<ident>/<stem>.png|jpg`` + ``<stem>.wav`` -> one pair (an image seen before in this identity
    keeps its first face_id and file)."""
    rel, wav = f"{ident}/{image.name}", image.with_suffix(".wav")
    if not wav.is_file():
        writer.skip(rel, "no same-stem .wav")
        return
    rgb = writer.read_image(image, rel)
    if rgb is None:
        return
    audio = writer.read_audio(wav, f"{ident}/{wav.name}", min_seconds)
    if audio is None:
        return
    wave, seconds = audio
    pid = safe_name(f"{ident}-{image.stem}")
    digest = hashlib.sha1(rgb.tobytes() + str(rgb.shape).encode()).hexdigest()
    face_id, image_path = seen_hash.setdefault((ident, digest), (pid, f"faces/{pid}.png"))
    if face_id == pid:
        writer.save_face(pid, rgb)
    writer.add(
        pair_id=pid, identity=ident, image_path=image_path, audio_path=writer.save_audio(pid, wave),
        audio_start=0.0, audio_duration=round(seconds, 4), source=rel, source_time=math.nan,
        face_id=face_id, segment_id=safe_name(f"{ident}-{recording_of(image.stem)}"),
    )


def _merge_shared_faces(df):
    """Segments that share a face_id are merged (a duplicate image must not straddle the seen split)."""
    parent = {s: s for s in df["segment_id"]}

    def root(s):
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    for _, segs in df.groupby("face_id")["segment_id"]:
        segs = list(segs)
        for s in segs[1:]:
            parent[root(s)] = root(segs[0])
    df = df.copy()
    df["segment_id"] = df["segment_id"].map(root)
    return df


# `w2p-eval prepare folder` (its options only parse; the work is above)
@click.command("folder")
@click.argument("src", metavar="SRC", type=click.Path())
@out_option
@seed_option
@click.option("--min-seconds", default=1.0, show_default=True, metavar="S", type=click.FloatRange(0.0, min_open=True),
              help="Shortest usable wav.")
@test_fraction_option
@identity_meta_option
def command(src, out, seed, min_seconds, test_fraction, identity_meta):
    """Generic SRC/<identity>/<stem>.{png,jpg} + <stem>.wav."""
    echo_summary(out, prepare_folder(src, out, seed=seed, test_fraction=test_fraction, min_seconds=min_seconds,
                                     identity_meta=identity_meta))


REGISTER_PREPARE_MODES = (Entry("folder", "command", "Generic SRC/<identity>/<stem>.{png,jpg} + <stem>.wav.",
                                order=30),)
