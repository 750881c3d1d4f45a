"""Report tables (pandas) from results rows: models x metrics, metric vs epoch, per identity, speaker-ID
ceiling, paper reference numbers and the audio-length ablation; written as CSV, Markdown and LaTeX.

Every function takes the results DataFrame of :meth:`w2p_eval.results.ResultsStore.query` (columns run,
model, epoch, metric, seed, value, n, extra, ...). "Final" means each run's last evaluated epoch;
"mean ± std" is over the evaluation seeds present for that run and checkpoint; with one seed a cell shows
the row's own 95 % interval instead (``extra["ci"]``, a cluster bootstrap over faces): ``86.0 % [83.1, 88.7]``.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pandas as pd

from w2p_eval.models.checkpoint import teachers_of
from w2p_eval.report import reference
from w2p_eval.report.metrics_info import MODEL_ORDER, format_value, info, sort_metrics
from w2p_eval.results import row_ci
from w2p_eval.text import table_cells as _cells
from w2p_eval.text import one_line, to_markdown
from w2p_eval.utils import atomic_write_text, csv_safe


def _model_rank(model: str) -> int:
    return MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER)


def final_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of each run's last evaluated epoch (external sources have no epoch: all their rows)."""
    if df.empty:
        return df
    last = df.groupby("run")["epoch"].transform("max")
    return df[(df["epoch"] == last) | (df["epoch"].isna() & last.isna())]


def is_external(row) -> bool:
    """A row of faces that came from outside w2p-eval's training (an images folder or the Python API)."""
    return str(row.get("source") or "checkpoint") != "checkpoint"


def model_text(row) -> str:
    """The model cell: ours by name; other models' faces as ``external (images)``."""
    return f"external ({row.get('source')})" if is_external(row) else str(row["model"])


def teacher_marks(df: pd.DataFrame) -> dict[str, list[str]]:
    """run -> the judges of its rows that its generator was trained against (a checkpoint's ``meta["teachers"]``
    met in a row's ``evaluator``, e.g. ``identity/gear`` or ``attributes/faceres+gear``); runs with none are
    left out. Read from the checkpoint files the rows name (a file that is gone marks nothing)."""
    if df.empty or "checkpoint" not in df.columns or "evaluator" not in df.columns:
        return {}
    marks: dict[str, list[str]] = {}
    own = df if "source" not in df.columns else df[df["source"].fillna("checkpoint") == "checkpoint"]
    for run, rows in own.groupby("run"):
        teachers = {t for c in rows["checkpoint"].dropna().unique() for t in teachers_of(str(c))}
        judges = {part for ev in rows["evaluator"].dropna().unique() for part in re.split(r"[/+,]", str(ev))}
        if teachers & judges:
            marks[str(run)] = sorted(teachers & judges)
    return marks


def epoch_text(epoch):
    """An epoch cell: the integer, or '–' for sources without one (external faces)."""
    return "–" if epoch is None or (isinstance(epoch, float) and math.isnan(epoch)) else int(epoch)


def summarize(df: pd.DataFrame, by=("run", "model", "epoch")) -> pd.DataFrame:
    """Long table: one row per (by..., metric) with mean, std (over seeds, NaN for one seed), seeds, n and
    ``ci`` (the row's stored interval when there is one row, else None)."""
    by = list(by)
    if df.empty:
        return pd.DataFrame(columns=by + ["metric", "mean", "std", "seeds", "n", "ci"])
    g = df.groupby(by + ["metric"], dropna=False)
    out = g["value"].agg(["mean", "std"]).reset_index()
    out["seeds"] = g["seed"].nunique().values
    out["n"] = g["n"].max().values
    if "extra" in df.columns:
        out["ci"] = [row_ci(x[0]) if len(x) == 1 else None for x in g["extra"].agg(list).values]
    else:
        out["ci"] = None
    if "source" in df.columns and "run" in by:
        source = df.drop_duplicates("run").set_index("run")["source"]
        out["source"] = out["run"].map(source).fillna("checkpoint").values
    return out


def ordered_runs(df: pd.DataFrame) -> list[str]:
    """Run names of a results frame in table order: WAV2PIX, baselines, external models, real faces."""
    return _order_runs(df) if not df.empty else []


def _order_runs(summary: pd.DataFrame) -> list[str]:
    runs = summary.drop_duplicates("run")[["run", "model"]]
    return [r for r, _ in sorted(zip(runs["run"], runs["model"]), key=lambda t: (_model_rank(t[1]), t[0]))]


def _cell(r) -> str:
    """A summary row as text: mean ± std over several seeds, else the value with its stored interval."""
    return format_value(r["metric"], r["mean"], r["std"] if r["seeds"] > 1 else None,
                        r.get("ci") if r["seeds"] == 1 else None)


def main_table(df: pd.DataFrame, metrics: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Models/baselines x metrics at each run's final epoch.

    Returns (numeric means, formatted "mean ± std" strings), both indexed by run with a ``model`` and
    ``epoch`` column first.
    """
    final = final_rows(df)
    s = summarize(final)
    marks = teacher_marks(final)  # a generator trained against one of its judges says so in its model cell
    metrics = sort_metrics(metrics or s["metric"].unique())
    runs = _order_runs(s) if not s.empty else []
    num = pd.DataFrame(index=pd.Index(runs, name="run"), columns=["model", "epoch"] + metrics, dtype=object)
    txt = num.copy()
    for _, r in s.iterrows():
        if r["metric"] not in metrics:
            continue
        mark = f" (trained against judge {', '.join(marks[r['run']])})" if r["run"] in marks else ""
        num.loc[r["run"], ["model", "epoch"]] = [model_text(r), epoch_text(r["epoch"])]
        txt.loc[r["run"], ["model", "epoch"]] = [model_text(r) + mark, epoch_text(r["epoch"])]
        num.loc[r["run"], r["metric"]] = r["mean"]
        txt.loc[r["run"], r["metric"]] = _cell(r)
    return num, txt.fillna("–")


def epoch_table(df: pd.DataFrame, run: str) -> pd.DataFrame:
    """Metric vs epoch for one run (formatted; rows = epochs)."""
    s = summarize(df[df["run"] == run])
    metrics = sort_metrics(s["metric"].unique())
    epochs = sorted(s["epoch"].unique())
    out = pd.DataFrame(index=pd.Index(epochs, name="epoch"), columns=metrics, dtype=object)
    for _, r in s.iterrows():
        out.loc[r["epoch"], r["metric"]] = _cell(r)
    return out.fillna("–")


def _per_identity(metric: str, extra: dict) -> dict[str, str]:
    """Per-identity accuracy from a row's ``extra`` as text (``per_identity``: {name: acc}, and its interval
    ``per_identity_ci``: {name: [low, high]}, both written by the identity suite; older rows: no interval)."""
    per = extra.get("per_identity") or {}
    cis = extra.get("per_identity_ci") or {}
    out = {}
    for name, v in per.items():
        lo_hi = cis.get(name)
        ci = {"low": lo_hi[0], "high": lo_hi[1]} if isinstance(lo_hi, (list, tuple)) and len(lo_hi) == 2 else None
        out[str(name)] = format_value(metric, float(v) if v is not None else math.nan, ci=ci)
    return out


def per_identity_table(df: pd.DataFrame, metric: str = "identity_top1_fake") -> pd.DataFrame:
    """Rows = identities, columns = runs (final epoch, first seed) + the real-face ceiling column; cells are
    accuracies with their 95 % interval where the row stored one."""
    fin = final_rows(df)
    cols: dict[str, dict[str, str]] = {}
    for _, r in fin[fin["metric"] == metric].sort_values("seed").drop_duplicates("run").iterrows():
        cols[r["run"]] = _per_identity(metric, r["extra"])
    real = fin[fin["metric"] == "identity_top1_real"].sort_values("seed")
    if not real.empty:
        cols["real faces (classifier ceiling)"] = _per_identity("identity_top1_real", real.iloc[0]["extra"])
    cols = {k: v for k, v in cols.items() if v}
    if not cols:
        return pd.DataFrame()
    order = [r for r in _order_runs(summarize(fin)) if r in cols] + [k for k in cols if k not in set(fin["run"])]
    table = pd.DataFrame({k: cols[k] for k in order})
    table.index.name = "identity"
    return table.sort_index().fillna("–")


def landmark_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per run (final epoch, first seed): detection rate, real-face rate and NME, each with its 95 % interval
    (cluster bootstrap over faces; older rows: the Wilson interval they stored), n."""
    fin = final_rows(df)
    det = fin[fin["metric"] == "landmark_detection_rate"].sort_values("seed").drop_duplicates("run")
    if det.empty:
        return pd.DataFrame()
    order = [r for r in _order_runs(summarize(fin)) if r in set(det["run"])]
    rows = []
    for run in order:
        r = det[det["run"] == run].iloc[0]
        ex = r["extra"] if isinstance(r["extra"], dict) else {}
        same = fin[(fin["run"] == run) & (fin["seed"] == r["seed"])].drop_duplicates("metric").set_index("metric")

        def cell(metric: str) -> str:
            if metric not in same.index:
                return "–"
            return format_value(metric, same.loc[metric, "value"], ci=row_ci(same.loc[metric, "extra"]))

        rows.append({"run": run, "model": model_text(r), "epoch": epoch_text(r["epoch"]),
                     "detection rate [95 % CI]": format_value("landmark_detection_rate", r["value"], ci=row_ci(ex)),
                     "real faces": cell("landmark_detection_rate_real"), "NME": cell("landmark_nme"),
                     "n": int(r["n"])})
    return pd.DataFrame(rows).set_index("run")


def _measured(df: pd.DataFrame, metric: str) -> str:
    """One metric's value as text: the row with its stored interval when there is one row, else the mean over
    the rows (several WAV2PIX runs or seeds) without an interval; '–' when there is none."""
    rows = df[df["metric"] == metric]
    if len(rows) == 1:
        extra = rows["extra"].iloc[0] if "extra" in rows.columns else None
        return format_value(metric, float(rows["value"].iloc[0]), ci=row_ci(extra))
    return format_value(metric, float(rows["value"].mean()) if len(rows) else math.nan)


def reference_table(df: pd.DataFrame, run_audio: dict[str, float] | None = None,
                    n_identities: int | None = None) -> pd.DataFrame:
    """The paper's reported numbers beside ours (WAV2PIX runs at 1 s of audio, final epochs)."""
    fin = final_rows(df)
    w = fin[fin["model"] == "wav2pix"]
    if run_audio:
        at1 = [r for r, s in run_audio.items() if abs(float(s) - 1.0) < 1e-6]
        if set(at1) & set(w["run"]):
            w = w[w["run"].isin(at1)]
    ours_n = f"{n_identities} identities" if n_identities else "this dataset"
    rows = []
    for metric, (paper_value, what) in reference.PAPER.items():
        rows.append({
            "quantity": info(metric).label,
            "paper (reported)": format_value(metric, paper_value),
            "paper setting": what,
            "ours (measured)": _measured(w, metric),
            "our setting": f"WAV2PIX, {ours_n}, our judges",
        })
    rows.append({"quantity": "identity chance level", "paper (reported)": format_value(
        "identity_top1_fake", 1 / reference.PAPER_N_IDENTITIES), "paper setting": "1 / 10 identities",
        "ours (measured)": format_value("identity_top1_fake", 1 / n_identities) if n_identities else "–",
        "our setting": f"1 / {n_identities}" if n_identities else "–"})
    return pd.DataFrame(rows).set_index("quantity")


def protocol_table(df: pd.DataFrame) -> pd.DataFrame:
    """The field's protocols per run (final epoch, first seed): SF2F gallery recall@K with G and chance, paired
    distances, 1:N matching beside its real-vs-real ceiling — each value with its 95 % interval."""
    fin = final_rows(df)
    wanted = [m for m in sort_metrics(fin["metric"].unique())
              if m.startswith(("gallery_r", "paired_", "matching_1to"))]
    if not wanted:
        return pd.DataFrame()
    sub = fin[fin["metric"].isin(wanted)].sort_values("seed")
    rows = []
    for run in [r for r in _order_runs(summarize(fin)) if r in set(sub["run"])]:
        mine = sub[sub["run"] == run]
        mine = mine[mine["seed"] == mine["seed"].iloc[0]].drop_duplicates("metric").set_index("metric")
        first = mine.iloc[0]
        entry = {"run": run, "model": model_text(first), "epoch": epoch_text(first["epoch"])}
        for m in wanted:
            entry[info(m).label] = (format_value(m, mine.loc[m, "value"], ci=row_ci(mine.loc[m, "extra"]))
                                    if m in mine.index else "–")
        g = next((mine.loc[m, "extra"].get("gallery_size") for m in mine.index if m.startswith("gallery_r")
                  and isinstance(mine.loc[m, "extra"], dict)), None)
        entry["G"] = int(g) if g is not None else "–"
        rows.append(entry)
    table = pd.DataFrame(rows).set_index("run")
    return table.loc[:, [c for c in table.columns if (table[c] != "–").any()]]  # e.g. a 1:10 no split allowed


def ablation_table(df: pd.DataFrame, run_audio: dict[str, float]) -> pd.DataFrame:
    """The paper's table shape: audio length x (identity accuracy, landmark detection rate), paper beside."""
    fin = final_rows(df)
    w = fin[(fin["model"] == "wav2pix") & fin["run"].isin(list(run_audio))]
    seconds = sorted({float(run_audio[r]) for r in w["run"].unique()} | set(reference.PAPER_ABLATION_LANDMARKS))
    rows = []
    for sec in seconds:
        runs = [r for r, s in run_audio.items() if abs(float(s) - sec) < 1e-6]
        sub = w[w["run"].isin(runs)]
        entry = {"audio (s)": f"{sec:g}"}
        for metric in ("identity_top1_fake", "landmark_detection_rate"):
            vals = sub.loc[sub["metric"] == metric, "value"]
            std = float(vals.std()) if len(vals) > 1 else None
            entry[f"ours: {info(metric).label}"] = format_value(metric, float(vals.mean()) if len(vals) else None, std)
        paper = reference.PAPER_ABLATION_LANDMARKS.get(sec)
        entry["paper (reported): landmark detection rate"] = format_value("landmark_detection_rate", paper)
        rows.append(entry)
    return pd.DataFrame(rows).set_index("audio (s)")


# -- writers ------------------------------------------------------------------------------------
_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}", "±": r"$\pm$", "–": "--"}


def _latex_escape(text: str) -> str:
    """Data text for a LaTeX table cell or caption: one line (a blank line would end the tabular), every special
    character escaped."""
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in one_line(text))


def to_latex(df: pd.DataFrame, caption: str = "") -> str:
    """A booktabs LaTeX table (needs \\usepackage{booktabs})."""
    header, body = _cells(df)
    lines = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}",
             r"\toprule", " & ".join(_latex_escape(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(_latex_escape(c) for c in row) + r" \\" for row in body]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(r"\caption{" + _latex_escape(caption) + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def write_table(df: pd.DataFrame, out_dir: str | os.PathLike, name: str, caption: str = "") -> list[Path]:
    """``name``.csv, .md and .tex in ``out_dir`` (each written atomically)."""
    out_dir = Path(out_dir)
    paths = [out_dir / f"{name}.{ext}" for ext in ("csv", "md", "tex")]
    atomic_write_text(paths[0], csv_safe(df).to_csv(index=not isinstance(df.index, pd.RangeIndex)))
    atomic_write_text(paths[1], to_markdown(df) + "\n")
    atomic_write_text(paths[2], to_latex(df, caption))
    return paths
