"""WAV2PIX modules: reference parameter counts, shapes, ranges, init, losses of one training step."""

from __future__ import annotations

import copy

import pytest
import torch

from w2p_eval.errors import InputError
from w2p_eval.models.wav2pix import (
    AuxClassifier, Discriminator, ImageGenerator, SpeechEncoder, Wav2Pix, count_parameters, encoder_lengths,
)
from w2p_eval.train.steps import GanStep, ReferenceStep, make_optimizers, pick_wrong, wrong_images

IDS10 = [f"id{i}" for i in range(10)]
CFG = {"adversarial": True}


def millions(module) -> float:
    return round(count_parameters(module) / 1e6, 2)


@pytest.mark.parametrize("size, g_total, d_total", [(64, 15.33, 2.77), (128, 24.76, 11.16)])
def test_parameter_counts_match_reference(size, g_total, d_total):
    gen = Wav2Pix(IDS10, size, 1.0)
    assert millions(gen.encoder) == 11.50
    assert millions(gen) == g_total
    assert millions(Discriminator(size)) == d_total


def test_encoder_lengths_and_flatten_follow_audio_length():
    assert encoder_lengths(16000) == [4000, 1000, 250, 63, 16, 4]
    assert SpeechEncoder(16000).flat_dim == 4096
    assert SpeechEncoder(4800).flat_dim == 1024 * encoder_lengths(4800)[-1] == 1024
    assert SpeechEncoder(11200).flat_dim == 1024 * 3


def test_aux_classifier_follows_identity_count():
    gen = Wav2Pix(["a", "b", "c"], 64, 0.3)
    assert gen.aux.net[-2].out_features == 3 and gen.aux.net[-1].num_features == 3
    assert AuxClassifier(7)(torch.randn(4, 128)).shape == (4, 7)


def test_init_follows_reference():
    torch.manual_seed(0)
    enc = SpeechEncoder(16000)
    w = torch.cat([m.weight.detach().flatten() for m in enc.modules() if isinstance(m, torch.nn.Conv1d)])
    assert abs(float(w.std()) - 0.02) < 0.002 and abs(float(w.mean())) < 0.001
    bn = torch.cat([m.weight.detach() for m in enc.modules() if isinstance(m, torch.nn.BatchNorm1d)])
    assert abs(float(bn.mean()) - 1.0) < 0.005 and 0.01 < float(bn.std()) < 0.03


@pytest.mark.parametrize("size", [64, 128])
def test_shapes_and_ranges(size):
    torch.manual_seed(0)
    gen = Wav2Pix(["a", "b", "c"], size, 0.3).train()
    audio = torch.randn(2, 1, 4800)
    fake, emb, logits = gen(audio)
    assert fake.shape == (2, 3, size, size) and emb.shape == (2, 128) and logits.shape == (2, 3)
    assert float(fake.detach().min()) >= -1 and float(fake.detach().max()) <= 1
    score, feats = Discriminator(size)(fake, emb)
    assert score.shape == (2,) and feats.shape[-2:] == (4, 4)
    assert feats.shape[1] == (512 if size == 64 else 1024)
    out = gen.eval().generate({"audio": audio})
    assert out.shape == (2, 3, size, size) and 0 <= float(out.min()) and float(out.max()) <= 1
    with pytest.raises(InputError, match="expected audio of 4800 samples"):
        gen(torch.randn(2, 1, 16000))


def test_generate_is_deterministic_by_default_and_stochastic_on_request():
    torch.manual_seed(0)
    gen = Wav2Pix(["a", "b"], 64, 0.3)
    batch = {"audio": torch.randn(3, 1, 4800)}
    a, b = gen.generate(batch), gen.generate(batch)
    assert torch.equal(a, b) and not gen.training
    gen.set_stochastic(True)
    c, d = gen.generate(batch), gen.generate(batch)
    assert not torch.equal(c, d) and not torch.equal(a, c)
    assert not gen.training  # generation never leaves the model in training mode


def test_bad_image_size_is_input_error():
    with pytest.raises(InputError, match="64 or 128, got 96"):
        ImageGenerator(96)


def test_pick_wrong_always_picks_another_identity():
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 0, 1, 2, 2, 1, 0])
    for _ in range(20):
        idx = pick_wrong(labels, g)
        assert (labels[idx] != labels).all()
    assert (pick_wrong(torch.tensor([4, 4, 4]), g) == -1).all()
    imgs = torch.randn(3, 3, 8, 8)
    assert wrong_images(imgs, torch.tensor([1, 1, 1]), g) is None  # no other identity anywhere
    same_a = pick_wrong(labels, torch.Generator().manual_seed(5))
    assert torch.equal(same_a, pick_wrong(labels, torch.Generator().manual_seed(5)))  # seeded


def _pair(adversarial=True):
    torch.manual_seed(0)
    gen = Wav2Pix(["a", "b", "c"], 64, 0.3)
    disc = Discriminator(64) if adversarial else None
    return gen, disc


def _batch(b=4):
    g = torch.Generator().manual_seed(1)
    audio = torch.randn(b, 1, 4800, generator=g)
    real = torch.rand(b, 3, 64, 64, generator=g) * 2 - 1
    labels = torch.tensor([0, 1, 2, 0][:b])
    return audio, real, labels


def test_one_training_step_is_finite_and_updates_both_networks():
    gen, disc = _pair()
    opt_g, opt_d = make_optimizers(gen, disc, CFG)
    g0, d0 = copy.deepcopy(gen.state_dict()), copy.deepcopy(disc.state_dict())
    audio, real, labels = _batch()
    logs = GanStep(gen, disc, opt_g, opt_d, CFG)(audio, real, labels,
                                                 wrong_images(real, labels, torch.Generator().manual_seed(0)))
    assert set(logs) >= {"d_loss", "d_real", "d_wrong", "d_fake", "g_loss", "g_adv", "g_feat", "g_l1", "g_aux"}
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    for new, old in ((gen.state_dict(), g0), (disc.state_dict(), d0)):
        changed = [k for k in old if old[k].is_floating_point() and not torch.equal(old[k], new[k])]
        assert changed
    for p in list(gen.parameters()) + list(disc.parameters()):
        assert p.requires_grad and torch.isfinite(p).all()


def test_non_adversarial_step_is_l1_plus_aux_only():
    gen, _ = _pair(adversarial=False)
    opt_g, opt_d = make_optimizers(gen, None, CFG)
    assert opt_d is None
    audio, real, labels = _batch()
    logs = GanStep(gen, None, opt_g, None, {"adversarial": False})(audio, real, labels, None)
    assert "d_loss" not in logs
    assert logs["g_loss"] == pytest.approx(50 * logs["g_l1"] + 20 * logs["g_aux"], rel=1e-5)


def test_efficient_step_matches_reference_losses_and_updates():
    """Known answer: with dropout and the spectral-norm power iteration frozen (eval mode) and the
    feature-matching term off (the one place the efficient loop reuses pre-update features), the
    efficient step gives the same D loss and the same D and G updates as the original structure."""
    cfg = {"feature_weight": 0.0}
    gen_a, disc_a = _pair()
    gen_b, disc_b = copy.deepcopy(gen_a), copy.deepcopy(disc_a)
    for m in (gen_a, disc_a, gen_b, disc_b):
        m.eval()
    audio, real, labels = _batch()
    wrong = wrong_images(real, labels, torch.Generator().manual_seed(0))
    opt_ga, opt_da = make_optimizers(gen_a, disc_a, cfg)
    opt_gb, opt_db = make_optimizers(gen_b, disc_b, cfg)
    eff = GanStep(gen_a, disc_a, opt_ga, opt_da, cfg)(audio, real, labels, wrong)
    ref = ReferenceStep(gen_b, disc_b, opt_gb, opt_db, cfg)(audio, real, labels, wrong)
    assert eff["d_loss"] == pytest.approx(ref["d_loss"], rel=1e-5)
    assert eff["g_loss"] == pytest.approx(ref["g_loss"], rel=1e-4)
    for a, b in ((disc_a, disc_b), (gen_a, gen_b)):
        for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
            torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-6, msg=name)
