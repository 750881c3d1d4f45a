"""`w2p-eval ablate-audio`: train/evaluate WAV2PIX per audio length (the paper's ablation)."""

from __future__ import annotations

import click

from w2p_eval.cli import options as O


@click.command("ablate-audio")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, exists=True), metavar="DATA",
              help="Dataset folder (its pairs must hold at least the longest audio length).")
@click.option("--seconds", type=float, multiple=True, metavar="S", default=None,
              help="Audio lengths; repeat the option or give several values: --seconds 0.3 0.7 1.0 "
                   "[default: 0.3 0.7 1.0].")
@click.option("--out", default="runs/ablate_audio", show_default=True, type=click.Path(), metavar="DIR",
              help="Folder for the runs, the table and the report.")
@click.option("--config", type=click.Path(dir_okay=False, exists=True), default=None, metavar="YAML",
              help="WAV2PIX config (default baselines/wav2pix_64.yaml).")
@click.option("--epochs", type=click.IntRange(1), default=None, metavar="N", help="Epochs per run (default: config).")
@click.option("--batch-size", type=click.IntRange(2), default=None, metavar="N",
              help="Override the training batch size (the evaluation's too).")
@click.option("--store", type=click.Path(dir_okay=False), default=None, metavar="PATH",
              help="Results store file (default DATA/results.sqlite).")
@click.option("--backbone", default="dlib_resnet", show_default=True, type=click.Choice(O.IDENTITY_BACKBONES.names()),
              help="Identity judge: " + O.IDENTITY_BACKBONES.help_text() + ".")
@O.backend_option
@O.suites_option("--metrics", ("identity", "landmarks"), " to score each audio length with (identity and landmarks "
                 "always; out/ablation_audio_metrics.* is then audio length x every metric)")
@O.standard_weights_options
@O.workers_option
@O.device_option
@O.cache_dir_option
@click.option("--seed", type=int, default=0, show_default=True, metavar="INT", help="Training and evaluation seed.")
@click.argument("more_seconds", nargs=-1, type=float, metavar="")
def ablate_audio(data_dir, seconds, more_seconds, out, config, epochs, batch_size, store, backbone, backend, suites,
                 inception_weights, vggface2_weights, workers, device, cache_dir, seed):
    """Train and evaluate WAV2PIX for each audio length; print the table (Markdown) and its files."""
    from w2p_eval.metrics.registry import parse_suites
    from w2p_eval.pipeline.ablate import ablate_audio as run
    from w2p_eval.text import to_markdown

    secs = list(seconds) + list(more_seconds) or [0.3, 0.7, 1.0]
    result = run(data_dir, secs, out=out, config=config, epochs=epochs,
                 overrides={"batch_size": batch_size} if batch_size else None, seed=seed, device=device,
                 store=store, backbone=backbone, backend=backend, workers=workers, cache_dir=cache_dir,
                 eval_batch_size=batch_size or 64, suites=parse_suites(suites),
                 weight_files=O.weight_files(inception_weights, vggface2_weights))
    click.echo(to_markdown(result["table"]))
    for path in result["paths"]:
        click.echo(str(path))
