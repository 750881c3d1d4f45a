"""The inception and vggface_score suites: their code paths with randomly initialised weights of the right shape
written to a temp dir, the one-line skip without a file, refused files, and the score formula's known answers."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from tests.helpers import six_identities
from w2p_eval.errors import InputError, MissingWeightsError
from w2p_eval.judges import standard_nets as N
from w2p_eval.evaluation import Evaluation
from w2p_eval.metrics.registry import get_suite
from w2p_eval.metrics.standard_nets import split_score
from w2p_eval.models.sources import real_faces_at, split_rows
from w2p_eval.models.sources_python import ArrayItem


def random_inception_state(seed: int = 0) -> dict:
    """torch-fidelity's Inception-v3 parameters, randomly initialised (its constructor always loads weights, so
    the modules it built before the failing load of an empty file are kept)."""
    torch.manual_seed(seed)
    net = FeatureExtractorInceptionV3.__new__(FeatureExtractorInceptionV3)
    empty = Path(torch.__file__).parent / "does-not-exist.pth"
    try:
        FeatureExtractorInceptionV3.__init__(net, "inception-v3-compat", ["2048"], feature_extractor_weights_path=empty)
    except FileNotFoundError:
        pass
    return {k: v.clone() for k, v in net.state_dict().items()}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("weights")
    torch.save(random_inception_state(), root / "inception.pth")
    torch.manual_seed(0)
    vgg = torchvision.models.resnet50(weights=None, num_classes=8631)
    torch.save(vgg.state_dict(), root / "resnet50_ft.pt")
    return {"inception": root / "inception.pth", "vggface2": root / "resnet50_ft.pt", "root": root}


@pytest.fixture(scope="module")
def six(tmp_path_factory) -> Path:
    return six_identities(tmp_path_factory.mktemp("six") / "data")


def _faces(six):
    """The test pairs of two identities (8 pairs, 4 distinct faces: the networks are slow on CPU)."""
    df = split_rows(six, "test", "seen")
    df = df[df["identity"].isin(["id00", "id01"])]
    real = real_faces_at(six, list(df["image_path"]), 32)
    return list(df["pair_id"]), real


def _score(six, faces: dict, weight_files: dict, suites=("inception", "vggface_score")) -> dict:
    pairs, _ = _faces(six)
    ev = Evaluation.build(six, suites=suites, weight_files={k: str(v) for k, v in weight_files.items()},
                          batch_size=16, sources=[ArrayItem(f, pairs, run=k) for k, f in faces.items()])
    rows = [s.row for s in ev.score_all()]
    return {(r["run"], r["metric"]): r for r in rows}


def test_split_score_known_answers_and_torch_fidelity():
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = np.random.default_rng(0).normal(size=(40, 12)) * 3
    theirs = isc_features_to_metric(torch.from_numpy(logits), splits=5, shuffle=True, rng_seed=7)
    assert split_score(logits, 5, 7) == pytest.approx((theirs["inception_score_mean"], theirs["inception_score_std"]))
    assert np.isfinite(split_score(np.array([[1e4, 0.0], [1e4, 0.0]]), 1, 0)[0])  # saturated: a number, not NaN
    assert split_score(np.zeros((20, 7)), 5, 0) == pytest.approx((1.0, 0.0))  # every face the same class mix
    assert split_score(np.tile(100 * np.eye(10), (1, 1)), 1, 0)[0] == pytest.approx(10.0, rel=1e-6)
    assert split_score(np.tile(100 * np.eye(10), (2, 1)), 2, 3)[0] <= 10.0 + 1e-6


@pytest.mark.slow  # two full-size networks on CPU (about 30 s alone, minutes on a loaded machine)
def test_suites_run_with_random_weights_of_the_right_shape(six, weights):
    _, real = _faces(six)
    constant = np.repeat(real[:1], len(real), axis=0)
    rows = _score(six, {"real": real, "constant": constant}, {k: weights[k] for k in ("inception", "vggface2")})
    real_fid, const_fid = rows[("real", "inception_fid")], rows[("constant", "inception_fid")]
    assert real_fid["value"] == pytest.approx(0.0, abs=1e-3 * max(const_fid["value"], 1e-9))
    assert const_fid["value"] > 0 and real_fid["extra"]["dim"] == 2048
    assert rows[("constant", "inception_is")]["value"] == pytest.approx(1.0, abs=1e-6)  # one face: no variety
    is_real = rows[("real", "inception_is")]
    assert is_real["value"] >= 1.0 and is_real["extra"]["ceiling"]["value"] == pytest.approx(is_real["value"])
    vgg = rows[("real", "vggface_score")]
    assert vgg["extra"]["classes"] == 8631 and vgg["extra"]["splits"] == 5 and vgg["value"] >= 1.0 - 1e-9
    assert rows[("constant", "vggface_score")]["value"] == pytest.approx(1.0, abs=1e-6)
    assert real_fid["evaluator"] == f"inception/{N.file_digest(weights['inception'])}"


def test_without_files_rows_are_skipped_with_one_line(six, monkeypatch, caplog):
    monkeypatch.delenv("W2P_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.delenv("W2P_VGGFACE2_WEIGHTS", raising=False)
    _, real = _faces(six)
    rows = _score(six, {"real": real}, {})
    for metric, name in (("inception_fid", "weights-inception-2015-12-05"), ("vggface_score", "resnet50_ft.pt")):
        row = rows[("real", metric)]
        assert row["n"] == 0 and np.isnan(row["value"]) and name in row["extra"]["skipped"]
        assert row["evaluator"].endswith("/none")
    assert "--inception-weights" in rows[("real", "inception_is")]["extra"]["skipped"]
    assert any("rows skipped" in r.getMessage() and "--vggface2-weights" in r.getMessage() for r in caplog.records)


def test_refused_files(six, weights, tmp_path):
    opts = Evaluation.build(six, suites=("inception",), weight_files={"inception": str(tmp_path / "nope.pth")}).context
    with pytest.raises(MissingWeightsError, match="nope.pth") as exc:
        get_suite("inception").check(opts)
    assert "\n" not in str(exc.value) and "torch-fidelity" in str(exc.value)
    foreign = tmp_path / "foreign.pt"
    torch.save({"fc.weight": torch.zeros(3, 3)}, foreign)
    with pytest.raises(InputError, match="expected a torchvision resnet50 state_dict with 8631 classes"):
        N.load_vggface2(foreign)
    with pytest.raises(InputError, match="Inception-v3 state_dict"):
        N.load_inception(foreign)
    unsafe = tmp_path / "unsafe.pth"
    unsafe.write_bytes(pickle.dumps(Path("x")))  # a pickle that is not plain tensors: never unpickled
    for load in (N.load_inception, N.load_vggface2):
        with pytest.raises(InputError, match="expected"):
            load(unsafe)


def test_caffe_strides_keep_the_layout():
    net = N._caffe_strides(torchvision.models.resnet50(weights=None, num_classes=8631))
    assert net.layer2[0].conv1.stride == (2, 2) and net.layer2[0].conv2.stride == (1, 1)
    assert set(net.state_dict()) == set(torchvision.models.resnet50(weights=None, num_classes=8631).state_dict())
    out = net(torch.zeros(1, 3, 224, 224))
    assert out.shape == (1, 8631)


def test_convert_vggface2_pickle_reads_arrays_only(tmp_path):
    torch.manual_seed(0)
    state = torchvision.models.resnet50(weights=None, num_classes=8631).state_dict()
    pkl = tmp_path / "resnet50_ft_weight.pkl"
    pkl.write_bytes(pickle.dumps({k: v.numpy() for k, v in state.items() if "num_batches" not in k}))
    out = N.convert_vggface2_pickle(pkl, tmp_path / "resnet50_ft.pt")
    net = N.load_vggface2(out)
    assert torch.equal(net.fc.weight, state["fc.weight"])
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"fc.weight": Path("x")}))
    with pytest.raises(InputError, match="refused pathlib"):
        N.convert_vggface2_pickle(evil, tmp_path / "never.pt")
    small = tmp_path / "small.pkl"
    small.write_bytes(pickle.dumps({"fc.weight": np.zeros((3, 3), np.float32)}))
    with pytest.raises(InputError, match="8631 classes"):
        N.convert_vggface2_pickle(small, tmp_path / "never.pt")
    assert not (tmp_path / "never.pt").exists()


def test_evaluate_cli_weight_options(tmp_path, monkeypatch):
    from tests.helpers import mean_face_run, run_cli

    monkeypatch.delenv("W2P_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.delenv("W2P_VGGFACE2_WEIGHTS", raising=False)
    data, run = mean_face_run(tmp_path)
    rc, out, err = run_cli(["evaluate", run, "--data", data, "--metrics", "inception",
                            "--inception-weights", tmp_path / "missing.pth", "--cache-dir", tmp_path / "c"])
    assert rc == 2 and err.count("\n") == 1 and "missing.pth" in err and "torch-fidelity" in err
    assert not (data / "results.sqlite").exists()
    rc, out, err = run_cli(["evaluate", run, "--data", data, "--metrics", "inception,vggface_score",
                            "--cache-dir", tmp_path / "c"])
    assert rc == 0, err
    assert "--inception-weights" in err and "--vggface2-weights" in err  # one line each: which file, from where
    rc, out, _ = run_cli(["results", "--data", data, "--format", "json"])
    assert rc == 0 and "inception/none" in out
