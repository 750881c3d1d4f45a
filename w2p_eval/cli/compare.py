"""`w2p-eval compare A B`: two runs, checkpoints or image folders on the same test pairs (parsing only)."""

from __future__ import annotations

import click

from w2p_eval.cli import options as O
from w2p_eval.metrics.registry import DEFAULT_COMPARE_SUITES


@click.command("compare")
@click.argument("a", type=click.Path(exists=True), metavar="A")
@click.argument("b", type=click.Path(exists=True), metavar="B")
@O.data_option(help_extra=" Both A and B are scored on its test pairs.")
@click.option("--name-a", default=None, metavar="NAME", help="Name shown for A.  [default: run or folder name]")
@click.option("--name-b", default=None, metavar="NAME", help="Name shown for B.  [default: run or folder name]")
@O.testlist_option
@O.suites_option("--suites", DEFAULT_COMPARE_SUITES, " to compare on")
@click.option("--metrics", "metrics", default=None, metavar="LIST",
              help="Only these metrics (names as in the store, e.g. identity_top1_fake,matching_1to2).")
@O.protocol_settings_options
@O.backbone_option
@O.vgg_weights_option
@O.backend_option
@O.split_protocol_options
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON on stdout instead of a table.")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Also save the comparison as JSON (for `w2p-eval report --compare FILE`).")
@click.option("--store", type=click.Path(dir_okay=False), default=None, metavar="PATH",
              help="Results store `evaluate` wrote: sources it holds under the same plan (data, split, protocol, "
                   "seed, suites, judges, test list) are read from it, not scored again.  [default: "
                   "DATA/results.sqlite when it exists]")
@O.runtime_options
@O.seed_option("the evaluation (judge training, generation, galleries, tuples, bootstrap intervals)")
def compare(a, b, data_dir, name_a, name_b, testlist, suites, metrics, gallery_size, n_galleries, matching, backbone,
            vgg_face_weights, backend, split, protocol, as_json, out, store, workers, batch_size, device, cache_dir, seed):
    """Compare A and B metric by metric on the same test pairs: each value with its 95 % interval, the
    difference A − B with its paired cluster-bootstrap interval, and an exact McNemar test for paired
    accuracies. A and B: a run folder (its final checkpoint), a checkpoint file, or a folder of face images
    named <pair_id>.png (any other folder)."""
    import json

    from w2p_eval.evaluation import Evaluation  # here, not at the top: `--help` stays light
    from w2p_eval.metrics.registry import parse_suites
    from w2p_eval.report.comparison import format_comparison
    from w2p_eval.results import default_store
    from w2p_eval.text import json_safe
    from w2p_eval.utils import atomic_write_text

    ev = Evaluation.build(data_dir, suites=parse_suites(suites), split=split, protocol=protocol, seed=seed,
                          backbone=backbone, judge_options=O.judge_options(backbone, vgg_face_weights),
                          backend=backend, gallery_size=gallery_size, n_galleries=n_galleries,
                          matching=O.int_list(matching, "--matching"), testlist=testlist,
                          given=O.given("split", "protocol", "backbone"), device=device, workers=workers,
                          batch_size=batch_size, cache_dir=cache_dir)
    wanted = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    if out:  # checked before anything is scored: never an input, never a file compare did not write
        from w2p_eval.outdir import claim_file, dataset_inputs, json_of_format
        from w2p_eval.report.comparison import FORMAT

        claim_file(out, "compare", ours=json_of_format(FORMAT),
                   inputs=[a, b, testlist, vgg_face_weights, store, *dataset_inputs(data_dir)])
    result = ev.compare(a, b, store=store or default_store(ev.plan.data), name_a=name_a, name_b=name_b,
                        metrics=wanted)
    text = json.dumps(json_safe(result), indent=2, allow_nan=False)
    if out:
        atomic_write_text(out, text + "\n")
        click.echo(f"wrote the comparison to {out}", err=True)
    click.echo(text if as_json else format_comparison(result))
