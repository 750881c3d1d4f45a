"""Audio loading: any file soundfile reads -> 16 kHz mono float32; WAV2PIX preprocessing."""

from __future__ import annotations

import os

import numpy as np
import soundfile as sf
import soxr

from w2p_eval.errors import InputError
from w2p_eval.utils import write_failure

SAMPLE_RATE = 16000
PRE_EMPHASIS = 0.95


def resample(x: np.ndarray, sr_in: int, sr_out: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a mono float signal (soxr, high quality)."""
    if sr_in == sr_out:
        return x.astype(np.float32, copy=False)

    return soxr.resample(x.astype(np.float32, copy=False), sr_in, sr_out).astype(np.float32)


def to_mono(x: np.ndarray) -> np.ndarray:
    """[T] or [T, C] -> [T] by averaging channels."""
    return x if x.ndim == 1 else x.mean(axis=1)


def load_audio(
    path: str | os.PathLike, start: float = 0.0, duration: float | None = None, sr: int = SAMPLE_RATE
) -> np.ndarray:
    """Read ``duration`` seconds from ``start`` of an audio file -> float32 [T] mono at ``sr`` Hz.

    Other sample rates are resampled and stereo is mixed down. Raises InputError when the file
    cannot be read or holds less audio than asked for.
    """
    try:
        info = sf.info(str(path))
        first = int(round(start * info.samplerate))
        frames = -1 if duration is None else int(round(duration * info.samplerate))
        x, file_sr = sf.read(str(path), start=first, frames=frames, dtype="float32", always_2d=False)
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:
        raise InputError(f"expected a readable audio file, got {path} ({exc})") from None
    x = to_mono(np.asarray(x, dtype=np.float32))
    if not np.isfinite(x).all():
        raise InputError(f"expected finite audio samples, got NaN/inf in {path} (bad data, not a training problem)")
    if duration is not None:
        have = len(x) / file_sr
        if have + 1e-3 < duration:
            raise InputError(
                f"expected at least {duration:.2f} s of audio from {start:.2f} s, got {have:.2f} s "
                f"at {file_sr} Hz ({path})"
            )
    x = resample(x, file_sr, sr)
    if duration is not None:
        n = int(round(duration * sr))
        x = np.pad(x, (0, max(0, n - len(x))))[:n]
    return x


def preprocess_wave(x: np.ndarray, n_samples: int) -> np.ndarray:
    """WAV2PIX input: first ``n_samples`` samples, divided by max|x|, pre-emphasis 0.95.

    Shorter input is zero-padded at the end. A silent clip stays all zeros (no division by 0).
    Returns float32 [n_samples].
    """
    x = np.asarray(x, dtype=np.float32)[:n_samples]
    if len(x) < n_samples:
        x = np.pad(x, (0, n_samples - len(x)))
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak > 0:
        x = x / peak
    y = np.empty_like(x)
    y[0] = x[0]
    y[1:] = x[1:] - PRE_EMPHASIS * x[:-1]
    return y


def write_wav(path: str | os.PathLike, x: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    """Write float audio in [-1, 1] as PCM16 WAV. A failed write (full disk, read-only mount) is an OSError
    naming the cause, not soundfile's LibsndfileError."""
    try:
        sf.write(str(path), np.clip(np.asarray(x, dtype=np.float32), -1.0, 1.0), sr, subtype="PCM_16")
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise write_failure(path, exc) from None
