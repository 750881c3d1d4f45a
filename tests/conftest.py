"""Shared fixtures: tiny deterministic datasets, the real data in ../shared, no network, 1 thread."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("W2P_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """No test may download anything: every non-local socket connection fails loudly."""
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("/"):
            raise RuntimeError(f"network access blocked in tests (tried {address})")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _isolated_torch_home(tmp_path_factory, monkeypatch):
    """Pretrained-weight lookups go to an empty temp dir unless a test sets TORCH_HOME itself."""
    if "W2P_KEEP_TORCH_HOME" not in os.environ:
        monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.getbasetemp() / "torch_home"))


def shared_path(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test with a clear reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found at {path} (../shared/data is absent in a fresh clone)")
    return path


@pytest.fixture
def shared_data() -> Path:
    return shared_path()


def make_tiny_dataset(
    out: Path,
    n_identities: int = 3,
    pairs_per_identity: int = 6,
    image_px: int = 64,
    audio_seconds: float = 1.2,
    seed: int = 0,
) -> Path:
    """A small dataset of real files (PNG faces-ish pictures + tone WAVs), both split protocols.

    Identity i has a distinct colour/shape and a distinct pitch, so it is learnable. Pairs are
    grouped two per face_id/segment; the last third of each identity's segments is seen-test;
    the last identity is the unseen-test identity.
    """
    import pandas as pd

    from w2p_eval.data.audio import write_wav
    from w2p_eval.data.images import save_png
    from w2p_eval.data.manifest import write_dataset

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "faces").mkdir(exist_ok=True)
    (out / "audio").mkdir(exist_ok=True)
    rows = []
    yy, xx = np.mgrid[0:image_px, 0:image_px] / image_px
    for i in range(n_identities):
        name = f"id{i:02d}"
        base = np.array([60 + 60 * i, 200 - 50 * i, 90 + 40 * (i % 2)], dtype=np.float32)
        f0 = 110.0 + 60.0 * i
        for k in range(pairs_per_identity):
            face_no = k // 2
            blob = np.exp(-(((xx - 0.5) ** 2) / (0.05 + 0.03 * i) + ((yy - 0.5) ** 2) / 0.08))
            img = base[None, None, :] * (0.4 + 0.6 * blob[..., None]) + rng.normal(0, 4, (image_px, image_px, 3))
            img = np.clip(img, 0, 255).astype(np.uint8)
            t = np.arange(int(16000 * audio_seconds)) / 16000.0
            wave = 0.5 * np.sin(2 * np.pi * f0 * t + k) + 0.2 * np.sin(2 * np.pi * 2.7 * f0 * t)
            wave += rng.normal(0, 0.01, t.shape)
            pid = f"{name}-{k:03d}"
            save_png(out / "faces" / f"{pid}.png", img)
            write_wav(out / "audio" / f"{pid}.wav", wave.astype(np.float32))
            seen_test = face_no >= (pairs_per_identity // 2) * 2 // 3 and face_no == (pairs_per_identity - 1) // 2
            rows.append(dict(
                pair_id=pid, identity=name,
                split_seen="test" if seen_test else "train",
                split_unseen="test" if i == n_identities - 1 else "train",
                image_path=f"faces/{pid}.png", audio_path=f"audio/{pid}.wav",
                audio_start=0.0, audio_duration=audio_seconds, source=f"tiny-{name}.mp4",
                source_time=float(face_no), face_id=f"{name}-f{face_no}", segment_id=f"{name}-s{face_no}",
            ))
    write_dataset(out, pd.DataFrame(rows), {"kind": "folder", "seed": seed})
    return out


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """Session-wide read-only tiny dataset (3 identities x 6 pairs, 64 px, 1.2 s audio)."""
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "data")
