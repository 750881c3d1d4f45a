"""voice2face and SF2F on the authors' released WAV2PIX data (../shared/data/wav2pix_release): a subset prepared,
each generator trained through both of its stages with its shipped config, faces generated for the test pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import REPO, release_subset, shared_path
from w2p_eval.data.prepare_release import prepare_release
from w2p_eval.models.checkpoint import list_checkpoints, load_checkpoint
from w2p_eval.models.generation import generate_split
from w2p_eval.train.run import run_training

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("release_field")
    src = release_subset(shared_path("wav2pix_release"), root / "src", n_train=10, n_test=5)
    prepare_release(src, root / "data", seed=0)
    return root / "data"


@pytest.mark.parametrize("config,stage,size,teachers", [
    ("voice2face.yaml", {"embed_epochs": 1}, 64, []),
    ("sf2f.yaml", {"fuser_epochs": 1}, 64, ["emotion"]),
    ("sf2f_128.yaml", {"fuser_epochs": 1}, 128, ["emotion"]),
])
def test_field_generator_trains_and_generates_on_release(config, stage, size, teachers, data, tmp_path):
    run = tmp_path / "run"
    overrides = {"epochs": 1, "batch_size": 8, "n_samples": 2, "threads": 2, **stage}
    (path,) = run_training(REPO / "baselines" / config, data, run, overrides=overrides, device="cpu", seed=0)
    rows = [json.loads(line) for line in (run / "losses.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and all(np.isfinite(v) for r in rows for v in r.values())
    ckpt = load_checkpoint(path)
    assert ckpt["identities"] == ["jaimealtozano", "javiermuniz"] and ckpt["meta"]["teachers"] == teachers
    assert ckpt["config"]["teacher" if teachers else "gan_weight"] == (teachers[0] if teachers else 1.0)
    gs = generate_split(list_checkpoints(run)[-1], data, device="cpu")
    assert gs.fake.shape[1:] == (size, size, 3) and len(gs.pair_ids) == len(gs.real) > 0
    assert gs.fake.std() > 0  # not a constant image
