"""The metric-suite protocol: what a suite declares, what it is given (a :class:`~w2p_eval.metrics.plan.Context`),
what it returns.

A suite (identity, landmarks, speaker, ...) declares its metrics once as :class:`MetricSpec` (name,
label, higher-is-better, unit, one-sentence meaning); ``evaluate``, ``results``, the report's tables and
figures and the "already in the store?" check all read that declaration through
:mod:`w2p_eval.metrics.registry`. A suite scores a :class:`~w2p_eval.models.generation.GeneratedSet`
(faces generated once per checkpoint or read once from a folder) and returns a :class:`SuiteResult`;
the evaluation core (:mod:`w2p_eval.evaluation`) turns it into results-store rows with their item values.

Adding a metric suite = one module defining a :class:`MetricSuite` subclass + one ``Entry`` line in
``metrics/registry.py`` (plus its judge in ``judges/`` if it needs a new network): docs/architecture.md.
"""

from __future__ import annotations

import abc
import functools
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from w2p_eval.judges import require_identity_backbone
from w2p_eval.metrics.plan import Context
from w2p_eval.metrics.stats import bootstrap_ci
from w2p_eval.models.generation import GeneratedSet
from w2p_eval.utils import sha256_json

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
    judged: bool = False  # scored in an identity judge's face space: once per judge of ``Context.judges``

    def required(self) -> tuple[str, ...]:
        return self.done_when or tuple(m.name for m in self.metrics)

    @abc.abstractmethod
    def evaluator(self, opts: Context) -> str:
        """The evaluator name stored in the rows (e.g. ``identity/dlib_resnet``), known before scoring."""

    def requirements(self, opts: Context, items: Sequence = ()) -> list[tuple[str, Callable[[], object]]]:
        """The files the suite needs, as ``[(what, check())]`` run before any face is generated (issue 31's
        preflight; each ``check`` raises MissingWeightsError / InputError in one line and loads nothing).
        ``items``: the sources it will score. Default: a ``judged`` suite needs each identity judge's files."""
        if not self.judged:
            return []
        return [(f"identity judge {judge}", functools.partial(require_identity_backbone, judge,
                                                             **(opts.for_judge(judge).backbone_options or {})))
                for judge in opts.judges]

    def check(self, opts: Context) -> None:
        """Refuse bad options (unknown judge names ...) with InputError before any face is generated."""

    def applies(self, model: str, source: str) -> bool:
        """Whether the suite scores faces of ``model`` from a ``source`` of that kind (default: always)."""
        return True

    def variants(self, opts: Context) -> list[Context]:
        """The options the suite is scored under, once each (default: ``[opts]``; the landmark suite gives one
        per backend of ``--backend dlib,facemesh``)."""
        return [opts]

    def report_section(self) -> ReportSection | None:
        """A report section of the suite's own (None: its metrics appear in the main table only)."""
        return None

    @abc.abstractmethod
    def score(self, gs: GeneratedSet, opts: Context) -> SuiteResult:
        """Score the faces of ``gs``."""




def result_rows(gs: GeneratedSet, result: SuiteResult, ctx: Context, data_hash: str) -> list[dict]:
    """The one place result rows are built (keys of ``results.ROW_KEYS``), from a GeneratedSet and what a suite
    returned. Rows of external sources (``images``/``python``) have no epoch and no config hash of a training
    run; every row says over how many pairs it was computed and how many the source lacked."""
    common = {
        "data_hash": data_hash, "run": gs.run, "model": gs.model, "checkpoint": gs.ckpt_path,
        "checkpoint_hash": gs.source_hash, "epoch": gs.epoch, "split": ctx.split, "protocol": ctx.protocol,
        "seed": int(ctx.seed), "evaluator": result.evaluator, "evaluator_version": result.evaluator_version,
        "config_hash": sha256_json(result.config), "source": gs.source,
    }
    coverage = {"n_pairs_expected": gs.n_expected, "n_pairs_missing": len(gs.missing)}
    if ctx.testlist_id:
        coverage["testlist"] = ctx.testlist_id
    return [{**common, "metric": metric, "value": float(value), "n": int(n), "extra": {**extra, **coverage}}
            for metric, (value, n, extra) in result.values.items()]
