"""`w2p-eval ablate-audio` on the tiny dataset: one real WAV2PIX run per audio length, evaluated and tabulated
in the paper's shape with the paper's numbers beside ours."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest


@pytest.mark.slow
def test_ablate_audio_trains_evaluates_and_tabulates(tiny_data, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    out = tmp_path / "abl"
    proc = subprocess.run(
        [sys.executable, "-m", "w2p_eval", "ablate-audio", "--data", str(data), "--seconds", "0.3", "1.0",
         "--epochs", "1", "--batch-size", "8", "--out", str(out), "--metrics", "diversity"],
        capture_output=True, text=True, timeout=900, env={"W2P_CACHE": str(tmp_path / "cache"),
                                                          **__import__("os").environ})
    assert proc.returncode == 0, proc.stderr[-3000:]
    for sec in ("0.3", "1"):
        cfg = (out / f"wav2pix_64-audio{sec}s" / "config.yaml").read_text()
        assert f"audio_seconds: {float(sec)}" in cfg
    table = pd.read_csv(out / "ablation_audio.csv", index_col=0)
    assert list(table.index) == [0.3, 0.7, 1.0]
    assert table.loc[0.3, "paper (reported): landmark detection rate"] == "81.16 %"
    assert table.loc[0.3, "ours: identity top-1 (generated)"].endswith("%")
    assert table.loc[0.7, "ours: identity top-1 (generated)"] == "–"  # not run: no number invented
    every = pd.read_csv(out / "ablation_audio_metrics.csv", index_col=0)  # audio length x every metric
    assert list(every.index) == [0.3, 1.0]
    assert {"inter-identity cosine (collapse)", "identity top-1 (generated)", "landmark detection rate"} <= set(
        every.columns)
    assert "| audio (s) |" in proc.stdout and (out / "report" / "report.html").is_file()
    assert "Audio-length ablation" in (out / "report" / "report.md").read_text()
