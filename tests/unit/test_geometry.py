"""Face geometry ratios (w2p_eval.metrics.geometry) on hand-made landmark sets with known answers: the ratios do
not move with position or scale, the real faces as "generated" score 0, the split-half spread of the real faces is
above 0, and one constant face for every speaker scores worse. The suite on real faces:
tests/integration/test_geometry_real.py."""

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


def test_identical_faces_score_zero_the_real_halves_their_spread_a_constant_face_worse():
    labels = np.repeat(np.arange(4), 8)
    same = np.stack([speaker_face(k) for k in labels])
    real = same + RNG.normal(0, 0.6, same.shape)  # the same speakers, pose/expression noise
    r_real = G.face_ratios(real)
    assert max(G.speaker_errors(r_real, r_real, labels).values()) == 0.0  # the real faces as "generated"
    spread = np.mean(list(G.split_half_errors(r_real, labels).values()))
    own = np.mean(list(G.speaker_errors(G.face_ratios(same), r_real, labels).values()))  # each speaker's shape
    constant = np.mean(list(G.speaker_errors(G.face_ratios(np.stack([real[0]] * len(labels))), r_real,
                                             labels).values()))
    assert 0 < spread < constant and 0 < own < constant and constant > 3 * spread


def test_speakers_without_faces_are_left_out():
    labels = np.array([0, 0, 1, 2])
    pts = np.stack([speaker_face(0), speaker_face(0) + 1, speaker_face(1), np.full((68, 2), np.nan)])
    r = G.face_ratios(pts)
    assert sorted(G.split_half_errors(r, labels)) == [0]  # speaker 1 has one face, speaker 2 none detected
    fake = G.face_ratios(np.stack([speaker_face(0), speaker_face(0), np.full((68, 2), np.nan), speaker_face(2)]))
    assert sorted(G.speaker_errors(fake, r, labels)) == [0]  # 1: no generated face found; 2: no real face


def test_the_suite_is_registered_once_per_landmark_judge(tiny_data):
    from w2p_eval.evaluation import Evaluation

    suite = get_suite("geometry")
    assert metric_spec(G.RATIO_ERROR).higher_is_better is False
    tasks = Evaluation.build(tiny_data, suites=("geometry",), backend="dlib,facemesh").tasks()
    assert [suite.evaluator(o) for _, o in tasks] == ["geometry/dlib", "geometry/facemesh"]
