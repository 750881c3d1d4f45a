"""`w2p-eval demo`: demo data -> WAV2PIX + baselines -> identity/landmark evaluation -> report, offline."""

from __future__ import annotations

import click

from w2p_eval.cli import options as O


@click.command("demo")
@click.option("--out", default="w2p_demo", show_default=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Folder for data/, runs/, cache/ and report/ (re-running continues it).")
@click.option("--quick", is_flag=True,
              help="Reduced setting for CI smoke tests (also env W2P_DEMO_QUICK=1): 4 identities, 2 epochs.")
@click.option("--full", is_flag=True,
              help="Also train the field's generators voice2face and SF2F for the same epochs as WAV2PIX and score "
                   "them beside it (roughly 15 more minutes on 2 idle cores, estimated).")
@click.option("--epochs", type=click.IntRange(1), default=None, metavar="N",
              help="WAV2PIX epochs (default 30; 2 with --quick).")
@O.runtime_options
@click.option("--seed", type=int, default=0, show_default=True, metavar="INT",
              help="Data, training and evaluation seed.")
def demo(out, quick, full, epochs, workers, batch_size, device, cache_dir, seed):
    """Build the demo data, train WAV2PIX and the baselines, evaluate, and write the report (minutes, offline)."""
    from w2p_eval.pipeline.demo import quick_from_env, run_demo

    html = run_demo(out, seed=seed, quick=quick or quick_from_env(), epochs=epochs, device=device, workers=workers,
                    batch_size=batch_size, cache_dir=cache_dir, full=full)
    click.echo(f"report: {html}")
