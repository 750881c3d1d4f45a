"""Two identity judges in one run (`--backbone a,b`) and the report's "Judge agreement" section.

Real judges (dlib_resnet and dlib_resnet_native) on the tiny real-file dataset: rows of both are stored and
told apart by ``evaluator``; each judge's network sees each face once, whatever suites run. The agreement
section is checked on hand-built store rows with known orders (identical -> tau 1, one swap -> flagged).
"""

from __future__ import annotations

import hashlib
import math
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.helpers import run_cli
from w2p_eval.errors import InputError
from w2p_eval.judges import parse_backbones
from w2p_eval.evaluation import Evaluation
from w2p_eval.metrics.registry import get_suite
from w2p_eval.models.sources import real_faces_at, split_rows
from w2p_eval.models.sources_python import ArrayItem
from w2p_eval.report import agreement as A
from w2p_eval.report.build import build_report
from w2p_eval.results import ResultsStore

JUDGES = ("dlib_resnet", "dlib_resnet_native")
JUDGED = ("identity", "retrieval", "distances", "matching")


# -- names ------------------------------------------------------------------------------------------
def test_parse_backbones_refuses_unknown_repeated_and_empty(tiny_data):
    assert parse_backbones("dlib_resnet, vgg_scratch") == ("dlib_resnet", "vgg_scratch")
    assert parse_backbones(["vgg_scratch"]) == ("vgg_scratch",)
    with pytest.raises(InputError, match=r"unknown identity backbone 'dlib_resnt' \(did you mean dlib_resnet\?\)"):
        parse_backbones("dlib_resnt,vgg_scratch")
    with pytest.raises(InputError, match="distinct identity backbones, got 'dlib_resnet' more than once"):
        parse_backbones("dlib_resnet,dlib_resnet")
    with pytest.raises(InputError, match="comma-separated list"):
        parse_backbones("dlib_resnet,")
    opts = Evaluation.build(tiny_data, backbone="vgg_scratch,dlib_resnet").context
    assert opts.judges == ("vgg_scratch", "dlib_resnet") and opts.backbone == "vgg_scratch"
    one = opts.for_judge("dlib_resnet")
    assert one.judges == ("dlib_resnet",) and one.features is opts.features and one.memo is opts.memo


@pytest.mark.parametrize("verb", ["evaluate", "compare"])
@pytest.mark.parametrize("value, expect", [("foo", "unknown identity backbone 'foo'"),
                                           ("dlib_resnet,dlib_resnet", "'dlib_resnet' more than once")])
def test_cli_bad_backbone_list_is_one_line_exit_2(tiny_data, tmp_path, verb, value, expect):
    operands = [str(tmp_path)] if verb == "evaluate" else [str(tmp_path), str(tmp_path)]
    res = run_cli([verb, *operands, "--data", tiny_data, "--backbone", value, "--store", tmp_path / "r.sqlite"]
                  if verb == "evaluate" else [verb, *operands, "--data", tiny_data, "--backbone", value])
    assert res.returncode == 2, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("w2p-eval: error:") and expect in lines[0], res.stderr
    assert not (tmp_path / "r.sqlite").exists()


# -- two real judges --------------------------------------------------------------------------------
@pytest.fixture
def forwards(monkeypatch):
    """Every face image each judge's network is run on: {backbone name: [sha1 of the image, ...]} (the real
    trunks, wrapped to record what they are given)."""
    from w2p_eval.judges.dlib_face import _DlibAligned

    seen: dict[str, list[str]] = {}
    real = _DlibAligned.trunk

    def recording(self, images):
        seen.setdefault(self.name, []).extend(hashlib.sha1(np.ascontiguousarray(im).tobytes()).hexdigest()
                                              for im in images)
        return real(self, images)

    monkeypatch.setattr(_DlibAligned, "trunk", recording)
    return seen


@pytest.fixture(scope="module")
def test_faces(tiny_data):
    df = split_rows(tiny_data, "test", "seen")
    real = real_faces_at(tiny_data, list(df["image_path"]), 64)
    return list(df["pair_id"]), real


def test_two_judges_score_every_source_once_per_face(tiny_data, tmp_path, forwards, test_faces):
    """Both judges' rows for every judged suite, the other suite once; each judge's network sees each
    distinct face once (counted on the real trunks), and the feature cache computes one entry per judge."""
    pairs, real = test_faces
    constant = np.repeat(real[:1], len(real), axis=0)
    items = [ArrayItem(real, pairs, run="real"), ArrayItem(constant, pairs, run="constant")]
    ev = Evaluation.build(tiny_data, suites=(*JUDGED, "speaker"), backbone=",".join(JUDGES),
                          cache_dir=tmp_path / "cache", sources=items)
    opts = ev.context
    df = pd.DataFrame([s.row for s in ev.score_all()])
    assert set(df["evaluator"]) == {f"identity/{j}" for j in JUDGES}  # speaker does not apply to external faces
    for (run, ev), g in df.groupby(["run", "evaluator"]):
        assert {"identity_top1_fake", "gallery_r1", "paired_cosine", "matching_1to2"} <= set(g["metric"])
        assert not g["metric"].duplicated().any()
    top1 = df[df["metric"] == "identity_top1_fake"].set_index(["run", "evaluator"])["value"]
    for j in JUDGES:
        assert top1[("real", f"identity/{j}")] == 1.0 and top1[("constant", f"identity/{j}")] <= 0.5
    assert opts.features.computed == 2 * len(items)  # one (judge, face set) entry each, shared by 4 suites
    for j in JUDGES:
        digests = forwards[j]
        assert len(digests) == len(set(digests)), f"{j}: a face went through the network twice"
        const = hashlib.sha1(np.ascontiguousarray(constant[0]).tobytes()).hexdigest()
        assert const in digests  # the constant face was judged (once) by each judge


def test_evaluate_stores_both_judges_and_skips_per_judge(tiny_data, tmp_path, test_faces):
    """`evaluate --backbone a,b` through the pipeline: rows of both judges coexist in the store (the key holds
    the evaluator); a later single-judge run finds its judge's rows stored, a new judge is scored."""
    pairs, real = test_faces
    store = tmp_path / "r.sqlite"
    ev = Evaluation.build(tiny_data, suites=("identity",), backbone=",".join(JUDGES), cache_dir=tmp_path / "cache",
                          sources=[ArrayItem(real, pairs, run="real")])
    first = ev.run(store)
    assert first.rows_written > 0 and len(first.evaluated) == 2, first
    # python sources are never skipped; an images-like check goes through _stored per judge
    df = ResultsStore(store).query(metric="identity_top1_fake")
    assert sorted(df["evaluator"]) == [f"identity/{j}" for j in JUDGES]
    item = ArrayItem(real, pairs, run="real")
    for j in JUDGES:
        assert ev.stored(ResultsStore(store), item, get_suite("identity"), ev.context.for_judge(j)) is not None
    assert ev.stored(ResultsStore(store), item, get_suite("identity"), ev.context.for_judge("vgg_scratch")) is None


def test_compare_under_two_judges(tiny_data, tmp_path, test_faces):
    from w2p_eval.report.comparison import format_comparison

    pairs, real = test_faces
    ev = Evaluation.build(tiny_data, suites=("identity",), backbone=",".join(JUDGES), cache_dir=tmp_path / "cache")
    res = ev.compare(ArrayItem(real, pairs, run="real"),
                     ArrayItem(np.repeat(real[:1], len(real), axis=0), pairs, run="constant"),
                     metrics=["identity_top1_fake"])
    assert res["judges"] == list(JUDGES)
    assert [e["evaluator"] for e in res["metrics"]] == [f"identity/{j}" for j in JUDGES]
    text = format_comparison(res)
    assert all(f"[{j}]" in text for j in JUDGES)


# -- the agreement statistics -----------------------------------------------------------------------
def test_kendall_known_answers():
    a = {"w": 0.9, "x": 0.7, "y": 0.5, "z": 0.1}
    same = A.kendall("identity_top1_fake", "identity/a", "identity/b", a, {k: v / 2 for k, v in a.items()})
    assert same.tau == pytest.approx(1.0) and same.flips == []
    assert same.p_value == pytest.approx(stats.kendalltau([4, 3, 2, 1], [4, 3, 2, 1])[1])
    swapped = A.kendall("m", "a", "b", a, {"w": 0.9, "x": 0.4, "y": 0.5, "z": 0.1}, order=["w", "x", "y", "z"])
    assert swapped.flips == [("x", "y")]
    assert swapped.tau == pytest.approx((5 - 1) / 6)  # 5 concordant pairs, 1 discordant, no ties
    reverse = A.kendall("m", "a", "b", a, {k: -v for k, v in a.items()})
    assert reverse.tau == pytest.approx(-1.0) and len(reverse.flips) == len(list(combinations(a, 2)))
    flat = A.kendall("m", "a", "b", a, {k: 0.5 for k in a})
    assert math.isnan(flat.tau) and flat.flips == []  # ties are not flips; tau undefined
    one = A.kendall("m", "a", "b", {"w": 1.0}, {"w": 0.0, "x": 1.0})
    assert one.runs == ["w"] and math.isnan(one.tau)


# -- the report section -----------------------------------------------------------------------------
def _row(run: str, metric: str, evaluator: str, value: float, ci: float | None = 0.05) -> dict:
    extra = {"ci": {"value": value, "low": value - ci, "high": value + ci}} if ci is not None else {}
    return dict(data_hash="dh", run=run, model="external", checkpoint=f"/faces/{run}", checkpoint_hash=f"h-{run}",
                epoch=None, metric=metric, split="test", protocol="seen", seed=0, value=value, n=30,
                evaluator=evaluator, evaluator_version="1", config_hash="c", extra=extra, source="images")


# identity top-1: both judges order a > b > c; gallery R@1: judge faceres swaps a and b
VALUES = {
    "identity/dlib_resnet": {"identity_top1_fake": {"a": 0.60, "b": 0.40, "c": 0.10},
                             "gallery_r1": {"a": 0.50, "b": 0.30, "c": 0.20}},
    "identity/vgg_scratch": {"identity_top1_fake": {"a": 0.90, "b": 0.70, "c": 0.35},
                             "gallery_r1": {"a": 0.25, "b": 0.45, "c": 0.05}},
}


def _store(path, judges=tuple(VALUES)) -> ResultsStore:
    store = ResultsStore(path)
    store.write([_row(run, metric, ev, v) for ev in judges for metric, per in VALUES[ev].items()
                 for run, v in per.items()]
                + [_row(run, "landmark_detection_rate", "landmarks/dlib", 0.8 + i / 100, None)
                   for i, run in enumerate("abc")])
    return store


def test_agreement_section_flags_the_flip_and_tables_use_the_primary_judge(tmp_path):
    _store(tmp_path / "r.sqlite")
    build_report([], tmp_path / "r.sqlite", tmp_path / "rep", samples=False)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Judge agreement" in md and "primary: `dlib_resnet`" in md
    agree = pd.read_csv(tmp_path / "rep" / "tables" / "judge_agreement.csv").set_index("metric")
    top1 = agree.loc["identity top-1 (generated)"]
    assert float(top1["Kendall's τ"]) == 1.0 and top1["order flips"] == "none" and top1["models"] == 3
    gal = agree.loc["gallery recall@1 (SF2F)"]
    assert float(gal["Kendall's τ"]) == pytest.approx(1 / 3, abs=0.005) and gal["order flips"] == "a ↔ b"
    assert float(gal["p"]) == pytest.approx(stats.kendalltau([0.5, 0.3, 0.2], [0.25, 0.45, 0.05])[1], rel=1e-3)
    assert "order flips in: gallery recall@1 (SF2F) (vgg_scratch: 1 pair)" in md
    sides = pd.read_csv(tmp_path / "rep" / "tables" / "judge_side_by_side.csv")
    cell = sides[(sides["metric"] == "identity top-1 (generated)") & (sides["run"] == "c")].iloc[0]
    assert cell["dlib_resnet"] == "10.0 % [5.0, 15.0]" and cell["vgg_scratch"] == "35.0 % [30.0, 40.0]"
    main = pd.read_csv(tmp_path / "rep" / "tables" / "main.csv").set_index("run")
    assert main.loc["c", "identity_top1_fake"] == "10.0 % [5.0, 15.0]"  # the primary judge, not a mean of two
    assert main.loc["a", "gallery_r1"] == "50.0 % [45.0, 55.0]"
    proto = pd.read_csv(tmp_path / "rep" / "tables" / "protocols.csv").set_index("run")
    assert proto.loc["b", "gallery recall@1 (SF2F)"] == "30.0 % [25.0, 35.0]"
    rows = pd.read_csv(tmp_path / "rep" / "tables" / "rows.csv")
    assert set(rows["evaluator"]) == {"identity/dlib_resnet", "identity/vgg_scratch", "landmarks/dlib"}


def test_agreement_section_absent_with_one_judge_and_primary_without_the_default(tmp_path):
    _store(tmp_path / "one.sqlite", judges=("identity/vgg_scratch",))
    build_report([], tmp_path / "one.sqlite", tmp_path / "rep", samples=False)
    assert "Judge agreement" not in (tmp_path / "rep" / "report.md").read_text()
    assert not (tmp_path / "rep" / "tables" / "judge_agreement.csv").exists()
    df = ResultsStore(tmp_path / "one.sqlite").query()
    assert A.primary_judge(df) == "identity/vgg_scratch"
    assert A.primary_judge(df[df["evaluator"] == "landmarks/dlib"]) is None


def test_cli_evaluate_and_identity_with_two_judges(tiny_data, tmp_path, test_faces):
    """`evaluate --backbone a,b` on an images folder stores both judges' rows and skips both when run again;
    `identity --backbone a,b` prints one table per judge."""
    from w2p_eval.data.images import save_png

    pairs, real = test_faces
    folder = tmp_path / "faces"
    folder.mkdir()
    for pid, face in zip(pairs, real):
        save_png(folder / f"{pid}.png", face)
    common = ["--data", tiny_data, "--backbone", ",".join(JUDGES), "--cache-dir", tmp_path / "cache",
              "--images", folder, "--name", "mine"]
    store = tmp_path / "r.sqlite"
    first = run_cli(["evaluate", *common, "--metrics", "identity,distances", "--store", store])
    assert first.returncode == 0, first.stderr
    assert "evaluated 4 (source, judge) pairs" in first.stdout
    df = ResultsStore(store).query()
    assert set(df["evaluator"]) == {f"identity/{j}" for j in JUDGES}
    assert len(df[df["metric"] == "paired_cosine"]) == 2
    again = run_cli(["evaluate", *common, "--metrics", "identity,distances", "--store", store])
    assert again.returncode == 0 and "skipped 4 already in the store" in again.stdout, again.stdout
    shown = run_cli(["identity", *common, "--no-store"])
    assert shown.returncode == 0, shown.stderr
    assert all(f"identity evaluation: identity/{j} " in shown.stdout for j in JUDGES)


def test_python_api_takes_a_list_of_judges(tiny_data, tmp_path, test_faces):
    import w2p_eval

    pairs, real = test_faces
    df = w2p_eval.evaluate_faces(real, pairs, data=tiny_data, metrics=["identity"], backbone=list(JUDGES),
                                 cache_dir=tmp_path / "cache", name="mine")
    top1 = df[df["metric"] == "identity_top1_fake"].set_index("evaluator")["value"]
    assert sorted(top1.index) == [f"identity/{j}" for j in JUDGES] and (top1 == 1.0).all()
    with pytest.raises(InputError, match="more than once"):
        w2p_eval.evaluate_faces(real, pairs, data=tiny_data, metrics=["identity"], backbone=["dlib_resnet"] * 2)


def test_dlib_resnet_and_faceres_in_one_run(tiny_data, tmp_path, test_faces, monkeypatch):
    """The issue's pair of judges: both score the same faces in one run, each face through FaceRes once."""
    from w2p_eval.judges import tfjs

    try:
        tfjs.model_path("faceres")
    except InputError as exc:
        pytest.skip(f"FaceRes weights not installed ({exc})")
    from w2p_eval.judges.faceres import FaceResBackbone

    seen: list[str] = []
    real_trunk = FaceResBackbone.trunk

    def recording(self, images):
        seen.extend(hashlib.sha1(np.ascontiguousarray(im).tobytes()).hexdigest() for im in images)
        return real_trunk(self, images)

    monkeypatch.setattr(FaceResBackbone, "trunk", recording)
    pairs, real = test_faces
    constant = np.repeat(real[:1], len(real), axis=0)
    ev = Evaluation.build(tiny_data, suites=JUDGED, backbone="dlib_resnet,faceres", cache_dir=tmp_path / "cache",
                          sources=[ArrayItem(real, pairs, run="real"), ArrayItem(constant, pairs, run="constant")])
    opts = ev.context
    df = pd.DataFrame([s.row for s in ev.score_all()])
    top1 = df[df["metric"] == "identity_top1_fake"].set_index(["run", "evaluator"])["value"]
    assert top1[("real", "identity/faceres")] == 1.0 and top1[("constant", "identity/faceres")] <= 0.5
    assert top1[("real", "identity/dlib_resnet")] == 1.0
    assert len(seen) == len(set(seen)) and opts.features.computed == 4
