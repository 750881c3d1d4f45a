"""`w2p-eval report`: every file produced; tables hold every run and metric; paper numbers labelled."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from w2p_eval.errors import InputError
from w2p_eval.models.checkpoint import checkpoint_hash, checkpoint_path, load_checkpoint, save_checkpoint
from w2p_eval.report import tables as T
from w2p_eval.report.build import build_report
from w2p_eval.report.metrics_info import format_value
from w2p_eval.results import ResultsStore

IDS = ["id00", "id01", "id02"]
METRICS = ["identity_top1_fake", "identity_top1_real", "retrieval_r1", "frechet_face",
           "landmark_detection_rate", "landmark_nme"]


def _fit(model: str, data: Path, out: Path) -> Path:
    from w2p_eval.train.baselines import train

    train({"model": model, "seed": 0, "image_size": 64, "audio_seconds": 1.0, "protocol": "seen"}, data, out)
    return out


def _multi_epoch_run(data: Path, out: Path, src_run: Path) -> Path:
    """A run folder with three real checkpoints (epochs 1-3) and a losses.jsonl, like a training run."""
    ck = load_checkpoint(checkpoint_path(src_run, 0))
    for epoch in (1, 2, 3):
        save_checkpoint(checkpoint_path(out, epoch), model=ck["model"], epoch=epoch, config=ck["config"],
                        identities=ck["identities"], image_size=ck["image_size"],
                        audio_seconds=ck["audio_seconds"], state=ck["state"])
    (out / "config.yaml").write_text("model: wav2pix\naudio_seconds: 1.0\nimage_size: 64\n")
    (out / "losses.jsonl").write_text("".join(json.dumps({"epoch": e, "loss_d": 1 / e, "loss_g": 2 + e, "l1": 0.3})
                                              + "\n" for e in (1, 2, 3)))
    return out


def _rows(run: Path, model: str, base: float, seeds=(0, 1), overlay: Path | None = None) -> list[dict]:
    rows = []
    for ck in sorted((run / "checkpoints").glob("epoch_*.pt")):
        epoch = int(ck.stem.split("_")[1])
        for seed in seeds:
            for k, metric in enumerate(METRICS):
                value = base + 0.05 * epoch + 0.01 * seed + 0.001 * k
                extra = {}
                if metric.startswith("identity_top1"):
                    extra = {"per_identity": dict(zip(IDS, [value, value / 2, 1 - value])), "labels": IDS,
                             "confusion": np.eye(3, dtype=int).tolist()}
                if metric == "landmark_detection_rate" and overlay is not None:
                    extra = {"overlay": str(overlay), "ci_low": value - 0.1, "ci_high": value + 0.1}
                evaluator = "identity/dlib_resnet" if metric.startswith(("identity", "retr", "frech")) else \
                    "landmarks/dlib"
                rows.append(dict(data_hash="dh", run=run.name, model=model, checkpoint=str(ck),
                                 checkpoint_hash=checkpoint_hash(ck), epoch=epoch, metric=metric, split="test",
                                 protocol="seen", seed=seed, value=value, n=6, evaluator=evaluator,
                                 evaluator_version="1", config_hash="c", extra=extra))
    return rows


@pytest.fixture(scope="module")
def report_setup(tmp_path_factory, tiny_data):
    root = tmp_path_factory.mktemp("report")
    mean = _fit("mean_face", tiny_data, root / "mean_face")
    real = _fit("real_faces", tiny_data, root / "real_faces")
    w2p = _multi_epoch_run(tiny_data, root / "wav2pix_64", mean)
    overlay = root / "overlay.png"
    from w2p_eval.data.images import save_png

    save_png(overlay, np.full((32, 64, 3), 128, np.uint8))
    store = ResultsStore(root / "results.sqlite")
    store.write(_rows(w2p, "wav2pix", 0.3, overlay=overlay) + _rows(mean, "mean_face", 0.1)
                + _rows(real, "real_faces", 0.8))
    spk = root / "speaker_retrieval"  # a run folder holding a copy of a real checkpoint
    (spk / "checkpoints").mkdir(parents=True)
    shutil.copy(checkpoint_path(mean, 0), checkpoint_path(spk, 0))
    ck = checkpoint_path(spk, 0)
    store.write([dict(data_hash="dh", run="speaker_retrieval", model="speaker_retrieval", checkpoint=str(ck),
                      checkpoint_hash="spk", epoch=0, metric=m, split="test", protocol="seen", seed=0, value=v,
                      n=6, evaluator="speaker/resemblyzer+linear", evaluator_version="1", config_hash="c",
                      extra={}) for m, v in (("speaker_id_top1", 0.9), ("speaker_id_top5", 1.0))])
    return root, [w2p, mean, real, spk], tiny_data


def test_report_writes_every_file_and_tables_hold_every_run_and_metric(report_setup):
    root, runs, data = report_setup
    out = root / "reports" / "tiny"
    html = build_report(runs, root / "results.sqlite", out, data_dir=data, command="w2p-eval report ...")
    assert html == out / "report.html" and html.is_file() and (out / "report.md").is_file()
    for name in ("main", "main_numeric", "paper_reference", "per_identity", "epochs_wav2pix_64", "speaker_id",
                 "landmarks"):
        for ext in ("csv", "md", "tex"):
            assert (out / "tables" / f"{name}.{ext}").is_file(), f"{name}.{ext}"
    for name in ("samples", "epochs_identity_top1_fake", "epochs_landmark_detection_rate", "loss_curves",
                 "confusion_wav2pix_64_generated", "confusion_real_test_faces", "landmarks_wav2pix_64_0"):
        for ext in ("png", "pdf"):
            assert (out / "figures" / f"{name}.{ext}").stat().st_size > 1000, f"{name}.{ext}"
    main = pd.read_csv(out / "tables" / "main_numeric.csv", index_col=0)
    assert list(main.index) == ["wav2pix_64", "speaker_retrieval", "mean_face", "real_faces"]  # model order
    for metric in METRICS:
        assert metric in main.columns
        assert main[metric].drop("speaker_retrieval").notna().all()
    assert main.loc["speaker_retrieval", "speaker_id_top1"] == pytest.approx(0.9)
    # final epoch (3) of wav2pix, mean over seeds 0 and 1
    assert main.loc["wav2pix_64", "identity_top1_fake"] == pytest.approx(0.3 + 0.15 + 0.005)
    md = (out / "report.md").read_text()
    assert md.startswith("# w2p-eval report: tiny\n")
    assert "± 0.71 %" in md  # std over two seeds (0.01 * sqrt(1/2)) printed as a percentage
    assert "76.81 %" in md and "50.08 %" in md and "90.25 %" in md and "reported" in md
    assert "Split protocol `seen`" in md and "Evaluation seeds: 0, 1" in md
    assert "landmark detection rate" in md and "higher is better" in md
    assert "w2p-eval report ..." in md
    lmk = pd.read_csv(out / "tables" / "landmarks.csv", index_col=0)
    # seed 0: 0.454 -+ 0.1 from an older row's Wilson ci_low/ci_high (rows now carry extra["ci"])
    assert lmk.loc["wav2pix_64", "detection rate [95 % CI]"] == "45.4 % [35.4, 55.4]"
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (out / link).is_file()
    page = html.read_text()
    assert page.count("data:image/png;base64,") >= 6
    assert 'src="figures' not in page and "<script" not in page and "://" not in page
    tex = (out / "tables" / "main.tex").read_text()
    assert r"\begin{tabular}" in tex and r"$\pm$" in tex and r"\%" in tex


def test_report_rerun_replaces_and_refuses_foreign_folder(report_setup, tmp_path):
    root, runs, data = report_setup
    out = tmp_path / "rep"
    build_report(runs[1:3], root / "results.sqlite", out, samples=False)
    first = pd.read_csv(out / "tables" / "main_numeric.csv", index_col=0)
    assert list(first.index) == ["mean_face", "real_faces"]
    build_report(runs[:1], root / "results.sqlite", out, samples=False)
    assert list(pd.read_csv(out / "tables" / "main_numeric.csv", index_col=0).index) == ["wav2pix_64"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".rep.")]  # no staging folders left
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep me")
    with pytest.raises(InputError, match="earlier report"):
        build_report(runs, root / "results.sqlite", foreign)
    assert (foreign / "mine.txt").read_text() == "keep me"


def test_report_without_results_is_a_one_line_error(report_setup, tmp_path):
    root, runs, data = report_setup
    empty = tmp_path / "empty.sqlite"
    ResultsStore(empty)
    proc = subprocess.run([sys.executable, "-m", "w2p_eval", "report", str(runs[0]), "--store", str(empty),
                           "--out", str(tmp_path / "r")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "w2p-eval evaluate" in proc.stderr


def test_tables_known_answers():
    df = pd.DataFrame([
        dict(run="a", model="wav2pix", epoch=e, metric="identity_top1_fake", seed=s, value=v, n=10, extra={})
        for e, s, v in ((1, 0, 0.1), (2, 0, 0.4), (2, 1, 0.6))
    ] + [dict(run="b", model="mean_face", epoch=0, metric="identity_top1_fake", seed=0, value=0.25, n=10, extra={})])
    num, txt = T.main_table(df)
    assert num.loc["a", "identity_top1_fake"] == pytest.approx(0.5) and num.loc["a", "epoch"] == 2
    assert txt.loc["a", "identity_top1_fake"] == "50.00 ± 14.14 %"
    assert txt.loc["b", "identity_top1_fake"] == "25.00 %"
    assert format_value("frechet_face", 12.3456) == "12.35"
    abl = T.ablation_table(pd.DataFrame([
        dict(run=f"w{s}", model="wav2pix", epoch=1, metric="landmark_detection_rate", seed=0, value=s, n=5, extra={})
        for s in (0.3, 1.0)]), {"w0.3": 0.3, "w1.0": 1.0})
    assert list(abl.index) == ["0.3", "0.7", "1"]
    assert abl.loc["0.3", "ours: landmark detection rate"] == "30.00 %"
    assert abl.loc["0.7", "paper (reported): landmark detection rate"] == "89.12 %"
    assert T.to_markdown(txt).splitlines()[0].startswith("| run | model | epoch |")


def test_per_identity_table_shows_intervals():
    """Per-identity accuracies carry their stored interval; rows stored before intervals show the bare value."""
    df = pd.DataFrame([
        dict(run="w", model="wav2pix", epoch=3, metric="identity_top1_fake", seed=0, value=0.75, n=8,
             extra={"per_identity": {"a": 1.0, "b": 0.5}, "per_identity_ci": {"a": [0.61, 1.0], "b": [0.125, 0.875]}}),
        dict(run="w", model="wav2pix", epoch=3, metric="identity_top1_real", seed=0, value=1.0, n=8,
             extra={"per_identity": {"a": 1.0, "b": 1.0}}),
        dict(run="m", model="mean_face", epoch=0, metric="identity_top1_fake", seed=0, value=0.5, n=8,
             extra={"per_identity": {"a": 1.0}}),
    ])
    table = T.per_identity_table(df)
    assert list(table.columns) == ["w", "m", "real faces (classifier ceiling)"]
    assert table.loc["a", "w"] == "100.0 % [61.0, 100.0]" and table.loc["b", "w"] == "50.0 % [12.5, 87.5]"
    assert table.loc["a", "m"] == "100.00 %" and table.loc["b", "m"] == "–"
    assert table.loc["b", "real faces (classifier ceiling)"] == "100.00 %"


def test_reference_table_measured_values_carry_their_interval():
    one = dict(run="w", model="wav2pix", epoch=3, metric="identity_top1_fake", seed=0, value=0.9, n=615,
               extra={"ci": {"low": 0.867, "high": 0.932}})
    table = T.reference_table(pd.DataFrame([one]), n_identities=2)
    assert table.loc["identity top-1 (generated)", "ours (measured)"] == "90.0 % [86.7, 93.2]"
    assert table.loc["identity top-1 (generated)", "paper (reported)"] == "50.08 %"
    two_seeds = pd.DataFrame([one, {**one, "seed": 1, "value": 0.8}])  # several rows: their mean, no interval
    assert T.reference_table(two_seeds, n_identities=2).loc["identity top-1 (generated)", "ours (measured)"] == "85.00 %"
