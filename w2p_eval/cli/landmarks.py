"""`w2p-eval landmarks`: 68-point landmark detection rate and landmark error (parsing only)."""

from __future__ import annotations

import click

BACKENDS = ["dlib", "dlib_cnn", "fan"]


def _format(rows: list[dict]) -> str:
    import pandas as pd

    table = pd.DataFrame([{
        "run": r["run"], "model": r["model"], "epoch": r["epoch"], "metric": r["metric"],
        "value": r["value"], "ci_low": r["extra"].get("ci_low"), "ci_high": r["extra"].get("ci_high"),
        "n": r["n"], "evaluator": r["evaluator"],
    } for r in rows])
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.4f}".format):
        return table.to_string(index=False)


def _json_clean(obj):
    """NaN -> null so --json output is strict JSON."""
    import math

    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_clean(v) for v in obj]
    return obj


@click.command("landmarks")
@click.option("--ckpt", "ckpts", multiple=True, metavar="CKPT|RUN_DIR",
              help="Checkpoint file or run folder (all its checkpoints); repeatable. Needs --data.")
@click.option("--images", "images_dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Score any folder of images (no dataset needed).")
@click.option("--real", is_flag=True, help="Score the dataset's real faces of --split at --image-size (the ceiling).")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None, metavar="DATA",
              help="Prepared dataset folder (manifest.csv + dataset.json); needed by --ckpt and --real.")
@click.option("--backend", type=click.Choice(BACKENDS), default="dlib", show_default=True,
              help="Landmark backend: dlib (HOG + 68-point ERT), dlib_cnn (MMOD + ERT), fan (face-alignment 2D-FAN).")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True, metavar="N",
              help="Processes for landmark detection (each loads the models once).")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "test"]), help="Split scored.")
@click.option("--protocol", default="seen", show_default=True, type=click.Choice(["seen", "unseen"]),
              help="Split protocol (seen: same speakers in train and test; unseen: new speakers).")
@click.option("--image-size", type=click.IntRange(8), default=64, show_default=True, metavar="PX",
              help="Face size for --real (checkpoints use their own output size).")
@click.option("--seed", default=0, show_default=True, type=int, metavar="INT",
              help="Seed of generation, overlay sampling and the NME bootstrap interval.")
@click.option("--json", "as_json", is_flag=True, help="Print the result rows as JSON on stdout instead of a table.")
@click.option("--overlays", "overlay_dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Write PNG grids of faces with their landmarks drawn here.")
@click.option("--per-image", "per_image", type=click.Path(dir_okay=False), default=None, metavar="CSV",
              help="With --images: write each image's result (detected, box, 68 points) to this CSV.")
@click.option("--store", type=click.Path(dir_okay=False), default=None, metavar="PATH",
              help="Results store to write to.  [default: DATA/results.sqlite; none for --images alone]")
@click.option("--no-store", is_flag=True, help="Do not write the rows to a results store.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Cache of real-face landmarks.  [default: $W2P_CACHE or ~/.cache/w2p-eval]")
@click.option("--device", default=None, metavar="DEV",
              help="torch device for generation and fan.  [default: cuda when available, else cpu]")
@click.option("--run-name", default=None, metavar="NAME", help="Run name stored in the rows.  [default: run folder]")
@click.option("--annotations", "annotations_dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Validate the backend instead: NME against human 68-point .pts annotations beside the images in "
                   "DIR (e.g. 300-W; outer-eye-corner normalisation).")
def landmarks(ckpts, images_dir, real, data_dir, backend, workers, split, protocol, image_size, seed, as_json,
              overlay_dir, per_image, store, no_store, cache_dir, device, run_name, annotations_dir):
    """Share of faces where all 68 landmarks are found (the paper's detection rate, with a Wilson 95 % CI),
    landmark error (NME) of generated vs paired real faces, and the real faces' rate (the ceiling)."""
    import json

    from w2p_eval.errors import InputError

    if annotations_dir:
        if ckpts or images_dir or real:
            raise InputError("--annotations validates the backend on its own: drop --ckpt, --images and --real")
        _validate(annotations_dir, backend, workers, device, as_json)
        return
    if not (ckpts or images_dir or real):
        raise InputError("nothing to score: give --ckpt CKPT|RUN_DIR, --images DIR or --real (with --data DATA), "
                         "or --annotations DIR")
    if (ckpts or real) and not data_dir:
        raise InputError("--ckpt and --real need the dataset: add --data DATA")
    from w2p_eval.metrics import landmarks as M

    rows: list[dict] = []
    if ckpts:
        rows += M.evaluate_landmarks(list(ckpts), data_dir, backend=backend, split=split, protocol=protocol,
                                     workers=workers, seed=seed, overlay_dir=overlay_dir, cache_dir=cache_dir,
                                     run_name=run_name, device=device)
    if real:
        rows += M.evaluate_real(data_dir, backend=backend, split=split, protocol=protocol, image_size=image_size,
                                workers=workers, seed=seed, overlay_dir=overlay_dir, cache_dir=cache_dir)
    if images_dir:
        image_rows, _ = M.evaluate_images(images_dir, backend=backend, workers=workers, seed=seed,
                                          overlay_dir=overlay_dir, per_image_csv=per_image)
        rows += image_rows
    stored = None
    if not no_store and (store or data_dir):
        from w2p_eval.results import ResultsStore, default_store

        stored = store or default_store(data_dir)
        ResultsStore(stored).write(rows)
    if as_json:
        click.echo(json.dumps(_json_clean(rows), indent=2, default=str))
    else:
        click.echo(_format(rows))
    if stored is not None:
        click.echo(f"wrote {len(rows)} rows to {stored}", err=True)


def _validate(folder, backend: str, workers: int, device, as_json: bool) -> None:
    """`--annotations DIR`: the backend's NME against human annotations (README's validation table)."""
    import json

    import pandas as pd

    from w2p_eval.judges.landmarks_validation import validate_backend

    kwargs = {"device": device} if backend == "fan" and device else {}
    res = validate_backend(folder, backend=backend, workers=workers, **kwargs)
    if as_json:
        click.echo(json.dumps(_json_clean(res), indent=2, default=str))
        return
    per = pd.DataFrame([{"image": k, "nme": v} for k, v in res["per_image"].items()])
    with pd.option_context("display.float_format", "{:.4f}".format):
        click.echo(per.to_string(index=False, na_rep="not detected"))
    click.echo(f"{res['backend']} ({res['version']}): {res['n_detected']}/{res['n']} faces found, "
               f"NME mean {res['nme_mean']:.4f}, median {res['nme_median']:.4f} (outer-eye-corner normalised)")
