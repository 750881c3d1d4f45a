"""The report's view of the metric declarations: labels, better-direction, units and meanings come from
each suite's :class:`~w2p_eval.metrics.base.MetricSpec` (via :mod:`w2p_eval.metrics.registry`); this module
only orders and formats them."""

from __future__ import annotations

import math

from w2p_eval.metrics.base import MetricSpec
from w2p_eval.metrics.registry import metric_spec, metric_specs

MODEL_ORDER = ["wav2pix", "voice2face", "sf2f", "l1_regression", "speaker_retrieval", "random_real", "gender_oracle",
               "mean_face", "external", "real_faces"]


def info(metric: str) -> MetricSpec:
    """The declaration of ``metric`` (label, higher_is_better, unit, meaning)."""
    return metric_spec(metric)


def declared(metric: str) -> bool:
    return metric in metric_specs()


def sort_metrics(metrics) -> list[str]:
    """Declared metrics in declaration order, then the others alphabetically."""
    metrics = list(dict.fromkeys(metrics))
    order = list(metric_specs())
    known = [m for m in order if m in metrics]
    return known + sorted(m for m in metrics if m not in order)


def format_value(metric: str, value: float | None, std: float | None = None, ci: dict | None = None) -> str:
    """``0.5008 -> '50.08 %'`` for rates, 4 significant digits otherwise; ``± std`` when given (several seeds).

    With ``ci`` (a row's ``extra["ci"]``: ``{"low", "high", ...}``): ``'86.0 % [83.1, 88.7]'`` for rates,
    ``'0.4123 [0.4011, 0.4236]'`` otherwise — the interval form every table uses for single-seed rows.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    rate = info(metric).is_rate
    lo, hi = (ci or {}).get("low"), (ci or {}).get("high")
    if std is None and lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi):
        if rate:
            return f"{100 * value:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}]"
        return f"{value:.4g} [{lo:.4g}, {hi:.4g}]"
    fmt = (lambda v: f"{100 * v:.2f}") if rate else (lambda v: f"{v:.4g}")
    text = fmt(value)
    if std is not None and not (isinstance(std, float) and math.isnan(std)):
        text += f" ± {fmt(std) if rate else f'{std:.2g}'}"
    return text + (" %" if rate else "")
