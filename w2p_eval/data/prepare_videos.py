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
import subprocess
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click
import cv2
import imageio_ffmpeg
import numpy as np
from PIL import Image
from tqdm import tqdm

from w2p_eval.data.audio import SAMPLE_RATE
from w2p_eval.data.prepare_common import (PairWriter, VIDEO_SUFFIXES, echo_summary, identity_meta_option, out_option,
                                          require_dir, safe_name, seed_option, test_fraction_option)
from w2p_eval.errors import InputError
from w2p_eval.registry import Entry
from w2p_eval.utils import Skips

log = logging.getLogger(__name__)

HAAR_PARAMS = dict(scaleFactor=1.1, minNeighbors=5, minSize=(40, 40), outputRejectLevels=True)


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
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    rects, _, weights = cascade.detectMultiScale3(gray, **HAAR_PARAMS)
    if len(rects) == 0:
        return None
    i = int(np.argmax(np.ravel(weights)))
    return tuple(int(v) for v in rects[i]), float(np.ravel(weights)[i])


def crop_square(img: np.ndarray, box, margin: float, size: int) -> np.ndarray:
    """Square crop of side max(w, h) * (1 + 2 margin) centred on ``box``, kept inside the frame."""
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


@dataclass(frozen=True)
class VideoParams:
    """The `prepare videos` settings (see the module docstring); stored in dataset.json's ``params``."""
    k: int = 5
    min_confidence: float = 4.0
    margin: float = 0.2
    window: float = 2.0
    every: float = 1.0
    crop_seconds: float = 1.0
    segment: float = 10.0
    image_size: int = 128

    def check(self) -> None:
        """One-line InputError for the first value out of range."""
        for name, value, ok in [("--k", self.k, self.k >= 1), ("--every", self.every, self.every > 0),
                                ("--window", self.window, self.window > 0),
                                ("--crop-seconds", self.crop_seconds, self.crop_seconds > 0),
                                ("--margin", self.margin, self.margin >= 0),
                                ("--image-size", self.image_size, self.image_size >= 16),
                                ("--segment", self.segment, self.segment > 0)]:
            if not ok:
                raise InputError(f"expected a positive {name}, got {value}")


@dataclass
class _Video:
    """One decoded video: where it came from, its frames and its whole audio track."""
    rel: str  # path relative to SRC
    identity: str
    frames: list[tuple[float, np.ndarray]]  # (time s, uint8 [H, W, 3] RGB)
    audio: np.ndarray  # float32 [T] mono 16 kHz
    duration: float  # seconds, the shorter of the container's and the audio's
    bounds: list[tuple[float, float]] = field(default_factory=list)  # its source segments
    stem: str = ""  # file-name prefix of its faces


def prepare_videos(src, out, *, seed: int = 0, mapping=None, k: int = 5, min_confidence: float = 4.0,
                   margin: float = 0.2, window: float = 2.0, every: float = 1.0, crop_seconds: float = 1.0,
                   segment: float = 10.0, image_size: int = 128, test_fraction: float = 0.2,
                   identity_meta=None) -> str:
    """Build a dataset at ``out`` from the videos under ``src``; returns the summary line."""
    params = VideoParams(k, min_confidence, margin, window, every, crop_seconds, segment, image_size)
    params.check()
    src = require_dir(src, "a folder of videos")
    writer = PairWriter(out, identity_meta=identity_meta)
    videos = find_videos(src, read_mapping(mapping) if mapping else None, writer.skips)
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml"))
    seconds_of_video = 0.0
    with writer.staging():
        for path, ident in tqdm(videos, desc="videos", unit="video", disable=None):
            video = _decode(writer, path, path.relative_to(src).as_posix(), ident, params, ffmpeg)
            if video is None:
                continue
            seconds_of_video += video.duration
            for fi, (t, img) in enumerate(video.frames):
                _add_face(writer, video, fi, t, img, cascade, params, seed)
        info = {"kind": "videos", "seed": seed, "seconds_of_video": round(seconds_of_video, 3),
                "params": {**asdict(params), "test_fraction": test_fraction}}
        return writer.finish(info, test_fraction)


def _decode(writer: PairWriter, path: Path, rel: str, ident: str, params: VideoParams, ffmpeg: str) -> _Video | None:
    """Frames every ``params.every`` s and the audio track, or None with the skip counted."""
    try:
        frames, duration = sample_frames(path, params.every)
        audio = extract_audio(path, ffmpeg)
    except ValueError as exc:
        writer.skip(rel, str(exc))
        return None
    except (RuntimeError, OSError, StopIteration, subprocess.SubprocessError):
        writer.skip(rel, "unreadable video")
        return None
    if not frames:
        writer.skip(rel, "no video frames decoded")
        return None
    duration = min(duration or len(audio) / SAMPLE_RATE, len(audio) / SAMPLE_RATE)
    return _Video(rel, ident, frames, audio, duration,
                  bounds=segment_bounds(duration, params.segment, params.crop_seconds),
                  stem=safe_name(f"{ident}-{Path(rel).with_suffix('').as_posix()}"))


def _add_face(writer: PairWriter, video: _Video, fi: int, t: float, img: np.ndarray, cascade,
              params: VideoParams, seed: int) -> None:
    """Frame ``fi`` (at ``t`` s) -> its best face crop + the audio window around it -> ``params.k`` pairs,
    or a counted skip (no face, low confidence, window too short)."""
    item = f"{video.rel}@{t:.2f}s"
    if t >= video.duration:
        return
    found = best_face(cascade, img)
    if found is None:
        writer.skip(item, "no face found")
        return
    box, conf = found
    if conf < params.min_confidence:
        writer.skip(item, f"face confidence below {params.min_confidence:g}")
        return
    bounds = video.bounds
    si = next(i for i, (a, b) in enumerate(bounds) if t < b or i == len(bounds) - 1)
    w0, w1 = max(bounds[si][0], t - params.window), min(bounds[si][1], t + params.window)
    if w1 - w0 + 1e-6 < params.crop_seconds:
        writer.skip(item, f"audio window shorter than {params.crop_seconds:g} s")
        return
    clip = video.audio[int(round(w0 * SAMPLE_RATE)): int(round(w1 * SAMPLE_RATE))]
    fid = f"{video.stem}-t{int(round(t * 1000)):06d}"
    image_path = writer.save_face(fid, crop_square(img, box, params.margin, params.image_size))
    audio_path = writer.save_audio(fid, clip)
    span = len(clip) / SAMPLE_RATE
    rng = np.random.default_rng([seed, zlib.crc32(video.rel.encode()), fi])
    for c, start in enumerate(rng.uniform(0.0, max(span - params.crop_seconds, 0.0), size=params.k)):
        writer.add(
            pair_id=f"{fid}-c{c}", identity=video.identity, image_path=image_path, audio_path=audio_path,
            audio_start=round(float(start), 4), audio_duration=params.crop_seconds, source=video.rel,
            source_time=t, face_id=fid, segment_id=f"{video.stem}-seg{si}",
            source_audio_start=round(w0 + float(start), 4), confidence=round(conf, 3),
        )


# `w2p-eval prepare videos` (its options only parse; the work is above)
@click.command("videos")
@click.argument("src", metavar="SRC", type=click.Path())
@out_option
@seed_option
@click.option("--mapping", metavar="CSV", type=click.Path(), default=None,
              help="CSV with columns file,identity (file relative to SRC or a bare name). Default: the "
                   "sub-folder name, or the file stem for videos directly in SRC.")
@click.option("--k", default=5, show_default=True, metavar="N", type=click.IntRange(1),
              help="Random audio crops per face.")
@click.option("--min-confidence", default=4.0, show_default=True, metavar="W", type=float,
              help="Minimum Haar level weight of the kept face box.")
@click.option("--margin", default=0.2, show_default=True, metavar="F", type=click.FloatRange(0.0),
              help="Crop margin on each side, as a fraction of the face box.")
@click.option("--window", default=2.0, show_default=True, metavar="S", type=click.FloatRange(0.0, min_open=True),
              help="Audio kept around each face: +-S seconds (clipped to the source segment).")
@click.option("--every", default=1.0, show_default=True, metavar="S", type=click.FloatRange(0.0, min_open=True),
              help="Run the face detector once every S seconds.")
@click.option("--crop-seconds", default=1.0, show_default=True, metavar="S", type=click.FloatRange(0.0, min_open=True),
              help="Length of each audio crop.")
@click.option("--segment", default=10.0, show_default=True, metavar="S", type=click.FloatRange(0.0, min_open=True),
              help="Approximate length of the disjoint source segments the seen split moves as wholes.")
@click.option("--image-size", default=128, show_default=True, metavar="PX", type=click.IntRange(16, 1024),
              help="Side of the saved square face crops.")
@test_fraction_option
@identity_meta_option
def command(src, out, seed, mapping, k, min_confidence, margin, window, every, crop_seconds, segment,
            image_size, test_fraction, identity_meta):
    """Talking-head videos (SRC/<identity>/*.mp4 ...) -> pairs via ffmpeg + Haar face detection."""
    echo_summary(out, prepare_videos(
        src, out, seed=seed, mapping=mapping, k=k, min_confidence=min_confidence, margin=margin, window=window,
        every=every, crop_seconds=crop_seconds, segment=segment, image_size=image_size, test_fraction=test_fraction,
        identity_meta=identity_meta,
    ))


REGISTER_PREPARE_MODES = (Entry("videos", "command", "Talking-head videos -> pairs (ffmpeg + Haar face detection).",
                                order=10),)
