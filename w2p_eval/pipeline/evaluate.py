"""`w2p-eval evaluate`: every metric suite for every face source, into the results store.

Sources are run folders / checkpoints (ours) and folders of images (any model's faces). For each source
item (one checkpoint, or one folder) the suites still missing from the store are found first; if any, the
checkpoint is loaded ONCE, its faces generated ONCE (or the folder read once) and every pending suite
scores those same faces. Rows are written after each item, so an interrupted evaluation keeps its
progress; what the store already holds for (data, run, source hash, split, protocol, seed, judge) is
skipped unless ``force``. A small sample of each item's faces is kept beside the store
(``samples/``) for the report's sample grid, which then needs no generator pass of its own.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from w2p_eval.data.folder import open_dataset
from w2p_eval.data.manifest import manifest_hash
from w2p_eval.errors import InputError
from w2p_eval.metrics.base import EvalOptions, score_item, suite_tasks
from w2p_eval.metrics.preflight import check_requirements
from w2p_eval.metrics.registry import DEFAULT_SUITES, get_suite
from w2p_eval.models.generation import GeneratedSet
from w2p_eval.models.sources import SourceItem, check_distinct_names, checkpoint_items, folder_item
from w2p_eval.results import ResultsStore, default_store, sample_file, save_samples

log = logging.getLogger(__name__)



@dataclass
class EvalSummary:
    rows_written: int = 0
    evaluated: list[str] = field(default_factory=list)  # "run/item suite"
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    generator_passes: int = 0

    def line(self) -> str:
        return (f"evaluated {len(self.evaluated)} (source, judge) pairs, {self.rows_written} rows written; "
                f"skipped {len(self.skipped)} already in the store; {len(self.failed)} failed")


def build_items(run_dirs: Sequence, images: Sequence[tuple[str, str]] = (), final_only: bool = False) -> list[SourceItem]:
    """Source items of run folders / checkpoints and of ``(images folder, name)`` pairs; names must be distinct."""
    items: list[SourceItem] = []
    for path in run_dirs:
        items += checkpoint_items(path, final_only=final_only)
    for folder, name in images:
        items.append(folder_item(folder, name))
    if not items:
        raise InputError("expected at least one RUN_DIR, --baselines run folder or --images DIR --name NAME, got none")
    check_distinct_names(items)
    return items


def rank_share(items: Sequence[SourceItem]) -> tuple[list[SourceItem], int, int]:
    """This process's share of ``items`` under torchrun: items ``rank::world_size`` (all of them alone).

    Every rank writes its rows straight into the one results store: SQLite in WAL mode, one ``BEGIN
    IMMEDIATE`` transaction per source with a busy timeout and retries, so concurrent writers on one machine
    lose no row (tested). That needs the store on a local filesystem that all ranks see; SQLite locking is
    not safe over network filesystems, so ranks on several machines each need their own store. Judges are
    trained once: the first rank to need one trains it under a lock on its cache file, the others wait and
    read the cache.
    """
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    rank = int(os.environ.get("RANK", "0") or 0)
    if world <= 1:
        return list(items), 0, 1
    if not 0 <= rank < world:
        raise InputError(f"expected RANK in [0, {world}) under torchrun, got {rank}")
    mine = list(items)[rank::world]
    log.info("rank %d of %d: %d of %d sources", rank, world, len(mine), len(items))
    return mine, rank, world


def evaluate_items(items: Sequence[SourceItem], opts: EvalOptions, *, suites: Sequence[str] = DEFAULT_SUITES,
                   store: str | os.PathLike | None = None, force: bool = False) -> EvalSummary:
    """Score every item with every suite it still lacks in the store; faces are made once per item.

    Under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) each process takes every WORLD_SIZE-th item, so the
    (source, checkpoint) work is split across processes; see :func:`rank_share` for where the rows go.
    """
    items, rank, world = rank_share(items)
    tasks = suite_tasks([get_suite(s) for s in suites], opts)  # judged suites once per identity judge
    for suite, suite_opts in tasks:
        suite.check(suite_opts)  # unknown judge names are bad input before anything is generated
    for item in items:  # a folder that cannot be scored is bad input, found before anything runs
        item.check(opts.data_dir, split=opts.split, protocol=opts.protocol)
    check_requirements([s for s, _ in tasks], opts, items)  # every judge's files before any face (issue 31)
    data_hash = manifest_hash(opts.data_dir)
    store_path = Path(store) if store else default_store(opts.data_dir)
    results = ResultsStore(store_path)
    summary = EvalSummary()
    bar = tqdm(total=len(items), desc="evaluate" if world == 1 else f"evaluate (rank {rank}/{world})", unit="source",
               dynamic_ncols=True)
    for item in items:
        tag = f"{item.run}/{Path(item.label).name}"
        pending = []
        for suite, suite_opts in tasks:
            if not suite.applies(item.model, item.kind):
                continue
            if not force and item.kind != "python" and _stored(results, item, suite, suite_opts, data_hash):
                summary.skipped.append(f"{tag} {_task_name(suite, suite_opts, opts)}")
                continue
            pending.append((suite, suite_opts))
        if pending:
            bar.set_description(f"{'+'.join(dict.fromkeys(s.name for s, _ in pending))}: {tag}")
            names = [_task_name(s, o, opts) for s, o in pending]
            item.load()  # only now are a checkpoint's weights read (a skipped one is decided on its metadata)
            try:
                rows = _score_and_keep_samples(item, pending, opts, data_hash, store_path)
            except InputError as exc:
                log.warning("%s failed: %s", tag, exc)
                summary.failed += [f"{tag} {n}: {exc}" for n in names]
                item.release()
                bar.update(1)
                continue
            summary.generator_passes += 1
            summary.rows_written += results.write(rows)
            summary.evaluated += [f"{tag} {n}" for n in names]
        bar.update(1)
    bar.close()
    log.info(summary.line())
    return summary


def _task_name(suite, suite_opts: EvalOptions, opts: EvalOptions) -> str:
    """A suite's name in the summary; with several identity judges, a judged suite's name says which."""
    return f"{suite.name} ({suite_opts.backbone})" if suite.judged and len(opts.judges) > 1 else suite.name


def _stored(results: ResultsStore, item: SourceItem, suite, opts: EvalOptions, data_hash: str) -> bool:
    """Whether the store holds the suite's required metrics for this item under the same test list (or none)."""
    rows = results.query(data_hash=data_hash, checkpoint_hash=item.content_hash, split=opts.split,
                         protocol=opts.protocol, seed=opts.seed, evaluator=suite.evaluator(opts), run=item.run,
                         metric=list(suite.required()))
    return set(suite.required()) <= set(rows["metric"]) and all(
        (extra or {}).get("testlist") == opts.testlist_id for extra in rows["extra"])


def _score_and_keep_samples(item, tasks, opts, data_hash, store_path) -> list[dict]:
    """score_item of the pending (suite, options) ``tasks``, plus the sample faces of the item written beside
    the store for the report."""

    def keep_samples(gs: GeneratedSet) -> None:
        try:
            save_samples(gs, sample_file(store_path, gs.run, gs.source_hash))
        except OSError as exc:  # the samples are a convenience for the report, never a reason to fail
            log.warning("could not keep sample faces for the report (%s)", exc)

    return score_item(item, [s for s, _ in tasks], opts, data_hash, on_faces=keep_samples, tasks=tasks)


def evaluate_runs(
    run_dirs: list[str | os.PathLike],
    data_dir: str | os.PathLike,
    *,
    store: str | os.PathLike | None = None,
    baselines: list[str | os.PathLike] = (),
    images: Sequence[tuple[str, str]] = (),
    suites: tuple[str, ...] = DEFAULT_SUITES,
    backbone: str | Sequence[str] = "dlib_resnet",
    backend: str = "dlib",
    split: str = "test",
    protocol: str = "seen",
    seed: int = 0,
    force: bool = False,
    final_only: bool = False,
    device: str | None = None,
    workers: int = 1,
    cache_dir: str | os.PathLike | None = None,
    overlay_root: str | os.PathLike | None = None,
    backbone_options: dict | None = None,
    judge_options: dict[str, dict] | None = None,
    testlist: str | os.PathLike | None = None,
    gallery_size: int | None = None,
    n_galleries: int = 10,
    matching: Sequence[int] | None = None,
    given: Sequence[str] = (),
    weight_files: dict[str, str] | None = None,
) -> EvalSummary:
    """Evaluate every checkpoint of ``run_dirs`` and ``baselines`` (run folders or checkpoint files) and every
    ``(folder, name)`` of ``images`` with the metric ``suites`` (names in ``metrics.registry.SUITES``).

    Landmark overlays go to ``overlay_root`` (default: ``overlays/`` beside the store). A source that fails with
    an InputError (e.g. a checkpoint trained on other identities) is counted in ``failed`` and the rest go on;
    bad options (unknown suite, backbone or backend) are refused before anything runs.

    ``testlist``: a frozen test list (``w2p-eval testlist``) fixing split, protocol, judge, galleries and
    matching tuples; every row stores its id (``extra["testlist"]``). ``given``: names of options the user set
    explicitly (``split``, ``protocol``, ``backbone``), refused when they differ from the test list's.
    ``backbone``: one identity judge or several (``"dlib_resnet,faceres"`` or a list): the identity and protocol
    suites score every source under each (rows kept apart by ``evaluator``; the network runs once per face and
    judge), the other suites once. ``judge_options``: {judge: backbone options} (``backbone_options``: the first's).
    ``gallery_size``/``n_galleries``/``matching``: the retrieval and matching settings without a test list.
    ``weight_files``: user-supplied weights of standard networks (``{"inception"|"vggface2": path}``).
    """
    for s in suites:
        get_suite(s)
    if not suites:
        raise InputError("expected at least one metric suite, got none")
    data_dir = open_dataset(data_dir, cache_dir)  # the boundary: read once, passed down
    store_path = Path(store) if store else default_store(data_dir)
    opts = EvalOptions(data_dir, split=split, protocol=protocol, seed=seed, device=device, cache_dir=cache_dir,
                       backbone=backbone, backbone_options=backbone_options, judge_options=judge_options,
                       backend=backend, workers=int(workers),
                       overlay_dir=Path(overlay_root) if overlay_root else store_path.parent / "overlays",
                       gallery_size=gallery_size, n_galleries=int(n_galleries),
                       matching=tuple(matching) if matching else None, weight_files=dict(weight_files or {}))
    if testlist is not None:
        from w2p_eval.metrics.testlist import apply_testlist

        apply_testlist(opts, testlist, split_given="split" in given, protocol_given="protocol" in given,
                       backbone_given="backbone" in given)
    for s in suites:
        get_suite(s).check(opts)
    items = build_items(list(run_dirs) + list(baselines), images, final_only)
    return evaluate_items(items, opts, suites=suites, store=store_path, force=force)
