"""Speech-only speaker ID: known answers for the head, the accuracy, the audio path and the weight loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from w2p_eval.data.audio import load_audio, preprocess_wave
from w2p_eval.data.manifest import load_manifest
from w2p_eval.errors import InputError, MissingWeightsError
from w2p_eval.judges import voice as V
from w2p_eval.metrics import speaker as S
from w2p_eval.utils import topk_accuracy


def test_topk_accuracy_known_answer():
    logits = np.array([[3.0, 2.0, 1.0], [0.0, 1.0, 2.0], [1.0, 3.0, 2.0], [2.0, 1.0, 0.0]])
    labels = np.array([0, 0, 2, 1])
    assert topk_accuracy(logits, labels, 1) == 0.25  # only row 0
    assert topk_accuracy(logits, labels, 2) == 0.75  # rows 0, 2, 3
    assert topk_accuracy(logits, labels, 5) == 1.0  # k above the class count = all classes


@pytest.mark.parametrize("n_present", [2, 3])
def test_linear_head_separates_clusters_and_never_predicts_absent_classes(n_present):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(n_present, 8)) * 3
    y = np.repeat(np.arange(n_present), 40)
    x = centres[y] + rng.normal(size=(len(y), 8)) * 0.3
    w, b = V.fit_linear_head(x, y, n_classes=n_present + 1, seed=0)
    assert w.shape == (n_present + 1, 8) and b.shape == (n_present + 1,) and w.dtype == np.float32
    logits = x @ w.T + b
    assert topk_accuracy(logits, y, 1) == 1.0
    assert b[-1] <= -1e3 and (logits.argmax(1) != n_present).all()
    with pytest.raises(InputError, match="at least 2 identities"):
        V.fit_linear_head(x[y == 0], y[y == 0], n_classes=3)


def test_binary_head_matches_sklearn_probabilities():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 4))
    y = (x[:, 0] + 0.5 * rng.normal(size=60) > 0).astype(int)
    w, b = V.fit_linear_head(x, y, n_classes=2, c=1.0)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    ref = LogisticRegression(C=1.0, max_iter=2000).fit((x - mu) / sd, y).predict_proba((x - mu) / sd)
    logits = x @ w.T + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(p / p.sum(1, keepdims=True), ref, atol=1e-4)


def test_undo_pre_emphasis_inverts_the_dataset_preprocessing(tiny_data):
    x = load_audio(tiny_data / "audio" / "id01-000.wav", 0.0, 1.0)
    y = preprocess_wave(x, 16000)
    back = V.undo_pre_emphasis(torch.from_numpy(y)[None, None])[0, 0]
    np.testing.assert_allclose(back, x / np.abs(x).max(), atol=1e-4)


def test_normalize_volume_is_gain_invariant():
    rng = np.random.default_rng(0)
    x = rng.normal(size=16000).astype(np.float32) * 0.1
    a, b = V.normalize_volume(x), V.normalize_volume(7.5 * x)
    np.testing.assert_allclose(a, b, rtol=1e-5)
    assert 20 * np.log10(np.sqrt(np.mean(a.astype(np.float64) ** 2))) == pytest.approx(-30, abs=1e-3)
    assert not V.normalize_volume(np.zeros(100)).any()


def test_generation_path_embedding_equals_raw_clip_embedding(tiny_data):
    enc = V.load_voice_encoder()
    raw = load_audio(tiny_data / "audio" / "id02-003.wav", 0.0, 1.0)
    inverted = V.undo_pre_emphasis(preprocess_wave(raw, 16000)).astype(np.float32)
    a, b = V.embed_waves(enc, [raw, inverted])
    assert a.shape == (256,) and np.linalg.norm(a) == pytest.approx(1, abs=1e-5)
    assert float(a @ b) > 0.9999


def test_voice_encoder_loads_random_weights_and_refuses_missing_or_bad_files(tmp_path):
    torch.manual_seed(0)
    donor = V._voice_encoder_cls()()
    path = tmp_path / "random_voice.pt"
    torch.save({"model_state": donor.state_dict(), "step": 1}, path)
    enc = V.load_voice_encoder(path)
    assert torch.equal(enc.linear.weight, donor.linear.weight) and not enc.training
    mel = torch.rand(2, 101, 40)
    assert enc(mel).shape == (2, 256)
    with pytest.raises(MissingWeightsError, match="expected nope.pt in"):
        V.load_voice_encoder(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"model_state": {"lstm.weight_ih_l0": torch.zeros(3)}}, bad)
    with pytest.raises(InputError, match="expected resemblyzer VoiceEncoder weights"):
        V.load_voice_encoder(bad)


def test_clip_embeddings_are_cached_per_manifest(tiny_data, tmp_path):
    df = load_manifest(tiny_data).iloc[:4]
    first = V.clip_embeddings(tiny_data, df, 1.0, cache_dir=tmp_path)
    files = list((tmp_path / "speaker").glob("*.npz"))
    assert len(files) == 1 and "-1s-resemblyzer-voiceencoder-v1-" in files[0].name

    class Exploding:
        def __call__(self, *a):
            raise AssertionError("encoder used although every clip is cached")

    again = V.clip_embeddings(tiny_data, df.iloc[::-1], 1.0, encoder=Exploding(), cache_dir=tmp_path)
    np.testing.assert_array_equal(again, first[::-1])


def test_clip_embedding_cache_notices_changed_audio_under_an_identical_manifest(tmp_path):
    from tests.helpers import make_tiny_dataset
    from w2p_eval.data.audio import write_wav

    data = make_tiny_dataset(tmp_path / "data")
    df = load_manifest(data).iloc[:2]
    first = V.clip_embeddings(data, df, 1.0, cache_dir=tmp_path / "cache")
    wave = load_audio(data / "audio" / "id02-000.wav")  # another speaker's voice in the first clip's file
    write_wav(data / "audio" / "id00-000.wav", wave)
    again = V.clip_embeddings(data, df, 1.0, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(again[1], first[1])
    assert float(again[0] @ first[0]) < 0.999


def test_missing_resemblyzer_package_is_one_line_with_install_hint(monkeypatch):
    monkeypatch.setattr(V, "default_weights_path", lambda: None)
    with pytest.raises(MissingWeightsError, match=r"expected pretrained.pt in the resemblyzer package .*pip install"):
        V.load_voice_encoder()
