"""Content checks of one dataset file: an image decoded to its last pixel, a WAV's length and finiteness."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from w2p_eval.data.images import open_image


def image_problem(img: Path) -> tuple[str, str] | None:
    try:
        with open_image(img) as im:  # the declared size first (too many pixels: skipped, never decoded)
            im.verify()  # the structure (PNG chunks + CRCs)
        with Image.open(img) as im:
            im.load()  # and every pixel: a truncated JPEG-in-.png or a garbage zlib stream fails here
    except FileNotFoundError:
        return "image missing", str(img)
    except Exception as exc:  # PIL raises many types for a bad file
        return "image unreadable", f"{img} ({exc.__class__.__name__})"
    return None


def audio_seconds(wav: Path) -> float | tuple[str, str]:
    try:
        info = sf.info(str(wav))
        if info.frames > 0 and info.subtype in ("FLOAT", "DOUBLE"):  # only float samples can be NaN/inf
            x, _ = sf.read(str(wav), dtype="float32", always_2d=True)
            if not np.isfinite(x).all():
                return "audio not finite", f"{wav} (NaN/inf samples)"
    except Exception as exc:  # soundfile raises RuntimeError/LibsndfileError/OSError
        return ("audio unreadable" if wav.exists() else "audio missing"), f"{wav} ({exc.__class__.__name__})"
    if info.frames == 0 or info.samplerate <= 0:
        return "audio empty", str(wav)
    return info.frames / info.samplerate
