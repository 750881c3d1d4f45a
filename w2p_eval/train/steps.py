"""One WAV2PIX training iteration: the losses of the reference, computed with only the work they need.

The original code runs G twice and D five times per iteration and back-propagates the D loss
through G as well. :class:`GanStep` does one G forward; D sees real, wrong and (detached) fake
faces in one batched forward (D has no BatchNorm, so batching changes nothing); the real-face
features for feature matching are reused from that forward (detached, as in the reference); the
G step runs D once more on the fake faces with D's weights frozen (no weight gradients for D).

Losses (least squares; reference weights):
  D: MSE(D(fake), 0) + MSE(D(real), 0.9) + MSE(D(wrong), 0)
  G: adv * MSE(D(fake), 1) + 100 * MSE(mean_b feat(fake), mean_b feat(real)) + 50 * L1(fake, real)
     + 20 * CE(aux logits, identity)
With ``adversarial=False`` (the ``l1_regression`` baseline) there is no D: G = 50 * L1 + 20 * CE.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def pick_wrong(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """For each row, the index of another row of the batch with a *different* label (seeded).

    labels: int64 [B]. Returns int64 [B]; -1 where the batch holds no other identity.
    """
    b = labels.shape[0]
    scores = torch.rand(b, b, generator=generator).to(labels.device)
    same = labels[:, None] == labels[None, :]
    scores = scores.masked_fill(same, -1.0)
    best = scores.argmax(dim=1)
    return torch.where(same.all(dim=1), torch.full_like(best, -1), best)


def wrong_images(images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator,
                 pool: "WrongPool | None" = None) -> torch.Tensor | None:
    """Real faces of a different identity for each row ([B, 3, S, S]), or None if none exist.

    Rows whose batch holds no other identity draw from ``pool`` (the whole training set).
    """
    idx = pick_wrong(labels, generator)
    missing = idx < 0
    if not bool(missing.any()):
        return images[idx]
    if pool is None or not pool.has_other(labels[missing]):
        return None
    out = images[idx.clamp(min=0)].clone()
    out[missing] = pool.draw(labels[missing], generator).to(images.device, images.dtype)
    return out


class WrongPool:
    """Faces of the training set by identity, to draw "wrong" faces when a batch has one identity."""

    def __init__(self, dataset):
        self.dataset = dataset
        labels = np.asarray(dataset.labels)
        self.by_label = {int(k): np.flatnonzero(labels == k) for k in np.unique(labels)}

    def has_other(self, labels: torch.Tensor) -> bool:
        return all(any(k != int(lab) for k in self.by_label) for lab in labels.tolist())

    def draw(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        faces = []
        for lab in labels.tolist():
            others = np.concatenate([v for k, v in self.by_label.items() if k != int(lab)])
            j = int(others[int(torch.randint(len(others), (1,), generator=generator))])
            faces.append(self.dataset[j]["image"])
        return torch.stack(faces)


LOSS_KEYS = ("d_loss", "d_real", "d_wrong", "d_fake", "g_loss", "g_adv", "g_feat", "g_l1", "g_aux",
             "score_real", "score_wrong", "score_fake")


class GanStep:
    """The efficient WAV2PIX iteration. ``generator`` returns (fake, emb, logits); ``discriminator``
    (None when ``adversarial`` is False) returns (score [B], features). Either may be wrapped in
    DistributedDataParallel: the D forward of the G step then goes to the unwrapped module.
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module | None, opt_g, opt_d, cfg: dict):
        self.g, self.d, self.opt_g, self.opt_d = generator, discriminator, opt_g, opt_d
        self.adversarial = bool(cfg.get("adversarial", True)) and discriminator is not None
        self.real_label = float(cfg.get("real_label", 0.9))
        self.w_adv = float(cfg.get("adv_weight", 1.0))
        self.w_feat = float(cfg.get("feature_weight", 100.0))
        self.w_l1 = float(cfg.get("l1_weight", 50.0))
        self.w_aux = float(cfg.get("aux_weight", 20.0))
        self.d_plain = getattr(discriminator, "module", discriminator)

    def __call__(self, audio: torch.Tensor, real: torch.Tensor, labels: torch.Tensor,
                 wrong: torch.Tensor | None) -> dict[str, float]:
        """audio [B, 1, T], real [B, 3, S, S] in [-1, 1], labels int64 [B], wrong like real or None.

        Updates D then G; returns each loss term as a float.
        """
        fake, emb, logits = self.g(audio)
        logs: dict[str, torch.Tensor] = {}
        g_adv = g_feat = fake.new_zeros(())
        if self.adversarial:
            b = real.shape[0]
            parts = [real, fake.detach()] + ([wrong] if wrong is not None else [])
            scores, feats = self.d(torch.cat(parts), emb.detach().repeat(len(parts), 1))
            s_real, s_fake = scores[:b], scores[b:2 * b]
            d_real = F.mse_loss(s_real, torch.full_like(s_real, self.real_label))
            d_fake = F.mse_loss(s_fake, torch.zeros_like(s_fake))
            d_wrong = fake.new_zeros(())
            if wrong is not None:
                s_wrong = scores[2 * b:]
                d_wrong = F.mse_loss(s_wrong, torch.zeros_like(s_wrong))
                logs["score_wrong"] = s_wrong.detach().mean()
            d_loss = d_real + d_fake + d_wrong
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
            real_feat = feats[:b].detach().mean(0)
            self.d_plain.requires_grad_(False)
            try:
                s_gen, fake_feats = self.d_plain(fake, emb)
            finally:
                self.d_plain.requires_grad_(True)
            g_adv = F.mse_loss(s_gen, torch.ones_like(s_gen))
            g_feat = F.mse_loss(fake_feats.mean(0), real_feat)
            logs.update(d_loss=d_loss, d_real=d_real, d_wrong=d_wrong, d_fake=d_fake,
                        score_real=s_real.detach().mean(), score_fake=s_fake.detach().mean())
        g_l1 = F.l1_loss(fake, real)
        g_aux = F.cross_entropy(logits, labels)
        g_loss = self.w_adv * g_adv + self.w_feat * g_feat + self.w_l1 * g_l1 + self.w_aux * g_aux
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        logs.update(g_loss=g_loss, g_adv=g_adv, g_feat=g_feat, g_l1=g_l1, g_aux=g_aux)
        values = torch.stack([v.detach().float() for v in logs.values()]).cpu().tolist()  # one sync
        return dict(zip(logs.keys(), values))


class ReferenceStep:
    """The straightforward iteration that follows the original code's structure (for benchmarks):
    D step with its own G forward and three D forwards, the D loss back-propagated through G
    too (nothing detached), then a G step with a second G forward and two more D forwards.
    Same losses and updates as :class:`GanStep` up to where the real-face features are taken.
    """

    def __init__(self, generator, discriminator, opt_g, opt_d, cfg: dict):
        self.g, self.d, self.opt_g, self.opt_d = generator, discriminator, opt_g, opt_d
        self.real_label = float(cfg.get("real_label", 0.9))
        self.w = [float(cfg.get(k, v)) for k, v in
                  (("adv_weight", 1.0), ("feature_weight", 100.0), ("l1_weight", 50.0), ("aux_weight", 20.0))]

    def __call__(self, audio, real, labels, wrong) -> dict[str, float]:
        self.d.zero_grad()
        fake, emb, _ = self.g(audio)
        s_fake, _ = self.d(fake, emb)
        s_real, _ = self.d(real, emb)
        s_wrong, _ = self.d(wrong, emb)
        d_loss = (F.mse_loss(s_fake, torch.zeros_like(s_fake))
                  + F.mse_loss(s_real, torch.full_like(s_real, self.real_label))
                  + F.mse_loss(s_wrong, torch.zeros_like(s_wrong)))
        d_loss.backward()
        self.opt_d.step()
        self.g.zero_grad()
        fake, emb, logits = self.g(audio)
        s_gen, act_fake = self.d(fake, emb)
        _, act_real = self.d(real, emb)
        w_adv, w_feat, w_l1, w_aux = self.w
        g_loss = (w_adv * F.mse_loss(s_gen, torch.ones_like(s_gen))
                  + w_feat * F.mse_loss(act_fake.mean(0), act_real.mean(0).detach())
                  + w_l1 * F.l1_loss(fake, real) + w_aux * F.cross_entropy(logits, labels))
        g_loss.backward()
        self.opt_g.step()
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item()}


def make_optimizers(generator: nn.Module, discriminator: nn.Module | None, cfg: dict):
    """Adam(betas) with lr_g for G (encoder + aux + image generator) and lr_d for D."""
    betas = tuple(float(b) for b in cfg.get("betas", (0.5, 0.999)))
    opt_g = torch.optim.Adam(generator.parameters(), lr=float(cfg.get("lr_g", 1e-4)), betas=betas)
    opt_d = None
    if discriminator is not None:
        opt_d = torch.optim.Adam(discriminator.parameters(), lr=float(cfg.get("lr_d", 4e-4)), betas=betas)
    return opt_g, opt_d
