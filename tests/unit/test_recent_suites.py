"""The diversity, consistency, verification and coverage suites on a tiny real-file dataset (6 identities, 2 test
faces from 2 segments each): real faces at the ceiling, one constant face collapsed, intervals by identity,
every identity judge, and the registry / report hooks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import six_identities
from w2p_eval.evaluation import Evaluation
from w2p_eval.metrics.registry import get_suite, metric_spec, parse_suites
from w2p_eval.models.sources import real_faces_at, split_rows
from w2p_eval.models.sources_python import ArrayItem

SUITES = ("diversity", "consistency", "verification", "coverage")


@pytest.fixture(scope="module")
def six(tmp_path_factory) -> Path:
    """six_identities with gender labels (3 f, 3 m) in dataset.json, so same-gender verification is scored."""
    data = six_identities(tmp_path_factory.mktemp("six") / "data")
    info = json.loads((data / "dataset.json").read_text())
    info["identity_meta"] = {"attributes": {"gender": {"source": "test"}},
                             "identities": {f"id{i:02d}": {"gender": "fm"[i % 2]} for i in range(6)}}
    (data / "dataset.json").write_text(json.dumps(info))
    return data


@pytest.fixture(scope="module")
def scored(six, tmp_path_factory):
    df = split_rows(six, "test", "seen")
    real = real_faces_at(six, list(df["image_path"]), 32)
    labels = df["identity"].to_numpy()
    rng = np.random.default_rng(5)
    other = np.stack([real[rng.choice(np.flatnonzero(labels != lab))] for lab in labels])
    faces = {"real": real, "constant": np.repeat(real[:1], len(real), axis=0), "other": other}
    items = [ArrayItem(f, list(df["pair_id"]), run=k) for k, f in faces.items()]
    ev = Evaluation.build(six, suites=SUITES, cache_dir=tmp_path_factory.mktemp("cache"), n_resamples=200,
                          sources=items)
    rows = [s.row for s in ev.score_all()]
    out: dict[str, dict[str, dict]] = {}
    for r in rows:
        out.setdefault(r["run"], {})[r["metric"]] = r
    return out


def test_registered_and_judged():
    assert parse_suites("diversity,consistency,verification,coverage,inception,vggface_score")
    for name in SUITES:
        assert get_suite(name).judged
    assert metric_spec("verification_eer").higher_is_better is False
    assert metric_spec("coverage").is_rate and metric_spec("density").unit == "value"


def test_collapse_reads_with_consistency(scored):
    const, real = scored["constant"], scored["real"]
    assert const["inter_identity_cosine"]["value"] == pytest.approx(1.0)
    assert const["intra_identity_spread"]["value"] == pytest.approx(0.0, abs=1e-9)
    assert const["cross_clip_consistency"]["value"] == pytest.approx(1.0)
    assert real["inter_identity_cosine"]["value"] < 0.99
    ref = real["inter_identity_cosine"]["extra"]["real"]
    assert ref["value"] == pytest.approx(real["inter_identity_cosine"]["value"], abs=0.05)
    cons = real["cross_clip_consistency"]
    assert cons["extra"]["clip_level"] == "segment_id"
    assert cons["value"] == pytest.approx(cons["extra"]["ceiling"]["value"])  # real faces at the ceiling
    assert cons["extra"]["chance"] < cons["value"]


def test_verification_ceiling_chance_and_intervals(scored):
    real, const = scored["real"], scored["constant"]
    assert real["verification_eer"]["value"] == real["verification_eer_ceiling"]["value"]
    assert real["verification_auc"]["value"] > 0.5
    for m in ("verification_eer", "verification_auc"):  # one face for everyone: chance, up to the draw of trials
        assert const[m]["value"] == pytest.approx(0.5, abs=0.15)
        assert const[m]["extra"]["ci"]["low"] <= 0.5 <= const[m]["extra"]["ci"]["high"]
    ci = real["verification_auc"]["extra"]["ci"]
    assert ci["low"] <= ci["value"] <= ci["high"] and ci["n_groups"] == 6 and ci["method"].startswith("percentile")
    assert real["verification_auc"]["extra"]["chance"] == 0.5
    same = real["verification_eer_same_gender"]
    assert same["n"] > 0 and same["extra"]["gender_source"] == "metadata"
    assert real["verification_auc_same_gender_ceiling"]["value"] == real["verification_auc_same_gender"]["value"]


def test_coverage_known_answers(scored):
    real, const, other = scored["real"], scored["constant"], scored["other"]
    for m in ("precision", "recall", "coverage"):
        assert real[m]["value"] == 1.0
        assert real[m]["extra"]["k"] == 5
    assert const["recall"]["value"] < 0.2 and const["coverage"]["value"] < 0.2
    assert other["precision"]["value"] == 1.0  # real faces of other speakers are still real faces
    assert const["precision"]["extra"]["ci"]["n_groups"] == 6


def test_every_judge_gets_a_task(six):
    tasks = Evaluation.build(six, suites=SUITES, backbone="dlib_resnet,facenet_vggface2").tasks()
    assert sorted((s.name, o.backbone) for s, o in tasks) == sorted(
        (s, j) for s in SUITES for j in ("dlib_resnet", "facenet_vggface2"))
    assert {s.evaluator(o) for s, o in tasks} == {"identity/dlib_resnet", "identity/facenet_vggface2"}


def test_report_section_with_reference_rows(scored, six, tmp_path):
    from w2p_eval.report.build import build_report
    from w2p_eval.results import ResultsStore

    store = tmp_path / "results.sqlite"
    ResultsStore(store).write([r for run in scored.values() for r in run.values()])
    build_report([], store, tmp_path / "report", data_dir=six, samples=False)
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Diversity, consistency, verification and coverage" in md
    table = (tmp_path / "report" / "tables" / "recent_metrics.csv").read_text()
    for row in ("chance", "one face for everyone", "ceiling (real faces)"):
        assert row in table
    import pandas as pd

    t = pd.read_csv(tmp_path / "report" / "tables" / "recent_metrics.csv", index_col=0)
    assert t.loc["one face for everyone", "inter_identity_cosine"] == "1"
    assert t.loc["ceiling (real faces)", "precision"] == "100.00 %"
    assert t.loc["chance", "verification_eer"] == "50.00 %"
    assert t.loc["ceiling (real faces)", "verification_eer"] == t.loc["real", "verification_eer"]


def test_audio_length_table_has_every_metric(scored):
    import pandas as pd

    from w2p_eval.report.recent import audio_length_table

    rows = [{**r, "model": "wav2pix", "epoch": 1} for run in ("real", "constant") for r in scored[run].values()]
    table = audio_length_table(pd.DataFrame(rows), {"constant": 0.3, "real": 1.0})
    assert list(table.index) == ["0.3", "1"]
    assert {"inter-identity cosine (collapse)", "verification EER", "coverage (Naeem et al.)"} <= set(table.columns)
    assert table.loc["0.3", "inter-identity cosine (collapse)"].startswith("1 [")


def test_compare_pairs_diversity_and_consistency_items(six, tmp_path):
    df = split_rows(six, "test", "seen")
    real = real_faces_at(six, list(df["image_path"]), 32)
    pairs = list(df["pair_id"])
    ev = Evaluation.build(six, suites=("diversity", "consistency"), cache_dir=tmp_path / "cache", n_resamples=200)
    got = ev.compare(ArrayItem(real, pairs, run="real"),
                     ArrayItem(np.repeat(real[:1], len(real), axis=0), pairs, run="constant"))
    entries = {e["metric"]: e for e in got["metrics"]}
    inter = entries["inter_identity_cosine"]
    assert inter["difference"] < 0 and inter["diff_ci"]["high"] < 0  # real faces: less alike than one face
    assert entries["cross_clip_consistency"]["diff_ci"] is not None


def test_judge_agreement_sets_the_judges_side_by_side(scored):
    import pandas as pd

    from w2p_eval.report import agreement as A

    rows = [r for run in scored.values() for r in run.values()]
    other = [{**r, "evaluator": "identity/faceres", "value": r["value"] * 0.9} for r in rows]
    df = pd.DataFrame(rows + other)
    judges = A.identity_judges(df)
    assert judges == ["identity/dlib_resnet", "identity/faceres"]
    assert {"inter_identity_cosine", "cross_clip_consistency", "verification_auc", "coverage"} <= set(
        A.judged_metrics(df, judges))
    table = A.side_by_side(df, judges).set_index(["metric", "run"])
    assert list(table.columns) == ["dlib_resnet", "faceres"]
    cell = table.loc[("inter-identity cosine (collapse)", "constant")]
    assert cell["dlib_resnet"].startswith("1 [") and cell["faceres"].startswith("0.9 [")
    assert len(A.primary_view(df, judges[0])) == len(rows)  # the section's tables read one judge
