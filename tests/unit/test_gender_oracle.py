"""gender_oracle: the mean training face of the speaker's gender, the true gender given."""

from __future__ import annotations

import json

import numpy as np
import torch

from tests.helpers import REPO, make_tiny_dataset, run_cli
from w2p_eval.data.dataset import PairDataset
from w2p_eval.data.images import load_image_rgb, resize_rgb
from w2p_eval.data.manifest import load_manifest, split_frame
from w2p_eval.models.checkpoint import load_checkpoint
from w2p_eval.models.registry import load_generator

ORACLE = str(REPO / "baselines" / "gender_oracle.yaml")
GENDERS = {"id00": "f", "id01": "m", "id02": "m"}


def label(data, genders=GENDERS, source="test labels"):
    """Write gender labels into DATA/dataset.json (as `prepare --identity-meta` does)."""
    info = json.loads((data / "dataset.json").read_text())
    info["identity_meta"] = {"attributes": {"gender": {"source": source}},
                             "identities": {n: {"gender": g} for n, g in genders.items()}}
    (data / "dataset.json").write_text(json.dumps(info))
    return data


def test_gender_oracle_draws_the_mean_training_face_of_the_true_gender(tmp_path):
    data = label(make_tiny_dataset(tmp_path / "data"))
    code, _, err = run_cli(["train", ORACLE, "--data", data, "--out", tmp_path / "run"])
    assert code == 0, err
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "epoch_0000.pt")
    gen = load_generator(ckpt)
    train = split_frame(load_manifest(data), "train", "seen")
    expect = {}
    for g in ("f", "m"):
        rows = train[train["identity"].map(GENDERS) == g]
        faces = np.stack([resize_rgb(load_image_rgb(data / p), 64) for p in rows["image_path"]]).astype(np.float64)
        expect[g] = faces.mean(0) / 255.0
    ds = PairDataset(data, split="test", protocol="seen", image_size=64)
    batch = {k: (torch.stack([ds[i][k] for i in range(len(ds))]) if k in ("audio", "image", "label")
                 else [ds[i][k] for i in range(len(ds))]) for k in ("audio", "image", "label", "identity")}
    out = gen.generate(batch).numpy().transpose(0, 2, 3, 1)
    for face, ident in zip(out, batch["identity"]):
        assert np.abs(face - expect[GENDERS[ident]]).max() < 1e-5
    losses = json.loads((tmp_path / "run" / "losses.jsonl").read_text().splitlines()[-1])
    assert losses["gender_source"] == "metadata" and losses["identity_genders"] == GENDERS


def test_gender_oracle_without_labels_or_judge_is_one_line(tmp_path):
    data = make_tiny_dataset(tmp_path / "data")
    code, _, err = run_cli(["train", ORACLE, "--data", data, "--out", tmp_path / "run",
                            "--set", "gender_judge=none"])
    assert code == 2 and err.count("\n") == 1 and "expected gender labels for every identity" in err, err
    assert not (tmp_path / "run" / "checkpoints").exists()
