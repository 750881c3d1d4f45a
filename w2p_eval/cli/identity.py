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
@O.cache_dir_option
@O.vgg_weights_option
@O.workers_option
@O.device_option
@click.option("--run-name", default=None, metavar="NAME",
              help="Run name stored for --ckpt rows.  [default: the run folder, or a lone file's stem]")
def identity(ckpts, images, names, data_dir, backbone, split, protocol, seed, as_json, store, no_store, cache_dir,
             vgg_face_weights, workers, device, run_name):
    """Identity accuracy (top-1/top-5, per identity, confusion) of generated vs real faces, judged by a face
    network fine-tuned on the dataset's real training faces, plus embedding metrics (centroid cosine,
    retrieval recall@1/@5, Fréchet distance, KID) in that network's face space. Faces come from checkpoints
    (--ckpt) or from any model's image folder (--images DIR --name NAME)."""
    from w2p_eval.errors import InputError
    from w2p_eval.metrics.base import EvalOptions, score_items
    from w2p_eval.metrics.identity import SUITE
    from w2p_eval.models.sources import check_distinct_names, checkpoint_items, folder_item

    sources = O.face_sources(images, names)
    if not ckpts and not sources:
        raise InputError("nothing to score: give --ckpt CKPT|RUN_DIR or --images DIR --name NAME")
    from w2p_eval.judges import parse_backbones

    judges = parse_backbones(backbone)
    opts = EvalOptions(data_dir, split=split, protocol=protocol, seed=seed, device=device, cache_dir=cache_dir,
                       backbone=judges, backbone_options=O.backbone_options(judges[0], vgg_face_weights, workers),
                       judge_options=O.judge_options(judges, vgg_face_weights, workers))
    SUITE.check(opts)
    O.open_store_early(data_dir, store, no_store)
    items = [it for c in ckpts for it in checkpoint_items(c, name=run_name)]
    items += [folder_item(d, n) for d, n in sources]
    check_distinct_names(items)
    rows = score_items(items, [SUITE], opts)
    O.store_and_print(rows, data_dir, store, no_store, as_json, _format)



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
