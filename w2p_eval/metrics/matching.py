"""1:N matching on plain embedding arrays (numpy only); the shared conventions (row-aligned inputs, float64 on
L2-normalised embeddings, local seeded generators, ties counted by expectation): :mod:`w2p_eval.metrics.protocols`.

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

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from w2p_eval.errors import InputError
from w2p_eval.metrics.embedding import l2_normalize
from w2p_eval.metrics.protocols import as_embeddings, as_labels, expected_hit, n_tied_rows


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


def check_n_way(n_way: int, n_ids: int) -> None:
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
    lab = as_labels(labels)
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
    lab = as_labels(labels)
    n = len(lab)
    fid = np.asarray(face_ids).astype(str)
    if fid.shape != (n,):
        raise InputError(f"expected one face_id per item ({n}), got face_ids of shape {fid.shape}")
    ids, codes = np.unique(lab, return_inverse=True)
    codes = codes.reshape(-1)
    check_n_way(int(n_way), len(ids))
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
    fake = l2_normalize(as_embeddings(fake_emb, "generated embeddings"))
    real = l2_normalize(as_embeddings(real_emb, "real embeddings", len(fake)))
    if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] < 3:
        raise InputError(f"expected matching tuples as a non-empty [M, N + 1] index array (N >= 2), got shape {t.shape}")
    if t.min() < 0 or t.max() >= len(fake):
        raise InputError(f"expected tuple indices in 0..{len(fake) - 1}, got {t.min()}..{t.max()}")
    cands = real[t[:, 1:]]  # [M, N, D]

    def score(probe: np.ndarray) -> tuple[np.ndarray, int]:
        sims = np.einsum("md,mnd->mn", probe, cands)
        return expected_hit(sims[:, 1:], sims[:, 0], 1), n_tied_rows(sims[:, 1:], sims[:, 0])

    correct, tied = score(fake[t[:, 0]])
    ceiling, _ = score(real[t[:, 0]])
    n_way = t.shape[1] - 1
    return MatchingResult(n_way=n_way, accuracy=float(correct.mean()), ceiling=float(ceiling.mean()),
                          chance=1.0 / n_way, correct=correct, ceiling_correct=ceiling, probes=t[:, 0].copy(),
                          n_tied=tied)
