"""Training SF2F as in BAI-Yeqi/SF2F_PyTorch ``train.py`` (``options/vox/sf2f/*.yaml``), in two stages.

1. Epochs 1..``epochs`` (``sf2f_1st_stage`` / ``sf2f_mid_1st_stage``): encoder + decoder on one embedding
   of the clip. Per output resolution i (64; 64 and 128 at 128 px), with the real face brought to that
   size by nearest halving, the generator minimises
   ``l1_weight * L1 + d_weight * img_weight * BCE(D_img(fake), 1) + d_weight * ac_weight * (CE(D_ac ids,
   identity) + BCE(D_ac real score(fake), 1)) + perceptual_weight * perceptual(fake, real)``,
   then the discriminators step on ``BCE(D(real), 1) + BCE(D(fake), 0)`` (+ CE of D_ac on real faces).
2. The next ``fuser_epochs`` epochs (``sf2f_fuser``, ``--train_fuser_only``): the encoder and decoder frozen
   (eval mode, as the original's hard-coded ``model.eval()``), only the attention fuser trained (lr
   ``lr_fuser``) on the embeddings of the clip's ``segment_frames`` windows; same losses. Checkpoints of
   this stage generate through the fuser (``extra["fused"]``).

The perceptual loss's network is ``teacher`` (``train/teacher.py``: never one of the judges); each weight
set to 0 switches its term off. Adam lr 5e-4, beta1 0.9 (opts.py), batch 256 (GETTING_STARTED.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from w2p_eval.data.dataset import PairDataset
from w2p_eval.errors import InputError
from w2p_eval.models.sf2f import SF2F, Critics
from w2p_eval.models.speech_features import HOP, WIN, n_frames_sf2f
from w2p_eval.models.wav2pix import n_audio_samples
from w2p_eval.train import field
from w2p_eval.train.teacher import check_teacher, load_teacher
from w2p_eval.validate import finite_number, integer

DEFAULTS: dict = {
    **field.COMMON_DEFAULTS,
    "model": "sf2f",
    "batch_size": 256,
    "fuser_epochs": 10,       # stage 2 (the original: 50 epochs of 1 item per identity after 12000)
    "lr": 5.0e-4,             # opts.py --learning_rate default
    "lr_fuser": 1.0e-4,       # GETTING_STARTED.md, fuser stage
    "betas": [0.9, 0.999],    # opts.py --beta1 default 0.9
    "l1_weight": 10.0,        # sf2f_1st_stage.yaml l1_pixel_loss_weight (100 at 128 px)
    "d_weight": 1.0,          # d_loss_weight
    "img_weight": 1.0,        # d_img_weight
    "ac_weight": 0.05,        # ac_loss_weight
    "perceptual_weight": 100.0,
    "teacher": "emotion",     # the perceptual loss's network (the original: FaceNet-VGGFace2, a judge here)
    "segment_frames": 50,     # fuser windows over the clip's mel frames (the original: 125 over whole utterances)
    "segment_stride": 25,
    "hflip": False,           # vox_dataset.py: image_random_hflip=False (voice2face's face loader flips)
}
WEIGHTS = ("l1_weight", "d_weight", "img_weight", "ac_weight", "perceptual_weight")


def check_config(cfg: dict) -> None:
    """SF2F's own rules (one-line InputError): weights >= 0, learning rates > 0, a known teacher, fuser
    windows that fit the clip's frames."""
    for key in WEIGHTS:
        finite_number(cfg[key], key, low=0)
    for key in ("lr", "lr_fuser"):
        finite_number(cfg[key], key, low=0, low_open=True)
    integer(cfg["fuser_epochs"], "fuser_epochs", low=0)
    check_teacher(cfg["teacher"], cfg["perceptual_weight"] > 0)
    frames = n_frames_sf2f(n_audio_samples(cfg["audio_seconds"]))
    integer(cfg["segment_frames"], "segment_frames", low=1)
    integer(cfg["segment_stride"], "segment_stride", low=1)
    if cfg["segment_frames"] > frames:
        raise InputError(f"expected segment_frames <= {frames} (the mel frames of {cfg['audio_seconds']} s of audio, "
                         f"{WIN}-sample windows every {HOP}), got {cfg['segment_frames']}")


def train(config: dict, data_dir, out_dir, *, resume: bool = False, device: str | None = None):
    """Train SF2F with ``config`` (resolved and checked) -> the checkpoints written."""
    return field.run(config, data_dir, out_dir, resume=resume, device=device, build=build)


def build(cfg: dict, ds: PairDataset, device: str) -> field.FieldModels:
    """SF2F, its discriminators, the teacher (when the perceptual loss is on) and the optimisers."""
    gen = SF2F(ds.identities, cfg["image_size"], cfg["audio_seconds"], cfg["segment_frames"],
               cfg["segment_stride"]).to(device).train()
    critic = Critics(cfg["image_size"], len(ds.identities)).to(device).train()
    optims = {
        "generator": field.adam([*gen.encoder.parameters(), *gen.decoder.parameters()], cfg["lr"], cfg["betas"]),
        "fuser": field.adam(gen.fuser.parameters(), cfg["lr_fuser"], cfg["betas"]),
        "critic": field.adam(critic.parameters(), cfg["lr"], cfg["betas"]),
    }
    teacher = load_teacher(cfg["teacher"], device) if cfg["perceptual_weight"] > 0 else None
    return field.FieldModels(gen, critic, optims, step, int(cfg["epochs"]) + int(cfg["fuser_epochs"]), cfg=cfg,
                             extra={"fused": False}, teachers=(teacher.name,) if teacher is not None else (),
                             teacher=teacher)


def _reals(real: torch.Tensor, sizes) -> list[torch.Tensor]:
    """The real face at each output size (nearest halving, as the original)."""
    out = []
    for r in sizes:
        img = real
        while img.shape[-1] > r:
            img = F.interpolate(img, scale_factor=0.5, mode="nearest")
        out.append(img)
    return out


def _bce(scores: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(scores, torch.full_like(scores, target))


def step(m: field.FieldModels, epoch: int, batch: dict, rng: torch.Generator) -> dict[str, float]:
    """One iteration: the generator (or fuser) step, then the discriminators' -> the loss terms."""
    cfg, gen, critic, labels = m.cfg, m.gen, m.critic, batch["label"]
    fuse = epoch > int(cfg["epochs"])
    gen.fused = m.extra["fused"] = fuse or m.extra["fused"]
    if fuse:
        gen.eval()
        gen.encoder.requires_grad_(False)
        gen.decoder.requires_grad_(False)
    preds = gen(batch["audio"], fuse=fuse)
    reals = _reals(batch["image"], [p.shape[-1] for p in preds])
    w_d = float(cfg["d_weight"])
    w_img, w_ac = w_d * float(cfg["img_weight"]), w_d * float(cfg["ac_weight"])
    logs: dict[str, torch.Tensor] = {}
    total = preds[0].new_zeros(())
    critic.requires_grad_(False)
    try:
        for i, (fake, real) in enumerate(zip(preds, reals)):
            terms = {f"l1_{i}": (float(cfg["l1_weight"]), lambda: F.l1_loss(fake, real)),
                     f"g_img_{i}": (w_img, lambda: _bce(critic.image[i](fake), 1.0)),
                     f"g_ac_{i}": (w_ac, lambda: _ac_gen(critic.identity[i], fake, labels)),
                     f"perceptual_{i}": (float(cfg["perceptual_weight"]) if m.teacher is not None else 0.0,
                                         lambda: m.teacher.loss(fake, real))}
            for name, (weight, term) in terms.items():
                if weight > 0:
                    logs[name] = term()
                    total = total + weight * logs[name]
    finally:
        critic.requires_grad_(True)
    m.update("fuser" if fuse else "generator", total)
    logs["g_loss"] = total
    if w_img > 0 or w_ac > 0:
        d_total = total.new_zeros(())
        for i, (fake, real) in enumerate(zip(preds, reals)):
            fake = fake.detach()
            if w_img > 0:
                logs[f"d_img_{i}"] = _bce(critic.image[i](real), 1.0) + _bce(critic.image[i](fake), 0.0)
                d_total = d_total + logs[f"d_img_{i}"]
            if w_ac > 0:
                s_real, ids_real = critic.identity[i](real)
                s_fake, _ = critic.identity[i](fake)
                logs[f"d_ac_{i}"] = _bce(s_real, 1.0) + _bce(s_fake, 0.0) + F.cross_entropy(ids_real, labels)
                d_total = d_total + logs[f"d_ac_{i}"]
        m.update("critic", d_total)
    values = torch.stack([v.detach().float() for v in logs.values()]).cpu().tolist()
    return dict(zip(logs.keys(), values))


def _ac_gen(disc, fake: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    score, ids = disc(fake)
    return F.cross_entropy(ids, labels) + _bce(score, 1.0)
