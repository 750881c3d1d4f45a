"""The field's protocols on plain embedding arrays (w2p_eval.metrics.protocols, w2p_eval.metrics.matching): known answers with
clustered Gaussian embeddings (one cluster per identity, one point per face, copies per face)."""

from __future__ import annotations

import numpy as np
import pytest

from w2p_eval.errors import InputError
from w2p_eval.metrics import embedding as E
from w2p_eval.metrics import matching as M
from w2p_eval.metrics import protocols as P
from w2p_eval.metrics.stats import bootstrap_ci


def clustered(n_ids: int = 30, faces: int = 6, copies: int = 2, dim: int = 64, spread: float = 0.6, seed: int = 0):
    """Real-face embeddings like a face network's: identity centre + per-face variation, each face
    copied ``copies`` times (same pixels -> same embedding). Returns (real [N, D], labels [N] int,
    face_ids [N] str, names)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, dim))
    real, labels, fids = [], [], []
    for i in range(n_ids):
        for f in range(faces):
            e = centres[i] + spread * rng.normal(size=dim)
            for _ in range(copies):
                real.append(e)
                labels.append(i)
                fids.append(f"id{i}-f{f}")
    return np.array(real), np.array(labels), np.array(fids)


def other_identity_faces(real, labels, seed, include_own=False):
    """A generator that ignores the speech: for each row, the (noisy) real face of a random identity —
    any identity with ``include_own``, otherwise a different one."""
    rng = np.random.default_rng(seed)
    ids = np.unique(labels)
    out = np.empty_like(real)
    for i, lab in enumerate(labels):
        pool = ids if include_own else ids[ids != lab]
        j = rng.choice(pool)
        rows = np.flatnonzero(labels == j)
        out[i] = real[rng.choice(rows)] + 0.05 * rng.normal(size=real.shape[1])
    return out


# ---------------------------------------------------------------------------------------------- retrieval

def test_real_faces_recall_1_and_distances_0():
    real, labels, fids = clustered()
    res = P.gallery_recall(real, real, labels, gallery_size=10, n_galleries=5, seed=1)
    assert res.recall == {1: 1.0, 2: 1.0, 5: 1.0, 10: 1.0}
    assert res.chance == {1: 0.1, 2: 0.2, 5: 0.5, 10: 1.0}
    d = P.paired_distances(real, real)
    assert d.means() == pytest.approx({"cosine_similarity": 1.0, "cosine_distance": 0.0, "l1": 0.0, "l2": 0.0},
                                      abs=1e-12)


def test_constant_face_gives_exactly_k_over_g():
    real, labels, _ = clustered()
    const = np.tile(np.random.default_rng(3).normal(size=real.shape[1]), (len(real), 1))
    for g in (30, 7):
        res = P.gallery_recall(const, real, labels, gallery_size=g, ks=(1, 2, 5), n_galleries=4, seed=2)
        for k in (1, 2, 5):
            assert res.recall[k] == pytest.approx(k / g, abs=1e-12)
            assert res.per_gallery[k] == pytest.approx(np.full(len(res.galleries), k / g))


def test_exact_ties_are_counted_by_expectation():
    real, labels, _ = clustered(n_ids=8)
    same = np.ones_like(real)  # every embedding identical: every similarity tied
    res = P.gallery_recall(same, same, labels, ks=(1, 2, 5))
    assert res.recall == pytest.approx({1: 1 / 8, 2: 2 / 8, 5: 5 / 8})
    assert res.n_tied_queries == len(real)
    m = M.matching_accuracy(same, same, M.draw_matching_tuples(labels, np.arange(len(real)).astype(str), 5, seed=0))
    assert m.accuracy == pytest.approx(1 / 5) and m.ceiling == pytest.approx(1 / 5) and m.n_tied == len(real)


def test_uninformative_generator_is_at_chance_and_other_identity_below():
    real, labels, _ = clustered(n_ids=30, faces=10, copies=1)
    n = 30
    rand = other_identity_faces(real, labels, seed=5, include_own=True)
    res = P.gallery_recall(rand, real, labels, ks=(1, 5, 10))
    for k in (1, 5, 10):  # K/G in expectation; sd over 300 faces ~ 0.01-0.03
        assert res.recall[k] == pytest.approx(k / n, abs=0.05), (k, res.recall[k])
    other = other_identity_faces(real, labels, seed=6, include_own=False)
    res = P.gallery_recall(other, real, labels, ks=(1, 5, 10))
    # the other identity's mean ranks first, the true one falls uniformly among the other G-1
    for k in (1, 5, 10):
        assert res.recall[k] == pytest.approx((k - 1) / (n - 1), abs=0.05), (k, res.recall[k])
    assert res.recall[1] < 0.01


def test_gallery_recall_matches_todays_retrieval_when_gallery_is_all_identities():
    real, labels, _ = clustered(n_ids=12, spread=1.5)
    fake = real + np.random.default_rng(1).normal(scale=5.0, size=real.shape)
    res = P.gallery_recall(fake, real, labels, ks=(1, 5))
    ids, cents = E.identity_centroids(real, labels)
    old = E.retrieval_recall(E.centroid_cosines(fake, labels, ids, cents)["sims"], labels, ids, ks=(1, 5))
    # equal faces per identity and no ties: identity-weighted mean == item mean
    assert res.n_tied_queries == 0 and 0.2 < res.recall[1] < 0.95
    assert res.recall == pytest.approx(old)


def test_hits_and_weights_reproduce_the_value_and_feed_the_bootstrap():
    real, labels, fids = clustered(n_ids=20)
    keep = np.flatnonzero((labels != 3) | (np.arange(len(labels)) % 3 == 0))  # identity 3 has fewer faces
    real, labels, fids = real[keep], labels[keep], fids[keep]
    fake = real + np.random.default_rng(1).normal(scale=4.0, size=real.shape)
    res = P.gallery_recall(fake, real, labels, gallery_size=8, n_galleries=6, seed=4)
    for k in res.ks:
        ok = res.weights > 0
        assert np.isnan(res.hits[k][~ok]).all()
        assert (res.weights * np.nan_to_num(res.hits[k])).sum() / res.weights.sum() == pytest.approx(res.recall[k])
        assert res.per_gallery[k].mean() == pytest.approx(res.recall[k])
    ci = bootstrap_ci(res.hits[1], fids, weights=res.weights, seed=0)  # NaN only where weight 0
    assert ci.value == pytest.approx(res.recall[1]) and ci.low < ci.value < ci.high


def test_galleries_seeded_and_validated():
    _, labels, _ = clustered(n_ids=12)
    a = P.draw_galleries(labels, 5, n_galleries=3, seed=7)
    b = P.draw_galleries(labels, 5, n_galleries=3, seed=7)
    c = P.draw_galleries(labels, 5, n_galleries=3, seed=8)
    assert [g.tolist() for g in a] == [g.tolist() for g in b] != [g.tolist() for g in c]
    assert all(len(set(g.tolist())) == 5 for g in a)
    assert len(P.draw_galleries(labels, None, n_galleries=3)) == 1  # default G = min(100, 12) = all: one gallery
    with pytest.raises(InputError, match=r"gallery size 100 needs at least 100 test identities, got 12; "
                                         r"use a gallery size between 2 and 12"):
        P.draw_galleries(labels, 100)
    real = np.random.default_rng(0).normal(size=(len(labels), 8))
    res = P.gallery_recall(real, real, labels, gallery_size=4, seed=0)
    assert res.ks == (1, 2)  # K > G dropped
    with pytest.raises(InputError, match="unknown 99"):
        P.gallery_recall(real, real, labels, galleries=[[0, 1, 99]])


# ---------------------------------------------------------------------------------------------- distances

def test_paired_distances_hand_values():
    fake = np.array([[1.0, 0.0], [3.0, 4.0], [2.0, 0.0]])
    real = np.array([[0.0, 1.0], [3.0, 4.0], [-1.0, 0.0]])
    d = P.paired_distances(fake, real)
    assert d.cosine_similarity == pytest.approx([0.0, 1.0, -1.0])
    assert d.cosine_distance == pytest.approx([1.0, 0.0, 2.0])
    assert d.l1 == pytest.approx([2.0, 0.0, 2.0])
    assert d.l2 == pytest.approx([np.sqrt(2), 0.0, 2.0])
    raw = P.paired_distances(fake, real, normalize=False)
    assert raw.l1 == pytest.approx([2.0, 0.0, 3.0]) and raw.l2 == pytest.approx([np.sqrt(2), 0.0, 3.0])
    with pytest.raises(InputError, match="one row per item"):
        P.paired_distances(fake, real[:2])


# ---------------------------------------------------------------------------------------------- matching

def test_tuples_are_valid_and_seeded():
    _, labels, fids = clustered(n_ids=12, faces=4, copies=3)
    t = M.draw_matching_tuples(labels, fids, 5, seed=3)
    assert t.tuples.shape == (len(labels), 6) and t.excluded.size == 0
    assert (t.tuples[:, 0] == np.arange(len(labels))).all()
    assert (labels[t.tuples[:, 1]] == labels[t.tuples[:, 0]]).all()
    assert (fids[t.tuples[:, 1]] != fids[t.tuples[:, 0]]).all()  # another face of the true speaker
    imp = labels[t.tuples[:, 2:]]
    assert (imp != labels[t.tuples[:, [0]]]).all()
    assert all(len(set(r)) == 4 for r in imp.tolist())  # distinct impostor identities
    assert (M.draw_matching_tuples(labels, fids, 5, seed=3).tuples == t.tuples).all()
    assert (M.draw_matching_tuples(labels, fids, 5, seed=4).tuples != t.tuples).any()
    # impostor identities are spread evenly
    counts = np.bincount(imp.ravel(), minlength=12)
    assert counts.min() > 0.5 * counts.mean()


def test_tuples_round_trip_through_pair_ids():
    _, labels, fids = clustered(n_ids=5, faces=3, copies=1)
    pids = [f"p{i:03d}" for i in range(len(labels))]
    t = M.draw_matching_tuples(labels, fids, 2, seed=0)
    rows = M.tuples_to_pair_ids(t.tuples, pids)
    back, dropped = M.tuples_from_pair_ids(rows, pids)
    assert dropped == 0 and (back == t.tuples).all()
    with pytest.raises(InputError, match="unknown pair id 'p000'"):
        M.tuples_from_pair_ids(rows, pids[1:])
    kept, dropped = M.tuples_from_pair_ids(rows, pids[1:], drop_missing=True)
    assert dropped == sum("p000" in r for r in rows) > 0 and len(kept) == len(rows) - dropped


def test_single_face_identities_are_excluded_as_probes():
    labels = np.array([0, 0, 1, 1, 2])
    fids = np.array(["a", "b", "c", "d", "e"])
    t = M.draw_matching_tuples(labels, fids, 2, seed=0)
    assert t.excluded.tolist() == [4] and t.tuples.shape == (4, 3)
    with pytest.raises(InputError, match="at least 2 distinct faces"):
        M.draw_matching_tuples([0, 0, 1], ["a", "a", "b"], 2)
    with pytest.raises(InputError, match="face_id shared by two identities"):
        M.draw_matching_tuples([0, 0, 1, 1], ["a", "b", "b", "c"], 2)


def test_n_way_needs_enough_identities():
    labels = np.repeat(np.arange(3), 4)
    fids = np.arange(12).astype(str)
    with pytest.raises(InputError, match=r"1:5 matching needs at least 5 test identities .* got 3; possible: 1:2 to 1:3"):
        M.draw_matching_tuples(labels, fids, 5)


def test_real_faces_match_the_ceiling_exactly():
    real, labels, fids = clustered(spread=1.2)
    for n_way in (2, 5, 10):
        t = M.draw_matching_tuples(labels, fids, n_way, seed=n_way)
        m = M.matching_accuracy(real, real, t)
        assert (m.correct == m.ceiling_correct).all() and m.accuracy == m.ceiling
        assert m.chance == 1 / n_way and 1 / n_way < m.ceiling <= 1.0


def test_constant_face_matches_at_half_and_random_identity_at_chance():
    real, labels, fids = clustered(n_ids=30, faces=10, copies=1, spread=1.0)
    const = np.tile(np.random.default_rng(3).normal(size=real.shape[1]), (len(real), 1))
    m2 = M.matching_accuracy(const, real, M.draw_matching_tuples(labels, fids, 2, seed=0))
    assert m2.accuracy == pytest.approx(0.5, abs=0.06), m2.accuracy  # 300 tuples: sd 0.03
    assert m2.ceiling > 0.9
    rand = other_identity_faces(real, labels, seed=9, include_own=True)
    for n_way in (2, 5, 10):
        m = M.matching_accuracy(rand, real, M.draw_matching_tuples(labels, fids, n_way, seed=1))
        assert m.accuracy == pytest.approx(1 / n_way, abs=0.07), (n_way, m.accuracy)


def test_matching_bad_tuples():
    real, labels, fids = clustered(n_ids=3, faces=2, copies=1)
    with pytest.raises(InputError, match="indices in 0..5"):
        M.matching_accuracy(real, real, np.array([[0, 1, 9]]))
    with pytest.raises(InputError, match="non-empty"):
        M.matching_accuracy(real, real, np.zeros((0, 3), dtype=np.int64))
