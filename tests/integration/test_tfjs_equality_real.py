"""The torch reader against TensorFlow.js itself on 60 real faces (30 per identity of the WAV2PIX release).

The references are the committed fixtures ``tests/fixtures/tfjs_<model>.npz`` made by
``scripts/make_tfjs_fixture.py`` with ``@tensorflow/tfjs`` 4 (node, CPU backend); the faces are rebuilt from
../shared (their float32 input's sha256 is checked against the fixture's first). When node can load
``@tensorflow/tfjs`` (``NODE_PATH``), one more test runs it live on a few faces.

Worst cases measured (torch CPU vs tfjs CPU, 60 faces): see docs/judges.md / BENCHMARKS.md.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import REPO, shared_path
from tests.tfjs_helpers import MODEL_INPUTS, release_faces
from w2p_eval.errors import MissingWeightsError

pytestmark = [pytest.mark.integration]
FIXTURES = REPO / "tests" / "fixtures"


def model_or_skip(name: str) -> Path:
    from w2p_eval.judges.tfjs import model_path

    try:
        return model_path(name)
    except MissingWeightsError as exc:
        pytest.skip(f"TensorFlow.js model not installed: {exc}")


def fixture_inputs(name: str, check: bool = True):
    """(fixture, uint8 faces, float32 graph input) with the input's sha256 checked against the fixture (unless
    ``check`` is False: the faces only need to be real, not the fixture's exact bytes)."""
    fx = np.load(FIXTURES / f"tfjs_{name}.npz")
    release = shared_path("wav2pix_release")
    size, _, fn = MODEL_INPUTS[name]
    faces = release_faces(release, [str(i) for i in fx["ids"]], size)
    x = np.ascontiguousarray(fn(faces), dtype=np.float32)
    assert not check or hashlib.sha256(x.tobytes()).hexdigest() == str(fx["input_sha256"]), \
        "the rebuilt inputs differ from the fixture's (image decoding/resizing changed?)"
    return fx, faces, x


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_faceres_matches_tfjs_on_60_real_faces():
    from w2p_eval.judges.faceres import AGE, DESCRIPTOR, GENDER, FaceResNet

    model_or_skip("faceres")
    fx, faces, _ = fixture_inputs("faceres")
    assert len(faces) >= 50
    net = FaceResNet("cpu")
    with torch.inference_mode():  # uint8 faces in: the torch preprocessing is under test too
        out = net(faces)
    cos = cosines(out["embedding"].numpy(), fx[f"out:{DESCRIPTOR}"])
    gender_err = np.abs(out["gender"].numpy() - fx[f"out:{GENDER}"][:, 0]).max()
    age_err = np.abs(out["age_probs"].numpy() - fx[f"out:{AGE}"]).max()
    print(f"faceres vs tfjs on {len(faces)} faces: min cosine {cos.min():.7f}, max |gender| {gender_err:.2e}, "
          f"max |age bin| {age_err:.2e}")
    assert cos.min() >= 0.9999
    assert gender_err <= 1e-4 and age_err <= 1e-4


def test_mobilefacenet_matches_tfjs_on_60_real_faces():
    from w2p_eval.judges.mobilefacenet import EMBEDDING, MobileFaceNet

    model_or_skip("mobilefacenet")
    fx, faces, _ = fixture_inputs("mobilefacenet")
    assert len(faces) >= 50
    with torch.inference_mode():  # uint8 faces in: the torch preprocessing is under test too
        out = MobileFaceNet("cpu")(faces)["embedding"].numpy()
    cos = cosines(out, fx[f"out:{EMBEDDING}"])
    print(f"mobilefacenet vs tfjs on {len(faces)} faces: min cosine {cos.min():.7f}, "
          f"max |diff| {np.abs(out - fx[f'out:{EMBEDDING}']).max():.2e}")
    assert cos.min() >= 0.9999


@pytest.mark.parametrize("name", ["faceres", "mobilefacenet", "facemesh", "gear", "age", "gender"])
def test_fused_graph_equals_the_graph_as_written(name):
    """The load-time fusion (tfjs_fuse) changes float32 rounding only: within 1e-5 of the unfused graph (relative to
    the output's scale), descriptors at cosine >= 0.99999, on the 60 real faces of the fixture."""
    from w2p_eval.judges.tfjs import load_graph_model

    path = model_or_skip(name)
    _, _, x = fixture_inputs(name, check=False)
    fused, plain = load_graph_model(path), load_graph_model(path, fuse=False)
    with torch.inference_mode():
        a, b = fused(torch.from_numpy(x)), plain(torch.from_numpy(x))
    for key in plain.outputs:
        got, ref = a[key].numpy().reshape(len(x), -1), b[key].numpy().reshape(len(x), -1)
        scale = max(1.0, float(np.abs(ref).max()))
        err = np.abs(got - ref).max()
        print(f"{name} {key}: fused {fused.fused}; max |fused - unfused| {err:.2e} (scale {scale:g})")
        assert err <= 1e-5 * scale, (key, err)
        if ref.shape[1] > 1:
            assert cosines(got, ref).min() >= 0.99999


@pytest.mark.parametrize("name", ["faceres", "mobilefacenet", "gear"])
def test_packed_filters_equal_the_per_call_reorder_on_real_faces(name, monkeypatch):
    """The CPU path since issue 28 round 4 (filters packed for oneDNN once per input shape) gives the same bits as
    the path before it (the filter reordered on every call), on the 60 real faces, twice in a row."""
    from w2p_eval.judges import tfjs_conv
    from w2p_eval.judges.tfjs import load_graph_model

    if tfjs_conv._REORDER is None:
        pytest.skip("this torch has no oneDNN filter reorder op")
    path = model_or_skip(name)
    _, _, x = fixture_inputs(name, check=False)
    graph = load_graph_model(path)
    with torch.inference_mode():
        packed = [graph(torch.from_numpy(x)) for _ in range(2)]
        monkeypatch.setattr(tfjs_conv, "_REORDER", None)
        per_call = graph(torch.from_numpy(x))
    for key in graph.outputs:
        for out in packed:
            assert torch.equal(out[key], per_call[key]), key


@pytest.mark.parametrize("name", ["facemesh", "gear", "age", "gender"])
def test_attribute_models_match_tfjs_on_60_real_faces(name):
    from w2p_eval.judges.tfjs import load_graph_model

    graph = load_graph_model(model_or_skip(name))
    fx, _, x = fixture_inputs(name)
    with torch.inference_mode():
        out = graph(torch.from_numpy(x))
    for key in graph.outputs:
        ref, got = fx[f"out:{key}"], out[key].numpy()
        scale = max(1.0, float(np.abs(ref).max()))  # SSR-Net's age output is in years (0-100)
        err = np.abs(got - ref).max()
        print(f"{name} {key}: max |torch - tfjs| {err:.2e} (scale {scale:g})")
        assert err <= 1e-4 * scale, (key, err)


def test_live_tfjs_run_matches(tmp_path):
    """node + @tensorflow/tfjs run here, now, on 4 faces (skipped when node cannot load tfjs)."""
    from w2p_eval.judges.faceres import DESCRIPTOR, GENDER
    from w2p_eval.judges.tfjs import load_graph_model

    path = model_or_skip("faceres")
    if shutil.which("node") is None:
        pytest.skip("node not found")
    probe = subprocess.run(["node", "-e", "require('@tensorflow/tfjs')"], capture_output=True, env=os.environ)
    if probe.returncode != 0:
        pytest.skip("node cannot load @tensorflow/tfjs (set NODE_PATH to the node_modules holding it)")
    _, _, x = fixture_inputs("faceres")
    x = x[[0, 1, -2, -1]]
    x.astype("<f4").tofile(tmp_path / "x.f32")
    subprocess.run(["node", str(REPO / "scripts" / "tfjs_reference.js"), str(path), str(tmp_path / "x.f32"),
                    ",".join(map(str, x.shape)), str(tmp_path / "o.json"), f"{DESCRIPTOR},{GENDER}"],
                   check=True, capture_output=True)
    import json

    ref = json.loads((tmp_path / "o.json").read_text())["outputs"]
    with torch.inference_mode():
        out = load_graph_model(path, [DESCRIPTOR, GENDER])(torch.from_numpy(x))
    desc = np.asarray(ref[DESCRIPTOR]["data"], np.float32).reshape(ref[DESCRIPTOR]["shape"])
    assert cosines(out[DESCRIPTOR].numpy(), desc).min() >= 0.9999
    np.testing.assert_allclose(out[GENDER].numpy().ravel(), ref[GENDER]["data"], atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_faceres_on_cuda_matches_tfjs():
    from w2p_eval.judges.faceres import AGE, DESCRIPTOR, GENDER, FaceResNet

    model_or_skip("faceres")
    fx, faces, _ = fixture_inputs("faceres")
    with torch.inference_mode():
        out = {k: v.cpu() for k, v in FaceResNet("cuda")(faces).items()}
    assert cosines(out["embedding"].numpy(), fx[f"out:{DESCRIPTOR}"]).min() >= 0.9999
    assert np.abs(out["gender"].numpy() - fx[f"out:{GENDER}"][:, 0]).max() <= 1e-4
    assert np.abs(out["age_probs"].numpy() - fx[f"out:{AGE}"]).max() <= 1e-4
