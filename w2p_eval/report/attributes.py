"""The report's "Attributes" section (Speech2Face's presentation): every model's attribute agreement and gender
accuracy with a chance row and a ceiling row, then gender (and ethnicity) confusion matrices, generated vs real.

Chance: gender agreement of faces drawn independently from the real test faces' gender mix (p^2 + (1-p)^2),
gender accuracy of always answering the majority gender, ethnicity agreement sum_k q_k^2 over the real faces'
judged ethnicities, age correlation 0. Ceiling: a generator that returns the real face (agreement 100 %, age MAE
0, correlation 1) and, for gender accuracy, the judge's accuracy on the real test faces.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from w2p_eval.metrics.attributes import (AGE_CORR, AGE_MAE, ETHNICITY_AGREEMENT, GENDER_ACC_FAKE, GENDER_ACC_REAL,
                                         GENDER_AGREEMENT)
from w2p_eval.report import render as R
from w2p_eval.report import tables as T
from w2p_eval.report.metrics_info import format_value

METRICS = [GENDER_AGREEMENT, AGE_MAE, AGE_CORR, ETHNICITY_AGREEMENT, GENDER_ACC_FAKE]


def _extra(sub: pd.DataFrame, metric: str) -> dict:
    rows = sub[sub["metric"] == metric]
    for e in rows["extra"]:
        if isinstance(e, dict) and e.get("confusion") is not None:
            return e
    return {}


def reference_rows(fin: pd.DataFrame) -> dict[str, dict[str, str]]:
    """{"chance": {metric: text}, "ceiling (real faces)": {metric: text}} from the rows' stored confusions."""
    chance, ceiling = {}, {GENDER_AGREEMENT: "100 %", AGE_MAE: "0", AGE_CORR: "1", ETHNICITY_AGREEMENT: "100 %"}
    g = np.asarray(_extra(fin, GENDER_AGREEMENT).get("confusion") or [], float)
    if g.size:
        p = g.sum(1)[1] / g.sum()  # share of real faces judged male
        chance[GENDER_AGREEMENT] = format_value(GENDER_AGREEMENT, float(p * p + (1 - p) * (1 - p)))
    chance[AGE_CORR] = "0"
    e = np.asarray(_extra(fin, ETHNICITY_AGREEMENT).get("confusion") or [], float)
    if e.size:
        q = e.sum(1) / e.sum()
        chance[ETHNICITY_AGREEMENT] = format_value(ETHNICITY_AGREEMENT, float((q * q).sum()))
    acc = fin[fin["metric"] == GENDER_ACC_FAKE]
    if len(acc) and isinstance(acc["extra"].iloc[0], dict) and "chance" in acc["extra"].iloc[0]:
        chance[GENDER_ACC_FAKE] = format_value(GENDER_ACC_FAKE, float(acc["extra"].iloc[0]["chance"]))
    real = fin[fin["metric"] == GENDER_ACC_REAL]
    if len(real):
        r = real.iloc[0]
        ceiling[GENDER_ACC_FAKE] = format_value(GENDER_ACC_REAL, float(r["value"]), ci=(r["extra"] or {}).get("ci"))
    return {"chance": chance, "ceiling (real faces)": ceiling}


def confusion_frame(fin: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (run, real class): counts of generated faces per judged class."""
    out = []
    for _, r in fin[fin["metric"] == metric].drop_duplicates("run").iterrows():
        e = r["extra"] if isinstance(r["extra"], dict) else {}
        mat, labels = e.get("confusion"), e.get("confusion_labels") or []
        if mat is None:
            continue
        for lab, counts in zip(labels, mat):
            if sum(counts):
                out.append({"run": r["run"], "real": lab, **{f"generated {k}": int(c) for k, c in zip(labels, counts)}})
    return pd.DataFrame(out)


def attributes_section(ctx) -> list:
    """The "Attributes" section of ``w2p-eval report`` ([] when no attribute rows are stored)."""
    fin = T.final_rows(ctx.df)
    sub = fin[fin["metric"].isin(METRICS)]
    if sub.empty:
        return []
    _, txt = T.main_table(sub, [m for m in METRICS if m in set(sub["metric"])])
    for name, values in reference_rows(fin).items():
        txt.loc[name] = {"model": "", "epoch": "", **{m: values.get(m, "–") for m in txt.columns if m in METRICS}}
    ctx.table(txt, "attributes", "Attribute agreement (generated vs real face) and gender accuracy, 95 % CIs.")
    blocks = [R.h2("Attributes"),
              R.p("What a voice reveals first: gender and age (Speech2Face's attribute agreement). The attribute "
                  "judges (FaceRes: gender, age; GEAR: ethnicity) read each generated face and its speaker's real "
                  "face; gender accuracy compares with the dataset's labels (`prepare --identity-meta`). "
                  "`gender_oracle` shows what getting only gender right scores."),
              R.table(txt, "Chance: independent faces with the real faces' attribute mix (accuracy: the majority "
                           "gender). Ceiling: the real faces themselves (gender accuracy: the judge on the real test "
                           "faces).")]
    for metric, what in ((GENDER_AGREEMENT, "gender"), (ETHNICITY_AGREEMENT, "ethnicity")):
        conf = confusion_frame(fin, metric)
        if conf.empty:
            continue
        ctx.table(conf, f"attributes_confusion_{what}", f"Judged {what}: real face (rows) vs generated face.")
        blocks += [R.p(f"Judged {what}, real face (rows) vs generated face (columns), pairs per run:"), R.table(conf)]
    return blocks
