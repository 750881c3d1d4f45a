"""One output style for the verbs that print rows, warnings once with a count, the report's layout pieces
(scroll boxes, metric groups, figures only where there are values), the CPU thread default, the licence."""

from __future__ import annotations

import io
import logging
import math
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import chromium_page_width
from w2p_eval.cli import RepeatedWarnings
from w2p_eval.report import figures as F
from w2p_eval.report import render as R
from w2p_eval.report.sections import metric_groups
from w2p_eval.results import format_rows
from w2p_eval.utils import default_threads

REPO = Path(__file__).resolve().parents[2]


def _row(metric, value, epoch=3, n=32, ci=None, run="wav2pix_64", model="wav2pix", source="checkpoint"):
    return {"run": run, "model": model, "epoch": epoch, "metric": metric, "value": value, "n": n, "source": source,
            "extra": {"ci": ci} if ci else {}}


def test_rows_print_percentages_intervals_and_dashes():
    rows = [_row("identity_top1_fake", 0.86, ci={"low": 0.831, "high": 0.887}),
            _row("landmark_nme", float("nan"), n=0),
            _row("frechet_face", 0.50412),
            _row("identity_top1_fake", 0.125, epoch=None, run="mine", model="external", source="images"),
            _row("paired_cosine", 0.4123, epoch=float("nan"), ci={"low": 0.4011, "high": 0.4236})]
    text = format_rows(rows, note="note: x")
    lines = text.splitlines()
    assert lines[0].split() == ["run", "model", "epoch", "metric", "value", "[95", "%", "CI]", "n"]
    assert "86.0 % [83.1, 88.7]" in lines[1] and lines[1].split()[2] == "3"
    nme = lines[2].split()
    assert nme[-2:] == ["–", "–"], "a missing value prints '–' and no n"
    assert "0.5041" in lines[3]
    assert "external (images)" in lines[4] and lines[4].split()[3] == "–"
    assert "0.4123 [0.4011, 0.4236]" in lines[5]
    assert lines[-1] == "note: x"
    for bad in ("NaN", "nan", "None"):
        assert bad not in text
    assert format_rows(pd.DataFrame(rows)) == format_rows(rows)  # the store's frame prints the same way


def test_each_warning_reaches_stderr_once_with_its_count():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    log = logging.getLogger("w2p_eval.test_repeats")
    log.addHandler(handler)
    log.propagate = False
    repeats = RepeatedWarnings()
    repeats.install([handler])
    try:
        for _ in range(7):
            log.warning("1:10 matching skipped (%s)", "got 8 identities")
        log.warning("something else")
        log.info("not counted")
    finally:
        repeats.uninstall()
        log.removeHandler(handler)
    assert stream.getvalue().splitlines() == ["1:10 matching skipped (got 8 identities)", "something else"]
    assert repeats.summary() == ["WARNING w2p_eval.test_repeats: 1:10 matching skipped (got 8 identities) "
                                 "(×7 in all, shown once)"]


def test_torch_threads_are_fixed_not_load_dependent(monkeypatch):
    """Same seed, same machine -> same results: the thread count must not follow the load (it moves floats)."""
    monkeypatch.delenv("W2P_THREADS", raising=False)
    assert default_threads(cores=2) == 2
    assert default_threads(cores=16) == 16
    monkeypatch.setenv("W2P_THREADS", "1")
    assert default_threads(cores=2) == 1


def test_every_html_table_scrolls_in_its_own_box():
    wide = pd.DataFrame({f"metric {i}": ["86.0 % [83.1, 88.7]"] for i in range(30)}, index=["wav2pix"])
    page = R.render_html("t", [R.table(wide, "caption"), R.code("x" * 500)])
    assert page.count('<div class="scroll"><table>') == 1 and "overflow-x:auto" in page


def test_main_table_groups_follow_the_suites():
    groups = dict(metric_groups(["speaker_id_top1", "landmark_nme", "gallery_r1", "identity_top1_fake",
                                 "matching_1to2", "paired_cosine", "landmark_detection_rate", "made_up"]))
    assert groups["identity"] == ["identity_top1_fake"]
    assert set(groups["protocols"]) == {"gallery_r1", "matching_1to2", "paired_cosine"}
    assert groups["landmarks"] == ["landmark_nme", "landmark_detection_rate"]
    assert groups["speaker"] == ["speaker_id_top1"] and groups["other"] == ["made_up"]


def _frame(values: dict[int, float], metric="landmark_nme") -> pd.DataFrame:
    rows = [{"run": "wav2pix_64", "model": "wav2pix", "epoch": e, "metric": metric, "value": v, "seed": 0,
             "source": "checkpoint", "extra": {}} for e, v in values.items()]
    rows.append({"run": "mean_face", "model": "mean_face", "epoch": 0, "metric": metric, "value": 0.06, "seed": 0,
                 "source": "checkpoint", "extra": {"ci": {"low": 0.05, "high": 0.07}}})
    return pd.DataFrame(rows)


def test_metric_vs_epoch_is_drawn_only_where_a_model_has_values(tmp_path):
    assert F.metric_vs_epoch(_frame({10: math.nan, 20: math.nan, 30: math.nan}), "landmark_nme", tmp_path) is None
    path = F.metric_vs_epoch(_frame({10: 0.2, 20: math.nan, 30: 0.1}), "landmark_nme", tmp_path)
    assert path is not None and path.is_file()


def test_metric_bars_fit_800_px(tmp_path):
    from PIL import Image

    df = pd.concat([_frame({30: 0.1}, m) for m in ("identity_top1_fake", "gallery_r1", "matching_1to2",
                                                   "paired_cosine")])
    path = F.metric_bars(df, ["identity_top1_fake", "gallery_r1", "matching_1to2", "paired_cosine"], tmp_path,
                         "bars", "t")
    width = Image.open(path).size[0]
    assert width <= 1000, f"4 panels drawn {width} px wide: shrunk below half size at 800 px"


def test_licence_is_an_spdx_string():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert isinstance(project["license"], str) and project["license"] == "MIT"


def test_committed_example_reports_fit_the_browser_window():
    page_width = chromium_page_width()
    pages = sorted((REPO / "reports").glob("*/report.html"))
    current = [p for p in pages if 'class="scroll"' in p.read_text(encoding="utf-8")]
    if not current:
        pytest.skip(f"the committed example reports ({len(pages)}) predate the scroll-box layout: regenerate them "
                    f"(reports/*.commands.sh)")
    for page in current:
        for width in (1400, 800):
            got, window = page_width(page, width)
            assert got <= window, f"{page.relative_to(REPO)} is {got} px wide in a {window} px window"


def test_a_command_leaves_no_module_state_behind(tmp_path, tiny_data):
    """--store-timeout reaches the stores of that command only: results.STORE_TIMEOUT_S stays the default (it was
    a module global the option overwrote for the rest of the process)."""
    from tests.helpers import run_cli
    from w2p_eval import results

    store = tmp_path / "r.sqlite"
    argv = ["identity", "--images", str(tmp_path / "none"), "--name", "x", "--data", str(tiny_data), "--store",
            str(store), "--store-timeout", "3"]
    (tmp_path / "none").mkdir()
    got = run_cli(argv)
    assert got.returncode == 2 and "expected" in got.stderr  # an empty folder: nothing to score
    assert results.STORE_TIMEOUT_S == 60.0
