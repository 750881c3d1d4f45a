"""Plain-text formatting shared by the results store, the report and the CLI (no heavy imports).

Tables become GitHub-flavoured Markdown with every cell escaped, so a name read from a dataset
(an identity, a run name) can neither break the table nor inject HTML into a rendered report.
"""

from __future__ import annotations

import math

from w2p_eval.utils import md_cell


def table_cells(df) -> tuple[list[str], list[list[str]]]:
    """A pandas DataFrame -> (header, rows) of strings: NaN as '–', floats with 4 significant digits.
    The index is shown (first column) unless it is a plain RangeIndex."""
    import pandas as pd  # lazy: `w2p-eval results` imports text; a DataFrame's caller has pandas loaded

    index_name = df.index.name or ""
    show_index = not isinstance(df.index, pd.RangeIndex)
    header = ([index_name] if show_index else []) + [str(c) for c in df.columns]
    body = []
    for idx, row in df.iterrows():
        vals = ["–" if (isinstance(v, float) and math.isnan(v)) else
                (f"{v:.4g}" if isinstance(v, float) else str(v)) for v in row.tolist()]
        body.append(([str(idx)] if show_index else []) + vals)
    return header, body


def to_markdown(df) -> str:
    """A GitHub-flavoured Markdown table (no tabulate dependency), every cell escaped with :func:`w2p_eval.utils.md_cell`."""
    header, body = table_cells(df)
    lines = ["| " + " | ".join(md_cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def json_safe(obj):
    """NaN/inf floats -> None, recursively (strict JSON for ``--json`` output)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def interval_text(value, ci: dict | None = None, rate: bool = True) -> str:
    """``0.86, {"low": .831, "high": .887} -> '86.0 % [83.1, 88.7]'`` (rates) or ``'0.4123 [0.4011, 0.4236]'``;
    the bare value without an interval; '–' for a missing value."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    lo, hi = (ci or {}).get("low"), (ci or {}).get("high")
    has = lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi)
    if rate:
        return f"{100 * value:.1f} %" + (f" [{100 * lo:.1f}, {100 * hi:.1f}]" if has else "")
    return f"{value:.4g}" + (f" [{lo:.4g}, {hi:.4g}]" if has else "")


def plain_table(header: list[str], rows: list[list[str]]) -> str:
    """An aligned plain-text table (left-aligned columns, two spaces apart) for the terminal."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)
