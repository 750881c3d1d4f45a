"""`w2p-eval generate`: write one generated face (PNG) per pair of a split, plus a manifest CSV."""

from __future__ import annotations

import click


@click.command("generate")
@click.option("--ckpt", required=True, type=click.Path(exists=False), metavar="CKPT|RUN",
              help="A checkpoint file, or a run folder (every checkpoint in it).")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False), metavar="DATA",
              help="Dataset folder made by `w2p-eval prepare`.")
@click.option("--split", type=click.Choice(["train", "test"]), default="test", show_default=True)
@click.option("--protocol", type=click.Choice(["seen", "unseen"]), default="seen", show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Output folder: DIR/<checkpoint>/<pair_id>.png and DIR/manifest.csv.")
@click.option("--stochastic", is_flag=True, help="Keep dropout on, as the original inference did.")
@click.option("--seed", type=int, default=0, show_default=True, metavar="INT", help="Seed for --stochastic dropout.")
@click.option("--device", default=None, metavar="DEVICE", show_default="cuda if available, else cpu")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True, metavar="N")
@click.option("--image-size", type=click.Choice(["64", "128"]), default=None,
              help="Expected image size; a checkpoint of another size is an error.")
@click.option("--audio-seconds", type=float, default=None, metavar="S",
              help="Expected audio length; a checkpoint of another length is an error.")
def generate(ckpt, data_dir, split, protocol, out_dir, stochastic, seed, device, batch_size, image_size,
             audio_seconds):
    """Generate faces for every pair of a split. Prints the manifest path."""
    from w2p_eval.models.generation import export_generated

    manifest = export_generated(ckpt, data_dir, out_dir, split=split, protocol=protocol, device=device,
                                batch_size=batch_size, seed=seed, image_size=int(image_size) if image_size else None,
                                audio_seconds=audio_seconds, stochastic=stochastic)
    click.echo(str(manifest))
