"""`w2p-eval evaluate` as a function: run folders, checkpoints and image folders -> an
:class:`~w2p_eval.evaluation.Evaluation` -> the results store (the loop itself is ``Evaluation.run``)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from w2p_eval.errors import InputError
from w2p_eval.evaluation import EvalSummary, Evaluation, rank_share  # noqa: F401  (rank_share: re-exported)
from w2p_eval.models.sources import SourceItem, check_distinct_names, folder_item, source_items
from w2p_eval.results import default_store


def build_items(run_dirs: Sequence, images: Sequence[tuple[str, str]] = (), final_only: bool = False) -> list[SourceItem]:
    """Source items of run folders / checkpoints and of ``(images folder, name)`` pairs; names must be distinct."""
    items: list[SourceItem] = []
    for path in run_dirs:  # checkpoints and run folders, or a plugin's source kind (never a bare image folder)
        items += source_items(path, final_only=final_only, fallback=False)
    for folder, name in images:
        items.append(folder_item(folder, name))
    if not items:
        raise InputError("expected at least one RUN_DIR, --baselines run folder or --images DIR --name NAME, got none")
    check_distinct_names(items)
    return items


def evaluate_runs(run_dirs: Sequence[str | os.PathLike], data_dir, *, store: str | os.PathLike | None = None,
                  baselines: Sequence[str | os.PathLike] = (), images: Sequence[tuple[str, str]] = (),
                  final_only: bool = False, force: bool = False, overlay_root: str | os.PathLike | None = None,
                  **plan_and_runtime) -> EvalSummary:
    """Evaluate every checkpoint of ``run_dirs`` and ``baselines`` and every ``(folder, name)`` of ``images``
    into ``store`` (default ``DATA/results.sqlite``), skipping what it holds unless ``force``.

    ``plan_and_runtime``: the keywords of :meth:`Evaluation.build` (suites, split, protocol, seed, backbone,
    judge_options, backend, gallery_size, n_galleries, matching, testlist, given, device, workers, batch_size,
    cache_dir). Landmark overlays go to ``overlay_root`` (default: ``overlays/`` beside the store). Bad options
    are refused before anything runs; a source failing with InputError is counted in ``failed``.
    """
    ev = Evaluation.build(data_dir, **plan_and_runtime)
    store_path = Path(store) if store else default_store(ev.plan.data)
    runtime = replace(ev.runtime, overlay_dir=Path(overlay_root) if overlay_root else store_path.parent / "overlays")
    items = build_items(list(run_dirs) + list(baselines), images, final_only)
    return Evaluation(ev.plan, runtime, items).run(store_path, force=force)
