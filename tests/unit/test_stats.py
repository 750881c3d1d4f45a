"""Confidence intervals and paired tests (w2p_eval.metrics.stats): coverage by simulation with a known truth,
McNemar against scipy's binomial test, grouping, determinism, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st

from w2p_eval.errors import InputError
from w2p_eval.metrics.stats import Interval, bootstrap_ci, mcnemar_exact, paired_diff_ci, wilson_interval


def _coverage(n_rep: int, p: float, n: int, *, dup: int = 1, grouped: bool = True, method: str = "BCa",
              seed: int = 2024) -> tuple[float, float]:
    """Share of ``n_rep`` seeded binomial samples (n independent units, each copied ``dup`` times) whose
    95 % interval contains p, and the mean width."""
    rng = np.random.default_rng(seed)
    hits, widths = 0, []
    for r in range(n_rep):
        x = np.repeat((rng.random(n) < p).astype(float), dup)
        groups = np.repeat(np.arange(n), dup) if grouped else None
        ci = bootstrap_ci(x, groups, seed=r, n_resamples=1000, method=method)
        hits += ci.low <= p <= ci.high
        widths.append(ci.high - ci.low)
    return hits / n_rep, float(np.mean(widths))


def test_coverage_binomial_p07_n100():
    # measured (seed 2024, 1000 replicates, 1000 resamples): BCa 0.959, mean width 0.177; exact coverage of the method
    # for this p and n (summing over the 101 possible outcomes) is 0.95-0.96
    cover, width = _coverage(1000, 0.7, 100)
    assert 0.93 <= cover <= 0.97, cover
    assert 0.15 < width < 0.21, width  # ~ 2 * 1.96 * sqrt(.21 / 100) = 0.18


def test_coverage_percentile_method_too():
    cover, _ = _coverage(500, 0.7, 100, method="percentile", seed=7)
    assert 0.93 <= cover <= 0.97, cover


def test_grouping_keeps_coverage_of_duplicated_items_and_ignoring_it_loses_it():
    # every unit copied 5 times (like the release's 5 audio crops per face): resampling the copies
    # together keeps ~95 %; treating copies as independent gives intervals sqrt(5) too narrow
    # measured: grouped 0.960 (width 0.228), ungrouped 0.636 (width 0.102)
    cover_g, width_g = _coverage(500, 0.7, 60, dup=5, grouped=True, seed=11)
    cover_i, width_i = _coverage(500, 0.7, 60, dup=5, grouped=False, seed=11)
    assert 0.92 <= cover_g <= 0.975, cover_g
    assert cover_i < 0.8, cover_i
    assert width_g / width_i == pytest.approx(np.sqrt(5), rel=0.15)


def test_duplicating_items_within_groups_changes_nothing_and_widens_against_ungrouped():
    rng = np.random.default_rng(0)
    x = (rng.random(80) < 0.6).astype(float)
    base = bootstrap_ci(x, seed=3)
    dup = bootstrap_ci(np.repeat(x, 4), np.repeat(np.arange(80), 4), seed=3)
    flat = bootstrap_ci(np.repeat(x, 4), seed=3)
    assert (dup.low, dup.high, dup.value) == pytest.approx((base.low, base.high, base.value))
    named = bootstrap_ci(np.repeat(x, 4), np.repeat([f"face{i}" for i in range(80)], 4), seed=3)  # other order
    assert (named.low, named.high) == pytest.approx((base.low, base.high), abs=0.03)
    assert dup.n_groups == 80 and dup.n_items == 320
    assert (dup.high - dup.low) > 1.7 * (flat.high - flat.low)


def test_deterministic_with_seed_and_seed_matters():
    x = np.random.default_rng(5).normal(0.4, 0.2, 150)
    g = np.arange(150) // 3
    a, b = bootstrap_ci(x, g, seed=9), bootstrap_ci(x, g, seed=9)
    assert a == b
    c = bootstrap_ci(x, g, seed=10)
    assert (c.low, c.high) != (a.low, a.high)
    assert a.low < x.mean() < a.high and a.value == pytest.approx(x.mean())


def test_weighted_mean_interval():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, 200)
    w = rng.uniform(0.5, 2, 200)
    ci = bootstrap_ci(x, weights=w, seed=0)
    assert ci.value == pytest.approx((w * x).sum() / w.sum())
    assert ci.low < ci.value < ci.high
    # weight 0 = left out
    w0 = w.copy()
    w0[:50] = 0
    assert bootstrap_ci(x, weights=w0, seed=0).n_items == 150


def test_all_equal_binary_gets_wilson_on_groups():
    ci = bootstrap_ci(np.ones(100), np.arange(100) // 5)
    lo, hi = wilson_interval(20, 20)
    assert ci.value == 1.0 and (ci.low, ci.high) == (lo, hi) and ci.high == 1.0 and ci.low < 0.9
    assert "wilson" in ci.method and ci.n_groups == 20


def test_format():
    ci = Interval(0.86, 0.831, 0.887, 0.95, "BCa", 100, 100, 1000, 0)
    assert ci.format() == "86.0 % [83.1, 88.7]"
    assert Interval(0.1234, 0.1, 0.15, 0.95, "BCa", 1, 1, 1000, 0).format(scale=1, digits=3, unit="") == \
        "0.123 [0.100, 0.150]"


def test_wilson_matches_closed_form():
    z = st.norm.ppf(0.975)
    k, n = 70, 100
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert wilson_interval(k, n) == pytest.approx((centre - half, centre + half))


def test_mcnemar_hand_built_case_equals_binomtest():
    # 40 both right, 12 only A right, 4 only B right, 44 both wrong
    a = np.array([1] * 40 + [1] * 12 + [0] * 4 + [0] * 44, bool)
    b = np.array([1] * 40 + [0] * 12 + [1] * 4 + [0] * 44, bool)
    res = mcnemar_exact(a, b)
    assert (res["b"], res["c"], res["n"], res["n_discordant"]) == (12, 4, 100, 16)
    assert res["p_value"] == pytest.approx(st.binomtest(12, 16, 0.5).pvalue)
    assert res["p_value"] == pytest.approx(2 * st.binom.cdf(4, 16, 0.5))  # 0.0768...
    assert res["accuracy_a"] == 0.52 and res["accuracy_b"] == 0.44
    assert res["difference"] == pytest.approx(0.08)
    assert mcnemar_exact(b, a)["p_value"] == pytest.approx(res["p_value"])
    assert mcnemar_exact(a, a)["p_value"] == 1.0


def test_mcnemar_rejects_fractional_and_misaligned():
    with pytest.raises(InputError, match="0/1"):
        mcnemar_exact([1, 0.5, 0], [1, 1, 0])
    with pytest.raises(InputError, match="same items"):
        mcnemar_exact([1, 0, 1], [1, 0])


def test_paired_diff_detects_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(3)
    a = (rng.random(300) < 0.6).astype(float)
    b = a.copy()  # B agrees with A on most items: loses 20 % of A's hits, gains 5 % of its misses
    u = rng.random(300)
    b[(a == 1) & (u < 0.2)] = 0
    b[(a == 0) & (u < 0.05)] = 1
    groups = np.arange(300) // 3
    d = paired_diff_ci(a, b, groups, seed=0)
    assert d.value == pytest.approx(a.mean() - b.mean())
    assert d.low > 0, d
    same = paired_diff_ci(a, np.roll(a, 3), groups, seed=0)  # same accuracy, other items
    assert same.low < 0 < same.high
    # pairing helps: the paired interval is narrower than independent intervals combined
    ia, ib = bootstrap_ci(a, groups, seed=0), bootstrap_ci(b, groups, seed=0)
    assert (d.high - d.low) < np.hypot(ia.high - ia.low, ib.high - ib.low)


def test_bad_input_one_line_messages():
    with pytest.raises(InputError, match="one group key per item"):
        bootstrap_ci([1, 0, 1], groups=[1, 2])
    with pytest.raises(InputError, match="finite values"):
        bootstrap_ci([1, np.nan, 0])
    with pytest.raises(InputError, match="non-empty"):
        bootstrap_ci([])
    with pytest.raises(InputError, match="confidence level"):
        bootstrap_ci([1, 0, 1], confidence=95)
    with pytest.raises(InputError, match="method"):
        bootstrap_ci([1, 0, 1], method="bca")
    with pytest.raises(InputError, match="same items"):
        paired_diff_ci([1, 0, 1], [1, 0])


def test_batched_bootstrap_is_the_unbatched_interval(monkeypatch):
    """Bounded memory changes nothing: a batch of one resample gives the interval of one dense batch."""
    from w2p_eval.metrics import stats

    rng = np.random.default_rng(5)
    values, groups = rng.random(120), rng.integers(0, 60, 120)
    dense = stats.bootstrap_ci(values, groups, seed=3, n_resamples=500)
    monkeypatch.setattr(stats, "BATCH_CELLS", 1)
    assert stats._batch(60) == 1
    small = stats.bootstrap_ci(values, groups, seed=3, n_resamples=500)
    assert (small.low, small.high) == (dense.low, dense.high)


def test_many_intervals_at_once_are_the_one_by_one_intervals():
    """bootstrap_ci_many (one vectorised bootstrap per group count) == bootstrap_ci per sample, bit for bit,
    fallbacks (all equal, one group) included; and per_identity_ci built on it == the per-identity loop."""
    from w2p_eval.metrics.base import ci_dict
    from w2p_eval.metrics.identity import per_identity_ci
    from w2p_eval.metrics.stats import bootstrap_ci_many

    rng = np.random.default_rng(11)
    samples = []
    for n in (8, 8, 8, 12, 6, 4, 4, 2, 10):
        groups = [f"f{j // 2}" for j in range(n)]
        samples.append(((rng.random(n) < 0.6).astype(float), groups))
    samples.append((np.ones(6), [f"g{j}" for j in range(6)]))  # all equal -> Wilson
    samples.append((np.array([0.0, 1.0]), ["same", "same"]))  # one group
    many = bootstrap_ci_many(samples, seed=4, n_resamples=300)
    one = [bootstrap_ci(v, g, seed=4, n_resamples=300) for v, g in samples]
    assert many == one

    labels = np.repeat(np.arange(9), 6)
    hits = (rng.random(len(labels)) < 0.5).astype(float)
    groups = [f"id{l}-{j // 2}" for l, j in zip(labels, np.tile(np.arange(6), 9))]
    names = [f"id{i}" for i in range(9)]
    loop = {}
    for i in range(9):
        idx = np.flatnonzero(labels == i)
        ci = ci_dict(hits[idx], [groups[j] for j in idx], seed=2, n_resamples=300, rate=True)
        loop[names[i]] = [float(ci["low"]), float(ci["high"])]
    assert per_identity_ci(hits, labels, names, groups, seed=2, n_resamples=300) == loop


def _scipy_bca(sums, wsum, seed, n_resamples=400):
    """The old interval: scipy's own BCa (its O(G^2) jackknife) over the same statistic and draws."""
    from scipy import stats as st

    from w2p_eval.metrics.stats import ratio_statistic

    res = st.bootstrap((np.arange(len(wsum)),), ratio_statistic(sums, wsum), n_resamples=n_resamples,
                       confidence_level=0.95, method="BCa", vectorized=True, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


@pytest.mark.parametrize("case", range(4))
def test_linear_jackknife_gives_scipys_bca_bounds(case):
    """The O(G) leave-one-group-out jackknife (by subtraction) gives scipy's O(G^2) BCa bounds to 1e-10, for
    means, weighted means, hits with many equal replicates, and paired differences."""
    from w2p_eval.metrics import stats

    rng = np.random.default_rng(100 + case)
    n_groups = int(rng.integers(30, 300))
    n = n_groups * 3
    groups = rng.integers(0, n_groups, n)
    _, codes = np.unique(groups, return_inverse=True)
    g = int(codes.max()) + 1
    values = (rng.random(n) < 0.7).astype(float) if case == 2 else rng.normal(0.4, 0.2, n)
    weights = rng.random(n) + 0.1 if case == 1 else np.ones(n)
    if case == 3:
        other = rng.normal(0.3, 0.2, n)
        got = stats.paired_diff_ci(values, other, groups, seed=case, n_resamples=400)
        sums = np.zeros((g, 2))
        np.add.at(sums[:, 0], codes, values)
        np.add.at(sums[:, 1], codes, other)
    else:
        got = stats.bootstrap_ci(values, groups, weights=weights, seed=case, n_resamples=400)
        sums = np.zeros((g, 1))
        np.add.at(sums[:, 0], codes, weights * values)
    wsum = np.bincount(codes, weights=weights, minlength=g)
    lo, hi = _scipy_bca(sums, wsum, case)
    assert got.method == "BCa"
    assert abs(got.low - lo) < 1e-10 and abs(got.high - hi) < 1e-10
    many = stats.bootstrap_ci_many([(values, groups)], seed=case, n_resamples=400)[0]
    alone = stats.bootstrap_ci(values, groups, seed=case, n_resamples=400)
    assert abs(many.low - alone.low) < 1e-12 and abs(many.high - alone.high) < 1e-12
