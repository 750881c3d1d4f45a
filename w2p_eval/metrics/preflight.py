"""Preflight (issue 31): everything an evaluation needs is checked before any face is generated.

:func:`check_requirements` reads a whole plan: each suite declares what it needs
(:meth:`~w2p_eval.metrics.base.MetricSuite.requirements`: its judges' small ``require()``, next to each judge in
``judges/*.py``), each check runs once, and none loads a network. The first file missing is one
:class:`~w2p_eval.errors.MissingWeightsError` line (the file, where it was looked for, how to get it; exit 2);
with several judges nothing is computed until all of them are available. The dataset's identity metadata is
checked when the dataset is opened (``data/folder.read_info``), so a bad one never reaches a run.

Called once, by :meth:`w2p_eval.evaluation.Evaluation.check`, which every verb that scores (evaluate, identity,
landmarks, compare, demo, ablate-audio) and the Python API go through before any face is generated.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from w2p_eval.data.identity_meta import identity_meta


def _applies(suite: Any, items: Sequence) -> bool:
    return not items or any(suite.applies(item.model, item.kind) for item in items)


def requirements(suites: Sequence[Any], opts: Any,
                 items: Sequence = ()) -> list[tuple[str, Callable[[], object]]]:
    """The plan's checks in suite order, ``[(what, check())]``, each once: what every suite that applies to one of
    ``items`` declares (:meth:`MetricSuite.requirements`: identity judges, landmark judges, the voice encoder, the
    attribute judge)."""
    checks: dict[str, Callable[[], object]] = {}
    for suite in suites:
        if _applies(suite, items):
            for what, check in suite.requirements(opts, items):
                checks.setdefault(what, check)
    return list(checks.items())


def check_requirements(suites: Sequence[Any], opts: Any, items: Sequence = ()) -> None:
    """Raise (InputError / MissingWeightsError, one line) unless every file the plan needs is on disk and the
    dataset's identity metadata is of the shape ``prepare`` writes. Loads no network and generates nothing."""
    identity_meta(opts.data_dir.info if hasattr(opts.data_dir, "info") else {}, "dataset.json")
    for _, check in requirements(suites, opts, items):
        check()
