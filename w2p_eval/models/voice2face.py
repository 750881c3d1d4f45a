"""Wen et al. 2019, "Face reconstruction from voice using generative adversarial networks" (voice2face).

Reimplemented from the authors' ``network.py`` / ``config.py`` (cmu-mlsp/reconstructing_faces_from_voices):

- :class:`VoiceEmbedNet` (e): 64-band log filterbanks [B, 64, L] -> 4 x [Conv1d(k3, s2, p1, no bias) ->
  BatchNorm1d -> ReLU] with channels 256-384-576-864, Conv1d(864 -> 64, k3, s2, p1, bias), average over
  time -> [B, 64]. In the original it is a pretrained speaker classifier, frozen while the GAN trains;
  here it is pretrained the same way on the training split (``speaker`` head, :class:`Classifier`).
- :class:`Generator` (g): L2-normalised embedding [B, 64, 1, 1] -> ConvTranspose2d 64->1024 (k4, s1),
  then 512, 256, 128, 64 (k4, s2, p1), each + ReLU, then ConvTranspose2d 64->3 (k1) -> [B, 3, 64, 64]
  (no output non-linearity, as in the original; generation clamps to [-1, 1]).
- :class:`FaceEmbedNet` (f): faces -> Conv2d 3->32 (k1), 64, 128, 256, 512 (k4, s2, p1), each + LeakyReLU(0.2),
  Conv2d 512->64 (k4) -> [B, 64, 1, 1]; shared by the discriminator d = Linear(64, 1, no bias) and the
  identity classifier c = Linear(64, identities, no bias) (:class:`Critic`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from w2p_eval.errors import InputError
from w2p_eval.models.base import FaceGenerator
from w2p_eval.models.speech_features import wen_fbank
from w2p_eval.registry import Entry

N_MELS = 64
VOICE_CHANNELS = (256, 384, 576, 864)
EMBED_DIM = 64
GENERATOR_CHANNELS = (1024, 512, 256, 128, 64)
FACE_CHANNELS = (32, 64, 128, 256, 512)
NOISE_STD = 0.05  # gan_train.py: embeddings + 0.05 * N(0, 1), re-normalised


class VoiceEmbedNet(nn.Module):
    """Filterbanks float32 [B, 64, L] -> voice embedding float32 [B, 64] (not normalised)."""

    def __init__(self, n_mels: int = N_MELS, channels=VOICE_CHANNELS, embed_dim: int = EMBED_DIM):
        super().__init__()
        layers, c_in = [], n_mels
        for c_out in channels:
            layers += [nn.Conv1d(c_in, c_out, 3, 2, 1, bias=False), nn.BatchNorm1d(c_out), nn.ReLU()]
            c_in = c_out
        layers.append(nn.Conv1d(c_in, embed_dim, 3, 2, 1, bias=True))
        self.model = nn.Sequential(*layers)

    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        return self.model(fbank).mean(dim=2)


class Generator(nn.Module):
    """Embedding float32 [B, 64] -> faces float32 [B, 3, 64, 64] (unbounded, trained towards [-1, 1])."""

    def __init__(self, embed_dim: int = EMBED_DIM, channels=GENERATOR_CHANNELS):
        super().__init__()
        layers, c_in = [], embed_dim
        for i, c_out in enumerate(channels):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 1 if i == 0 else 2, 0 if i == 0 else 1), nn.ReLU()]
            c_in = c_out
        layers.append(nn.ConvTranspose2d(c_in, 3, 1, 1, 0))
        self.model = nn.Sequential(*layers)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.model(emb[:, :, None, None])


class FaceEmbedNet(nn.Module):
    """Faces float32 [B, 3, 64, 64] in [-1, 1] -> face embedding float32 [B, 64]."""

    def __init__(self, channels=FACE_CHANNELS, embed_dim: int = EMBED_DIM):
        super().__init__()
        layers, c_in = [nn.Conv2d(3, channels[0], 1, 1, 0), nn.LeakyReLU(0.2)], channels[0]
        for c_out in channels[1:]:
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.LeakyReLU(0.2)]
            c_in = c_out
        layers.append(nn.Conv2d(c_in, embed_dim, 4, 1, 0))
        self.model = nn.Sequential(*layers)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return self.model(faces).flatten(1)


class Classifier(nn.Module):
    """Linear(64, n, no bias): the original's discriminator head (n = 1) and identity classifiers."""

    def __init__(self, n_out: int, embed_dim: int = EMBED_DIM):
        super().__init__()
        self.model = nn.Linear(embed_dim, n_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.flatten(1))


class Critic(nn.Module):
    """f + d + c: ``forward(faces)`` -> (real/fake logit [B], identity logits [B, n_identities])."""

    def __init__(self, n_identities: int):
        super().__init__()
        self.face_embed = FaceEmbedNet()
        self.discriminator = Classifier(1)
        self.classifier = Classifier(n_identities)

    def forward(self, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.face_embed(faces)
        return self.discriminator(f).flatten(), self.classifier(f)


class Voice2Face(FaceGenerator):
    """e (+ its speaker-classification head for pretraining) and g: the generator every suite scores.

    ``forward(audio [B, 1, T], noise=True)`` -> (faces [B, 3, 64, 64], embedding [B, 64] normalised).
    """

    model_name = "voice2face"

    def __init__(self, identities: list[str], image_size: int = 64, audio_seconds: float = 1.0):
        super().__init__()
        if int(image_size) != 64:
            raise InputError(f"expected image_size 64 for voice2face (the original generates 64x64), got {image_size}")
        if len(identities) < 1:
            raise InputError("expected at least one identity for voice2face's classifiers, got none")
        self.identities = list(identities)
        self.image_size = 64
        self.audio_seconds = float(audio_seconds)
        self.voice_embed = VoiceEmbedNet()
        self.speaker = Classifier(len(self.identities))
        self.generator = Generator()
        self.eval()

    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        """PairDataset audio [B, 1, T] -> L2-normalised voice embedding [B, 64] (gan_train.py's F.normalize)."""
        return F.normalize(self.voice_embed(wen_fbank(audio)), dim=1)

    def forward(self, audio: torch.Tensor, noise: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.embed(audio)
        if noise:
            emb = F.normalize(emb + NOISE_STD * torch.randn_like(emb), dim=1)
        return self.generator(emb), emb

    @torch.no_grad()
    def generate(self, batch: dict) -> torch.Tensor:
        """Collated batch (``audio`` float32 [B, 1, T]) -> faces float32 [B, 3, 64, 64] in [0, 1] (no noise:
        the original's gan_test.py adds none)."""
        was_training = self.training
        self.eval()
        try:
            fake, _ = self(batch["audio"].to(next(self.parameters()).device), noise=False)
        finally:
            self.train(was_training)
        return ((fake.clamp(-1, 1) + 1) / 2).float()

    @classmethod
    def from_checkpoint(cls, ckpt: dict, device: str = "cpu") -> "Voice2Face":
        model = cls(ckpt["identities"], int(ckpt["image_size"]), float(ckpt["audio_seconds"]))
        load_state(model, ckpt, "voice2face")
        return model.to(device).eval()


def load_state(model: nn.Module, ckpt: dict, what: str) -> None:
    """The checkpoint's ``state["generator"]`` into ``model``; missing or ill-fitting weights -> InputError."""
    state = ckpt.get("state", {}).get("generator")
    if state is None:
        raise InputError(f"expected generator weights in checkpoint {ckpt.get('path')}, found none")
    want = model.state_dict()
    for key, tensor in state.items():
        if key in want and tuple(want[key].shape) != tuple(tensor.shape):
            raise InputError(f"checkpoint {ckpt.get('path')} weight {key} has shape {tuple(tensor.shape)}, the "
                             f"{what} model for {len(ckpt['identities'])} identities expects {tuple(want[key].shape)}")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(f"checkpoint {ckpt.get('path')} does not fit the {what} model: "
                         f"{str(exc).splitlines()[0]}") from None


REGISTER_MODELS = (Entry("voice2face", "Voice2Face", "Wen et al. 2019: voice embedding -> face GAN",
                         {"trainer": "w2p_eval.train.voice2face:train"}, order=80),)
