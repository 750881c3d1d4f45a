"""SF2F (Bai et al., "Speech Fusion to Face"), reimplemented from BAI-Yeqi/SF2F_PyTorch (``models/``,
``options/vox/sf2f``).

- :class:`VoiceEncoder` (``V2F1DCNN`` with ``inception_mode``): 40-band log mel [B, 40, L] -> 4 inception
  blocks (parallel Conv1d k2/k3/k5/k7, stride 2, no bias, each + BatchNorm1d + ReLU, channels/4 each;
  channels 256-384-576-864), Conv1d(864 -> 512, k3, s2, p1, bias), average over time, L2-normalised -> [B, 512].
- :class:`AttentionFuser` (``AttentionFuserV1``, ``attention_type: general``, ``ignore_tanh``): the
  embeddings of N segments [B, N, 512] attend to each other (Linear 512x512 no bias on the queries,
  softmax, Linear(1024 -> 512, no bias) on [mix, query]), averaged over N, L2-normalised.
- :class:`FaceDecoder` (``FaceGanDecoder``; ``FaceGanDecoder_v2`` at 128 px): Linear(512 -> 16384, no bias) +
  BatchNorm1d + GLU -> [B, 512, 4, 4], 4 upBlocks (nearest x2, Conv3x3 no bias to 2C, BatchNorm2d, GLU:
  512-256-128-64-32) -> a 64 px head (Conv3x3 32->32, LeakyReLU(0.01), Conv1x1 -> 3); at 128 px one more
  upBlock (32 -> 16) and its head. Outputs are not squashed (trained towards the normalised faces).
- :class:`PatchDiscriminator` / :class:`AcDiscriminator` (``discriminators.py``, ``build_cnn`` with
  ``C4-64-2,C4-128-2,C4-256-2`` (+ ``C4-512-2`` at 128 px), valid padding, BatchNorm, LeakyReLU(0.1)
  before every conv but the first): a 1x1 conv patch score; global average -> Linear(256, 1024) -> a real
  score and identity logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from w2p_eval.errors import InputError
from w2p_eval.models.base import FaceGenerator
from w2p_eval.models.speech_features import segments, sf2f_logfbank
from w2p_eval.models.voice2face import load_state
from w2p_eval.registry import Entry

N_MELS = 40
ENCODER_CHANNELS = (256, 384, 576, 864)
EMBED_DIM = 512
DECODER_CHANNELS = (512, 256, 128, 64, 32)
DISC_CHANNELS = {64: (64, 128, 256), 128: (64, 128, 256, 512)}
RESOLUTIONS = {64: (64,), 128: (64, 128)}  # the images SF2F's decoder returns at each image size


class _Conv1dBlock(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, padding: int):
        super().__init__(nn.Conv1d(c_in, c_out, kernel, 2, padding, bias=False), nn.BatchNorm1d(c_out), nn.ReLU())


class InceptionBlock(nn.Module):
    """[B, C_in, L] -> [B, C_out, ceil(L / 2)]: k2/k3/k5/k7 stride-2 branches of C_out / 4 channels each
    (the k2 branch's extra last step dropped when it is one longer, as in the original)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        q = c_out // 4
        self.branches = nn.ModuleList([_Conv1dBlock(c_in, q, 2, 1), _Conv1dBlock(c_in, q, 3, 1),
                                       _Conv1dBlock(c_in, q, 5, 2), _Conv1dBlock(c_in, q, 7, 3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = [b(x) for b in self.branches]
        if out[0].shape[-1] > out[1].shape[-1]:
            out[0] = out[0][:, :, :-1]
        return torch.cat(out, dim=1)


class VoiceEncoder(nn.Module):
    """Log mel float32 [B, 40, L] -> L2-normalised embedding float32 [B, 512]."""

    def __init__(self, n_mels: int = N_MELS, channels=ENCODER_CHANNELS, embed_dim: int = EMBED_DIM):
        super().__init__()
        blocks, c_in = [], n_mels
        for c_out in channels:
            blocks.append(InceptionBlock(c_in, c_out))
            c_in = c_out
        blocks.append(nn.Conv1d(c_in, embed_dim, 3, 2, 1, bias=True))
        self.model = nn.Sequential(*blocks)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model(mel).mean(dim=2), dim=1)


class AttentionFuser(nn.Module):
    """Segment embeddings float32 [B, N, 512] -> one fused, L2-normalised embedding float32 [B, 512]."""

    def __init__(self, dim: int = EMBED_DIM):
        super().__init__()
        self.linear_in = nn.Linear(dim, dim, bias=False)
        self.linear_out = nn.Linear(2 * dim, dim, bias=False)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        query = self.linear_in(emb)
        weights = torch.softmax(query @ emb.transpose(1, 2), dim=-1)  # [B, N, N]
        out = self.linear_out(torch.cat([weights @ emb, query], dim=2))
        return F.normalize(out.mean(dim=1), dim=1)


class _GLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * torch.sigmoid(b)


def _up_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, 2 * c_out, 3, 1, 1, bias=False),
                         nn.BatchNorm2d(2 * c_out), _GLU())


def _head(c: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.LeakyReLU(0.01), nn.Conv2d(c, 3, 1))


class FaceDecoder(nn.Module):
    """Embedding float32 [B, 512] -> faces: a tuple of float32 [B, 3, r, r] for r in RESOLUTIONS[image_size]."""

    def __init__(self, image_size: int = 64, dim: int = EMBED_DIM, channels=DECODER_CHANNELS):
        super().__init__()
        self.dim = dim
        self.fc = nn.Sequential(nn.Linear(dim, dim * 4 * 4 * 2, bias=False), nn.BatchNorm1d(dim * 4 * 4 * 2), _GLU())
        self.up = nn.Sequential(*[_up_block(a, b) for a, b in zip(channels[:-1], channels[1:])])
        self.head = _head(channels[-1])
        self.mid = None
        if image_size == 128:
            self.mid = _up_block(channels[-1], channels[-1] // 2)
            self.mid_head = _head(channels[-1] // 2)

    def forward(self, emb: torch.Tensor) -> tuple[torch.Tensor, ...]:
        code = self.up(self.fc(emb).view(emb.shape[0], self.dim, 4, 4))
        out = (self.head(code),)
        if self.mid is not None:
            out += (self.mid_head(self.mid(code)),)
        return out


def _disc_cnn(channels) -> nn.Sequential:
    layers, c_in = [], 3
    for i, c_out in enumerate(channels):
        if i:
            layers += [nn.BatchNorm2d(c_in), nn.LeakyReLU(0.1)]
        layers.append(nn.Conv2d(c_in, c_out, 4, 2, 0))
        c_in = c_out
    return nn.Sequential(*layers)


class PatchDiscriminator(nn.Module):
    """Faces float32 [B, 3, r, r] -> patch logits float32 [B, 1, h, w]."""

    def __init__(self, channels):
        super().__init__()
        self.cnn = _disc_cnn(channels)
        self.classifier = nn.Conv2d(channels[-1], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.cnn(x))


class AcDiscriminator(nn.Module):
    """Faces float32 [B, 3, r, r] -> (real logit [B, 1], identity logits [B, n_identities])."""

    def __init__(self, channels, n_identities: int):
        super().__init__()
        self.cnn = _disc_cnn(channels)
        self.fc = nn.Linear(channels[-1], 1024)
        self.real_classifier = nn.Linear(1024, 1)
        self.id_classifier = nn.Linear(1024, n_identities)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v = self.fc(self.cnn(x).mean(dim=(2, 3)))
        return self.real_classifier(v), self.id_classifier(v)


class Critics(nn.Module):
    """One image and one identity discriminator per output resolution (``image``/``identity`` at 64 px;
    ``image_low``/``image_mid``, ``identity_low``/``identity_mid`` at 128 px)."""

    def __init__(self, image_size: int, n_identities: int):
        super().__init__()
        sizes = RESOLUTIONS[image_size]
        self.image = nn.ModuleList([PatchDiscriminator(DISC_CHANNELS[r]) for r in sizes])
        self.identity = nn.ModuleList([AcDiscriminator(DISC_CHANNELS[r], n_identities) for r in sizes])


class SF2F(FaceGenerator):
    """Voice encoder + attention fuser + face decoder.

    ``forward(audio [B, 1, T], fuse)`` -> tuple of faces (one per resolution, the last at ``image_size``),
    in the [-1, 1] face space. ``fuse``: embed each ``segment_frames`` window (stride ``segment_stride``)
    and fuse them (the 2nd training stage and generation once the fuser is trained); else one embedding of
    the whole clip (the 1st stage).
    """

    model_name = "sf2f"

    def __init__(self, identities: list[str], image_size: int = 64, audio_seconds: float = 1.0,
                 segment_frames: int = 50, segment_stride: int = 25, fused: bool = False):
        super().__init__()
        if int(image_size) not in RESOLUTIONS:
            raise InputError(f"expected image_size 64 or 128 for sf2f, got {image_size}")
        self.identities = list(identities)
        self.image_size = int(image_size)
        self.audio_seconds = float(audio_seconds)
        self.segment_frames, self.segment_stride = int(segment_frames), int(segment_stride)
        self.fused = bool(fused)  # generation uses the fuser (set once the fuser stage has run)
        self.encoder = VoiceEncoder()
        self.fuser = AttentionFuser()
        self.decoder = FaceDecoder(self.image_size)
        self.eval()

    def embed(self, audio: torch.Tensor, fuse: bool) -> torch.Tensor:
        mel = sf2f_logfbank(audio)
        if not fuse:
            return self.encoder(mel)
        seg = segments(mel, self.segment_frames, self.segment_stride)  # [B, N, 40, frames]
        b, n = seg.shape[:2]
        return self.fuser(self.encoder(seg.flatten(0, 1)).view(b, n, -1))

    def forward(self, audio: torch.Tensor, fuse: bool = False) -> tuple[torch.Tensor, ...]:
        return self.decoder(self.embed(audio, fuse))

    @torch.no_grad()
    def generate(self, batch: dict) -> torch.Tensor:
        """Collated batch (``audio`` float32 [B, 1, T]) -> faces float32 [B, 3, S, S] in [0, 1]."""
        was_training = self.training
        self.eval()
        try:
            fake = self(batch["audio"].to(next(self.parameters()).device), fuse=self.fused)[-1]
        finally:
            self.train(was_training)
        return ((fake.clamp(-1, 1) + 1) / 2).float()

    @classmethod
    def from_checkpoint(cls, ckpt: dict, device: str = "cpu") -> "SF2F":
        cfg = ckpt.get("config", {})
        model = cls(ckpt["identities"], int(ckpt["image_size"]), float(ckpt["audio_seconds"]),
                    int(cfg.get("segment_frames", 50)), int(cfg.get("segment_stride", 25)),
                    fused=bool(ckpt.get("extra", {}).get("fused", False)))
        load_state(model, ckpt, "sf2f")
        return model.to(device).eval()


REGISTER_MODELS = (Entry("sf2f", "SF2F", "SF2F (Bai et al.): speech fuser + face decoder",
                         {"trainer": "w2p_eval.train.sf2f:train"}, order=90),)
