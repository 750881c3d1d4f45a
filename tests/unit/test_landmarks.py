"""Landmark judge and metric arithmetic: known answers on a real face photo (scikit-image's bundled
astronaut portrait) and on no-face images, parallel workers, bad input, the fan loading path.
Checkpoint evaluation, caching and the CLI are in test_landmarks_eval.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.helpers import astronaut, face_crop, grey, noise
from w2p_eval.errors import InputError
from w2p_eval.judges.landmarks import LandmarkResult, list_images, load_backend, score_images
from w2p_eval.judges.landmarks_validation import nme, read_pts
from w2p_eval.metrics import landmarks as M


# ---------------------------------------------------------------- metric arithmetic
def test_wilson_interval_known_answers():
    lo, hi = M.wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = M.wilson_interval(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = M.wilson_interval(10, 10)
    assert hi == pytest.approx(1.0) and lo == pytest.approx(0.7225, abs=1e-4)
    assert all(math.isnan(v) for v in M.wilson_interval(0, 0))


def test_nme_known_answers():
    rng = np.random.default_rng(0)
    ref = rng.uniform(0, 64, (3, 68, 2))
    ref[:, 36], ref[:, 45] = (10.0, 20.0), (40.0, 20.0)  # outer eye corners 30 px apart
    assert np.allclose(nme(ref, ref), 0.0)
    assert np.allclose(nme(ref + np.array([3.0, 4.0]), ref), 5.0 / 30.0)  # every point 5 px off
    pred = ref.copy()
    pred[1] = np.nan
    out = nme(pred, ref)
    assert np.isnan(out[1]) and np.allclose(out[[0, 2]], 0.0)
    with pytest.raises(InputError, match=r"\[N, 68, 2\]"):
        nme(ref[:, :5], ref[:, :5])


def test_read_pts_parses_ibug_and_rejects_garbage(tmp_path):
    pts = np.arange(136, dtype=float).reshape(68, 2) + 1.0
    text = "version: 1\nn_points:  68\n{\n" + "\n".join(f"{x:.6f} {y:.6f}" for x, y in pts) + "\n}\n"
    (tmp_path / "a.pts").write_text(text)
    got = read_pts(tmp_path / "a.pts")
    assert got.shape == (68, 2) and np.allclose(got, pts - 1.0)  # 1-based -> 0-based pixels
    (tmp_path / "b.pts").write_text("hello")
    with pytest.raises(InputError, match="iBUG"):
        read_pts(tmp_path / "b.pts")
    (tmp_path / "c.pts").write_text(text.replace("n_points:  68", "n_points: 70"))
    with pytest.raises(InputError, match="70 points"):
        read_pts(tmp_path / "c.pts")


# ---------------------------------------------------------------- the dlib judge on real pictures
def test_no_face_images_are_not_detected_and_rate_is_zero():
    results = score_images([grey(64), noise(64), grey(128), noise(128, seed=1)])
    for r in results:
        assert isinstance(r, LandmarkResult) and not r.detected and r.note == "no face"
        assert r.points.shape == (68, 2) and np.isnan(r.points).all()
    summary = M.detection_summary(results)
    assert summary["value"] == 0.0 and summary["n"] == 4 and summary["ci_low"] == 0.0


@pytest.mark.parametrize("size", [64, 128, 512])
def test_real_face_is_detected_with_68_points_in_place(size):
    img = astronaut() if size == 512 else face_crop(size)
    (r,) = score_images([img])
    assert r.detected and r.points.shape == (68, 2) and np.isfinite(r.points).all()
    assert (r.points >= -0.1 * size).all() and (r.points <= 1.1 * size).all()
    # iBUG order: point 37 (outer corner of the image-left eye) left of point 46, nose tip (31) below the eyes
    assert r.points[36, 0] < r.points[45, 0] and r.points[30, 1] > r.points[36, 1]
    assert r.score > 0 and np.isfinite(r.box).all()


def test_dlib_needs_upsampling_at_64px():
    img = face_crop(64)
    assert not load_backend("dlib", upsample=0)(img).detected  # HOG's 80 px window misses a 64 px face
    assert load_backend("dlib")(img).detected  # auto: doubled until >= 256 px


def test_identical_faces_give_zero_nme():
    faces = [face_crop(64), face_crop(64, dx=8), face_crop(64, flip=True)]
    res = score_images(faces)
    out = M.nme_summary(res, res, seed=0)
    assert out["n"] == 3 and out["value"] == 0.0 and out["ci_high"] == 0.0


def test_workers_give_the_same_results_in_input_order():
    images = [face_crop(64), grey(), face_crop(96, dx=5), noise(), face_crop(64, flip=True), face_crop(80, dy=6)]
    one = score_images(images, workers=1)
    two = score_images(images, workers=2, chunksize=1)
    assert [r.detected for r in one] == [True, False, True, False, True, True]
    for a, b in zip(one, two):
        assert a.detected == b.detected
        np.testing.assert_array_equal(a.points, b.points)


def test_bad_images_and_names(tmp_path):
    with pytest.raises(InputError, match=r"uint8 RGB image"):
        score_images([np.zeros((64, 64), np.float32)])
    with pytest.raises(InputError, match="did you mean dlib"):
        load_backend("dlibb")
    (tmp_path / "broken.png").write_text("not an image")
    (r,) = score_images([tmp_path / "broken.png"])
    assert r.error and not r.detected and r.note.startswith("unreadable")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="found none"):
        list_images(empty)


def test_fan_without_weights_names_the_files(tmp_path, monkeypatch):
    from w2p_eval.errors import MissingWeightsError
    from w2p_eval.judges.landmarks_fan import fan_weight_files

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    names = fan_weight_files()
    assert names["fan"].startswith("2DFAN4") and names["s3fd"].startswith("s3fd")
    with pytest.raises(MissingWeightsError, match=names["fan"]) as err:
        load_backend("fan", device="cpu")
    assert str(tmp_path / "th" / "hub" / "checkpoints") in str(err.value)
    assert not (tmp_path / "th" / "hub" / "checkpoints" / names["fan"]).exists()  # nothing downloaded


def test_fan_loads_weights_from_torch_home(tmp_path, monkeypatch):
    """The loading path with randomly initialised weights of face-alignment's own classes."""
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    from w2p_eval.judges.landmarks_fan import fan_checkpoint_dir, fan_weight_files

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    folder = fan_checkpoint_dir()
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    names = fan_weight_files()
    torch.save(FAN(4).state_dict(), folder / names["fan"])
    torch.save(s3fd().state_dict(), folder / names["s3fd"])
    backend = load_backend("fan", device="cpu", min_side=128)
    assert backend.version.startswith("face-alignment ") and backend.settings()["flip_input"] is False
    r = backend(face_crop(128))
    assert isinstance(r, LandmarkResult) and r.points.shape == (68, 2)
    assert r.detected == bool(np.isfinite(r.points).all())
