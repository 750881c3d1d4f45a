"""The embedded, fully synthetic demo dataset (no download): warped portraits + formant voices.

Faces: scikit-image's public-domain ``astronaut`` portrait (Eileen Collins, NASA), face cropped
and warped per identity (face width, jaw width, eye spacing, face length, eye height), recoloured
per identity (skin tone, hair colour, background tint), with small per-pair jitter (shift,
rotation, scale, brightness, noise). Stored as 128 px RGB PNGs.

Voices: a glottal pulse train at the identity's f0 (85-260 Hz), filtered through vowel formants
scaled by the identity's vocal-tract factor, with a syllable-like amplitude envelope; every pair
draws its own vowel sequence, intonation, syllable rate and noise. So pitch and formants are tied
to the identity and the face is tied to the identity: the speech -> face task is learnable.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import click
import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates
from scipy.signal import lfilter
from skimage import data as skimage_data

from w2p_eval.data.audio import SAMPLE_RATE
from w2p_eval.data.prepare_common import (PairWriter, echo_summary, out_option, read_summary, seed_option,
                                          test_fraction_option)
from w2p_eval.errors import InputError
from w2p_eval.registry import Entry

log = logging.getLogger(__name__)

FACE_PX = 128
AUDIO_SECONDS = 1.0
# The astronaut's face box found by dlib (left, top, right, bottom) in the 512x512 picture.
_FACE_BOX = (175, 76, 265, 166)
_CROP_SCALE = 1.7  # crop side relative to the face box side
# (F1, F2, F3) in Hz of five vowels of an adult male-ish tract; scaled per identity.
_VOWELS = np.array([[730, 1090, 2440], [270, 2290, 3010], [530, 1840, 2480], [570, 840, 2410], [300, 870, 2240]], float)
_BANDWIDTHS = np.array([90.0, 110.0, 170.0])


def _identity_params(rng: np.random.Generator, i: int, n: int) -> dict:
    """Per-identity face and voice parameters (spread evenly, then shuffled by the seed)."""
    frac = (i + 0.5) / n
    return {
        "f0": 85.0 + 175.0 * frac,  # Hz, spread over the identities
        "tract": float(1.22 - 0.4 * frac + rng.uniform(-0.04, 0.04)),  # formant scale
        "breath": float(rng.uniform(0.05, 0.3)),  # aspiration noise relative to the pulses
        "width": float(rng.uniform(0.86, 1.16)),
        "jaw": float(rng.uniform(-0.14, 0.14)),
        "eyes": float(rng.uniform(-0.06, 0.06)),
        "length": float(rng.uniform(0.9, 1.1)),
        "eye_y": float(rng.uniform(-0.04, 0.04)),
        "skin": _skin_tone(rng),
        "hair": rng.uniform(0.2, 1.6, size=3),
        "background": rng.uniform(0.6, 1.4, size=3),
    }


def _skin_tone(rng: np.random.Generator) -> np.ndarray:
    """RGB gain of the skin: a darkness and a warmth (red up, blue down), never green."""
    dark, warm = rng.uniform(0.55, 1.15), rng.uniform(-0.05, 0.15)
    return dark * np.array([1.0 + warm, 1.0, 1.0 - 1.5 * warm])


def _base_face() -> np.ndarray:
    """The astronaut's face, cropped square around dlib's box -> float32 [S, S, 3] in [0, 255]."""
    img = skimage_data.astronaut().astype(np.float32)
    left, top, right, bottom = _FACE_BOX
    cx, cy, side = (left + right) / 2, (top + bottom) / 2 + 4, (right - left) * _CROP_SCALE
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = int(round(side))
    return img[max(y0, 0): y0 + s, max(x0, 0): x0 + s]


def _masks(face: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Soft skin and hair masks (float32 [S, S]) from colour rules on the base face."""
    r, g, b = face[..., 0], face[..., 1], face[..., 2]
    skin = ((r > 95) & (g > 40) & (b > 20) & (r > g) & (r > b) & (r - np.minimum(g, b) > 15)).astype(np.float32)
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    yy = np.arange(face.shape[0])[:, None] / face.shape[0]
    hair = ((luma < 90) & (yy < 0.45) & (skin < 0.5)).astype(np.float32)
    return gaussian_filter(skin, 2.0), gaussian_filter(hair, 2.0)


def _render_face(base: np.ndarray, skin: np.ndarray, hair: np.ndarray, p: dict,
                 rng: np.random.Generator, size: int = FACE_PX) -> np.ndarray:
    """Warp + recolour the base face for identity ``p`` with per-pair jitter -> uint8 [size, size, 3]."""
    s = base.shape[0]
    # output grid in normalised coords centred on the face (u right, v down), in [-1, 1]
    lin = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    v, u = np.meshgrid(lin, lin, indexing="ij")
    # per-pair jitter: rotation, scale, shift
    ang = np.deg2rad(rng.normal(0, 3.0))
    sc = 1.0 + rng.normal(0, 0.03)
    du, dv = rng.normal(0, 0.025, size=2)
    ca, sa = np.cos(ang), np.sin(ang)
    uj = (ca * u - sa * v) * sc + du
    vj = (sa * u + ca * v) * sc + dv
    # identity shape warp (inverse map: where in the base face does an output pixel come from)
    lower = np.clip((vj + 0.1) / 0.9, 0.0, 1.0)  # 0 above the nose, 1 at the chin
    upper = np.exp(-((vj + 0.25) ** 2) / 0.05)  # band around the eyes
    width = p["width"] * (1.0 + p["jaw"] * lower) * (1.0 + p["eyes"] * upper)
    us = uj / width
    vs = vj / p["length"] - p["eye_y"] * upper
    rows = (vs + 1.0) * (s - 1) / 2.0
    cols = (us + 1.0) * (s - 1) / 2.0
    coords = np.stack([rows, cols])
    warped = np.stack([map_coordinates(base[..., c], coords, order=1, mode="reflect") for c in range(3)], -1)
    m_skin = map_coordinates(skin, coords, order=1, mode="reflect")[..., None]
    m_hair = map_coordinates(hair, coords, order=1, mode="reflect")[..., None]
    m_bg = np.clip(1.0 - m_skin - m_hair, 0.0, 1.0)
    gain = m_skin * p["skin"] + m_hair * p["hair"] + m_bg * p["background"]
    out = warped * gain * (1.0 + rng.normal(0, 0.04)) + rng.normal(0, 2.0, warped.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def _formant_filter(x: np.ndarray, freqs: np.ndarray, sr: int) -> np.ndarray:
    """Cascade of 2-pole resonators at ``freqs`` (Hz) with fixed bandwidths."""
    y = x
    for f, bw in zip(freqs, _BANDWIDTHS):
        r = np.exp(-np.pi * bw / sr)
        a = [1.0, -2.0 * r * np.cos(2 * np.pi * f / sr), r * r]
        y = lfilter([1.0 - r], a, y)
    return y


def synth_voice(p: dict, rng: np.random.Generator, seconds: float = AUDIO_SECONDS,
                sr: int = SAMPLE_RATE) -> np.ndarray:
    """A vowel-like utterance of identity ``p`` -> float32 [round(sr*seconds)] in [-1, 1].

    Syllables of 0.15-0.3 s, each a random vowel; f0 follows a slow random intonation
    around the identity's f0 (+-6 %); glottal pulses (Rosenberg-like) -> formant cascade.
    """
    n = int(round(sr * seconds))
    out = np.zeros(n, dtype=np.float64)
    t = 0
    while t < n:
        syl = int(sr * rng.uniform(0.15, 0.3))
        gap = int(sr * rng.uniform(0.02, 0.08))
        length = min(syl, n - t)
        f0 = p["f0"] * (1.0 + rng.uniform(-0.06, 0.06)) * np.linspace(1.0, 1.0 + rng.uniform(-0.05, 0.05), length)
        phase = np.cumsum(f0 / sr)
        frac = phase % 1.0
        pulse = np.where(frac < 0.6, 0.5 * (1 - np.cos(np.pi * frac / 0.6)), np.cos(np.pi * (frac - 0.6) / 0.8))
        source = np.diff(np.concatenate([[0.0], np.clip(pulse, 0, None)]))
        source = source / (source.std() + 1e-12) + p["breath"] * rng.normal(0, 1, length)
        vowel = _VOWELS[rng.integers(len(_VOWELS))] * p["tract"] * rng.uniform(0.97, 1.03)
        seg = _formant_filter(source, vowel, sr)
        env = np.sin(np.pi * np.linspace(0, 1, length)) ** 0.7
        out[t: t + length] = seg / (np.max(np.abs(seg)) + 1e-12) * env * rng.uniform(0.6, 1.0)
        t += syl + gap
    out = 0.8 * out / max(float(np.max(np.abs(out))), 1e-12)
    return (out + rng.normal(0, 2e-3, n)).astype(np.float32)


def build_demo(out_dir: str | os.PathLike, seed: int = 0, n_identities: int = 8,
               pairs_per_identity: int = 24, test_fraction: float = 0.2) -> Path:
    """Build the synthetic demo dataset folder at ``out_dir`` (atomically) and return its path.

    ``n_identities`` x ``pairs_per_identity`` pairs; faces 128 px RGB PNG, audio 1 s 16 kHz PCM16.
    Every face is its own face_id; pairs are grouped 4 per segment (a "recording session") for the
    seen protocol. Same ``seed`` -> byte-identical files.
    """
    if n_identities < 2 or pairs_per_identity < 2:
        raise InputError(f"expected >= 2 identities and >= 2 pairs each, got {n_identities} x {pairs_per_identity}")
    started = time.perf_counter()
    base = _base_face()
    skin, hair = _masks(base)
    root = np.random.default_rng(seed)
    params = [_identity_params(np.random.default_rng([seed, i, 1]), i, n_identities) for i in range(n_identities)]
    order = root.permutation(n_identities)  # which f0 rank each named identity gets
    writer = PairWriter(out_dir, what="pairs")
    with writer.staging():
        for i in range(n_identities):
            name = f"demo{i:02d}"
            p = params[int(order[i])]
            for k in range(pairs_per_identity):
                rng = np.random.default_rng([seed, i, k, 2])
                pid = f"{name}-{k:03d}"
                face = writer.save_face(pid, _render_face(base, skin, hair, p, rng))  # the face draws from rng
                voice = writer.save_audio(pid, synth_voice(p, rng))  # first, then the voice
                writer.add(
                    pair_id=pid, identity=name, image_path=face, audio_path=voice, audio_start=0.0,
                    audio_duration=AUDIO_SECONDS, source=f"synthetic:{name}", source_time=float(k), face_id=pid,
                    segment_id=f"{name}-s{k // 4}",
                )
        voices = {f"demo{i:02d}": {k: round(float(params[int(order[i])][k]), 4) for k in ("f0", "tract")}
                  for i in range(n_identities)}
        info = {"kind": "demo", "seed": seed, "synthetic": True, "voices": voices,
                "params": dict(n_identities=n_identities, pairs_per_identity=pairs_per_identity,
                               test_fraction=test_fraction)}
        writer.finish(info, test_fraction)
    log.info("demo dataset built in %.1f s", time.perf_counter() - started)
    return Path(out_dir)


# `w2p-eval prepare demo` (its options only parse; the work is above)
@click.command("demo")
@out_option
@seed_option
@click.option("--identities", "n_identities", default=8, show_default=True, metavar="N", type=click.IntRange(2, 1000),
              help="Number of synthetic identities.")
@click.option("--pairs", "pairs_per_identity", default=24, show_default=True, metavar="N", type=click.IntRange(2, 1000),
              help="Pairs per identity.")
@test_fraction_option
def command(out, seed, n_identities, pairs_per_identity, test_fraction):
    """The embedded synthetic demo dataset (warped portraits + formant voices; no download)."""
    path = build_demo(out, seed=seed, n_identities=n_identities, pairs_per_identity=pairs_per_identity,
                      test_fraction=test_fraction)
    echo_summary(out, read_summary(path))


REGISTER_PREPARE_MODES = (Entry("demo", "command", "The embedded synthetic demo dataset (no download).", order=40),)
