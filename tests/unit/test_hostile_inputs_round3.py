"""Round three of the hostile inputs (issue 31): the findings of items 1, 3, 4, 5 and 6 as cases of the same
table (``tests/unit/test_hostile_inputs.py``: its :func:`check_case` runs each through the real CLI, checks the
exit code, one line on stderr, no traceback and a snapshot of every input before and after)."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

from tests.helpers import run_cli
from tests.unit.test_hostile_inputs import Expect, base, check_case, copy_data, edit_json  # noqa: F401 (fixture)
from tests.unit.test_identity_meta import _src
from tests.unit.test_testlist import _cross_gender, _own_face, _tripled, edited_list, labelled_six
from w2p_eval.errors import InputError
from w2p_eval.results import ResultsStore


# -- item 1: data text in the report -------------------------------------------------------------------------
def hostile_store(case, run="m<img src=x onerror=alert(1)>\n# injected", evaluator="identity/<script>x</script>",
                  version="1` <script>alert(2)</script> `"):
    path = case / "s.sqlite"
    rows = [dict(data_hash="d", run=r, model="external", checkpoint=f"/f/{k}", checkpoint_hash=f"h{k}", epoch=None,
                 metric=metric, split="test", protocol="seen", seed=0, value=0.2 + k / 10, n=6, evaluator=evaluator,
                 evaluator_version=version, config_hash="c", source="images", extra={})
            for k, r in enumerate([run, "plain"]) for metric in ("identity_top1_fake", "gallery_r1")]
    ResultsStore(path).write(rows)
    return path


def compare_file(case, *, name_a="<img src=x onerror=alert('a')>", name_b="b\n# heading from --name-b", a=0.6):
    side = {"source": "images", "path": "/x", "hash": "h", "model": "external", "epoch": None}
    entry = {"metric": "identity_top1_fake", "label": "identity top-1", "unit": "rate", "higher_is_better": True,
             "a": a, "b": 0.4, "a_ci": None, "b_ci": None, "difference": 0.2, "diff_ci": None, "mcnemar": None,
             "evaluator": "identity/dlib_resnet"}
    path = case / "cmp.json"
    path.write_text(json.dumps({"format": "w2p-eval-compare", "a": {**side, "name": name_a},
                                "b": {**side, "name": name_b}, "split": "test", "protocol": "seen", "seed": 0,
                                "n_pairs": 6, "judges": ["identity/dlib_resnet"], "metrics": [entry]}))
    return path


def report_argv(case, *extra):
    return ["report", "--store", str(hostile_store(case)), "--out", str(case / "rep"), "--no-samples", *extra]


def clean_report(case, err):
    md = (case / "rep" / "report.md").read_text()
    html = (case / "rep" / "report.html").read_text()
    assert "<script" not in md and "<img" not in md, md
    assert not [ln for ln in md.splitlines() if re.match(r"#+ *(injected|heading)", ln)]  # no heading from data
    assert "<script" not in html and "<img " not in html.replace('<img alt="', "")


# the store itself must not change; reading a WAL store read-only may leave SQLite's empty -wal / -shm index
REPORT = dict(code=0, outputs=("rep", "s.sqlite-wal", "s.sqlite-shm"), after=clean_report)


# -- item 3: identity metadata ---------------------------------------------------------------------------------
def prepare_with_meta(write_meta):
    def setup(b, case):
        meta = case / "meta.csv"
        write_meta(meta)
        return ["prepare", "folder", str(_src(case / "src")), "--out", str(case / "d"), "--identity-meta", str(meta)]
    return setup


def meta_junk(verb):
    def setup(b, case):
        data = copy_data(b, case)
        edit_json(data / "dataset.json", lambda i: {**i, "identity_meta": "junk"})
        if verb == "testlist":
            return ["testlist", "--data", str(data), "--out", str(case / "t.json")]
        return ["evaluate", str(b["ckpt"]), "--data", str(data), "--metrics", "identity,matching",
                "--store", str(case / "s.sqlite")]
    return setup


# -- item 4: edited test lists (id recomputed) -------------------------------------------------------------------
def edited(edit):
    def setup(b, case):
        data = labelled_six(case / "six")
        path = edited_list(data, case / "l.json", edit)
        return ["evaluate", str(b["ckpt"]), "--data", str(data), "--metrics", "matching", "--testlist", str(path),
                "--store", str(case / "s.sqlite")]
    return setup


# -- item 5: late failures ---------------------------------------------------------------------------------------
def second_judge_missing(b, case):  # the test unsets $W2P_VGG_FACE_WEIGHTS
    return ["evaluate", str(b["ckpt"]), "--data", str(b["data"]), "--metrics", "identity", "--backbone",
            "dlib_resnet,vgg_face", "--store", str(case / "s.sqlite"), "--cache-dir", str(case / "cache")]


def forged_record(b, case):
    """A validation record whose entries are of the wrong type: re-validated, the command goes on."""
    data = copy_data(b, case)
    argv = ["landmarks", "--real", "--data", str(data), "--store", str(case / "s.sqlite"), "--image-size", "16",
            "--cache-dir", str(case / "cache")]
    assert run_cli(argv).returncode == 0
    (record,) = (case / "cache" / "validation").glob("*.json")
    rec = json.loads(record.read_text())
    for key in rec["files"]:
        rec["files"][key][3] = "forged" if key.startswith("audio:") else ["x", "y"]
    record.write_text(json.dumps(rec))
    return argv


ROUND_THREE = {
    # 1: report text
    "report-store-evaluator-script": Expect(lambda b, c: report_argv(c), **REPORT),
    "report-title-newline-heading": Expect(lambda b, c: report_argv(c, "--title", "x\n# injected <script>"), **REPORT),
    "report-compare-names-html-and-newline": Expect(lambda b, c: report_argv(c, "--compare", str(compare_file(c))),
                                                    **REPORT),
    # 6: a compare file whose numbers are strings
    "report-compare-numbers-are-strings": lambda b, c: report_argv(c, "--compare", str(compare_file(c, a="0.6"))),
    # 3: identity metadata
    "identity-meta-Gender-header-bad-value": prepare_with_meta(lambda p: p.write_text(
        "identity,Gender\nalice,x\nbob,m\n")),
    "identity-meta-age-underscore": prepare_with_meta(lambda p: p.write_text("identity,age\nalice,3_5\nbob,40\n")),
    "identity-meta-is-a-directory": prepare_with_meta(lambda p: p.mkdir()),
    "identity-meta-is-a-fifo": prepare_with_meta(lambda p: os.mkfifo(p)),
    "identity-meta-junk-testlist": meta_junk("testlist"),
    "identity-meta-junk-evaluate": meta_junk("evaluate"),
    # 4: edited test lists whose id was recomputed
    "testlist-cross-gender-same-gender-impostor": edited(_cross_gender),
    "testlist-tuples-tripled": edited(_tripled),
    "testlist-probe-face-as-true-candidate": edited(_own_face),
    # 5: late failures
    "evaluate-second-judge-weights-missing": second_judge_missing,
    "validation-record-forged-entries": Expect(forged_record, code=0, outputs=("s.sqlite", "s-items", "cache")),
}


@pytest.mark.parametrize("name", list(ROUND_THREE))
def test_round_three_hostile_input(name, base, tmp_path, capsys, monkeypatch):  # noqa: F811 (base: the fixture)
    monkeypatch.delenv("W2P_VGG_FACE_WEIGHTS", raising=False)
    check_case(name, ROUND_THREE[name], base, tmp_path, capsys)


# -- 6: the Python API ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, expect", [
    ({"backbone": 5}, "expected identity backbones as a name"),
    ({"backbone": [5]}, "expected identity backbones as a name"),
    ({"batch_size": 0}, "expected an integer >= 1 for batch_size"),
    ({"batch_size": -3}, "expected an integer >= 1 for batch_size"),
])
def test_api_bad_arguments_are_one_input_error(tiny_data, kwargs, expect):
    from w2p_eval import evaluate_faces

    def faces(batch):
        return np.zeros((len(batch["pair_id"]), 3, 64, 64), np.float32)
    with pytest.raises(InputError, match=expect) as exc:
        evaluate_faces(faces, data=tiny_data, metrics="identity", **kwargs)
    assert "\n" not in str(exc.value)
