"""The three pieces of ``scipy.stats`` the intervals use, in numpy + ``scipy.special`` only: bootstrap draws with
percentile/basic bounds, the linear ``quantile`` and the two-sided binomial test with Wilson bounds.

Why: importing ``scipy.stats`` costs about a second (1.1 s of the 5 s `compare --store` took on the 2-core VM,
BENCHMARKS.md), more than the paired intervals it computes. Each function follows scipy 1.17's own arithmetic
step by step (``scipy/stats/_resampling.py``: ``bootstrap``; ``_quantile.py``: ``_quantile_hf``;
``_binomtest.py``: ``binomtest``, ``_binom_wilson_conf_int``), so the numbers are scipy's to the bit:
tests/unit/test_resampling.py compares every function with scipy.stats on many inputs, so a scipy release that
changes its arithmetic fails there, not silently in users' intervals.
"""

from __future__ import annotations

from math import sqrt
from typing import Callable

import numpy as np
from scipy.special import _ufuncs as _binom_ufuncs  # boost's binomial pmf/cdf/sf, what scipy.stats.binom calls
from scipy.special import ndtri


def quantile(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``scipy.stats.quantile(x, p, axis=-1)`` (method "linear", NaN propagated): x float [..., N], p float
    [..., P] (broadcast against x's leading axes) -> float [..., P]. A row holding a NaN gives NaN; p outside
    [0, 1] gives NaN."""
    y = np.sort(np.asarray(x, np.float64), axis=-1)
    p = np.asarray(p, np.float64)
    lead = np.broadcast_shapes(y.shape[:-1], p.shape[:-1])
    y = np.broadcast_to(y, lead + y.shape[-1:])
    p = np.broadcast_to(p, lead + p.shape[-1:])
    n = np.float64(y.shape[-1])
    nan_rows = np.isnan(y).any(axis=-1)
    if nan_rows.any():
        y = y.copy()
        y[nan_rows] = np.nan
    p_mask = (p > 1) | (p < 0) | np.isnan(p)
    if p_mask.any():
        p = np.where(p_mask, 0.5, p)
    jg = p * n + (1 - p)
    jp1 = jg // 1
    j = jp1 - 1
    g = jg % 1
    g = np.where(j < 0, 0.0, g)
    j = np.clip(j, 0.0, n - 1)
    jp1 = np.clip(jp1, 0.0, n - 1)
    res = ((1 - g) * np.take_along_axis(y, j.astype(np.int64), axis=-1)
           + g * np.take_along_axis(y, jp1.astype(np.int64), axis=-1))
    return np.where(p_mask, np.nan, res)


def bootstrap(data: np.ndarray, statistic: Callable, *, n_resamples: int, rng: np.random.Generator, batch: int | None,
              confidence: float, method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``scipy.stats.bootstrap((data,), statistic, vectorized=True, axis=-1, rng=rng, batch=batch,
    method=method)`` for method "percentile" or "basic": the same draws (``rng.integers(0, N, (b, N))`` per batch
    of b resamples), the same statistic calls and bounds.

    data [..., N] (resampled along the last axis); ``statistic(resamples [..., b, N], axis=-1) -> [..., b]``.
    Returns (bootstrap distribution [..., n_resamples], low [...], high [...]).
    """
    data = np.asarray(data)
    n = data.shape[-1]
    step = batch or n_resamples or 1
    dist = []
    for k in range(0, n_resamples, step):
        i = rng.integers(0, n, size=(min(step, n_resamples - k), n), dtype="int64")
        dist.append(statistic(data[..., i], axis=-1))
    dist = np.concatenate(dist, axis=-1)
    alpha = np.asarray((1 - confidence) / 2, dtype=dist.dtype)
    ci = quantile(dist, np.stack((alpha, 1 - alpha), axis=-1))
    low, high = ci[..., 0], ci[..., 1]
    if method == "basic":
        theta_hat = statistic(data, axis=-1)
        low, high = 2 * theta_hat - high, 2 * theta_hat - low
    return dist, low, high


def _pmf(k, n: int, p: float) -> float:
    return float(_binom_ufuncs._binom_pmf(k, n, p)) if 0 <= k <= n else 0.0


def _cdf(k, n: int, p: float) -> float:
    k = np.floor(k)
    return 0.0 if k < 0 else 1.0 if k >= n else float(_binom_ufuncs._binom_cdf(k, n, p))


def _sf(k, n: int, p: float) -> float:
    k = np.floor(k)
    return 1.0 if k < 0 else 0.0 if k >= n else float(_binom_ufuncs._binom_sf(k, n, p))


def _search(a: Callable, d: float, lo, hi):
    """scipy's ``_binary_search_for_binom_tst``: i in [lo, hi] with a(i) <= d < a(i + 1)."""
    while lo < hi:
        mid = lo + (hi - lo) // 2
        midval = a(mid)
        if midval < d:
            lo = mid + 1
        elif midval > d:
            hi = mid - 1
        else:
            return mid
    return lo if a(lo) <= d else lo - 1


def binom_test_two_sided(k: int, n: int, p: float = 0.5) -> float:
    """``scipy.stats.binomtest(k, n, p, alternative="two-sided").pvalue`` (0 <= k <= n, n >= 1)."""
    d = _pmf(k, n, p)
    rerr = 1 + 1e-7
    if k == p * n:
        return 1.0
    if k < p * n:
        ix = _search(lambda x1: -_pmf(x1, n, p), -d * rerr, np.ceil(p * n), n)
        y = n - ix + int(d * rerr == _pmf(ix, n, p))
        pval = _cdf(k, n, p) + _sf(n - y, n, p)
    else:
        ix = _search(lambda x1: _pmf(x1, n, p), d * rerr, 0, np.floor(p * n))
        y = ix + 1
        pval = _cdf(y - 1, n, p) + _sf(k - 1, n, p)
    return min(1.0, float(pval))


def wilson_bounds(k: int, n: int, confidence: float) -> tuple[float, float]:
    """``scipy.stats.binomtest(k, n).proportion_ci(confidence, method="wilson")`` (two-sided, no correction)."""
    p = k / n
    z = ndtri(0.5 + 0.5 * confidence)
    denom = 2 * (n + z ** 2)
    center = (2 * n * p + z ** 2) / denom
    delta = z / denom * sqrt(4 * n * p * (1 - p) + z ** 2)
    return (0.0 if k == 0 else float(center - delta)), (1.0 if k == n else float(center + delta))
