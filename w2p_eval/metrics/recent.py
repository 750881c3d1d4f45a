"""The recent papers' face-space metrics on plain arrays (numpy/scipy only; suites in ``recent_suite.py``).

Every function takes embeddings float ``[N, D]`` (any float dtype, computed in float64, rows L2-normalised
here, so dot products are cosines) and per-row keys (identity labels, clip keys, face ids):

- :func:`inter_identity_cosine`: mean cosine between faces of different identities (SF2F's collapse check:
  one face drawn for everyone scores 1.0).
- :func:`intra_identity_spread`: mean over identities of 1 - the mean cosine of an identity's faces to their
  own centroid (0 = one face per identity).
- :func:`cross_clip_consistency`: for each identity, the mean cosine between faces from different clips
  (Speech2Face, Cross-Modal Perceptionist), identities weighted equally.
- :func:`draw_verification_trials`, :func:`verification_eer`, :func:`verification_auc`: voice-face
  verification trials (probe vs a real face of the same or another identity) and their EER / ROC-AUC;
  :func:`verification_curves` gives both for many weightings of the trials (bootstrap resamples) from one sort.
- :func:`prdc`: precision, recall, density and coverage of Naeem et al. 2020 (k-NN manifolds).

The averaged metrics return a :class:`WeightedMean` (value, per-item values, weights) so the suites can
bootstrap them by identity with :func:`w2p_eval.metrics.base.ci_dict`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from w2p_eval.errors import InputError
from w2p_eval.metrics.embedding import _as_2d, l2_normalize

DEFAULT_K = 5  # Naeem et al. 2020's k


@dataclass(frozen=True)
class WeightedMean:
    """``value`` = sum(weights * values) / sum(weights) over the items with weight > 0; ``values`` float64 [N]
    (NaN where an item has no partner), ``weights`` float64 [N] (0 for such items)."""

    value: float
    values: np.ndarray
    weights: np.ndarray


def _weighted(values: np.ndarray, weights: np.ndarray) -> WeightedMean:
    ok = weights > 0
    values = np.where(ok, values, np.nan)
    value = float((values[ok] * weights[ok]).sum() / weights[ok].sum()) if ok.any() else float("nan")
    return WeightedMean(value, values, np.where(ok, weights, 0.0))


def _codes(keys, n: int, what: str) -> np.ndarray:
    k = np.asarray(keys)
    if k.shape != (n,):
        raise InputError(f"expected one {what} per embedding ({n}), got shape {k.shape}")
    return np.unique(k.astype(str), return_inverse=True)[1].reshape(-1)


def _group_sums(x: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sums [G, D], counts [G]) of the rows of ``x`` per code."""
    g = int(codes.max()) + 1
    sums = np.zeros((g, x.shape[1]))
    np.add.at(sums, codes, x)
    return sums, np.bincount(codes, minlength=g).astype(np.float64)


def inter_identity_cosine(emb: np.ndarray, labels) -> WeightedMean:
    """Mean cosine over the ordered pairs of faces of different identities.

    Item i's value is its mean cosine to the faces of every other identity, weighted by their number, so the
    weighted mean is the pair mean (computed from sums: O(N D)). A constant face scores 1.0. Needs two
    identities (else InputError)."""
    x = l2_normalize(_as_2d(emb, "embeddings"))
    lab = _codes(labels, len(x), "identity label")
    if lab.max() < 1:
        raise InputError("expected faces of at least 2 identities for the inter-identity cosine, got 1")
    sums, counts = _group_sums(x, lab)
    others = x.sum(axis=0)[None, :] - sums[lab]
    n_other = len(x) - counts[lab]
    return _weighted((x * others).sum(axis=1) / n_other, n_other)


def intra_identity_spread(emb: np.ndarray, labels) -> WeightedMean:
    """Mean over identities of (1 - mean cosine of the identity's faces to their L2-normalised centroid).

    0 when every face of an identity is the same; identities weighted equally (item weight 1 / its
    identity's face count); identities with one face are left out."""
    x = l2_normalize(_as_2d(emb, "embeddings"))
    lab = _codes(labels, len(x), "identity label")
    sums, counts = _group_sums(x, lab)
    cent = l2_normalize(sums)
    spread = 1.0 - (x * cent[lab]).sum(axis=1)
    return _weighted(np.clip(spread, 0.0, 2.0), np.where(counts[lab] >= 2, 1.0 / counts[lab], 0.0))


def cross_clip_consistency(emb: np.ndarray, labels, clips) -> WeightedMean:
    """For each identity, the mean over its faces of their mean cosine to its faces from OTHER clips; the
    identities weighted equally. ``clips`` [N]: the clip (audio window, source segment or video) each face was
    made from. Faces whose identity has no other clip are left out. A constant face scores 1.0."""
    x = l2_normalize(_as_2d(emb, "embeddings"))
    lab = _codes(labels, len(x), "identity label")
    clip = _codes([f"{a}\0{b}" for a, b in zip(np.asarray(labels).astype(str), np.asarray(clips).astype(str))],
                  len(x), "clip key")
    id_sums, id_counts = _group_sums(x, lab)
    clip_sums, clip_counts = _group_sums(x, clip)
    n_other = id_counts[lab] - clip_counts[clip]
    ok = n_other > 0
    values = np.full(len(x), np.nan)
    values[ok] = (x[ok] * (id_sums[lab] - clip_sums[clip])[ok]).sum(axis=1) / n_other[ok]
    per_id = np.bincount(lab[ok], minlength=int(lab.max()) + 1).astype(np.float64)
    weights = np.where(ok, 1.0 / np.maximum(per_id[lab], 1.0), 0.0)
    return _weighted(values, weights)


@dataclass(frozen=True)
class Trials:
    """Verification trials: ``probe`` and ``ref`` int64 [T] row indices, ``genuine`` bool [T] (same identity),
    ``excluded`` int64 [E]: probes without a genuine or an impostor reference."""

    probe: np.ndarray
    ref: np.ndarray
    genuine: np.ndarray
    excluded: np.ndarray


def draw_verification_trials(labels, face_ids, *, seed: int = 0, per_probe: int = 5,
                             genders=None) -> Trials:
    """For every row (probe), up to ``per_probe`` genuine references (a distinct real face of its identity: another
    face id) and as many impostor references (faces of other identities; with ``genders`` [N], of the probe's
    gender only), drawn without replacement by ``np.random.default_rng(seed)``. Each distinct face id counts
    once (its first row), so copies of a face are not drawn twice. Balanced: as many impostor as genuine trials
    per probe."""
    labels = np.asarray(labels).astype(str)
    fid = np.asarray(face_ids).astype(str)
    n = len(labels)
    if fid.shape != (n,) or (genders is not None and np.asarray(genders).shape != (n,)):
        raise InputError(f"expected one face id (and gender) per row ({n}), got {fid.shape}")
    _, first = np.unique(fid, return_index=True)
    reps = np.sort(first)
    rep_lab = labels[reps]
    rep_gender = None if genders is None else np.asarray(genders).astype(str)[reps]
    rng = np.random.default_rng(seed)
    probe, ref, genuine, excluded = [], [], [], []
    for i in range(n):
        same = reps[(rep_lab == labels[i]) & (fid[reps] != fid[i])]
        other = rep_lab != labels[i]
        if rep_gender is not None:
            other &= rep_gender == str(np.asarray(genders)[i])
        other = reps[other]
        m = min(int(per_probe), len(same), len(other))
        if m == 0:
            excluded.append(i)
            continue
        picks = np.concatenate([rng.choice(same, m, replace=False), rng.choice(other, m, replace=False)])
        probe += [i] * (2 * m)
        ref += picks.tolist()
        genuine += [True] * m + [False] * m
    return Trials(np.asarray(probe, np.int64), np.asarray(ref, np.int64), np.asarray(genuine, bool),
                  np.asarray(excluded, np.int64))


def trial_scores(probe_emb: np.ndarray, ref_emb: np.ndarray, trials: Trials) -> np.ndarray:
    """Cosine of each trial's probe row of ``probe_emb`` [N, D] and reference row of ``ref_emb`` [N, D]: [T]."""
    p = l2_normalize(_as_2d(probe_emb, "probe embeddings"))
    r = l2_normalize(_as_2d(ref_emb, "reference embeddings"))
    return (p[trials.probe] * r[trials.ref]).sum(axis=1)


def _check_trials(scores, genuine) -> tuple[np.ndarray, np.ndarray]:
    s, g = np.asarray(scores, np.float64), np.asarray(genuine, bool)
    if s.shape != g.shape or s.ndim != 1 or not np.isfinite(s).all():
        raise InputError(f"expected finite scores and genuine flags of one shape, got {s.shape} and {g.shape}")
    if g.all() or not g.any():
        raise InputError(f"expected genuine and impostor trials, got {int(g.sum())} genuine of {g.size}")
    return s, g


def verification_curves(scores, genuine, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(EER [B], ROC-AUC [B]) of the trials under each row of ``weights`` float [B, T] (how often each trial
    counts, e.g. a cluster bootstrap's draws; None = once each, B = 1), from ONE sort of the scores.

    EER: where the false-accept rate (impostors scoring >= t) equals the false-reject rate (genuine below t),
    interpolated linearly between the ROC points around the crossing (0 = perfect separation, 0.5 for scores
    that carry no information). AUC: the probability that a genuine trial scores above an impostor one, ties
    counting half (Mann-Whitney U). NaN where a row weighs no genuine or no impostor trial."""
    s, g = _check_trials(scores, genuine)
    w = np.ones((1, len(s))) if weights is None else np.atleast_2d(np.asarray(weights, np.float64))
    order = np.argsort(-s, kind="stable")
    last = np.r_[np.flatnonzero(np.diff(s[order]) != 0), len(s) - 1]  # one ROC point per distinct score
    wo, go = w[:, order], g[order]
    pos = np.cumsum(wo * go, axis=1)[:, last]  # genuine weight scoring >= each distinct score, descending
    neg = np.cumsum(wo * ~go, axis=1)[:, last]
    n_pos, n_neg = pos[:, -1:], neg[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr, fpr = np.c_[np.zeros(len(w)), pos / n_pos], np.c_[np.zeros(len(w)), neg / n_neg]
        d = (1.0 - tpr) - fpr  # from 1 down to -1
        j = np.argmax(d <= 0, axis=1)
        rows = np.arange(len(w))
        d0, d1 = d[rows, np.maximum(j - 1, 0)], d[rows, j]
        t = np.where(d1 == 0, 1.0, d0 / (d0 - d1))
        f0, f1 = fpr[rows, np.maximum(j - 1, 0)], fpr[rows, j]
        eer = f0 + t * (f1 - f0)
        p_u, n_u = np.diff(np.c_[np.zeros(len(w)), pos], axis=1), np.diff(np.c_[np.zeros(len(w)), neg], axis=1)
        auc = (p_u * (n_neg - neg + 0.5 * n_u)).sum(axis=1) / (n_pos[:, 0] * n_neg[:, 0])
    bad = (n_pos[:, 0] <= 0) | (n_neg[:, 0] <= 0)
    return np.where(bad, np.nan, eer), np.where(bad, np.nan, auc)


def verification_auc(scores, genuine) -> float:
    """ROC-AUC of the trials (:func:`verification_curves`): 1 = perfect separation, 0.5 = chance."""
    return float(verification_curves(scores, genuine)[1][0])


def verification_eer(scores, genuine) -> float:
    """Equal error rate of the trials (:func:`verification_curves`): 0 = perfect separation, 0.5 = chance."""
    return float(verification_curves(scores, genuine)[0][0])


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.clip(sq, 0.0, None))


def _kth_radius(x: np.ndarray, k: int) -> np.ndarray:
    """Distance of each row to its k-th nearest other row (the row itself is the 0-th)."""
    d = _pairwise(x, x)
    return np.partition(d, k, axis=1)[:, k]


@dataclass(frozen=True)
class Prdc:
    """Naeem et al. 2020. Per generated face: ``in_real`` (inside some real face's k-NN ball: precision) and
    ``density_items`` (how many real balls hold it / k); per real face: ``in_fake`` (inside some generated face's
    ball: recall) and ``covered`` (its own ball holds a generated face: coverage)."""

    precision: float
    recall: float
    density: float
    coverage: float
    k: int
    in_real: np.ndarray
    density_items: np.ndarray
    in_fake: np.ndarray
    covered: np.ndarray


def prdc(real: np.ndarray, fake: np.ndarray, k: int = DEFAULT_K) -> Prdc:
    """Precision, recall, density, coverage of ``fake`` [M, D] against ``real`` [N, D] with Euclidean k-NN balls
    (each real face's ball reaches its k-th nearest real neighbour; recall uses the generated faces' balls).
    Identical sets give precision = recall = coverage = 1; far-apart sets give 0 everywhere. Needs more than
    ``k`` faces in each set (InputError)."""
    r, f = _as_2d(real, "real features"), _as_2d(fake, "generated features")
    k = int(k)
    if r.shape[1] != f.shape[1]:
        raise InputError(f"expected features of one size, got {r.shape[1]} and {f.shape[1]}")
    if k < 1 or len(r) <= k or len(f) <= k:
        raise InputError(f"expected more than k = {k} faces in each set for precision/recall, got {len(r)} real "
                         f"and {len(f)} generated")
    r_rad, f_rad = _kth_radius(r, k), _kth_radius(f, k)
    d = _pairwise(r, f)  # [N, M]
    inside_real = d <= r_rad[:, None]
    in_real = inside_real.any(axis=0).astype(np.float64)
    density_items = inside_real.sum(axis=0) / k
    in_fake = (d <= f_rad[None, :]).any(axis=1).astype(np.float64)
    covered = (d.min(axis=1) <= r_rad).astype(np.float64)
    return Prdc(float(in_real.mean()), float(in_fake.mean()), float(density_items.mean()), float(covered.mean()),
                k, in_real, density_items.astype(np.float64), in_fake, covered)
