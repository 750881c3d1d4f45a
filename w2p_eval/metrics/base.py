"""The metric-suite protocol: what a suite declares, what it is given, what it returns, and the one place
where result rows are built.

A suite (identity, landmarks, speaker, ...) declares its metrics once as :class:`MetricSpec` (name,
label, higher-is-better, unit, one-sentence meaning); ``evaluate``, ``results``, the report's tables and
figures and the "already in the store?" check all read that declaration through
:mod:`w2p_eval.metrics.registry`. A suite scores a :class:`~w2p_eval.models.generation.GeneratedSet`
(faces generated once per checkpoint or read once from a folder) and returns a :class:`SuiteResult`;
:func:`result_rows` turns it into results-store rows.

Adding a metric suite = one module defining a :class:`MetricSuite` subclass + one line in
``metrics/registry.py`` (plus its judge in ``judges/`` if it needs a new network).
"""

from __future__ import annotations

import abc
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from w2p_eval.data.folder import DataFolder, open_dataset
from w2p_eval.metrics.features import FeatureCache
from w2p_eval.metrics.preflight import check_requirements
from w2p_eval.models.generation import GeneratedSet

@dataclass(frozen=True)
class MetricSpec:
    """One metric, declared once. ``unit``: ``rate`` (a fraction in [0, 1], printed as a percentage),
    ``cosine`` (a similarity in [-1, 1]), ``distance`` (>= 0, 0 = identical) or ``nme`` (normalised
    landmark error)."""

    name: str
    label: str
    higher_is_better: bool
    unit: str
    meaning: str

    @property
    def is_rate(self) -> bool:
        return self.unit == "rate"


@dataclass
class EvalOptions:
    """Everything a suite needs besides the faces: one object from the CLI (or the Python API) to the suites.

    ``backbone``: one identity judge's name, or several (a comma string or a list: ``"dlib_resnet,faceres"``);
    ``judges`` is then the tuple of them and ``backbone`` the first (the primary judge). Suites scored in a
    judge's face space (``MetricSuite.judged``) run once per judge, each with :meth:`for_judge`'s options.
    ``backbone_options``: options of the primary judge; ``judge_options``: {judge: options} for any of them.
    ``features`` (:class:`~w2p_eval.metrics.features.FeatureCache`): the trained judges and each judge's
    outputs on the current face set, shared by every suite and judge of the evaluation.
    ``weight_files``: weight files of standard networks the user supplies (``metrics/standard_nets.py``).
    ``memo`` holds anything else shared across sources within one evaluation.
    """

    data_dir: DataFolder  # a path is accepted and opened once here (every suite then shares the one object)
    split: str = "test"
    protocol: str = "seen"
    seed: int = 0
    device: str | None = None
    cache_dir: str | os.PathLike | None = None
    backbone: str | Sequence[str] = "dlib_resnet"
    backbone_options: dict | None = None
    judges: tuple[str, ...] = ()
    judge_options: dict[str, dict] | None = None
    backend: str = "dlib"
    workers: int = 1
    overlay_dir: Path | None = None
    batch_size: int = 64
    gallery_size: int | None = None
    n_galleries: int = 10
    matching: tuple[int, ...] | None = None
    testlist: object | None = None
    n_resamples: int = 2000
    weight_files: dict[str, str] = field(default_factory=dict)  # user-supplied networks: {"inception"|"vggface2": path}
    memo: dict = field(default_factory=dict, repr=False)
    features: FeatureCache = field(default_factory=FeatureCache, repr=False)

    def __post_init__(self):
        from w2p_eval.judges import parse_backbones

        self.data_dir = open_dataset(self.data_dir, self.cache_dir)  # the boundary: the dataset is read once
        self.seed = int(self.seed)
        if not isinstance(self.backbone, str) or "," in self.backbone:
            self.judges = parse_backbones(self.backbone)
        self.judges = tuple(self.judges) or (str(self.backbone),)
        self.backbone = self.judges[0]

    def for_judge(self, name: str) -> "EvalOptions":
        """These options with ``name`` as the only identity judge (same feature cache and memo)."""
        opts = (self.judge_options or {}).get(name, self.backbone_options if name == self.backbone else None)
        return replace(self, backbone=name, judges=(name,), backbone_options=opts)

    @property
    def testlist_id(self) -> str | None:
        """The id of the frozen test list in use (``metrics.testlist.TestList``), else None."""
        return getattr(self.testlist, "id", None)


@dataclass
class ItemValues:
    """Per-item values behind one metric row, for paired comparisons (never written to the store).

    ``keys`` [M]: what identifies an item across two sources scored on the same test pairs (a pair id, or
    the probe pair id of a matching tuple); ``values`` float64 [M]; ``groups`` [M]: the face_id of each item
    (resampled together); ``weights`` float64 [M] or None (the row's value = sum(w*v)/sum(w)); ``binary``:
    0/1 outcomes (accuracies) that get an exact McNemar test in ``w2p-eval compare``.
    """

    keys: list[str]
    values: np.ndarray
    groups: list[str]
    weights: np.ndarray | None = None
    binary: bool = False


def ci_dict(values: Sequence[float] | np.ndarray, groups: Sequence | None, *,
            weights: Sequence[float] | np.ndarray | None = None, seed: int = 0, n_resamples: int = 2000,
            rate: bool = True) -> dict | None:
    """The one interval shape stored in a row's ``extra["ci"]`` (None when there are no finite items):

    ``{"value", "low", "high", "confidence", "method", "n_items", "n_groups", "n_resamples", "seed"}`` from
    :func:`w2p_eval.metrics.stats.bootstrap_ci` (BCa over groups = face ids; 0.95; seeded by the evaluation
    seed). NaN items (e.g. no centroid) are left out. ``rate``: the values are hits in [0, 1] (an accuracy or
    recall; when all are 0 or all 1 the interval is Wilson's with n = groups); ``False`` for means of
    distances and cosines (all items equal -> the point itself, never a binomial interval).
    """
    from w2p_eval.metrics.stats import bootstrap_ci

    v = np.asarray(values, dtype=np.float64)
    w = np.ones(len(v)) if weights is None else np.asarray(weights, dtype=np.float64)
    ok = np.isfinite(v) & (w > 0)
    if not ok.any():
        return None
    g = None if groups is None or len(groups) == 0 else np.asarray(groups).astype(str)[ok]
    if not rate and np.all(v[ok] == v[ok][0]):
        n_groups = len(set(g.tolist())) if g is not None else int(ok.sum())
        x = float(v[ok][0])
        return {"value": x, "low": x, "high": x, "confidence": 0.95, "method": "point (fallback: every item equal)",
                "n_items": int(ok.sum()), "n_groups": n_groups, "n_resamples": 0, "seed": None}
    return bootstrap_ci(v[ok], g, weights=w[ok], seed=int(seed), n_resamples=int(n_resamples)).to_dict()


@dataclass
class SuiteResult:
    """What a suite returns for one GeneratedSet: its judge (``evaluator`` + version), the settings the
    values depend on (``config``, hashed into every row) and ``values``: metric -> (value, n, extra); every
    accuracy, rate and mean has ``extra["ci"]`` (:func:`ci_dict`). ``items``: metric -> :class:`ItemValues`
    (per-item values for paired comparisons; not written to the store)."""

    evaluator: str
    evaluator_version: str | None
    config: dict
    values: dict[str, tuple[float, int, dict]]
    items: dict[str, ItemValues] = field(default_factory=dict, repr=False)  # for `compare`, not stored


@dataclass(frozen=True)
class ReportSection:
    """A section a suite contributes to ``w2p-eval report``: its ``metrics`` as a table (tables/NAME.*) under
    ``title``, after one paragraph ``intro``."""

    name: str
    title: str
    intro: str
    metrics: tuple[str, ...]


class MetricSuite(abc.ABC):
    """A group of metrics computed together by one judge. Subclasses set ``name``, ``metrics`` and
    ``done_when`` (metrics that must all be stored for the suite to count as done; default: all)."""

    name: str
    metrics: tuple[MetricSpec, ...]
    done_when: tuple[str, ...] = ()
    judged: bool = False  # scored in an identity judge's face space: once per judge of ``EvalOptions.judges``

    def required(self) -> tuple[str, ...]:
        return self.done_when or tuple(m.name for m in self.metrics)

    @abc.abstractmethod
    def evaluator(self, opts: EvalOptions) -> str:
        """The evaluator name stored in the rows (e.g. ``identity/dlib_resnet``), known before scoring."""

    def check(self, opts: EvalOptions) -> None:
        """Refuse bad options (unknown judge names ...) with InputError before any face is generated."""

    def applies(self, model: str, source: str) -> bool:
        """Whether the suite scores faces of ``model`` from a ``source`` of that kind (default: always)."""
        return True

    def variants(self, opts: EvalOptions) -> list[EvalOptions]:
        """The options the suite is scored under, once each (default: ``[opts]``; the landmark suite gives one
        per backend of ``--backend dlib,facemesh``)."""
        return [opts]

    def report_section(self) -> ReportSection | None:
        """A report section of the suite's own (None: its metrics appear in the main table only)."""
        return None

    @abc.abstractmethod
    def score(self, gs: GeneratedSet, opts: EvalOptions) -> SuiteResult:
        """Score the faces of ``gs``."""


def result_rows(gs: GeneratedSet, result: SuiteResult, opts: EvalOptions, data_hash: str) -> list[dict]:
    """The one place results rows are built (keys of ``results.ROW_KEYS``), from a GeneratedSet and what a
    suite returned. Rows of external sources (``images``/``python``) have no epoch and no config hash of a
    training run; every row says over how many pairs it was computed and how many the source lacked."""
    from w2p_eval.utils import sha256_json

    common = {
        "data_hash": data_hash, "run": gs.run, "model": gs.model, "checkpoint": gs.ckpt_path,
        "checkpoint_hash": gs.source_hash, "epoch": gs.epoch, "split": opts.split, "protocol": opts.protocol,
        "seed": int(opts.seed), "evaluator": result.evaluator, "evaluator_version": result.evaluator_version,
        "config_hash": sha256_json(result.config), "source": gs.source,
    }
    coverage = {"n_pairs_expected": gs.n_expected, "n_pairs_missing": len(gs.missing)}
    if opts.testlist_id:
        coverage["testlist"] = opts.testlist_id
    return [{**common, "metric": metric, "value": float(value), "n": int(n), "extra": {**extra, **coverage}}
            for metric, (value, n, extra) in result.values.items()]


Task = tuple[MetricSuite, EvalOptions]


def suite_tasks(suites: Sequence[MetricSuite], opts: EvalOptions) -> list[Task]:
    """Every (suite, options) to score: a ``judged`` suite once per identity judge of ``opts.judges`` (with
    :meth:`EvalOptions.for_judge`), judge by judge; any other suite once, in the first judge's round."""
    tasks: list[Task] = []
    for k, judge in enumerate(opts.judges):
        one = opts.for_judge(judge) if len(opts.judges) > 1 else opts
        tasks += [(s, o) for s in suites if s.judged or k == 0 for o in s.variants(one)]
    return tasks


def score_item(item, suites: Sequence[MetricSuite], opts: EvalOptions, data_hash: str | None = None,
               on_faces=None, *, tasks: Sequence[Task] | None = None) -> list[dict]:
    """Generate (or read) the faces of one source item ONCE and score them with every suite, under every
    identity judge for the judged suites (:func:`suite_tasks`; or exactly ``tasks`` when given) -> rows.

    Suites that do not apply to the item's model/source are passed over. ``on_faces(gs)``, when given, sees
    the GeneratedSet before the suites do. The item's loaded checkpoint is released afterwards.
    """
    from w2p_eval.data.manifest import manifest_hash

    data_hash = data_hash or manifest_hash(opts.data_dir)
    todo = [(s, o) for s, o in (suite_tasks(suites, opts) if tasks is None else tasks)
            if s.applies(item.model, item.kind)]
    if not todo:
        return []
    try:
        with step_bar(item.run, len(todo)) as bar:
            gs = item.faces(opts.data_dir, split=opts.split, protocol=opts.protocol, device=opts.device,
                            seed=opts.seed, batch_size=opts.batch_size)
            if on_faces is not None:
                on_faces(gs)
            rows = []
            for suite, suite_opts in todo:
                bar.update()
                bar.set_postfix_str(suite.name if len(opts.judges) == 1 or not suite.judged
                                    else f"{suite.name} [{suite_opts.backbone}]")
                rows += result_rows(gs, suite.score(gs, suite_opts), suite_opts, data_hash)
            bar.update()
        return rows
    finally:
        item.release()


def step_bar(name: str, n_suites: int):
    """The progress bar of one source's scoring on stderr: its faces, then each suite (shown on a terminal)."""
    from tqdm import tqdm

    bar = tqdm(total=n_suites + 1, desc=f"{name}: scoring", unit="step", leave=False, disable=None,
               dynamic_ncols=True)
    bar.set_postfix_str("faces")
    return bar


def score_items(items, suites: list[MetricSuite], opts: EvalOptions) -> list[dict]:
    """:func:`score_item` over several items (no store; see ``w2p_eval.pipeline.evaluate`` for that)."""
    from w2p_eval.data.manifest import manifest_hash

    for suite, suite_opts in suite_tasks(suites, opts):
        suite.check(suite_opts)
    for item in items:
        item.check(opts.data_dir, split=opts.split, protocol=opts.protocol)
    check_requirements(suites, opts, items)  # every judge's files before any face (issue 31)
    data_hash = manifest_hash(opts.data_dir)
    return [row for item in items for row in score_item(item, suites, opts, data_hash)]
