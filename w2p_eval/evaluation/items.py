"""Per-item values kept beside the results store, and the one function that aggregates them.

Every row the evaluation writes gets a file ``<store>-items/<key>.npz`` (``key`` = a hash of the row's identity,
:func:`items_key`, so the row itself is unchanged) with its :class:`~w2p_eval.metrics.base.ItemValues` (one
value per test pair, probe or identity, with the face id each is resampled with, and its weight), or a file
saying it has none (e.g. a Fréchet distance). The file holds plain arrays (no pickle): ``keys``, ``values``
float64, ``groups``, ``weights`` float64 (empty: none), ``binary``, ``has_items``. A row without a file was
written before item values were kept (``compare`` then scores that source again). ``w2p-eval compare --store`` reads them instead of scoring again; ``w2p-eval results --items``
exports them as CSV. :func:`aggregate` is the one place a value and its interval come from item values.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from w2p_eval.metrics.base import ItemValues, ci_dict
from w2p_eval.utils import atomic_path, csv_cell, sha256_json


@dataclass
class Scored:
    """One result row (keys of ``results.ROW_KEYS``) and the per-item values behind it (None: none kept)."""

    row: dict
    items: ItemValues | None = None
    position: int = 0  # the row's place among its suite result's rows


ITEMS_FORMAT = 1
CSV_COLUMNS = ("run", "model", "epoch", "checkpoint_hash", "split", "protocol", "seed", "evaluator", "metric",
               "item", "value", "group", "weight")


def items_dir(store_path: str | os.PathLike) -> Path:
    """``<store stem>-items/`` beside the store (``results.sqlite`` -> ``results-items/``)."""
    p = Path(store_path)
    return p.parent / f"{p.stem}-items"


def items_key(row: dict) -> str:
    """A row's identity (the store's unique key + its config hash and test list) -> the file's name."""
    extra = row.get("extra") or {}
    ident = {k: row.get(k) for k in ("data_hash", "run", "checkpoint_hash", "metric", "split", "protocol", "seed",
                                     "evaluator", "config_hash")}
    ident["testlist"] = extra.get("testlist")
    return sha256_json(ident)[:32]


def aggregate(items: ItemValues, *, seed: int, n_resamples: int = 2000, rate: bool = True) -> tuple[float, dict | None]:
    """Value and 95 % interval of a metric from its item values: the weighted mean of the finite items
    (``sum(w v) / sum(w)``) and :func:`~w2p_eval.metrics.base.ci_dict` over them (groups = face ids)."""
    v = np.asarray(items.values, np.float64)
    w = np.ones(len(v)) if items.weights is None else np.asarray(items.weights, np.float64)
    ok = np.isfinite(v) & (w > 0)
    value = float(np.sum(v[ok] * w[ok]) / np.sum(w[ok])) if ok.any() else float("nan")
    return value, ci_dict(v, items.groups, weights=items.weights, seed=seed, n_resamples=n_resamples, rate=rate)


def items_file(store_path: str | os.PathLike, row: dict) -> Path:
    return items_dir(store_path) / f"{items_key(row)}.npz"


def save_items(store_path: str | os.PathLike, row: dict, items: ItemValues | None, position: int = 0) -> Path:
    """Write ``row``'s item values (None: the row has none) beside the store, atomically -> the file.
    ``position``: the row's place among its suite's rows (so a comparison read back lists them in that order)."""
    items = items or ItemValues([], np.zeros(0), [])
    path = items_file(store_path, row)
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, format=np.array(ITEMS_FORMAT), keys=np.array([str(k) for k in items.keys], dtype=str),
                 values=np.asarray(items.values, np.float64), groups=np.array([str(g) for g in items.groups], dtype=str),
                 weights=np.zeros(0) if items.weights is None else np.asarray(items.weights, np.float64),
                 binary=np.array(bool(items.binary)), has_items=np.array(len(items.keys) > 0 or items.binary),
                 position=np.array(int(position)))
    return path


def read_items(store_path: str | os.PathLike, row: dict) -> tuple[bool, ItemValues | None, int]:
    """(kept, items, position) for ``row``: kept is False when no readable file is there (a row written before
    item values were kept, or a file gone or damaged); items is None when the row has none."""
    try:
        with np.load(items_file(store_path, row), allow_pickle=False) as z:
            position = int(z["position"])
            if not bool(z["has_items"]):
                return True, None, position
            weights = z["weights"]
            out = ItemValues(keys=z["keys"].tolist(), values=z["values"], groups=z["groups"].tolist(),
                             weights=weights if len(weights) else None, binary=bool(z["binary"]))
    except (OSError, KeyError, ValueError, EOFError):
        return False, None, 0
    ok = len(out.keys) == len(out.values) == len(out.groups)
    return ok, (out if ok else None), position


def items_csv(store_path: str | os.PathLike, rows: Iterable[dict]) -> str:
    """Every kept item value of ``rows`` as CSV (:data:`CSV_COLUMNS`; weight empty when unweighted)."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(CSV_COLUMNS)
    for row in rows:
        _, items, _ = read_items(store_path, row)
        if items is None:
            continue
        head = [csv_cell(row.get(k)) for k in CSV_COLUMNS[:9]]
        weights = items.weights if items.weights is not None else [None] * len(items.keys)
        for key, value, group, weight in zip(items.keys, items.values, items.groups, weights):
            out.writerow([*head, csv_cell(key), repr(float(value)), csv_cell(group), "" if weight is None else repr(float(weight))])
    return buf.getvalue()
