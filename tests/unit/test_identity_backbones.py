"""Pretrained identity backbones: the weight-loading paths, proven with randomly initialised weights
written to a temp dir (nothing is downloaded), and the one-line errors when weights are missing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from w2p_eval.errors import InputError, MissingWeightsError


def test_facenet_missing_weights_is_one_line(tmp_path, monkeypatch):
    from w2p_eval.judges import load_identity_backbone

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    with pytest.raises(MissingWeightsError) as exc:
        load_identity_backbone("facenet_vggface2")
    msg = str(exc.value)
    assert "\n" not in msg and "20180402-114759-vggface2.pt" in msg and str(tmp_path / "th" / "checkpoints") in msg
    assert "github.com/timesler/facenet-pytorch" in msg


def test_facenet_loads_random_weights_and_trains(tiny_data, tmp_path, monkeypatch):
    from facenet_pytorch import InceptionResnetV1

    from w2p_eval.judges.identity import identity_classifier

    torch.manual_seed(0)
    net = InceptionResnetV1(pretrained=None, classify=True, num_classes=8631)  # the released file's layout
    (tmp_path / "th" / "checkpoints").mkdir(parents=True)
    torch.save(net.state_dict(), tmp_path / "th" / "checkpoints" / "20180402-114759-vggface2.pt")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    judge = identity_classifier(tiny_data, "facenet_vggface2", 64, 0, "seen", tmp_path / "cache")
    assert torch.equal(judge.backbone.net.conv2d_1a.conv.weight.cpu(), net.conv2d_1a.conv.weight)
    emb, logits = judge.score(np.full((2, 64, 64, 3), 128, np.uint8))
    assert emb.shape == (2, 512) and logits.shape == (2, 3)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    assert judge.info["n_train"] == 6 and judge.evaluator == "identity/facenet_vggface2"
    # a file that is not an InceptionResnetV1 state_dict -> one-line InputError
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "th" / "checkpoints" / "20180402-114759-vggface2.pt")
    from w2p_eval.judges import load_identity_backbone

    with pytest.raises(InputError, match="expected InceptionResnetV1 weights"):
        load_identity_backbone("facenet_vggface2")


def test_vgg_face_missing_and_wrong_weights(tmp_path, monkeypatch):
    from w2p_eval.judges import load_identity_backbone

    monkeypatch.delenv("W2P_VGG_FACE_WEIGHTS", raising=False)
    with pytest.raises(MissingWeightsError, match=r"vgg_face_dag\.pth.*W2P_VGG_FACE_WEIGHTS"):
        load_identity_backbone("vgg_face")
    monkeypatch.setenv("W2P_VGG_FACE_WEIGHTS", str(tmp_path / "absent.pth"))
    with pytest.raises(MissingWeightsError, match="absent.pth"):
        load_identity_backbone("vgg_face")
    bad = tmp_path / "bad.pth"
    torch.save({"conv1_1.weight": torch.zeros(64, 3, 3, 3)}, bad)
    with pytest.raises(InputError, match=r"expected vgg_face_dag\.pth layout .*conv1_1\.bias"):
        load_identity_backbone("vgg_face", weights=str(bad))
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="unreadable"):
        load_identity_backbone("vgg_face", weights=str(tmp_path / "junk.pth"))


def test_vgg_face_layout_matches_the_dag_conversion():
    from w2p_eval.judges.vgg_face import VggFaceNet

    net = VggFaceNet()
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert len(shapes) == 32  # 13 conv + 3 fc, weight and bias each
    assert shapes["conv1_1.weight"] == (64, 3, 3, 3) and shapes["conv5_3.bias"] == (512,)
    assert shapes["fc6.weight"] == (4096, 25088) and shapes["fc7.weight"] == (4096, 4096)
    assert shapes["fc8.weight"] == (2622, 4096)
    x = torch.zeros(1, 3, 224, 224)
    assert net.features(x).shape == (1, 512, 7, 7)


@pytest.mark.slow
def test_vgg_face_loads_random_weights_and_trains(tiny_data, tmp_path, monkeypatch):
    """Full-size random VGG-Face weights (553 MB) in a temp file, loaded through W2P_VGG_FACE_WEIGHTS."""
    from w2p_eval.judges.identity import identity_classifier
    from w2p_eval.judges.vgg_face import VggFaceNet

    torch.manual_seed(0)
    state = VggFaceNet().state_dict()
    path = tmp_path / "vgg_face_dag.pth"
    torch.save(state, path)
    monkeypatch.setenv("W2P_VGG_FACE_WEIGHTS", str(path))
    judge = identity_classifier(tiny_data, "vgg_face", 64, 0, "seen", tmp_path / "cache")
    assert torch.equal(judge.backbone.net.fc6.weight.cpu(), state["fc6.weight"])
    emb, logits = judge.score(np.full((2, 64, 64, 3), 100, np.uint8))
    assert emb.shape == (2, 4096) and logits.shape == (2, 3)
    del state
    path.unlink()
