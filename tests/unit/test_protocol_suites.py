"""The protocol suites (retrieval, distances, matching), intervals on every row, frozen test lists through
`evaluate`, and `compare` — on a tiny real-file dataset of 6 identities with 2 test faces each."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from tests.helpers import six_identities
from w2p_eval.cli import main
from w2p_eval.data.images import save_png
from w2p_eval.data.manifest import load_info, load_manifest, write_dataset
from w2p_eval.errors import InputError
from w2p_eval.evaluation import Evaluation
from w2p_eval.metrics.registry import get_suite
from w2p_eval.models.sources import real_faces_at, split_rows
from w2p_eval.models.sources_python import ArrayItem

SUITES = ("identity", "retrieval", "distances", "matching")
CI_KEYS = {"value", "low", "high", "confidence", "method", "n_items", "n_groups", "n_resamples", "seed"}
NO_CI = {"frechet_face", "kid_face"}


@pytest.fixture(scope="module")
def six(tmp_path_factory) -> Path:
    """6 identities x 8 pairs (4 faces of 2 copies); seen test = faces 2 and 3: 24 test pairs, 12 faces."""
    return six_identities(tmp_path_factory.mktemp("six") / "data")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def faces(six):
    """Test pairs, their real faces (32 px), and faces of a seeded other / uniformly random identity."""
    df = split_rows(six, "test", "seen")
    real = real_faces_at(six, list(df["image_path"]), 32)
    labels = df["identity"].to_numpy()
    rng = np.random.default_rng(5)
    other = np.stack([real[rng.choice(np.flatnonzero(labels != lab))] for lab in labels])
    anyone = np.stack([real[rng.integers(len(real))] for _ in labels])
    return {"df": df, "pairs": list(df["pair_id"]), "real": real, "other": other, "anyone": anyone,
            "constant": np.repeat(real[:1], len(real), axis=0)}


@pytest.fixture(scope="module")
def scored(six, cache, faces):
    """metric -> row for each source, all four suites."""
    items = [ArrayItem(faces[k], faces["pairs"], run=k) for k in ("real", "constant", "other", "anyone")]
    rows = [s.row for s in Evaluation.build(six, suites=SUITES, cache_dir=cache, sources=items).score_all()]
    out: dict[str, dict[str, dict]] = {}
    for r in rows:
        out.setdefault(r["run"], {})[r["metric"]] = r
    return out


def _v(scored, run, metric) -> float:
    return scored[run][metric]["value"]


def test_known_answers_real_faces(scored):
    real = scored["real"]
    assert {k: real[f"gallery_r{k}"]["value"] for k in (1, 2, 5)} == {1: 1.0, 2: 1.0, 5: 1.0}
    assert real["gallery_r1"]["extra"]["gallery_size"] == 6 and "gallery_r10" not in real  # K <= G only
    assert real["paired_l1"]["value"] == pytest.approx(0, abs=1e-6)
    assert real["paired_l2"]["value"] == pytest.approx(0, abs=1e-6)
    assert real["paired_cosine"]["value"] == pytest.approx(1, abs=1e-6)
    for n in (2, 5):
        assert real[f"matching_1to{n}"]["value"] == real[f"matching_1to{n}_ceiling"]["value"]
        assert real[f"matching_1to{n}"]["extra"]["chance"] == pytest.approx(1 / n)
    # 1:10 was a default the 6 identities cannot hold: a row without value that says why
    assert real["matching_1to10"]["n"] == 0 and "possible: 1:2 to 1:6" in real["matching_1to10"]["extra"]["skipped"]


def test_known_answers_constant_face(scored):
    const = scored["constant"]
    for k in (1, 2, 5):  # one face for every pair: the expected recall is exactly K / G
        assert const[f"gallery_r{k}"]["value"] == pytest.approx(k / 6)
        assert const[f"gallery_r{k}"]["extra"]["chance"] == pytest.approx(k / 6)
    m = const["matching_1to2"]
    assert abs(m["value"] - 0.5) <= 0.25 and m["extra"]["ci"]["low"] <= 0.5 <= m["extra"]["ci"]["high"]
    assert const["matching_1to2_ceiling"]["value"] == scored["real"]["matching_1to2_ceiling"]["value"]


def test_known_answers_other_and_random_identity(scored):
    other, anyone = scored["other"], scored["anyone"]
    # another identity's real face is that identity, never the speaker's: below chance, exactly 0
    assert other["gallery_r1"]["value"] == 0.0 and other["identity_top1_fake"]["value"] == 0.0
    # a uniformly random identity's face: chance (1/G, 1/2) inside the 95 % interval
    for metric, chance in (("gallery_r1", 1 / 6), ("matching_1to2", 0.5), ("identity_top1_fake", 1 / 6)):
        ci = anyone[metric]["extra"]["ci"]
        assert ci["low"] <= chance <= ci["high"], (metric, anyone[metric]["value"], ci)
        assert anyone[metric]["value"] < scored["real"][metric]["value"]


def test_every_row_has_the_interval_shape(scored):
    for run, rows in scored.items():
        for metric, row in rows.items():
            ci = row["extra"].get("ci")
            if metric in NO_CI or row["n"] == 0:
                assert ci is None
                continue
            assert set(ci) == CI_KEYS, (run, metric)
            assert ci["low"] <= row["value"] + 1e-12 and row["value"] <= ci["high"] + 1e-12, (run, metric, ci)
            assert ci["confidence"] == 0.95
            want_groups = 12  # face ids: pairs sharing a face are resampled together
            assert ci["n_groups"] == want_groups, (run, metric, ci)


def test_landmark_rows_have_intervals_from_face_groups(six, cache, faces):
    ev = Evaluation.build(six, suites=("landmarks",), cache_dir=cache,
                          sources=[ArrayItem(faces["real"], faces["pairs"], run="real")])
    rows = [s.row for s in ev.score_all()]
    by = {r["metric"]: r for r in rows}
    for metric in ("landmark_detection_rate", "landmark_detection_rate_real"):
        ci = by[metric]["extra"]["ci"]
        assert set(ci) == CI_KEYS and ci["n_groups"] == 12 and ci["low"] <= by[metric]["value"] <= ci["high"]


def _cli(argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def _folder(root: Path, name: str, faces: np.ndarray, pairs: list[str]) -> Path:
    out = root / name
    out.mkdir(parents=True, exist_ok=True)
    for pid, face in zip(pairs, faces):
        save_png(out / f"{pid}.png", face)
    return out


@pytest.mark.parametrize("argv, expect", [
    (["--gallery-size", "7"], "gallery size 7 needs at least 7 test identities, got 6"),
    (["--matching", "2,10"], "possible: 1:2 to 1:6"),
])
def test_impossible_settings_are_one_line_exit_2(six, cache, faces, tmp_path, capsys, argv, expect):
    folder = _folder(tmp_path, "real", faces["real"], faces["pairs"])
    code, _, err = _cli(["evaluate", "--data", str(six), "--images", str(folder), "--name", "r", "--store",
                         str(tmp_path / "s.sqlite"), "--cache-dir", str(cache), "--metrics",
                         "retrieval,matching", *argv], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and expect in err, err
    assert not (tmp_path / "s.sqlite").exists()  # refused before anything ran


def test_testlist_through_evaluate_and_report(six, cache, faces, tmp_path, capsys, tiny_data):
    from w2p_eval.results import ResultsStore

    folder = _folder(tmp_path, "anyone", faces["anyone"], faces["pairs"])
    tl = tmp_path / "six.testlist.json"
    assert _cli(["testlist", "--data", str(six), "--out", str(tl), "--seed", "0"], capsys)[0] == 0
    tl_id = json.loads(tl.read_text())["id"]
    store = tmp_path / "s.sqlite"
    base = ["evaluate", "--data", str(six), "--images", str(folder), "--name", "anyone", "--store", str(store),
            "--cache-dir", str(cache), "--metrics", "identity,retrieval,matching"]
    assert _cli(base, capsys)[0] == 0
    plain = ResultsStore(store).query().set_index("metric")
    assert _cli(base + ["--testlist", str(tl)], capsys)[0] == 0  # another test list: not skipped, rows replaced
    frozen = ResultsStore(store).query().set_index("metric")
    # the list holds 1:2 and 1:5 (what 6 identities allow): the earlier run's skipped 1:10 row stays as it was
    ten = ["matching_1to10", "matching_1to10_same_gender"]  # (same-gender rows: skipped, no gender labels)
    frozen, plain = frozen.drop(index=ten), plain.drop(index=ten)
    assert all(e.get("testlist") == tl_id for e in frozen["extra"]) and len(frozen) == len(plain)
    assert not any(e.get("testlist") for e in plain["extra"])
    # the list was drawn with the same seed as the evaluation: the same galleries and tuples, the same numbers
    for metric in ("gallery_r1", "gallery_r5", "matching_1to2", "matching_1to5"):
        assert frozen.loc[metric, "value"] == pytest.approx(plain.loc[metric, "value"])
    # a test list made for another dataset: one line, exit 2, nothing written
    before = len(ResultsStore(store).query())
    code, _, err = _cli(["evaluate", "--data", str(tiny_data), "--images", str(folder), "--name", "x", "--store",
                         str(store), "--cache-dir", str(cache), "--testlist", str(tl)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "was made for dataset manifest" in err, err
    assert len(ResultsStore(store).query()) == before
    code, _, err = _cli(base + ["--testlist", str(tl), "--split", "train"], capsys)
    assert code == 2 and "fixes --split test" in err
    # the report renders the protocol table with intervals
    rep = tmp_path / "rep"
    assert _cli(["report", "--store", str(store), "--out", str(rep), "--no-samples"], capsys)[0] == 0
    md = (rep / "tables" / "protocols.md").read_text()
    assert "gallery recall@1 (SF2F)" in md and "% [" in md and (rep / "figures" / "protocols.png").is_file()


def test_compare_two_sources_hand_checkable_mcnemar(six, cache, faces, tmp_path, capsys):
    real, other, pairs = faces["real"], faces["other"], faces["pairs"]
    k = 10  # B = the real face for the first 10 pairs, another identity's face for the 14 others
    a = _folder(tmp_path, "A", real, pairs)
    b = _folder(tmp_path, "B", np.concatenate([real[:k], other[k:]]), pairs)
    out = tmp_path / "cmp.json"
    code, text, err = _cli(["compare", str(a), str(b), "--data", str(six), "--cache-dir", str(cache), "--json",
                            "--out", str(out)], capsys)
    assert code == 0, err
    result = json.loads(text)
    assert json.loads(out.read_text()) == result
    by = {e["metric"]: e for e in result["metrics"]}
    top1 = by["identity_top1_fake"]
    # the judge gets every real face right (its ceiling here) and every other identity's face wrong
    assert top1["a"] == 1.0 and top1["b"] == pytest.approx(k / 24)
    mc = top1["mcnemar"]
    assert (mc["b"], mc["c"]) == (24 - k, 0)
    assert mc["p_value"] == pytest.approx(stats.binomtest(24 - k, 24 - k, 0.5).pvalue)  # = 2 * 0.5 ** 14
    assert top1["difference"] == pytest.approx(1 - k / 24)
    assert top1["diff_ci"]["low"] <= top1["difference"] <= top1["diff_ci"]["high"]
    assert by["matching_1to2"]["mcnemar"] is not None and by["gallery_r1"]["mcnemar"] is None
    assert by["paired_l2"]["a"] == pytest.approx(0, abs=1e-6) and by["paired_l2"]["difference"] < 0
    # the same comparison as a table, and as a report section
    code, table, _ = _cli(["compare", str(a), str(b), "--data", str(six), "--cache-dir", str(cache),
                           "--suites", "identity", "--metrics", "identity_top1_fake"], capsys)
    assert code == 0 and "identity top-1 (generated)" in table and "(14/0)" in table and "A − B" in table
    store = tmp_path / "s.sqlite"
    assert _cli(["evaluate", "--data", str(six), "--images", str(a), "--name", "A", "--store", str(store),
                 "--cache-dir", str(cache), "--metrics", "identity"], capsys)[0] == 0
    rep = tmp_path / "rep"
    assert _cli(["report", "--store", str(store), "--out", str(rep), "--no-samples", "--compare", str(out)],
                capsys)[0] == 0
    assert "Paired comparisons" in (rep / "report.md").read_text() and (rep / "tables" / "compare_1.md").is_file()


def test_compare_refuses_different_test_pairs_and_bad_files(six, cache, faces, tmp_path, capsys):
    a = _folder(tmp_path, "A", faces["real"], faces["pairs"])
    b = _folder(tmp_path, "B", faces["real"][:20], faces["pairs"][:20])
    code, _, err = _cli(["compare", str(a), str(b), "--data", str(six), "--cache-dir", str(cache)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "same test pairs" in err and "4 only in A" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    code, _, err = _cli(["report", "--store", str(tmp_path / "none.sqlite"), "--out", str(tmp_path / "r"),
                         "--compare", str(bad)], capsys)
    assert code == 2 and "expected a comparison" in err


def test_resolve_source_kinds(tmp_path):
    from w2p_eval.evaluation.compare import resolve_source

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    for e in (1, 5):
        (run / "checkpoints" / f"epoch_{e:04d}.pt").write_bytes(b"")
    item = resolve_source(run)
    assert item.kind == "checkpoint" and item.path.name == "epoch_0005.pt" and item.run == "run"
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    assert resolve_source(imgs, "mine").kind == "images" and resolve_source(imgs).run == "imgs"
    with pytest.raises(InputError, match="missing path"):
        resolve_source(tmp_path / "nope")


@pytest.mark.parametrize("name, n_pairs, n_ways", [("release_example", 615, [2]), ("grid_example", 70, [2, 5, 10])])
def test_shipped_test_lists_belong_to_their_example_reports(name, n_pairs, n_ways):
    import csv

    from w2p_eval.metrics.testlist import load_testlist

    root = Path(__file__).resolve().parents[2] / "reports"
    tl = load_testlist(root / f"{name}.testlist.json")  # id matches the content: not edited
    hashes = {r["data_hash"] for r in csv.DictReader(open(root / name / "tables" / "rows.csv"))}
    assert hashes == {tl.manifest_hash}  # made from the same prepared dataset as the example report
    assert len(tl.pair_ids) == n_pairs and sorted(tl.matching) == n_ways and (tl.split, tl.protocol) == ("test", "seen")
