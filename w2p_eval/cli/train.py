"""`w2p-eval train`: train WAV2PIX or a baseline from a YAML config (CLI > YAML > defaults)."""

from __future__ import annotations

import click


@click.command("train")
@click.argument("config", type=click.Path(dir_okay=False), metavar="CONFIG.yaml")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False), metavar="DATA",
              help="Dataset folder made by `w2p-eval prepare`.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), metavar="RUN",
              help="Run folder: config.yaml, checkpoints/, losses.jsonl, samples/.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, metavar="N", help="Override the config's epochs.")
@click.option("--seed", type=int, default=None, metavar="INT", help="Override the config's seed.")
@click.option("--resume", is_flag=True, help="Continue RUN from its last complete checkpoint.")
@click.option("--device", default=None, metavar="DEVICE", show_default="cuda if available, else cpu",
              help="torch device (cpu, cuda, cuda:1).")
@click.option("--batch-size", type=click.IntRange(min=2), default=None, metavar="N", help="Override the batch size.")
@click.option("--image-size", type=click.Choice(["64", "128"]), default=None, help="Override the image size.")
@click.option("--audio-seconds", type=click.FloatRange(min=0.05, max=10.0), default=None, metavar="S",
              help="Override the audio length (the paper ablates 0.3, 0.7, 1.0).")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=None, metavar="N",
              help="Override the checkpoint interval (epochs).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override any config key (repeatable).")
@click.option("--threads", type=click.IntRange(min=1), default=None, metavar="N", help="torch CPU threads.")
def train(config, data_dir, out_dir, epochs, seed, resume, device, batch_size, image_size, audio_seconds,
          checkpoint_every, sets, threads):
    """Train the model named by CONFIG.yaml's `model:` key. Prints the checkpoints written, one per line.

    Runs data-parallel under `torchrun --nproc_per_node N` (gloo on CPU, NCCL on GPUs).
    """
    from w2p_eval.train.run import parse_set, run_training

    overrides = parse_set(sets)
    for key, value in (("epochs", epochs), ("batch_size", batch_size), ("audio_seconds", audio_seconds),
                       ("image_size", int(image_size) if image_size else None),
                       ("checkpoint_every", checkpoint_every), ("threads", threads)):
        if value is not None:
            overrides[key] = value
    paths = run_training(config, data_dir, out_dir, overrides=overrides, resume=resume, device=device, seed=seed)
    for path in paths:
        click.echo(str(path))
