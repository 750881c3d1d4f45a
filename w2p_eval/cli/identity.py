"""`w2p-eval identity`: identity accuracy and face-embedding metrics of checkpoints or image folders (parsing only)."""

from __future__ import annotations

import click

from w2p_eval.cli import options as O


@click.command("identity")
@click.option("--ckpt", "ckpts", multiple=True, metavar="CKPT|RUN_DIR",
              help="Checkpoint file or run folder (all its checkpoints); repeatable.")
@O.images_options
@O.data_option()
@O.backbone_option
@O.split_protocol_options
@O.seed_option("the judge's training/validation split and head init, generation and KID subsets")
@click.option("--json", "as_json", is_flag=True, help="Print the result rows as JSON on stdout instead of a table.")
@O.store_options()
@O.vgg_weights_option
@O.runtime_options
@click.option("--run-name", default=None, metavar="NAME",
              help="Run name stored for --ckpt rows.  [default: the run folder, or a lone file's stem]")
def identity(ckpts, images, names, data_dir, backbone, split, protocol, seed, as_json, store, no_store,
             vgg_face_weights, workers, batch_size, device, cache_dir, run_name, store_timeout):
    """Identity accuracy (top-1/top-5, per identity, confusion) of generated vs real faces, judged by a face
    network fine-tuned on the dataset's real training faces, plus embedding metrics (centroid cosine,
    retrieval recall@1/@5, Fréchet distance, KID) in that network's face space. Faces come from checkpoints
    (--ckpt) or from any model's image folder (--images DIR --name NAME)."""
    from w2p_eval.errors import InputError
    from w2p_eval.evaluation import Evaluation  # here, not at the top: `--help` stays light
    from w2p_eval.models.sources import checkpoint_items, folder_item

    sources = O.face_sources(images, names)
    if not ckpts and not sources:
        raise InputError("nothing to score: give --ckpt CKPT|RUN_DIR or --images DIR --name NAME")
    ev = Evaluation.build(data_dir, suites=("identity",), split=split, protocol=protocol, seed=seed, backbone=backbone,
                          judge_options=O.judge_options(backbone, vgg_face_weights), device=device, workers=workers,
                          batch_size=batch_size, cache_dir=cache_dir)
    ev.check()
    O.open_store_early(data_dir, store, no_store, store_timeout)
    items = [it for c in ckpts for it in checkpoint_items(c, name=run_name)]
    items += [folder_item(d, n) for d, n in sources]
    ev = ev.with_sources(items)
    scored = ev.score_all()
    O.store_and_print(scored, data_dir, store, no_store, as_json, _format, store_timeout)
    O.echo_notes(ev.notes)



def _format(rows: list[dict]) -> str:
    from w2p_eval.metrics.identity import describe_rows
    from w2p_eval.results import format_rows

    if not rows:
        return describe_rows(rows)[0]
    tables = []
    for judge in dict.fromkeys(r["evaluator"] for r in rows):  # several judges (--backbone a,b): one table each
        mine = [r for r in rows if r["evaluator"] == judge]
        head, note = describe_rows(mine)
        tables.append(f"{head}\n{format_rows(mine, note=note)}")
    return "\n\n".join(tables)
