"""The evaluation core: one scoring loop, item values kept beside the store, compare read from the store (no
generator or judge forward), `results --items`, and registry names in every verb's --help."""

from __future__ import annotations

import csv
import json
import os
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import run_cli
from w2p_eval.cli.prepare import PREPARE_MODES
from w2p_eval.evaluation import Evaluation
from w2p_eval.evaluation.items import aggregate, read_items
from w2p_eval.judges import IDENTITY_BACKBONES, LANDMARK_BACKENDS
from w2p_eval.metrics.registry import SUITES
from w2p_eval.models import checkpoint
from w2p_eval.models.sources import SOURCE_KINDS
from w2p_eval.pipeline.evaluate import evaluate_runs
from w2p_eval.results import ResultsStore

SUITES_USED = ("identity", "distances")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_data):
    """Two real baselines (mean_face, real_faces) evaluated into a store by `evaluate`'s loop."""
    from w2p_eval.train.baselines import train

    root = tmp_path_factory.mktemp("core")
    for model in ("mean_face", "real_faces"):
        train({"model": model, "seed": 0, "image_size": 64, "audio_seconds": 1.0, "protocol": "seen"}, tiny_data,
              root / model)
    store = root / "r.sqlite"
    summary = evaluate_runs([root / "mean_face", root / "real_faces"], tiny_data, store=store, suites=SUITES_USED,
                            cache_dir=root / "cache")
    assert len(summary.evaluated) == 4 and not summary.failed
    return root, store


class Forwards:
    """Counts every torch module forward (generators and judges alike) and every checkpoint load."""

    def __init__(self, monkeypatch):
        self.modules = self.checkpoints = 0
        real_call, real_load = torch.nn.Module.__call__, checkpoint.load_checkpoint

        def call(mod, *a, **k):
            self.modules += 1
            return real_call(mod, *a, **k)

        def load(*a, **k):
            self.checkpoints += 1
            return real_load(*a, **k)

        monkeypatch.setattr(torch.nn.Module, "__call__", call)
        monkeypatch.setattr(checkpoint, "load_checkpoint", load)


def test_compare_from_the_store_runs_nothing_and_equals_scoring(evaluated, tiny_data, monkeypatch):
    root, store = evaluated
    ev = Evaluation.build(tiny_data, suites=SUITES_USED, cache_dir=root / "cache")
    counted = Forwards(monkeypatch)
    from_store = ev.compare(root / "mean_face", root / "real_faces", store=store)
    assert counted.modules == 0 and counted.checkpoints == 0  # no generator, no judge, no checkpoint opened
    scored = Evaluation.build(tiny_data, suites=SUITES_USED, cache_dir=root / "cache").compare(
        root / "mean_face", root / "real_faces")
    assert counted.modules > 0 and counted.checkpoints == 2  # the same comparison computed: faces and judge ran
    assert from_store == scored  # every value, interval, paired difference and McNemar test identical
    top1 = next(e for e in from_store["metrics"] if e["metric"] == "identity_top1_fake")
    assert top1["b"] == 1.0 and top1["diff_ci"] is not None and top1["mcnemar"] is not None


def test_compare_from_the_store_imports_no_torch(evaluated, tiny_data, tmp_path):
    """`compare --store` on stored sources runs no network, so it imports no torch at all (w2p_eval.lazy: about
    2 s of the command), and prints the same comparison as the scoring path above."""
    root, store = evaluated
    code = ("import sys\nfrom w2p_eval.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
            "print('torch imported:', 'torch' in sys.modules, file=sys.stderr)\nsys.exit(code)\n")
    out = tmp_path / "cmp.json"
    proc = subprocess.run([sys.executable, "-c", code, "compare", str(root / "mean_face"), str(root / "real_faces"),
                           "--data", str(tiny_data), "--suites", ",".join(SUITES_USED), "--store", str(store),
                           "--cache-dir", str(root / "cache"), "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "torch imported: False" in proc.stderr
    scored = Evaluation.build(tiny_data, suites=SUITES_USED, cache_dir=root / "cache").compare(
        root / "mean_face", root / "real_faces")
    assert json.loads(out.read_text())["metrics"] == json.loads(json.dumps(scored["metrics"]))


def test_compare_of_an_other_plan_scores_again(evaluated, tiny_data, monkeypatch):
    """A different seed is another plan: the store's rows do not answer it."""
    root, store = evaluated
    counted = Forwards(monkeypatch)
    Evaluation.build(tiny_data, suites=("identity",), seed=1, cache_dir=root / "cache").compare(
        root / "mean_face", root / "real_faces", store=store, metrics=["identity_top1_fake"])
    assert counted.checkpoints == 2


def test_item_values_beside_the_store_give_the_row(evaluated):
    """Each stored row has its item values; the one aggregation gives back the row's value and interval."""
    _, store = evaluated
    df = ResultsStore(store).query()
    checked = 0
    for row in df.to_dict("records"):
        kept, items, _ = read_items(store, row)
        assert kept, row["metric"]
        if row["metric"] in ("identity_top1_fake", "paired_cosine"):
            value, ci = aggregate(items, seed=row["seed"], rate=row["metric"] == "identity_top1_fake")
            assert value == pytest.approx(row["value"], abs=1e-12) and ci == row["extra"]["ci"]
            assert len(items.keys) == row["n"] == len(set(items.keys))
            checked += 1
    assert checked == 4


def test_results_items_csv(evaluated, capsys):
    _, store = evaluated
    res = run_cli(["results", "--store", str(store), "--items", "--metric", "identity_top1_fake"])
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert {r["run"] for r in rows} == {"mean_face", "real_faces"}
    real = [float(r["value"]) for r in rows if r["run"] == "real_faces"]
    assert real and all(v == 1.0 for v in real)  # the real faces are their own identity: every item a hit
    assert all(r["group"] for r in rows) and {"item", "value", "group", "weight"} <= set(rows[0])


def test_evaluation_plan_is_frozen_and_shared_state_is_its_own(tiny_data):
    a = Evaluation.build(tiny_data, suites=("identity",), backbone="dlib_resnet,vgg_scratch", workers=2)
    b = Evaluation.build(tiny_data, suites=("identity",))
    with pytest.raises(AttributeError):
        a.plan.seed = 3  # type: ignore[misc]
    assert a.context.features is not b.context.features and a.context.memo is not b.context.memo
    assert [c.backbone for _, c in a.tasks()] == ["dlib_resnet", "vgg_scratch"]
    assert a.context.backbone_options == {"workers": 2}  # the runtime's workers reach the dlib alignment
    assert a.context.for_judge("vgg_scratch").backbone_options is None


VERBS_OF = {  # the option and registry each verb's --help must list in full
    "evaluate": [SUITES, IDENTITY_BACKBONES, LANDMARK_BACKENDS],
    "compare": [SUITES, IDENTITY_BACKBONES, LANDMARK_BACKENDS],
    "identity": [IDENTITY_BACKBONES],
    "landmarks": [LANDMARK_BACKENDS],
    "ablate-audio": [IDENTITY_BACKBONES, LANDMARK_BACKENDS],
}


@pytest.mark.parametrize("verb", sorted(VERBS_OF))
def test_every_registered_name_is_in_the_help_of_the_verbs_that_take_it(verb):
    res = run_cli([verb, "--help"])
    assert res.returncode == 0
    text = " ".join(res.stdout.split())
    for registry in VERBS_OF[verb]:
        missing = [n for n in registry.names() if n not in text]
        assert not missing, f"{verb} --help lacks {registry.what} {missing}"


@pytest.mark.parametrize("verb", ["evaluate", "compare", "identity", "landmarks", "demo", "ablate-audio"])
def test_every_scoring_verb_takes_the_runtime_options(verb):
    text = run_cli([verb, "--help"]).stdout
    for flag in ("--workers", "--device", "--batch-size", "--cache"):
        assert flag in text, f"{verb} lacks {flag}"


def test_unknown_names_answer_with_the_registry(tiny_data):
    res = run_cli(["evaluate", str(tiny_data), "--data", str(tiny_data), "--metrics", "identty"])
    assert res.returncode == 2 and "did you mean identity" in res.stderr
    assert np.all([e.help for e in SUITES.entries()])  # every entry has its one-line help



def test_docs_tables_of_names_are_generated_from_the_registries():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "registry_tables.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = (ROOT / "docs" / "architecture.md").read_text()
    for registry in (SUITES, IDENTITY_BACKBONES, LANDMARK_BACKENDS, PREPARE_MODES, SOURCE_KINDS):
        assert all(f"`{name}`" in doc for name in registry.names())


def test_prepare_modes_are_the_prepare_sub_commands():
    from w2p_eval.cli.prepare import prepare

    with prepare.make_context("prepare", ["--help"], resilient_parsing=True) as ctx:  # the modes load on use
        assert [prepare.get_command(ctx, n).name for n in prepare.list_commands(ctx)] == PREPARE_MODES.names()
    assert "did you mean demo?" in run_cli(["prepare", "demoo"]).stderr
