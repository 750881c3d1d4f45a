"""Training Wen et al. 2019 (voice2face) as in the authors' ``gan_train.py``, in two stages.

1. Epochs 1..``embed_epochs``: the voice embedding network e + a speaker classifier (Linear(64, ids, no
   bias)) trained with cross-entropy on the training clips. The original loads a pretrained, frozen e
   (``pretrained_models/voice_embedding.pth``, a VoxCeleb speaker classifier whose training recipe is
   not published); w2p-eval cannot ship those weights for every dataset, so it pretrains e the same way.
2. The next ``epochs`` epochs: e frozen (eval mode), embedding L2-normalised + 0.05 N(0, 1) noise,
   re-normalised; g makes a face. Critic step (f, d, c with one Adam each in the original; one Adam over
   the three here, which is the same update): BCE(d(f(real)), 1) + BCE(d(f(fake)), 0) + CE(c(f(real)),
   identity). Generator step: BCE(d(f(fake)), 1) + CE(c(f(fake)), identity of the voice).

Config switches: ``gan_weight`` (the real/fake terms, 0 = off), ``classifier_weight`` (the identity
terms, 0 = off). Adam lr 2e-4, betas (0.5, 0.999), batch 128 (the original's config.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from w2p_eval.data.dataset import PairDataset
from w2p_eval.errors import InputError
from w2p_eval.models.speech_features import wen_fbank
from w2p_eval.models.voice2face import NOISE_STD, Critic, Voice2Face
from w2p_eval.train import field
from w2p_eval.validate import finite_number, integer

DEFAULTS: dict = {
    **field.COMMON_DEFAULTS,
    "model": "voice2face",
    "batch_size": 128,
    "embed_epochs": 20,       # stage 1: the voice embedding's speaker-classification pretraining
    "lr_embed": 2.0e-4,
    "lr": 2.0e-4,             # config.py: lr 0.0002, beta1 0.5, beta2 0.999 (g, f, d, c)
    "betas": [0.5, 0.999],
    "gan_weight": 1.0,
    "classifier_weight": 1.0,
}
LOSS_SHOWN = ("d_real", "d_fake", "c_real", "g_d_fake", "g_c_fake")


def check_config(cfg: dict) -> None:
    """voice2face's own rules (one-line InputError): 64 px only, weights >= 0, embed_epochs >= 0, lrs > 0."""
    if cfg["image_size"] != 64:
        raise InputError(f"expected image_size 64 for voice2face (the original's generator makes 64x64 faces), "
                         f"got {cfg['image_size']}")
    integer(cfg["embed_epochs"], "embed_epochs", low=0)
    for key in ("gan_weight", "classifier_weight"):
        finite_number(cfg[key], key, low=0)
    for key in ("lr", "lr_embed"):
        finite_number(cfg[key], key, low=0, low_open=True)
    if cfg["gan_weight"] == 0 and cfg["classifier_weight"] == 0:
        raise InputError("expected gan_weight or classifier_weight > 0 (the generator needs a loss), got both 0")


def train(config: dict, data_dir, out_dir, *, resume: bool = False, device: str | None = None):
    """Train voice2face with ``config`` (resolved and checked) -> the checkpoints written."""
    return field.run(config, data_dir, out_dir, resume=resume, device=device, build=build)


def build(cfg: dict, ds: PairDataset, device: str) -> field.FieldModels:
    """Voice2Face (e + speaker head + g), the critic (f, d, c) and their optimisers, seeded by the caller."""
    gen = Voice2Face(ds.identities, 64, cfg["audio_seconds"]).to(device).train()
    critic = Critic(len(ds.identities)).to(device).train()
    optims = {
        "embed": field.adam([*gen.voice_embed.parameters(), *gen.speaker.parameters()], cfg["lr_embed"], cfg["betas"]),
        "generator": field.adam(gen.generator.parameters(), cfg["lr"], cfg["betas"]),
        "critic": field.adam(critic.parameters(), cfg["lr"], cfg["betas"]),
    }
    return field.FieldModels(gen, critic, optims, step, int(cfg["embed_epochs"]) + int(cfg["epochs"]), cfg=cfg,
                             extra={"embed_epochs": int(cfg["embed_epochs"])})


def step(m: field.FieldModels, epoch: int, batch: dict, rng: torch.Generator) -> dict[str, float]:
    """One iteration of the epoch's stage -> its loss terms."""
    gen, audio, labels = m.gen, batch["audio"], batch["label"]
    if epoch <= m.extra["embed_epochs"]:
        gen.voice_embed.train()
        logits = gen.speaker(gen.voice_embed(wen_fbank(audio)))
        loss = F.cross_entropy(logits, labels)
        m.update("embed", loss)
        return {"embed_ce": loss.item(), "embed_acc": (logits.argmax(1) == labels).float().mean().item()}
    w_gan, w_cls = float(m.cfg["gan_weight"]), float(m.cfg["classifier_weight"])
    gen.voice_embed.eval()  # frozen, as the original's pretrained e
    with torch.no_grad():
        emb = F.normalize(gen.voice_embed(wen_fbank(audio)), dim=1)
    emb = F.normalize(emb + NOISE_STD * torch.randn_like(emb), dim=1)
    fake = gen.generator(emb)
    real = batch["image"]
    score_real, cls_real = m.critic(real)
    score_fake, _ = m.critic(fake.detach())
    d_real = F.binary_cross_entropy_with_logits(score_real, torch.ones_like(score_real))
    d_fake = F.binary_cross_entropy_with_logits(score_fake, torch.zeros_like(score_fake))
    c_real = F.cross_entropy(cls_real, labels)
    m.update("critic", w_gan * (d_real + d_fake) + w_cls * c_real)
    m.critic.requires_grad_(False)
    try:
        score_gen, cls_gen = m.critic(fake)
    finally:
        m.critic.requires_grad_(True)
    g_d = F.binary_cross_entropy_with_logits(score_gen, torch.ones_like(score_gen))
    g_c = F.cross_entropy(cls_gen, labels)
    m.update("generator", w_gan * g_d + w_cls * g_c)
    values = torch.stack([d_real, d_fake, c_real, g_d, g_c]).detach().cpu().tolist()
    return dict(zip(LOSS_SHOWN, values))
