"""`w2p-eval results`: query the results store as a table (csv, Markdown or JSON on stdout)."""

from __future__ import annotations

import click


@click.command("results")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None, metavar="DATA",
              help="Dataset folder; the store defaults to DATA/results.sqlite.")
@click.option("--store", type=click.Path(dir_okay=False), default=None, metavar="PATH",
              help="Results store file (overrides --data).")
@click.option("--metric", multiple=True, metavar="NAME", help="Only these metrics (repeatable).")
@click.option("--model", multiple=True, metavar="NAME", help="Only these models (repeatable).")
@click.option("--run", multiple=True, metavar="NAME", help="Only these runs (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "md", "json"]), default="table",
              show_default=True, help="Output on stdout: table (the aligned text every verb prints: value [95 % CI], "
                                      "'–' where missing), or csv / md / json (every stored column, raw values).")
@click.option("--seed", type=int, default=None, metavar="INT", help="Only rows evaluated with this seed.")
@click.option("--items", "items", is_flag=True,
              help="Print the per-item values behind the rows as CSV instead (run, ..., metric, item, value, group, "
                   "weight: one line per test pair, probe or identity; group = the face id the interval resamples).")
def results(data_dir, store, metric, model, run, fmt, seed, items):
    """Print the stored metric rows (one row per checkpoint, metric, split, seed and judge)."""
    from pathlib import Path

    from w2p_eval.errors import InputError
    from w2p_eval.results import ResultsStore, default_store, format_table

    if store is None and data_dir is None:
        raise InputError("expected --data DATA or --store PATH, got neither")
    path = Path(store) if store else default_store(data_dir)
    if not path.is_file():
        raise InputError(f"expected a results store, got missing file {path} (run `w2p-eval evaluate` first)")
    df = ResultsStore(path, readonly=True).query(metric=list(metric) or None, model=list(model) or None, run=list(run) or None,
                                  seed=seed)
    if items:
        from w2p_eval.evaluation.items import items_csv  # here, not at the top: `--help` stays light

        click.echo(items_csv(path, df.to_dict("records")), nl=False)
        return
    if fmt == "table":
        from w2p_eval.results import format_rows

        click.echo(format_rows(df))
        return
    click.echo(format_table(df, fmt), nl=False)
