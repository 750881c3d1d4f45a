"""`w2p-eval report`: tables, figures, report.md and a self-contained report.html from the results store.

The report folder is built in a hidden staging folder beside ``out`` and moved into place at the end,
so an interrupted report never leaves a half-written folder that looks complete. The sections themselves:
``report/sections.py``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pandas as pd

from w2p_eval.errors import InputError
from w2p_eval.outdir import (claim, clean_stale_partials, marker_entry_problem, read_marker, refuse_links,
                             sibling_lock, write_marker)
from w2p_eval.report import agreement as A
from w2p_eval.report import render as R
from w2p_eval.report.comparison import load_comparison
from w2p_eval.report.runs import RunInfo, load_run, rows_of_runs
from w2p_eval.report.sections import SECTIONS, ReportContext
from w2p_eval.results import ResultsStore
from w2p_eval.utils import atomic_write_text, csv_safe, make_temp_dir

log = logging.getLogger(__name__)


def _runs_from_rows(df: pd.DataFrame) -> list[RunInfo]:
    """Run descriptions from the store alone (no run folders given): checkpoints that still exist on disk."""
    runs = []
    for name, g in df.groupby("run"):
        ck = g.drop_duplicates("checkpoint").sort_values("epoch")
        paths = [Path(c) for c in ck["checkpoint"] if Path(c).is_file()]
        runs.append(RunInfo(name=str(name), path=paths[0].parent if paths else Path("."),
                            model=str(g["model"].iloc[0]), checkpoints=paths))
    return runs


def _stage(out: Path) -> Path:
    """Check that ``out`` may take a report (new, empty, or an earlier report: its marker) -> staging folder."""
    claim(out, "report")
    parent = Path(os.path.abspath(out)).parent
    parent.mkdir(parents=True, exist_ok=True)
    clean_stale_partials(out)
    return make_temp_dir(f".{Path(os.path.abspath(out)).name}.partial-", parent)


def _files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink())


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Move the staged report to ``out``. A new folder moves as a whole; into an existing one (empty, or
    an earlier report, ``--out .`` included) file by file, replacing only files a report wrote and
    removing only the earlier report's files this one no longer has: nothing else in ``out`` is touched."""
    new_files = _files_under(tmp)
    if not out.exists():
        write_marker(tmp, "report", new_files)
        os.replace(tmp, out)
        return
    old_files = set((read_marker(out) or {}).get("files", []))
    refuse_links(out, new_files)  # never write through a link: R/tables -> elsewhere would put the report there
    clash = [f for f in new_files if (out / f).exists() and f not in old_files]
    if clash:
        raise InputError(f"expected --out to hold only files of an earlier report, got {out / clash[0]} which a "
                         f"report did not write (left unchanged); choose another --out")
    for rel in new_files:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / rel, out / rel)
    for rel in sorted(old_files - set(new_files)):
        target = out / rel
        if marker_entry_problem(out, rel) is None and target.is_file():
            target.unlink()
    write_marker(out, "report", new_files)


def build_report(
    run_dirs: list[str | os.PathLike],
    store: str | os.PathLike,
    out: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    title: str | None = None,
    command: str | None = None,
    samples: bool = True,
    comparisons: list[str | os.PathLike] = (),
) -> Path:
    """Write the report folder ``out`` (tables/, figures/, report.md, report.html); returns report.html.

    ``run_dirs`` empty -> every row of the store. Raises InputError when the store holds no rows for the runs.
    ``comparisons``: JSON files written by ``w2p-eval compare --out FILE``, each rendered as a "Paired
    comparisons" table (read before anything is written; a bad file is InputError).
    """
    claim(out, "report")  # a foreign --out is refused before anything is read
    compared = [load_comparison(c) for c in comparisons]
    store = Path(store)
    if not store.is_file():
        raise InputError(f"expected a results store file, got missing path {store} (run `w2p-eval evaluate` first)")
    runs = [load_run(r) for r in run_dirs]
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise InputError(f"expected run folders with distinct names, got {names}")
    everything = ResultsStore(store, readonly=True).query()
    df = rows_of_runs(everything, runs)
    if runs and not df.empty:  # other models' faces scored on the same data land beside the runs asked for
        external = everything[(everything["source"] != "checkpoint") & everything["data_hash"].isin(set(df["data_hash"]))
                              & ~everything["run"].isin(set(df["run"]))]
        df = pd.concat([df, external], ignore_index=True)
    if not runs:
        runs = _runs_from_rows(df)
    if df.empty:
        raise InputError(f"expected results for {names or 'any run'} in {store}, found none "
                         f"(run `w2p-eval evaluate RUN_DIR... --data DATA` first)")
    out = Path(out)
    with sibling_lock(out):  # one report writer per --out
        tmp = _stage(out)
        try:
            html_path = _write(tmp, runs, df, data_dir, seed,
                               title or f"w2p-eval report: {Path(os.path.abspath(out)).name}", command, samples,
                               store, compared)
            _swap_into_place(tmp, out)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return out / html_path.name


def _write(root: Path, runs, df, data_dir, seed, title, command, samples: bool, store: Path,
           compared: list[dict] = ()) -> Path:
    view = A.primary_view(df, A.primary_judge(df))  # one identity judge per table: no model counted twice
    ctx = ReportContext(df=view, runs=runs, data_dir=data_dir, seed=seed, command=command, samples=samples, store=store,
                        compared=list(compared), tab_dir=root / "tables", fig_dir=root / "figures", all_rows=df)
    blocks = [block for section in SECTIONS for block in section(ctx)]
    atomic_write_text(ctx.tab_dir / "rows.csv", csv_safe(df.assign(
        extra=[json.dumps(e, sort_keys=True) for e in df["extra"]])).to_csv(index=False))
    atomic_write_text(root / "report.md", R.render_markdown(title, blocks, root))
    html_path = root / "report.html"
    atomic_write_text(html_path, R.render_html(title, blocks))
    return html_path
