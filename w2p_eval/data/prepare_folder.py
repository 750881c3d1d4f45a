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

from w2p_eval.data.prepare_common import IMAGE_SUFFIXES, finish_dataset, require_dir
from w2p_eval.data.prepare_videos import safe_name
from w2p_eval.errors import InputError
from w2p_eval.utils import Skips

log = logging.getLogger(__name__)


def recording_of(stem: str) -> str:
    """``talk_003`` -> ``talk``; a stem without a trailing number is its own recording."""
    return re.sub(r"[_-]\d+$", "", stem) or stem


def prepare_folder(src, out, *, seed: int = 0, test_fraction: float = 0.2, min_seconds: float = 1.0) -> str:
    """Build a dataset at ``out`` from the folder layout at ``src``; returns the summary line."""
    import pandas as pd

    from w2p_eval.data.audio import load_audio, write_wav
    from w2p_eval.data.images import load_image_rgb, save_png
    from w2p_eval.data.manifest import staging_dir
    from w2p_eval.data.splits import assign_splits

    src = require_dir(src, "a folder of <identity>/<stem>.png|jpg + <stem>.wav")
    ident_dirs = sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    images = [(d, f) for d in ident_dirs for f in sorted(d.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        raise InputError(f"expected <identity>/<stem>.png|jpg image files under SRC, got none ({src})")
    skips = Skips("items")
    rows, seen_hash = [], {}
    with staging_dir(out) as tmp:
        (tmp / "faces").mkdir()
        (tmp / "audio").mkdir()
        for d, f in images:
            ident, rel = d.name, f"{d.name}/{f.name}"
            wav = f.with_suffix(".wav")
            if not wav.is_file():
                skips.add(rel, "no same-stem .wav")
                continue
            try:
                rgb = load_image_rgb(f)
            except InputError:
                skips.add(rel, "unreadable image")
                continue
            try:
                wave = load_audio(wav)
            except InputError:
                skips.add(f"{d.name}/{wav.name}", "unreadable audio")
                continue
            seconds = len(wave) / 16000
            if seconds + 1e-3 < min_seconds:
                skips.add(f"{d.name}/{wav.name}", f"wav shorter than {min_seconds:g} s")
                continue
            pid = safe_name(f"{ident}-{f.stem}")
            digest = hashlib.sha1(rgb.tobytes() + str(rgb.shape).encode()).hexdigest()
            face_id, image_path = seen_hash.setdefault((ident, digest), (pid, f"faces/{pid}.png"))
            if face_id == pid:
                save_png(tmp / image_path, rgb)
            write_wav(tmp / "audio" / f"{pid}.wav", wave)
            rows.append(dict(
                pair_id=pid, identity=ident, image_path=image_path, audio_path=f"audio/{pid}.wav",
                audio_start=0.0, audio_duration=round(seconds, 4), source=rel, source_time=math.nan,
                face_id=face_id, segment_id=safe_name(f"{ident}-{recording_of(f.stem)}"),
            ))
        df = pd.DataFrame(rows)
        if len(df):
            df = _merge_shared_faces(df)
            df = assign_splits(df, seed=seed, test_fraction=test_fraction)
        info = {"kind": "folder", "seed": seed, "params": dict(test_fraction=test_fraction, min_seconds=min_seconds)}
        return finish_dataset(tmp, df, info, skips)


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
