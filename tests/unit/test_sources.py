"""The evaluation core: face sources (checkpoints, image folders, Python), generate-once, one run-name rule,
the store key with the run name, the Python API, and bad image folders (one line, exit 2, or a counted skip)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from w2p_eval.errors import InputError
from w2p_eval.pipeline.evaluate import evaluate_runs
from w2p_eval.results import ResultsStore
from tests.helpers import REPO, run_cli

SUITES = ("identity", "landmarks")
_cli = run_cli  # (argv, capsys) -> (exit code, stdout, stderr): the shared in-process runner


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_data):
    """random_real (nontrivial faces) with two checkpoints copied into one run folder, and real_faces."""
    import torch

    from w2p_eval.train.baselines import train

    root = tmp_path_factory.mktemp("srcruns")
    for model in ("random_real", "real_faces"):
        train({"model": model, "seed": 0, "image_size": 64, "audio_seconds": 1.0, "protocol": "seen"}, tiny_data,
              root / model)
    from w2p_eval.models.checkpoint import load_checkpoint

    ck = root / "random_real" / "checkpoints"
    second = load_checkpoint(ck / "epoch_0000.pt")  # K = 2 checkpoints in one run (distinct contents)
    second.pop("path")
    torch.save({**second, "epoch": 1}, ck / "epoch_0001.pt")
    return root


@pytest.fixture(scope="module")
def exported(runs, tiny_data, tmp_path_factory):
    """`w2p-eval generate` of random_real's first checkpoint: OUT/epoch_0000/<pair>.png + OUT/manifest.csv."""
    from w2p_eval.models.generation import export_generated

    out = tmp_path_factory.mktemp("exported") / "faces"
    export_generated(runs / "random_real" / "checkpoints" / "epoch_0000.pt", tiny_data, out)
    return out / "epoch_0000"


def _values(store, run):
    df = ResultsStore(store).query(run=run)
    return df.set_index("metric")["value"]


def test_round_trip_generate_then_images_scores_like_the_checkpoint(runs, exported, tiny_data, tmp_path):
    ckpt = runs / "random_real" / "checkpoints" / "epoch_0000.pt"
    kw = dict(suites=SUITES, cache_dir=tmp_path / "cache")
    evaluate_runs([ckpt], tiny_data, store=tmp_path / "a.sqlite", **kw)
    evaluate_runs([], tiny_data, images=[(exported, "x")], store=tmp_path / "b.sqlite", **kw)
    a, b = _values(tmp_path / "a.sqlite", "random_real"), _values(tmp_path / "b.sqlite", "x")
    assert set(a.index) == set(b.index) and len(a) >= 12
    for metric in a.index:
        assert b[metric] == pytest.approx(a[metric], abs=1e-9, nan_ok=True), metric
    row = ResultsStore(tmp_path / "b.sqlite").query(run="x").iloc[0]
    assert row["model"] == "external" and row["source"] == "images" and pd.isna(row["epoch"])
    assert row["extra"]["n_pairs_missing"] == 0


def test_folder_of_the_real_faces_scores_the_ceiling(runs, tiny_data, tmp_path):
    """Known answer through the folder path: the real test faces score what real_faces scores."""
    from w2p_eval.data.images import save_png
    from w2p_eval.models.sources import real_faces_at, split_rows

    df = split_rows(tiny_data, "test", "seen")
    faces = real_faces_at(tiny_data, list(df["image_path"]), 64)
    folder = tmp_path / "real"
    for pid, ident, face in zip(df["pair_id"], df["identity"], faces):
        (folder / ident).mkdir(parents=True, exist_ok=True)
        save_png(folder / ident / f"{pid}.png", face)  # under <identity>/
    kw = dict(suites=SUITES, cache_dir=tmp_path / "cache", store=tmp_path / "s.sqlite")
    evaluate_runs([runs / "real_faces"], tiny_data, images=[(folder, "real_folder")], **kw)
    ours, theirs = _values(kw["store"], "real_faces"), _values(kw["store"], "real_folder")
    for metric in ours.index:
        assert theirs[metric] == pytest.approx(ours[metric], abs=1e-9, nan_ok=True), metric
    assert theirs["identity_top1_fake"] == theirs["identity_top1_real"]
    assert theirs["frechet_face"] == pytest.approx(0.0, abs=1e-6)
    if not np.isnan(theirs["landmark_nme"]):
        assert theirs["landmark_nme"] == pytest.approx(0.0, abs=1e-9)
    # the external model lands beside the run in the report asked for that run only, marked external
    from w2p_eval.report.build import build_report

    build_report([runs / "real_faces"], kw["store"], tmp_path / "report", data_dir=tiny_data)
    main = (tmp_path / "report" / "tables" / "main.md").read_text()
    line = next(ln for ln in main.splitlines() if "real_folder" in ln)
    assert "external (images)" in line and "| – |" in line  # no epoch
    assert "samples.png" in (tmp_path / "report" / "report.md").read_text()


def test_evaluate_generates_once_per_checkpoint_and_loads_each_once(runs, tiny_data, tmp_path, monkeypatch):
    from w2p_eval.models import checkpoint, generation, registry

    calls = {"load": [], "generator": 0, "generate_split": 0}
    real_load, real_gen, real_split = checkpoint.load_checkpoint, registry.load_generator, generation.generate_split

    def counting_load(path, *a, **k):
        calls["load"].append(Path(path).name)
        return real_load(path, *a, **k)

    def counting_generator(*a, **k):
        calls["generator"] += 1
        return real_gen(*a, **k)

    def counting_split(*a, **k):
        calls["generate_split"] += 1
        return real_split(*a, **k)

    monkeypatch.setattr(checkpoint, "load_checkpoint", counting_load)
    monkeypatch.setattr(registry, "load_generator", counting_generator)
    monkeypatch.setattr(generation, "generate_split", counting_split)
    summary = evaluate_runs([runs / "random_real"], tiny_data, store=tmp_path / "s.sqlite",
                            suites=("identity", "landmarks", "speaker"), cache_dir=tmp_path / "cache")
    k = 2
    assert calls["generator"] == k and calls["generate_split"] == k and summary.generator_passes == k
    assert sorted(calls["load"]) == ["epoch_0000.pt", "epoch_0001.pt"]
    assert len(summary.evaluated) == 2 * k  # identity + landmarks per checkpoint (speaker does not apply)
    # the report's sample grid reads what evaluate kept: no generator pass
    from w2p_eval.report.build import build_report

    calls["generator"] = 0
    build_report([], tmp_path / "s.sqlite", tmp_path / "report", data_dir=tiny_data)
    assert calls["generator"] == 0 and (tmp_path / "report" / "figures" / "samples.png").is_file()


def test_identity_and_landmarks_store_the_same_run_name(runs, tiny_data, tmp_path, capsys):
    import shutil

    lone = tmp_path / "x" / "foo.pt"
    lone.parent.mkdir()
    shutil.copy(runs / "random_real" / "checkpoints" / "epoch_0000.pt", lone)
    store = tmp_path / "s.sqlite"
    common = ["--ckpt", lone, "--data", tiny_data, "--store", store, "--cache-dir", tmp_path / "c"]
    assert _cli(["identity", *common], capsys)[0] == 0
    assert _cli(["landmarks", *common], capsys)[0] == 0
    df = ResultsStore(store).query()
    assert set(df["run"]) == {"foo"} and {"identity_top1_fake", "landmark_detection_rate"} <= set(df["metric"])


def test_one_checkpoint_under_two_names_keeps_two_row_sets(runs, tiny_data, tmp_path):
    from w2p_eval.api import evaluate_checkpoints

    ck = runs / "real_faces" / "checkpoints" / "epoch_0000.pt"
    store = ResultsStore(tmp_path / "s.sqlite")
    for name in ("first", "second"):
        store.write(evaluate_checkpoints([ck], tiny_data, cache_dir=tmp_path / "c", run_name=name))
    df = store.query(metric="identity_top1_fake")
    assert sorted(df["run"]) == ["first", "second"] and df["checkpoint_hash"].nunique() == 1


def test_an_older_store_is_migrated_without_losing_rows(tmp_path):
    """A store from before the run joined the unique key (and before the source column) keeps its rows."""
    from w2p_eval import results as R

    path = tmp_path / "old.sqlite"
    old_cols = R.ROW_KEYS + R.PROVENANCE
    con = sqlite3.connect(path)
    old_key = ("data_hash", "checkpoint_hash", "metric", "split", "protocol", "seed", "evaluator")
    con.execute(f"CREATE TABLE results ({', '.join(old_cols)}, UNIQUE ({', '.join(old_key)}))")
    con.execute(f"INSERT INTO results VALUES ({', '.join('?' * len(old_cols))})",
                ("d", "run_a", "wav2pix", "c.pt", "h", 3, "identity_top1_fake", "test", "seen", 0, 0.5, 10,
                 "identity/dlib_resnet", "1", "cfg", "{}", "{}", None, "t"))
    con.commit()
    con.close()
    store = ResultsStore(path)
    df = store.query()
    assert len(df) == 1 and df.iloc[0]["source"] == "checkpoint" and df.iloc[0]["value"] == 0.5
    row = {k: df.iloc[0][k] for k in R.ROW_KEYS}
    store.write([{**row, "run": "run_b", "epoch": 3, "seed": 0, "n": 10}])
    assert sorted(store.query()["run"]) == ["run_a", "run_b"]


# ------------------------------------------------------------------ folder formats and bad input
def _folder(tmp_path, tiny_data, name="f", size=64, mode="RGB", ext=".png", n=None):
    from w2p_eval.models.sources import split_rows

    df = split_rows(tiny_data, "test", "seen")
    folder = tmp_path / name
    folder.mkdir()
    rng = np.random.default_rng(0)
    for pid in list(df["pair_id"])[:n]:
        arr = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        Image.fromarray(arr).convert(mode).save(folder / f"{pid}{ext}")
    return folder, list(df["pair_id"])


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16"])
def test_grayscale_rgba_palette_and_16_bit_images_are_read_as_rgb(tmp_path, tiny_data, mode):
    from w2p_eval.models.sources import FolderItem

    folder, pids = _folder(tmp_path, tiny_data, mode="L" if mode == "I;16" else mode)
    if mode == "I;16":  # 16-bit grey: 8-bit value v stored as v * 257
        for f in folder.iterdir():
            v = np.asarray(Image.open(f), np.uint16) * 257
            Image.fromarray(v.astype("<u2")).save(f)
    gs = FolderItem(folder=folder, run="m").faces(tiny_data)
    assert gs.fake.shape == (len(pids), 64, 64, 3) and gs.fake.dtype == np.uint8
    if mode in ("L", "I;16"):
        ref = np.asarray(Image.open(folder / f"{pids[0]}.png").convert("L")) if mode == "L" else None
        assert (gs.fake[0, ..., 0] == gs.fake[0, ..., 1]).all()
        if ref is not None:
            assert (gs.fake[0, ..., 0] == ref).all()
        else:  # scaled, not clipped: a 16-bit image is not read as almost white
            assert gs.fake.mean() < 200


def test_missing_pairs_are_counted_and_named(tmp_path, tiny_data):
    from w2p_eval.models import sources

    folder, pids = _folder(tmp_path, tiny_data, n=3, ext=".jpg")
    (folder / "notes.txt").write_text("not a face")
    (folder / "someone-else.png").write_bytes((folder / f"{pids[0]}.jpg").read_bytes())
    item = sources.FolderItem(folder=folder, run="m")
    gs = item.faces(tiny_data)
    assert len(gs.pair_ids) == 3 and gs.n_expected == len(pids) and sorted(gs.missing) == sorted(pids[3:])
    lines = " ".join(item.notes)  # the item's own notes: nothing module-level to clear between commands
    assert f"{len(pids) - 3} of {len(pids)} test pairs have no face" in lines and "ignored 2 files" in lines


def test_non_square_and_unreadable_images_are_counted_skips(tmp_path, tiny_data):
    from w2p_eval.models.sources import FolderItem

    folder, pids = _folder(tmp_path, tiny_data)
    Image.fromarray(np.zeros((64, 48, 3), np.uint8)).save(folder / f"{pids[0]}.png")
    (folder / f"{pids[1]}.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    gs = FolderItem(folder=folder, run="m").faces(tiny_data)
    assert len(gs.pair_ids) == len(pids) - 2 and set(gs.missing) == {pids[0], pids[1]}


@pytest.mark.parametrize("case", ["empty", "no_match", "duplicate", "mixed_sizes", "no_name", "same_name",
                                  "empty_name", "names_without_images"])
def test_bad_image_folders_are_one_line_and_exit_2(case, tmp_path, tiny_data, capsys):
    store = tmp_path / "s.sqlite"
    args = ["evaluate", "--data", tiny_data, "--store", store, "--metrics", "landmarks", "--cache-dir", tmp_path / "c"]
    folder, pids = _folder(tmp_path, tiny_data) if case != "empty" else (tmp_path / "f", [])
    want = {"empty": "found none", "no_match": "expected image names that are pair ids",
            "duplicate": "got two for pair", "mixed_sizes": "one size", "no_name": "one --name NAME for each",
            "same_name": "distinct --name", "empty_name": "non-empty --name",
            "names_without_images": "one --name NAME for each"}[case]
    if case == "empty":
        folder.mkdir()
    if case == "no_match":
        for f in folder.iterdir():
            f.rename(folder / f"other-{f.name}")
    if case == "duplicate":
        (folder / f"{pids[0]}.jpg").write_bytes((folder / f"{pids[0]}.png").read_bytes())
    if case == "mixed_sizes":
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / f"{pids[0]}.png")
    sources = {"no_name": ["--images", folder], "same_name": ["--images", folder, "--name", "a", "--images", folder,
                                                                "--name", "a"],
               "empty_name": ["--images", folder, "--name", " "], "names_without_images": ["--name", "a"]}
    code, out, err = _cli(args + sources.get(case, ["--images", folder, "--name", "m"]), capsys)
    assert code == 2, err
    assert err.startswith("w2p-eval: error: ") and len(err.strip().splitlines()) == 1 and want in err, err
    assert "Traceback" not in err and not store.exists()


# ------------------------------------------------------------------ Python API
def test_evaluate_faces_from_an_array_and_a_callable_agree(tiny_data, tmp_path):
    import torch

    import w2p_eval
    from w2p_eval.models.sources import real_faces_at, split_rows

    df = split_rows(tiny_data, "test", "seen")
    faces = real_faces_at(tiny_data, list(df["image_path"]), 64)
    a = w2p_eval.evaluate_faces(faces, list(df["pair_id"]), data=tiny_data, metrics=["identity"],
                                cache_dir=tmp_path / "c", name="arr")
    b = w2p_eval.evaluate_faces(lambda batch: (batch["image"] + 1) / 2, data=tiny_data, metrics=["identity"],
                                cache_dir=tmp_path / "c", name="fn")
    a, b = a.set_index("metric")["value"], b.set_index("metric")["value"]
    assert a["identity_top1_fake"] == a["identity_top1_real"] and a["frechet_face"] == pytest.approx(0, abs=1e-6)
    for metric in a.index:
        assert b[metric] == pytest.approx(a[metric], abs=1e-9, nan_ok=True), metric
    float_faces = torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 255
    c = w2p_eval.evaluate_faces(float_faces, list(df["pair_id"]), data=tiny_data, metrics=["identity"],
                                cache_dir=tmp_path / "c").set_index("metric")["value"]
    assert c["identity_top1_fake"] == a["identity_top1_fake"]
    assert not (tmp_path / "c" / "results.sqlite").exists() and not (tiny_data / "results.sqlite").exists()
    with pytest.raises(InputError, match="pair id"):
        w2p_eval.evaluate_faces(faces, ["x"] * len(faces), data=tiny_data)


def test_readme_python_snippet_runs(tiny_data, tmp_path, monkeypatch):
    """The README's Python snippet (its "Python" example), executed on the tiny dataset."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- api-snippet -->\s*```python\n(.*?)```", text, re.S)
    assert block, "README lacks the Python API snippet"
    monkeypatch.chdir(tmp_path)
    code = block.group(1).replace('"w2p_demo/data"', repr(str(tiny_data)))
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - our own README
    assert isinstance(scope["df"], pd.DataFrame) and "identity_top1_fake" in set(scope["df"]["metric"])


def test_import_layers_are_kept():
    """The import direction of docs/architecture.md, checked by import-linter's contracts in pyproject.toml."""
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(exe)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 kept, 0 broken" in proc.stdout
