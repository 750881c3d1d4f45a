"""Same-gender 1:N matching: impostors of the probe's gender, known answers on hand-built embeddings, the skip
reasons, frozen in test lists (version 2; version 1 lists still load), through the matching suite."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import six_identities
from w2p_eval.errors import InputError
from w2p_eval.evaluation import Evaluation
from w2p_eval.metrics.matching import draw_matching_tuples, matching_accuracy, same_gender_problem
from w2p_eval.metrics.testlist import build_testlist, load_testlist, write_testlist
from w2p_eval.metrics.testlist import testlist_id as content_id  # a "test*" name would be collected
from w2p_eval.models.sources import real_faces_at, split_rows
from w2p_eval.models.sources_python import ArrayItem

SIX_GENDERS = {"id00": "f", "id01": "f", "id02": "f", "id03": "m", "id04": "m", "id05": "m"}


def gender_world(per_gender: int = 3, faces: int = 2):
    """Identities of two genders, `faces` faces each: real embedding = unit(gender axis + identity axis); the
    generated face knows only the gender (its embedding is the gender axis)."""
    labels, fids, genders, real, fake = [], [], [], [], []
    n_ids = 2 * per_gender
    dim = 2 + n_ids
    for k in range(n_ids):
        g = k // per_gender
        for f in range(faces):
            v = np.zeros(dim)
            v[g] = 1.0
            v[2 + k] = 1.0
            real.append(v / np.linalg.norm(v))
            u = np.zeros(dim)
            u[g] = 1.0
            fake.append(u)
            labels.append(k)
            fids.append(f"{k}-{f}")
            genders.append("fm"[g])
    return np.array(labels), np.array(fids), np.array(genders), np.array(fake), np.array(real)


def test_gender_only_generator_scores_chance_under_same_gender_matching():
    labels, fids, genders, fake, real = gender_world()
    t = draw_matching_tuples(labels, fids, 2, seed=3, genders=genders)
    assert len(t.tuples) == len(labels) and t.excluded.size == 0
    assert all(genders[row[0]] == genders[j] for row in t.tuples for j in row[1:])  # impostors share the gender
    res = matching_accuracy(fake, real, t)
    assert res.accuracy == pytest.approx(0.5) and res.ceiling == pytest.approx(1.0)  # tie -> 1/2; real probe -> 1
    free = matching_accuracy(fake, real, draw_matching_tuples(labels, fids, 2, seed=3))
    other = np.array([genders[row[2]] != genders[row[0]] for row in
                      draw_matching_tuples(labels, fids, 2, seed=3).tuples])
    # unconstrained: an impostor of the other gender is always beaten, one of the same gender half the time
    assert free.accuracy == pytest.approx((other * 1.0 + ~other * 0.5).mean()) and free.accuracy > 0.6
    t5 = draw_matching_tuples(labels, fids, 3, seed=0, genders=genders)  # 3 identities per gender: 1:3 possible
    assert matching_accuracy(fake, real, t5).accuracy == pytest.approx(1 / 3)


def test_draws_without_genders_are_unchanged_and_seeded():
    labels, fids, genders, _, _ = gender_world()
    a = draw_matching_tuples(labels, fids, 2, seed=7)
    b = draw_matching_tuples(labels, fids, 2, seed=7, genders=None)
    assert np.array_equal(a.tuples, b.tuples)
    c = draw_matching_tuples(labels, fids, 2, seed=7, genders=genders)
    assert np.array_equal(c.tuples, draw_matching_tuples(labels, fids, 2, seed=7, genders=genders).tuples)


def test_impossible_same_gender_settings_say_why():
    labels, fids, genders, _, _ = gender_world(per_gender=2)
    assert same_gender_problem(labels, genders, 2) is None
    assert "needs 3 test identities of one gender, got f: 2, m: 2" in same_gender_problem(labels, genders, 3)
    males = np.array(["m"] * len(labels))
    assert "every test identity has gender m" in same_gender_problem(labels, males, 2)
    with pytest.raises(InputError, match="found no probe"):
        draw_matching_tuples(labels, fids, 3, seed=0, genders=genders)
    mixed = genders.copy()
    mixed[0] = "m"  # one identity with two genders
    with pytest.raises(InputError, match="one gender per identity"):
        same_gender_problem(labels, mixed, 2)


def _labelled(root: Path, genders: dict) -> Path:
    data = six_identities(root / "data")
    info = json.loads((data / "dataset.json").read_text())
    info["identity_meta"] = {"attributes": {"gender": {"source": "test"}},
                             "identities": {n: {"gender": g} for n, g in genders.items()}}
    (data / "dataset.json").write_text(json.dumps(info))
    return data


@pytest.fixture(scope="module")
def six(tmp_path_factory) -> Path:
    return _labelled(tmp_path_factory.mktemp("sg"), SIX_GENDERS)


def test_testlist_freezes_same_gender_tuples_and_old_lists_load(six, tmp_path):
    content = build_testlist(six, seed=0)
    assert content["version"] == 2
    block = content["same_gender"]
    assert block["genders"] == SIX_GENDERS and block["source"] == "metadata"
    assert set(block["matching"]) == {"2"} and "needs 5 test identities of one gender" in block["skipped"]["5"]
    df = split_rows(six, "test", "seen")
    ident = dict(zip(df["pair_id"], df["identity"]))
    assert all(SIX_GENDERS[ident[p]] == SIX_GENDERS[ident[row[0]]] for row in block["matching"]["2"] for p in row)
    tl = load_testlist(write_testlist(content, tmp_path / "v2.json"), six)
    assert 2 in tl.same_gender and tl.same_gender_missing(5).startswith("same-gender 1:5 matching needs")
    old = {k: v for k, v in content.items() if k not in ("same_gender", "id")}
    old["version"] = 1
    old["id"] = content_id(old)
    v1 = load_testlist(write_testlist(old, tmp_path / "v1.json"), six)
    assert v1.matching == tl.matching and "version 1" in v1.same_gender_missing(2)


def _score(data, cache, testlist=None):
    df = split_rows(data, "test", "seen")
    real = real_faces_at(data, list(df["image_path"]), 32)
    ev = Evaluation.build(data, suites=("matching",), cache_dir=cache, testlist=testlist,
                          sources=[ArrayItem(real, list(df["pair_id"]), run="real")])
    rows = [s.row for s in ev.score_all()]
    return {r["metric"]: r for r in rows}


def test_matching_suite_same_gender_rows(six, tmp_path):
    rows = _score(six, tmp_path / "cache")
    r = rows["matching_1to2_same_gender"]
    assert r["extra"]["gender_source"] == "metadata" and r["n"] > 0
    assert r["value"] == rows["matching_1to2_same_gender_ceiling"]["value"]  # real probes: the ceiling itself
    assert set(r["extra"]["ci"]) >= {"low", "high"}
    assert "needs 5 test identities of one gender" in rows["matching_1to5_same_gender"]["extra"]["skipped"]
    tl = write_testlist(build_testlist(six, seed=0), tmp_path / "tl.json")
    frozen = _score(six, tmp_path / "cache", tl)
    assert frozen["matching_1to2_same_gender"]["value"] == r["value"]  # same seed, same tuples


def test_one_gender_only_is_skipped_with_the_reason(tmp_path):
    data = _labelled(tmp_path, {n: "m" for n in SIX_GENDERS})
    rows = _score(data, tmp_path / "cache")
    r = rows["matching_1to2_same_gender"]
    assert r["n"] == 0 and "every test identity has gender m" in r["extra"]["skipped"]
    assert rows["matching_1to2"]["n"] > 0
