"""Confidence intervals and paired tests for evaluation numbers (numpy/scipy only, seeded, array level).

Test items are not independent: the pairs of one face (``face_id``: the same face image paired with
several audio crops) move together, so intervals resample **groups** (a cluster bootstrap) rather
than items. Every function takes per-item values and one group key per item.

- :func:`bootstrap_ci`: cluster-bootstrap interval of a (weighted) mean: ``scipy.stats.bootstrap``'s draws over
  group indices (:mod:`w2p_eval.metrics.resampling`: scipy's arithmetic without importing scipy.stats) with a
  statistic that aggregates the resampled groups' sums.
- :func:`paired_diff_ci`: the same for the difference of two models' means on the same items.
- :func:`wilson_interval`: Wilson score interval of a plain binomial proportion (``scipy.stats.binomtest``).
- :func:`mcnemar_exact`: exact McNemar test for two models' paired 0/1 outcomes.
- :func:`cluster_bootstrap_stat`: percentile cluster-bootstrap intervals of statistics that are not means
  (verification EER / ROC-AUC), each resample given as item weights (draw counts).

Method (default ``"BCa"``): the bias-corrected and accelerated bootstrap is second-order accurate,
so it corrects the skew of accuracies near 0 or 1 and of distance means, where the percentile interval
is only first-order; the acceleration comes from a jackknife over *groups*, which keeps the clustering, computed
in O(G) by subtracting each group from the totals (scipy's own jackknife gathers G resamples of G - 1 groups:
O(G^2); at G = 12,000 6.4 s against 1.5 s, BENCHMARKS.md); the bounds are scipy's BCa bounds to 1e-10
(tests/unit/test_stats.py).
Its exact coverage for a binomial accuracy p = 0.7, n = 100 is 95-96 % (percentile: 95.9 %, basic:
94.0 %), see tests/unit/test_stats.py. Two fallbacks, both recorded in ``Interval.method``:
when every item has the same value (all hits, all misses) the bootstrap distribution is a point, so
0/1 values get a Wilson interval with n = the number of groups (the independent units) and other
values the point itself; when BCa is undefined (NaN; e.g. almost all groups equal) the percentile
interval of the same resamples is used.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from scipy.special import ndtr, ndtri

from w2p_eval.errors import InputError
from w2p_eval.metrics import resampling

METHODS = ("BCa", "percentile", "basic")


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval.

    ``value``: the estimate on all items; ``low``/``high``: interval bounds; ``confidence``: e.g. 0.95;
    ``method``: how the bounds were made (``"BCa"``, ``"percentile"``, ``"wilson"``, ...,
    ``"... (fallback: why)"``); ``n_items``/``n_groups``: what was resampled; ``n_resamples`` and
    ``seed``: the bootstrap's settings (0 / None for closed forms).
    """

    value: float
    low: float
    high: float
    confidence: float
    method: str
    n_items: int
    n_groups: int
    n_resamples: int
    seed: int | None

    def to_dict(self) -> dict:
        """Plain JSON-able dict (for a results row's ``extra``)."""
        return asdict(self)

    def format(self, scale: float = 100.0, digits: int = 1, unit: str = " %") -> str:
        """``"86.0 % [83.1, 88.7]"`` (``scale``/``unit`` for percentages; ``scale=1, unit=""`` for distances)."""
        f = f"{{:.{digits}f}}"
        return f"{f.format(self.value * scale)}{unit} [{f.format(self.low * scale)}, {f.format(self.high * scale)}]"


def _values(values, name: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise InputError(f"expected {name} as a non-empty 1-d array of per-item numbers, got shape {v.shape}")
    return v


def _finite(v: np.ndarray, name: str) -> None:
    """Values that count (weight > 0) must be finite (weight-0 items may be NaN: e.g. outside every gallery)."""
    if not np.isfinite(v).all():
        raise InputError(f"expected finite {name} for items of positive weight, got "
                         f"{int((~np.isfinite(v)).sum())} NaN/inf values of {v.size}")


def _groups(groups, n: int) -> tuple[np.ndarray, int]:
    """Group codes int64 [n] (0..n_groups-1) from any hashable keys; None -> one group per item."""
    if groups is None:
        return np.arange(n, dtype=np.int64), n
    g = np.asarray(groups)
    if g.shape != (n,):
        raise InputError(f"expected one group key per item ({n} items), got groups of shape {g.shape}")
    _, codes = np.unique(g.astype(str) if g.dtype == object else g, return_inverse=True)
    codes = codes.reshape(-1).astype(np.int64)
    return codes, int(codes.max()) + 1


def _weights(weights, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise InputError(f"expected {n} finite non-negative item weights with a positive sum, got shape {w.shape}")
    return w


def _check_conf(confidence: float, n_resamples: int, method: str) -> None:
    if not 0 < confidence < 1:
        raise InputError(f"expected a confidence level between 0 and 1 (e.g. 0.95), got {confidence}")
    if n_resamples < 100:
        raise InputError(f"expected at least 100 bootstrap resamples, got {n_resamples}")
    if method not in METHODS:
        raise InputError(f"expected a bootstrap method in {', '.join(METHODS)}, got {method!r}")


BATCH_CELLS = 2_000_000  # index cells per bootstrap / jackknife batch: ~16 MB of int64 indices per gather


def _batch(n_groups: int) -> int:
    """Resamples (and BCa jackknife rows) per batch so one batch holds about BATCH_CELLS group indices.

    Memory stays bounded whatever the number of groups (unbatched, BCa's jackknife builds a dense
    [G, G-1] index array: 3.2 GB at G = 20,000), and the draws are the same numbers in the same order, so
    the interval is identical to the unbatched one (tests/unit/test_stats.py)."""
    return max(1, BATCH_CELLS // max(int(n_groups), 1))


def ratio_statistic(sums: np.ndarray, wsum: np.ndarray):
    """The statistic of a resample of group indices ``idx``: sum(sums[idx]) / sum(wsum[idx]) (vectorised along
    ``axis``). ``sums`` [G, C], ``wsum`` [G]; column 0 minus column 1 when C = 2 (a paired difference)."""

    def statistic(idx, axis=-1):
        idx = np.moveaxis(np.asarray(idx, dtype=np.int64), axis, -1)  # [..., n_groups drawn]
        w = wsum[idx].sum(axis=-1)
        s = sums[idx].sum(axis=-2)  # [..., C]
        num = s[..., 0] - s[..., 1] if sums.shape[1] == 2 else s[..., 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            return num / w

    return statistic


def _leave_one_out(sums: np.ndarray, wsum: np.ndarray) -> np.ndarray:
    """The jackknife values of the ratio statistic, each group left out in turn, by subtraction from the totals:
    O(G) instead of scipy's O(G^2) gathers. ``sums`` [..., G, C] and ``wsum`` [..., G] -> float64 [..., G]."""
    num = sums[..., 0] - sums[..., 1] if sums.shape[-1] == 2 else sums[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (num.sum(axis=-1, keepdims=True) - num) / (wsum.sum(axis=-1, keepdims=True) - wsum)


def _bca_bounds(dist: np.ndarray, theta_hat: np.ndarray, jack: np.ndarray, confidence: float):
    """BCa bounds from a bootstrap distribution ``dist`` [..., B], the estimate ``theta_hat`` [...] and the
    leave-one-group-out values ``jack`` [..., G]: scipy.stats.bootstrap's BCa arithmetic (Efron & Tibshirani
    14.3, 15.4) on the jackknife computed in O(G), so the bounds equal scipy's (tests/unit/test_stats.py)."""
    theta_hat = np.asarray(theta_hat, dtype=np.float64)[..., None]
    b = dist.shape[-1]
    z0 = ndtri(((dist < theta_hat).sum(axis=-1) + (dist <= theta_hat).sum(axis=-1)) / (2 * b))
    n = float(jack.shape[-1])
    u = (n - 1) * (jack.mean(axis=-1, keepdims=True) - jack)
    a_hat = 1 / 6 * ((u ** 3).sum(axis=-1) / n ** 3) / ((u ** 2).sum(axis=-1) / n ** 2) ** 1.5
    z_alpha = float(ndtri((1 - confidence) / 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha_1 = ndtr(z0 + (z0 + z_alpha) / (1 - a_hat * (z0 + z_alpha)))
        alpha_2 = ndtr(z0 + (z0 - z_alpha) / (1 - a_hat * (z0 - z_alpha)))
    ci = resampling.quantile(dist, np.stack([alpha_1, alpha_2], axis=-1))
    return ci[..., 0], ci[..., 1]


def _cluster_bootstrap(sums: np.ndarray, wsum: np.ndarray, value: float, *, confidence: float, n_resamples: int,
                       seed: int, method: str) -> tuple[float, float, str]:
    """Bounds of sum(sums[idx]) / sum(wsum[idx]) under resampling of group indices ``idx``.

    ``sums`` [G, C] and ``wsum`` [G]: per-group weighted sums of the C value columns and total
    weights; the statistic is column 0 minus column 1 when C = 2 (a paired difference), else column 0.
    scipy.stats.bootstrap's draws (:func:`w2p_eval.metrics.resampling.bootstrap`; percentile method: the same
    draws BCa makes); BCa's acceleration comes from the
    O(G) jackknife (:func:`_bca_bounds`), not scipy's O(G^2) one.
    """
    n_groups = len(wsum)
    statistic = ratio_statistic(sums, wsum)
    if n_groups < 2:
        return value, value, f"{method} (fallback: one group, no interval)"
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate-data / NaN warnings are handled below
        dist, lo, hi = resampling.bootstrap(np.arange(n_groups), statistic, n_resamples=n_resamples, rng=rng,
                                            batch=_batch(n_groups), confidence=confidence,
                                            method="percentile" if method == "BCa" else method)
        lo, hi = float(lo), float(hi)
        if method == "BCa":
            lo, hi = (float(x) for x in _bca_bounds(dist, statistic(np.arange(n_groups)), _leave_one_out(sums, wsum),
                                                    confidence))
    if math.isfinite(lo) and math.isfinite(hi):
        return lo, hi, method
    alpha = (1 - confidence) / 2
    lo, hi = (float(x) for x in np.quantile(dist[np.isfinite(dist)], [alpha, 1 - alpha]))
    return lo, hi, f"percentile (fallback: {method} undefined)"


def bootstrap_ci(values: Sequence[float] | np.ndarray, groups: Sequence | np.ndarray | None = None, *,
                 weights: Sequence[float] | np.ndarray | None = None, seed: int = 0, n_resamples: int = 2000,
                 confidence: float = 0.95, method: str = "BCa") -> Interval:
    """Cluster-bootstrap interval of the (weighted) mean of per-item values.

    values: float [N] (0/1 hits for accuracies, distances, ...); groups: [N] any hashable keys
    (e.g. face_id) — items of one group are resampled together; ``None`` = every item its own group.
    weights: float [N] >= 0 (default 1): the statistic is sum(w*v)/sum(w) over the resampled groups
    (items with weight 0 do not count and may be NaN). ``method``: "BCa" (default), "percentile" or "basic";
    ``seed`` feeds a local ``np.random.default_rng``. Returns an :class:`Interval`.
    """
    v = _values(values, "values")
    codes, n_groups = _groups(groups, len(v))
    w = _weights(weights, len(v))
    _check_conf(confidence, n_resamples, method)
    keep = w > 0
    v, codes, w = v[keep], codes[keep], w[keep]
    _finite(v, "values")
    _, codes = np.unique(codes, return_inverse=True)
    n_groups = int(codes.max()) + 1
    value = float((w * v).sum() / w.sum())
    if np.all(v == v[0]):
        if np.isin(v[0], (0.0, 1.0)):
            k = n_groups if v[0] == 1 else 0
            lo, hi = wilson_interval(k, n_groups, confidence)
            return Interval(value, lo, hi, confidence, "wilson (fallback: every item equal; n = groups)", len(v),
                            n_groups, 0, None)
        return Interval(value, value, value, confidence, "point (fallback: every item equal)", len(v), n_groups, 0,
                        None)
    sums = np.zeros((n_groups, 1))
    np.add.at(sums[:, 0], codes, w * v)
    wsum = np.bincount(codes, weights=w, minlength=n_groups)
    lo, hi, used = _cluster_bootstrap(sums, wsum, value, confidence=confidence, n_resamples=n_resamples, seed=seed,
                                      method=method)
    return Interval(value, lo, hi, confidence, used, len(v), n_groups, int(n_resamples), int(seed))


def bootstrap_ci_many(samples: Sequence[tuple[np.ndarray, Sequence | None]], *, seed: int = 0, n_resamples: int = 2000,
                      confidence: float = 0.95, method: str = "BCa") -> list[Interval]:
    """:func:`bootstrap_ci` (unit weights) of many samples at once -> one Interval each, identical to calling it
    on each sample (tests/unit/test_stats.py).

    ``samples``: (values float [N_i], groups [N_i] or None). Every call of :func:`bootstrap_ci` with one seed
    draws the same resample indices for the same number of groups, so the samples are bucketed by their number
    of groups and each bucket is ONE vectorised bootstrap over [k, G] (k samples): the per-call overhead (BCa,
    jackknife, validation; ~30 ms) is paid once per distinct G instead of once per sample (e.g. per identity).
    """
    _check_conf(confidence, n_resamples, method)
    out: list[Interval | None] = [None] * len(samples)
    buckets: dict[int, list[tuple[int, np.ndarray, np.ndarray, float, int]]] = {}
    for pos, (values, groups) in enumerate(samples):
        v = _values(values, "values")
        codes, _ = _groups(groups, len(v))
        _finite(v, "values")
        _, codes = np.unique(codes, return_inverse=True)
        n_groups = int(codes.max()) + 1
        value = float(v.sum() / len(v))
        if np.all(v == v[0]) or n_groups < 2:  # the fallbacks: exactly bootstrap_ci's
            out[pos] = bootstrap_ci(v, groups, seed=seed, n_resamples=n_resamples, confidence=confidence, method=method)
            continue
        sums = np.zeros(n_groups)
        np.add.at(sums, codes, v)
        wsum = np.bincount(codes, weights=np.ones(len(v)), minlength=n_groups)
        buckets.setdefault(n_groups, []).append((pos, sums, wsum, value, len(v)))
    for n_groups, members in buckets.items():
        sums = np.stack([m[1] for m in members])  # [k, G]
        wsum = np.stack([m[2] for m in members])
        bounds = _cluster_bootstrap_rows(sums, wsum, confidence=confidence, n_resamples=n_resamples, seed=seed,
                                         method=method)
        for (pos, _, _, value, n_items), (lo, hi, used) in zip(members, bounds):
            out[pos] = Interval(value, lo, hi, confidence, used, n_items, n_groups, int(n_resamples), int(seed))
    return out


def _cluster_bootstrap_rows(sums: np.ndarray, wsum: np.ndarray, *, confidence: float, n_resamples: int, seed: int,
                            method: str) -> list[tuple[float, float, str]]:
    """:func:`_cluster_bootstrap` of k samples with G groups each (``sums``, ``wsum`` [k, G]), in one call."""
    k, n_groups = sums.shape
    rows_of = {}

    def statistic(idx, axis=-1):
        idx = np.moveaxis(np.asarray(idx, dtype=np.int64), axis, -1)  # [k, ..., n_groups drawn]
        if idx.ndim not in rows_of:
            rows_of[idx.ndim] = np.arange(k).reshape((k,) + (1,) * (idx.ndim - 1))
        rows = rows_of[idx.ndim]
        with np.errstate(invalid="ignore", divide="ignore"):
            return sums[rows, idx].sum(axis=-1) / wsum[rows, idx].sum(axis=-1)

    data = np.tile(np.arange(n_groups), (k, 1))
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dist, low, high = resampling.bootstrap(data, statistic, n_resamples=n_resamples, rng=rng,
                                               batch=_batch(n_groups * k), confidence=confidence,
                                               method="percentile" if method == "BCa" else method)
        if method == "BCa":  # the O(G) jackknife, as in _cluster_bootstrap
            low, high = _bca_bounds(dist, statistic(data), _leave_one_out(sums[..., None], wsum), confidence)
    alpha = (1 - confidence) / 2
    out = []
    for r in range(k):
        lo, hi = float(low[r]), float(high[r])
        if math.isfinite(lo) and math.isfinite(hi):
            out.append((lo, hi, method))
            continue
        row = dist[r]
        lo, hi = (float(x) for x in np.quantile(row[np.isfinite(row)], [alpha, 1 - alpha]))
        out.append((lo, hi, f"percentile (fallback: {method} undefined)"))
    return out


def paired_diff_ci(values_a: Sequence[float] | np.ndarray, values_b: Sequence[float] | np.ndarray,
                   groups: Sequence | np.ndarray | None = None, *, weights: Sequence[float] | np.ndarray | None = None,
                   seed: int = 0, n_resamples: int = 2000, confidence: float = 0.95,
                   method: str = "BCa") -> Interval:
    """Interval of mean(a) - mean(b) for two models scored on the SAME items (row-aligned float [N] each).

    Both means are taken on the same resampled groups in every replicate (a paired cluster bootstrap),
    so the shared difficulty of the items cancels. ``groups``/``weights``/``seed``/``method`` as in
    :func:`bootstrap_ci`. ``value`` = mean(a) - mean(b); an interval excluding 0 means a difference.
    """
    a, b = _values(values_a, "values_a"), _values(values_b, "values_b")
    if a.shape != b.shape:
        raise InputError(f"expected two models' values on the same items, got {a.size} and {b.size} items")
    codes, _ = _groups(groups, len(a))
    w = _weights(weights, len(a))
    _check_conf(confidence, n_resamples, method)
    keep = w > 0
    a, b, codes, w = a[keep], b[keep], codes[keep], w[keep]
    _finite(a, "values_a")
    _finite(b, "values_b")
    _, codes = np.unique(codes, return_inverse=True)
    n_groups = int(codes.max()) + 1
    value = float((w * (a - b)).sum() / w.sum())
    if np.all(a - b == (a - b)[0]):
        return Interval(value, value, value, confidence, "point (fallback: every item's difference equal)", len(a),
                        n_groups, 0, None)
    sums = np.zeros((n_groups, 2))
    np.add.at(sums[:, 0], codes, w * a)
    np.add.at(sums[:, 1], codes, w * b)
    wsum = np.bincount(codes, weights=w, minlength=n_groups)
    lo, hi, used = _cluster_bootstrap(sums, wsum, value, confidence=confidence, n_resamples=n_resamples, seed=seed,
                                      method=method)
    return Interval(value, lo, hi, confidence, used, len(a), n_groups, int(n_resamples), int(seed))


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion successes/n (``scipy.stats.binomtest(...).proportion_ci``).

    For independent 0/1 outcomes only (no grouping); (nan, nan) when n = 0.
    """
    if n <= 0:
        return float("nan"), float("nan")
    if not 0 <= successes <= n:
        raise InputError(f"expected 0 <= successes <= n, got {successes} of {n}")
    return resampling.wilson_bounds(int(successes), int(n), confidence)


def _binary(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 1 or x.size == 0:
        raise InputError(f"expected {name} as a non-empty 1-d array of 0/1 outcomes, got shape {x.shape}")
    xf = x.astype(np.float64)
    if not np.isin(xf, (0.0, 1.0)).all():
        raise InputError(f"expected {name} as 0/1 (or bool) outcomes, got values such as "
                         f"{xf[~np.isin(xf, (0.0, 1.0))][:3].tolist()} (score ties as misses, e.g. correct == 1)")
    return xf.astype(bool)


def mcnemar_exact(correct_a: Sequence | np.ndarray, correct_b: Sequence | np.ndarray) -> dict:
    """Exact McNemar test: do models A and B differ in accuracy on the same items?

    correct_a, correct_b: bool/0-1 [N], row-aligned. b = items A gets right and B wrong,
    c = items A gets wrong and B right; under H0 (equal accuracy) b ~ Binomial(b + c, 1/2), so the
    two-sided p-value is ``scipy.stats.binomtest(b, b + c, 0.5).pvalue`` (1.0 when b + c = 0).
    Items are treated as independent: with grouped items (pairs sharing a face) read it together
    with :func:`paired_diff_ci`, which respects the grouping.

    Returns {"b", "c", "n", "n_discordant", "accuracy_a", "accuracy_b", "difference" (acc_a - acc_b),
    "p_value", "test": "exact McNemar (two-sided binomial on discordant pairs)"}.
    """
    a, b_ = _binary(correct_a, "correct_a"), _binary(correct_b, "correct_b")
    if a.shape != b_.shape:
        raise InputError(f"expected two models' outcomes on the same items, got {a.size} and {b_.size} items")
    b = int((a & ~b_).sum())
    c = int((~a & b_).sum())
    p = 1.0 if b + c == 0 else resampling.binom_test_two_sided(b, b + c, 0.5)
    return {"b": b, "c": c, "n": int(a.size), "n_discordant": b + c, "accuracy_a": float(a.mean()),
            "accuracy_b": float(b_.mean()), "difference": float(a.mean() - b_.mean()), "p_value": p,
            "test": "exact McNemar (two-sided binomial on discordant pairs)"}


def cluster_bootstrap_stat(statistic, groups: Sequence | np.ndarray, *, seed: int = 0, n_resamples: int = 2000,
                           confidence: float = 0.95) -> list[Interval]:
    """Percentile cluster-bootstrap intervals of statistics that are not means of items (EER, AUC).

    ``statistic(weights float [B, N]) -> float [B, K]``: K statistics of the N items under each row of item
    weights (row b: how many times resample b drew each item's group; all ones = the data itself; NaN = undefined
    for that resample). ``groups`` [N]: one key per item (e.g. the probe's identity); a resample draws groups with
    replacement. Resamples are evaluated in batches of about :data:`BATCH_CELLS` weights. Returns one
    :class:`Interval` per statistic; undefined resamples are left out and the method says how many.
    """
    n = len(np.asarray(groups))
    codes, n_groups = _groups(groups, n)
    _check_conf(confidence, n_resamples, "percentile")
    values = np.asarray(statistic(np.ones((1, n))), np.float64)[0]
    if n_groups < 2:
        return [Interval(float(v), float(v), float(v), confidence, "percentile (fallback: one group, no interval)",
                         n, n_groups, 0, None) for v in values]
    rng = np.random.default_rng(seed)
    dist, step = [], max(1, BATCH_CELLS // max(n, n_groups))
    for start in range(0, int(n_resamples), step):
        b = min(step, int(n_resamples) - start)
        draws = rng.integers(0, n_groups, (b, n_groups)) + n_groups * np.arange(b)[:, None]
        counts = np.bincount(draws.ravel(), minlength=b * n_groups).reshape(b, n_groups).astype(np.float64)
        dist.append(np.asarray(statistic(counts[:, codes]), np.float64))
    dist = np.concatenate(dist)
    ok = np.isfinite(dist).all(axis=1)
    method = "percentile (cluster bootstrap)" + ("" if ok.all() else f" ({int((~ok).sum())} undefined resamples "
                                                                         f"left out)")
    if not ok.any():
        return [Interval(float(v), float(v), float(v), confidence, "point (fallback: no defined resample)", n,
                         n_groups, 0, None) for v in values]
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(dist[ok], [alpha, 1 - alpha], axis=0)
    return [Interval(float(v), float(a), float(b), confidence, method, n, n_groups, int(n_resamples), int(seed))
            for v, a, b in zip(values, lo, hi)]
