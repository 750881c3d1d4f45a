"""Baselines: known-answer tests on the tiny dataset, through the trainer and generate_split contracts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from w2p_eval.data.dataset import PairDataset
from w2p_eval.data.images import load_image_rgb, resize_rgb
from w2p_eval.data.manifest import split_frame, load_manifest
from w2p_eval.errors import InputError
from w2p_eval.models.checkpoint import load_checkpoint
from w2p_eval.models.generation import generate_split
from w2p_eval.models.registry import load_generator
from w2p_eval.train.registry import get_trainer


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("W2P_CACHE", str(tmp_path_factory.getbasetemp() / "w2p_cache"))


def fit(model: str, data: Path, out: Path, **extra) -> Path:
    config = {"model": model, "seed": 0, "image_size": 64, "audio_seconds": 1.0, "protocol": "seen", **extra}
    paths = get_trainer(model)(config, data, out, resume=False, device="cpu")
    assert len(paths) == 1 and paths[0].is_file()
    return paths[0]


def batch_of(data: Path, split: str = "test", size: int = 64) -> dict:
    ds = PairDataset(data, split=split, image_size=size, cache=False)
    return next(iter(torch.utils.data.DataLoader(ds, batch_size=len(ds))))


def train_faces(data: Path, size: int) -> tuple[np.ndarray, list[str]]:
    """Every training pair's face resized to ``size`` (uint8 [N, S, S, 3]) and its identity."""
    df = split_frame(load_manifest(data), "train", "seen")
    faces = np.stack([resize_rgb(load_image_rgb(data / p), size) for p in df["image_path"]])
    return faces, list(df["identity"])


def test_real_faces_returns_exactly_the_paired_images(tiny_data, tmp_path):
    ckpt = fit("real_faces", tiny_data, tmp_path / "real")
    batch = batch_of(tiny_data)
    gen = load_generator(ckpt)
    assert torch.equal(gen.generate(batch), (batch["image"] + 1) / 2)
    out = generate_split(ckpt, tiny_data)
    assert np.array_equal(out.fake, out.real) and out.model == "real_faces" and out.epoch == 0


def test_mean_face_is_the_training_mean_and_identical_for_every_input(tiny_data, tmp_path):
    ckpt = fit("mean_face", tiny_data, tmp_path / "mean")
    out = generate_split(ckpt, tiny_data)
    assert out.fake.shape == (6, 64, 64, 3)
    assert (out.fake == out.fake[0]).all()
    faces, _ = train_faces(tiny_data, 64)
    expected = np.round(faces.astype(np.float64).mean(0)).astype(np.uint8)
    assert np.abs(out.fake[0].astype(int) - expected.astype(int)).max() <= 1
    gen = load_generator(ckpt)
    batch = batch_of(tiny_data)
    noise = dict(batch, audio=torch.randn_like(batch["audio"]), image=torch.zeros_like(batch["image"]))
    assert torch.equal(gen.generate(batch), gen.generate(noise))


def test_random_real_reproducible_for_a_seed_varies_across_seeds(tiny_data, tmp_path):
    a = generate_split(fit("random_real", tiny_data, tmp_path / "a"), tiny_data, split="train")
    b = generate_split(fit("random_real", tiny_data, tmp_path / "b"), tiny_data, split="train")
    c = generate_split(fit("random_real", tiny_data, tmp_path / "c", seed=7), tiny_data, split="train")
    assert np.array_equal(a.fake, b.fake)
    assert not np.array_equal(a.fake, c.fake)
    faces, _ = train_faces(tiny_data, 64)
    for img in a.fake:  # every output is a real training face, untouched
        assert any(np.array_equal(img, f) for f in faces)


def test_random_real_choice_is_uniform_over_identities_and_batch_independent(tiny_data, tmp_path):
    gen = load_generator(fit("random_real", tiny_data, tmp_path / "rr"))
    ids = [f"pair-{i}" for i in range(600)]
    rows = gen.choose(ids)
    counts = np.bincount(gen.pool_labels[rows].numpy(), minlength=3)
    assert counts.min() > 150  # 200 expected per identity
    assert gen.choose(ids[::-1]) == rows[::-1]


def test_speaker_retrieval_accuracy_well_above_chance_and_returns_medoids(tiny_data, tmp_path):
    ckpt_path = fit("speaker_retrieval", tiny_data, tmp_path / "sr")
    ckpt = load_checkpoint(ckpt_path)
    assert ckpt["extra"]["train_speaker_top1"] >= 0.9 > 1 / 3 + 0.3
    gen = load_generator(ckpt)
    batch = batch_of(tiny_data, split="train")
    pred = gen.logits(batch).argmax(1)
    assert (pred == batch["label"]).float().mean() >= 0.9
    out = generate_split(ckpt_path, tiny_data)
    medoids = gen.medoids.numpy()
    test_pred = gen.logits(batch_of(tiny_data)).argmax(1).numpy()
    assert np.array_equal(out.fake, medoids[test_pred])
    faces, names = train_faces(tiny_data, 64)
    for k, name in enumerate(gen.identities):  # each medoid is one of that identity's training faces
        assert any(np.array_equal(medoids[k], f) for f, n in zip(faces, names) if n == name)


def test_medoid_is_the_central_face():
    from w2p_eval.train.baselines import medoid_index

    faces = np.zeros((5, 2, 2, 3), np.uint8)
    faces[:, 0, 0, 0] = [0, 10, 20, 30, 200]  # on a line: the median point (20) is the medoid
    assert medoid_index(faces) == 2


def test_speaker_id_rows_on_test_split(tiny_data, tmp_path):
    from w2p_eval.metrics.speaker import evaluate_speaker_id

    ckpt_path = fit("speaker_retrieval", tiny_data, tmp_path / "sr")
    rows = evaluate_speaker_id(ckpt_path, tiny_data, split="test", protocol="seen", seed=3)
    assert [r["metric"] for r in rows] == ["speaker_id_top1", "speaker_id_top5"]
    keys = {"data_hash", "run", "model", "checkpoint", "checkpoint_hash", "epoch", "metric", "split", "protocol",
            "seed", "value", "n", "evaluator", "evaluator_version", "config_hash", "extra", "source"}
    for r in rows:
        assert set(r) == keys and r["n"] == 6 and r["seed"] == 3 and r["run"] == "sr"
        assert r["evaluator"] == "speaker/resemblyzer+linear"
    assert rows[0]["value"] >= 0.8 and rows[1]["value"] == 1.0  # top-5 of 3 identities is always right
    assert rows[0]["extra"]["chance"] == pytest.approx(1 / 3) and rows[1]["extra"]["chance"] == 1.0
    assert set(rows[0]["extra"]["per_identity_top1"]) == {"id00", "id01", "id02"}
    for r in rows:  # a seeded interval around every accuracy, grouped by face like every other suite
        ci = r["extra"]["ci"]
        assert ci["low"] <= r["value"] <= ci["high"] and ci["n_items"] == 6 and ci["n_groups"] <= 6
    assert rows[1]["extra"]["ci"]["high"] == 1.0  # always right: Wilson's interval on the groups
    again = evaluate_speaker_id(ckpt_path, tiny_data, split="test", protocol="seen", seed=3)
    assert [r["extra"]["ci"] for r in again] == [r["extra"]["ci"] for r in rows]
    with pytest.raises(InputError, match="fitted on the seen protocol"):
        evaluate_speaker_id(ckpt_path, tiny_data, protocol="unseen")
    with pytest.raises(InputError, match="expected a speaker_retrieval checkpoint"):
        evaluate_speaker_id(fit("real_faces", tiny_data, tmp_path / "real"), tiny_data)


def test_resume_keeps_the_fitted_checkpoint_and_bad_model_is_refused(tiny_data, tmp_path):
    from w2p_eval.train.baselines import train

    path = fit("mean_face", tiny_data, tmp_path / "m")
    before = path.stat().st_mtime_ns
    config = {"model": "mean_face", "seed": 0, "image_size": 64, "audio_seconds": 1.0, "protocol": "seen"}
    assert train(config, tiny_data, tmp_path / "m", resume=True, device="cpu") == [path]
    assert path.stat().st_mtime_ns == before
    assert (tmp_path / "m" / "config.yaml").is_file() and (tmp_path / "m" / "losses.jsonl").is_file()
    with pytest.raises(InputError, match="expected model one of"):
        train({**config, "model": "wav2pix"}, tiny_data, tmp_path / "x", resume=False, device="cpu")


def test_unreadable_training_face_is_skipped_and_counted(tmp_path):
    from tests.helpers import make_tiny_dataset

    data = make_tiny_dataset(tmp_path / "data")
    (data / "faces" / "id00-000.png").write_bytes(b"not an image")
    ckpt = load_checkpoint(fit("mean_face", data, tmp_path / "m"))
    assert ckpt["extra"]["n_train_faces"] == 11  # 12 training pairs, one unreadable face
    # the dataset layer drops it before the fit (and reports it at the end of the command)
    from w2p_eval.data.manifest import skipped_report

    assert any(str(data.resolve()) in line and "image unreadable: 1" in line for line in skipped_report())


def test_speaker_retrieval_unseen_protocol_never_predicts_unseen_speakers(tiny_data, tmp_path):
    from w2p_eval.metrics.speaker import evaluate_speaker_id

    ckpt_path = fit("speaker_retrieval", tiny_data, tmp_path / "u", protocol="unseen")
    gen = load_generator(ckpt_path)
    assert not gen.medoids[2].any() and gen.bias[2] <= -1e3  # id02 is the unseen-test identity
    out = generate_split(ckpt_path, tiny_data, protocol="unseen")
    assert len(out.pair_ids) == 6 and not (out.fake == 0).all(axis=(1, 2, 3)).any()
    rows = evaluate_speaker_id(ckpt_path, tiny_data, protocol="unseen")
    assert rows[0]["value"] == 0.0 and rows[0]["extra"]["n_identities_train"] == 2

