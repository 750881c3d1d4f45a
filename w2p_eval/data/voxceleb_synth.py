"""Synthetic VoxCeleb trees in the exact layouts `prepare voxceleb` reads (tests and benchmarks; no real data).

:func:`make_voxceleb_tree` writes, for ``n`` identities:

- ``ROOT/meta/vox1_meta.csv`` (tab-separated, VoxCeleb1 columns) or ``full_vox2_meta.csv`` (comma-separated,
  HQ-VoxCeleb columns) with synthetic names spread over A-Z (so every split rule has train and test) — or the
  first ``n`` rows of a real meta file given as ``meta``, whose ids and names are then used;
- ``ROOT/audio/<VoxCeleb id>/<YouTube id>/<utterance>.wav`` (16 kHz PCM16) or ``.m4a`` (AAC, encoded by the
  ffmpeg of imageio-ffmpeg): the demo's formant voices (:func:`prepare_demo.synth_voice`);
- ``ROOT/faces/...`` in the layout asked for (``vggface1``, ``vggface2``, ``hq``, ``frames``): the demo's face
  renderer (:func:`prepare_demo._render_face`, faces the Haar detector finds) saved as JPEG.

Same arguments -> the same files (every draw from ``np.random.default_rng([seed, ...])``).
"""

from __future__ import annotations

import csv
import os
import string
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from PIL import Image

from w2p_eval.data.audio import SAMPLE_RATE, write_wav
from w2p_eval.data.prepare_demo import _base_face, _identity_params, _masks, _render_face, synth_voice
from w2p_eval.data.voxceleb_meta import LAYOUTS, MetaRow, read_meta

FRAMES_DIR = "1.6"


def _synthetic_rows(n: int, layout: str, seed: int) -> list[MetaRow]:
    rng = np.random.default_rng([seed, 7])
    rows = []
    for i in range(n):
        letter = string.ascii_uppercase[(i * 7) % 26]  # spread over A-Z: both Wen sides at any n >= 4
        name = f"{letter}{string.ascii_lowercase[i % 26]}_Synth{i:04d}"
        vox = f"id{(10001 if layout == 'vox1' else 1) + i:05d}"
        rows.append(MetaRow(name, vox, name if layout == "vox1" else None,
                            f"n{i + 1:06d}" if layout == "vox2" else None, "mf"[int(rng.integers(2))],
                            "Synthland" if layout == "vox1" else None, "test" if i % 10 == 3 else "dev",
                            "synthetic", i))
    return rows


def write_meta(path: Path, layout: str, rows: list[MetaRow]) -> Path:
    """A meta file of ``layout`` (``vox1``/``vox2``) holding ``rows``."""
    sep, cols = LAYOUTS[layout]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter=sep, lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            if layout == "vox1":
                w.writerow([r.vox_id, r.identity, r.gender, r.nationality, r.set])
            else:
                w.writerow([r.vggface2, r.identity, 100, 1, r.gender, r.vox_id, r.vggface2, r.gender, r.set])
    return path


def write_m4a(path: Path, wave: np.ndarray) -> None:
    """float [T] 16 kHz -> AAC in an .m4a container (imageio-ffmpeg's ffmpeg)."""
    pcm = (np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes()
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-f", "s16le", "-ar", str(SAMPLE_RATE),
           "-ac", "1", "-i", "-", "-c:a", "aac", "-b:a", "48k", str(path)]
    subprocess.run(cmd, input=pcm, check=True, capture_output=True, timeout=120)


def _face_dir(root: Path, layout: str, r: MetaRow, video: str) -> Path:
    if layout == "vggface2":
        return root / r.vggface2
    if layout == "frames":
        return root / r.identity / FRAMES_DIR / video
    return root / r.identity


def make_voxceleb_tree(root: str | os.PathLike, n: int, *, layout: str = "vggface1", audio: str = "wav",
                       meta: str | os.PathLike | None = None, meta_layout: str = "vox1", videos: int = 2,
                       utterances: int = 2, faces: int = 3, seconds: float = 2.2, seed: int = 0) -> dict:
    """Write a tree for ``n`` identities under ``root``; returns {"audio", "faces", "meta", "rows"}.

    ``videos`` x ``utterances`` utterances of ``seconds`` s per identity (``audio``: ``wav`` or ``m4a``), ``faces``
    JPEG faces (``frames``: per video). ``meta``: a real meta file whose first ``n`` rows are used (written
    through unchanged); else synthetic rows in ``meta_layout`` (a ``vggface2`` tree needs VGGFace2 ids: vox2).
    """
    root = Path(root)
    if meta is not None:
        src = read_meta(meta)
        rows, meta_path = src.rows[:n], Path(meta)
    else:
        rows = _synthetic_rows(n, "vox2" if layout == "vggface2" else meta_layout, seed)
        name = "vox1_meta.csv" if rows[0].vggface1 else "full_vox2_meta.csv"
        meta_path = write_meta(root / "meta" / name, "vox1" if rows[0].vggface1 else "vox2", rows)
    base = _base_face()
    skin, hair = _masks(base)
    for i, r in enumerate(rows):
        p = _identity_params(np.random.default_rng([seed, i, 1]), i, max(n, 1))
        for v in range(videos):
            video = f"yt{i:04d}v{v}_x-Z"  # YouTube ids hold letters, digits, - and _
            folder = root / "audio" / r.vox_id / video
            folder.mkdir(parents=True, exist_ok=True)
            for u in range(utterances):
                wave = synth_voice(p, np.random.default_rng([seed, i, v, u, 2]), seconds=seconds)
                path = folder / f"{u + 1:05d}.{audio}"
                write_m4a(path, wave) if audio == "m4a" else write_wav(path, wave)
            if layout == "frames" or v == 0:
                d = _face_dir(root / "faces", layout, r, video)
                d.mkdir(parents=True, exist_ok=True)
                for k in range(faces):
                    img = _render_face(base, skin, hair, p, np.random.default_rng([seed, i, v, k, 3]))
                    Image.fromarray(img).save(d / f"{k + 1:07d}.jpg" if layout == "frames" else d / f"{k + 1:04d}.jpg",
                                              quality=92)
    return {"audio": root / "audio", "faces": root / "faces", "meta": meta_path, "rows": rows}
