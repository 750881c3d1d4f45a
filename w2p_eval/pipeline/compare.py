"""`w2p-eval compare A B`: two face sources scored on the same test pairs, metric by metric, with the paired
difference's interval and an exact McNemar test for paired accuracies.

A and B are each a run folder (its final checkpoint), a checkpoint file, or a folder of images named by pair
id (any model's faces): a folder with a ``checkpoints/`` subfolder or ``epoch_*.pt`` files is a run, any
other folder is images (:func:`resolve_source`). Both go through the same suites with the same options (one
judge, trained once); their test pairs must be the same set, else InputError. Per metric:

- ``a``, ``b``: each source's value (the row value the store would hold) with its interval (``a_ci``/``b_ci``);
- ``difference`` = a - b with ``diff_ci``: :func:`w2p_eval.metrics.stats.paired_diff_ci` on the per-item values
  (same items, groups = face ids, the suite's item weights, seeded);
- ``mcnemar`` for paired 0/1 accuracies (identity top-1/top-5, recall over centroids, matching, landmark
  detection): :func:`w2p_eval.metrics.stats.mcnemar_exact` on ``value == 1`` (b = A right and B wrong,
  c = A wrong and B right, p = binomtest(b, b + c, 1/2)); it treats items as independent, so read it with the
  interval, which respects the face grouping.

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
from w2p_eval.metrics.base import EvalOptions, ItemValues, SuiteResult, step_bar, suite_tasks
from w2p_eval.metrics.preflight import check_requirements
from w2p_eval.metrics.registry import get_suite, metric_spec
from w2p_eval.models.sources import SourceItem, checkpoint_items, folder_item
from w2p_eval.report.comparison import FORMAT, format_comparison, load_comparison  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

DEFAULT_COMPARE_SUITES = ("identity", "retrieval", "distances", "matching")


def resolve_source(path: str | os.PathLike, name: str | None = None) -> SourceItem:
    """A compare operand -> one source item: a checkpoint file; a run folder (``checkpoints/`` or
    ``epoch_*.pt`` inside) -> its final checkpoint; any other folder -> its images (named by pair id)."""
    p = Path(path)
    if p.is_file():
        return checkpoint_items(p, name=name)[-1]
    if not p.is_dir():
        raise InputError(f"expected a run folder, checkpoint file or folder of face images, got missing path {p}")
    if (p / "checkpoints").is_dir() or any(p.glob("epoch_*.pt")):
        return checkpoint_items(p, final_only=True, name=name)[-1]
    return folder_item(p, name or p.resolve().name)


def _side(item: SourceItem) -> dict:
    return {"name": item.run, "source": item.kind, "path": item.label, "hash": item.content_hash,
            "model": item.model, "epoch": item.epoch}


def _score(item: SourceItem, tasks, opts: EvalOptions) -> tuple[list[str], dict[tuple[str, str], SuiteResult]]:
    """Faces of ``item`` made once, every (suite, options) task scored on them -> (pair ids, {(suite name,
    evaluator): SuiteResult})."""
    todo = [(s, o) for s, o in tasks if s.applies(item.model, item.kind)]
    try:
        with step_bar(item.run, len(todo)) as bar:
            gs = item.faces(opts.data_dir, split=opts.split, protocol=opts.protocol, device=opts.device,
                            seed=opts.seed, batch_size=opts.batch_size)
            out = {}
            for s, o in todo:
                bar.update()
                bar.set_postfix_str(s.name)
                out[(s.name, s.evaluator(o))] = s.score(gs, o)
            bar.update()
        return list(gs.pair_ids), out
    finally:
        item.release()


def _pairs_of(item: SourceItem, opts: EvalOptions) -> list[str]:
    """The test pairs a source will have faces for, known without making them: a folder's images matched by
    name; every pair of the split for a checkpoint (unreadable images are caught after reading)."""
    from w2p_eval.models.sources import FolderItem, match_folder, split_rows

    pairs = [str(p) for p in split_rows(opts.data_dir, opts.split, opts.protocol)["pair_id"]]
    if isinstance(item, FolderItem):
        return sorted(match_folder(item.folder, pairs))
    return pairs


def _check_same_pairs(a_name: str, a_pairs: list[str], b_name: str, b_pairs: list[str]) -> None:
    only_a, only_b = sorted(set(a_pairs) - set(b_pairs)), sorted(set(b_pairs) - set(a_pairs))
    if only_a or only_b:
        ex = (only_a or only_b)[:3]
        raise InputError(f"expected A and B scored on the same test pairs, got {len(a_pairs)} pairs for {a_name} and "
                         f"{len(b_pairs)} for {b_name} ({len(only_a)} only in A, {len(only_b)} only in B, e.g. "
                         f"{', '.join(ex)}); give both a face for every test pair, or compare on a common subset")


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


def compare_metric(metric: str, ra: tuple, rb: tuple, ia: ItemValues | None, ib: ItemValues | None,
                   opts: EvalOptions) -> dict:
    """One metric's comparison entry (see the module docstring); ``ra``/``rb`` = (value, n, extra) rows."""
    from w2p_eval.metrics.stats import mcnemar_exact, paired_diff_ci

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
                          seed=opts.seed, n_resamples=opts.n_resamples)
    entry.update(difference=diff.value, diff_ci=diff.to_dict(), n_items=int(ok.sum()))
    if ia.binary and ib.binary and w is None:
        entry["mcnemar"] = mcnemar_exact(a[ok] == 1, b[ok] == 1)
    return entry


def _num(x) -> float | None:
    x = float(x)
    return None if not np.isfinite(x) else x


def compare_sources(a: str | os.PathLike | SourceItem, b: str | os.PathLike | SourceItem, opts: EvalOptions, *,
                    suites: Sequence[str] = DEFAULT_COMPARE_SUITES, name_a: str | None = None,
                    name_b: str | None = None, metrics: Sequence[str] | None = None) -> dict:
    """Score A and B (paths as in :func:`resolve_source`, or source items) with ``suites`` on the same test
    pairs and compare them metric by metric -> JSON-able dict::

        {"format": "w2p-eval-compare", "a": {name, source, path, hash, model, epoch}, "b": {...},
         "data_hash", "split", "protocol", "seed", "testlist", "n_pairs", "suites",
         "judges", "metrics": [{metric, label, unit, higher_is_better, a, b, a_ci, b_ci, n_a, n_b, difference,
                                diff_ci, mcnemar, n_items, evaluator}]}

    With several identity judges (``opts.judges``) the identity-space metrics appear once per judge, each
    entry naming its ``evaluator``.

    ``metrics``: keep only these metric names (all by default). Bad input (unknown suite, different test
    pairs, a test list for another dataset applied to ``opts``) is InputError before or instead of a result.
    """
    from w2p_eval.data.manifest import manifest_hash

    tasks = suite_tasks([get_suite(s) for s in suites], opts)  # judged suites once per identity judge
    for s, suite_opts in tasks:
        s.check(suite_opts)
    ia = a if isinstance(a, SourceItem) else resolve_source(a, name_a)
    ib = b if isinstance(b, SourceItem) else resolve_source(b, name_b)
    if ia.run == ib.run:
        raise InputError(f"expected two differently named sources, got {ia.run!r} for both (give --name-a/--name-b)")
    for item in (ia, ib):
        item.check(opts.data_dir, split=opts.split, protocol=opts.protocol)
    check_requirements([s for s, _ in tasks], opts, [ia, ib])  # every judge's files before any face (issue 31)
    _check_same_pairs(ia.run, _pairs_of(ia, opts), ib.run, _pairs_of(ib, opts))  # before any face is made
    pairs_a, res_a = _score(ia, tasks, opts)
    pairs_b, res_b = _score(ib, tasks, opts)
    _check_same_pairs(ia.run, pairs_a, ib.run, pairs_b)
    todo = [(key, metric) for key in res_a if key in res_b for metric in res_a[key].values
            if metric in res_b[key].values and (not metrics or metric in metrics)]
    entries = []
    for key, metric in tqdm(todo, desc="paired intervals", unit="metric", leave=False, disable=None,
                            dynamic_ncols=True):
        sa, sb = res_a[key], res_b[key]
        entry = compare_metric(metric, sa.values[metric], sb.values[metric], sa.items.get(metric),
                               sb.items.get(metric), opts)
        entries.append({**entry, "evaluator": key[1]})
    if not entries:
        raise InputError(f"expected metrics that both sources have among suites {', '.join(suites)}"
                         + (f" and --metrics {', '.join(metrics)}" if metrics else "") + ", got none")
    return {"format": FORMAT, "a": _side(ia), "b": _side(ib), "data_hash": manifest_hash(opts.data_dir),
            "split": opts.split, "protocol": opts.protocol, "seed": opts.seed, "testlist": opts.testlist_id,
            "n_pairs": len(pairs_a), "suites": list(suites), "judges": list(opts.judges), "metrics": entries}
