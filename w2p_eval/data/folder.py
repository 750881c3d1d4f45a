"""DataFolder: one prepared dataset, read and validated once per command, passed down instead of its path.

Built at the boundary (the CLI's options, the Python API, a pipeline) by :func:`open_dataset`, it holds
what every consumer used to re-derive from the bare path: ``info`` (dataset.json), ``identities``,
``rows`` (manifest.csv after the structural checks: columns, splits, numbers, path containment),
``hash`` (of the manifest bytes it parsed: manifest.csv is read once, for both) and the skip report.

Content checks (every pixel decoded, float audio finite, audio long enough) are lazy: :meth:`readable`
checks only the rows a command actually reads, memoises each file's verdict on the object, and keeps a
validation record in the cache (:class:`w2p_eval.cache.Cache`, namespace ``validation``: one entry per manifest
hash and folder; an edited or corrupt record is a warning and is rebuilt), keyed by each file's size, mtime and
inode, so the next command on an unchanged dataset decodes nothing to
validate; a file whose size, mtime or inode changed is checked again. The record lives in the cache,
not in DATA, because a command owns only what it writes (DATA may be read-only or shared).

A DataFolder is ``os.PathLike`` (``Path(ds)``, ``ds / "faces"`` and ``str(ds)`` are the dataset folder),
so code that only joins paths takes it unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import os
from pathlib import Path

import pandas as pd

from w2p_eval.cache import Cache
from w2p_eval.data.content import audio_seconds, image_problem
from w2p_eval.data.identity_meta import identity_meta
from w2p_eval.data.layout import COLUMNS, DATASET_JSON, FORMAT, MANIFEST, STORED_SPLITS, check_dir, split_frame
from w2p_eval.errors import InputError
from w2p_eval.validate import InsideResolver, check_dataset_info, manifest_row_problems

log = logging.getLogger(__name__)
RECORD_VERSION = 2  # of the validation record's cache entries (1: the files this module wrote itself)
_REPORTS: list["SkipReport"] = []  # skip reports of the datasets opened by this command (cli.main clears it)


class SkipReport:
    """What one dataset skipped in this command: bad rows (structure) and unreadable pairs (content)."""

    def __init__(self, root: Path):
        self.root = root
        self.rows: dict[str, int] = {}
        self.row_examples: list[str] = []
        self.pairs: dict[str, int] = {}
        self.pair_examples: list[str] = []

    def lines(self) -> list[str]:
        out = []
        for what, reasons, examples, tail in (("manifest row", self.rows, self.row_examples, ""),
                                              ("pair", self.pairs, self.pair_examples, " with unreadable files")):
            if reasons:
                n = sum(reasons.values())
                out.append(f"skipped {n} {what}{'s' if n != 1 else ''} of {self.root}{tail} "
                           f"({', '.join(f'{k}: {v}' for k, v in sorted(reasons.items()))}); first: {examples[0]}")
        return out


def skipped_report() -> list[str]:
    """One line per dataset (and kind of skip) of this command, for its end; equal lines once."""
    lines = [ln for rep in _REPORTS for ln in rep.lines()]
    return list(dict.fromkeys(lines))


def forget_reports() -> None:
    """Start a new command's report (``cli.main`` calls it first)."""
    _REPORTS.clear()


class DataFolder(os.PathLike):
    """A prepared dataset folder, read once. See the module docstring for the contract."""

    def __init__(self, root: str | os.PathLike, cache_dir: str | os.PathLike | None | bool = None):
        self.root = check_dir(root)
        self.cache_dir = cache_dir
        self.info: dict = read_info(self.root)
        self.identities: list[str] = list(self.info["identities"])
        raw = (self.root / MANIFEST).read_bytes()
        self.hash: str = hashlib.sha256(raw).hexdigest()[:16]
        self.report = SkipReport(self.root.resolve())
        _REPORTS.append(self.report)
        self._inside = InsideResolver(self.root)
        self.rows: pd.DataFrame = self._structural(_parse_manifest(raw, self.root / MANIFEST))
        self._verdicts: dict[str, tuple[str, str] | None] = {}  # pair_id -> None (usable) or (reason, detail)
        self._files: dict[str, list] = {}  # "image:rel" / "audio:rel" -> [size, mtime_ns, ino, verdict]
        self._record_loaded = False
        self._dirty = False
        self._from_record: set[str] = set()  # keys whose verdict came from the record (checked before use)
        self._record_time_ns = 0  # when the record read was written (its mtime)

    # -- path-like ---------------------------------------------------------------------------------
    def __fspath__(self) -> str:
        return str(self.root)

    def __str__(self) -> str:
        return str(self.root)

    def __repr__(self) -> str:
        return f"DataFolder({str(self.root)!r}, hash={self.hash})"

    def __truediv__(self, other) -> Path:
        return self.root / other

    def resolve(self) -> Path:
        return self.root.resolve()

    # -- rows ----------------------------------------------------------------------------------------
    def _structural(self, df: pd.DataFrame) -> pd.DataFrame:
        """Rows with bad numbers or paths leaving the dataset are dropped and counted; numbers become floats."""
        problems = manifest_row_problems(df, self.root, self.identities, self._inside)
        if problems:
            for reason, _ in problems.values():
                self.report.rows[reason] = self.report.rows.get(reason, 0) + 1
            self.report.row_examples = [f"row {i + 2} (pair {df['pair_id'].iloc[i]}): {r}: {d}"
                                        for i, (r, d) in sorted(problems.items())[:3]]
            log.info("%s: skipping %d manifest rows (%s); e.g. %s", self.root, len(problems), self.report.rows,
                     "; ".join(self.report.row_examples))
            if len(problems) == len(df):  # nothing left: say why here, not "found none" later
                raise InputError(f"expected usable rows in {self.root / MANIFEST}, got none: all {len(df)} rows "
                                 f"were skipped ({', '.join(f'{k}: {v}' for k, v in sorted(self.report.rows.items()))}"
                                 f"); first: {self.report.row_examples[0]}")
            df = df.drop(index=df.index[sorted(problems)]).reset_index(drop=True)
        df["audio_start"] = df["audio_start"].astype(float)
        df["audio_duration"] = df["audio_duration"].astype(float)
        return df

    def split(self, split: str, protocol: str = "seen", *, check_files: bool = True) -> pd.DataFrame:
        """The rows of one split under one protocol (content-checked unless ``check_files=False``)."""
        df = split_frame(self.rows, split, protocol)
        return self.readable(df) if check_files else df

    def path(self, rel) -> Path:
        """The file a manifest row names, resolved inside the dataset (rows were checked when read)."""
        return self._inside(rel) or self.root / str(rel)

    # -- content checks ---------------------------------------------------------------------------------
    def readable(self, df: pd.DataFrame) -> pd.DataFrame:
        """``df`` (rows of this dataset) without the pairs whose image or audio is unusable: missing, corrupt
        (every pixel decoded), non-finite, or shorter than ``audio_start + audio_duration``. Each pair is
        checked at most once per object, each unchanged file at most once per validation record."""
        todo = [r for r in df[["pair_id", "image_path", "audio_path", "audio_start", "audio_duration"]]
                .itertuples(index=False) if r.pair_id not in self._verdicts]
        if todo:
            self._load_record()
            new: dict[str, int] = {}
            for row in todo:
                why = self._pair_problem(row)
                self._verdicts[row.pair_id] = why
                if why is not None:
                    new[why[0]] = new.get(why[0], 0) + 1
                    self.report.pairs[why[0]] = self.report.pairs.get(why[0], 0) + 1
                    if len(self.report.pair_examples) < 3:
                        self.report.pair_examples.append(f"{row.pair_id}: {why[0]}: {why[1]}")
            if new:
                log.info("%s: skipping %d of %d pairs with unreadable files (%s); e.g. %s", self.root,
                         sum(new.values()), len(todo), ", ".join(f"{k}: {v}" for k, v in sorted(new.items())),
                         "; ".join(self.report.pair_examples))
            self._save_record()
        bad = [p for p in df["pair_id"] if self._verdicts.get(p) is not None]
        return df[~df["pair_id"].isin(bad)].reset_index(drop=True) if bad else df.reset_index(drop=True)

    def _pair_problem(self, row) -> tuple[str, str] | None:
        why = self._file("image", row.image_path)
        have = self._file("audio", row.audio_path)
        if why is None and isinstance(have, (tuple, list)):
            why = tuple(have)
        need = float(row.audio_start) + float(row.audio_duration)
        if why is None and have + 1e-3 < need:
            why = "audio too short", f"{self.root / str(row.audio_path)} ({have:.2f} s, the pair needs {need:.2f} s)"
        return None if why is None else (str(why[0]), str(why[1]))

    def _file(self, kind: str, rel):
        """The verdict on one file: image -> None | (reason, detail); audio -> seconds | (reason, detail)."""
        key = f"{kind}:{rel}"
        full = self.path(rel)
        try:
            st = os.stat(full)
            stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        except OSError:
            st, stamp = None, None
        known = self._files.get(key)
        if stamp is not None and known is not None and known[:3] == stamp:
            # an entry from the record holds when it has the type written and the file has not changed since the
            # record was written (its ctime, which `touch -r` or an in-place edit cannot set back, is older)
            if key not in self._from_record or (record_verdict_holds(kind, known[3])
                                                and st.st_ctime_ns <= self._record_time_ns):
                return known[3]
            # a stale or forged entry: re-validated below, its pair skipped and counted if bad
            log.info("validation record entry %s does not match %s: checked again", key, full)
        self._from_record.discard(key)
        verdict = image_problem(full) if kind == "image" else audio_seconds(full)
        if stamp is not None:
            self._files[key] = [*stamp, list(verdict) if isinstance(verdict, tuple) else verdict]
            self._dirty = True
        return verdict

    # -- the validation record ----------------------------------------------------------------------
    def _record(self) -> tuple[Cache, dict]:
        folder = hashlib.sha256(str(self.root.resolve()).encode("utf-8", "surrogatepass")).hexdigest()[:12]
        key = {"name": f"{self.hash}-{folder}", "data": self.hash, "root": str(self.root.resolve()),
               "checker": "content.image_problem/audio_seconds"}
        return Cache(self.cache_dir, "validation", RECORD_VERSION, fmt="json"), key

    def record_path(self) -> Path | None:
        """The validation record's file in the cache (None without a cache)."""
        cache, key = self._record()
        return cache.path(key) if cache.enabled else None

    def _load_record(self) -> None:
        if self._record_loaded:
            return
        self._record_loaded = True
        cache, key = self._record()
        record = cache.load(key, record_problem)
        if record is not None:
            kept = {k: v for k, v in record["files"].items() if isinstance(v, list) and len(v) == 4}
            self._files.update(kept)
            self._from_record.update(kept)
            with contextlib.suppress(OSError):
                self._record_time_ns = cache.path(key).stat().st_mtime_ns

    def _save_record(self) -> None:
        if not self._dirty:
            return
        cache, key = self._record()
        if cache.save(key, {"files": self._files}):  # the record only saves time: one that cannot be written is a note
            self._dirty = False


def record_problem(record) -> str | None:
    """Why a stored validation record ({"files": {"image:<rel>" | "audio:<rel>": [size, mtime_ns, inode, verdict]}},
    the verdict None / seconds / [reason, detail]) cannot be used; None when it can."""
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(files, dict):
        expected = "{'files': {file: [size, mtime, inode, verdict]}}"
        return f"a JSON {type(record).__name__} where {expected} was expected"
    for name, entry in files.items():
        kind = name.split(":", 1)[0]
        ok = kind in ("image", "audio") and isinstance(entry, list) and len(entry) == 4 and \
            all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in entry[:3])
        verdict = entry[3] if ok else None
        if ok and not (isinstance(verdict, list) and len(verdict) == 2 and all(isinstance(v, str) for v in verdict)):
            ok = verdict is None if kind == "image" else \
                isinstance(verdict, (int, float)) and not isinstance(verdict, bool) and 0 <= verdict < float("inf")
        if not ok:
            return f"an entry {name!r} that is not [size, mtime, inode, verdict]"
    return None


def record_verdict_holds(kind: str, verdict) -> bool:
    """Whether a validation-record verdict (read from the cache: data, not truth) has the type :meth:`DataFolder._file`
    writes: an image's None (readable); an audio file's length, a finite number of seconds > 0. A stored problem
    is checked again too (a record that calls a good file bad would drop a pair). Anything else: re-validate."""
    if kind == "image":
        return verdict is None
    number = isinstance(verdict, (int, float)) and not isinstance(verdict, bool)
    return number and math.isfinite(verdict) and verdict > 0


def read_info(root: Path) -> dict:
    """``root/dataset.json``, read and checked (:func:`w2p_eval.validate.check_dataset_info`)."""
    try:
        info = json.loads((root / DATASET_JSON).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"expected JSON in {root / DATASET_JSON}, got unreadable text ({exc})") from None
    info = check_dataset_info(info, root / DATASET_JSON, FORMAT)
    identity_meta(info, str(root / DATASET_JSON))  # refused up front by every verb, not mid-run
    return info


def _parse_manifest(raw: bytes, where: Path) -> pd.DataFrame:
    """manifest.csv bytes -> DataFrame with the required columns, known splits and unique pair ids."""
    try:
        df = pd.read_csv(
            io.BytesIO(raw),
            dtype={"pair_id": str, "identity": str, "face_id": str, "segment_id": str, "source": str},
            keep_default_na=False, na_values={"source_time": ["", "nan", "NaN"]},
        )
    except Exception as exc:  # pandas raises many types for a bad CSV
        raise InputError(f"expected a CSV table in {where}, got an unreadable file ({exc})") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{where} lacks columns {missing}; expected {COLUMNS}")
    for col in ("split_seen", "split_unseen"):
        bad = set(df[col]) - set(STORED_SPLITS)
        if bad:
            raise InputError(f"{col} must be one of {list(STORED_SPLITS)}, got {sorted(bad)} in {where}")
    if df["pair_id"].duplicated().any():
        dup = df.loc[df["pair_id"].duplicated(), "pair_id"].iloc[0]
        raise InputError(f"pair_id must be unique, got {dup!r} twice in {where}")
    return df


def open_dataset(data: str | os.PathLike | DataFolder, cache_dir: str | os.PathLike | None | bool = None
                 ) -> DataFolder:
    """The boundary: a DataFolder as is, a path opened (read and structurally checked) once."""
    if isinstance(data, DataFolder):
        if cache_dir is not None and data.cache_dir is None:
            data.cache_dir = cache_dir
        return data
    return DataFolder(data, cache_dir)
