"""Issue 31, item 1: every string that comes from data is escaped for the place it lands in report.md,
report.html, the tables and the figures (no raw HTML, no line break that starts a Markdown block, no code-span
break-out). A report is rendered through the CLI from a results store and a compare file full of such strings."""

from __future__ import annotations

import html
import json
import re

import pandas as pd
import pytest

from tests.helpers import run_cli
from w2p_eval.results import ResultsStore
from w2p_eval.text import html_inline, inline_tokens, md_cell, md_code, md_fence, md_inline, md_text

EVIL_RUN = "a<img src=x onerror=alert(1)>\n# injected heading"
EVIL_JUDGE = "identity/<script>alert('judge')</script>"
EVIL_VERSION = "1` <script>alert('v')</script> `x"
EVIL_NAME_A = "<img src=x onerror=alert('a')>"
EVIL_NAME_B = "b\n# heading from --name-b\n<script>alert('b')</script>"
EVIL_TITLE = "T\n<script>alert('title')</script>"
EVIL_COMMAND = "w2p-eval compare x y --name-a '```\n<script>alert(1)</script>'"

HOSTILE = ["<script>", "<img", "\n# injected", "\n# heading", "\n<script"]


def _row(run, metric, evaluator, value, version="1"):
    return dict(data_hash="dh<b>`", run=run, model="external", checkpoint=f"/faces/{run}", checkpoint_hash=f"h-{run}",
                epoch=None, metric=metric, split="test<i>", protocol="seen", seed=0, value=value, n=30,
                evaluator=evaluator, evaluator_version=version, config_hash="c", source="images",
                extra={"ci": {"value": value, "low": value - 0.05, "high": value + 0.05}})


def _compare_file(path):
    entry = {"metric": "identity_top1_fake", "label": "identity top-1 <b>x</b>", "unit": "rate",
             "higher_is_better": True, "a": 0.6, "b": 0.4, "a_ci": {"low": 0.5, "high": 0.7},
             "b_ci": {"low": 0.3, "high": 0.5}, "n_a": 30, "n_b": 30, "difference": 0.2,
             "diff_ci": {"low": 0.1, "high": 0.3}, "mcnemar": {"p_value": 0.01, "b": 8, "c": 2}, "n_items": 30,
             "evaluator": EVIL_JUDGE}
    side = {"source": "images", "path": "/x/<script>alert('p')</script>\n# p", "hash": "h", "model": "external",
            "epoch": None}
    path.write_text(json.dumps({
        "format": "w2p-eval-compare", "a": {**side, "name": EVIL_NAME_A}, "b": {**side, "name": EVIL_NAME_B},
        "data_hash": "dh", "split": "test", "protocol": "seen", "seed": 0, "testlist": "t`<b>`",
        "n_pairs": 30, "suites": ["identity"], "judges": [EVIL_JUDGE, "identity/dlib_resnet"], "metrics": [entry]}))
    return path


@pytest.fixture
def hostile_report(tmp_path, capsys):
    store = ResultsStore(tmp_path / "r.sqlite")
    rows = []
    for judge, base in ((EVIL_JUDGE, 0.2), ("identity/dlib_resnet", 0.1)):
        for k, run in enumerate([EVIL_RUN, "plain", "x$\\frac{1}{$y `z` **w**"]):
            rows += [_row(run, "identity_top1_fake", judge, base + k / 10, EVIL_VERSION),
                     _row(run, "gallery_r1", judge, base + (2 - k) / 10, EVIL_VERSION)]
    store.write(rows)
    cmp = _compare_file(tmp_path / "cmp.json")
    code, _, err = run_cli(["report", "--store", str(tmp_path / "r.sqlite"), "--out", str(tmp_path / "rep"),
                            "--title", EVIL_TITLE, "--compare", str(cmp), "--no-samples"], capsys)
    assert code == 0, err
    return tmp_path / "rep"


def test_report_md_and_html_escape_every_data_string(hostile_report):
    md = (hostile_report / "report.md").read_text()
    page = (hostile_report / "report.html").read_text()
    for bad in HOSTILE:
        assert bad not in md, bad
    # the only headings are the report's own
    assert [ln for ln in md.splitlines() if ln.startswith("#")] == [
        ln for ln in md.splitlines() if re.match(r"#{1,3} [A-Z\\w]", ln)]
    assert not [ln for ln in md.splitlines() if "injected" in ln and ln.startswith("#")]
    # a code span around an evaluator with a backtick: the whole name stays inside one span
    for kind, text in [t for line in md.splitlines() for t in inline_tokens(line)]:
        if kind == "text":
            assert "<script" not in text and "<img" not in text
    # HTML: only the report's own tags
    tags = set(re.findall(r"<(/?[a-zA-Z0-9]+)", page))
    assert tags <= {"!DOCTYPE", "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "ul", "li",
                    "code", "pre", "b", "div", "table", "tr", "th", "td", "figure", "img", "figcaption",
                    *(f"/{t}" for t in ("html", "head", "title", "style", "body", "h1", "h2", "h3", "p", "ul", "li",
                                        "code", "pre", "b", "div", "table", "tr", "th", "td", "figure",
                                        "figcaption"))}, tags
    assert "&lt;script&gt;" in page and "onerror" in page  # shown as text, not dropped
    assert EVIL_NAME_A.replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#x27;") in page


def test_tables_and_figures_of_a_hostile_report(hostile_report):
    for path in (hostile_report / "tables").glob("*.md"):
        text = path.read_text()
        assert "<script" not in text and "<img" not in text, path
        assert all(ln.startswith("|") for ln in text.splitlines() if ln), path
    for path in (hostile_report / "tables").glob("*.tex"):
        assert "\n\n" not in path.read_text().strip(), path
    assert list((hostile_report / "figures").glob("*.png"))  # "$...$" in a run name did not fail the figures
    side = pd.read_csv(hostile_report / "tables" / "compare_1.csv")
    assert any(EVIL_NAME_A in c for c in side.columns)  # the csv keeps the name as data


def test_escaping_helpers_known_answers():
    assert md_text("<b>x</b>\n# h") == "&lt;b&gt;x&lt;/b&gt; \\# h"
    assert md_text("- item") == "\\- item" and md_text("1. x") == "1\\. x"
    assert md_code("a`b") == "``a`b``" and md_code("`x") == "`` `x ``"
    assert [t for t in inline_tokens("a " + md_code("x``y`") + " b") if t[0] == "code"] == [("code", "x``y`")]
    assert md_fence("```\nx") == "````\n```\nx\n````"
    assert md_cell("a\\|b`[c]*") == "a\\\\\\|b\\`[c]\\*" and md_cell("[x](javascript:y)") == "[x\\](javascript:y)"
    assert md_inline("<script>x</script>\n# h") == "&lt;script>x&lt;/script> # h"
    assert md_inline("# h") == "\\# h" and md_inline("**bold** ok") == "**bold** ok"
    assert html_inline("**b** `<i>` " + md_text("<s>")) == "<b>b</b> <code>&lt;i&gt;</code> &lt;s&gt;"
    assert html_inline("**open") == "<b>open</b>"
    for s in ["<b>", "`", "``x", "a\\", "*", "[x](y)", "\\`", "&amp;"]:  # data text round-trips (HTML page)
        assert html_inline(md_text(s)) == html.escape(s)
