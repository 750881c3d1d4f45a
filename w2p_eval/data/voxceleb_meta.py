"""VoxCeleb's published identity metadata: reading the meta files, joining their ids, the field's splits.

Meta files (``prepare voxceleb --meta``; the layout is recognised from the header):

- ``vox1``: ``vox1_meta.csv``, tab-separated, columns ``VoxCeleb1 ID``, ``VGGFace1 ID`` (the VGGFace1 name, e.g.
  ``A.J._Buckley``), ``Gender`` (m/f), ``Nationality``, ``Set`` (dev/test);
- ``vox2``: ``full_vox2_meta.csv`` (HQ-VoxCeleb), comma-separated, columns ``Class_ID``, ``Name``, ``Sample_Num``,
  ``Flag``, ``Gender_x``, ``VoxCeleb2ID``, ``VGGFace2ID``, ``Gender_y``, ``Set``.

An identity of the dataset is the person's name (the VGGFace1 name / HQ-VoxCeleb ``Name``); the meta files join
it to its VoxCeleb id (the audio folders), its VGGFace1 name and its VGGFace2 id (the face folders). A name that
a second meta file lists again under another id is kept as ``<name> (<VoxCeleb id>)``.

Splits (:func:`split_of`, facts from the papers' code, ../shared/docs/field-protocols.md):

- ``official``: the ``Set`` column (dev -> train, test -> test);
- ``wen`` (Wen et al. 2019): the name's first letter: F-Z train, A-E test (their val and test are the same
  A-E identities); a name that starts with no letter A-Z is outside the rule;
- ``sf2f`` (SF2F ``scripts/create_split_json.py``): row i (0-based, header excluded) of each meta file in its
  order: test when i mod 10 = 8, val when i mod 10 = 9, else train. The row order defines the split, so a meta
  file whose sha256 is not the published one is refused (:func:`check_published`) unless allowed.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from w2p_eval.errors import InputError
from w2p_eval.utils import sha256_file

LAYOUTS = {
    "vox1": ("\t", ("VoxCeleb1 ID", "VGGFace1 ID", "Gender", "Nationality", "Set")),
    "vox2": (",", ("Class_ID", "Name", "Sample_Num", "Flag", "Gender_x", "VoxCeleb2ID", "VGGFace2ID", "Gender_y",
                   "Set")),
}
PUBLISHED_SHA256 = {  # ../shared/data/voxceleb_meta/README.md
    "vox1": "48bcb2f0024cae5d4ccf37e4480f686afb1161c5793a2a9a4c670c0e8dab0892",
    "vox2": "22dd380e2d71a580cdf15af58f59bb315849e25f8f681483ce564fa2c909bd2a",
}
SPLIT_RULES = ("official", "wen", "sf2f")
RULE_TEXT = {
    "official": "VoxCeleb's official split: the Set column of the meta files (dev -> train, test -> test)",
    "wen": "Wen et al. 2019: names starting with F-Z train, A-E test (their val = test)",
    "sf2f": "SF2F create_split_json.py: row i of each meta file in its order, test when i mod 10 = 8, val when 9, "
            "else train",
}
SET_SPLIT = {"dev": "train", "test": "test"}


@dataclass(frozen=True)
class MetaRow:
    """One identity of one meta file. ``row``: its 0-based data row (the order SF2F's split walks)."""

    identity: str
    vox_id: str
    vggface1: str | None
    vggface2: str | None
    gender: str | None
    nationality: str | None
    set: str
    meta: str  # the meta file's name
    row: int


@dataclass
class MetaFile:
    """One parsed meta file: its layout, sha256, rows (in file order) and the rows it could not use."""

    path: Path
    layout: str
    sha256: str
    rows: list[MetaRow]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def published(self) -> bool:
        return self.sha256 == PUBLISHED_SHA256[self.layout]

    def record(self) -> dict:
        """What dataset.json keeps of it."""
        return {"file": self.path.name, "layout": self.layout, "sha256": self.sha256, "rows": len(self.rows),
                "published": self.published}


def _layout(header: list[str], path: Path) -> str:
    for name, (_, cols) in LAYOUTS.items():
        if tuple(h.strip() for h in header) == cols:
            return name
    want = "; ".join(f"{n}: {('tab' if sep == chr(9) else 'comma')}-separated {', '.join(cols)}"
                     for n, (sep, cols) in LAYOUTS.items())
    raise InputError(f"expected a VoxCeleb meta file ({want}), got header {header[:9]} in {path}")


def _gender(text: str) -> str | None:
    g = text.strip().lower()
    return g if g in ("m", "f") else None


def read_meta(path: str | os.PathLike) -> MetaFile:
    """Parse one meta file (layout from its header). Rows with empty ids or names are kept out and listed in
    ``skipped``; a missing, unreadable or foreign file is an InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"expected --meta to be a VoxCeleb meta file (vox1_meta.csv, full_vox2_meta.csv), "
                         f"got a missing path ({path})")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError) as exc:
        raise InputError(f"expected a UTF-8 VoxCeleb meta file, got an unreadable file ({path}: {exc})") from None
    first = text.split("\n", 1)[0]
    sep = "\t" if "\t" in first else ","
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=sep))
    except csv.Error as exc:
        raise InputError(f"expected a VoxCeleb meta file, got garbled text ({path}: {exc})") from None
    if not rows:
        raise InputError(f"expected a VoxCeleb meta file with a header, got an empty file ({path})")
    layout = _layout(rows[0], path)
    cols = LAYOUTS[layout][1]
    out, skipped = [], []
    for i, cells in enumerate(r for r in rows[1:] if any(c.strip() for c in r)):
        where = f"{path.name} row {i}"
        if len(cells) != len(cols):
            raise InputError(f"expected {len(cols)} cells in every row of {path} ({layout} layout), got "
                             f"{len(cells)} in data row {i}")
        c = dict(zip(cols, (x.strip() for x in cells)))
        if layout == "vox1":
            row = MetaRow(c["VGGFace1 ID"], c["VoxCeleb1 ID"], c["VGGFace1 ID"], None, _gender(c["Gender"]),
                          c["Nationality"] or None, c["Set"].lower(), path.name, i)
        else:
            row = MetaRow(c["Name"], c["VoxCeleb2ID"], None, c["VGGFace2ID"] or None,
                          _gender(c["Gender_x"]) or _gender(c["Gender_y"]), None, c["Set"].lower(), path.name, i)
        if not row.identity or not row.vox_id:
            skipped.append((where, "meta row without a name or VoxCeleb id"))
            continue
        out.append(row)
    if not out:
        raise InputError(f"expected identity rows in {path}, got only the header")
    return MetaFile(path, layout, sha256_file(path, n_chars=64), out, skipped)


def check_published(files: list[MetaFile], rule: str, allow_other: bool) -> None:
    """For ``sf2f`` (the row order is the split) refuse a meta file whose sha256 is not the published one."""
    if rule != "sf2f" or allow_other:
        return
    for f in files:
        if not f.published:
            raise InputError(f"expected the published {f.layout} meta file for --split sf2f (its row order defines "
                             f"the split; sha256 {PUBLISHED_SHA256[f.layout][:16]}...), got sha256 "
                             f"{f.sha256[:16]}... in {f.path}; pass --allow-other-meta to use it anyway")


@dataclass
class Meta:
    """The joined meta files: identities in meta order (file by file, row by row) and the id look-ups."""

    rows: list[MetaRow]
    by_vox_id: dict[str, MetaRow]
    by_vggface1: dict[str, MetaRow]
    by_vggface2: dict[str, MetaRow]
    by_identity: dict[str, MetaRow]
    skipped: list[tuple[str, str]]


def join_meta(files: list[MetaFile]) -> Meta:
    """Join the rows of every meta file (in the order given). A VoxCeleb id listed twice keeps its first row
    (the repeat is listed in ``skipped``); a name listed again under another id becomes ``<name> (<id>)``."""
    rows, by_vox, by_identity, skipped = [], {}, {}, []
    for f in files:
        skipped += f.skipped
        for r in f.rows:
            if r.vox_id in by_vox:
                skipped.append((f"{r.meta} row {r.row}", f"VoxCeleb id {r.vox_id} listed again"))
                continue
            if r.identity in by_identity:
                r = MetaRow(**{**r.__dict__, "identity": f"{r.identity} ({r.vox_id})"})
            rows.append(r)
            by_vox[r.vox_id] = by_identity[r.identity] = r
    return Meta(rows, by_vox, {r.vggface1: r for r in rows if r.vggface1},
                {r.vggface2: r for r in rows if r.vggface2}, by_identity, skipped)


def split_of(rule: str, row: MetaRow) -> str | None:
    """``train``, ``val`` or ``test`` of ``row`` under ``rule`` (one of :data:`SPLIT_RULES`); None when the rule
    does not place it (an unknown Set value; a name outside A-Z for ``wen``)."""
    if rule == "official":
        return SET_SPLIT.get(row.set)
    if rule == "wen":
        first = row.identity[:1].upper()
        if not ("A" <= first <= "Z"):
            return None
        return "test" if first <= "E" else "train"
    if rule == "sf2f":
        return {8: "test", 9: "val"}.get(row.row % 10, "train")
    raise InputError(f"expected --split one of {', '.join(SPLIT_RULES)}, got {rule!r}")


def split_counts(rule: str, rows: list[MetaRow]) -> dict[str, int]:
    """{split: identities} of ``rows`` under ``rule`` (``none``: not placed by the rule)."""
    out: dict[str, int] = {}
    for r in rows:
        s = split_of(rule, r) or "none"
        out[s] = out.get(s, 0) + 1
    return out


def identity_meta_entry(rows: list[MetaRow], files: list[MetaFile]) -> dict:
    """dataset.json's ``identity_meta`` (as ``prepare --identity-meta`` writes it) from the meta rows of the
    dataset's identities: gender (both layouts) and nationality (vox1)."""
    src = {a: "; ".join(sorted({f.path.name for f in files if a == "gender" or f.layout == "vox1"}))
           for a in ("gender", "nationality")}
    ids = {r.identity: {k: v for k, v in (("gender", r.gender), ("nationality", r.nationality)) if v is not None}
           for r in rows}
    attrs = {a: {"source": s} for a, s in src.items() if s and any(a in v for v in ids.values())}
    return {"attributes": attrs, "identities": {n: {a: v[a] for a in attrs if a in v} for n, v in ids.items()}}
