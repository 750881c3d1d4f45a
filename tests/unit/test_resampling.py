"""w2p_eval.metrics.resampling equals scipy.stats to the bit: bootstrap draws and bounds, quantile, binomial test,
Wilson bounds (a scipy release that changes its arithmetic fails here)."""

import warnings

import numpy as np
import pytest
from scipy import stats

from w2p_eval.metrics import resampling


def _ratio(sums, wsum):
    def statistic(idx, axis=-1):
        with np.errstate(invalid="ignore", divide="ignore"):
            return sums[idx].sum(axis=axis) / wsum[idx].sum(axis=axis)
    return statistic


@pytest.mark.parametrize("method", ["percentile", "basic"])
@pytest.mark.parametrize("n_groups,batch,seed", [(2, None, 0), (7, 3, 1), (40, 512, 5), (150, None, 11)])
def test_bootstrap_equals_scipy(method, n_groups, batch, seed):
    gen = np.random.default_rng(seed + 100)
    sums, wsum = gen.normal(size=n_groups), gen.integers(1, 4, n_groups).astype(float)
    stat = _ratio(sums, wsum)
    ref = stats.bootstrap((np.arange(n_groups),), stat, n_resamples=1000, confidence_level=0.9, method=method,
                          vectorized=True, rng=np.random.default_rng(seed), batch=batch)
    dist, lo, hi = resampling.bootstrap(np.arange(n_groups), stat, n_resamples=1000, rng=np.random.default_rng(seed),
                                        batch=batch, confidence=0.9, method=method)
    assert np.array_equal(dist, ref.bootstrap_distribution)
    assert (float(lo), float(hi)) == (float(ref.confidence_interval.low), float(ref.confidence_interval.high))


def test_bootstrap_rows_equal_scipy():
    """k samples as rows of one call (bootstrap_ci_many's layout): the same draws for every row."""
    k, g = 4, 9
    gen = np.random.default_rng(3)
    sums, wsum = gen.normal(size=(k, g)), np.ones((k, g))

    def stat(idx, axis=-1):
        idx = np.moveaxis(idx, axis, -1)
        rows = np.arange(k).reshape((k,) + (1,) * (idx.ndim - 1))
        return sums[rows, idx].sum(axis=-1) / wsum[rows, idx].sum(axis=-1)

    data = np.tile(np.arange(g), (k, 1))
    ref = stats.bootstrap((data,), stat, n_resamples=500, method="percentile", vectorized=True, axis=-1,
                          rng=np.random.default_rng(2), batch=70)
    dist, lo, hi = resampling.bootstrap(data, stat, n_resamples=500, rng=np.random.default_rng(2), batch=70,
                                        confidence=0.95, method="percentile")
    assert np.array_equal(dist, ref.bootstrap_distribution)
    assert np.array_equal(lo, ref.confidence_interval.low) and np.array_equal(hi, ref.confidence_interval.high)


def test_quantile_equals_scipy():
    gen = np.random.default_rng(0)
    x = gen.normal(size=(5, 37))
    x[2, 4] = np.nan  # a NaN row gives NaN
    x[3, :10] = 0.25  # ties
    for p in (np.array([0.0, 0.025, 0.5, 0.975, 1.0]), gen.uniform(size=(5, 2)), np.array([-0.1, 1.2, np.nan])):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = stats.quantile(x, np.broadcast_to(p, (5,) + p.shape[-1:]) if p.ndim == 1 else p, axis=-1)
        assert np.array_equal(resampling.quantile(x, p), ref, equal_nan=True)


def test_binomial_test_and_wilson_equal_scipy():
    for n in list(range(1, 41)) + [97, 250, 1001]:
        for k in sorted({0, 1, n // 3, n // 2, n - 1, n} & set(range(n + 1))) if n > 40 else range(n + 1):
            ref = stats.binomtest(k, n, 0.5)
            assert resampling.binom_test_two_sided(k, n, 0.5) == ref.pvalue, (k, n)
            for conf in (0.95, 0.9):
                ci = ref.proportion_ci(confidence_level=conf, method="wilson")
                assert resampling.wilson_bounds(k, n, conf) == (float(ci.low), float(ci.high)), (k, n, conf)


def test_known_answers():
    """Beyond scipy: the binomial test of an even split is 1, of 0 vs 10 is 2 / 2^10; a one-group sample's
    bootstrap distribution is that group's value."""
    assert resampling.binom_test_two_sided(5, 10) == 1.0
    assert resampling.binom_test_two_sided(0, 10) == pytest.approx(2 / 1024, rel=1e-12)
    dist, lo, hi = resampling.bootstrap(np.zeros(3, np.int64), lambda i, axis=-1: i.sum(axis=axis) * 0 + 0.5,
                                        n_resamples=100, rng=np.random.default_rng(0), batch=None, confidence=0.95,
                                        method="percentile")
    assert (dist == 0.5).all() and lo == hi == 0.5
