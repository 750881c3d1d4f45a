"""Metric suites by name, as lazy "module:attr" strings, and the metric declarations everyone reads.

``evaluate --metrics identity,landmarks`` picks suites from :data:`SUITES`; the report's legend, number
formatting and better-direction come from :func:`metric_spec`; the "done" check from each suite's
``required()``. Adding a suite: write ``metrics/<name>.py`` with a :class:`~w2p_eval.metrics.base.MetricSuite`
instance (e.g. ``SUITE``) and add one line here.
"""

from __future__ import annotations

import functools

from w2p_eval.errors import InputError
from w2p_eval.metrics.base import MetricSpec, MetricSuite
from w2p_eval.names import did_you_mean, resolve

SUITES: dict[str, str] = {
    "identity": "w2p_eval.metrics.identity:SUITE",
    "landmarks": "w2p_eval.metrics.landmarks:SUITE",
    "speaker": "w2p_eval.metrics.speaker:SUITE",
    "retrieval": "w2p_eval.metrics.protocols_suite:RETRIEVAL",
    "distances": "w2p_eval.metrics.protocols_suite:DISTANCES",
    "matching": "w2p_eval.metrics.protocols_suite:MATCHING",
    "attributes": "w2p_eval.metrics.attributes:SUITE",
    "diversity": "w2p_eval.metrics.recent_suite:DIVERSITY",
    "consistency": "w2p_eval.metrics.recent_suite:CONSISTENCY_SUITE",
    "verification": "w2p_eval.metrics.recent_suite:VERIFICATION",
    "coverage": "w2p_eval.metrics.recent_suite:COVERAGE",
    "inception": "w2p_eval.metrics.standard_nets:INCEPTION",
    "vggface_score": "w2p_eval.metrics.standard_nets:VGGFACE",
    "sf2f": "w2p_eval.metrics.sf2f_preset:SUITE",
    "geometry": "w2p_eval.metrics.geometry:SUITE",
}
DEFAULT_SUITES = ("identity", "landmarks", "speaker", "retrieval", "distances", "matching")


def get_suite(name: str) -> MetricSuite:
    """The suite called ``name``; an unknown name -> InputError with "did you mean" and the list."""
    if name not in SUITES:
        raise InputError(f"expected metric suites among {', '.join(SUITES)}, got {name!r}{did_you_mean(name, SUITES)}")
    return resolve(SUITES[name])


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
    return metric_specs().get(metric) or MetricSpec(metric, metric, True, "value", f"{metric} (no description).")

