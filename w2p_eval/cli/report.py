"""`w2p-eval report`: tables (CSV/Markdown/LaTeX), figures (PNG/PDF), report.md and report.html."""

from __future__ import annotations

import click


@click.command("report")
@click.argument("run_dirs", nargs=-1, type=click.Path(exists=True), metavar="RUN_DIR...")
@click.option("--out", required=True, type=click.Path(), metavar="DIR", help="Report folder, e.g. reports/NAME.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, exists=True), default=None, metavar="DATA",
              help="Dataset folder (for the sample grid and the data statement; store default DATA/results.sqlite).")
@click.option("--store", type=click.Path(dir_okay=False), default=None, metavar="PATH",
              help="Results store file (default DATA/results.sqlite).")
@click.option("--title", default=None, metavar="TEXT", help="Report title.")
@click.option("--no-samples", is_flag=True, help="Skip the sample grid (it runs each checkpoint's generator).")
@click.option("--seed", type=int, default=0, show_default=True, metavar="INT", help="Seed for sample generation.")
@click.option("--compare", "comparisons", multiple=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="A comparison saved by `w2p-eval compare A B --out FILE`, shown as a 'Paired comparisons' "
                   "section (repeatable).")
def report(run_dirs, out, data_dir, store, title, no_samples, seed, comparisons):
    """Build a report of RUN_DIR... (all runs in the store when none given) from the results store."""
    import shlex
    import sys
    from pathlib import Path

    from w2p_eval.errors import InputError
    from w2p_eval.report.build import build_report
    from w2p_eval.results import default_store

    if store is None and data_dir is None:
        raise InputError("expected --data DATA or --store PATH, got neither")
    store = Path(store) if store else default_store(data_dir)
    ran_as_cli = Path(sys.argv[0]).name == "w2p-eval"
    command = "w2p-eval " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if ran_as_cli else None
    html = build_report(list(run_dirs), store, out, data_dir=data_dir, seed=seed, title=title, command=command,
                        samples=not no_samples, comparisons=list(comparisons))
    click.echo(str(html))
