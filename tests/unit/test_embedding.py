"""Known-answer tests of the face-embedding metrics (FD, KID, centroid cosines, retrieval)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from w2p_eval.errors import InputError
from w2p_eval.metrics import embedding as E


def _gauss(n, d, seed, scale=1.0):
    return np.random.default_rng(seed).normal(0, scale, (n, d))


def test_frechet_identical_sets_is_zero():
    x = _gauss(50, 8, 0)
    assert E.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    big = _gauss(400, 8, 1)  # N > D path
    assert E.frechet_distance(big, big) == pytest.approx(0.0, abs=1e-8)


@pytest.mark.parametrize("n", [30, 400])
def test_frechet_shifted_set_is_squared_shift(n):
    x = _gauss(n, 16, 2)
    shift = np.linspace(-1, 1, 16)
    assert E.frechet_distance(x, x + shift) == pytest.approx(float((shift**2).sum()), rel=1e-9)


def test_frechet_matches_scipy_sqrtm_formula_both_paths():
    x, y = _gauss(60, 10, 3), _gauss(45, 10, 4, scale=2.0) + 0.5
    mu1, s1 = x.mean(0), np.cov(x, rowvar=False)
    mu2, s2 = y.mean(0), np.cov(y, rowvar=False)
    ref = float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2) - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2)).real)
    assert E.frechet_distance(x, y) == pytest.approx(ref, rel=1e-6)  # N > D: D x D path
    x5, y5 = x[:6], y[:7]
    mu1, s1, mu2, s2 = x5.mean(0), np.cov(x5, rowvar=False), y5.mean(0), np.cov(y5, rowvar=False)
    ref5 = float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2)
                 - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2)).real)
    assert E.frechet_distance(x5, y5) == pytest.approx(ref5, rel=1e-5, abs=1e-6)  # N < D: low-rank path


def test_frechet_from_stats_diagonal_gaussians_analytic():
    s1, s2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 4.0, 1.0])
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    # |mu|^2 + sum (sqrt(a) - sqrt(b))^2 = 5 + (1-2)^2 + 0 + (3-1)^2 = 10
    assert E.frechet_distance_from_stats(mu1, s1, mu2, s2) == pytest.approx(10.0, rel=1e-12)


def test_kid_identical_sets_near_zero_and_shift_positive():
    x = _gauss(200, 16, 5)
    kid, std = E.kernel_distance(x, x, subsets=20, subset_size=100, seed=0)
    shifted, _ = E.kernel_distance(x, x + 1.0, subsets=20, subset_size=100, seed=0)
    assert abs(kid) < 0.02 * shifted
    assert shifted > 0.1
    assert std >= 0


def test_kid_point_masses_analytic():
    """All points at a vs all at b: unbiased MMD² = k(a,a) + k(b,b) - 2 k(a,b) exactly."""
    a, b = np.array([1.0, 0.0, 2.0, 1.0]), np.array([0.0, 1.0, 1.0, -1.0])
    k = lambda u, v: (u @ v / 4 + 1) ** 3  # noqa: E731
    want = k(a, a) + k(b, b) - 2 * k(a, b)
    kid, std = E.kernel_distance(np.tile(a, (10, 1)), np.tile(b, (10, 1)))
    assert kid == pytest.approx(want, rel=1e-12) and std == 0.0


def test_kid_subsets_are_seeded():
    x, y = _gauss(120, 8, 6), _gauss(150, 8, 7) + 0.3
    assert E.kernel_distance(x, y, subsets=5, subset_size=50, seed=3) == \
        E.kernel_distance(x, y, subsets=5, subset_size=50, seed=3)


def test_centroid_cosines_and_retrieval_known_answer():
    # identity 0 points along e0, identity 1 along e1, identity 2 along e2
    real = np.array([[2, 0, 0], [1, 0, 0], [0, 3, 0], [0, 1, 0], [0, 0, 1]], float)
    real_labels = np.array([0, 0, 1, 1, 2])
    ids, cents = E.identity_centroids(real, real_labels)
    assert ids.tolist() == [0, 1, 2]
    np.testing.assert_allclose(cents, np.eye(3), atol=1e-12)
    fake = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 5]], float)  # right, half-right, wrong
    labels = np.array([0, 1, 1])
    cos = E.centroid_cosines(fake, labels, ids, cents)
    np.testing.assert_allclose(cos["own"], [1.0, np.sqrt(0.5), 0.0], atol=1e-12)
    np.testing.assert_allclose(cos["other"], [0.0, np.sqrt(0.5) / 2, 0.5], atol=1e-12)
    rec = E.retrieval_recall(cos["sims"], labels, ids, ks=(1, 2, 5))
    # row 1 ties (identities 0 and 1 score alike) -> not a hit at k=1 (ties count against it)
    assert rec[1] == pytest.approx(1 / 3)
    assert rec[2] == pytest.approx(2 / 3)
    assert rec[5] == pytest.approx(1.0)


def test_bad_inputs_are_input_errors():
    with pytest.raises(InputError, match="same size"):
        E.frechet_distance(np.zeros((3, 2)), np.zeros((3, 4)))
    with pytest.raises(InputError, match="at least 2"):
        E.frechet_distance(np.zeros((1, 2)), np.zeros((3, 2)))
    with pytest.raises(InputError, match="finite"):
        E.kernel_distance(np.full((3, 2), np.nan), np.zeros((3, 2)))
