"""The report's "Diversity, consistency, verification and coverage" section (the recent papers' metrics) and the
audio-length table of every metric that ``ablate-audio`` writes.

The section shows every model under the primary identity judge (the other judges are in "Judge agreement")
with three reference rows read from the stored rows' ``extra``: **chance** (a face of another speaker for
consistency, 50 % for verification), **one face for everyone** (what a collapsed generator scores: inter-identity
cosine 1, spread 0, consistency 1, Inception/VGGFace Score 1) and **ceiling (real faces)** (the real test
faces' own values: their inter-identity cosine and spread, their cross-clip consistency, real-probe
verification, identical sets for precision/recall/coverage, FID 0, the real faces' IS / VGGFace Score).
Fréchet distance and KID in the same face space (identity suite) stand beside precision/recall/coverage.
"""

from __future__ import annotations

import pandas as pd

from w2p_eval.metrics.registry import get_suite
from w2p_eval.report import render as R
from w2p_eval.report import tables as T
from w2p_eval.report.metrics_info import format_value, info, sort_metrics

SUITES = ("diversity", "consistency", "verification", "coverage", "inception", "vggface_score")
BESIDE = ("frechet_face", "kid_face")
TITLE = "Diversity, consistency, verification and coverage"
COLLAPSED = {"inter_identity_cosine": 1.0, "intra_identity_spread": 0.0, "cross_clip_consistency": 1.0,
             "inception_is": 1.0, "vggface_score": 1.0}
IDENTICAL = {"precision": 1.0, "recall": 1.0, "coverage": 1.0, "inception_fid": 0.0}


def section_metrics() -> list[str]:
    """The metrics this section shows (ceiling variants go to the ceiling row instead)."""
    return [m.name for s in SUITES for m in get_suite(s).metrics if not m.name.endswith("_ceiling")]


def _first_extra(fin: pd.DataFrame, metric: str) -> tuple[dict, pd.Series | None]:
    rows = fin[(fin["metric"] == metric) & (fin["n"] > 0)]
    if rows.empty:
        return {}, None
    r = rows.iloc[0]
    return (r["extra"] if isinstance(r["extra"], dict) else {}), r


def _ref_text(metric: str, ref) -> str:
    if isinstance(ref, dict):
        text = format_value(metric, ref.get("value"), ci=ref.get("ci"))
        return text + (f" ± {ref['std']:.2g}" if ref.get("std") is not None and "[" not in text else "")
    return format_value(metric, ref) if ref is not None else "–"


def reference_rows(fin: pd.DataFrame, metrics: list[str]) -> dict[str, dict[str, str]]:
    """{row name: {metric: text}} for the chance, one-face and ceiling rows."""
    chance, collapsed, ceiling = {}, {}, {}
    for m in metrics:
        extra, _ = _first_extra(fin, m)
        if "chance" in extra and not isinstance(extra["chance"], dict):
            chance[m] = format_value(m, float(extra["chance"]))
        if m in COLLAPSED:
            collapsed[m] = format_value(m, COLLAPSED[m])
        if m.startswith("verification_"):
            collapsed[m] = "≈ " + format_value(m, 0.5)
            _, row = _first_extra(fin, m + "_ceiling")
            if row is not None:
                ceiling[m] = format_value(m, float(row["value"]), ci=(row["extra"] or {}).get("ci"))
        elif m in IDENTICAL:
            ceiling[m] = format_value(m, IDENTICAL[m])
        elif m == "density":  # identical sets: about 1 (each face in about k of the k-NN balls)
            ceiling[m] = "≈ 1"
        elif isinstance(extra.get("real"), dict):
            ceiling[m] = _ref_text(m, extra["real"])
        elif "ceiling" in extra:
            ceiling[m] = _ref_text(m, extra["ceiling"])
    return {"chance": chance, "one face for everyone": collapsed, "ceiling (real faces)": ceiling}


def recent_section(ctx) -> list:
    """The section's blocks ([] when none of its metrics is stored)."""
    fin = ctx.fin
    wanted = section_metrics()
    present = set(fin["metric"])
    metrics = [m for m in wanted if m in present]
    if not metrics:
        return []
    beside = [m for m in BESIDE if m in present and any(m2 in metrics for m2 in ("precision", "coverage"))]
    _, txt = T.main_table(fin[fin["metric"].isin(metrics + beside)], metrics + beside)
    cols = [m for m in metrics if m in txt.columns]
    at = cols.index("coverage") + 1 if "coverage" in cols else len(cols)
    txt = txt[["model", "epoch", *cols[:at], *beside, *cols[at:]]]  # Fréchet distance / KID beside coverage
    for name, values in reference_rows(fin, metrics).items():
        txt.loc[name] = {"model": "", "epoch": "", **{m: values.get(m, "–") for m in txt.columns
                                                      if m not in ("model", "epoch")}}
    ctx.table(txt, "recent_metrics", f"{TITLE}: value [95 % CI] per model, with chance, one-face and ceiling rows.")
    shown = txt.rename(columns={m: info(m).label for m in metrics + beside})
    skipped = sorted({str(e["skipped"]) for e in fin.loc[fin["metric"].isin(metrics), "extra"]
                      if isinstance(e, dict) and e.get("skipped")})
    k = _first_extra(fin, "precision")[0].get("k")
    blocks = [R.h2(TITLE),
              R.p("The recent papers' checks in the identity judge's face space: does the generator draw one face for "
                  "everyone (inter-identity cosine: 1 = collapse; read it beside cross-clip consistency, which a "
                  "constant face also maxes out), do faces from different clips of one speaker agree, is the "
                  "generated face verified as its speaker against real faces (EER, ROC-AUC; same-gender impostors "
                  "where genders are known), and how the generated faces cover the real ones (precision, recall, "
                  f"density, coverage of Naeem et al. 2020{f', k = {k}' if k else ''}) beside Fréchet distance and "
                  "KID. Inception FID / IS and SF2F's VGGFace Score appear when their weight files were given. "
                  "Brackets: 95 % intervals, cluster bootstrap over identities."),
              R.table(shown, "Chance: a face of another speaker (consistency), 50 % (verification). One face for "
                             "everyone: what a collapsed generator scores. Ceiling: the real test faces themselves.")]
    return blocks + [R.p(f"Not computed: {s}") for s in skipped]


def audio_length_table(df: pd.DataFrame, run_audio: dict[str, float]) -> pd.DataFrame:
    """Audio length (s) x every metric stored for the WAV2PIX runs of ``run_audio`` (final checkpoints; value
    [95 % CI] with one seed, mean ± std over several; ceiling variants included)."""
    fin = T.final_rows(df)
    w = fin[(fin["model"] == "wav2pix") & fin["run"].isin(list(run_audio)) & (fin["n"] > 0)]
    if w.empty:
        return pd.DataFrame()
    w = w.assign(audio=[f"{float(run_audio[r]):g}" for r in w["run"]])
    s = T.summarize(w, by=("audio",))
    metrics = sort_metrics(s["metric"].unique())
    out = pd.DataFrame(index=pd.Index(sorted(s["audio"].unique(), key=float), name="audio (s)"),
                       columns=[info(m).label for m in metrics], dtype=object)
    for _, r in s.iterrows():
        out.loc[r["audio"], info(r["metric"]).label] = T._cell(r)
    return out.fillna("–")
