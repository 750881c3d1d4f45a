"""Report figures (matplotlib, Agg backend; matplotlib is imported only inside w2p_eval.report).

Every figure is written as PNG and PDF, each file atomically; functions return the PNG path
(the PDF sits beside it) or None when there is nothing to draw.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from w2p_eval.report.metrics_info import info
from w2p_eval.results import row_ci
from w2p_eval.utils import atomic_path


def _plt():
    """matplotlib.pyplot on the Agg backend (files only, no display)."""
    matplotlib.use("Agg", force=True)
    # figure text carries run and identity names (data): a "$" is a dollar sign, never mathtext (an unbalanced
    # or malformed formula in a name would otherwise fail the whole report)
    matplotlib.rcParams["text.parse_math"] = False
    matplotlib.rcParams["text.usetex"] = False
    import matplotlib.pyplot as plt  # lazy: pyplot fixes the backend when imported; Agg must be chosen first

    return plt


def save_figure(fig, out_dir: str | os.PathLike, name: str, dpi: int = 120) -> Path:
    """``name``.png and ``name``.pdf in ``out_dir``; returns the PNG path."""
    plt = _plt()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for ext in ("png", "pdf"):
        with atomic_path(out_dir / f"{name}.{ext}") as tmp:
            fig.savefig(tmp, format=ext, dpi=dpi, bbox_inches="tight", metadata=None if ext == "png" else
                        {"CreationDate": None})
    plt.close(fig)
    return out_dir / f"{name}.png"


def metric_vs_epoch(df: pd.DataFrame, metric: str, out_dir, name: str | None = None) -> Path | None:
    """Metric (mean over seeds) vs epoch: one line per run with several checkpoints; runs with one
    checkpoint (the baselines) as dashed horizontal lines, external models' faces as dotted ones."""
    sub = df[(df["metric"] == metric) & df["value"].notna()]
    means = interval_frame(sub)
    curves = [r for r, g in means.groupby("run") if g["epoch"].nunique() > 1]
    if not curves:  # no model has this metric at two epochs or more (e.g. NME where no landmarks were found)
        return None
    plt = _plt()
    mi = info(metric)
    scale = 100.0 if mi.is_rate else 1.0
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    external = set(sub.loc[sub["source"].fillna("checkpoint") != "checkpoint", "run"]) if "source" in sub else set()
    flats = [r for r in means["run"].unique() if r not in curves]
    for run in curves:
        g = means[means["run"] == run].sort_values("epoch")
        err = np.vstack([(g["value"] - g["low"]).clip(lower=0), (g["high"] - g["value"]).clip(lower=0)]) * scale
        ax.errorbar(g["epoch"], g["value"] * scale, yerr=np.nan_to_num(err), marker="o", capsize=3, label=run)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, run in enumerate(flats):
        last = means[means["run"] == run].iloc[-1]
        color = colors[(i + len(curves)) % len(colors)]
        ax.axhline(float(last["value"]) * scale, linestyle="--" if run not in external else ":", linewidth=1.2,
                   color=color, label=run + (" (external)" if run in external else ""))
        if np.isfinite(last["low"]) and np.isfinite(last["high"]):
            ax.axhspan(float(last["low"]) * scale, float(last["high"]) * scale, color=color, alpha=0.12, linewidth=0)

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    epochs = means.loc[means["run"].isin(curves), "epoch"].astype(float)
    pad = max(0.5, 0.04 * (epochs.max() - epochs.min()))
    ax.set_xlim(epochs.min() - pad, epochs.max() + pad)
    ax.set_xlabel("epoch")
    ax.set_ylabel(mi.label + (" (%)" if mi.is_rate else ""))
    ax.set_title(f"{mi.label} vs epoch (bars/bands: 95 % CI; dashed: single-checkpoint baselines; dotted: "
                 f"external models)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return save_figure(fig, out_dir, name or f"epochs_{metric}")


def interval_frame(sub: pd.DataFrame) -> pd.DataFrame:
    """(run, epoch) -> value (mean over seeds) with ``low``/``high``: the stored 95 % interval of a single-seed
    point, or mean ± std's range over several seeds (NaN when neither exists)."""
    rows = []
    for (run, epoch), g in sub.groupby(["run", "epoch"], dropna=False):
        value = float(g["value"].mean())
        lo = hi = float("nan")
        if len(g) == 1:
            ci = row_ci(g["extra"].iloc[0]) if "extra" in g else None
            if ci:
                lo, hi = float(ci["low"]), float(ci["high"])
        else:
            sd = float(g["value"].std())
            lo, hi = value - sd, value + sd
        rows.append({"run": run, "epoch": epoch, "value": value, "low": lo, "high": hi})
    return pd.DataFrame(rows, columns=["run", "epoch", "value", "low", "high"])


def metric_bars(df: pd.DataFrame, metrics: list[str], out_dir, name: str, title: str) -> Path | None:
    """One panel per metric, two panels a row (legible at 800 px): each run's final value as a bar with its 95 %
    interval as an error bar."""
    sub = df[df["metric"].isin(metrics)]
    metrics = [m for m in metrics if m in set(sub["metric"])]
    if not metrics:
        return None
    plt = _plt()
    cols = min(2, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols + 0.4, 3.3 * rows), squeeze=False)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    for ax, metric in zip(axes.flat, metrics):
        mi = info(metric)
        scale = 100.0 if mi.is_rate else 1.0
        pts = interval_frame(sub[sub["metric"] == metric]).drop_duplicates("run", keep="last")
        x = np.arange(len(pts))
        vals = pts["value"].to_numpy() * scale
        err = np.vstack([(pts["value"] - pts["low"]).clip(lower=0), (pts["high"] - pts["value"]).clip(lower=0)])
        ax.bar(x, vals, yerr=np.nan_to_num(err) * scale, capsize=3, color="#8aa9d6")
        chance = [e.get("chance") for e in sub.loc[sub["metric"] == metric, "extra"] if isinstance(e, dict)]
        chance = [c for c in chance if c is not None]
        if chance:
            ax.axhline(float(chance[0]) * scale, linestyle=":", color="grey", linewidth=1, label="chance")
            ax.legend(fontsize=7)
        ax.set_xticks(x, list(pts["run"]), rotation=30, ha="right", fontsize=8)
        ax.set_title(mi.label, fontsize=9)
        ax.set_ylabel("%" if mi.is_rate else mi.unit, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out_dir, name)


def _loss_terms(frame: pd.DataFrame) -> list[str]:
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c]) and c != "epoch"]
    lossy = [c for c in numeric if "loss" in c or c.startswith(("d_", "g_"))]
    return lossy or numeric


def loss_curves(losses: dict[str, list[dict]], out_dir, name: str = "loss_curves") -> Path | None:
    """Training loss terms per epoch, one panel per run that trained for 2+ epochs (RUN/losses.jsonl)."""
    losses = {k: v for k, v in losses.items() if len(v) >= 2}
    if not losses:
        return None
    plt = _plt()
    n = len(losses)
    cols = 1  # one panel a row: legible at 800 px with the legend beside it
    rows = n
    fig, axes = plt.subplots(rows, cols, figsize=(6.6, 3.2 * rows), squeeze=False)
    for ax, (run, recs) in zip(axes.flat, losses.items()):
        frame = pd.DataFrame(recs)
        x = frame["epoch"] if "epoch" in frame else pd.Series(range(1, len(frame) + 1))
        terms = _loss_terms(frame)
        for term in terms:
            ax.plot(x, frame[term], marker=".", label=term)
        values = frame[terms].to_numpy(dtype=float) if terms else np.zeros((0,))
        positive = values.size and bool((values[np.isfinite(values)] > 0).all())
        if positive and np.nanmax(values) / max(np.nanmin(values), 1e-12) > 100:
            ax.set_yscale("log")
        ax.set_title(run, fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if terms:
            ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("training losses per epoch", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out_dir, name)


def confusion_matrix(matrix, labels: list[str], title: str, out_dir, name: str) -> Path | None:
    """Row-normalised confusion matrix (rows = true speaker, columns = predicted identity)."""
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.size == 0:
        return None
    plt = _plt()
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    k = m.shape[0]
    size = max(3.5, 0.45 * k + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    labels = list(labels)[:k] if labels else [str(i) for i in range(k)]
    ax.set_xticks(range(k), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(k), labels, fontsize=7)
    if k <= 12:
        for i in range(k):
            for j in range(m.shape[1]):
                ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted identity")
    ax.set_ylabel("true speaker")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return save_figure(fig, out_dir, name)


def sample_grid(columns: list[tuple[str, np.ndarray]], row_labels: list[str], out_dir,
                name: str = "samples") -> Path | None:
    """Rows = identities, columns = (title, uint8 [R, S, S, 3] faces) e.g. real face, then each model."""
    columns = [(t, imgs) for t, imgs in columns if imgs is not None and len(imgs)]
    if not columns or not row_labels:
        return None
    plt = _plt()
    r, c = len(row_labels), len(columns)
    fig, axes = plt.subplots(r, c, figsize=(1.25 * c + 0.6, 1.25 * r + 0.5), squeeze=False)
    for j, (title, imgs) in enumerate(columns):
        for i in range(r):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if i < len(imgs):
                ax.imshow(imgs[i], interpolation="nearest")
            if i == 0:
                ax.set_title(title, fontsize=6.5)
            if j == 0:
                ax.set_ylabel(row_labels[i], fontsize=7)
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    return save_figure(fig, out_dir, name, dpi=100)


def image_figure(image_path: str | os.PathLike, title: str, out_dir, name: str) -> Path | None:
    """An existing picture (e.g. a landmark overlay grid) re-drawn with a title, as PNG + PDF."""
    image_path = Path(image_path)
    if not image_path.is_file():
        return None
    plt = _plt()
    img = plt.imread(str(image_path))
    h, w = img.shape[:2]
    scale = 6.0 / max(h, w)
    fig, ax = plt.subplots(figsize=(max(2.5, w * scale), max(2.5, h * scale) + 0.4))
    ax.imshow(img, interpolation="nearest")
    ax.axis("off")
    ax.set_title(title, fontsize=9)
    return save_figure(fig, out_dir, name, dpi=120)
