"""`w2p-eval landmarks`: 68-point landmark detection rate and landmark error (parsing only)."""

from __future__ import annotations

import click

from w2p_eval.cli import options as O


def _format(rows: list[dict]) -> str:
    from w2p_eval.results import format_rows

    note = ("brackets: 95 % intervals (seeded cluster bootstrap over faces; Wilson for all-found/none-found rates); "
            "n: faces scored.")
    judges = list(dict.fromkeys(r["evaluator"] for r in rows))
    if len(judges) <= 1:
        return format_rows(rows, note=note)
    return "\n\n".join(f"{judge}:\n" + format_rows([r for r in rows if r["evaluator"] == judge], note=note)
                        for judge in judges)  # several backends (--backend a,b): one table each


@click.command("landmarks")
@click.option("--ckpt", "ckpts", multiple=True, metavar="CKPT|RUN_DIR",
              help="Checkpoint file or run folder (all its checkpoints); repeatable. Needs --data.")
@click.option("--images", "images", multiple=True, type=click.Path(file_okay=False), metavar="DIR",
              help="With --data and --name: a model's faces, one per test pair, named <pair_id>.<ext> (scored "
                   "like a checkpoint). Without --data: any folder of images (detection rate only).")
@click.option("--name", "names", multiple=True, metavar="NAME",
              help="The name the faces of the matching --images are stored under (with --data; in order).")
@click.option("--real", is_flag=True, help="Score the dataset's real faces of --split at --image-size (the ceiling).")
@O.data_option(required=False, help_extra=" Needed by --ckpt, --real and --images ... --name.")
@O.backend_option
@O.split_protocol_options
@click.option("--image-size", type=click.IntRange(8, 1024), default=64, show_default=True, metavar="PX",
              help="Face size for --real (checkpoints use their own output size).")
@O.seed_option("generation, overlay sampling and the NME bootstrap interval")
@click.option("--json", "as_json", is_flag=True, help="Print the result rows as JSON on stdout instead of a table.")
@click.option("--overlays", "overlay_dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Write PNG grids of faces with their landmarks drawn here.")
@click.option("--per-image", "per_image", type=click.Path(dir_okay=False), default=None, metavar="CSV",
              help="With --images and no --data: write each image's result (detected, box, 68 points) to this CSV.")
@O.store_options()
@O.runtime_options
@click.option("--run-name", default=None, metavar="NAME",
              help="Run name stored for --ckpt rows.  [default: the run folder, or a lone file's stem]")
@click.option("--annotations", "annotations_dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Validate the backend instead: NME against human 68-point .pts annotations beside the images in "
                   "DIR (e.g. 300-W; outer-eye-corner normalisation).")
def landmarks(ckpts, images, names, real, data_dir, backend, split, protocol, image_size, seed, as_json,
              overlay_dir, per_image, store, no_store, workers, batch_size, device, cache_dir, run_name, annotations_dir,
              store_timeout):
    """Share of faces where all 68 landmarks are found (the paper's detection rate, with a Wilson 95 % CI),
    landmark error (NME) of generated vs paired real faces, and the real faces' rate (the ceiling)."""
    from w2p_eval.errors import InputError
    from w2p_eval.judges.landmarks import parse_backends

    backends = parse_backends(backend)
    if per_image and len(backends) > 1:
        raise InputError(f"--per-image writes one backend's points: give one --backend, got {backend!r}")
    if annotations_dir:
        if ckpts or images or real:
            raise InputError("--annotations validates the backend on its own: drop --ckpt, --images and --real")
        _validate(annotations_dir, backends, workers, device, as_json)
        return
    if not (ckpts or images or real):
        raise InputError("nothing to score: give --ckpt CKPT|RUN_DIR, --images DIR or --real (with --data DATA), "
                         "or --annotations DIR")
    if (ckpts or real or names) and not data_dir:
        raise InputError("--ckpt, --real and --images ... --name need the dataset: add --data DATA")
    from w2p_eval.evaluation import Evaluation, Scored  # here, not at the top: `--help` stays light
    from w2p_eval.metrics import landmarks as M
    from w2p_eval.models.sources import checkpoint_items, folder_item

    if per_image:  # checked before anything is scored: never an input, never a file landmarks did not write
        from w2p_eval.outdir import claim_file, dataset_inputs, text_starting_with
        from w2p_eval.results import default_store

        stores = [store] if store else [default_store(data_dir)] if data_dir else []
        claim_file(per_image, "landmarks", ours=text_starting_with(M.PER_IMAGE_HEADER), what="--per-image",
                   inputs=[*ckpts, *stores, *dataset_inputs(data_dir)])

    O.open_store_early(data_dir, store, no_store or not (store or data_dir), store_timeout)
    rows: list[Scored] = []
    notes: list[str] = []
    sources = O.face_sources(images, names) if data_dir else []
    items = [it for c in ckpts for it in checkpoint_items(c, name=run_name)]
    items += [folder_item(d, n) for d, n in sources]
    data = data_dir
    if items:
        ev = Evaluation.build(data_dir, suites=("landmarks",), split=split, protocol=protocol, seed=seed,
                              backend=backend, device=device, workers=workers, batch_size=batch_size,
                              cache_dir=cache_dir, overlay_dir=overlay_dir, sources=items)
        rows += ev.score_all()
        data, notes = ev.plan.data, ev.notes  # the dataset the evaluation opened, not read again
    if real:
        for name in backends:
            real_rows = M.evaluate_real(data, backend=name, split=split, protocol=protocol, image_size=image_size,
                                        workers=workers, seed=seed, overlay_dir=overlay_dir, cache_dir=cache_dir)
            rows += [Scored(r) for r in real_rows]
    if images and not data_dir:
        for folder in images:
            for name in backends:
                image_rows, _ = M.evaluate_images(folder, backend=name, workers=workers, seed=seed,
                                                  overlay_dir=overlay_dir, per_image_csv=per_image)
                rows += [Scored(r) for r in image_rows]
    O.store_and_print(rows, data_dir, store, no_store or not (store or data_dir), as_json, _format, store_timeout)
    O.echo_notes(notes)


def _validate(folder, backends: tuple[str, ...], workers: int, device, as_json: bool) -> None:
    """`--annotations DIR`: each backend's NME against human annotations (docs/metrics.md validation table); with --json
    one object, or a list of them for several backends."""
    import json

    import pandas as pd

    from w2p_eval.judges.landmarks_validation import validate_backend
    from w2p_eval.text import json_safe

    found = [validate_backend(folder, backend=b, workers=workers,
                              **({"device": device} if b in ("fan", "facemesh") and device else {})) for b in backends]
    if as_json:
        click.echo(json.dumps(json_safe(found[0] if len(found) == 1 else found), indent=2, default=str))
        return
    for res in found:
        per = pd.DataFrame([{"image": k, "nme": v} for k, v in res["per_image"].items()])
        with pd.option_context("display.float_format", "{:.4f}".format):
            click.echo(per.to_string(index=False, na_rep="not detected"))
        click.echo(f"{res['backend']} ({res['version']}): {res['n_detected']}/{res['n']} faces found, "
                   f"NME mean {res['nme_mean']:.4f}, median {res['nme_median']:.4f}, 51 inner points "
                   f"{res['nme_inner_mean']:.4f} (outer-eye-corner normalised)")
