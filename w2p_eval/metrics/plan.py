"""What a metric suite is given besides the faces: the evaluation's frozen :class:`Plan` (what is scored), its
:class:`Runtime` (how the work runs) and the :class:`Context` that joins them for one judge's round.

The :class:`~w2p_eval.evaluation.Evaluation` builds these once per command (or Python call); suites only read
them. A ``Plan`` fixes everything the numbers depend on: the dataset, split, protocol, seed, suites, identity
judges and their options, the landmark backend, the retrieval/matching settings and the frozen test list. A
``Runtime`` holds what never changes a number: device, worker processes, batch size, cache and overlay
folders. A ``Context`` is the suites' view of both for one identity judge, plus the evaluation's shared state
(:class:`~w2p_eval.metrics.features.FeatureCache` and ``memo``), which lives as long as the Evaluation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

from w2p_eval.data.folder import DataFolder
from w2p_eval.metrics.features import FeatureCache

DEFAULT_JUDGE = "dlib_resnet"


@dataclass(frozen=True)
class Plan:
    """What an evaluation scores; every row of it is determined by the plan and the faces.

    ``data``: the opened dataset; ``judges``: identity judges, the first the primary one; ``judge_options``:
    {judge: options or None} (e.g. vgg_face's weights file); ``matching``: 1:N sizes (None: the defaults);
    ``testlist``: a frozen :class:`~w2p_eval.metrics.testlist.TestList` (its id goes into every row) or None;
    ``weight_files``: files of networks the user supplies, by network name.
    """

    data: DataFolder
    split: str = "test"
    protocol: str = "seen"
    seed: int = 0
    suites: tuple[str, ...] = ()
    judges: tuple[str, ...] = (DEFAULT_JUDGE,)
    judge_options: Mapping[str, Mapping | None] = field(default_factory=dict)
    backend: str = "dlib"
    gallery_size: int | None = None
    n_galleries: int = 10
    matching: tuple[int, ...] | None = None
    testlist: object | None = None
    n_resamples: int = 2000
    weight_files: Mapping[str, str] = field(default_factory=dict)  # user-supplied networks' files: {name: path}

    @property
    def backbone(self) -> str:
        """The primary identity judge."""
        return self.judges[0]

    @property
    def testlist_id(self) -> str | None:
        return getattr(self.testlist, "id", None)


@dataclass(frozen=True)
class Runtime:
    """How an evaluation runs: never changes a stored number (apart from float rounding across devices)."""

    device: str | None = None
    workers: int = 1
    batch_size: int = 64
    cache_dir: Path | None = None
    overlay_dir: Path | None = None
    store_timeout_s: float | None = None  # how long a locked results store is waited for (None: the default)

    def __post_init__(self):
        for name in ("cache_dir", "overlay_dir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(os.fspath(value)))


@dataclass(frozen=True)
class Context:
    """A suite's view of one evaluation round: the plan and runtime, ``backbone`` = the identity judge of this
    round (``judges`` = every judge of the round: all of them, or this one only in a per-judge round), and the
    evaluation's shared ``features`` / ``memo`` (computed once per evaluation, never module-level)."""

    plan: Plan
    runtime: Runtime = field(default_factory=Runtime)
    judges: tuple[str, ...] = ()
    features: FeatureCache = field(default_factory=FeatureCache, repr=False, compare=False)
    memo: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        if not self.judges:
            object.__setattr__(self, "judges", tuple(self.plan.judges))

    def for_judge(self, name: str) -> "Context":
        """This context with ``name`` as its only identity judge (same feature cache and memo)."""
        return replace(self, judges=(name,))

    def for_backend(self, name: str) -> "Context":
        """This context with ``name`` as its landmark backend (``--backend dlib,facemesh`` scores a landmark suite
        once per backend: :meth:`MetricSuite.variants`); same feature cache and memo."""
        return replace(self, plan=replace(self.plan, backend=name))

    # what the suites read: the plan's fields ...
    data_dir = property(lambda self: self.plan.data)
    split = property(lambda self: self.plan.split)
    protocol = property(lambda self: self.plan.protocol)
    seed = property(lambda self: self.plan.seed)
    backend = property(lambda self: self.plan.backend)
    gallery_size = property(lambda self: self.plan.gallery_size)
    n_galleries = property(lambda self: self.plan.n_galleries)
    matching = property(lambda self: self.plan.matching)
    testlist = property(lambda self: self.plan.testlist)
    testlist_id = property(lambda self: self.plan.testlist_id)
    n_resamples = property(lambda self: self.plan.n_resamples)
    judge_options = property(lambda self: self.plan.judge_options)
    weight_files = property(lambda self: self.plan.weight_files)
    # ... the runtime's ...
    device = property(lambda self: self.runtime.device)
    workers = property(lambda self: self.runtime.workers)
    batch_size = property(lambda self: self.runtime.batch_size)
    cache_dir = property(lambda self: self.runtime.cache_dir)
    overlay_dir = property(lambda self: self.runtime.overlay_dir)

    # ... and the round's judge
    @property
    def backbone(self) -> str:
        """The identity judge of this round (the first of ``judges``)."""
        return self.judges[0]

    @property
    def backbone_options(self) -> dict | None:
        """The round judge's options from the plan (e.g. vgg_face's weights), plus worker processes for the
        dlib face alignment of the ``dlib_resnet*`` judges when the runtime has several."""
        opts = dict((self.plan.judge_options or {}).get(self.backbone) or {})
        if self.backbone.startswith("dlib_resnet") and self.runtime.workers > 1:
            opts["workers"] = int(self.runtime.workers)
        return opts or None
