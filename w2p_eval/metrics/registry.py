"""Metric suites by name, as lazy "module:attr" strings, and the metric declarations everyone reads.

``evaluate --metrics identity,landmarks`` picks suites from :data:`SUITES`; the report's legend, number
formatting and better-direction come from :func:`metric_spec`; the "done" check from each suite's
``required()``. Adding a suite: write ``metrics/<name>.py`` with a :class:`~w2p_eval.metrics.base.MetricSuite`
instance (e.g. ``SUITE``) and its declaration ``REGISTER_SUITES = (Entry("<name>", "SUITE", "<help>",
order=N),)`` beside it; nothing here changes (:class:`~w2p_eval.registry.Registry` finds it without importing the
module). From another package: the ``w2p_eval.suites`` entry-point group (docs/plugins.md). ``--metrics``
choices and help come from :data:`SUITES`.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from w2p_eval.errors import InputError
from w2p_eval.names import did_you_mean
from w2p_eval.registry import Registry

# every suite declares itself where it is defined (``REGISTER_SUITES`` in its metrics/*.py module), read without
# importing it; the order there (``order=``) is the order of --help, the docs, metric_specs() and the report
SUITES = Registry("metric suite", "w2p_eval.suites", packages=("w2p_eval.metrics",), marker="REGISTER_SUITES")
if TYPE_CHECKING:  # for the hints only: this table stays light (the CLI's --help and choices read it)
    from w2p_eval.metrics.base import MetricSpec, MetricSuite

DEFAULT_SUITES = ("identity", "landmarks", "speaker", "retrieval", "distances", "matching")
DEFAULT_COMPARE_SUITES = ("identity", "retrieval", "distances", "matching")


def get_suite(name: str) -> MetricSuite:
    """The suite called ``name``; an unknown name -> InputError with "did you mean" and the list."""
    if name not in SUITES:
        raise InputError(f"expected metric suites among {', '.join(SUITES)}, got {name!r}{did_you_mean(name, SUITES)}")
    return SUITES.load(name)


def parse_suites(text: str | None) -> tuple[str, ...]:
    """``"identity, landmarks"`` -> ("identity", "landmarks"); empty lists and unknown names are InputError."""
    names = tuple(dict.fromkeys(s.strip() for s in str(text or "").split(",") if s.strip()))
    if not names:
        raise InputError(f"expected a comma-separated list of metric suites among {', '.join(SUITES)}, got {text!r}")
    for n in names:
        get_suite(n)
    return names


@functools.lru_cache(maxsize=1)
def metric_specs() -> dict[str, MetricSpec]:
    """Every declared metric of every registered suite, in suite order."""
    out: dict[str, MetricSpec] = {}
    for name in SUITES:
        for spec in get_suite(name).metrics:
            out[spec.name] = spec
    return out


def metric_spec(metric: str) -> MetricSpec:
    """The declaration of ``metric`` (an undeclared name gets a neutral one, so old rows still print)."""
    from w2p_eval.metrics.base import MetricSpec  # lazy: the table above stays light (the CLI's --help reads it)

    return metric_specs().get(metric) or MetricSpec(metric, metric, True, "value", f"{metric} (no description).")

