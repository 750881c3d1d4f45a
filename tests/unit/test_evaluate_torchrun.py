"""`w2p-eval evaluate` under torchrun: the (source, checkpoint) work is split across 2 CPU processes, every rank
writes into the one results store, no row is lost or duplicated, and the identity judge is trained once."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from tests.helpers import REPO
from w2p_eval.pipeline.evaluate import rank_share
from w2p_eval.results import ResultsStore


def test_rank_share_splits_items_without_overlap(monkeypatch):
    items = list(range(7))
    monkeypatch.setenv("WORLD_SIZE", "3")
    shares = []
    for rank in range(3):
        monkeypatch.setenv("RANK", str(rank))
        shares.append(rank_share(items)[0])
    assert sorted(sum(shares, [])) == items and [len(s) for s in shares] == [3, 2, 2]
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert rank_share(items)[0] == items


@pytest.mark.slow
def test_evaluate_under_torchrun_with_two_processes(tiny_data, tmp_path):
    from w2p_eval.models.checkpoint import load_checkpoint
    from w2p_eval.train.baselines import train

    for model in ("random_real", "mean_face", "real_faces"):
        train({"model": model, "seed": 0, "image_size": 64, "audio_seconds": 1.0, "protocol": "seen"}, tiny_data,
              tmp_path / model)
    ck = tmp_path / "random_real" / "checkpoints"
    second = load_checkpoint(ck / "epoch_0000.pt")
    second.pop("path")
    torch.save({**second, "epoch": 1}, ck / "epoch_0001.pt")
    store, cache = tmp_path / "s.sqlite", tmp_path / "cache"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
           "-m", "w2p_eval", "-v", "evaluate", str(tmp_path / "random_real"), "--baselines", str(tmp_path / "mean_face"),
           "--baselines", str(tmp_path / "real_faces"), "--data", str(tiny_data), "--store", str(store),
           "--metrics", "identity,landmarks", "--cache-dir", str(cache)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.strip().splitlines()  # each rank reports its share: 2 sources x 2 suites
    assert len(lines) == 2 and all(ln.startswith("evaluated 4 (source, judge) pairs") for ln in lines), lines
    df = ResultsStore(store).query()
    per_source = df.groupby(["run", "checkpoint_hash"])["metric"].nunique()
    assert len(per_source) == 4 and (per_source == per_source.iloc[0]).all()  # 4 sources, every metric each
    assert not df.duplicated(["run", "checkpoint_hash", "metric"]).any()
    judges = [p for p in (cache / "identity").glob("*.pt") if "-real-" not in p.name]
    assert len(judges) == 1 and res.stderr.count("training identity judge") == 1  # once, shared via the cache
