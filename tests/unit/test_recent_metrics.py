"""Known-answer tests of the recent papers' metrics on plain arrays (metrics/recent.py,
stats.cluster_bootstrap_stat)."""

from __future__ import annotations

import numpy as np
import pytest

from w2p_eval.errors import InputError
from w2p_eval.metrics import recent as R
from w2p_eval.metrics.stats import cluster_bootstrap_stat


def _clusters(n_ids=6, per=8, dim=16, noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, dim))
    labels = np.repeat(np.arange(n_ids), per)
    return centres[labels] + noise * rng.normal(size=(len(labels), dim)), labels


def test_inter_identity_cosine_constant_face_is_one_and_matches_the_pair_mean():
    emb, labels = _clusters()
    const = np.tile(emb[:1], (len(emb), 1))
    assert R.inter_identity_cosine(const, labels).value == pytest.approx(1.0)
    x = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sims = x @ x.T
    other = labels[:, None] != labels[None, :]
    assert R.inter_identity_cosine(emb, labels).value == pytest.approx(sims[other].mean())
    orth = np.eye(4)  # four identities, orthogonal faces
    assert R.inter_identity_cosine(orth, [0, 1, 2, 3]).value == pytest.approx(0.0)
    with pytest.raises(InputError, match="at least 2 identities"):
        R.inter_identity_cosine(emb, np.zeros(len(emb)))


def test_intra_identity_spread_zero_for_one_face_per_identity():
    emb, labels = _clusters()
    centres = np.stack([emb[labels == i][0] for i in range(6)])
    assert R.intra_identity_spread(centres[labels], labels).value == pytest.approx(0.0, abs=1e-12)
    tight = R.intra_identity_spread(emb, labels).value
    loose = R.intra_identity_spread(_clusters(noise=1.0)[0], labels).value
    assert 0 < tight < loose


def test_cross_clip_consistency_known_answers():
    emb, labels = _clusters()
    clips = np.arange(len(labels)) % 4
    assert R.cross_clip_consistency(np.ones((len(labels), 3)), labels, clips).value == pytest.approx(1.0)
    # identity 0: clip a = [1, 0], clip b = [0, 1] -> cosine 0; identity 1: both clips the same face -> 1
    e = np.array([[1.0, 0], [0, 1], [1, 1], [1, 1]])
    got = R.cross_clip_consistency(e, [0, 0, 1, 1], ["a", "b", "a", "b"])
    assert got.value == pytest.approx(0.5)
    assert got.values.tolist() == pytest.approx([0.0, 0.0, 1.0, 1.0])
    one_clip = R.cross_clip_consistency(e, [0, 0, 1, 1], ["a", "a", "a", "b"])  # identity 0 has one clip only
    assert np.isnan(one_clip.values[:2]).all() and one_clip.value == pytest.approx(1.0)


def test_verification_eer_auc_known_answers():
    genuine = np.array([1, 1, 1, 0, 0, 0], bool)
    perfect = np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.3])
    assert R.verification_eer(perfect, genuine) == 0.0
    assert R.verification_auc(perfect, genuine) == 1.0
    assert R.verification_eer(-perfect, genuine) == 1.0 and R.verification_auc(-perfect, genuine) == 0.0
    assert R.verification_eer(np.zeros(6), genuine) == pytest.approx(0.5)
    assert R.verification_auc(np.zeros(6), genuine) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    g = rng.random(4000) < 0.5
    s = rng.normal(size=4000)
    assert R.verification_eer(s, g) == pytest.approx(0.5, abs=0.03)
    assert R.verification_auc(s, g) == pytest.approx(0.5, abs=0.03)
    # one genuine/impostor overlap: EER from the interpolated crossing
    assert R.verification_eer([0.9, 0.4, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(0.5)
    assert R.verification_auc([0.9, 0.4, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(0.75)
    with pytest.raises(InputError, match="genuine and impostor"):
        R.verification_auc([0.1, 0.2], [1, 1])


def test_verification_trials_are_balanced_distinct_faces_and_same_gender():
    labels = np.repeat(["a", "b", "c", "d"], 4)
    face_ids = [f"{l}{i // 2}" for i, l in enumerate(labels)]  # two copies of each face
    genders = np.repeat(["f", "f", "m", "m"], 4)
    t = R.draw_verification_trials(labels, face_ids, seed=1, per_probe=5, genders=genders)
    assert len(t.excluded) == 0
    assert t.genuine.sum() == (~t.genuine).sum()
    fid = np.asarray(face_ids)
    assert (labels[t.probe][t.genuine] == labels[t.ref][t.genuine]).all()
    assert (fid[t.probe][t.genuine] != fid[t.ref][t.genuine]).all()
    assert (labels[t.probe][~t.genuine] != labels[t.ref][~t.genuine]).all()
    assert (genders[t.probe] == genders[t.ref]).all()
    again = R.draw_verification_trials(labels, face_ids, seed=1, per_probe=5, genders=genders)
    assert (again.ref == t.ref).all()
    one_face = R.draw_verification_trials(["a", "a", "b"], ["x", "x", "y"], seed=0)
    assert one_face.excluded.tolist() == [0, 1, 2]  # no second face of a; b has no genuine partner
    # a judge that sees identity perfectly: EER 0; constant embeddings: 0.5
    emb, lab = _clusters(n_ids=4, per=4, noise=0.01)
    t = R.draw_verification_trials(lab, np.arange(len(lab)), seed=0)
    assert R.verification_eer(R.trial_scores(emb, emb, t), t.genuine) == 0.0
    flat = np.ones_like(emb)
    assert R.verification_eer(R.trial_scores(flat, flat, t), t.genuine) == pytest.approx(0.5)


def test_prdc_identical_disjoint_and_k():
    emb, _ = _clusters(n_ids=5, per=10)
    same = R.prdc(emb, emb, k=5)
    assert (same.precision, same.recall, same.coverage) == (1.0, 1.0, 1.0)
    assert same.density == pytest.approx(1.0, abs=0.25) and same.k == 5
    far = R.prdc(emb, emb + 1e3, k=5)
    assert (far.precision, far.recall, far.density, far.coverage) == (0.0, 0.0, 0.0, 0.0)
    collapsed = R.prdc(emb, np.tile(emb[:1], (len(emb), 1)), k=5)
    assert collapsed.precision == 1.0 and collapsed.recall < 0.2 and collapsed.coverage < 0.2
    with pytest.raises(InputError, match="more than k = 5"):
        R.prdc(emb[:5], emb, k=5)


def test_weighted_curves_equal_repeated_trials():
    rng = np.random.default_rng(1)
    s, g = np.round(rng.normal(size=40), 1), rng.random(40) < 0.5  # rounded: ties between the classes
    w = rng.integers(0, 4, size=(3, 40)).astype(float)
    eer, auc = R.verification_curves(s, g, w)
    for b in range(3):
        idx = np.repeat(np.arange(40), w[b].astype(int))
        assert eer[b] == pytest.approx(R.verification_eer(s[idx], g[idx]))
        assert auc[b] == pytest.approx(R.verification_auc(s[idx], g[idx]))
    none = R.verification_curves(s, g, np.where(g, 0.0, 1.0)[None])  # no genuine trial drawn: undefined
    assert np.isnan(none[0]).all() and np.isnan(none[1]).all()


def test_cluster_bootstrap_stat_covers_and_is_seeded():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), 10)
    scores = rng.normal(size=300) + np.repeat(rng.normal(size=30), 10)
    genuine = rng.random(300) < 0.5
    scores[genuine] += 1.0

    def stat(weights):
        return np.stack(R.verification_curves(scores, genuine, weights), axis=1)

    eer, auc = cluster_bootstrap_stat(stat, groups, seed=3, n_resamples=200)
    assert eer.value == pytest.approx(R.verification_eer(scores, genuine))
    assert eer.low <= eer.value <= eer.high and auc.low <= auc.value <= auc.high
    assert 0.5 < auc.value < 1 and eer.n_groups == 30 and auc.high - auc.low > 0.01
    again = cluster_bootstrap_stat(stat, groups, seed=3, n_resamples=200)
    assert again[0] == eer
    one = cluster_bootstrap_stat(stat, np.zeros(300), seed=3, n_resamples=200)
    assert one[0].low == one[0].high == one[0].value
