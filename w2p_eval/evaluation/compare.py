"""`w2p-eval compare A B`: two face sources scored on the same test pairs, metric by metric, with the paired
difference's interval and an exact McNemar test for paired accuracies.

A and B are each a run folder (its final checkpoint), a checkpoint file, or a folder of images named by pair
id (any model's faces): a folder with a ``checkpoints/`` subfolder or ``epoch_*.pt`` files is a run, any
other folder is images (:func:`resolve_source`). Both go through the same suites under one plan (each
judge trained once); their test pairs must be the same set, else InputError. Per metric:

- ``a``, ``b``: each source's value (the row value the store would hold) with its interval (``a_ci``/``b_ci``);
- ``difference`` = a - b with ``diff_ci``: :func:`w2p_eval.metrics.stats.paired_diff_ci` on the per-item values
  (same items, groups = face ids, the suite's item weights, seeded);
- ``mcnemar`` for paired 0/1 accuracies (identity top-1/top-5, recall over centroids, matching, landmark
  detection): :func:`w2p_eval.metrics.stats.mcnemar_exact` on ``value == 1`` (b = A right and B wrong,
  c = A wrong and B right, p = binomtest(b, b + c, 1/2)); it treats items as independent, so read it with the
  interval, which respects the face grouping.

When a results store holds both sources' rows under the same plan (``evaluate`` ran on them), the values
and the per-item values kept beside the store are read: no checkpoint is opened and no judge runs (the
numbers are the same, since the rows were computed by the same loop). Otherwise each source is scored by
:meth:`w2p_eval.evaluation.Evaluation.score` (its faces once, every suite on them).

The result is a JSON-able dict (:func:`compare_sources`); :func:`w2p_eval.report.comparison.format_comparison`
prints it as one table, and ``w2p-eval report --compare FILE`` renders a saved one as a report section.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from w2p_eval.errors import InputError
from w2p_eval.evaluation.items import Scored, read_items
from w2p_eval.metrics.base import ItemValues
from w2p_eval.metrics.registry import metric_spec
from w2p_eval.metrics.stats import mcnemar_exact, paired_diff_ci
from w2p_eval.models.sources import FolderItem, SourceItem, match_folder, source_items, split_rows
from w2p_eval.report.comparison import FORMAT
from w2p_eval.results import ResultsStore

log = logging.getLogger(__name__)

Side = dict[tuple[str, str], dict[str, Scored]]  # (suite, evaluator) -> metric -> row + item values


def resolve_source(path: str | os.PathLike, name: str | None = None) -> SourceItem:
    """A compare operand -> one source item (:func:`~w2p_eval.models.sources.source_items`): a checkpoint file; a
    run folder -> its final checkpoint; a plugin's kind; any other folder -> its images (named by pair id)."""
    if not Path(path).exists():
        raise InputError(f"expected a run folder, checkpoint file or folder of face images, got missing path {path}")
    return source_items(path, name, final_only=True)[-1]


def _side(item: SourceItem) -> dict:
    return {"name": item.run, "source": item.kind, "path": item.label, "hash": item.content_hash,
            "model": item.model, "epoch": item.epoch}


def _pairs_of(item: SourceItem, ev) -> list[str]:
    """The test pairs a source will have faces for, known without making them: a folder's images matched by
    name; every pair of the split for a checkpoint (unreadable images are caught after reading)."""
    pairs = [str(p) for p in split_rows(ev.plan.data, ev.plan.split, ev.plan.protocol)["pair_id"]]
    if isinstance(item, FolderItem):
        return sorted(match_folder(item.folder, pairs, item.notes))
    return pairs


def _check_same_pairs(a_name: str, a_pairs, b_name: str, b_pairs) -> None:
    if isinstance(a_pairs, int) or isinstance(b_pairs, int):  # a count read from the store: counts compared
        a_pairs, b_pairs = (p if isinstance(p, int) else len(p) for p in (a_pairs, b_pairs))
        if a_pairs != b_pairs:
            raise InputError(f"expected A and B scored on the same test pairs, got {a_pairs} pairs for {a_name} and "
                             f"{b_pairs} for {b_name}")
        return
    only_a, only_b = sorted(set(a_pairs) - set(b_pairs)), sorted(set(b_pairs) - set(a_pairs))
    if only_a or only_b:
        ex = (only_a or only_b)[:3]
        raise InputError(f"expected A and B scored on the same test pairs, got {len(a_pairs)} pairs for {a_name} and "
                         f"{len(b_pairs)} for {b_name} ({len(only_a)} only in A, {len(only_b)} only in B, e.g. "
                         f"{', '.join(ex)}); give both a face for every test pair, or compare on a common subset")


def _recall(item: SourceItem, results: ResultsStore, data_hash: str) -> None:
    """A stored source's model and epoch from its rows (same content hash): its checkpoint stays unopened."""
    if item.kind == "checkpoint":
        rows = results.query(data_hash=data_hash, checkpoint_hash=item.content_hash, run=item.run)
        if not rows.empty:
            item.recall(rows["model"].iloc[0], rows["epoch"].iloc[0])


def _from_store(ev, item: SourceItem, results: ResultsStore | None, store_path) -> tuple[int, Side] | None:
    """A source's rows and item values from the store when it holds every task under this plan, else None."""
    if results is None or item.kind == "python":
        return None
    out: Side = {}
    n_pairs = None
    for suite, ctx in ev.tasks():
        if not suite.applies(item.model, item.kind):
            continue
        rows = ev.stored(results, item, suite, ctx)
        if rows is None:
            return None
        metrics = {}
        for row in rows.to_dict("records"):
            kept, items, position = read_items(store_path, row)
            if not kept:
                return None  # no item values kept: score again rather than lose the paired interval
            metrics[row["metric"]] = Scored(row, items, position)
            extra = row["extra"] or {}
            n_pairs = int(extra.get("n_pairs_expected", 0)) - int(extra.get("n_pairs_missing", 0))
        out[(suite.name, suite.evaluator(ctx))] = dict(sorted(metrics.items(), key=lambda kv: kv[1].position))
    return (n_pairs or 0), out


def _scored(ev, item: SourceItem) -> tuple[list[str], Side]:
    """The faces of ``item`` made once and every task scored on them -> (pair ids, side)."""
    pair_ids: list[str] = []
    out: Side = {}
    names = {(m.name, su.evaluator(c)): su.name for su, c in ev.tasks() for m in su.metrics}
    for s in ev.score(item, on_faces=lambda gs: pair_ids.extend(gs.pair_ids)):
        key = (names.get((s.row["metric"], s.row["evaluator"]), ""), s.row["evaluator"])
        out.setdefault(key, {})[s.row["metric"]] = s  # in the suite's own order, as the store keeps it
    return pair_ids, out


def _align(ia: ItemValues, ib: ItemValues) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray | None]:
    """Both sides' per-item values on the items both have, in A's order -> (a, b, groups, weights)."""
    index_b = {k: i for i, k in enumerate(ib.keys)}
    pos = [(i, index_b[k]) for i, k in enumerate(ia.keys) if k in index_b]
    if not pos:
        raise InputError("expected A and B to share scored items, got none in common")
    ai, bi = (np.array(x, dtype=np.int64) for x in zip(*pos))
    w = None if ia.weights is None else np.asarray(ia.weights, np.float64)[ai]
    return (np.asarray(ia.values, np.float64)[ai], np.asarray(ib.values, np.float64)[bi],
            [ia.groups[i] for i in ai], w)


def compare_metric(metric: str, ra: tuple, rb: tuple, ia: ItemValues | None, ib: ItemValues | None, *,
                   seed: int, n_resamples: int = 2000) -> dict:
    """One metric's comparison entry (see the module docstring); ``ra``/``rb`` = (value, n, extra) rows."""
    spec = metric_spec(metric)
    entry = {"metric": metric, "label": spec.label, "unit": spec.unit, "higher_is_better": spec.higher_is_better,
             "a": _num(ra[0]), "b": _num(rb[0]), "a_ci": ra[2].get("ci"), "b_ci": rb[2].get("ci"),
             "n_a": int(ra[1]), "n_b": int(rb[1]), "difference": _num(ra[0] - rb[0]), "diff_ci": None,
             "mcnemar": None, "n_items": None}
    if ia is None or ib is None:
        return entry
    a, b, groups, w = _align(ia, ib)
    ok = np.isfinite(a) & np.isfinite(b) & (np.ones_like(a, bool) if w is None else w > 0)
    if not ok.any():
        return entry
    diff = paired_diff_ci(a[ok], b[ok], np.asarray(groups)[ok], weights=None if w is None else w[ok],
                          seed=seed, n_resamples=n_resamples)
    entry.update(difference=diff.value, diff_ci=diff.to_dict(), n_items=int(ok.sum()))
    if ia.binary and ib.binary and w is None:
        entry["mcnemar"] = mcnemar_exact(a[ok] == 1, b[ok] == 1)
    return entry


def _num(x) -> float | None:
    x = float(x)
    return None if not np.isfinite(x) else x


def compare_sources(a: str | os.PathLike | SourceItem, b: str | os.PathLike | SourceItem, ev, *,
                    name_a: str | None = None, name_b: str | None = None, metrics: Sequence[str] | None = None,
                    store: str | os.PathLike | None = None) -> dict:
    """Compare A and B (paths as in :func:`resolve_source`, or source items) under the plan of ``ev`` (an
    :class:`~w2p_eval.evaluation.Evaluation`: its suites, on the same test pairs) metric by metric -> JSON-able
    dict::

        {"format": "w2p-eval-compare", "a": {name, source, path, hash, model, epoch}, "b": {...},
         "data_hash", "split", "protocol", "seed", "testlist", "n_pairs", "suites",
         "judges", "metrics": [{metric, label, unit, higher_is_better, a, b, a_ci, b_ci, n_a, n_b, difference,
                                diff_ci, mcnemar, n_items, evaluator}]}

    ``store``: a results store; a side it holds under this plan (every task's rows, their item values beside
    it) is read, not scored. ``metrics``: keep only these metric names. Bad input (unknown suite, different
    test pairs) is InputError before or instead of a result.
    """
    ia = a if isinstance(a, SourceItem) else resolve_source(a, name_a)
    ib = b if isinstance(b, SourceItem) else resolve_source(b, name_b)
    if ia.run == ib.run:
        raise InputError(f"expected two differently named sources, got {ia.run!r} for both (give --name-a/--name-b)")
    ev = ev.with_sources([ia, ib])
    results = ResultsStore(store, readonly=True) if store is not None and Path(store).is_file() else None
    if results is not None:
        for item in (ia, ib):
            _recall(item, results, ev.data_hash)
    ev.check(requirements=False)  # the judges' files are checked below, only when a side is scored
    _check_same_pairs(ia.run, _pairs_of(ia, ev), ib.run, _pairs_of(ib, ev))  # before any face is made
    sides = {item.run: _from_store(ev, item, results, store) for item in (ia, ib)}
    to_score = [item for item in (ia, ib) if sides[item.run] is None]
    if to_score:
        ev.check_requirements(to_score)
    for item in (ia, ib):
        if sides[item.run] is None:
            sides[item.run] = _scored(ev, item)
        else:
            log.info("%s: read from the store %s (no face generated, no judge run)", item.run, store)
    (pairs_a, res_a), (pairs_b, res_b) = sides[ia.run], sides[ib.run]
    _check_same_pairs(ia.run, pairs_a, ib.run, pairs_b)
    todo = [(key, metric) for key in res_a if key in res_b for metric in res_a[key]
            if metric in res_b[key] and (not metrics or metric in metrics)]
    entries = []
    for key, metric in tqdm(todo, desc="paired intervals", unit="metric", leave=False, disable=None,
                            dynamic_ncols=True):
        sa, sb = res_a[key][metric], res_b[key][metric]
        entry = compare_metric(metric, *((s.row["value"], s.row["n"], s.row["extra"] or {}) for s in (sa, sb)),
                               sa.items, sb.items, seed=ev.plan.seed, n_resamples=ev.plan.n_resamples)
        entries.append({**entry, "evaluator": key[1]})
    if not entries:
        raise InputError(f"expected metrics that both sources have among suites {', '.join(ev.plan.suites)}"
                         + (f" and --metrics {', '.join(metrics)}" if metrics else "") + ", got none")
    n_pairs = pairs_a if isinstance(pairs_a, int) else len(pairs_a)
    return {"format": FORMAT, "a": _side(ia), "b": _side(ib), "data_hash": ev.data_hash,
            "split": ev.plan.split, "protocol": ev.plan.protocol, "seed": ev.plan.seed, "testlist": ev.plan.testlist_id,
            "n_pairs": n_pairs, "suites": list(ev.plan.suites), "judges": list(ev.context.judges), "metrics": entries}
