"""The field's evaluation protocols on plain embedding arrays (numpy only): SF2F-style gallery retrieval,
paired embedding distances and Wen et al. / Nagrani et al. style 1:N matching.

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

Matching (Wen et al. 2019, Nagrani et al. 2018): for each generated face (the probe), candidates
= one real face of the true speaker + N-1 real faces of N-1 distinct other test identities
(impostors, drawn with the seed); correct when the true speaker's face has the highest cosine.
The true speaker's candidate is a **different face** (another face_id) than the probe's own paired
real face: the question is "is this the same person", not "is this the same picture", and only
then is the real-vs-real ceiling (the probe replaced by its own paired real face, same candidates)
informative — with the paired face itself as candidate it would be 100 % by construction. Probes
whose identity has only one face in the test set are left out (reported as ``excluded``).

Same-gender matching (Nagrani et al. 2018; Learnable PINs): the impostors are drawn only from test identities
of the probe's gender (``genders``), so a generator that gets only gender right scores chance. Probes whose
gender has fewer than N test identities are left out (``excluded``); with one gender only the constraint is
void, and :func:`same_gender_problem` says so (callers skip the setting with that reason).
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


def _emb(x, name: str, n: int | None = None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise InputError(f"expected {name} as a non-empty [N, D] array, got shape {x.shape}")
    if n is not None and x.shape[0] != n:
        raise InputError(f"expected {name} with one row per item ({n}), got {x.shape[0]} rows")
    if not np.isfinite(x).all():
        raise InputError(f"expected finite {name}, got NaN/inf values")
    return x


def _labels(labels, n: int | None = None) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.ndim != 1 or (n is not None and lab.shape[0] != n):
        raise InputError(f"expected one identity label per item ({n}), got labels of shape {lab.shape}")
    return lab


def _expected_hit(sims: np.ndarray, own: np.ndarray, k: int) -> np.ndarray:
    """P(true candidate in the top k) under random tie-breaking. sims [M, C] = the OTHER candidates'
    similarities, own [M] = the true candidate's -> float64 [M] in [0, 1]."""
    above = (sims > own[:, None] + TIE_TOL).sum(axis=1)
    tied = (np.abs(sims - own[:, None]) <= TIE_TOL).sum(axis=1)
    return np.clip((k - above) / (tied + 1.0), 0.0, 1.0)


def _n_tied(sims: np.ndarray, own: np.ndarray) -> int:
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
    ids = np.unique(_labels(labels))
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
    fake = l2_normalize(_emb(fake_emb, "generated embeddings"))
    n = len(fake)
    real = l2_normalize(_emb(real_emb, "real embeddings", n))
    if real.shape[1] != fake.shape[1]:
        raise InputError(f"expected embeddings of one judge, got sizes {fake.shape[1]} and {real.shape[1]}")
    lab = _labels(labels, n)
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
        n_tied += _n_tied(others, own)
        w = 1.0 / (n_gal * g_size * counts[codes[q]])  # identities weigh equally inside a gallery
        weights[q] += w
        for k in ks:
            p = _expected_hit(others, own, k)
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
    fake = _emb(fake_emb, "generated embeddings")
    real = _emb(real_emb, "real embeddings", len(fake))
    if real.shape[1] != fake.shape[1]:
        raise InputError(f"expected embeddings of one judge, got sizes {fake.shape[1]} and {real.shape[1]}")
    cos = np.clip((l2_normalize(fake) * l2_normalize(real)).sum(axis=1), -1.0, 1.0)
    if normalize:
        fake, real = l2_normalize(fake), l2_normalize(real)
    diff = fake - real
    return PairedDistances(cosine_similarity=cos, cosine_distance=1.0 - cos, l1=np.abs(diff).sum(axis=1),
                           l2=np.sqrt((diff**2).sum(axis=1)), normalized=bool(normalize))


# ----------------------------------------------------------------------------------------------------------------
# Matching
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class MatchingTuples:
    """Drawn 1:N matching tuples: ``tuples`` int64 [M, n_way + 1] of row indices — column 0 the probe
    (a generated face's row; its paired real face is the ceiling's probe), column 1 the true speaker's
    other real face, columns 2.. the impostors' real faces; ``excluded`` int64 [E]: probe rows left out
    (their identity has a single face in the test set)."""

    tuples: np.ndarray
    n_way: int
    seed: int
    excluded: np.ndarray


def _check_n_way(n_way: int, n_ids: int) -> None:
    if n_way < 2:
        raise InputError(f"expected N >= 2 for 1:N matching, got {n_way}")
    if n_way > n_ids:
        raise InputError(f"1:{n_way} matching needs at least {n_way} test identities (the true speaker + "
                         f"{n_way - 1} impostors), got {n_ids}; possible: 1:2 to 1:{n_ids}" if n_ids >= 2 else
                         f"1:{n_way} matching needs at least {n_way} test identities, got {n_ids}; "
                         f"matching is not possible on this split")


def _identity_genders(codes: np.ndarray, n_ids: int, genders, n: int) -> np.ndarray:
    """Row-aligned genders [N] -> one gender per identity code (str [n_ids]); an identity with two is refused."""
    gen = np.asarray(genders).astype(str)
    if gen.shape != (n,):
        raise InputError(f"expected one gender per item ({n}), got genders of shape {gen.shape}")
    out = np.empty(n_ids, dtype=object)
    for c in range(n_ids):
        vals = set(gen[codes == c].tolist())
        if len(vals) != 1:
            raise InputError(f"expected one gender per identity, got {sorted(vals)} for one identity")
        out[c] = vals.pop()
    return out.astype(str)


def same_gender_problem(labels: Sequence | np.ndarray, genders: Sequence | np.ndarray, n_way: int) -> str | None:
    """Why same-gender 1:``n_way`` matching cannot be scored on these items (None when it can): one gender
    only (the constraint is void: it equals unconstrained matching), or no gender with ``n_way`` identities."""
    lab = _labels(labels)
    ids, codes = np.unique(lab, return_inverse=True)
    per_id = _identity_genders(codes.reshape(-1), len(ids), genders, len(lab))
    counts = {g: int((per_id == g).sum()) for g in sorted(set(per_id.tolist()))}
    have = ", ".join(f"{g}: {k}" for g, k in counts.items())
    if len(counts) < 2:
        return (f"every test identity has gender {next(iter(counts))} ({have} identities): same-gender matching "
                f"would equal unconstrained matching")
    if max(counts.values()) < int(n_way):
        return (f"same-gender 1:{n_way} matching needs {n_way} test identities of one gender, got {have}")
    return None


def draw_matching_tuples(labels: Sequence | np.ndarray, face_ids: Sequence | np.ndarray, n_way: int,
                         seed: int = 0, genders: Sequence | np.ndarray | None = None) -> MatchingTuples:
    """Draw one 1:``n_way`` tuple per item (the probe), reproducibly from ``seed``.

    labels [N], face_ids [N] (row-aligned with the evaluated set). The true candidate is a row of
    another face_id of the probe's identity; impostors are ``n_way - 1`` distinct other identities,
    each represented by a row of one of its faces; faces are drawn uniformly among the identity's
    distinct face_ids, then a row among that face's copies (copies have the same pixels).

    ``genders`` [N] (row-aligned, one value per identity): impostors only of the probe's gender; probes whose
    gender has fewer than ``n_way`` identities are excluded. Without it the draws are exactly as before.
    """
    lab = _labels(labels)
    n = len(lab)
    fid = np.asarray(face_ids).astype(str)
    if fid.shape != (n,):
        raise InputError(f"expected one face_id per item ({n}), got face_ids of shape {fid.shape}")
    ids, codes = np.unique(lab, return_inverse=True)
    codes = codes.reshape(-1)
    _check_n_way(int(n_way), len(ids))
    gender_of = None if genders is None else _identity_genders(codes, len(ids), genders, n)
    # identity -> {face_id: rows}
    faces: list[dict[str, np.ndarray]] = [{} for _ in ids]
    for c in range(len(ids)):
        rows = np.flatnonzero(codes == c)
        for f in np.unique(fid[rows]):
            faces[c][str(f)] = rows[fid[rows] == f]
    if len({f for f, _ in set(zip(fid.tolist(), codes.tolist()))}) != len(set(zip(fid.tolist(), codes.tolist()))):
        raise InputError("expected every face_id to belong to one identity, got a face_id shared by two identities")
    face_names = [sorted(f) for f in faces]
    rng = np.random.default_rng(seed)

    def pick(c: int, exclude: str | None = None) -> int:
        names = [f for f in face_names[c] if f != exclude]
        rows = faces[c][names[int(rng.integers(len(names)))]]
        return int(rows[int(rng.integers(len(rows)))])

    out, excluded = [], []
    for i in range(n):
        c = int(codes[i])
        others = np.delete(np.arange(len(ids)), c)
        if gender_of is not None:
            others = others[gender_of[others] == gender_of[c]]
        if len(face_names[c]) < 2 or len(others) < int(n_way) - 1:
            excluded.append(i)
            continue
        true = pick(c, exclude=str(fid[i]))
        imps = [pick(int(d)) for d in rng.choice(others, size=int(n_way) - 1, replace=False)]
        out.append([i, true, *imps])
    if not out:
        if gender_of is not None:
            raise InputError(f"same-gender 1:{n_way} matching found no probe with 2 distinct faces and "
                             f"{int(n_way) - 1} impostors of its gender in the test set")
        raise InputError(f"matching needs identities with at least 2 distinct faces (face_id) in the test set, got "
                         f"{max(len(f) for f in face_names)} face per identity at most")
    return MatchingTuples(tuples=np.asarray(out, dtype=np.int64).reshape(-1, int(n_way) + 1), n_way=int(n_way),
                          seed=int(seed), excluded=np.asarray(excluded, dtype=np.int64))


def tuples_to_pair_ids(tuples: np.ndarray, pair_ids: Sequence[str]) -> list[list[str]]:
    """Row-index tuples [M, n_way + 1] -> lists of pair ids (what a frozen test list stores)."""
    pids = list(pair_ids)
    return [[pids[int(j)] for j in row] for row in np.asarray(tuples, dtype=np.int64)]


def tuples_from_pair_ids(rows: Sequence[Sequence[str]], pair_ids: Sequence[str],
                         drop_missing: bool = False) -> tuple[np.ndarray, int]:
    """Pair-id tuples (from a test list) -> (int64 [M, n_way + 1] row indices into ``pair_ids``, n_dropped).

    A tuple naming a pair that is not in ``pair_ids`` raises InputError, or with ``drop_missing`` is
    dropped and counted (e.g. faces the judge could not score).
    """
    index = {p: i for i, p in enumerate(pair_ids)}
    rows = [list(r) for r in rows]
    widths = {len(r) for r in rows}
    if len(widths) > 1 or (widths and widths.pop() < 3):
        raise InputError("expected matching tuples of one length >= 3 (probe, true face, impostors), got "
                         f"lengths {sorted({len(r) for r in rows})}")
    out, dropped = [], 0
    for r in rows:
        missing = [p for p in r if p not in index]
        if missing:
            if not drop_missing:
                raise InputError(f"expected the test list's pairs in the evaluated set, got unknown pair id "
                                 f"{missing[0]!r} (a test list made for another split or dataset?)")
            dropped += 1
            continue
        out.append([index[p] for p in r])
    width = len(rows[0]) if rows else 3
    return np.asarray(out, dtype=np.int64).reshape(-1, width), dropped


@dataclass
class MatchingResult:
    """1:N matching: ``accuracy`` of generated probes, ``ceiling`` (the paired real face as probe, same
    candidates), ``chance`` = 1/N; per tuple float64 [M]: ``correct`` and ``ceiling_correct`` (1, 0, or
    1/(1+t) with t exact ties at the top); ``probes`` int64 [M] (probe rows, for grouping);
    ``n_tied``: tuples with a tie involving the true face (use ``correct == 1`` for McNemar)."""

    n_way: int
    accuracy: float
    ceiling: float
    chance: float
    correct: np.ndarray
    ceiling_correct: np.ndarray
    probes: np.ndarray
    n_tied: int


def matching_accuracy(fake_emb: np.ndarray, real_emb: np.ndarray, tuples: np.ndarray | MatchingTuples
                      ) -> MatchingResult:
    """Score 1:N matching tuples (rows from :func:`draw_matching_tuples` or a test list) by cosine.

    fake_emb, real_emb: float [N, D] row-aligned; tuples int64 [M, N_way + 1] of row indices.
    """
    t = tuples.tuples if isinstance(tuples, MatchingTuples) else np.asarray(tuples, dtype=np.int64)
    fake = l2_normalize(_emb(fake_emb, "generated embeddings"))
    real = l2_normalize(_emb(real_emb, "real embeddings", len(fake)))
    if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] < 3:
        raise InputError(f"expected matching tuples as a non-empty [M, N + 1] index array (N >= 2), got shape {t.shape}")
    if t.min() < 0 or t.max() >= len(fake):
        raise InputError(f"expected tuple indices in 0..{len(fake) - 1}, got {t.min()}..{t.max()}")
    cands = real[t[:, 1:]]  # [M, N, D]

    def score(probe: np.ndarray) -> tuple[np.ndarray, int]:
        sims = np.einsum("md,mnd->mn", probe, cands)
        return _expected_hit(sims[:, 1:], sims[:, 0], 1), _n_tied(sims[:, 1:], sims[:, 0])

    correct, tied = score(fake[t[:, 0]])
    ceiling, _ = score(real[t[:, 0]])
    n_way = t.shape[1] - 1
    return MatchingResult(n_way=n_way, accuracy=float(correct.mean()), ceiling=float(ceiling.mean()),
                          chance=1.0 / n_way, correct=correct, ceiling_correct=ceiling, probes=t[:, 0].copy(),
                          n_tied=tied)
