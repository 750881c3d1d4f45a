"""`w2p-eval evaluate`: run every metric suite for every face source into the results store (parsing only)."""

from __future__ import annotations

import click

from w2p_eval.cli import options as O
from w2p_eval.metrics.registry import DEFAULT_SUITES


@click.command("evaluate")
@click.argument("run_dirs", nargs=-1, type=click.Path(exists=True), metavar="[RUN_DIR...]")
@O.data_option(help_extra=" The runs were trained on it; image folders are matched to its test pairs.")
@click.option("--baselines", multiple=True, type=click.Path(exists=True), metavar="RUN_DIR",
              help="Baseline run folders or checkpoints to evaluate too (repeatable).")
@O.images_options
@O.store_options(with_no_store=False)
@O.suites_option("--metrics", DEFAULT_SUITES)
@O.testlist_option
@click.option("--protocol-preset", type=click.Choice(["sf2f"]), default=None,
              help="A peer's protocol by name: sf2f = SF2F's s2f_evaluator (the sf2f suite, both face-generation "
                   "modes; unseen protocol unless --protocol is given).")
@O.protocol_settings_options
@O.backbone_option
@O.vgg_weights_option
@O.standard_weights_options
@O.backend_option
@O.split_protocol_options
@click.option("--final-only", is_flag=True, help="Only each run's last checkpoint.")
@click.option("--force", is_flag=True, help="Re-evaluate what the store already holds (rows are replaced).")
@O.runtime_options
@O.seed_option("the evaluation (judge training, generation, KID subsets, bootstrap intervals)")
def evaluate(run_dirs, data_dir, baselines, images, names, store, suites, testlist, protocol_preset, gallery_size,
             n_galleries, matching, backbone, vgg_face_weights, inception_weights, vggface2_weights, backend, split,
             protocol, final_only, force, workers, batch_size, device, cache_dir, seed, store_timeout):
    """Evaluate every checkpoint of RUN_DIR... (and --baselines) and every --images DIR --name NAME, skipping
    what the store already has. Each checkpoint is loaded once and its faces generated once for all suites."""
    from w2p_eval.metrics.registry import parse_suites
    from w2p_eval.pipeline.evaluate import evaluate_runs  # here, not at the top: `--help` stays light

    if protocol_preset:  # the preset's suite (metrics/sf2f_preset.py) on the identity-disjoint split
        suites = ",".join(dict.fromkeys([*(suites.split(",") if O.given("suites") else []), "sf2f"]))
        protocol = protocol if "protocol" in O.given("protocol") else "unseen"
    summary = evaluate_runs(
        list(run_dirs), data_dir, store=store, baselines=list(baselines), images=O.face_sources(images, names),
        suites=parse_suites(suites), backbone=backbone, backend=backend, split=split, protocol=protocol, seed=seed,
        force=force, final_only=final_only, device=device, workers=workers, batch_size=batch_size,
        store_timeout_s=store_timeout,
        cache_dir=cache_dir, judge_options=O.judge_options(backbone, vgg_face_weights), testlist=testlist,
        gallery_size=gallery_size, n_galleries=n_galleries, matching=O.int_list(matching, "--matching"),
        given=O.given("split", "protocol", "backbone"),
        weight_files=O.weight_files(inception_weights, vggface2_weights),
    )
    O.echo_notes(summary.notes)
    for item in summary.failed:
        click.echo(f"w2p-eval: failed: {item}", err=True)
    click.echo(summary.line())
    if summary.failed and not summary.evaluated:
        raise SystemExit(1)  # nothing could be evaluated: not a success
