"""WAV2PIX on the authors' released data (../shared/data/wav2pix_release): prepare a subset, train
with the reference 64 px config, resume, and generate faces for the test pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import REPO, release_subset, shared_path
from w2p_eval.models.checkpoint import list_checkpoints, load_checkpoint
from w2p_eval.models.generation import generate_split

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_wav2pix_trains_and_generates_on_release(tmp_path):
    from w2p_eval.data.prepare_release import prepare_release
    from w2p_eval.train.run import run_training

    src = release_subset(shared_path("wav2pix_release"), tmp_path / "src", n_train=40, n_test=20)
    data = tmp_path / "data"
    prepare_release(src, data, seed=0)
    overrides = {"epochs": 1, "batch_size": 16, "checkpoint_every": 1, "n_samples": 4, "threads": 2}
    config = REPO / "baselines" / "wav2pix_64.yaml"
    run = tmp_path / "run"
    assert len(run_training(config, data, run, overrides=overrides, device="cpu", seed=0)) == 1
    run_training(config, data, run, overrides={**overrides, "epochs": 2}, resume=True, device="cpu")
    rows = [json.loads(line) for line in (run / "losses.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(np.isfinite(r[k]) for r in rows for k in ("d_loss", "g_loss", "g_l1", "g_aux"))
    ckpt = load_checkpoint(list_checkpoints(run)[-1])
    assert ckpt["epoch"] == 2 and ckpt["identities"] == ["jaimealtozano", "javiermuniz"]
    gs = generate_split(list_checkpoints(run)[-1], data, device="cpu")
    assert gs.fake.shape[1:] == (64, 64, 3) and len(gs.pair_ids) == len(gs.real) > 0
    assert gs.fake.std() > 0  # not a constant image
