"""Identity evaluation: known answers on tiny real files, caching, determinism, CLI.

The generators here are minimal real FaceGenerator subclasses saved through save_checkpoint and
registered in models.registry.MODELS for the test (so the tests do not depend on other areas' models).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from w2p_eval.api import evaluate_checkpoints
from w2p_eval.models.base import FaceGenerator
from w2p_eval.registry import Entry
from w2p_eval.models.checkpoint import save_checkpoint

TINY_IDS = ["id00", "id01", "id02"]


class PassThrough(FaceGenerator):
    """Returns the paired real face: generated set == real set."""

    model_name = "test_passthrough"

    def generate(self, batch):
        return (batch["image"] + 1) / 2

    @classmethod
    def from_checkpoint(cls, ckpt, device="cpu"):
        g = cls()
        g.image_size, g.identities = int(ckpt["image_size"]), list(ckpt["identities"])
        return g


class ConstantFace(FaceGenerator):
    """Draws the same face (a stored [3, S, S] image in [0, 1]) for every input: a mean-face generator."""

    model_name = "test_constant"

    def __init__(self, face: torch.Tensor):
        super().__init__()
        self.register_buffer("face", face)

    def generate(self, batch):
        return self.face.unsqueeze(0).expand(batch["audio"].shape[0], -1, -1, -1)

    @classmethod
    def from_checkpoint(cls, ckpt, device="cpu"):
        g = cls(ckpt["state"]["face"]["face"])
        g.image_size, g.identities = int(ckpt["image_size"]), list(ckpt["identities"])
        return g


@pytest.fixture
def models(monkeypatch):
    from w2p_eval.models import registry

    monkeypatch.setattr(registry, "MODELS", registry.MODELS.plus(
        Entry("test_passthrough", f"{__name__}:PassThrough", "test"), Entry("test_constant", f"{__name__}:ConstantFace", "test")))


def write_ckpts(tmp_path, data_dir, image_size=64):
    """A pass-through checkpoint and a constant mean-face checkpoint (mean of the training faces)."""
    from w2p_eval.data.dataset import PairDataset

    ds = PairDataset(data_dir, "train", image_size=image_size, cache=False)
    mean = torch.stack([ds[i]["image"] for i in range(len(ds))]).mean(0).add(1).div(2)
    common = dict(config={}, identities=ds.identities, image_size=image_size, audio_seconds=1.0)
    real = save_checkpoint(tmp_path / "pass" / "checkpoints" / "epoch_0001.pt", model="test_passthrough", epoch=1,
                           state={}, **common)
    const = save_checkpoint(tmp_path / "const.pt", model="test_constant", epoch=3, state={"face": {"face": mean}},
                            **common)
    return real, const


def by_metric(rows, ckpt):
    return {r["metric"]: r for r in rows if r["checkpoint"] == str(ckpt)}


def test_unknown_backbone_suggests_names():
    from w2p_eval.errors import InputError
    from w2p_eval.judges import load_identity_backbone

    with pytest.raises(InputError, match=r"did you mean dlib_resnet\?.*available: dlib_resnet, facenet_vggface2"):
        load_identity_backbone("dlib_resnet50")


def test_identity_known_answers_and_cache(tiny_data, tmp_path, models, monkeypatch):
    """Identical sets -> fake accuracy == real accuracy and FD ~ 0; constant face -> accuracy at chance;
    a second evaluation trains nothing and rescores no real faces (calls counted)."""
    from w2p_eval.judges import identity as J
    from w2p_eval.metrics import identity as M

    calls = {"train": 0, "real": 0}
    real_train, real_score = J.train_head, J.compute_real_scores

    def counting_train(*a, **k):
        calls["train"] += 1
        return real_train(*a, **k)

    def counting_real(*a, **k):
        calls["real"] += 1
        return real_score(*a, **k)

    monkeypatch.setattr(J, "train_head", counting_train)
    monkeypatch.setattr(J, "compute_real_scores", counting_real)
    passthrough, const = write_ckpts(tmp_path, tiny_data)
    cache = tmp_path / "cache"
    rows = evaluate_checkpoints([passthrough.parent.parent], tiny_data, cache_dir=cache, seed=0)
    assert calls == {"train": 1, "real": 1}
    m = by_metric(rows, passthrough)
    assert set(m) == set(M.METRICS)
    n = m[M.IDENTITY_TOP1_REAL]["n"]
    assert n == 6  # two seen-test pairs per identity in tiny_data
    assert m[M.IDENTITY_TOP1_REAL]["value"] == 1.0  # the tiny identities differ in colour: the ceiling is 1
    assert m[M.IDENTITY_TOP1_FAKE]["value"] == m[M.IDENTITY_TOP1_REAL]["value"]
    assert m[M.IDENTITY_TOP1_FAKE]["extra"].items() <= m[M.IDENTITY_TOP1_REAL]["extra"].items()
    assert m[M.FRECHET_FACE]["value"] == pytest.approx(0.0, abs=1e-6)
    assert m[M.COSINE_OWN_CENTROID]["value"] > m[M.COSINE_OTHER_CENTROIDS]["value"]
    assert m[M.RETRIEVAL_R1]["value"] == 1.0
    assert m[M.IDENTITY_TOP5_FAKE]["value"] == 1.0 and m[M.IDENTITY_TOP5_FAKE]["extra"]["k"] == 3
    extra = m[M.IDENTITY_TOP1_FAKE]["extra"]
    assert extra["confusion"] == (2 * np.eye(3, dtype=int)).tolist() and extra["confusion_labels"] == TINY_IDS
    assert extra["per_identity"] == {name: 1.0 for name in TINY_IDS}
    assert set(extra["per_identity_ci"]) == set(TINY_IDS)  # all right: [Wilson low on the groups, 1]
    assert all(0.0 < lo < 1.0 == hi for lo, hi in extra["per_identity_ci"].values())
    assert extra["pipeline"] == "64px -> 150px"
    r = m[M.IDENTITY_TOP1_FAKE]
    assert (r["run"], r["model"], r["epoch"], r["evaluator"]) == ("pass", "test_passthrough", 1, "identity/dlib_resnet")
    assert r["evaluator_version"].startswith("dlib ")
    # second evaluation, another checkpoint, a fresh process-level start: everything from the cache
    rows2 = evaluate_checkpoints([const], tiny_data, cache_dir=cache, seed=0)
    assert calls == {"train": 1, "real": 1}
    c = by_metric(rows2, const)
    assert c[M.IDENTITY_TOP1_REAL]["value"] == 1.0
    assert c[M.IDENTITY_TOP1_FAKE]["value"] == pytest.approx(1 / 3)  # one face for all: right for one identity
    assert c[M.IDENTITY_TOP1_FAKE]["extra"]["chance"] == pytest.approx(1 / 3)
    per, per_ci = c[M.IDENTITY_TOP1_FAKE]["extra"]["per_identity"], c[M.IDENTITY_TOP1_FAKE]["extra"]["per_identity_ci"]
    assert sorted(per.values()) == [0.0, 0.0, 1.0]
    for name, acc in per.items():  # an identity always wrong: [0, Wilson high]; always right: [Wilson low, 1]
        lo, hi = per_ci[name]
        assert (lo == 0.0 < hi < 1.0) if acc == 0.0 else (0.0 < lo < hi == 1.0)
    assert c[M.RETRIEVAL_R1]["value"] <= 1 / 3 + 1e-9
    assert c[M.FRECHET_FACE]["value"] > 0.05 and c[M.KID_FACE]["value"] > m[M.KID_FACE]["value"]
    # one face for every identity (balanced test set): own-centroid cosine == mean other-centroid cosine
    assert c[M.COSINE_OWN_CENTROID]["value"] == pytest.approx(c[M.COSINE_OTHER_CENTROIDS]["value"], abs=1e-9)
    assert (c[M.IDENTITY_TOP1_FAKE]["run"], c[M.IDENTITY_TOP1_FAKE]["epoch"]) == ("const", 3)
    # same seed -> same rows (from a cold cache too)
    rows3 = evaluate_checkpoints([const], tiny_data, cache_dir=tmp_path / "cold", seed=0)
    assert [(r["metric"], r["value"]) for r in rows3] == [(r["metric"], r["value"]) for r in rows2]


def test_vgg_scratch_trains_and_caches_tensors_only(tiny_data, tmp_path, models):
    from w2p_eval.metrics import identity as M

    passthrough, _ = write_ckpts(tmp_path, tiny_data)
    small = {"width": 8, "epochs": 30}  # a narrower net keeps the test short
    judge = M.identity_classifier(tiny_data, "vgg_scratch", 64, 0, "seen", tmp_path / "c", backbone_options=small)
    files = sorted((tmp_path / "c" / "identity").glob("*.pt"))
    assert len(files) == 1 and "vgg_scratch-64px-seed0-seen" in files[0].name
    blob = torch.load(files[0], weights_only=True)
    assert blob["identities"] == TINY_IDS and blob["info"]["n_train"] + blob["info"]["n_val"] == 12
    emb, logits = judge.score(np.zeros((2, 64, 64, 3), np.uint8))
    assert emb.shape == (2, 128) and logits.shape == (2, 3)
    assert judge.info["val_acc"] == 1.0  # the tiny identities differ in colour
    rows = evaluate_checkpoints([passthrough], tiny_data, backbone="vgg_scratch", cache_dir=tmp_path / "c",
                               backbone_options=small)
    m = by_metric(rows, passthrough)
    assert m[M.IDENTITY_TOP1_FAKE]["value"] == m[M.IDENTITY_TOP1_REAL]["value"]
    assert m[M.IDENTITY_TOP1_REAL]["evaluator"] == "identity/vgg_scratch"


def test_judge_rows_and_validation_split(tiny_data):
    from w2p_eval.data.manifest import load_manifest
    from w2p_eval.judges.identity import judge_training_rows, split_train_val

    df = load_manifest(tiny_data)
    pool, scored = judge_training_rows(df, "test", "seen")
    assert len(pool) == 12 and len(scored) == 6  # seen: every test pair scored
    pool, scored = judge_training_rows(df, "test", "unseen")
    assert set(scored["identity"]) == {"id02"} and len(scored) == 2  # id02's seen-test face only
    assert not set(pool["face_id"]) & set(scored["face_id"])
    tr, va = split_train_val(pool, seed=0)
    assert va.sum() == 6 and tr.sum() == 6  # per identity one of its two face groups (2 pairs each) held out
    assert not set(pool.loc[tr, "face_id"]) & set(pool.loc[va, "face_id"])
    tr2, va2 = split_train_val(pool, seed=0)
    assert (va2 == va).all()


def test_unseen_protocol_scores_only_faces_the_judge_never_saw(tiny_data, tmp_path, models):
    from w2p_eval.errors import InputError
    from w2p_eval.metrics import identity as M

    passthrough, _ = write_ckpts(tmp_path, tiny_data)
    rows = evaluate_checkpoints([passthrough], tiny_data, protocol="unseen", cache_dir=tmp_path / "c")
    m = by_metric(rows, passthrough)
    assert m[M.IDENTITY_TOP1_REAL]["n"] == 2 and m[M.IDENTITY_TOP1_REAL]["extra"]["n_left_out"] == 4
    assert m[M.IDENTITY_TOP1_REAL]["extra"]["chance"] == pytest.approx(1 / 3)
    assert m[M.IDENTITY_TOP1_FAKE]["value"] == m[M.IDENTITY_TOP1_REAL]["value"] == 1.0
    with pytest.raises(InputError, match="no such pairs"):  # the judge's own training faces
        evaluate_checkpoints([passthrough], tiny_data, split="train", cache_dir=tmp_path / "c")


def test_cli_identity_json_and_table(tiny_data, tmp_path, models):
    from click.testing import CliRunner

    from w2p_eval.cli import cli

    passthrough, const = write_ckpts(tmp_path, tiny_data)
    runner = CliRunner()
    args = ["identity", "--ckpt", str(const), "--data", str(tiny_data), "--cache-dir", str(tmp_path / "c"),
            "--store", str(tmp_path / "r.sqlite")]
    res = runner.invoke(cli, args + ["--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert {r["metric"] for r in rows} >= {"identity_top1_fake", "frechet_face"}
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "identity_top1_fake" in res.stdout and "same resolution pipeline" in res.stdout


def test_cli_bad_input_is_one_line(tiny_data, tmp_path, capsys):
    from w2p_eval.cli import main

    for args, want in (
        (["--ckpt", str(tmp_path / "nope.pt")], "expected a checkpoint file"),
        (["--ckpt", str(tmp_path), "--backbone", "facenet_vgg"], "did you mean facenet_vggface2"),
    ):
        with pytest.raises(SystemExit) as exc:
            main(["identity", *args, "--data", str(tiny_data), "--cache-dir", str(tmp_path / "c")])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.startswith("w2p-eval: error: ") and want in err
        assert err.strip().count("\n") == 0


def test_per_identity_interval_groups_faces():
    """Each identity's interval resamples its own faces (pairs sharing a face together), seeded."""
    from w2p_eval.metrics.identity import per_identity_ci

    labels = np.array([0] * 12 + [1] * 12)
    hits = np.array([1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 0] + [1] * 12, np.float64)
    groups = [f"f{i // 2}" for i in range(24)]  # two pairs per face
    ci = per_identity_ci(hits, labels, ["a", "b"], groups, seed=0)
    lo, hi = ci["a"]
    assert 0.0 < lo < 0.75 < hi < 1.0  # 9/12 right
    assert ci["b"][1] == 1.0 and ci["b"][0] > 0.5
    assert per_identity_ci(hits, labels, ["a", "b"], groups, seed=0) == ci
    ungrouped = per_identity_ci(hits, labels, ["a", "b"], [str(i) for i in range(24)], seed=0)
    assert ungrouped["b"][0] > ci["b"][0]  # 12 independent faces say more than 6: Wilson low rises
