"""Shared helpers for the training/generation tests: one tiny WAV2PIX run, trained once per session."""

from __future__ import annotations

import functools
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIG_64 = REPO / "baselines" / "wav2pix_64.yaml"

# Small but real: the reference architecture at 64 px, 0.3 s of audio, 2 iterations per epoch.
TINY = {"epochs": 1, "batch_size": 6, "audio_seconds": 0.3, "n_samples": 2, "checkpoint_every": 1}


@functools.lru_cache(maxsize=None)
def tiny_run(base: str) -> Path:
    """Train 1 epoch on a private tiny dataset under ``base``; returns the run folder."""
    from tests.conftest import make_tiny_dataset
    from w2p_eval.train.run import run_training

    base = Path(base)
    data = make_tiny_dataset(base / "data")
    run = base / "run"
    run_training(CONFIG_64, data, run, overrides=dict(TINY), device="cpu", seed=3)
    return run


def tiny_data_of(run: Path) -> Path:
    return run.parent / "data"
