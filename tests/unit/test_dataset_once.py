"""One dataset object per command: manifest.csv and dataset.json read once, the manifest hashed once, and
content checks that follow the work (a second command on an unchanged dataset decodes no training image).

Counts are of the real calls: every ``open`` of the dataset's files (``io.open``/``builtins.open``, what
pathlib, hashlib readers and pandas use) and every ``PIL.Image.open`` (every decode and every check)."""

from __future__ import annotations

import builtins
import io
import shutil
from collections import Counter
from pathlib import Path

import pandas as pd
import PIL.Image
import pytest

from tests.helpers import make_tiny_dataset, run_cli

ALL_SUITES = "identity,landmarks,speaker,retrieval,distances,matching"


class Reads:
    """Counts opens of the files under one dataset folder (by path relative to it) while installed."""

    def __init__(self, monkeypatch, data: Path):
        self.root = str(data.resolve())
        self.files: Counter = Counter()
        self.images: Counter = Counter()
        real_open, real_image_open = io.open, PIL.Image.open

        def counting_open(file, *a, **k):
            self._note(self.files, file)
            return real_open(file, *a, **k)

        def counting_image_open(fp, *a, **k):
            self._note(self.images, fp)
            return real_image_open(fp, *a, **k)

        monkeypatch.setattr(io, "open", counting_open)
        monkeypatch.setattr(builtins, "open", counting_open)
        monkeypatch.setattr(PIL.Image, "open", counting_image_open)

    def _note(self, counter: Counter, file) -> None:
        if isinstance(file, (str, Path)) or hasattr(file, "__fspath__"):
            path = str(Path(file).resolve()) if not isinstance(file, int) else ""
            if path.startswith(self.root + "/"):
                counter[path[len(self.root) + 1:]] += 1


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A tiny dataset and two fitted baselines (mean_face, real_faces): K = 2 checkpoints."""
    from w2p_eval.train.baselines import train

    root = tmp_path_factory.mktemp("once")
    data = make_tiny_dataset(root / "data", n_identities=4)
    for model in ("mean_face", "real_faces"):
        train({"model": model, "seed": 0, "image_size": 64, "audio_seconds": 1.0, "protocol": "seen"}, data,
              root / model)
    return root, data


def _evaluate(root: Path, data: Path, runs: list[str], *extra) -> list:
    return ["evaluate", *[root / r for r in runs], "--data", data, "--store", root / "r.sqlite", "--metrics",
            ALL_SUITES, "--cache-dir", root / "cache", *extra]


def test_one_evaluate_reads_the_dataset_once_and_the_next_decodes_no_training_image(two_runs, monkeypatch, capsys):
    root, data = two_runs
    manifest = pd.read_csv(data / "manifest.csv", dtype=str, keep_default_na=False)
    train_images = set(manifest.loc[manifest["split_seen"] == "train", "image_path"])
    test_images = set(manifest.loc[manifest["split_seen"] == "test", "image_path"])

    reads = Reads(monkeypatch, data)
    code, out, err = run_cli(_evaluate(root, data, ["mean_face", "real_faces"]), capsys)
    assert code == 0, err
    assert "evaluated" in out or "rows" in out
    # K = 2 checkpoints x 6 suites: manifest.csv opened once (parsed and hashed from the same bytes), dataset.json once
    assert reads.files["manifest.csv"] == 1, reads.files
    assert reads.files["dataset.json"] == 1, reads.files
    assert train_images & set(reads.images), "the cold run trains the judge on the training faces"

    # a new source on the unchanged dataset (judge and real-face caches present): no training image is opened,
    # neither to check it nor to read it
    shutil.copytree(root / "mean_face", root / "mean_face_again")
    warm = Reads(monkeypatch, data)
    code, out, err = run_cli(_evaluate(root, data, ["mean_face_again"]), capsys)
    assert code == 0, err
    assert not train_images & set(warm.images), sorted(train_images & set(warm.images))
    assert set(warm.images) <= test_images
    assert warm.files["manifest.csv"] == 1 and warm.files["dataset.json"] == 1


def test_the_validation_record_is_not_trusted_for_a_changed_file(tmp_path, capsys):
    """A file checked by one command and then replaced is checked again by the next (size, mtime, inode)."""
    from w2p_eval.data.folder import DataFolder

    data = make_tiny_dataset(tmp_path / "data")
    cache = tmp_path / "cache"
    first = DataFolder(data, cache)
    test_rows = first.split("test")
    assert first.record_path().is_file()
    victim = data / test_rows["image_path"].iloc[0]
    size = victim.stat().st_size
    victim.unlink()
    victim.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * (size - 8))  # same size, not an image
    again = DataFolder(data, cache)
    kept = again.split("test")
    assert len(kept) == len(test_rows) - 1
    assert any("image unreadable: 1" in line for line in again.report.lines())


def test_an_unchanged_dataset_is_checked_from_the_record(tmp_path, monkeypatch):
    from w2p_eval.data.folder import DataFolder

    data = make_tiny_dataset(tmp_path / "data")
    DataFolder(data, tmp_path / "cache").split("train")
    reads = Reads(monkeypatch, data)
    rows = DataFolder(data, tmp_path / "cache").split("train")
    assert len(rows) and not reads.images  # every training face's verdict came from the record


def test_a_stale_or_forged_validation_record_entry_is_checked_again(tmp_path, capsys):
    """Issue 31: an image edited in place with its size and mtime set back (`touch -r`), and record entries of the
    wrong type, are re-validated: the bad pair is skipped and counted, the command goes on (exit 0)."""
    import json
    import os

    from w2p_eval.data.folder import DataFolder

    data = make_tiny_dataset(tmp_path / "data")
    cache = tmp_path / "cache"
    first = DataFolder(data, cache)
    rows = first.split("test")
    record = first.record_path()
    victim = data / rows["image_path"].iloc[0]
    st = victim.stat()
    with open(victim, "r+b") as fh:  # in place: same inode and size
        fh.seek(8)
        fh.write(b"\0" * (st.st_size - 8))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime set back: the (size, mtime, inode) stamp holds
    rec = json.loads(record.read_text())
    audio_keys = [k for k in rec["files"] if k.startswith("audio:")]
    rec["files"][audio_keys[0]][3] = "forged"  # wrong type: a traceback before
    rec["files"][audio_keys[1]][3] = float("nan")
    record.write_text(json.dumps(rec))
    os.utime(record, ns=(st.st_atime_ns, st.st_mtime_ns))  # older than the victim's change (ctime)
    again = DataFolder(data, cache)
    kept = again.split("test")
    assert len(kept) == len(rows) - 1 and rows["pair_id"].iloc[0] not in set(kept["pair_id"])
    assert any("image unreadable: 1" in line for line in again.report.lines())
    code, _, err = run_cli(["landmarks", "--real", "--data", str(data), "--store", str(tmp_path / "s.sqlite"),
                            "--cache-dir", str(cache)], capsys)
    assert code == 0 and "Traceback" not in err and "image unreadable: 1" in err, err
