"""`w2p-eval demo --quick`: the whole pipeline (demo data, WAV2PIX, baselines, identity and landmark
judges, report) end to end in a subprocess, offline."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest


@pytest.mark.slow
def test_demo_quick_end_to_end(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "W2P_DEMO_QUICK": "1", "OMP_NUM_THREADS": "2"}
    proc = subprocess.run([sys.executable, "-m", "w2p_eval", "demo", "--out", str(out)], capture_output=True,
                          text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last == f"report: {out / 'report' / 'report.html'}"
    report = out / "report"
    assert (report / "report.html").stat().st_size > 10_000 and (report / "report.md").is_file()
    assert "[demo] 4/4" in proc.stderr  # progress on stderr
    assert "WARNING" not in proc.stderr, proc.stderr[-3000:]  # defaults the demo data cannot hold are notes
    main = pd.read_csv(report / "tables" / "main_numeric.csv", index_col=0)
    assert {"wav2pix_64", "mean_face", "real_faces"} <= set(main.index)
    for metric in ("identity_top1_fake", "identity_top1_real", "landmark_detection_rate", "landmark_nme"):
        assert metric in main.columns
    assert main.loc["real_faces", "identity_top1_fake"] == pytest.approx(main.loc["real_faces", "identity_top1_real"])
    for fig in ("samples", "loss_curves", "epochs_identity_top1_fake"):
        assert (report / "figures" / f"{fig}.png").is_file() and (report / "figures" / f"{fig}.pdf").is_file()
    # a second run reuses data, runs and stored results
    again = subprocess.run([sys.executable, "-m", "w2p_eval", "demo", "--out", str(out), "--quick"],
                           capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "reusing demo data" in again.stderr
    assert "evaluated 0 (source, judge) pairs" in again.stderr and "0 failed" in again.stderr
