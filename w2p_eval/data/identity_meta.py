"""Per-identity metadata (gender, age, anything else) of a dataset: read from a CSV by `prepare --identity-meta`,
kept in ``dataset.json`` under ``identity_meta``, read back by :func:`identity_meta` / :func:`identity_genders`.

CSV: a header with ``identity`` and at least one attribute column. Column names are read case-insensitively
(``Gender``, ``AGE``, ``Identity`` are ``gender``, ``age``, ``identity``; two names that differ only in case are
refused). ``gender`` must be one of the spellings in ``GENDER_SPELLINGS`` in any case (``f``, ``female``,
``w``, ``woman``; ``m``, ``male``, ``man``), written as ``f`` / ``m``; ``age`` a plain decimal number of years
(digits with an optional decimal point: no sign, exponent, underscore, ``inf`` or ``nan``) in [0, 130]; any
other column (e.g. ``ethnicity``) is kept as text. A column ``<attr>_source`` says where ``<attr>`` came from
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
import os
import re
import stat
from pathlib import Path

from w2p_eval.errors import InputError

GENDERS = ("f", "m")
GENDER_SPELLINGS = {"f": "f", "female": "f", "w": "f", "woman": "f", "m": "m", "male": "m", "man": "m"}
AGE_RANGE = (0.0, 130.0)
_AGE = re.compile(r"^(\d+(\.\d*)?|\.\d+)$")  # plain decimal: no sign, exponent, underscore, inf, nan
MAX_CELL = 200
KEY = "identity_meta"


def _gender(text: str, where: str) -> str:
    g = GENDER_SPELLINGS.get(text.strip().lower())
    if g is None:
        raise InputError(f"expected gender f or m at {where} (spelled {', '.join(GENDER_SPELLINGS)}; any case), "
                         f"got {text[:40]!r}")
    return g


def _age(text: str, where: str) -> float:
    lo, hi = AGE_RANGE
    if not _AGE.match(text.strip()):
        raise InputError(f"expected age as a number of years at {where} (plain decimal digits, e.g. 35 or 35.5, "
                         f"in [{lo:g}, {hi:g}]), got {text[:40]!r}")
    age = float(text)
    if not lo <= age <= hi:
        raise InputError(f"expected age in [{lo:g}, {hi:g}] years at {where}, got {text[:40]!r}")
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


def _not_a_file(path: Path) -> str | None:
    """What ``path`` is when it is not a regular file ("a missing path", "a directory", "a FIFO", ...), or None.
    Read with stat only: opening a FIFO would wait for a writer."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "a missing path"
    except OSError as exc:
        return f"a path that cannot be read ({exc.strerror})"
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def read_identity_meta_csv(path: str | os.PathLike) -> dict:
    """Read and check a metadata CSV (values only; identities are checked by :func:`check_identities`).

    -> ``{"attributes": {attr: {"source": str}}, "identities": {name: {attr: value}}}`` (empty cells left out).
    """
    path = Path(path)
    kind = _not_a_file(path)
    if kind:
        raise InputError(f"expected --identity-meta to be a CSV file (columns identity, gender, age, ...), "
                         f"got {kind} ({path})")
    try:
        text = path.read_text(encoding="utf-8-sig")
        rows = list(csv.reader(io.StringIO(text)))
    except (UnicodeDecodeError, csv.Error, OSError) as exc:
        raise InputError(f"expected a UTF-8 CSV in {path}, got an unreadable file ({exc})") from None
    if not rows:
        raise InputError(f"expected a header with identity and attribute columns in {path}, got an empty file")
    header = [h.strip().lower() for h in rows[0]]
    if "identity" not in header:
        raise InputError(f"expected a column 'identity' in {path}, got columns {[h.strip() for h in rows[0]]}")
    if len(set(header)) != len(header) or "" in header:
        raise InputError(f"expected distinct, non-empty column names (case does not count) in {path}, "
                         f"got {[h.strip() for h in rows[0]]}")
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
    if meta is None:  # absent (what prepare writes without --identity-meta), or null
        return None
    shape = (f"{KEY} as `prepare --identity-meta` writes it ({{\"attributes\": {{attr: {{\"source\": text}}}}, "
             f"\"identities\": {{name: {{attr: value}}}}}}) in {where}")
    if not isinstance(meta, dict) or set(meta) != {"attributes", "identities"} or \
            not isinstance(meta["identities"], dict) or not isinstance(meta["attributes"], dict) or \
            not meta["attributes"]:
        raise InputError(f"expected {shape}, got {str(meta)[:60]!r}")
    folded = [a.strip().lower() for a in meta["attributes"]]
    for a, desc in meta["attributes"].items():
        if not (isinstance(desc, dict) and isinstance(desc.get("source"), str) and set(desc) == {"source"}) or \
                not a.strip() or (a.lower() in ("identity", "gender", "age") and a != a.lower()) or \
                folded.count(a.strip().lower()) > 1:
            raise InputError(f"expected {shape}, got attribute {str(a)[:40]!r}: {str(desc)[:40]!r}")
    for name, values in meta["identities"].items():
        if not isinstance(values, dict):
            raise InputError(f"expected {KEY} of {name!r} to be a mapping in {where}, got {type(values).__name__}")
        for a, v in values.items():
            if a not in meta["attributes"]:
                raise InputError(f"expected {KEY} of {name!r} to use the declared attributes "
                                 f"({', '.join(meta['attributes'])}) in {where}, got {str(a)[:40]!r}")
            if isinstance(v, bool) or not isinstance(v, (str, int, float)) or \
                    (a == "age" and not isinstance(v, (int, float))):
                raise InputError(f"expected {KEY} {a} of {name!r} to be {'a number' if a == 'age' else 'text'} "
                                 f"in {where}, got {str(v)[:40]!r}")
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
