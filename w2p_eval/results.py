"""The results store: one SQLite database (WAL mode) holding every metric row.

One row per (data_hash, checkpoint_hash, metric, split, protocol, seed, evaluator): re-evaluating
replaces the row instead of adding a duplicate. Several processes may write at the same time: every
write is one ``BEGIN IMMEDIATE`` transaction with a busy timeout and bounded retries, so no row is lost.

Rows are dicts with the keys of :data:`ROW_KEYS` (what every metric module returns); ``write`` adds
package versions, the git commit and a UTC timestamp.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import random
import sqlite3
import time
from pathlib import Path
from typing import Iterable, Sequence

from w2p_eval.errors import InputError
from w2p_eval.utils import connect_readonly, csv_safe, git_commit, package_versions
from w2p_eval.validate import check_store

log = logging.getLogger(__name__)

STORE_NAME = "results.sqlite"
ROW_KEYS = (
    "data_hash", "run", "model", "checkpoint", "checkpoint_hash", "epoch", "metric", "split",
    "protocol", "seed", "value", "n", "evaluator", "evaluator_version", "config_hash", "extra",
)
UNIQUE_KEY = ("data_hash", "checkpoint_hash", "metric", "split", "protocol", "seed", "evaluator")
PROVENANCE = ("versions", "git_commit", "timestamp")
COLUMNS = ROW_KEYS + PROVENANCE
_TYPES = {"epoch": "INTEGER", "seed": "INTEGER", "n": "INTEGER", "value": "REAL"}
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS results ("
    + ", ".join(f"{c} {_TYPES.get(c, 'TEXT')}" + (" NOT NULL" if c in UNIQUE_KEY else "") for c in COLUMNS)
    + f", UNIQUE ({', '.join(UNIQUE_KEY)}))"
)
_FILTERS = ("metric", "model", "run", "split", "protocol", "seed", "evaluator", "data_hash", "checkpoint_hash",
            "checkpoint")


def default_store(data_dir: str | os.PathLike) -> Path:
    """``DATA/results.sqlite``: where every command writes unless ``--store`` says otherwise."""
    return Path(data_dir) / STORE_NAME


def _json_default(obj):
    """numpy scalars/arrays and paths inside ``extra`` -> plain JSON values."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return str(obj)


def _clean_float(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


class ResultsStore:
    """SQLite results database at ``path`` (created on first use, WAL journal).

    >>> store = ResultsStore("DATA/results.sqlite")
    >>> store.write(rows)            # rows from evaluate_identity / evaluate_landmarks / ...
    >>> store.query(metric="identity_top1_fake")   # pandas DataFrame
    """

    def __init__(self, path: str | os.PathLike, timeout_s: float = 60.0, retries: int = 20, readonly: bool = False):
        self.path = Path(path)
        if self.path.exists() and self.path.is_dir():
            raise InputError(f"expected a results store file (.sqlite), got folder {self.path}")
        self.readonly = bool(readonly)  # queries only: opened read-only, never created or switched to WAL
        check_store(self.path, COLUMNS, write=not self.readonly)
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self._provenance: dict | None = None
        if not self.readonly:
            self._retrying(self._init_schema)

    # -- connection and retries -------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            return connect_readonly(self.path, self.timeout_s)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        con.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
        return con

    def _retrying(self, fn, *args):
        """Run ``fn(con, *args)``; on 'database is locked/busy' wait a little (jittered) and retry."""
        for attempt in range(self.retries + 1):
            con = None
            try:
                con = self._connect()
                return fn(con, *args)
            except sqlite3.OperationalError as exc:
                msg = str(exc).lower()
                if ("locked" not in msg and "busy" not in msg) or attempt == self.retries:
                    if "locked" in msg or "busy" in msg:
                        raise InputError(f"results store {self.path} stayed locked after {attempt + 1} tries") from None
                    raise
                time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
            except sqlite3.DatabaseError as exc:
                raise InputError(f"expected an SQLite results store, got {self.path} ({exc})") from None
            finally:
                if con is not None:
                    con.close()
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _init_schema(con: sqlite3.Connection) -> None:
        mode = con.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":  # pragma: no cover - e.g. a network filesystem
            log.warning("results store could not switch to WAL mode (got %s)", mode)
        con.execute(_SCHEMA)
        have = {r[1] for r in con.execute("PRAGMA table_info(results)")}
        missing = [c for c in COLUMNS if c not in have]
        if missing:
            raise InputError(f"expected a w2p-eval results table with columns {list(COLUMNS)}, "
                             f"missing {missing}")

    # -- writing ------------------------------------------------------------------------------
    def provenance(self) -> dict:
        if self._provenance is None:
            self._provenance = {
                "versions": json.dumps(package_versions(), sort_keys=True),
                "git_commit": git_commit(),
            }
        return self._provenance

    def _encode(self, row: dict, now: str) -> tuple:
        missing = [k for k in ROW_KEYS if k not in row]
        if missing:
            raise ValueError(f"result row lacks keys {missing}: {row}")
        rec = {k: row[k] for k in ROW_KEYS}
        extra = rec["extra"]
        if extra is None:
            extra = {}
        rec["extra"] = extra if isinstance(extra, str) else json.dumps(extra, sort_keys=True, default=_json_default)
        rec["value"] = _clean_float(rec["value"])
        for key in ("epoch", "seed", "n"):
            rec[key] = None if rec[key] is None else int(rec[key])
        for key in ("data_hash", "run", "model", "checkpoint", "checkpoint_hash", "metric", "split", "protocol",
                    "evaluator", "evaluator_version", "config_hash"):
            rec[key] = None if rec[key] is None else str(rec[key])
        for key in UNIQUE_KEY:
            if rec[key] is None:
                raise ValueError(f"result row key {key!r} must not be None: {row}")
        prov = self.provenance()
        rec.update(versions=row.get("versions", prov["versions"]), git_commit=row.get("git_commit", prov["git_commit"]),
                   timestamp=row.get("timestamp", now))
        if isinstance(rec["versions"], dict):
            rec["versions"] = json.dumps(rec["versions"], sort_keys=True)
        return tuple(rec[c] for c in COLUMNS)

    def write(self, rows: Iterable[dict]) -> int:
        """Insert or replace ``rows`` in one transaction; returns how many were written."""
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        records = [self._encode(dict(r), now) for r in rows]
        if not records:
            return 0
        updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c not in UNIQUE_KEY)
        sql = (f"INSERT INTO results ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
               f"ON CONFLICT ({', '.join(UNIQUE_KEY)}) DO UPDATE SET {updates}")

        def _tx(con: sqlite3.Connection) -> int:
            con.execute("BEGIN IMMEDIATE")
            try:
                con.executemany(sql, records)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            return len(records)

        return self._retrying(_tx)

    # -- reading ------------------------------------------------------------------------------
    def query(self, **filters):
        """Rows as a pandas DataFrame (``extra`` decoded to dicts), sorted by run, epoch, metric.

        Filters (each a value or a list of values): metric, model, run, split, protocol, seed,
        evaluator, data_hash, checkpoint_hash, checkpoint. ``None`` means no filter.
        """
        import pandas as pd

        where, params = self._where(filters)
        sql = f"SELECT {', '.join(COLUMNS)} FROM results{where} ORDER BY run, epoch, metric, seed"
        records = self._retrying(lambda con: con.execute(sql, params).fetchall())
        df = pd.DataFrame.from_records(records, columns=list(COLUMNS))
        df["value"] = pd.to_numeric(df["value"], errors="coerce").astype(float)
        df["extra"] = [json.loads(x) if x else {} for x in df["extra"]]
        return df

    def has(self, *, data_hash: str, checkpoint_hash: str, split: str, protocol: str, seed: int,
            evaluator: str, metrics: Sequence[str] | None = None) -> bool:
        """True when the store already holds every metric in ``metrics`` (or any row when None)
        for this checkpoint, data, split, protocol, seed and evaluator."""
        where, params = self._where(dict(data_hash=data_hash, checkpoint_hash=checkpoint_hash, split=split,
                                         protocol=protocol, seed=seed, evaluator=evaluator))
        found = {r[0] for r in self._retrying(
            lambda con: con.execute(f"SELECT DISTINCT metric FROM results{where}", params).fetchall())}
        return bool(found) if metrics is None else set(metrics) <= found

    def __len__(self) -> int:
        return self._retrying(lambda con: con.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    @staticmethod
    def _where(filters: dict) -> tuple[str, list]:
        clauses, params = [], []
        for key, val in filters.items():
            if key not in _FILTERS:
                raise InputError(f"expected a filter among {list(_FILTERS)}, got {key!r}")
            if val is None:
                continue
            vals = list(val) if isinstance(val, (list, tuple, set)) else [val]
            if not vals:
                continue
            vals = [int(v) if key == "seed" else str(v) for v in vals]
            clauses.append(f"{key} IN ({', '.join('?' * len(vals))})")
            params.extend(vals)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def format_table(df, fmt: str = "csv") -> str:
    """A results DataFrame as csv, md (Markdown) or json (one object per row, a JSON list)."""
    if fmt == "json":
        recs = json.loads(df.to_json(orient="records"))  # NaN -> null
        return json.dumps(recs, indent=2) + "\n"
    cols = [c for c in ("run", "model", "epoch", "metric", "split", "protocol", "seed", "value", "n", "evaluator")
            if c in df.columns]
    view = df[cols]
    if fmt == "md":
        from w2p_eval.report.tables import to_markdown

        return to_markdown(view) + "\n"
    if fmt == "csv":
        return csv_safe(view).to_csv(index=False)
    raise InputError(f"expected format one of csv, md, json, got {fmt!r}")
