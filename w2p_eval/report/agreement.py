"""Several identity (or landmark) judges in one store: which one the report's tables show, and how far they agree.

``evaluate --backbone dlib_resnet,faceres`` stores the identity and protocol metrics once per judge, told
apart by ``evaluator`` (``identity/<backbone>``). Every table that groups rows by model would average the
judges together, so the report reads them through :func:`primary_view` (one judge: :func:`primary_judge`)
and the "Judge agreement" section (:func:`side_by_side`, :func:`rank_agreement`) sets the judges beside each
other: each metric's value per model under every judge, and per metric Kendall's tau between the primary
judge's order of the models and each other judge's, with the pairs of models whose order flips.
Landmark judges (``evaluate --backend dlib,facemesh``: ``landmarks/<backend>``) get the same treatment: one primary
landmark judge in every other table (``landmarks/dlib`` when present) and a "Landmark judge agreement" section.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from w2p_eval.judges.provenance import trained_on
from w2p_eval.report import render as R
from w2p_eval.report import tables as T
from w2p_eval.report.metrics_info import format_value, info, sort_metrics
from w2p_eval.text import md_code, md_text

IDENTITY_PREFIX = "identity/"
DEFAULT_JUDGE = "identity/dlib_resnet"  # the CLI's default --backbone
LANDMARK_PREFIX = "landmarks/"
DEFAULT_LANDMARK_JUDGE = "landmarks/dlib"  # the CLI's default --backend


def identity_judges(df: pd.DataFrame, prefix: str = IDENTITY_PREFIX, default: str = DEFAULT_JUDGE) -> list[str]:
    """The identity-judge evaluators (``identity/<backbone>``; with ``prefix``/``default``: another family, e.g.
    the landmark judges) present in ``df``, primary first, then by name."""
    found = sorted({str(e) for e in df["evaluator"].unique() if str(e).startswith(prefix)})
    primary = primary_judge(df, prefix, default)
    return ([primary] if primary else []) + [j for j in found if j != primary]


def landmark_judges(df: pd.DataFrame) -> list[str]:
    """The landmark judges (``landmarks/<backend>``) present in ``df``, primary first."""
    return identity_judges(df, LANDMARK_PREFIX, DEFAULT_LANDMARK_JUDGE)


def primary_judge(df: pd.DataFrame, prefix: str = IDENTITY_PREFIX, default: str = DEFAULT_JUDGE) -> str | None:
    """The judge the report's tables show: ``identity/dlib_resnet`` (the default ``--backbone``) when its rows
    exist, else the identity judge with the most rows (ties: by name); None without identity rows. ``prefix`` and
    ``default`` pick another family of judges (``landmarks/``, ``landmarks/dlib``)."""
    ev = df["evaluator"].astype(str)
    counts = ev[ev.str.startswith(prefix)].value_counts()
    if counts.empty:
        return None
    if default in counts.index:
        return default
    return sorted(counts.index, key=lambda j: (-counts[j], j))[0]


def primary_view(df: pd.DataFrame, primary: str | None) -> pd.DataFrame:
    """``df`` without the rows of identity judges other than ``primary``, and of landmark judges other than the
    primary landmark judge (other evaluators kept), so no table counts one model twice."""
    ev = df["evaluator"].astype(str)
    keep = pd.Series(True, index=df.index)
    if primary is not None:
        keep &= ~ev.str.startswith(IDENTITY_PREFIX) | (ev == primary)
    landmark = primary_judge(df, LANDMARK_PREFIX, DEFAULT_LANDMARK_JUDGE)
    if landmark is not None:
        keep &= ~ev.str.startswith(LANDMARK_PREFIX) | (ev == landmark)
    return df if keep.all() else df[keep].reset_index(drop=True)


def judge_name(evaluator: str) -> str:
    """``identity/faceres`` -> ``faceres``."""
    return str(evaluator).split("/", 1)[-1]


def _final(df: pd.DataFrame, judge: str) -> pd.DataFrame:
    """One judge's rows summarised per (run, metric) at each run's final checkpoint (mean over seeds)."""
    sub = T.final_rows(df[df["evaluator"].astype(str) == judge])
    return T.summarize(sub).set_index(["metric", "run"])


def _text(r) -> str:
    return format_value(r.name[0], r["mean"], r["std"] if r["seeds"] > 1 else None,
                        r["ci"] if r["seeds"] == 1 else None)


def judged_metrics(df: pd.DataFrame, judges: list[str]) -> list[str]:
    """Metrics stored under at least two of ``judges``, in declaration order."""
    per = [set(df.loc[df["evaluator"].astype(str) == j, "metric"]) for j in judges]
    return sort_metrics([m for m in set().union(*per) if sum(m in p for p in per) >= 2])


def side_by_side(df: pd.DataFrame, judges: list[str]) -> pd.DataFrame:
    """Long table: one row per (metric, run) with the run's final value [95 % interval] under each judge."""
    finals = {j: _final(df, j) for j in judges}
    rows = []
    for metric in judged_metrics(df, judges):
        runs = {r for f in finals.values() for (m, r) in f.index if m == metric}
        for run in [r for r in T.ordered_runs(df) if r in runs]:
            entry = {"metric": info(metric).label, "run": run}
            for j in judges:
                f = finals[j]
                entry[judge_name(j)] = _text(f.loc[(metric, run)]) if (metric, run) in f.index else "–"
            rows.append(entry)
    return pd.DataFrame(rows, columns=["metric", "run"] + [judge_name(j) for j in judges])


@dataclass
class Agreement:
    """Kendall's tau (tau-b, ``scipy.stats.kendalltau``) between two judges' orders of the models on one metric.

    ``runs``: the models scored by both (finite values); ``tau``/``p_value``: NaN when fewer than two models or
    when one judge gives them all the same value; ``flips``: (run_1, run_2) pairs ordered one way by judge A and
    the other way by judge B (a tie under either judge is not a flip)."""

    metric: str
    judge_a: str
    judge_b: str
    runs: list[str]
    tau: float
    p_value: float
    flips: list[tuple[str, str]]


def kendall(metric: str, judge_a: str, judge_b: str, values_a: dict[str, float],
            values_b: dict[str, float], order: list[str] | None = None) -> Agreement:
    """:class:`Agreement` of two judges' values per run ({run: value}); ``order``: how to list the runs."""
    runs = [r for r in (order or sorted(values_a)) if r in values_a and r in values_b
            and math.isfinite(values_a[r]) and math.isfinite(values_b[r])]
    a = np.array([values_a[r] for r in runs], np.float64)
    b = np.array([values_b[r] for r in runs], np.float64)
    tau = p = math.nan
    if len(runs) >= 2 and np.ptp(a) > 0 and np.ptp(b) > 0:
        tau, p = (float(x) for x in kendalltau(a, b))
    flips = [(runs[i], runs[k]) for i, k in combinations(range(len(runs)), 2)
             if (a[i] - a[k]) * (b[i] - b[k]) < 0]
    return Agreement(metric, judge_a, judge_b, runs, tau, p, flips)


def rank_agreement(df: pd.DataFrame, judges: list[str]) -> list[Agreement]:
    """Per metric stored under two judges: the primary judge (``judges[0]``) against each other judge."""
    finals = {j: _final(df, j) for j in judges}
    order = T.ordered_runs(df)
    out = []
    for metric in judged_metrics(df, judges):
        values = {j: {r: float(v) for (m, r), v in finals[j]["mean"].items() if m == metric} for j in judges}
        for other in judges[1:]:
            if values[judges[0]] and values[other]:
                out.append(kendall(metric, judges[0], other, values[judges[0]], values[other], order))
    return out


def agreement_table(found: list[Agreement]) -> pd.DataFrame:
    """The agreements as a table: metric label, judges, models, tau, p, the pairs whose order flips."""
    rows = [{"metric": info(a.metric).label, "judges": f"{judge_name(a.judge_a)} vs {judge_name(a.judge_b)}",
             "models": len(a.runs), "Kendall's τ": "–" if math.isnan(a.tau) else f"{a.tau:.2f}",
             "p": "–" if math.isnan(a.p_value) else f"{a.p_value:.3g}",
             "order flips": "; ".join(f"{x} ↔ {y}" for x, y in a.flips) or "none"} for a in found]
    return pd.DataFrame(rows, columns=["metric", "judges", "models", "Kendall's τ", "p", "order flips"])


def agreement_section(ctx) -> list:
    """Judge agreement: every identity/protocol metric under each identity judge side by side, and per metric
    Kendall's tau between the primary judge's order of the models and each other judge's, flips named.
    Absent unless the rows hold two or more identity judges."""
    return _agreement_blocks(ctx, ctx.judges, "Judge agreement", "identity", "identity and protocol metrics", "")


def landmark_agreement_section(ctx) -> list:
    """The same for the landmark judges (``--backend dlib,facemesh``): detection rates and NME under each backend.
    Absent unless the rows hold two or more landmark judges."""
    return _agreement_blocks(ctx, landmark_judges(ctx.rows), "Landmark judge agreement", "landmark",
                             "landmark metrics", "landmark_")


def _undocumented(evaluator: str) -> bool:
    info = trained_on(evaluator)
    return bool(info) and info["dataset"].startswith("undocumented")


def _agreement_blocks(ctx, judges: list[str], title: str, kind: str, what: str, prefix: str) -> list:
    if len(judges) < 2:
        return []
    rows = ctx.rows
    found = rank_agreement(rows, judges)
    table = agreement_table(found)
    sides = side_by_side(rows, judges)
    undocumented = [" (training data undocumented)" if _undocumented(j) else "" for j in judges]
    names = ", ".join(md_code(judge_name(j)) + u for j, u in zip(judges, undocumented))
    plain = ", ".join(judge_name(j) + u for j, u in zip(judges, undocumented))
    ctx.table(table, f"{prefix}judge_agreement", f"Rank agreement of the models between {kind} judges ({plain}).")
    ctx.table(sides, f"{prefix}judge_side_by_side", f"{what[0].upper()}{what[1:]} under each judge ({plain}).")
    defined = [a for a in found if not math.isnan(a.tau)]
    flipped = [a for a in found if a.flips]
    summary = (f"{sum(math.isclose(a.tau, 1.0) for a in defined)} of {len(defined)} comparisons (metric, pair of judges) with a "
               f"defined τ order the models identically (τ = 1); " + (
                   "order flips in: " + "; ".join(f"{md_text(info(a.metric).label)} ({md_text(judge_name(a.judge_b))}: "
                                                  f"{len(a.flips)} pair{'s' if len(a.flips) > 1 else ''})"
                                                  for a in flipped)
                   if flipped else "no pair of models changes order under any metric") + ".")
    return [R.h2(title),
            R.p(f"The {what} were computed under {len(judges)} {kind} judges ({names}; "
                f"primary: {md_code(judge_name(judges[0]))}, shown in every other table). Per metric: Kendall's τ "
                "(tau-b, scipy.stats.kendalltau) between the primary judge's order of the models (final "
                "checkpoints) and each other judge's, with its two-sided p-value; \"order flips\" lists every pair "
                "of models ranked one way by one judge and the other way by the other (ties are not flips). "
                "τ is undefined (–) with fewer than two models or when a judge gives them all the same value. "
                "A flip between models whose intervals overlap (see the side-by-side table) is within the "
                "evaluation's noise, not evidence that the judges disagree."),
            R.p(summary), R.table(table),
            R.p("Each metric under every judge: value [95 % interval] of each model's final checkpoint."),
            R.table(sides)]
