"""`w2p-eval generate`: one PNG per test pair + manifest; mismatches are one-line errors naming both values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.helpers import make_tiny_dataset, run_cli, tiny_data_of, tiny_run
from w2p_eval.data.dataset import PairDataset
from w2p_eval.errors import InputError
from w2p_eval.models.generation import export_generated, generate_split


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(str(tmp_path_factory.getbasetemp() / "tiny_wav2pix"))


def test_generate_cli_writes_one_png_per_test_pair(run, tmp_path):
    data = tiny_data_of(run)
    res = run_cli(["generate", "--ckpt", run, "--data", data, "--split", "test", "--out", tmp_path / "gen",
                   "--device", "cpu"])
    assert res.returncode == 0, res.stderr
    manifest = tmp_path / "gen" / "manifest.csv"
    assert res.stdout.strip() == str(manifest)
    df = pd.read_csv(manifest)
    test = PairDataset(data, "test", cache=False)
    assert list(df.columns) == ["pair_id", "identity", "image_path", "checkpoint", "epoch", "model"]
    assert sorted(df.pair_id) == sorted(test.df.pair_id) and set(df.epoch) == {1} and set(df.model) == {"wav2pix"}
    for rel in df.image_path:
        img = np.asarray(Image.open(tmp_path / "gen" / rel))
        assert img.shape == (64, 64, 3) and img.dtype == np.uint8


def test_generation_is_deterministic_unless_stochastic(run):
    ckpt = sorted((run / "checkpoints").glob("*.pt"))[-1]
    data = tiny_data_of(run)
    a = generate_split(ckpt, data, device="cpu")
    b = generate_split(ckpt, data, device="cpu")
    assert np.array_equal(a.fake, b.fake) and a.fake.shape == a.real.shape
    s1 = generate_split(ckpt, data, device="cpu", stochastic=True, seed=1)
    s2 = generate_split(ckpt, data, device="cpu", stochastic=True, seed=2)
    assert not np.array_equal(s1.fake, s2.fake) and not np.array_equal(s1.fake, a.fake)


def test_mismatched_image_size_and_audio_length_name_both_values(run, tmp_path):
    data = tiny_data_of(run)
    res = run_cli(["generate", "--ckpt", run, "--data", data, "--out", tmp_path / "g", "--image-size", "128"])
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "128" in res.stderr and "64" in res.stderr and "Traceback" not in res.stderr
    with pytest.raises(InputError, match=r"audio length \(s\) 1.0 .* has 0.3"):
        export_generated(run, data, tmp_path / "g2", audio_seconds=1.0)


def test_mismatched_identity_count_names_both_values(run, tmp_path):
    other = make_tiny_dataset(tmp_path / "four", n_identities=4)
    with pytest.raises(InputError, match="3 identities.*has 4"):
        export_generated(run, other, tmp_path / "g")


def test_missing_checkpoint_is_one_line_error(tiny_data, tmp_path):
    res = run_cli(["generate", "--ckpt", tmp_path / "nope.pt", "--data", tiny_data, "--out", tmp_path / "g"])
    assert res.returncode == 2 and "nope.pt" in res.stderr and "Traceback" not in res.stderr
