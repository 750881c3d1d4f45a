"""Landmark backends validated on real data from ../shared/data (skipped when it is absent).

- landmarks_68: 11 HELEN/300-W photos with human 68-point annotations. dlib's NME (mean point error
  / outer-eye-corner distance) must stay under 0.08. Why 0.08: the ERT method behind dlib's predictor
  (Kazemi & Sullivan 2014) reports ~0.049 inter-ocular error on HELEN, and 300-W "common set" results for
  ERT are ~6-7 % of the outer-eye distance; we measured 0.0287 (9 of 11 detected; dlib 20.0.1), so 0.08
  is above the published common-set level with margin and still fails a broken predictor or a wrong
  point order (mirror-labelled or reversed annotations score 0.57-0.79 against themselves; a 1 px shift
  in x and y adds 0.01-0.03).
- Real 64 px face crops of the WAV2PIX release and of GRID: the ceiling detection rate.
"""

from __future__ import annotations

import pytest

from tests.helpers import shared_path

pytestmark = pytest.mark.integration

DLIB_NME_BOUND = 0.08


@pytest.mark.parametrize("max_side", [400, 64])
def test_dlib_nme_on_human_annotations(max_side):
    """max_side 400: the crops near full resolution (measured NME 0.0287); 64: the crop (2x the face)
    shrunk to 64 px, a face about 32 px wide - harder than the 64 px evaluation faces (measured 0.0491)."""
    from w2p_eval.judges.landmarks_validation import validate_backend

    out = validate_backend(shared_path("landmarks_68"), "dlib", max_side=max_side)
    assert out["n"] == 11
    assert out["n_detected"] >= 8  # measured 9: two faces are too rotated for the frontal HOG detector
    assert out["nme_mean"] < DLIB_NME_BOUND, out
    assert max(v for v in out["per_image"].values() if v is not None) < 0.1


def test_dlib_cnn_on_human_annotations():
    from w2p_eval.judges.landmarks_validation import validate_backend

    out = validate_backend(shared_path("landmarks_68"), "dlib_cnn")
    # measured: 11/11 found, median NME 0.051, mean 0.132 (MMOD boxes differ from the HOG boxes the
    # 68-point predictor was trained on, and in group photos it sometimes picks a neighbouring face)
    assert out["n_detected"] >= 10
    assert out["nme_median"] < DLIB_NME_BOUND, out


def _prepare(kind: str, src, out, *extra: str):
    from w2p_eval.cli import main

    with pytest.raises(SystemExit) as ex:
        main(["prepare", kind, str(src), "--out", str(out), *extra])
    assert ex.value.code == 0
    return out


@pytest.mark.slow
def test_real_release_faces_at_64px_are_detected(tmp_path):
    from w2p_eval.metrics.landmarks import DETECTION_RATE_REAL, evaluate_real

    data = _prepare("wav2pix-release", shared_path("wav2pix_release"), tmp_path / "release")
    (row,) = evaluate_real(data, image_size=64, cache_dir=tmp_path / "cache", workers=2)
    assert row["metric"] == DETECTION_RATE_REAL and row["n"] == 615
    assert row["value"] >= 0.93  # measured 0.9756 (600/615), Wilson 95 % CI 0.960-0.985


@pytest.mark.slow
def test_real_grid_faces_at_64px_are_detected(tmp_path):
    from w2p_eval.metrics.landmarks import evaluate_real

    data = _prepare("videos", shared_path("grid_videos"), tmp_path / "grid", "--every", "0.5", "--k", "1")
    (row,) = evaluate_real(data, image_size=64, cache_dir=tmp_path / "cache")
    assert row["n"] >= 10 and row["value"] >= 0.9  # measured 1.0 (82/82 test faces at --every 0.2)


def test_cli_annotations_validation_prints_the_readme_figure():
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "w2p_eval", "landmarks", "--annotations",
                          str(shared_path("landmarks_68")), "--json"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    import json

    out = json.loads(res.stdout)
    assert out["backend"] == "dlib" and out["n"] == 11 and out["nme_mean"] < DLIB_NME_BOUND
    bad = subprocess.run([sys.executable, "-m", "w2p_eval", "landmarks", "--annotations", "/nonexistent/pts"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "Traceback" not in bad.stderr
