"""The field's evaluation protocols on plain embedding arrays (numpy only): SF2F-style gallery retrieval and
paired embedding distances here, Wen et al. / Nagrani et al. style 1:N matching in :mod:`w2p_eval.metrics.matching`,
and the helpers both use (input checks, ties).

Inputs are row-aligned: ``fake_emb`` float [N, D] (the judge's embeddings of generated faces),
``real_emb`` float [N, D] (of each row's own paired real face), ``labels`` [N] (identity; ints or
names) and, for matching, ``face_ids`` [N] (copies of one face image share it). Everything is
computed in float64 on L2-normalised embeddings; randomness comes from local
``np.random.default_rng(seed)`` generators only, and everything drawn (galleries, tuples) is
returned so it can be frozen in a test list (:mod:`w2p_eval.metrics.testlist`) and passed back in.

Ties. A similarity tie is counted **by expectation** (random tie-breaking): a true candidate with r
candidates strictly above it and t others tied with it is in the top K with probability
clip((K - r) / (t + 1), 0, 1); so a hit is 0, 1 or (rarely, with exact ties) a fraction, and
recall and accuracy are unbiased for any tie pattern (one constant embedding for everything scores
exactly K/G and 1/N). Ties are within 1e-9 in cosine.

Retrieval (SF2F ``utils/s2f_evaluator.py``): the gallery of an identity is the mean of the FaceNet
embeddings (unit-norm outputs) of all its real faces; each generated embedding is ranked against the
G gallery means by cosine. Here: each real embedding is L2-normalised, averaged per identity (the
mean re-normalised, which leaves cosines unchanged); a gallery is G identities drawn without
replacement with the seed (all identities, one gallery, when G equals their number); every
generated face of a gallery identity is a query. SF2F has one query per identity per gallery, so a
gallery's recall@K is the mean **over its identities** of each identity's mean hit (identities count
equally however many faces they have), and the reported value is the mean over galleries.

Paired distances (SF2F's L1, L2, cosine): between each generated face's embedding and its own
paired real face's, on L2-normalised embeddings by default (SF2F's FaceNet outputs are unit-norm, so
its figures are on that scale); L1 = sum of absolute differences, L2 = Euclidean norm.

1:N matching (Wen et al. / Nagrani et al.): :mod:`w2p_eval.metrics.matching`, on the same helpers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from w2p_eval.errors import InputError
from w2p_eval.metrics.embedding import l2_normalize

TIE_TOL = 1e-9
DEFAULT_KS = (1, 2, 5, 10)
DEFAULT_GALLERY_SIZE = 100


def as_embeddings(x, name: str, n: int | None = None) -> np.ndarray:
    """``x`` as a finite float64 [N, D] array (N rows when ``n`` is given), else InputError naming ``name``."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise InputError(f"expected {name} as a non-empty [N, D] array, got shape {x.shape}")
    if n is not None and x.shape[0] != n:
        raise InputError(f"expected {name} with one row per item ({n}), got {x.shape[0]} rows")
    if not np.isfinite(x).all():
        raise InputError(f"expected finite {name}, got NaN/inf values")
    return x


def as_labels(labels, n: int | None = None) -> np.ndarray:
    """One identity label per item ([N], N = ``n`` when given), else InputError."""
    lab = np.asarray(labels)
    if lab.ndim != 1 or (n is not None and lab.shape[0] != n):
        raise InputError(f"expected one identity label per item ({n}), got labels of shape {lab.shape}")
    return lab


def expected_hit(sims: np.ndarray, own: np.ndarray, k: int) -> np.ndarray:
    """P(true candidate in the top k) under random tie-breaking. sims [M, C] = the OTHER candidates'
    similarities, own [M] = the true candidate's -> float64 [M] in [0, 1]."""
    above = (sims > own[:, None] + TIE_TOL).sum(axis=1)
    tied = (np.abs(sims - own[:, None]) <= TIE_TOL).sum(axis=1)
    return np.clip((k - above) / (tied + 1.0), 0.0, 1.0)


def n_tied_rows(sims: np.ndarray, own: np.ndarray) -> int:
    """How many rows have another candidate tied (within TIE_TOL) with the true one."""
    return int((np.abs(sims - own[:, None]) <= TIE_TOL).any(axis=1).sum())


# ----------------------------------------------------------------------------------------------------------------
# Retrieval galleries
# ----------------------------------------------------------------------------------------------------------------

def draw_galleries(labels: Sequence | np.ndarray, gallery_size: int | None = None, n_galleries: int = 10,
                   seed: int = 0) -> list[np.ndarray]:
    """Seeded retrieval galleries: each a sorted array of G distinct identity labels (values of ``labels``).

    ``gallery_size`` None -> min(100, identities). With G equal to the number of identities there is
    one possible gallery, so one is returned whatever ``n_galleries`` says.
    """
    ids = np.unique(as_labels(labels))
    n = len(ids)
    g = min(DEFAULT_GALLERY_SIZE, n) if gallery_size is None else int(gallery_size)
    if g > n:
        raise InputError(f"gallery size {g} needs at least {g} test identities, got {n}; "
                         f"use a gallery size between 2 and {n}")
    if g < 2:
        raise InputError(f"expected a gallery size of at least 2 identities (1 makes recall trivially 1), got {g}"
                         + ("" if n >= 2 else f"; the test split has only {n} identity"))
    if n_galleries < 1:
        raise InputError(f"expected at least 1 gallery, got {n_galleries}")
    if g == n:
        return [ids.copy()]
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(ids, size=g, replace=False)) for _ in range(int(n_galleries))]


@dataclass
class GalleryRecall:
    """SF2F-style retrieval result.

    recall {K: float}: mean over galleries of the per-gallery recall@K (identities weighted equally);
    per_gallery {K: float64 [n_galleries]}; chance {K: K/G}; hits {K: float64 [N]}: each item's
    expected hit averaged over the galleries holding its identity (NaN for items in none);
    weights float64 [N] (0 for items in no gallery) such that recall[K] = sum(weights*hits[K]) /
    sum(weights) — pass both to :func:`w2p_eval.metrics.stats.bootstrap_ci` for an interval;
    galleries: the label arrays used; n_tied_queries: query rows with an exact similarity tie.
    """

    recall: dict[int, float]
    per_gallery: dict[int, np.ndarray]
    chance: dict[int, float]
    hits: dict[int, np.ndarray]
    weights: np.ndarray
    gallery_size: int
    galleries: list[np.ndarray] = field(repr=False)
    n_tied_queries: int = 0

    @property
    def ks(self) -> tuple[int, ...]:
        return tuple(self.recall)


def _check_galleries(galleries: Sequence[Sequence], present: set) -> tuple[list[np.ndarray], int]:
    """The galleries as arrays and their one size; each must hold distinct identities of the test set."""
    galleries = [np.asarray(g) for g in galleries]
    sizes = {len(g) for g in galleries}
    if not galleries or len(sizes) != 1:
        raise InputError(f"expected galleries of one size, got sizes {sorted(sizes)}")
    for gal in galleries:
        missing = [x for x in gal.tolist() if x not in present]
        if missing or len(set(gal.tolist())) != len(gal):
            raise InputError(f"expected galleries of distinct identities present in the test set, got "
                             f"{'unknown ' + ', '.join(map(str, missing[:5])) if missing else 'a repeated identity'}")
    return galleries, sizes.pop()


def _cutoffs(ks: Sequence[int], g_size: int) -> list[int]:
    """The asked recall cut-offs that a gallery of ``g_size`` can score (K <= G), sorted."""
    asked = sorted({int(k) for k in ks})
    if not asked or asked[0] < 1:
        raise InputError(f"expected recall cut-offs K >= 1, got {asked}")
    kept = [k for k in asked if k <= g_size]
    if not kept:
        raise InputError(f"expected at least one K <= the gallery size {g_size}, got K in {asked}")
    return kept


def gallery_recall(fake_emb: np.ndarray, real_emb: np.ndarray, labels: Sequence | np.ndarray,
                   gallery_size: int | None = None, ks: Sequence[int] = DEFAULT_KS, n_galleries: int = 10,
                   seed: int = 0, galleries: Sequence[Sequence] | None = None) -> GalleryRecall:
    """Recall@K of the true identity when each generated face is ranked by cosine against galleries of
    per-identity mean real embeddings (SF2F's protocol; see the module docstring).

    fake_emb, real_emb: float [N, D] row-aligned; labels [N]. Galleries are drawn with
    :func:`draw_galleries` (``gallery_size``, ``n_galleries``, ``seed``) unless given (e.g. from a
    frozen test list: sequences of label values, all of one size). Only K <= G are scored; K > G are
    left out of the result (every K > G would be a certain hit).
    """
    fake = l2_normalize(as_embeddings(fake_emb, "generated embeddings"))
    n = len(fake)
    real = l2_normalize(as_embeddings(real_emb, "real embeddings", n))
    if real.shape[1] != fake.shape[1]:
        raise InputError(f"expected embeddings of one judge, got sizes {fake.shape[1]} and {real.shape[1]}")
    lab = as_labels(labels, n)
    if galleries is None:
        galleries = draw_galleries(lab, gallery_size, n_galleries, seed)
    ids, codes = np.unique(lab, return_inverse=True)
    codes = codes.reshape(-1)
    galleries, g_size = _check_galleries(galleries, set(ids.tolist()))
    ks = _cutoffs(ks, g_size)

    counts = np.bincount(codes, minlength=len(ids))
    sums = np.zeros((len(ids), real.shape[1]))
    np.add.at(sums, codes, real)
    means = l2_normalize(sums / counts[:, None])  # per-identity mean of unit-norm embeddings
    col_of = {v: c for c, v in enumerate(ids.tolist())}
    n_gal = len(galleries)
    hit_sum = {k: np.zeros(n) for k in ks}
    weights = np.zeros(n)
    per_gallery = {k: np.zeros(n_gal) for k in ks}
    n_tied = 0
    for gi, gal in enumerate(galleries):
        cols = np.array([col_of[v] for v in gal.tolist()])
        pos = np.full(len(ids), -1)
        pos[cols] = np.arange(len(cols))
        q = np.flatnonzero(pos[codes] >= 0)  # queries: items whose identity is in this gallery
        sims = fake[q] @ means[cols].T  # [nq, G]
        own_pos = pos[codes[q]]
        own = sims[np.arange(len(q)), own_pos]
        others = np.where(np.arange(g_size)[None, :] == own_pos[:, None], -np.inf, sims)
        n_tied += n_tied_rows(others, own)
        w = 1.0 / (n_gal * g_size * counts[codes[q]])  # identities weigh equally inside a gallery
        weights[q] += w
        for k in ks:
            p = expected_hit(others, own, k)
            hit_sum[k][q] += w * p
            per_id = np.bincount(codes[q], weights=p, minlength=len(ids))[cols] / counts[cols]
            per_gallery[k][gi] = float(per_id.mean())  # identities weigh equally
    with np.errstate(invalid="ignore", divide="ignore"):
        hits = {k: np.where(weights > 0, hit_sum[k] / np.where(weights > 0, weights, 1), np.nan) for k in ks}
    return GalleryRecall(recall={k: float(per_gallery[k].mean()) for k in ks}, per_gallery=per_gallery,
                         chance={k: k / g_size for k in ks}, hits=hits, weights=weights, gallery_size=g_size,
                         galleries=galleries, n_tied_queries=n_tied)


# ----------------------------------------------------------------------------------------------------------------
# Paired distances
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class PairedDistances:
    """Per-item distances between each generated face's embedding and its own paired real face's (float64 [N]):
    cosine_similarity (1 = same direction; higher is better), cosine_distance (= 1 - similarity),
    l1 (sum of |differences|) and l2 (Euclidean); ``normalized``: computed on L2-normalised embeddings."""

    cosine_similarity: np.ndarray
    cosine_distance: np.ndarray
    l1: np.ndarray
    l2: np.ndarray
    normalized: bool

    def means(self) -> dict[str, float]:
        """{"cosine_similarity", "cosine_distance", "l1", "l2"}: means over pairs."""
        return {k: float(getattr(self, k).mean()) for k in ("cosine_similarity", "cosine_distance", "l1", "l2")}


def paired_distances(fake_emb: np.ndarray, real_emb: np.ndarray, normalize: bool = True) -> PairedDistances:
    """Cosine, L1 and L2 between row i of ``fake_emb`` and row i of ``real_emb`` (float [N, D] each)."""
    fake = as_embeddings(fake_emb, "generated embeddings")
    real = as_embeddings(real_emb, "real embeddings", len(fake))
    if real.shape[1] != fake.shape[1]:
        raise InputError(f"expected embeddings of one judge, got sizes {fake.shape[1]} and {real.shape[1]}")
    cos = np.clip((l2_normalize(fake) * l2_normalize(real)).sum(axis=1), -1.0, 1.0)
    if normalize:
        fake, real = l2_normalize(fake), l2_normalize(real)
    diff = fake - real
    return PairedDistances(cosine_similarity=cos, cosine_distance=1.0 - cos, l1=np.abs(diff).sum(axis=1),
                           l2=np.sqrt((diff**2).sum(axis=1)), normalized=bool(normalize))
