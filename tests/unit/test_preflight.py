"""Issue 31, item 5: everything a run needs is checked before any face is generated (metrics/preflight.py and
the judges' ``require()``): a missing file is exit 2 naming the file, the place looked in and how to get it;
with several judges nothing is computed until all are available."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import mean_face_run, run_cli
from w2p_eval.errors import InputError, MissingWeightsError
from w2p_eval.judges import require_identity_backbone
from w2p_eval.judges import facenet_face, landmarks, vgg_face, voice


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    data, run = mean_face_run(tmp_path_factory.mktemp("preflight"))
    return {"data": data, "ckpt": run / "checkpoints" / "epoch_0000.pt"}


def _files(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*")) if folder.exists() else []


@pytest.mark.parametrize("verb", ["evaluate", "identity", "compare"])
def test_a_missing_second_judge_stops_everything_before_any_face(run, tmp_path, capsys, monkeypatch, verb):
    monkeypatch.delenv(vgg_face.ENV_VAR, raising=False)
    judges = ["--backbone", "dlib_resnet,vgg_face"]
    store, cache = tmp_path / "s.sqlite", tmp_path / "cache"
    argv = {"evaluate": ["evaluate", str(run["ckpt"]), "--data", str(run["data"]), "--metrics", "identity",
                         "--store", str(store), "--cache-dir", str(cache), *judges],
            "identity": ["identity", "--ckpt", str(run["ckpt"]), "--data", str(run["data"]), "--cache-dir",
                         str(cache), *judges],
            "compare": ["compare", str(run["ckpt"]), str(run["ckpt"]), "--name-a", "a", "--name-b", "b", "--data",
                        str(run["data"]), "--metrics", "identity", "--cache-dir", str(cache), *judges]}[verb]
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "VGG-Face weights not found: expected vgg_face_dag.pth" in err and "robots.ox.ac.uk" in err
    assert not store.exists()
    assert not [p for p in _files(cache) if p.parts[0] != "validation"]  # no judge trained, no face cached


def test_each_judges_require_names_the_file_and_passes_once_it_is_there(tmp_path, monkeypatch):
    """Missing: one line (file, place, how to get it); present (randomly initialised weights written to a temp
    folder): the preflight passes without loading anything."""
    monkeypatch.delenv(vgg_face.ENV_VAR, raising=False)
    with pytest.raises(MissingWeightsError, match="vgg_face_dag.pth"):
        require_identity_backbone("vgg_face")
    path = tmp_path / "vgg_face_dag.pth"
    torch.save({"conv1_1.weight": torch.randn(2, 3, 3, 3)}, path)
    require_identity_backbone("vgg_face", weights=str(path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    with pytest.raises(MissingWeightsError, match=f"{facenet_face.WEIGHTS_FILE} in {tmp_path / 'th'}"):
        require_identity_backbone("facenet_vggface2")
    (tmp_path / "th" / "checkpoints").mkdir(parents=True)
    torch.save({"w": torch.randn(2)}, tmp_path / "th" / "checkpoints" / facenet_face.WEIGHTS_FILE)
    require_identity_backbone("facenet_vggface2")
    require_identity_backbone("vgg_scratch")  # trained from scratch: no file
    with pytest.raises(InputError, match="did you mean"):
        require_identity_backbone("vgg_fase")
    with pytest.raises(MissingWeightsError, match=f"pretrained.pt in {tmp_path}"):
        voice.require(tmp_path / "pretrained.pt")
    with pytest.raises(InputError, match="landmark backend"):
        landmarks.require("dlibb")


def test_a_missing_landmark_model_is_found_before_any_face(run, tmp_path, capsys, monkeypatch):
    """FAN's weights are looked for in $TORCH_HOME/hub/checkpoints: an empty TORCH_HOME is one line, no store."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    code, _, err = run_cli(["evaluate", str(run["ckpt"]), "--data", str(run["data"]), "--metrics", "landmarks",
                            "--backend", "fan", "--store", str(tmp_path / "s.sqlite")], capsys)
    assert code == 2 and err.count("\n") == 1 and "weights not found" in err and str(tmp_path / "th") in err, err
    assert not (tmp_path / "s.sqlite").exists()


def test_a_speaker_checkpoint_naming_missing_voice_weights_stops_before_any_face(tiny_data, tmp_path, capsys):
    """The voice encoder a speaker_retrieval checkpoint names (config speaker_weights) is looked for up front."""
    from w2p_eval.models.checkpoint import load_checkpoint, save_checkpoint
    from w2p_eval.train.registry import get_trainer

    config = {"model": "speaker_retrieval", "seed": 0, "image_size": 64, "audio_seconds": 1.0, "protocol": "seen"}
    (path,) = get_trainer("speaker_retrieval")(config, tiny_data, tmp_path / "sr", resume=False, device="cpu")
    ck = load_checkpoint(path)
    missing = tmp_path / "voice" / "encoder.pt"
    config = {**ck["config"], "speaker_weights": str(missing)}
    save_checkpoint(path, model=ck["model"], epoch=ck["epoch"], config=config,
                    identities=ck["identities"], image_size=ck["image_size"], audio_seconds=ck["audio_seconds"],
                    state=ck["state"], extra=ck.get("extra"))
    code, _, err = run_cli(["evaluate", str(path), "--data", str(tiny_data), "--metrics", "identity,speaker",
                            "--store", str(tmp_path / "s.sqlite")], capsys)
    assert code == 2 and err.count("\n") == 1 and f"encoder.pt in {missing.parent}" in err, err
    assert not (tmp_path / "s.sqlite").exists()
