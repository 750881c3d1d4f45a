"""Face geometry ratios (w2p_eval.metrics.geometry) on hand-made landmark sets with known answers: the ratios do
not move with position or scale, identical faces score 0, a speaker's own faces score their spread, and one
constant face for every speaker scores worse. The suite on real faces: tests/integration/test_geometry_real.py."""

from __future__ import annotations

import numpy as np
import pytest

from w2p_eval.metrics import geometry as G
from w2p_eval.metrics.registry import get_suite, metric_spec

RNG = np.random.default_rng(0)
# a frontal 68-point layout (x, y), roughly iBUG's mean shape in a 100 px box
BASE = np.concatenate([
    np.stack([np.linspace(5, 95, 17), 40 + 45 * np.sin(np.linspace(0, np.pi, 17))], 1),  # jaw
    np.stack([np.linspace(15, 45, 5), np.full(5, 28)], 1), np.stack([np.linspace(55, 85, 5), np.full(5, 28)], 1),
    np.stack([np.full(4, 50), np.linspace(35, 58, 4)], 1), np.stack([np.linspace(40, 60, 5), np.full(5, 62)], 1),
    np.stack([[20, 27, 33, 40, 33, 27], [40, 37, 37, 40, 43, 43]], 1),
    np.stack([[60, 67, 73, 80, 73, 67], [40, 37, 37, 40, 43, 43]], 1),
    np.stack([np.linspace(33, 67, 7), [75, 72, 71, 72, 71, 72, 75]], 1),
    np.stack([np.linspace(63, 37, 5), [78, 81, 82, 81, 78]], 1),
    np.stack([np.linspace(38, 62, 5), np.full(5, 75)], 1), np.stack([np.linspace(60, 40, 3), np.full(3, 76)], 1),
]).astype(np.float64)


def speaker_face(k: int) -> np.ndarray:
    """Speaker k's face shape: the base layout stretched differently per speaker (wider, longer)."""
    face = BASE.copy()
    face[:, 0] = 50 + (face[:, 0] - 50) * (1 + 0.12 * k)
    face[:, 1] = 40 + (face[:, 1] - 40) * (1 + 0.10 * ((k * 7) % 3))
    return face


def test_ratios_ignore_position_and_scale_and_missing_faces_are_nan():
    assert BASE.shape == (68, 2)
    r = G.face_ratios(np.stack([BASE, BASE * 3.0 + 17, np.full((68, 2), np.nan)]))
    assert r.shape == (3, len(G.RATIOS)) and np.allclose(r[0], r[1]) and np.isnan(r[2]).all()
    assert r[0, list(G.RATIOS).index("inner_eye_distance")] == pytest.approx(20 / 60)


def test_identical_faces_score_zero_own_faces_their_spread_a_constant_face_worse():
    labels = np.repeat(np.arange(4), 6)
    same = np.stack([speaker_face(k) for k in labels])
    r_same = G.face_ratios(same)
    assert np.nanmax(G.leave_one_out_errors(r_same, labels)) <= 1e-12  # 0 up to float rounding
    assert np.nanmax(G.ratio_errors(r_same, labels, G.identity_means(r_same, labels))) <= 1e-12
    real = same + RNG.normal(0, 0.3, same.shape)  # the same speakers, a little pose/expression noise
    r_real = G.face_ratios(real)
    means = G.identity_means(r_real, labels)
    spread = np.nanmean(G.leave_one_out_errors(r_real, labels))
    own = np.nanmean(G.ratio_errors(G.face_ratios(same), labels, means))  # each speaker's own shape
    constant = np.nanmean(G.ratio_errors(G.face_ratios(np.stack([real.mean(0)] * len(labels))), labels, means))
    assert 0 < own < spread < constant
    assert constant > 1.5 * spread


def test_identity_with_one_real_face_has_no_spread_and_undetected_faces_are_left_out():
    labels = np.array([0, 0, 1])
    pts = np.stack([speaker_face(0), speaker_face(0) + 1, speaker_face(1)])
    loo = G.leave_one_out_errors(G.face_ratios(pts), labels)
    assert np.isfinite(loo[:2]).all() and np.isnan(loo[2])
    fake = np.stack([speaker_face(0), np.full((68, 2), np.nan), speaker_face(2)])
    err = G.ratio_errors(G.face_ratios(fake), np.array([0, 0, 5]), G.identity_means(G.face_ratios(pts), labels))
    assert np.isfinite(err[0]) and np.isnan(err[1]) and np.isnan(err[2])  # no face; no real face of speaker 5


def test_the_suite_is_registered_once_per_landmark_judge(tiny_data):
    from w2p_eval.metrics.base import EvalOptions, suite_tasks

    suite = get_suite("geometry")
    assert metric_spec(G.RATIO_ERROR).higher_is_better is False
    tasks = suite_tasks([suite], EvalOptions(tiny_data, backend="dlib,facemesh"))
    assert [suite.evaluator(o) for _, o in tasks] == ["geometry/dlib", "geometry/facemesh"]
