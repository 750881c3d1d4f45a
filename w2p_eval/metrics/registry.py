"""Metric suites by name, as lazy "module:attr" strings, and the metric declarations everyone reads.

``evaluate --metrics identity,landmarks`` picks suites from :data:`SUITES`; the report's legend, number
formatting and better-direction come from :func:`metric_spec`; the "done" check from each suite's
``required()``. Adding a suite: write ``metrics/<name>.py`` with a :class:`~w2p_eval.metrics.base.MetricSuite`
instance (e.g. ``SUITE``) and add one ``Entry`` line here (or register it from another package through the
``w2p_eval.suites`` entry-point group: docs/plugins.md). ``--metrics`` choices and help come from :data:`SUITES`.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from w2p_eval.errors import InputError
from w2p_eval.names import did_you_mean
from w2p_eval.registry import Entry, Registry

SUITES = Registry("metric suite", "w2p_eval.suites", [
    Entry("identity", "w2p_eval.metrics.identity:SUITE", "identity accuracy by a trained judge, embedding metrics"),
    Entry("landmarks", "w2p_eval.metrics.landmarks:SUITE", "68-point landmark detection rate and NME"),
    Entry("speaker", "w2p_eval.metrics.speaker:SUITE", "speech-only speaker identification of speaker_retrieval"),
    Entry("retrieval", "w2p_eval.metrics.protocols_suite:RETRIEVAL", "SF2F gallery recall@K"),
    Entry("distances", "w2p_eval.metrics.protocols_suite:DISTANCES", "paired cosine/L1/L2 to the own real face"),
    Entry("matching", "w2p_eval.metrics.protocols_suite:MATCHING", "1:N voice-face matching"),
    Entry("attributes", "w2p_eval.metrics.attributes:SUITE", "gender/age/ethnicity agreement, gender accuracy"),
    Entry("diversity", "w2p_eval.metrics.recent_suite:DIVERSITY", "inter-identity cosine (collapse), intra-identity spread"),
    Entry("consistency", "w2p_eval.metrics.recent_suite:CONSISTENCY_SUITE", "cross-clip consistency of one speaker's faces"),
    Entry("verification", "w2p_eval.metrics.recent_suite:VERIFICATION", "generated vs real face verification EER / AUC"),
    Entry("coverage", "w2p_eval.metrics.recent_suite:COVERAGE", "precision / recall / density / coverage (Naeem et al.)"),
    Entry("inception", "w2p_eval.metrics.standard_nets:INCEPTION", "Inception FID / IS (--inception-weights)"),
    Entry("vggface_score", "w2p_eval.metrics.standard_nets:VGGFACE", "SF2F's VGGFace Score (--vggface2-weights)"),
    Entry("sf2f", "w2p_eval.metrics.sf2f_preset:SUITE", "SF2F's evaluator (--protocol-preset sf2f)"),
    Entry("geometry", "w2p_eval.metrics.geometry:SUITE", "face-geometry ratio error under each landmark judge"),
])
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

