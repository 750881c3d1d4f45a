"""The attributes suite without real data: a judge whose files are missing is one line and exit 2, and the report's
chance / ceiling / confusion rows from stored rows. The known answers on real faces (GRID speakers of ../shared)
are tests/integration/test_attributes_real.py."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import make_tiny_dataset, run_cli


def test_missing_judge_files_are_one_line_exit_2(tmp_path, monkeypatch):
    from w2p_eval.judges import attributes

    attributes._JUDGES.clear()
    monkeypatch.setenv("W2P_EVAL_MODELS", str(tmp_path / "nothing"))
    data = make_tiny_dataset(tmp_path / "data")
    code, _, err = run_cli(["evaluate", "--data", data, "--metrics", "attributes", "--images", data / "faces",
                            "--name", "x", "--store", tmp_path / "s.sqlite"])
    assert code == 2 and err.count("\n") == 1 and "faceres.json" in err and "npm" in err, err


def test_report_chance_ceiling_and_confusion_rows_from_stored_rows():
    import pandas as pd

    from w2p_eval.metrics.attributes import correlation_ci
    from w2p_eval.report.attributes import confusion_frame, reference_rows

    conf = [[3, 1], [2, 4]]  # real f: 4 pairs, real m: 6 pairs
    fin = pd.DataFrame([
        {"run": "a", "metric": "gender_agreement", "value": 0.7, "extra": {"confusion": conf,
                                                                           "confusion_labels": ["f", "m"]}},
        {"run": "a", "metric": "gender_accuracy_real", "value": 0.9, "extra": {"ci": {"low": 0.8, "high": 1.0}}},
        {"run": "a", "metric": "gender_accuracy_fake", "value": 0.6, "extra": {"chance": 0.6}},
    ])
    ref = reference_rows(fin)
    assert ref["chance"]["gender_agreement"].startswith("52.00")  # 0.6^2 + 0.4^2
    assert ref["chance"]["gender_accuracy_fake"].startswith("60.00")
    assert ref["ceiling (real faces)"]["gender_accuracy_fake"] == "90.0 % [80.0, 100.0]"
    frame = confusion_frame(fin, "gender_agreement")
    assert frame.to_dict("records") == [{"run": "a", "real": "f", "generated f": 3, "generated m": 1},
                                        {"run": "a", "real": "m", "generated f": 2, "generated m": 4}]
    x = np.arange(10.0)
    ci = correlation_ci(x, 2 * x + 1, [str(i // 2) for i in range(10)], seed=0, n_resamples=200)
    assert ci["value"] == pytest.approx(1.0) and ci["n_groups"] == 5
    assert correlation_ci(x, np.ones(10), list(range(10)), seed=0, n_resamples=10) is None
