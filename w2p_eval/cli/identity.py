"""`w2p-eval identity`: identity accuracy and face-embedding metrics of checkpoints (parsing only)."""

from __future__ import annotations

import click

BACKBONE_HELP = ("Identity backbone: dlib_resnet (dlib's descriptor in torch), dlib_resnet_native (the same in dlib-bin), "
                 "facenet_vggface2, vgg_face, vgg_scratch.")


@click.command("identity")
@click.option("--ckpt", "ckpts", multiple=True, required=True, metavar="CKPT|RUN_DIR",
              help="Checkpoint file or run folder (all its checkpoints); repeatable.")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False), metavar="DATA",
              help="Prepared dataset folder (manifest.csv + dataset.json).")
@click.option("--backbone", default="dlib_resnet", show_default=True, metavar="NAME", help=BACKBONE_HELP)
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "test"]), help="Split scored.")
@click.option("--protocol", default="seen", show_default=True, type=click.Choice(["seen", "unseen"]),
              help="Split protocol (seen: same speakers in train and test; unseen: new speakers).")
@click.option("--seed", default=0, show_default=True, type=int, metavar="INT",
              help="Seed of the judge's training/validation split and head init, generation and KID subsets.")
@click.option("--json", "as_json", is_flag=True, help="Print the result rows as JSON on stdout instead of a table.")
@click.option("--store", type=click.Path(dir_okay=False), default=None, metavar="PATH",
              help="Results store to write to.  [default: DATA/results.sqlite]")
@click.option("--no-store", is_flag=True, help="Do not write the rows to a results store.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Cache of trained judges and real-face embeddings.  [default: $W2P_CACHE or ~/.cache/w2p-eval]")
@click.option("--vgg-face-weights", type=click.Path(dir_okay=False), default=None, metavar="PTH",
              help="vgg_face_dag.pth for --backbone vgg_face.  [default: $W2P_VGG_FACE_WEIGHTS]")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1), metavar="INT",
              help="Processes for the per-image face alignment of the dlib backbones.")
@click.option("--device", default=None, metavar="DEV", help="torch device.  [default: cuda when available, else cpu]")
@click.option("--run-name", default=None, metavar="NAME", help="Run name stored in the rows.  [default: run folder]")
def identity(ckpts, data_dir, backbone, split, protocol, seed, as_json, store, no_store, cache_dir,
             vgg_face_weights, workers, device, run_name):
    """Identity accuracy (top-1/top-5, per identity, confusion) of generated vs real faces, judged by a face
    network fine-tuned on the dataset's real training faces, plus embedding metrics (centroid cosine,
    retrieval recall@1/@5, Fréchet distance, KID) in that network's face space."""
    import json

    from w2p_eval.metrics.identity import evaluate_identity, format_rows

    options = {"weights": vgg_face_weights} if vgg_face_weights and backbone == "vgg_face" else None
    if backbone.startswith("dlib_resnet") and workers > 1:
        options = {"workers": workers}
    rows = evaluate_identity(list(ckpts), data_dir, backbone=backbone, split=split, protocol=protocol, seed=seed,
                             device=device, cache_dir=cache_dir, run_name=run_name, backbone_options=options)
    stored = None
    if not no_store:
        from w2p_eval.results import ResultsStore, default_store

        stored = store or default_store(data_dir)
        ResultsStore(stored).write(rows)
    if as_json:  # NaN (e.g. cosine to other centroids with one identity) -> null, so the output is strict JSON
        click.echo(json.dumps(_no_nan(rows), indent=2, default=str, allow_nan=False))
    else:
        click.echo(format_rows(rows))
    if stored is not None:
        click.echo(f"wrote {len(rows)} rows to {stored}", err=True)


def _no_nan(obj):
    """NaN/inf floats -> None, recursively (strict JSON)."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_no_nan(v) for v in obj]
    return obj
