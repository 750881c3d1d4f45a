"""`w2p-eval evaluate`: run every metric for every checkpoint into the results store."""

from __future__ import annotations

import click


@click.command("evaluate")
@click.argument("run_dirs", nargs=-1, type=click.Path(exists=True), metavar="RUN_DIR...")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, exists=True), metavar="DATA",
              help="Dataset folder the runs were trained on.")
@click.option("--baselines", multiple=True, type=click.Path(exists=True), metavar="RUN_DIR",
              help="Baseline run folders or checkpoints to evaluate too (repeatable).")
@click.option("--store", type=click.Path(dir_okay=False), default=None, metavar="PATH",
              help="Results store file (default DATA/results.sqlite).")
@click.option("--metrics", "suites", default="identity,landmarks,speaker", show_default=True, metavar="LIST",
              help="Comma-separated metric suites: identity, landmarks, speaker.")
@click.option("--backbone", default="dlib_resnet", show_default=True, metavar="NAME",
              help="Identity judge backbone (see `w2p-eval identity --help`).")
@click.option("--backend", default="dlib", show_default=True, metavar="NAME",
              help="Landmark backend: dlib, dlib_cnn or fan.")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("--protocol", type=click.Choice(["seen", "unseen"]), default="seen", show_default=True)
@click.option("--final-only", is_flag=True, help="Only each run's last checkpoint.")
@click.option("--force", is_flag=True, help="Re-evaluate what the store already holds (rows are replaced).")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True, metavar="N",
              help="Processes for landmark detection.")
@click.option("--device", default=None, metavar="DEV", help="cpu, cuda, cuda:1 ... (default: cuda when present).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Judge/embedding cache (default $W2P_CACHE or ~/.cache/w2p-eval).")
@click.option("--seed", type=int, default=0, show_default=True, metavar="INT", help="Evaluation seed.")
def evaluate(run_dirs, data_dir, baselines, store, suites, backbone, backend, split, protocol, final_only, force,
             workers, device, cache_dir, seed):
    """Evaluate every checkpoint of RUN_DIR... (and --baselines), skipping what the store already has."""
    from w2p_eval.pipeline.evaluate import evaluate_runs

    summary = evaluate_runs(
        list(run_dirs), data_dir, store=store, baselines=list(baselines),
        suites=tuple(s.strip() for s in suites.split(",") if s.strip()), backbone=backbone, backend=backend,
        split=split, protocol=protocol, seed=seed, force=force, final_only=final_only, device=device,
        workers=workers, cache_dir=cache_dir,
    )
    for item in summary.failed:
        click.echo(f"failed: {item}", err=True)
    click.echo(summary.line())
    if summary.failed and not summary.evaluated:
        raise SystemExit(1)  # nothing could be evaluated: not a success
