"""Evaluate + report on real GRID clips (../shared/data/grid_videos): baselines through the real judges into
the store, then a report whose tables hold every run and metric (skipped when ../shared is absent)."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.helpers import shared_path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SAME_SPEAKER = {"id2_vcd_swwp2s.mpg": "s2", "pwij3p.mpg": "s2"}


def test_grid_baselines_evaluate_and_report(tmp_path):
    from w2p_eval.data.prepare_videos import prepare_videos
    from w2p_eval.pipeline.evaluate import evaluate_runs
    from w2p_eval.report.build import build_report
    from w2p_eval.results import ResultsStore, default_store
    from w2p_eval.train.run import run_training

    src = shared_path("grid_videos")
    names = sorted(p.name for p in src.glob("*.mpg"))
    mapping = tmp_path / "mapping.csv"
    mapping.write_text("file,identity\n" + "".join(f"{n},{SAME_SPEAKER.get(n, n[:-4])}\n" for n in names))
    data = tmp_path / "grid"
    prepare_videos(src, data, seed=0, mapping=mapping)
    runs = []
    for model in ("mean_face", "random_real", "real_faces"):
        run_training({"model": model}, data, tmp_path / "runs" / model, seed=0)
        runs.append(tmp_path / "runs" / model)
    summary = evaluate_runs(runs, data, suites=("identity", "landmarks"), cache_dir=tmp_path / "cache")
    assert not summary.failed and len(summary.evaluated) == 6
    df = ResultsStore(default_store(data)).query()
    real = df[(df.run == "real_faces")].set_index("metric")["value"]
    assert real["identity_top1_fake"] == pytest.approx(real["identity_top1_real"])
    assert real["landmark_detection_rate"] == pytest.approx(real["landmark_detection_rate_real"])
    assert real["identity_top1_real"] > 0.5  # 10 GRID speakers, chance 10 %
    mean = df[(df.run == "mean_face")].set_index("metric")["value"]
    assert mean["identity_top1_fake"] < real["identity_top1_fake"]
    html = build_report(runs, default_store(data), tmp_path / "report", data_dir=data)
    main = pd.read_csv(html.parent / "tables" / "main_numeric.csv", index_col=0)
    assert list(main.index) == ["random_real", "mean_face", "real_faces"]
    assert {"identity_top1_fake", "landmark_detection_rate", "landmark_nme", "frechet_face"} <= set(main.columns)
    assert (html.parent / "figures" / "samples.png").is_file()
