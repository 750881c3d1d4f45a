"""The one per-source scoring loop: :class:`Evaluation` = a frozen :class:`~w2p_eval.metrics.plan.Plan` (what is
scored), a :class:`~w2p_eval.metrics.plan.Runtime` (how) and its face sources.

``evaluate``, ``identity``, ``landmarks``, ``compare``, ``demo``, ``ablate-audio``, torchrun and the Python API
all build one with :meth:`Evaluation.build` (the one place user values become a plan) and call:

- :meth:`Evaluation.check`: everything the run needs, checked before any face is generated (suite options,
  each suite's and judge's declared ``check``, every source);
- :meth:`Evaluation.score`: the faces of ONE source made once, every pending (suite, judge) scored on them
  -> :class:`Scored` rows, each with its per-item values;
- :meth:`Evaluation.run`: every source into a results store, skipping what it holds, keeping item values
  and sample faces beside it (torchrun ranks split the sources);
- :meth:`Evaluation.compare` (:mod:`w2p_eval.evaluation.compare`): two sources, read from the store when
  it holds both under this plan, else scored.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from tqdm import tqdm

from w2p_eval.data.folder import DataFolder, open_dataset
from w2p_eval.errors import InputError
from w2p_eval.evaluation.compare import compare_sources
from w2p_eval.evaluation.items import Scored, save_items
from w2p_eval.judges import parse_backbones
from w2p_eval.metrics.base import MetricSuite, SuiteResult, result_rows
from w2p_eval.metrics.plan import Context, Plan, Runtime
from w2p_eval.metrics.preflight import check_requirements
from w2p_eval.metrics.registry import DEFAULT_SUITES, get_suite
from w2p_eval.metrics.testlist import apply_testlist
from w2p_eval.models.generation import GeneratedSet
from w2p_eval.models.sources import SourceItem, check_distinct_names
from w2p_eval.results import ResultsStore, default_store, sample_file, save_samples

log = logging.getLogger(__name__)

Task = tuple[MetricSuite, Context]


@dataclass
class EvalSummary:
    rows_written: int = 0
    evaluated: list[str] = field(default_factory=list)  # "run/item suite"
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    generator_passes: int = 0
    notes: list[str] = field(default_factory=list)  # what the sources lacked: printed at the command's end

    def line(self) -> str:
        return (f"evaluated {len(self.evaluated)} (source, judge) pairs, {self.rows_written} rows written; "
                f"skipped {len(self.skipped)} already in the store; {len(self.failed)} failed")


class Evaluation:
    """One evaluation: ``plan`` and ``runtime`` are frozen; ``context`` (the suites' view, with the feature
    cache and memo every source shares) lives as long as this object."""

    def __init__(self, plan: Plan, runtime: Runtime | None = None, sources: Sequence[SourceItem] = ()):
        self.plan, self.runtime = plan, runtime or Runtime()
        self.sources = list(sources)
        self.context = Context(plan, self.runtime)

    @property
    def notes(self) -> list[str]:
        """Lines for the end of the command: test pairs a source had no face for, files it ignored."""
        return list(dict.fromkeys(line for item in self.sources for line in item.notes))

    @classmethod
    def build(cls, data: str | os.PathLike | DataFolder, *, suites: Sequence[str] = DEFAULT_SUITES,
              split: str = "test", protocol: str = "seen", seed: int = 0, backbone: str | Sequence[str] = "dlib_resnet",
              judge_options: Mapping[str, Mapping | None] | None = None, backend: str = "dlib",
              gallery_size: int | None = None, n_galleries: int = 10, matching: Sequence[int] | None = None,
              testlist: str | os.PathLike | None = None, given: Sequence[str] = (), n_resamples: int = 2000,
              weight_files: Mapping[str, str] | None = None,
              device: str | None = None, workers: int = 1, batch_size: int = 64,
              cache_dir: str | os.PathLike | None = None, overlay_dir: str | os.PathLike | None = None,
              store_timeout_s: float | None = None, sources: Sequence[SourceItem] = ()) -> "Evaluation":
        """The one place user values become a plan: the dataset opened once, suite and judge names checked
        (with "did you mean"), the test list applied (``given``: options the user set, refused when the list
        fixes another value)."""
        suites = tuple(suites)
        if not suites:
            raise InputError("expected at least one metric suite, got none")
        for name in suites:
            get_suite(name)
        plan = Plan(open_dataset(data, cache_dir), split=split, protocol=protocol, seed=int(seed), suites=suites,
                    judges=parse_backbones(backbone), judge_options=dict(judge_options or {}), backend=backend,
                    gallery_size=gallery_size, n_galleries=int(n_galleries),
                    matching=tuple(matching) if matching else None, n_resamples=int(n_resamples),
                    weight_files=dict(weight_files or {}))
        if testlist is not None:
            plan = apply_testlist(plan, testlist, split_given="split" in given, protocol_given="protocol" in given,
                                  backbone_given="backbone" in given)
        runtime = Runtime(device=device, workers=int(workers), batch_size=int(batch_size), cache_dir=cache_dir,
                          overlay_dir=overlay_dir, store_timeout_s=store_timeout_s)
        return cls(plan, runtime, sources)

    def with_sources(self, sources: Sequence[SourceItem]) -> "Evaluation":
        """The same plan, runtime and shared state over other sources (names must be distinct)."""
        out = Evaluation(self.plan, self.runtime, sources)
        out.context = self.context
        return out

    # -- the plan's work ----------------------------------------------------------------------------
    def tasks(self, suites: Sequence[str] | None = None) -> list[Task]:
        """Every (suite, context) to score: a ``judged`` suite once per identity judge (judge by judge); any
        other suite once, in the first judge's round; each of them once per :meth:`MetricSuite.variants` (the
        landmark suites: once per landmark backend)."""
        objs = [get_suite(s) for s in (suites or self.plan.suites)]
        ctx = self.context
        if len(ctx.judges) == 1:
            return [(s, c) for s in objs for c in s.variants(ctx)]
        out: list[Task] = []
        for k, judge in enumerate(ctx.judges):
            one = ctx.for_judge(judge)
            out += [(s, c) for s in objs if s.judged or k == 0 for c in s.variants(one)]
        return out

    def task_name(self, suite: MetricSuite, ctx: Context) -> str:
        """A suite's name in summaries; with several identity judges a judged suite's name says which."""
        return f"{suite.name} ({ctx.backbone})" if suite.judged and len(self.context.judges) > 1 else suite.name

    def check(self, sources: Sequence[SourceItem] | None = None, *, requirements: bool = True) -> None:
        """Everything the run needs, before any face is generated: every suite's ``check`` under every judge
        round (unknown judge names, missing weights a suite or judge declares ...) and every source's (a
        folder that cannot be scored), then the plan-wide requirement check (:func:`metrics.preflight.check_requirements`:
        every judge's weight files on disk, the identity metadata; ``requirements=False`` leaves it to
        :meth:`check_requirements`, for work that may run no judge: ``compare --store``). Raises InputError (one
        line)."""
        for suite, ctx in self.tasks():
            suite.check(ctx)
        check_distinct_names(self.sources if sources is None else [*self.sources, *sources])
        items = self.sources if sources is None else sources
        for item in items:
            item.check(self.plan.data, split=self.plan.split, protocol=self.plan.protocol)
        if requirements:
            self.check_requirements(items)

    def check_requirements(self, items: Sequence[SourceItem]) -> None:
        """Every judge's files (and the identity metadata) before any face of ``items`` is generated (issue 31)."""
        check_requirements(list({id(s): s for s, _ in self.tasks()}.values()), self.context, items)

    @property
    def data_hash(self) -> str:
        return self.plan.data.hash

    def score(self, item: SourceItem, tasks: Sequence[Task] | None = None,
              on_faces: Callable[[GeneratedSet], None] | None = None) -> list[Scored]:
        """THE scoring loop of one source: its faces made once (one checkpoint load, one generator pass, or one
        folder read), every task that applies scored on them -> rows with their item values. ``on_faces(gs)``
        sees the faces before the suites do. The item's loaded checkpoint is released afterwards."""
        todo = [(s, c) for s, c in (self.tasks() if tasks is None else tasks) if s.applies(item.model, item.kind)]
        if not todo:
            return []
        plan = self.plan
        try:
            with _step_bar(item.run, len(todo)) as bar:
                gs = item.faces(plan.data, split=plan.split, protocol=plan.protocol, device=self.runtime.device,
                                seed=plan.seed, batch_size=self.runtime.batch_size)
                if on_faces is not None:
                    on_faces(gs)
                out: list[Scored] = []
                for suite, ctx in todo:
                    bar.update()
                    bar.set_postfix_str(self.task_name(suite, ctx))
                    out += scored_rows(gs, suite.score(gs, ctx), ctx, self.data_hash)
                bar.update()
            return out
        finally:
            item.release()

    def score_all(self) -> list[Scored]:
        """Every source scored (no store): the ``identity``/``landmarks`` verbs and the Python API."""
        self.check()
        return [s for item in self.sources for s in self.score(item)]

    def run(self, store: str | os.PathLike | None = None, *, force: bool = False) -> EvalSummary:
        """Every source with every task it still lacks in ``store`` (default ``DATA/results.sqlite``); rows are
        written after each source (an interrupted run keeps its progress), with their item values and the
        source's sample faces beside the store. Under torchrun each rank takes every WORLD_SIZE-th source
        (:func:`rank_share`). A source failing with InputError is counted in ``failed``; the rest go on."""
        items, rank, world = rank_share(self.sources)
        self.check(items)
        tasks = self.tasks()
        store_path = Path(store) if store else default_store(self.plan.data)
        results = ResultsStore(store_path, timeout_s=self.runtime.store_timeout_s)
        summary = EvalSummary()
        bar = tqdm(total=len(items), desc="evaluate" if world == 1 else f"evaluate (rank {rank}/{world})",
                   unit="source", dynamic_ncols=True)
        for item in items:
            tag = f"{item.run}/{Path(item.label).name}"
            pending = []
            for suite, ctx in tasks:
                if not suite.applies(item.model, item.kind):
                    continue
                if not force and item.kind != "python" and self.stored(results, item, suite, ctx) is not None:
                    summary.skipped.append(f"{tag} {self.task_name(suite, ctx)}")
                    continue
                pending.append((suite, ctx))
            if pending:
                bar.set_description(f"{'+'.join(dict.fromkeys(s.name for s, _ in pending))}: {tag}")
                names = [self.task_name(s, c) for s, c in pending]
                try:
                    item.load()  # only now are a checkpoint's weights read (skips are decided on its metadata)
                    scored = self.score(item, pending, on_faces=lambda gs: _keep_samples(gs, store_path))
                except InputError as exc:
                    log.warning("%s failed: %s", tag, exc)
                    summary.failed += [f"{tag} {n}: {exc}" for n in names]
                    item.release()
                    bar.update(1)
                    continue
                summary.generator_passes += 1
                summary.rows_written += write_scored(store_path, scored, results)
                summary.evaluated += [f"{tag} {n}" for n in names]
            bar.update(1)
        bar.close()
        summary.notes = self.notes
        log.info(summary.line())
        return summary

    def compare(self, a, b, *, store: str | os.PathLike | None = None, name_a: str | None = None,
                name_b: str | None = None, metrics: Sequence[str] | None = None) -> dict:
        """A and B on the same test pairs, metric by metric (:func:`w2p_eval.evaluation.compare.compare_sources`):
        read from ``store`` when it holds them under this plan, else scored."""
        return compare_sources(a, b, self, name_a=name_a, name_b=name_b, metrics=metrics, store=store)

    def stored(self, results: ResultsStore, item: SourceItem, suite: MetricSuite, ctx: Context):
        """The stored rows of ``suite``'s declared metrics for ``item`` under this plan (same test list) when every
        required metric is there, else None (suites of one judge share its evaluator name; metrics tell them apart)."""
        rows = results.query(data_hash=self.data_hash, checkpoint_hash=item.content_hash, split=self.plan.split,
                             protocol=self.plan.protocol, seed=self.plan.seed, evaluator=suite.evaluator(ctx),
                             run=item.run)
        if rows.empty:
            return None
        declared = {m.name for m in suite.metrics}
        rows = rows.loc[[(extra or {}).get("testlist") == self.plan.testlist_id and metric in declared
                         for extra, metric in zip(rows["extra"], rows["metric"])]]
        return rows if set(suite.required()) <= set(rows["metric"]) else None


def scored_rows(gs: GeneratedSet, result: SuiteResult, ctx: Context, data_hash: str) -> list[Scored]:
    """:func:`~w2p_eval.metrics.base.result_rows` (the one row builder), each row with its item values."""
    return [Scored(row, result.items.get(row["metric"]), k) for k, row in enumerate(result_rows(gs, result, ctx, data_hash))]


def write_scored(store_path: str | os.PathLike, scored: Sequence[Scored], results: ResultsStore | None = None) -> int:
    """Rows into the store, each row's item values first beside it (:mod:`w2p_eval.evaluation.items`)."""
    for s in scored:
        save_items(store_path, s.row, s.items, s.position)
    return (results or ResultsStore(store_path)).write([s.row for s in scored])


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


def _keep_samples(gs: GeneratedSet, store_path: Path) -> None:
    """The first test face of each identity kept beside the store for the report's sample grid."""
    try:
        save_samples(gs, sample_file(store_path, gs.run, gs.source_hash))
    except OSError as exc:  # the samples are a convenience for the report, never a reason to fail
        log.warning("could not keep sample faces for the report (%s)", exc)


def _step_bar(name: str, n_suites: int):
    """The progress bar of one source's scoring on stderr: its faces, then each suite (shown on a terminal)."""
    bar = tqdm(total=n_suites + 1, desc=f"{name}: scoring", unit="step", leave=False, disable=None,
               dynamic_ncols=True)
    bar.set_postfix_str("faces")
    return bar


__all__ = ["EvalSummary", "Evaluation", "Scored", "rank_share", "scored_rows", "write_scored"]
