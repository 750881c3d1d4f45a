"""`w2p-eval evaluate`: real baselines scored by the real dlib judge into the store; stored rows are skipped
unless --force, and re-evaluating replaces rows instead of duplicating them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from w2p_eval.errors import InputError
from w2p_eval.pipeline.evaluate import evaluate_runs
from w2p_eval.results import ResultsStore


@pytest.fixture(scope="module")
def baseline_runs(tmp_path_factory, tiny_data):
    from w2p_eval.train.baselines import train

    root = tmp_path_factory.mktemp("evalruns")
    for model in ("mean_face", "real_faces"):
        train({"model": model, "seed": 0, "image_size": 64, "audio_seconds": 1.0, "protocol": "seen"}, tiny_data,
              root / model)
    return root


def test_evaluate_skips_stored_and_force_replaces(baseline_runs, tiny_data, tmp_path):
    store = tmp_path / "r.sqlite"
    runs = [baseline_runs / "mean_face", baseline_runs / "real_faces"]
    kw = dict(store=store, suites=("identity", "speaker"), cache_dir=tmp_path / "cache")
    first = evaluate_runs(runs[:1], tiny_data, baselines=runs[1:], **kw)
    assert len(first.evaluated) == 2 and not first.skipped and not first.failed
    df = ResultsStore(store).query()
    n_rows = len(df)
    assert set(df["run"]) == {"mean_face", "real_faces"} and "speaker_id_top1" not in set(df["metric"])
    fake = df[df["metric"] == "identity_top1_fake"].set_index("run")["value"]
    real = df[df["metric"] == "identity_top1_real"].set_index("run")["value"]
    assert fake["real_faces"] == pytest.approx(real["real_faces"])  # real_faces is the ceiling, exactly
    assert fake["mean_face"] <= 0.5  # one constant face: at most one of three identities right
    second = evaluate_runs(runs[:1], tiny_data, baselines=runs[1:], **kw)
    assert not second.evaluated and len(second.skipped) == 2 and second.rows_written == 0
    again = evaluate_runs(runs, tiny_data, force=True, **kw)
    assert len(again.evaluated) == 2 and len(ResultsStore(store)) == n_rows


def test_evaluate_bad_input(tiny_data, tmp_path, baseline_runs):
    with pytest.raises(InputError, match="suites"):
        evaluate_runs([baseline_runs / "mean_face"], tiny_data, store=tmp_path / "r.sqlite", suites=("colour",))
    empty = tmp_path / "empty_run"
    empty.mkdir()
    proc = subprocess.run([sys.executable, "-m", "w2p_eval", "evaluate", str(empty), "--data", str(tiny_data),
                           "--store", str(tmp_path / "r.sqlite")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "checkpoints" in proc.stderr
