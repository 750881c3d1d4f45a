"""The results store: one SQLite database (WAL mode) holding every metric row.

One row per (data_hash, run, checkpoint_hash, metric, split, protocol, seed, evaluator): re-evaluating
replaces the row instead of adding a duplicate. The run name is part of the key, so one checkpoint (or
one set of images) evaluated under two names keeps two row sets: a name is what a source is called in
every table, and two names are two entries a user asked for. Stores written before the run joined the
key (or before the ``source`` column existed) are migrated in place on first open. Several processes may write at the same time: every
write is one ``BEGIN IMMEDIATE`` transaction with a busy timeout and bounded retries, so no row is lost.

Rows are dicts with the keys of :data:`ROW_KEYS` (what every metric module returns); ``write`` adds
package versions, the git commit and a UTC timestamp.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import math
import os
import random
import sqlite3
import time
from pathlib import Path
from typing import Iterable, Sequence

import w2p_eval.lazy as lazy
from w2p_eval.errors import EnvironmentFailure, InputError
from w2p_eval.metrics.registry import metric_spec
from w2p_eval.text import interval_text, plain_table, to_markdown
from w2p_eval.utils import atomic_path, connect_readonly, csv_safe, git_commit, package_versions
from w2p_eval.validate import check_store, store_problem

log = logging.getLogger(__name__)

STORE_NAME = "results.sqlite"
# seconds an open or write of the store waits in all for another process's lock: the default of ``--store-timeout``
# (the verbs pass theirs as ``timeout_s``)
STORE_TIMEOUT_S = 60.0
ROW_KEYS = (
    "data_hash", "run", "model", "checkpoint", "checkpoint_hash", "epoch", "metric", "split",
    "protocol", "seed", "value", "n", "evaluator", "evaluator_version", "config_hash", "extra",
)
# where the faces came from: checkpoint (ours), images (a folder of another model's faces), python (API)
OPTIONAL_KEYS = {"source": "checkpoint"}
UNIQUE_KEY = ("data_hash", "run", "checkpoint_hash", "metric", "split", "protocol", "seed", "evaluator")
PROVENANCE = ("versions", "git_commit", "timestamp")
COLUMNS = ROW_KEYS + tuple(OPTIONAL_KEYS) + PROVENANCE
_TYPES = {"epoch": "INTEGER", "seed": "INTEGER", "n": "INTEGER", "value": "REAL"}
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS results ("
    + ", ".join(f"{c} {_TYPES.get(c, 'TEXT')}" + (" NOT NULL" if c in UNIQUE_KEY else "") for c in COLUMNS)
    + f", UNIQUE ({', '.join(UNIQUE_KEY)}))"
)
_FILTERS = ("metric", "model", "run", "split", "protocol", "seed", "evaluator", "data_hash", "checkpoint_hash",
            "checkpoint", "source")


SAMPLES_DIR = "samples"
MAX_SAMPLE_IDENTITIES = 10


def sample_file(store_path: str | os.PathLike, run: str, source_hash: str) -> Path:
    """Where the faces kept for the report's sample grid of (run, source) live: beside the store."""
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(run))[:80]
    exact = hashlib.sha256(str(run).encode()).hexdigest()[:8]  # "a b" and "a_b" share a slug, not a file
    return Path(store_path).parent / SAMPLES_DIR / f"{slug}-{exact}-{source_hash[:16]}.npz"


def save_samples(gs, path: Path) -> None:
    """Keep a GeneratedSet's first test pair of each identity (up to 10) for the report's sample grid:
    generated and real faces (uint8), identities, pair ids and the epoch (-1: none)."""
    np = lazy.numpy()
    first: dict[str, int] = {}
    for i, ident in enumerate(gs.identities):
        first.setdefault(ident, i)
    names = sorted(first)[:MAX_SAMPLE_IDENTITIES]
    idx = [first[n] for n in names]
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, identities=np.array(names, dtype=str), pair_ids=np.array([gs.pair_ids[i] for i in idx], dtype=str),
                 fake=gs.fake[idx], real=gs.real[idx], epoch=np.array(-1 if gs.epoch is None else gs.epoch))


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
    >>> store.write(rows)            # rows from an Evaluation (w2p_eval.evaluation) ...
    >>> store.query(metric="identity_top1_fake")   # pandas DataFrame
    """

    def __init__(self, path: str | os.PathLike, timeout_s: float | None = None, retries: int | None = None,
                 readonly: bool = False):
        """``timeout_s``: how long one open or write waits, in all, for another process's lock before it gives
        up (EnvironmentFailure, exit 1); None -> :data:`STORE_TIMEOUT_S` (``--store-timeout``'s default)."""
        self.path = Path(path)
        if self.path.exists() and self.path.is_dir():
            raise InputError(f"expected a results store file (.sqlite), got folder {self.path}")
        self.readonly = bool(readonly)  # queries only: opened read-only, never created or switched to WAL
        self.timeout_s = float(STORE_TIMEOUT_S if timeout_s is None else timeout_s)
        check_store(self.path, ROW_KEYS + PROVENANCE, write=not self.readonly,  # older stores lack `source`
                    timeout_s=self.timeout_s)
        self._provenance: dict | None = None
        if not self.readonly:
            self._retrying(self._init_schema)

    # -- connection and retries -------------------------------------------------------------
    def _connect(self, wait_s: float) -> sqlite3.Connection:
        if self.readonly:
            return connect_readonly(self.path, wait_s)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=wait_s, isolation_level=None)
        con.execute(f"PRAGMA busy_timeout = {int(wait_s * 1000)}")
        return con

    def _retrying(self, fn, *args):
        """Run ``fn(con, *args)``; while another process holds the store's lock, retry (jittered) until
        ``timeout_s`` has passed in all, saying once that it waits; then EnvironmentFailure (exit 1).
        Other SQLite failures (disk full, read-only) are environment failures naming the cause."""
        deadline = time.monotonic() + self.timeout_s
        said = False
        for attempt in range(10**6):
            con = None
            try:
                con = self._connect(max(0.05, min(2.0, deadline - time.monotonic())))
                return fn(con, *args)
            except sqlite3.OperationalError as exc:
                msg = str(exc).lower()
                if "locked" not in msg and "busy" not in msg:
                    raise EnvironmentFailure(store_problem(self.path, exc)) from None
                if time.monotonic() >= deadline:
                    raise EnvironmentFailure(f"the results store {self.path} stayed locked by another process for "
                                             f"{self.timeout_s:g} s (--store-timeout); wait for that process to "
                                             f"finish, or pass a larger --store-timeout") from None
                if not said:
                    log.warning("the results store %s is locked by another process; waiting up to %g s "
                                "(--store-timeout)", self.path, self.timeout_s)
                    said = True
                time.sleep(min(1.0, 0.05 * 2 ** min(attempt, 5)) * (0.5 + random.random()))
            except sqlite3.DatabaseError as exc:
                raise InputError(f"expected an SQLite results store, got {self.path} ({exc})") from None
            finally:
                if con is not None:
                    con.close()
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _init_schema(con: sqlite3.Connection) -> None:
        # The table first, in one statement, and only then WAL: switching a new file to WAL writes its header,
        # and another process (a second torchrun rank) checking the store in between would find an SQLite
        # file without a `results` table and refuse it as someone else's database.
        con.execute(_SCHEMA)
        mode = con.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":  # pragma: no cover - e.g. a network filesystem
            log.warning("results store could not switch to WAL mode (got %s)", mode)
        have = [r[1] for r in con.execute("PRAGMA table_info(results)")]
        missing = [c for c in ROW_KEYS + PROVENANCE if c not in have]
        if missing:
            raise InputError(f"expected a w2p-eval results table with columns {list(COLUMNS)}, "
                             f"missing {missing}")
        sql = con.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'results'").fetchone()[0]
        if f"UNIQUE ({', '.join(UNIQUE_KEY)})" not in sql or any(c not in have for c in COLUMNS):
            ResultsStore._migrate(con, have)

    @staticmethod
    def _migrate(con: sqlite3.Connection, have: list[str]) -> None:
        """Rebuild an older store's table with today's columns and unique key, keeping every row."""
        log.info("migrating results store to the current schema (run name in the key, source column)")
        con.execute("BEGIN IMMEDIATE")
        try:
            con.execute("ALTER TABLE results RENAME TO results_old")
            con.execute(_SCHEMA)
            cols = [c for c in COLUMNS if c in have]
            fill = [c for c in OPTIONAL_KEYS if c not in have]
            con.execute(f"INSERT INTO results ({', '.join(cols + fill)}) SELECT {', '.join(cols)}"
                        + "".join(f", '{OPTIONAL_KEYS[c]}'" for c in fill) + " FROM results_old")
            con.execute("DROP TABLE results_old")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

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
        rec.update({k: str(row.get(k) or default) for k, default in OPTIONAL_KEYS.items()})
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
        pd = lazy.pandas()
        where, params = self._where(filters)
        have = {r[1] for r in self._retrying(lambda con: con.execute("PRAGMA table_info(results)").fetchall())}
        select = [c if c in have else f"'{OPTIONAL_KEYS[c]}' AS {c}" for c in COLUMNS]  # a read-only older store
        sql = f"SELECT {', '.join(select)} FROM results{where} ORDER BY run, epoch, metric, seed"
        records = self._retrying(lambda con: con.execute(sql, params).fetchall())
        df = pd.DataFrame.from_records(records, columns=list(COLUMNS))
        df["value"] = pd.to_numeric(df["value"], errors="coerce").astype(float)
        df["extra"] = [json.loads(x) if x else {} for x in df["extra"]]
        return df

    def has(self, *, data_hash: str, checkpoint_hash: str, split: str, protocol: str, seed: int,
            evaluator: str, metrics: Sequence[str] | None = None, run: str | None = None) -> bool:
        """True when the store already holds every metric in ``metrics`` (or any row when None)
        for this checkpoint, data, split, protocol, seed and evaluator (and run name, when given)."""
        where, params = self._where(dict(data_hash=data_hash, checkpoint_hash=checkpoint_hash, split=split,
                                         protocol=protocol, seed=seed, evaluator=evaluator, run=run))
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


def row_ci(extra) -> dict | None:
    """The interval stored in a row's ``extra`` (``extra["ci"]``), or for older landmark rows their Wilson
    ``ci_low``/``ci_high``; None when the row has none."""
    if not isinstance(extra, dict):
        return None
    ci = extra.get("ci")
    if isinstance(ci, dict) and ci.get("low") is not None and ci.get("high") is not None:
        return ci
    if extra.get("ci_low") is not None and extra.get("ci_high") is not None:
        return {"low": extra["ci_low"], "high": extra["ci_high"], "method": "wilson"}
    return None


def format_table(df, fmt: str = "csv") -> str:
    """A results DataFrame as csv, md (Markdown) or json (one object per row, a JSON list). csv and md show each
    row's stored 95 % interval as ``ci_low``/``ci_high`` (empty where the metric has none, e.g. Fréchet)."""
    if fmt == "json":
        recs = json.loads(df.to_json(orient="records"))  # NaN -> null
        return json.dumps(recs, indent=2) + "\n"
    view = df.copy()
    if "extra" in view.columns:
        cis = [row_ci(e) or {} for e in view["extra"]]
        view["ci_low"] = [c.get("low") for c in cis]
        view["ci_high"] = [c.get("high") for c in cis]
    cols = [c for c in ("run", "model", "source", "epoch", "metric", "split", "protocol", "seed", "value", "ci_low",
                        "ci_high", "n", "evaluator")
            if c in view.columns]
    view = view[cols]
    if fmt == "md":
        return to_markdown(view) + "\n"
    if fmt == "csv":
        return csv_safe(view).to_csv(index=False)
    raise InputError(f"expected format one of csv, md, json, got {fmt!r}")


def format_rows(rows, note: str | None = None) -> str:
    """Metric rows (dicts or a results DataFrame) as the one plain-text table every verb prints: columns
    ``run  model  epoch  metric  value [95 % CI]  n``; rates in % with their stored interval
    (``86.0 % [83.1, 88.7]``), other values with 4 significant digits, '–' for anything missing (no epoch,
    a skipped metric, no interval). ``note`` is printed under the table."""
    records = rows.to_dict("records") if hasattr(rows, "to_dict") else list(rows)
    if not records:
        return "no rows"
    body = []
    for r in records:
        value = r.get("value")
        missing = value is None or (isinstance(value, float) and not math.isfinite(value))
        epoch = r.get("epoch")
        has_epoch = epoch is not None and not (isinstance(epoch, float) and math.isnan(epoch))
        n = r.get("n")
        body.append([str(r.get("run", "–")), _model_cell(r), str(int(epoch)) if has_epoch else "–", str(r["metric"]),
                     interval_text(value, row_ci(r.get("extra")), metric_spec(str(r["metric"])).is_rate),
                     "–" if missing or n is None or (isinstance(n, float) and math.isnan(n)) else str(int(n))])
    text = plain_table(["run", "model", "epoch", "metric", "value [95 % CI]", "n"], body)
    return text + (f"\n{note}" if note else "")


def _model_cell(r: dict) -> str:
    source = r.get("source") or "checkpoint"
    return f"external ({source})" if source != "checkpoint" else str(r.get("model", "–"))
