"""Frozen test lists: one JSON file that fixes everything a protocol number depends on.

A test list records the dataset (manifest hash), the split and protocol, the judge (name and
settings), the seeds, the test pairs, the retrieval galleries (identity names per gallery) and the
1:N matching tuples (pair ids: probe, the true speaker's other face, impostors). Two labs that
evaluate with the same file score the same items against the same candidates.

File layout (``format`` "w2p-eval-testlist", ``version`` 2; version 1 files, without the same-gender keys,
still load)::

    {"format", "version", "id",
     "dataset": {"manifest_hash", "kind", "n_pairs"},           # n_pairs of the split
     "split", "protocol", "judge": {"name", "settings"},
     "seeds": {"galleries", "matching"},
     "pairs": [pair ids of the split, manifest order],
     "retrieval": {"gallery_size", "n_galleries", "ks", "galleries": [[identity names]]},
     "matching": {"<N>": [[probe, true, impostor...] pair ids]}, "matching_excluded": {"<N>": count},
     "same_gender": {"genders": {identity: "f"|"m"}, "source": "metadata"|"judge/<name>"|..., "skipped": {"<N>": why},
                     "matching": {"<N>": [[...]]}, "excluded": {"<N>": count}}}    # version 2

``same_gender``: the 1:N tuples whose impostors share the probe's gender, drawn with the matching seed from the
genders frozen here (labels of the dataset, else the attribute judge); an impossible N is listed under
``skipped`` with the reason; without any gender source the block holds only ``skipped`` {"all": why}.

``id`` = first 16 hex chars of the sha256 of the canonical JSON of everything else (sorted keys), so
it names the content: any edit changes it, and :func:`load_testlist` refuses a file whose id does
not match.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from w2p_eval.data.folder import open_dataset
from w2p_eval.data.manifest import PROTOCOLS, SPLITS, manifest_hash
from w2p_eval.errors import InputError
from w2p_eval.metrics.testlist_meaning import meaning_problem
from w2p_eval.judges import IDENTITY_BACKBONES, resolve_name
from w2p_eval.judges.attributes import identity_genders
from w2p_eval.metrics.matching import (draw_matching_tuples, same_gender_problem, tuples_from_pair_ids,
                                       tuples_to_pair_ids)
from w2p_eval.metrics.protocols import draw_galleries
from w2p_eval.utils import atomic_path, sha256_json

FORMAT = "w2p-eval-testlist"
VERSION = 2
VERSIONS = (1, 2)  # readable
DEFAULT_MATCHING = (2, 5, 10)
DEFAULT_N_GALLERIES = 10


def testlist_id(content: dict) -> str:
    """Stable id of a test list: sha256 (16 hex) of the canonical JSON of ``content`` without ``id``."""
    return sha256_json({k: v for k, v in content.items() if k != "id"})


@dataclass
class TestList:
    """A loaded test list. ``matching`` maps N -> pair-id tuples; ``galleries`` are identity names."""

    __test__ = False  # not a pytest class

    id: str
    manifest_hash: str
    split: str
    protocol: str
    judge: str
    judge_settings: dict
    seeds: dict
    pair_ids: list[str]
    gallery_size: int
    ks: list[int]
    galleries: list[list[str]]
    matching: dict[int, list[list[str]]]
    content: dict = field(repr=False)
    path: Path | None = None
    same_gender: dict[int, list[list[str]]] = field(default_factory=dict)
    same_gender_skipped: dict[str, str] = field(default_factory=dict)
    genders: dict[str, str] | None = None
    gender_source: str | None = None

    def gallery_labels(self, identities: Sequence[str]) -> list[np.ndarray]:
        """Galleries as int64 label arrays (indexes into ``identities``, the dataset's sorted names)."""
        index = {name: i for i, name in enumerate(identities)}
        unknown = sorted({n for g in self.galleries for n in g if n not in index})
        if unknown:
            raise InputError(f"expected the test list's gallery identities in the dataset, got unknown "
                             f"{', '.join(unknown[:5])} (test list {self.id})")
        return [np.array([index[n] for n in g], dtype=np.int64) for g in self.galleries]

    def same_gender_missing(self, n_way: int) -> str | None:
        """Why the list has no same-gender 1:``n_way`` tuples (None when it has them)."""
        if n_way in self.same_gender:
            return None
        if self.content.get("version") == 1:
            return f"test list {self.id} has no same-gender tuples (version 1; make a new one with `w2p-eval testlist`)"
        why = self.same_gender_skipped.get(str(n_way)) or self.same_gender_skipped.get("all")
        return why or f"test list {self.id} has no same-gender 1:{n_way} tuples"

    def matching_indices(self, n_way: int, pair_ids: Sequence[str], drop_missing: bool = False,
                         same_gender: bool = False) -> tuple[np.ndarray, int]:
        """The 1:``n_way`` tuples (``same_gender``: those with same-gender impostors) as int64 [M, n_way + 1] row
        indices into ``pair_ids`` (the evaluated set's order), and how many tuples were dropped for naming a
        pair not in it (with ``drop_missing``)."""
        if same_gender:
            why = self.same_gender_missing(n_way)
            if why:
                raise InputError(why)
            return tuples_from_pair_ids(self.same_gender[n_way], pair_ids, drop_missing=drop_missing)
        if n_way not in self.matching:
            have = ", ".join(f"1:{n}" for n in sorted(self.matching)) or "none"
            raise InputError(f"expected 1:{n_way} matching tuples in test list {self.id}, got {have}")
        return tuples_from_pair_ids(self.matching[n_way], pair_ids, drop_missing=drop_missing)


def build_testlist(data_dir: str | os.PathLike, *, split: str = "test", protocol: str = "seen", seed: int = 0,
                   gallery_size: int | None = None, n_galleries: int = DEFAULT_N_GALLERIES,
                   ks: Sequence[int] = (1, 2, 5, 10), matching: Sequence[int] | None = None,
                   judge: str = "dlib_resnet", judge_settings: dict | None = None) -> dict:
    """Draw galleries and matching tuples for one split of a dataset -> the test list's content (with ``id``).

    ``gallery_size`` None -> min(100, identities of the split); ``matching`` None -> every N of
    (2, 5, 10) the split's identities allow (an N asked for explicitly that is not possible is an
    InputError saying which are). Pairs are the manifest's readable pairs of the split (as every
    evaluation loads them).
    """
    if split not in SPLITS or protocol not in PROTOCOLS:
        raise InputError(f"expected split in {SPLITS} and protocol in {PROTOCOLS}, got {split!r} / {protocol!r}")
    if judge not in IDENTITY_BACKBONES:
        resolve_name(IDENTITY_BACKBONES, judge, "judge")  # raises with a hint
    data_dir = open_dataset(data_dir)  # the boundary of `w2p-eval testlist` (a DataFolder passes through)
    info = data_dir.info
    df = data_dir.split(split, protocol)
    if df.empty:
        raise InputError(f"expected pairs in the {split} split ({protocol} protocol) of {data_dir}, got none")
    names = df["identity"].astype(str).to_numpy()
    face_ids = df["face_id"].astype(str).to_numpy()
    pair_ids = df["pair_id"].astype(str).tolist()
    n_ids = len(set(names))
    gals = draw_galleries(names, gallery_size, n_galleries, seed)
    g = len(gals[0])
    if matching is None:
        matching = [n for n in DEFAULT_MATCHING if n <= n_ids]
    tuples, excluded = {}, {}
    for n_way in sorted({int(n) for n in matching}):
        t = draw_matching_tuples(names, face_ids, n_way, seed)
        tuples[str(n_way)] = tuples_to_pair_ids(t.tuples, pair_ids)
        excluded[str(n_way)] = int(t.excluded.size)
    content = {
        "format": FORMAT, "version": VERSION,
        "dataset": {"manifest_hash": data_dir.hash, "kind": info.get("kind"), "n_pairs": len(pair_ids)},
        "split": split, "protocol": protocol,
        "judge": {"name": judge, "settings": dict(judge_settings or {})},
        "seeds": {"galleries": int(seed), "matching": int(seed)},
        "pairs": pair_ids,
        "retrieval": {"gallery_size": g, "n_galleries": len(gals), "ks": sorted({int(k) for k in ks if int(k) <= g}),
                      "galleries": [[str(x) for x in gal.tolist()] for gal in gals]},
        "matching": tuples, "matching_excluded": excluded,
        "same_gender": _same_gender_block(data_dir, names, face_ids, pair_ids, sorted(int(n) for n in tuples),
                                          seed),
    }
    content = json.loads(json.dumps(content))  # canonical builtins only, exactly what a reader sees
    content["id"] = testlist_id(content)
    return content


def _same_gender_block(data_dir, names, face_ids, pair_ids, n_ways, seed: int) -> dict:
    """The list's ``same_gender`` block: frozen genders, their source, and the same-gender tuples per possible N."""
    present = sorted(set(names.tolist()))
    try:
        g = identity_genders(data_dir, names=present)  # the split's identities only
    except InputError as exc:
        return {"skipped": {"all": str(exc)}}
    block = {"genders": {n: g.of[n] for n in present}, "source": g.source, "matching": {}, "excluded": {},
             "skipped": {}}
    row_genders = np.array([g.of[n] for n in names])
    for n_way in n_ways:
        why = same_gender_problem(names, row_genders, n_way)
        if why is None:
            try:
                t = draw_matching_tuples(names, face_ids, n_way, seed, genders=row_genders)
            except InputError as exc:
                why = str(exc)
        if why is not None:
            block["skipped"][str(n_way)] = why
            continue
        block["matching"][str(n_way)] = tuples_to_pair_ids(t.tuples, pair_ids)
        block["excluded"][str(n_way)] = int(t.excluded.size)
    return block


def write_testlist(content: dict, out: str | os.PathLike) -> Path:
    """Write a test list atomically (complete new file or the old one) -> its path."""
    out = Path(out)
    with atomic_path(out, suffix=".json") as tmp:
        tmp.write_text(json.dumps(content, indent=1, sort_keys=True) + "\n")
    return out


def _need(content: dict, key: str, kind, where: str):
    value = content.get(key) if isinstance(content, dict) else None
    if not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise InputError(f"expected {key!r} ({name}) in {where}, got {type(value).__name__} (malformed test list)")
    return value


def _read_content(path: Path) -> dict:
    """The JSON of a test list file, refused (InputError) when missing, unreadable, or of another format/version."""
    if not path.is_file():
        raise InputError(f"expected a test list file (made by `w2p-eval testlist`), got missing {path}")
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"expected a JSON test list in {path}, got unreadable text ({exc})") from None
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        got = content.get("format") if isinstance(content, dict) else type(content).__name__
        raise InputError(f"expected format {FORMAT!r} in {path}, got {got!r}")
    if content.get("version") not in VERSIONS:
        raise InputError(f"expected test list version {' or '.join(map(str, VERSIONS))} in {path}, got {content.get('version')!r} "
                         f"(made by another w2p-eval version)")
    return content


def _check_tuples(matching: dict, known: set, split: str, path: Path) -> dict[int, list]:
    """The matching tuples by N, each a list of N + 1 pair ids of the list's split."""
    try:
        tuples = {int(n): rows for n, rows in matching.items()}
    except ValueError:
        raise InputError(f"expected matching keys N (integers) in {path}, got {sorted(matching)}") from None
    for n, rows in tuples.items():
        if not isinstance(rows, list) or any(not isinstance(r, list) or len(r) != n + 1 for r in rows):
            raise InputError(f"expected 1:{n} tuples of {n + 1} pair ids in {path} (malformed test list)")
        bad = [p for r in rows for p in r if p not in known]
        if bad:
            raise InputError(f"expected 1:{n} tuples to name pairs of the list's {split} split, got {bad[0]!r} "
                             f"(malformed test list {path})")
    return tuples


def _check_dataset(data_dir, mhash: str, tid: str, path: Path) -> None:
    """Refuse a dataset whose manifest hash is not the one the test list was made for."""
    have = manifest_hash(data_dir)
    if have != mhash:
        raise InputError(f"test list {tid} ({path.name}) was made for dataset manifest {mhash}, got {data_dir} "
                         f"with manifest {have}; make one for this dataset with "
                         f"`w2p-eval testlist --data {data_dir} --out FILE`")


def load_testlist(path: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> TestList:
    """Read and check a test list; with ``data_dir``, refuse one made for another dataset (manifest hash).

    Every problem is an InputError of one line saying what was expected and what arrived: a missing or
    unreadable file, another format or version, a missing field, an id that does not match the content
    (edited by hand), tuples naming pairs outside the list's split, another dataset.
    """
    path = Path(path)
    where = str(path)
    content = _read_content(path)
    dataset = _need(content, "dataset", dict, where)
    mhash = _need(dataset, "manifest_hash", str, where)
    split = _need(content, "split", str, where)
    protocol = _need(content, "protocol", str, where)
    judge = _need(content, "judge", dict, where)
    seeds = _need(content, "seeds", dict, where)
    pairs = _need(content, "pairs", list, where)
    retrieval = _need(content, "retrieval", dict, where)
    galleries = _need(retrieval, "galleries", list, where)
    g = _need(retrieval, "gallery_size", int, where)
    ks = _need(retrieval, "ks", list, where)
    matching = _need(content, "matching", dict, where)
    tid = _need(content, "id", str, where)
    if tid != testlist_id(content):
        raise InputError(f"expected test list id {testlist_id(content)} for the content of {path}, got {tid} "
                         f"(the file was edited; make a new one with `w2p-eval testlist`)")
    if any(not isinstance(gal, list) or len(gal) != g for gal in galleries):
        raise InputError(f"expected galleries of {g} identities in {path}, got sizes "
                         f"{sorted({len(x) if isinstance(x, list) else -1 for x in galleries})} (malformed test list)")
    if any(isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= g for k in ks):
        bad = next(k for k in ks if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= g)
        raise InputError(f"expected retrieval ks as integers in [1, {g}] (the gallery size) in {path}, got "
                         f"{str(bad)[:40]!r} (malformed test list)")
    if any(not isinstance(x, str) for gal in galleries for x in gal):
        raise InputError(f"expected gallery identity names (text) in {path} (malformed test list)")
    tuples = _check_tuples(matching, set(pairs), split, path)
    same = content.get("same_gender", {}) if content.get("version", 1) >= 2 else {}
    if not isinstance(same, dict):
        raise InputError(f"expected 'same_gender' (dict) in {where}, got {type(same).__name__} (malformed test list)")
    _check_same_gender(same, where)
    same_tuples = _check_tuples(same.get("matching") or {}, set(pairs), split, path)
    if data_dir is not None:
        _check_dataset(data_dir, mhash, tid, path)
    return TestList(id=tid, manifest_hash=mhash, split=split, protocol=protocol, judge=str(judge.get("name")),
                    judge_settings=dict(judge.get("settings") or {}), seeds=dict(seeds), pair_ids=list(pairs),
                    gallery_size=g, ks=[int(k) for k in ks], galleries=[[str(x) for x in gal] for gal in galleries],
                    matching=tuples, content=content, path=path, same_gender=same_tuples,
                    same_gender_skipped={str(k): str(v) for k, v in (same.get("skipped") or {}).items()},
                    genders=same.get("genders"), gender_source=same.get("source"))


def _check_same_gender(same: dict, where: str) -> None:
    """The ``same_gender`` block's field types (an edited list is one line, never a traceback)."""
    def bad(what: str, got) -> InputError:
        return InputError(f"expected {what} in {where}, got {type(got).__name__} {str(got)[:40]!r} (malformed test list)")

    for key in ("matching", "skipped", "excluded"):
        if not isinstance(same.get(key) or {}, dict):
            raise bad(f"'same_gender.{key}' (a dict)", same.get(key))
    if any(not isinstance(v, str) for v in (same.get("skipped") or {}).values()):
        raise bad("'same_gender.skipped' reasons (text)", same.get("skipped"))
    genders = same.get("genders")
    if genders is not None and (not isinstance(genders, dict)
                                or any(not isinstance(k, str) or v not in ("f", "m") for k, v in genders.items())):
        raise bad("'same_gender.genders' as {identity: 'f' or 'm'}", genders)
    if same.get("source") is not None and not isinstance(same.get("source"), str):
        raise bad("'same_gender.source' (text)", same.get("source"))


def apply_testlist(plan, path: str | os.PathLike, *, split_given: bool = False, protocol_given: bool = False,
                   backbone_given: bool = False):
    """Load a test list for ``plan.data`` (refusing another dataset's) -> a copy of ``plan`` (a frozen
    :class:`~w2p_eval.metrics.plan.Plan`) that uses it: its split, protocol, judge, galleries and tuples.

    ``*_given``: the user set that option explicitly; a value that differs from the list's is then refused
    (InputError, one line) rather than silently replaced. The evaluated split must hold exactly the list's
    pairs (same manifest hash makes that so unless pairs became unreadable).
    """
    opts = plan
    tl = load_testlist(path, opts.data)
    tl.gallery_labels(list(opts.data.identities))  # unknown gallery identities: refused up front
    judges = ",".join(opts.judges)
    for what, given, have, want in (("--split", split_given, opts.split, tl.split),
                                    ("--protocol", protocol_given, opts.protocol, tl.protocol),
                                    ("--backbone", backbone_given, tl.judge if tl.judge in opts.judges else judges,
                                     tl.judge)):
        if given and have != want:
            raise InputError(f"test list {tl.id} fixes {what} {want}, got {what} {have}; drop the option or make a "
                             f"test list for it with `w2p-eval testlist`")
    judges = opts.judges if backbone_given else (tl.judge,)  # a --backbone list holding it keeps its others
    rows = opts.data.split(tl.split, tl.protocol)
    pairs = set(rows["pair_id"].astype(str))
    if pairs != set(tl.pair_ids):
        raise InputError(f"expected the {tl.split} split of {opts.data} to hold test list {tl.id}'s "
                         f"{len(tl.pair_ids)} pairs, got {len(pairs)} ({len(set(tl.pair_ids) - pairs)} of the list's "
                         f"missing)")
    why = meaning_problem(tl, rows, list(opts.data.identities))
    if why:
        raise InputError(f"expected test list {tl.id} ({tl.path}) as `w2p-eval testlist` draws it, got {why} "
                         f"(edited by hand?; make a new one with `w2p-eval testlist`)")
    return replace(plan, split=tl.split, protocol=tl.protocol, judges=tuple(judges), testlist=tl,
                   gallery_size=tl.gallery_size)
