"""Per-identity metadata (gender, age, anything else) of a dataset: read from a CSV by `prepare --identity-meta`,
kept in ``dataset.json`` under ``identity_meta``, read back by :func:`identity_meta` / :func:`identity_genders`.

CSV: a header with ``identity`` and at least one attribute column; ``gender`` must be ``f`` or ``m`` (``female`` /
``male`` and any case are accepted and written as ``f`` / ``m``), ``age`` a finite number of years in [0, 130];
any other column (e.g. ``ethnicity``) is kept as text. A column ``<attr>_source`` says where ``<attr>`` came from
(default: the CSV's file name). An empty cell means "unknown" for that identity (counted, see
:func:`coverage_line`).

Rules (bad input is one :class:`~w2p_eval.errors.InputError` line, exit 2, nothing written): every identity of the
dataset needs a row (metadata for only some identities is refused, naming the missing ones), a row for an identity
the dataset does not have is refused, an identity listed twice is refused.

``dataset.json``::

    "identity_meta": {"attributes": {"gender": {"source": "..."}, "age": {"source": "..."}},
                      "identities": {"<name>": {"gender": "m", "age": 35.0}, ...}}
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

from w2p_eval.errors import InputError

GENDERS = ("f", "m")
_GENDER_WORDS = {"f": "f", "m": "m", "female": "f", "male": "m"}
MAX_CELL = 200
KEY = "identity_meta"


def _gender(text: str, where: str) -> str:
    g = _GENDER_WORDS.get(text.strip().lower())
    if g is None:
        raise InputError(f"expected gender f or m at {where}, got {text[:40]!r}")
    return g


def _age(text: str, where: str) -> float:
    try:
        age = float(text)
    except ValueError:
        raise InputError(f"expected age as a number of years at {where}, got {text[:40]!r}") from None
    if not math.isfinite(age) or not 0 <= age <= 130:
        raise InputError(f"expected age in [0, 130] years at {where}, got {text[:40]!r}")
    return age


def parse_value(attr: str, text: str, where: str):
    """One CSV cell -> its stored value (``gender`` f/m, ``age`` float, else text); None for an empty cell."""
    text = text.strip()
    if not text:
        return None
    if len(text) > MAX_CELL:
        raise InputError(f"expected {attr} of at most {MAX_CELL} characters at {where}, got {len(text)}")
    if attr == "gender":
        return _gender(text, where)
    if attr == "age":
        return _age(text, where)
    return text


def read_identity_meta_csv(path: str | os.PathLike) -> dict:
    """Read and check a metadata CSV (values only; identities are checked by :func:`check_identities`).

    -> ``{"attributes": {attr: {"source": str}}, "identities": {name: {attr: value}}}`` (empty cells left out).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"expected --identity-meta to be a CSV file (columns identity, gender, age, ...), "
                         f"got a missing path ({path})")
    try:
        text = path.read_text(encoding="utf-8-sig")
        rows = list(csv.reader(io.StringIO(text)))
    except (UnicodeDecodeError, csv.Error, OSError) as exc:
        raise InputError(f"expected a UTF-8 CSV in {path}, got an unreadable file ({exc})") from None
    if not rows:
        raise InputError(f"expected a header with identity and attribute columns in {path}, got an empty file")
    header = [h.strip() for h in rows[0]]
    if "identity" not in header:
        raise InputError(f"expected a column 'identity' in {path}, got columns {header}")
    if len(set(header)) != len(header) or "" in header:
        raise InputError(f"expected distinct, non-empty column names in {path}, got {header}")
    attrs = [h for h in header if h != "identity" and not h.endswith("_source")]
    if not attrs:
        raise InputError(f"expected at least one attribute column (gender, age, ...) besides identity in {path}, "
                         f"got {header}")
    orphan = [h for h in header if h.endswith("_source") and h[:-len("_source")] not in attrs]
    if orphan:
        raise InputError(f"expected each <attr>_source column beside its attribute column in {path}, got {orphan}")
    out: dict[str, dict] = {}
    sources: dict[str, set] = {a: set() for a in attrs}
    for i, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise InputError(f"expected {len(header)} cells in row {i} of {path}, got {len(row)}")
        cells = dict(zip(header, row))
        name = cells["identity"].strip()
        if not name:
            raise InputError(f"expected an identity name in row {i} of {path}, got an empty cell")
        if name in out:
            raise InputError(f"expected each identity once in {path}, got {name!r} again in row {i}")
        values = {}
        for a in attrs:
            v = parse_value(a, cells[a], f"row {i} of {path}")
            if v is not None:
                values[a] = v
                src = cells.get(f"{a}_source", "").strip()
                sources[a].add(src[:MAX_CELL] if src else path.name)
        out[name] = values
    if not out:
        raise InputError(f"expected at least one identity row in {path}, got only the header")
    return {"attributes": {a: {"source": "; ".join(sorted(s)) or path.name} for a, s in sources.items()},
            "identities": out}


def check_identities(meta: dict, identities, what: str = "--identity-meta") -> dict:
    """Refuse metadata naming identities the dataset lacks, or lacking some of the dataset's identities."""
    have = set(identities)
    named = set(meta["identities"])
    unknown = sorted(named - have)
    if unknown:
        raise InputError(f"expected {what} to name identities of the dataset, got unknown "
                         f"{', '.join(map(repr, unknown[:5]))}{' ...' if len(unknown) > 5 else ''} "
                         f"(dataset identities: {', '.join(sorted(have)[:8])}{' ...' if len(have) > 8 else ''})")
    missing = sorted(have - named)
    if missing:
        raise InputError(f"expected a row for every identity in {what} (metadata for only some identities is "
                         f"refused; leave a cell empty for unknown), got none for "
                         f"{', '.join(map(repr, missing[:5]))}{' ...' if len(missing) > 5 else ''}")
    return meta


def coverage_line(meta: dict) -> str:
    """``identity meta: gender 10/10 (f 4, m 6), age 10/10`` — how many identities have each attribute."""
    n = len(meta["identities"])
    parts = []
    for a in meta["attributes"]:
        vals = [v[a] for v in meta["identities"].values() if a in v]
        part = f"{a} {len(vals)}/{n}"
        if a == "gender":
            part += f" (f {vals.count('f')}, m {vals.count('m')})"
        parts.append(part)
    return "identity meta: " + ", ".join(parts)


def identity_meta(info: dict, where: str = "dataset.json") -> dict | None:
    """The checked ``identity_meta`` of a loaded dataset.json (``manifest.load_info``), or None when absent.

    A hand-edited entry with bad values is an InputError naming ``where``.
    """
    meta = info.get(KEY)
    if meta is None:
        return None
    if not isinstance(meta, dict) or not isinstance(meta.get("identities"), dict) or \
            not isinstance(meta.get("attributes"), dict):
        raise InputError(f"expected {KEY} with 'attributes' and 'identities' mappings in {where}, got "
                         f"{type(meta).__name__}")
    for name, values in meta["identities"].items():
        if not isinstance(values, dict):
            raise InputError(f"expected {KEY} of {name!r} to be a mapping in {where}, got {type(values).__name__}")
        for a, v in values.items():
            parse_value(a, str(v), f"{KEY} of {name!r} in {where}")
    return check_identities(meta, info.get("identities", []), f"{KEY} in {where}")


def identity_genders(info: dict, where: str = "dataset.json") -> tuple[dict[str, str], str] | None:
    """({identity: "f"|"m"} for identities whose gender is labelled, its source), or None without gender labels."""
    meta = identity_meta(info, where)
    if meta is None or "gender" not in meta["attributes"]:
        return None
    genders = {n: parse_value("gender", str(v["gender"]), where) for n, v in meta["identities"].items()
               if "gender" in v}  # a hand-edited "male"/"Female" is read as the f/m it was checked to mean
    genders = {n: g for n, g in genders.items() if g is not None}
    if not genders:
        return None
    return genders, str(meta["attributes"]["gender"].get("source", ""))
