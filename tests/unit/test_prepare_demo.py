"""The synthetic demo dataset: size, determinism, dlib finds the faces at 64 px, voices tied to identity."""

from __future__ import annotations

import time

import numpy as np
import pytest

from w2p_eval.data.audio import load_audio
from w2p_eval.data.dataset import PairDataset
from w2p_eval.data.images import load_image_rgb, resize_rgb
from w2p_eval.data.manifest import load_info, load_manifest, manifest_hash
from w2p_eval.data.prepare_demo import build_demo
from w2p_eval.data.splits import check_splits


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "data"
    started = time.perf_counter()
    build_demo(out, seed=0)
    return out, time.perf_counter() - started


def test_demo_size_splits_and_build_time(demo):
    path, seconds = demo
    df = load_manifest(path)
    info = load_info(path)
    assert info["kind"] == "demo" and info["synthetic"] is True
    assert len(info["identities"]) >= 8 and df.groupby("identity").size().min() >= 20
    assert check_splits(df) == []
    assert seconds < 60, f"demo took {seconds:.1f} s"
    assert (path / "prepare.log").read_text().strip().endswith("no pairs skipped")
    item = PairDataset(path, split="train", image_size=64)[0]
    assert item["audio"].shape == (1, 16000) and item["image"].shape == (3, 64, 64)
    assert load_image_rgb(path / df.image_path[0]).shape == (128, 128, 3)


def test_demo_is_deterministic_for_a_seed(tmp_path):
    for name in ("a", "b"):
        build_demo(tmp_path / name, seed=5, n_identities=2, pairs_per_identity=3)
    assert manifest_hash(tmp_path / "a") == manifest_hash(tmp_path / "b")
    df = load_manifest(tmp_path / "a")
    for rel in list(df.image_path) + list(df.audio_path):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    build_demo(tmp_path / "other", seed=6, n_identities=2, pairs_per_identity=3)
    a = load_image_rgb(tmp_path / "a/faces/demo00-000.png")
    b = load_image_rgb(tmp_path / "other/faces/demo00-000.png")
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 1.0


def test_dlib_finds_a_face_in_at_least_90_percent_at_64px(demo):
    import dlib

    path, _ = demo
    df = load_manifest(path)
    detector = dlib.get_frontal_face_detector()
    found = [len(detector(resize_rgb(load_image_rgb(path / p), 64), 1)) > 0 for p in df.image_path.unique()]
    rate = float(np.mean(found))
    assert rate >= 0.9, f"dlib found faces in {rate:.1%} of demo faces at 64 px"


def _f0(x: np.ndarray, sr: int = 16000) -> float:
    """Strongest spectral peak between 70 and 320 Hz (the fundamental of a voiced signal)."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / sr)
    band = (freqs >= 70) & (freqs <= 320)
    return float(freqs[band][np.argmax(spectrum[band])])


def test_voice_pitch_is_the_identitys_f0(demo):
    path, _ = demo
    df = load_manifest(path)
    voices = load_info(path)["voices"]
    for name, rows in df.groupby("identity"):
        estimates = [_f0(load_audio(path / p)) for p in rows.audio_path[:6]]
        assert abs(np.median(estimates) / voices[name]["f0"] - 1) < 0.1, (name, estimates, voices[name])
    assert len({round(v["f0"]) for v in voices.values()}) == len(voices)


def test_faces_are_consistent_within_identity(demo):
    """Nearest-centroid identity classification on 32 px thumbnails of held-out faces is >= 90 %."""
    path, _ = demo
    df = load_manifest(path)
    names = sorted(df.identity.unique())
    feats = {n: np.stack([resize_rgb(load_image_rgb(path / p), 32).astype(np.float32).ravel()
                          for p in df[df.identity == n].image_path]) for n in names}
    centroids = np.stack([feats[n][::2].mean(0) for n in names])
    hits = [int(np.argmin(((centroids - x) ** 2).sum(1))) == i for i, n in enumerate(names) for x in feats[n][1::2]]
    assert np.mean(hits) >= 0.9
