"""`prepare videos`: talking-head videos -> speech-face pairs, the way WAV2PIX built its data.

Per video: ffmpeg (the binary from imageio-ffmpeg) extracts 16 kHz mono audio and one frame
every ``every`` seconds (at every/2, 3*every/2, ...). The OpenCV Haar frontal-face cascade
(``detectMultiScale3``, scaleFactor 1.1, minNeighbors 5, minSize 40) runs on each frame; the
highest-confidence box is kept when its level weight is >= ``min_confidence``, cropped square
with ``margin`` and resized to ``image_size``. The face keeps the audio within +-``window`` s,
clipped to its *source segment*: each video's timeline is cut into equal disjoint segments
(about ``segment`` s long, at least two when the video holds two crops), so the seen-protocol
split, which moves whole segments, never shares audio between train and test. Each face gets
``k`` seeded random crops of ``crop_seconds`` from its window.

Identity: the sub-folder name (``SRC/<identity>/<video>``), the file stem for videos directly in
SRC (``SRC/<identity>.mp4``), or ``--mapping`` CSV with columns ``file,identity`` (file = path
relative to SRC or bare file name).
"""

from __future__ import annotations

import csv
import logging
import os
import re
import subprocess
import zlib
from pathlib import Path

import numpy as np

from w2p_eval.data.audio import SAMPLE_RATE, write_wav
from w2p_eval.data.prepare_common import VIDEO_SUFFIXES, finish_dataset, require_dir
from w2p_eval.errors import InputError
from w2p_eval.utils import Skips

log = logging.getLogger(__name__)

HAAR_PARAMS = dict(scaleFactor=1.1, minNeighbors=5, minSize=(40, 40), outputRejectLevels=True)


def safe_name(text: str) -> str:
    """File-name-safe version of an identity or stem."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def read_mapping(path: str | os.PathLike) -> dict[str, str]:
    """``file,identity`` CSV -> {file: identity}. InputError on a missing/malformed file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"expected a --mapping CSV file with columns file,identity, got a missing path ({path})")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"expected a --mapping CSV with columns file,identity, got unreadable text ({path}: {exc})") from None
    if not rows or not {"file", "identity"} <= set(rows[0].keys() if rows[0] else []):
        cols = list(rows[0].keys()) if rows else []
        raise InputError(f"expected a --mapping CSV with columns file,identity, got columns {cols} ({path})")
    out = {}
    for row in rows:
        f, ident = (row.get("file") or "").strip(), (row.get("identity") or "").strip()
        if not f or not ident:
            raise InputError(f"expected every --mapping row to name a file and an identity, got {row} ({path})")
        out[f] = ident
    return out


def find_videos(src: Path, mapping: dict[str, str] | None, skips: Skips) -> list[tuple[Path, str]]:
    """[(video path, identity)] sorted by path; unmapped videos are skipped and counted."""
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not files:
        raise InputError(f"expected video files ({', '.join(VIDEO_SUFFIXES)}) in SRC or its sub-folders, got none ({src})")
    out = []
    for p in files:
        rel = p.relative_to(src).as_posix()
        if mapping is not None:
            ident = mapping.get(rel, mapping.get(p.name))
            if ident is None:
                skips.add(rel, "video not listed in --mapping")
                continue
        else:
            ident = p.parent.relative_to(src).parts[0] if p.parent != src else p.stem
        out.append((p, ident))
    return out


def extract_audio(path: Path, ffmpeg: str) -> np.ndarray:
    """The whole audio track -> float32 [T] mono 16 kHz. ValueError('no audio track') when absent."""
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-vn", "-ac", "1", "-ar", str(SAMPLE_RATE),
           "-f", "s16le", "-acodec", "pcm_s16le", "-"]
    proc = subprocess.run(cmd, capture_output=True, timeout=600)
    if proc.returncode != 0 or not proc.stdout:
        err = proc.stderr.decode(errors="replace")
        if "does not contain any stream" in err or "matches no streams" in err or (proc.returncode == 0 and not proc.stdout):
            raise ValueError("no audio track")
        raise ValueError("unreadable audio")
    return np.frombuffer(proc.stdout, dtype="<i2").astype(np.float32) / 32768.0


def sample_frames(path: Path, every: float) -> tuple[list[tuple[float, np.ndarray]], float]:
    """Frames at every/2 + i*every s -> ([(time s, uint8 [H, W, 3] RGB)], duration s)."""
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(
        str(path), pix_fmt="rgb24", input_params=["-ss", f"{every / 2:.3f}"],
        output_params=["-vf", f"fps=1/{every}"],
    )
    try:
        meta = next(gen)
        w, h = meta["size"]
        frames = [
            (every / 2 + i * every, np.frombuffer(buf, np.uint8).reshape(h, w, 3))
            for i, buf in enumerate(gen)
        ]
    finally:
        gen.close()
    return frames, float(meta.get("duration") or 0.0)


def best_face(cascade, img: np.ndarray) -> tuple[tuple[int, int, int, int], float] | None:
    """Highest-confidence Haar box (x, y, w, h) and its level weight, or None."""
    import cv2

    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    rects, _, weights = cascade.detectMultiScale3(gray, **HAAR_PARAMS)
    if len(rects) == 0:
        return None
    i = int(np.argmax(np.ravel(weights)))
    return tuple(int(v) for v in rects[i]), float(np.ravel(weights)[i])


def crop_square(img: np.ndarray, box, margin: float, size: int) -> np.ndarray:
    """Square crop of side max(w, h) * (1 + 2 margin) centred on ``box``, kept inside the frame."""
    from PIL import Image

    H, W = img.shape[:2]
    x, y, w, h = box
    side = int(round(min(max(w, h) * (1 + 2 * margin), H, W)))
    x0 = int(round(min(max(x + w / 2 - side / 2, 0), W - side)))
    y0 = int(round(min(max(y + h / 2 - side / 2, 0), H - side)))
    crop = img[y0:y0 + side, x0:x0 + side]
    return np.asarray(Image.fromarray(crop).resize((size, size), Image.BILINEAR))


def segment_bounds(duration: float, segment: float, crop_seconds: float) -> list[tuple[float, float]]:
    """Equal disjoint segments covering [0, duration]: about ``segment`` s each, >= 2 when possible."""
    n = max(1, int(round(duration / segment)))
    if n < 2 and duration >= 2 * crop_seconds:
        n = 2
    while n > 1 and duration / n < crop_seconds:
        n -= 1
    edges = np.linspace(0.0, duration, n + 1)
    return [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:])]


def prepare_videos(src, out, *, seed: int = 0, mapping=None, k: int = 5, min_confidence: float = 4.0,
                   margin: float = 0.2, window: float = 2.0, every: float = 1.0, crop_seconds: float = 1.0,
                   segment: float = 10.0, image_size: int = 128, test_fraction: float = 0.2) -> str:
    """Build a dataset at ``out`` from the videos under ``src``; returns the summary line."""
    import cv2
    import imageio_ffmpeg
    import pandas as pd
    from tqdm import tqdm

    from w2p_eval.data.images import save_png
    from w2p_eval.data.manifest import staging_dir
    from w2p_eval.data.splits import assign_splits

    for name, value, ok in [("--k", k, k >= 1), ("--every", every, every > 0), ("--window", window, window > 0),
                            ("--crop-seconds", crop_seconds, crop_seconds > 0), ("--margin", margin, margin >= 0),
                            ("--image-size", image_size, image_size >= 16), ("--segment", segment, segment > 0)]:
        if not ok:
            raise InputError(f"expected a positive {name}, got {value}")
    src = require_dir(src, "a folder of videos")
    skips = Skips("items")
    videos = find_videos(src, read_mapping(mapping) if mapping else None, skips)
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml"))
    rows, seconds_of_video = [], 0.0
    with staging_dir(out) as tmp:
        (tmp / "faces").mkdir()
        (tmp / "audio").mkdir()
        for path, ident in tqdm(videos, desc="videos", unit="video", disable=None):
            rel = path.relative_to(src).as_posix()
            try:
                frames, duration = sample_frames(path, every)
                audio = extract_audio(path, ffmpeg)
            except ValueError as exc:
                skips.add(rel, str(exc))
                continue
            except (RuntimeError, OSError, StopIteration, subprocess.SubprocessError):
                skips.add(rel, "unreadable video")
                continue
            if not frames:
                skips.add(rel, "no video frames decoded")
                continue
            duration = min(duration or len(audio) / SAMPLE_RATE, len(audio) / SAMPLE_RATE)
            seconds_of_video += duration
            bounds = segment_bounds(duration, segment, crop_seconds)
            stem = safe_name(f"{ident}-{Path(rel).with_suffix('').as_posix()}")
            for fi, (t, img) in enumerate(frames):
                item = f"{rel}@{t:.2f}s"
                if t >= duration:
                    continue
                found = best_face(cascade, img)
                if found is None:
                    skips.add(item, "no face found")
                    continue
                box, conf = found
                if conf < min_confidence:
                    skips.add(item, f"face confidence below {min_confidence:g}")
                    continue
                si = next(i for i, (a, b) in enumerate(bounds) if t < b or i == len(bounds) - 1)
                w0 = max(bounds[si][0], t - window)
                w1 = min(bounds[si][1], t + window)
                if w1 - w0 + 1e-6 < crop_seconds:
                    skips.add(item, f"audio window shorter than {crop_seconds:g} s")
                    continue
                clip = audio[int(round(w0 * SAMPLE_RATE)): int(round(w1 * SAMPLE_RATE))]
                fid = f"{stem}-t{int(round(t * 1000)):06d}"
                save_png(tmp / "faces" / f"{fid}.png", crop_square(img, box, margin, image_size))
                write_wav(tmp / "audio" / f"{fid}.wav", clip)
                span = len(clip) / SAMPLE_RATE
                rng = np.random.default_rng([seed, zlib.crc32(rel.encode()), fi])
                for c, start in enumerate(rng.uniform(0.0, max(span - crop_seconds, 0.0), size=k)):
                    rows.append(dict(
                        pair_id=f"{fid}-c{c}", identity=ident, image_path=f"faces/{fid}.png",
                        audio_path=f"audio/{fid}.wav", audio_start=round(float(start), 4),
                        audio_duration=crop_seconds, source=rel, source_time=t, face_id=fid,
                        segment_id=f"{stem}-seg{si}", source_audio_start=round(w0 + float(start), 4),
                        confidence=round(conf, 3),
                    ))
        df = assign_splits(pd.DataFrame(rows), seed=seed, test_fraction=test_fraction) if rows else pd.DataFrame(rows)
        info = {"kind": "videos", "seed": seed, "seconds_of_video": round(seconds_of_video, 3),
                "params": dict(k=k, min_confidence=min_confidence, margin=margin, window=window, every=every,
                               crop_seconds=crop_seconds, segment=segment, image_size=image_size,
                               test_fraction=test_fraction)}
        return finish_dataset(tmp, df, info, skips)
