"""The report's "Judges" section: what every judge in the rows was trained on, beside its numbers' evaluator name,
with the overlap the field warns about, and - when the dataset's identities are VoxCeleb ids or VGGFace names and
the VoxCeleb meta files are found (``$W2P_VOXCELEB_META`` or ``DATA/voxceleb_meta``) - how many of the dataset's
identities each judge's training set holds (:mod:`w2p_eval.judges.provenance`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from w2p_eval.data.manifest import load_info
from w2p_eval.errors import InputError
from w2p_eval.judges.provenance import META_ENV, meta_dir, seen_identities, trained_on
from w2p_eval.report import render as R
from w2p_eval.text import md_code


def _identities(data_dir) -> list[str]:
    if data_dir is None:
        return []
    try:  # dataset.json only, as the rest of the report
        return [str(i) for i in load_info(data_dir).get("identities", [])]
    except InputError:
        return []


def judges_table(evaluators: list[str], identities: list[str], folder: Path | None) -> pd.DataFrame:
    """One row per evaluator: its training data, identities, source, the overlap, and (with ``folder``) how many
    of ``identities`` it has seen."""
    seen = seen_identities(identities, folder) if folder is not None and identities else {}
    rows = []
    for ev in evaluators:
        info = trained_on(ev) or {"dataset": "not declared", "identities": "?", "source": "?", "overlap": "?"}
        entry = {"judge": ev, "trained on": info["dataset"], "identities": info["identities"],
                 "source": info["source"], "overlap (field)": info["overlap"]}
        if seen:
            hit = seen.get(ev)
            entry["dataset identities seen"] = ("–" if hit is None else
                                                f"{len(hit)} of {len(identities)}" + (
                                                    f" ({', '.join(hit[:5])}{', …' if len(hit) > 5 else ''})"
                                                    if hit else ""))
        rows.append(entry)
    return pd.DataFrame(rows)


def judges_section(ctx) -> list:
    """Judges: training data and overlap of every evaluator in the rows (absent without rows)."""
    evaluators = sorted({str(e) for e in ctx.rows["evaluator"].unique()})
    if not evaluators:
        return []
    folder = meta_dir(Path(ctx.data_dir) / "voxceleb_meta" if ctx.data_dir is not None else None)
    table = judges_table(evaluators, _identities(ctx.data_dir), folder)
    ctx.table(table, "judges", "What each judge was trained on.")
    note = ("Identities seen: the dataset's identities (dataset.json) found in the judge's training set through the "
            f"VoxCeleb meta files in {md_code(folder)}." if folder is not None else
            f"The dataset's identities were not matched against VoxCeleb (set ${META_ENV} to a folder holding "
            "vox1_meta.csv and full_vox2_meta.csv to list which ones each judge has seen).")
    return [R.h2("Judges"),
            R.p("What each judge's network was trained on. A judge that has seen the test identities' faces is still "
                "a fair relative judge between generators, but its ceiling (real faces) is optimistic. FaceRes and "
                "FaceNet-VGGFace2 were trained on VGGFace2, which holds every VoxCeleb2 identity; VGG-Face on "
                "VGGFace1, which holds every VoxCeleb1 identity; MobileFaceNet's and FaceMesh's training data are "
                "undocumented. " + note),
            R.table(table)]
