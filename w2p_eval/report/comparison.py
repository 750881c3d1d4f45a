"""A saved comparison (``w2p-eval compare``'s JSON) as a table: for stdout and for the report's section.

The comparison itself is computed in :mod:`w2p_eval.evaluation.compare`; this module only reads and formats it
(the report sits below the pipeline layer).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from w2p_eval.errors import InputError
from w2p_eval.text import interval_text, plain_table, table_cells

FORMAT = "w2p-eval-compare"


def _fmt(unit: str, value, ci: dict | None = None, signed: bool = False) -> str:
    """A value as every table prints it (``86.0 % [83.1, 88.7]``, 4 significant digits otherwise, '–' when
    missing); a signed difference in percentage points for rates (``+0.2 pp [-1.0, 1.3]``)."""
    if value is None:
        return "–"
    rate = unit == "rate"
    if not signed:
        return interval_text(value, ci, rate)
    text = f"{100 * value:+.1f} pp" if rate else f"{value:+.4g}"
    if ci and ci.get("low") is not None and ci.get("high") is not None:
        text += (f" [{100 * ci['low']:.1f}, {100 * ci['high']:.1f}]" if rate else
                 f" [{ci['low']:.4g}, {ci['high']:.4g}]")
    return text


def _p(m: dict | None) -> str:
    if not m:
        return "–"
    return f"{m['p_value']:.3g} ({m['b']}/{m['c']})"


def comparison_frame(result: dict):
    """The comparison as a pandas DataFrame (index = metric label): A, B, A − B [95 % CI], McNemar p (b/c)."""
    a, b = result["a"]["name"], result["b"]["name"]
    several = len(result.get("judges") or []) > 1  # then identity-space metrics appear once per judge
    rows = []
    for e in result["metrics"]:
        if e["a"] is None and e["b"] is None:
            continue  # skipped for both (e.g. a default 1:N the split cannot hold)
        better = "higher" if e["higher_is_better"] else "lower"
        judge = str(e.get("evaluator") or "")
        label = f"{e['label']} [{judge.split('/', 1)[-1]}]" if several and judge.startswith("identity/") else e["label"]
        rows.append({"metric": label, f"A: {a}": _fmt(e["unit"], e["a"], e["a_ci"]),
                     f"B: {b}": _fmt(e["unit"], e["b"], e["b_ci"]),
                     "A − B [95 % CI]": _fmt(e["unit"], e["difference"], e["diff_ci"], signed=True),
                     "McNemar p (b/c)": _p(e["mcnemar"]), "better": better})
    return pd.DataFrame(rows).set_index("metric")


def describe(result: dict) -> str:
    """One line naming A, B, the pairs, the seed and the test list of a comparison."""
    return (f"compare A = {result['a']['name']} ({result['a']['source']}: {result['a']['path']}) vs "
            f"B = {result['b']['name']} ({result['b']['source']}: {result['b']['path']}); {result['n_pairs']} "
            f"{result['split']} pairs ({result['protocol']}), seed {result['seed']}"
            + (f", judges {', '.join(result['judges'])}" if len(result.get("judges") or []) > 1 else "")
            + (f", test list {result['testlist']}" if result.get("testlist") else ""))


def format_comparison(result: dict) -> str:
    """One table for stdout, with a header naming both sources and a footnote on the tests."""
    head = describe(result)
    foot = ("A − B: paired cluster-bootstrap 95 % interval (BCa, face ids resampled together; rates in percentage "
            "points). McNemar: exact two-sided test on discordant items, b = A right & B wrong, c = A wrong & B "
            "right (items treated as independent).")
    header, body = table_cells(comparison_frame(result))
    return f"{head}\n\n{plain_table(header, body)}\n\n{foot}"


def load_comparison(path: str | os.PathLike) -> dict:
    """Read a comparison saved by ``w2p-eval compare --out FILE`` (or ``--json > FILE``); InputError otherwise."""
    p = Path(path)
    try:
        result = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(f"expected a comparison file written by `w2p-eval compare --out`, got missing {p}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"expected a JSON comparison in {p}, got unreadable content ({exc})") from None
    if not isinstance(result, dict) or result.get("format") != FORMAT or not isinstance(result.get("metrics"), list):
        raise InputError(f"expected a comparison (format {FORMAT!r}) in {p}, got something else")
    problem = comparison_problem(result)
    if problem:
        raise InputError(f"expected a comparison as `w2p-eval compare --out` writes it in {p}, got {problem}")
    return result


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _ci_problem(ci, where: str) -> str | None:
    if ci is None:
        return None
    if not isinstance(ci, dict) or not all(ci.get(k) is None or _is_num(ci.get(k)) for k in ("low", "high")):
        return f"{where}: an interval that is not {{'low': number, 'high': number}} ({str(ci)[:60]!r})"
    return None


def comparison_problem(result: dict) -> str | None:
    """Why a parsed comparison file is not what ``compare`` writes (types of every field the report and
    ``compare --show`` read), or None."""
    for side in ("a", "b"):
        s = result.get(side)
        if not isinstance(s, dict) or not all(isinstance(s.get(k), str) for k in ("name", "source", "path")):
            return f"source {side!r} without text name/source/path"
    if not (isinstance(result.get("n_pairs"), int) and isinstance(result.get("seed"), int)):
        return "n_pairs or seed that is not an integer"
    if not all(isinstance(result.get(k), str) for k in ("split", "protocol")):
        return "split or protocol that is not text"
    judges = result.get("judges") or []
    if not isinstance(judges, list) or not all(isinstance(j, str) for j in judges):
        return "judges that are not a list of names"
    if result.get("testlist") is not None and not isinstance(result.get("testlist"), str):
        return "a test list that is not text"
    for k, e in enumerate(result["metrics"]):
        where = f"metric entry {k}"
        if not isinstance(e, dict) or not isinstance(e.get("label"), str) or not isinstance(e.get("unit"), str):
            return f"{where} without a text label and unit"
        if not isinstance(e.get("higher_is_better"), bool):
            return f"{where}: higher_is_better {e.get('higher_is_better')!r} (expected true or false)"
        for key in ("a", "b", "difference"):
            if e.get(key) is not None and not _is_num(e[key]):
                return f"{where}: {key} {str(e[key])[:40]!r} (expected a number or null)"
        for key in ("a_ci", "b_ci", "diff_ci"):
            bad = _ci_problem(e.get(key), f"{where} {key}")
            if bad:
                return bad
        m = e.get("mcnemar")
        if m is not None and not (isinstance(m, dict) and all(_is_num(m.get(k)) for k in ("p_value", "b", "c"))):
            return f"{where}: a McNemar entry that is not {{'p_value', 'b', 'c'}} numbers"
    return None
