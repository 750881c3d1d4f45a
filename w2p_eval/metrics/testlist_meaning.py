"""What a loaded test list means, checked against the dataset it is applied to (issue 31).

A test list's ``id`` is a content hash anyone can recompute, so an edited list can carry a matching id. The
checks here read the tuples for what they claim to be, against the split's manifest rows:

- every 1:N tuple is ``[probe, true, impostor...]``: the true candidate is another pair of the probe's speaker
  showing a *different face* (another ``face_id``); the impostors are ``N - 1`` distinct identities, none the
  probe's;
- a probe appears once per N (no duplicated or repeated tuples);
- same-gender tuples: every impostor has the probe's frozen gender (``same_gender.genders``);
- galleries hold distinct identities; every identity the list names (galleries, frozen genders) is one of the
  dataset's.

:func:`meaning_problem` returns the first problem as one line (or None); ``apply_testlist`` raises it as an
InputError before anything is scored.
"""

from __future__ import annotations

from typing import Any, Sequence

import pandas as pd


def _tuple_problem(row: list, ident: dict, face: dict, gender: dict | None) -> str | None:
    probe, true, imps = row[0], row[1], row[2:]
    if ident[true] != ident[probe]:
        return f"a true candidate {true!r} of another speaker than its probe {probe!r}"
    if true == probe or face[true] == face[probe]:
        return f"the probe's own face as the true candidate (probe {probe!r}, true {true!r})"
    imp_ids = [ident[p] for p in imps]
    if ident[probe] in imp_ids:
        return f"an impostor of the probe's own speaker (probe {probe!r})"
    if len(set(imp_ids)) != len(imp_ids):
        return f"two impostors of one identity (probe {probe!r})"
    if gender is not None:
        want = gender.get(ident[probe])
        other = [p for p in imps if gender.get(ident[p]) != want or want is None]
        if other:
            return (f"a same-gender impostor {other[0]!r} whose frozen gender is not the probe's "
                    f"({gender.get(ident[other[0]])!r} vs {want!r}, probe {probe!r})")
    return None


def _block_problem(what: str, tuples: dict[int, list], ident: dict, face: dict,
                   gender: dict | None) -> str | None:
    for n, rows in sorted(tuples.items()):
        probes = [r[0] for r in rows]
        if len(set(probes)) != len(probes):
            dup = next(p for p in probes if probes.count(p) > 1)
            return f"{what} 1:{n}: probe {dup!r} in more than one tuple (duplicated tuples)"
        for row in rows:
            why = _tuple_problem(row, ident, face, gender)
            if why:
                return f"{what} 1:{n}: {why}"
    return None


def meaning_problem(tl: Any, rows: pd.DataFrame, identities: Sequence[str]) -> str | None:
    """Why test list ``tl`` (a loaded :class:`~w2p_eval.metrics.testlist.TestList`) does not mean what
    ``w2p-eval testlist`` writes, for the split's manifest ``rows`` (pair_id, identity, face_id columns) and
    the dataset's ``identities``; None when it does."""
    known = set(identities)
    for k, gal in enumerate(tl.galleries):
        if len(set(gal)) != len(gal):
            return f"gallery {k} names an identity twice"
    genders = tl.genders or {}
    unknown = sorted(set(genders) - known)
    if unknown:
        return f"frozen genders of identities the dataset does not have ({', '.join(map(repr, unknown[:3]))})"
    ident = dict(zip(rows["pair_id"].astype(str), rows["identity"].astype(str)))
    face = dict(zip(rows["pair_id"].astype(str), rows["face_id"].astype(str)))
    why = _block_problem("matching", tl.matching, ident, face, None)
    if why is None and tl.same_gender:
        missing = sorted({ident[p] for rs in tl.same_gender.values() for r in rs for p in r} - set(genders))
        if missing:
            return f"same-gender tuples of identities without a frozen gender ({', '.join(map(repr, missing[:3]))})"
        why = _block_problem("same-gender", tl.same_gender, ident, face, genders)
    return why
