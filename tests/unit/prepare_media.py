"""Real media files for the `prepare` tests: videos made with the ffmpeg binary, release-style folders."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import numpy as np


@functools.lru_cache(maxsize=64)
def _portrait(size: int, shift: int) -> np.ndarray:
    """The astronaut's head and shoulders (skimage, public domain) -> uint8 [size, size, 3] RGB."""
    from PIL import Image
    from skimage import data

    img = data.astronaut()[20 + shift: 320 + shift, 70: 370]
    return np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))


def portrait(size: int = 240, shift: int = 0) -> np.ndarray:
    """Cached copy of the portrait (callers may modify the result)."""
    return _portrait(size, shift).copy()


def tone(seconds: float, f0: float = 150.0, sr: int = 16000, channels: int = 1) -> np.ndarray:
    """A harmonic tone float32 [T] (or [T, C]) at 0.5 amplitude."""
    t = np.arange(int(round(seconds * sr))) / sr
    x = (0.3 * np.sin(2 * np.pi * f0 * t) + 0.2 * np.sin(2 * np.pi * 2 * f0 * t)).astype(np.float32)
    return x if channels == 1 else np.stack([x] * channels, 1)


def make_video(path: Path, seconds: float = 3.0, audio: bool = True, face: bool = True, f0: float = 150.0,
               fps: int = 25, sr: int = 44100) -> Path:
    """Write a real MP4 (mpeg4 video, AAC stereo audio at ``sr``) with ffmpeg from imageio-ffmpeg."""
    import imageio_ffmpeg
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * fps))
    frames = []
    for i in range(n):
        img = portrait(240, shift=int(3 * np.sin(i / 7))) if face else np.full((240, 240, 3), 90 + i % 50, np.uint8)
        frames.append(img)
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", "240x240", "-r", str(fps), "-i", "-"]
    if audio:
        wav = path.with_suffix(".src.wav")
        sf.write(wav, tone(seconds, f0, sr, channels=2), sr)
        cmd += ["-i", str(wav), "-c:a", "aac"]
    cmd += ["-c:v", "mpeg4", "-q:v", "3", "-pix_fmt", "yuv420p", "-shortest", str(path)]
    subprocess.run(cmd, input=np.stack(frames).tobytes(), check=True, capture_output=True)
    if audio:
        wav.unlink()
    return path


def jpeg_bytes(rgb: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def make_release(root: Path, identities=("alice", "bob"), faces_per_split=4, splits=("train", "test")) -> Path:
    """A WAV2PIX-release-style folder: JPEG data in .png files, BGR channel order, 5 copies per face."""
    import soundfile as sf

    n = 100
    for ii, name in enumerate(identities):
        for split in splits:
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for f in range(faces_per_split):
                rgb = portrait(200, shift=4 * f + 10 * ii)
                data = jpeg_bytes(rgb[..., ::-1].copy())  # stored BGR
                for c in range(5):
                    (d / f"cropped_face_frame_{n}.png").write_bytes(data)
                    sf.write(d / f"preprocessed_frame_{n}.wav", tone(1.0, 120 + 40 * ii + c), 16000, subtype="PCM_16")
                    n += 1
    return root
