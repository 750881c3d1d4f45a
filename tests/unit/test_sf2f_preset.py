"""SF2F's protocol (`--protocol-preset sf2f`): parity with SF2F's own arithmetic, known answers, the suite's rows."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import run_cli, six_identities
from w2p_eval.data.images import save_png
from w2p_eval.evaluation import Evaluation
from w2p_eval.metrics.registry import get_suite
from w2p_eval.metrics.sf2f_preset import (SF2F_KS, queries_and_reals, sf2f_galleries, sf2f_scores)
from w2p_eval.models.sources import real_faces_at, split_rows
from w2p_eval.models.sources_python import ArrayItem


def _peer(pred: torch.Tensor, data: torch.Tensor) -> dict:
    """SF2F's S2fEvaluator.get_metrics arithmetic, rewritten from its documented behaviour (utils/s2f_evaluator.py):
    PairwiseDistance(p, eps=1e-6)(data, pred) and CosineSimilarity means over all identities; cos_query on the
    galleries [0:100], [100:200], [200:300] with torch.topk and "is my own index among the top k"; the recall
    tuple averaged over galleries; cal_ih_sim = mean over i != j of cos(pred_i, data_j)."""
    l2 = torch.nn.PairwiseDistance(p=2.0, eps=1e-6)(data, pred).mean().item()
    l1 = torch.nn.PairwiseDistance(p=1.0, eps=1e-6)(data, pred).mean().item()
    cos = torch.nn.CosineSimilarity(dim=-1, eps=1e-8)
    cosine = cos(data, pred).mean().item()
    recalls = []
    for a, b in ((0, 100), (100, 200), (200, 300)):
        table = cos(pred[a:b].unsqueeze(1), data[a:b].unsqueeze(0))
        ids = torch.arange(b - a)
        row = []
        for k in SF2F_KS:
            top = torch.topk(table, k, dim=-1).indices
            row.append(float(np.mean([1.0 if ids[i] in top[i] else 0.0 for i in range(b - a)])))
        recalls.append(row)
    recall = tuple(np.mean(np.array(recalls), axis=0))
    table = cos(pred.unsqueeze(1), data.unsqueeze(0)).numpy()
    n = table.shape[0]
    ih = sum(table[i, j] for i in range(n) for j in range(n) if i != j) / float(n * (n - 1))
    return {"l1": l1, "l2": l2, "cosine": cosine, "recall": recall, "ih": ih}


def test_parity_with_sf2f_arithmetic():
    """Same embeddings -> the peer's numbers (320 identities: 3 galleries of 100 from the first 300)."""
    rng = np.random.default_rng(0)
    real = rng.normal(size=(320, 64))
    real /= np.linalg.norm(real, axis=1, keepdims=True)
    pred = real + rng.normal(scale=1.1, size=real.shape)
    pred /= np.linalg.norm(pred, axis=1, keepdims=True)
    peer = _peer(torch.from_numpy(pred), torch.from_numpy(real))
    ours = sf2f_scores(pred, real)
    assert [len(g) for g in ours.galleries] == [100, 100, 100]
    assert tuple(ours.recall[k] for k in SF2F_KS) == pytest.approx(peer["recall"], abs=1e-12)
    assert 0.05 < ours.recall[1] < 0.95  # a test that can fail: neither chance nor ceiling
    m = ours.means
    assert m["l1"] == pytest.approx(peer["l1"], rel=1e-9) and m["l2"] == pytest.approx(peer["l2"], rel=1e-9)
    assert m["cosine"] == pytest.approx(peer["cosine"], rel=1e-9)
    assert m["ih_cosine"] == pytest.approx(peer["ih"], rel=1e-9, abs=1e-12)


def test_known_answers_and_gallery_sizes():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(40, 16))
    same = sf2f_scores(real, real)  # a perfect generator
    assert same.recall[1] == 1.0 and same.means["cosine"] == pytest.approx(1.0)
    assert same.means["l2"] == pytest.approx(1e-6 * 4, rel=1e-6)  # |eps * ones(16)|_2
    const = sf2f_scores(np.repeat(real[:1], 40, axis=0), real)  # one face for everyone
    assert const.recall[1] == pytest.approx(1 / 40)  # ties by expectation: chance exactly
    assert [len(g) for g in sf2f_galleries(40)] == [40] and [len(g) for g in sf2f_galleries(250)] == [100, 100]
    assert [len(g) for g in sf2f_galleries(1251)] == [100, 100, 100]
    assert sorted(same.recall) == [1, 2, 5, 10, 20]  # K <= gallery size


def test_query_modes():
    """avg = mean of an identity's generated rows (normalised); naive = one of them, seeded; real = per face."""
    fake = np.array([[1.0, 0], [0, 1.0], [3.0, 0], [0, 2.0]])
    names, faces = ["a", "a", "b", "b"], ["f1", "f1", "f2", "f3"]
    real = np.array([[2.0, 0], [2.0, 0], [0, 1.0], [1.0, 0]])
    q, r = queries_and_reals(fake, real, names, faces, ["b", "a"], seed=0)
    assert np.allclose(q["avg"], [[0.5, 0.5], [0.5, 0.5]])
    assert np.allclose(r, [[0.5, 0.5], [1.0, 0.0]])  # b: faces f2, f3; a: f1 once
    q2, _ = queries_and_reals(fake, real, names, faces, ["b", "a"], seed=0)
    assert np.array_equal(q["naive"], q2["naive"]) and {tuple(x) for x in q["naive"][:1]} <= {(1.0, 0.0), (0.0, 1.0)}


@pytest.fixture(scope="module")
def six(tmp_path_factory) -> Path:
    return six_identities(tmp_path_factory.mktemp("six") / "data")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def test_suite_rows_real_and_constant_faces(six, cache):
    df = split_rows(six, "test", "seen")
    real = real_faces_at(six, list(df["image_path"]), 32)
    items = [ArrayItem(real, list(df["pair_id"]), run="real"),
             ArrayItem(np.repeat(real[:1], len(real), axis=0), list(df["pair_id"]), run="constant")]
    rows = [s.row for s in Evaluation.build(six, suites=("sf2f",), cache_dir=cache, sources=items).score_all()]
    got = {(r["run"], r["metric"]): r for r in rows}
    assert got[("real", "sf2f_avg_r1")]["value"] == 1.0
    assert got[("real", "sf2f_avg_cosine")]["value"] > 0.99  # real faces: judged at 32 px vs the cached originals
    assert got[("constant", "sf2f_avg_r1")]["value"] == pytest.approx(1 / 6)
    for (run, metric), r in got.items():
        extra = json.loads(r["extra"]) if isinstance(r["extra"], str) else r["extra"]
        assert extra["preset"] == "sf2f" and extra["mode"] in ("average_facenet_embedding", "naive")
        assert extra["ci"] is not None


def test_cli_preset_through_testlist_and_evaluate(six, cache, tmp_path):
    """testlist freezes SF2F's galleries; evaluate --protocol-preset sf2f scores only the sf2f suite with them and
    stores the preset in every row."""
    tl = tmp_path / "sf2f.json"
    res = run_cli(["testlist", "--data", six, "--out", tl, "--protocol-preset", "sf2f", "--protocol", "seen"])
    assert res.returncode == 0, res.stderr
    content = json.loads(tl.read_text())
    assert content["preset"] == "sf2f" and content["retrieval"]["ks"] == [1, 2, 5]
    assert content["retrieval"]["galleries"] == [sorted(content["retrieval"]["galleries"][0])]
    df = split_rows(six, "test", "seen")
    images = tmp_path / "faces"
    images.mkdir()
    for pid, face in zip(df["pair_id"], real_faces_at(six, list(df["image_path"]), 32)):
        save_png(images / f"{pid}.png", face)
    store = tmp_path / "r.sqlite"
    res = run_cli(["evaluate", "--data", six, "--images", images, "--name", "real", "--store", store, "--cache-dir",
                   cache, "--protocol-preset", "sf2f", "--protocol", "seen", "--testlist", tl])
    assert res.returncode == 0, res.stderr
    with sqlite3.connect(store) as con:
        rows = con.execute("SELECT metric, value, extra FROM results").fetchall()
    metrics = {m for m, _, _ in rows}
    too_big = {f"sf2f_{mode}_r{k}" for mode in ("avg", "naive") for k in (10, 20, 50)}  # K > 6 identities
    assert metrics == {m.name for m in get_suite("sf2f").metrics} - too_big
    assert all(json.loads(e)["preset"] == "sf2f" for _, _, e in rows)
    assert dict((m, v) for m, v, _ in rows)["sf2f_avg_r1"] == 1.0
