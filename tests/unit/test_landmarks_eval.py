"""The landmarks suite through the Evaluation / evaluate_real / evaluate_images and `w2p-eval landmarks` on a small dataset of real
face pictures (crops of scikit-image's astronaut photo), with minimal real FaceGenerators saved as checkpoints."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import face_crop, grey, make_face_dataset
from w2p_eval.api import evaluate_checkpoints
from w2p_eval.metrics import landmarks as M
from w2p_eval.models.base import FaceGenerator
from w2p_eval.registry import Entry

ROW_KEYS = {"data_hash", "run", "model", "checkpoint", "checkpoint_hash", "epoch", "metric", "split", "protocol",
            "seed", "value", "n", "evaluator", "evaluator_version", "config_hash", "extra", "source"}


class EchoFaces(FaceGenerator):
    """Returns the paired real face: generated == real, so NME must be exactly 0."""

    model_name = "echo_test"

    def __init__(self, image_size: int = 64, identities=()):
        super().__init__()
        self.image_size, self.identities, self.audio_seconds = image_size, list(identities), 1.0
        self.gain = torch.nn.Parameter(torch.ones(1))

    def generate(self, batch: dict) -> torch.Tensor:
        return ((batch["image"] + 1) / 2 * self.gain).clamp(0, 1)

    @classmethod
    def from_checkpoint(cls, ckpt: dict, device: str = "cpu") -> "EchoFaces":
        gen = cls(ckpt["image_size"], ckpt["identities"])
        gen.load_state_dict(ckpt["state"]["generator"])
        return gen


class GreyFaces(EchoFaces):
    """A flat grey picture for every audio: no face, so the detection rate must be 0."""

    model_name = "grey_test"

    def generate(self, batch: dict) -> torch.Tensor:
        b = batch["audio"].shape[0]
        return torch.full((b, 3, self.image_size, self.image_size), 0.5) * self.gain


@pytest.fixture(scope="module")
def face_data(tmp_path_factory) -> Path:
    return make_face_dataset(tmp_path_factory.mktemp("faces") / "data")


def save_ckpt(path: Path, model: str, data: Path) -> Path:
    from w2p_eval.data.manifest import identities
    from w2p_eval.models.checkpoint import save_checkpoint

    gen = EchoFaces(64)
    return save_checkpoint(path, model=model, epoch=3, config={"model": model}, identities=identities(data),
                           image_size=64, audio_seconds=1.0, state={"generator": gen.state_dict()})


@pytest.fixture
def registered(monkeypatch):
    from w2p_eval.models import registry

    monkeypatch.setattr(registry, "MODELS", registry.MODELS.plus(
        Entry("echo_test", "tests.unit.test_landmarks_eval:EchoFaces", "test"),
        Entry("grey_test", "tests.unit.test_landmarks_eval:GreyFaces", "test")))


def _landmark_rows(ckpts, data, **kw) -> list[dict]:
    """The landmarks suite alone over checkpoints, through the one scoring loop."""
    return evaluate_checkpoints(ckpts, data, metrics=("landmarks",), **kw)


def test_identical_generated_and_real_faces(face_data, tmp_path, registered):
    ckpt = save_ckpt(tmp_path / "run1" / "checkpoints" / "epoch_0003.pt", "echo_test", face_data)
    rows = _landmark_rows([tmp_path / "run1"], face_data, cache_dir=tmp_path / "cache", overlay_dir=tmp_path / "ov",
                          seed=1)
    by = {r["metric"]: r for r in rows}
    assert set(by) == set(M.METRICS) and all(set(r) == ROW_KEYS for r in rows)
    fake, real, err = by[M.DETECTION_RATE], by[M.DETECTION_RATE_REAL], by[M.NME]
    assert fake["value"] == real["value"] == 1.0 and fake["n"] == real["n"] == 4
    assert err["value"] == 0.0 and err["n"] == 4
    assert fake["run"] == "run1" and fake["epoch"] == 3 and fake["model"] == "echo_test"
    assert fake["evaluator"] == "landmarks/dlib" and fake["evaluator_version"].startswith("dlib ")
    assert fake["checkpoint"] == str(ckpt) and fake["extra"]["ci_low"] < 1.0 == fake["extra"]["ci_high"]
    overlay = Path(fake["extra"]["overlay"])
    assert overlay.is_file() and overlay.stat().st_size > 1000
    cached = list((tmp_path / "cache" / "landmarks").glob("real-*-test-seen-64px-dlib-*.npz"))
    assert len(cached) == 1
    with np.load(cached[0], allow_pickle=False) as z:  # plain arrays, no pickle
        assert z["points"].shape == (4, 68, 2) and z["detected"].all()


def test_no_face_generator_scores_zero(face_data, tmp_path, registered):
    ckpt = save_ckpt(tmp_path / "grey.pt", "grey_test", face_data)
    rows = _landmark_rows([ckpt], face_data, cache_dir=tmp_path / "cache", run_name="grey")
    by = {r["metric"]: r for r in rows}
    assert by[M.DETECTION_RATE]["value"] == 0.0 and by[M.DETECTION_RATE]["extra"]["n_detected"] == 0
    assert by[M.DETECTION_RATE_REAL]["value"] == 1.0
    assert by[M.NME]["n"] == 0 and math.isnan(by[M.NME]["value"])


def test_real_face_cache_is_reused_and_keyed(face_data, tmp_path):
    first = M.evaluate_real(face_data, cache_dir=tmp_path / "c", image_size=64)
    files = list((tmp_path / "c" / "landmarks").glob("*.npz"))
    assert len(files) == 1 and first[0]["value"] == 1.0 and first[0]["n"] == 4
    mtime = files[0].stat().st_mtime_ns
    again = M.evaluate_real(face_data, cache_dir=tmp_path / "c", image_size=64)
    assert again == first and files[0].stat().st_mtime_ns == mtime  # read, not rewritten
    M.evaluate_real(face_data, cache_dir=tmp_path / "c", image_size=96, split="train")
    assert len(list((tmp_path / "c" / "landmarks").glob("*.npz"))) == 2  # size and split are in the key


def test_cli_scores_a_folder_of_images(tmp_path, capsys):
    from w2p_eval.cli import main
    from w2p_eval.data.images import save_png

    folder = tmp_path / "imgs"
    folder.mkdir()
    save_png(folder / "a.png", face_crop(64))
    save_png(folder / "b.png", grey(64))
    (folder / "c.png").write_bytes(b"broken")
    with pytest.raises(SystemExit) as ex:
        main(["landmarks", "--images", str(folder), "--json", "--overlays", str(tmp_path / "ov"),
              "--per-image", str(tmp_path / "per_image.csv")])
    assert ex.value.code == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["metric"] == M.DETECTION_RATE and row["value"] == 0.5 and row["n"] == 2
    assert row["extra"]["skipped"] == 1 and Path(row["extra"]["overlay"]).is_file()
    import pandas as pd

    table = pd.read_csv(tmp_path / "per_image.csv")
    assert list(table["image"]) == ["a.png", "b.png", "c.png"] and list(table["detected"]) == [True, False, False]
    assert table.shape[1] == 8 + 136 and table.loc[0, "x36"] < table.loc[0, "x45"]
    assert table.loc[2, "note"].startswith("unreadable")


def test_cli_real_writes_the_store(face_data, tmp_path, capsys, monkeypatch):
    from w2p_eval.cli import main

    monkeypatch.setenv("W2P_CACHE", str(tmp_path / "cache"))
    store = tmp_path / "results.sqlite"
    with pytest.raises(SystemExit) as ex:
        main(["landmarks", "--real", "--data", str(face_data), "--store", str(store)])
    assert ex.value.code == 0
    out = capsys.readouterr().out
    assert M.DETECTION_RATE_REAL in out and "100.0 %" in out  # the rows style every verb prints
    try:
        from w2p_eval.results import ResultsStore
    except ImportError:
        pytest.skip("w2p_eval.results not available")
    df = ResultsStore(store).query(metric=M.DETECTION_RATE_REAL)
    assert len(df) == 1 and df["value"].iloc[0] == 1.0


@pytest.mark.parametrize("argv, message", [
    ([], "nothing to score"),
    (["--real"], "--data"),
    (["--images", "{tmp}/empty"], "found none"),
    (["--images", "{tmp}/missing"], "missing path"),
    (["--backend", "nope", "--real"], "nope"),
])
def test_cli_bad_input_is_one_line_exit_2(argv, message, tmp_path, capsys):
    from w2p_eval.cli import main

    (tmp_path / "empty").mkdir()
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    with pytest.raises(SystemExit) as ex:
        main(["landmarks", *argv])
    err = capsys.readouterr().err.strip()
    assert ex.value.code == 2 and message in err and "\n" not in err and err.startswith("w2p-eval: error:")


def test_real_faces_match_generate_split_pipeline(face_data, tmp_path, registered):
    """The cache is shared between --real and checkpoint runs, so both must see the same pixels."""
    from w2p_eval.models.generation import generate_split

    ckpt = save_ckpt(tmp_path / "e.pt", "echo_test", face_data)
    gs = generate_split(ckpt, face_data, split="test", protocol="seen", device="cpu")
    ids, faces = M.real_faces(face_data, "test", "seen", 64)
    assert ids == gs.pair_ids
    np.testing.assert_array_equal(faces, gs.real)
