"""WAV2PIX (Duarte et al., ICASSP 2019): raw speech -> speech embedding -> face, as in the reference.

Modules follow ../shared/docs/wav2pix-reference.md exactly:

- :class:`SpeechEncoder`: 6 x [pad (6, 7) -> Conv1d(k15, s4) -> BatchNorm1d -> LeakyReLU(0.3)],
  channels 1 -> 16 -> 32 -> 128 -> 256 -> 512 -> 1024, flatten -> 256 -> 128 -> 128 (embedding).
- :class:`AuxClassifier`: Linear(128, 200) -> BN -> LeakyReLU(0.2) -> Linear(200, n_identities) -> BN.
- :class:`ImageGenerator`: SpectralNorm(ConvTranspose2d(k4, no bias)) stack with Dropout(0.5) + ReLU, tanh.
- :class:`Discriminator`: SpectralNorm(Conv2d(k4, s2, p1, no bias)) + LeakyReLU(0.2) down to 4x4, the
  embedding tiled to 4x4 and concatenated, a final plain Conv2d(C + 128 -> 1, k4, no bias).
- :class:`Wav2Pix`: encoder + aux classifier + image generator, the :class:`FaceGenerator` to evaluate.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from w2p_eval.data.audio import SAMPLE_RATE
from w2p_eval.errors import InputError
from w2p_eval.models.base import FaceGenerator
from w2p_eval.registry import Entry

EMBED_DIM = 128
ENCODER_CHANNELS = (16, 32, 128, 256, 512, 1024)
GENERATOR_CHANNELS = {64: (512, 256, 128, 64, 3), 128: (1024, 512, 256, 128, 64, 3)}
DISCRIMINATOR_CHANNELS = {64: (64, 128, 256, 512), 128: (64, 128, 256, 512, 1024)}


def init_weights(module: nn.Module) -> None:
    """Reference init: conv/linear weights N(0, 0.02), biases 0; BatchNorm scale N(1, 0.02), shift 0.

    Call before wrapping layers in spectral norm (the parametrisation keeps the raw weight).
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def encoder_lengths(n_samples: int, n_blocks: int = 6, kernel: int = 15, stride: int = 4) -> list[int]:
    """Sequence length after each encoder block: 16000 -> [4000, 1000, 250, 63, 16, 4]."""
    lengths, n = [], int(n_samples)
    for _ in range(n_blocks):
        n = (n + 13 - kernel) // stride + 1
        lengths.append(n)
    return lengths


def n_audio_samples(audio_seconds: float) -> int:
    return int(round(SAMPLE_RATE * float(audio_seconds)))


@functools.lru_cache(maxsize=None)
def min_audio_samples() -> int:
    """The shortest input the six stride-4 encoder blocks reduce to at least one step (1366 = 0.085 s)."""
    n = 1
    while encoder_lengths(n)[-1] < 1:
        n += 1
    return n


class SpeechEncoder(nn.Module):
    """Raw speech float32 [B, 1, T] (T = 16000 * audio_seconds) -> embedding float32 [B, 128].

    The flatten size follows T: 1024 x 4 = 4096 for 1.0 s, 1024 x 2 for 0.3 s.
    """

    def __init__(self, n_samples: int = SAMPLE_RATE, embed_dim: int = EMBED_DIM):
        super().__init__()
        self.n_samples = int(n_samples)
        last = encoder_lengths(self.n_samples)[-1]
        if last < 1:
            least = min_audio_samples()
            raise InputError(f"expected at least {least} samples ({least / SAMPLE_RATE:.3f} s) of audio for the "
                             f"speech encoder, got {self.n_samples} ({self.n_samples / SAMPLE_RATE:.3f} s)")
        blocks, c_in = [], 1
        for c_out in ENCODER_CHANNELS:
            blocks += [
                nn.ConstantPad1d((6, 7), 0.0),
                nn.Conv1d(c_in, c_out, kernel_size=15, stride=4),
                nn.BatchNorm1d(c_out),
                nn.LeakyReLU(0.3),
            ]
            c_in = c_out
        self.convs = nn.Sequential(*blocks)
        self.flat_dim = ENCODER_CHANNELS[-1] * last
        self.fc = nn.Sequential(
            nn.Linear(self.flat_dim, 256), nn.ReLU(),
            nn.Linear(256, 128), nn.ReLU(),
            nn.Linear(128, embed_dim),
        )
        init_weights(self)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.dim() == 2:
            audio = audio.unsqueeze(1)
        if audio.shape[-1] != self.n_samples:
            raise InputError(
                f"expected audio of {self.n_samples} samples ({self.n_samples / SAMPLE_RATE:.2f} s), "
                f"got {audio.shape[-1]} samples"
            )
        return self.fc(self.convs(audio).flatten(1))


class AuxClassifier(nn.Module):
    """Embedding [B, 128] -> identity logits [B, n_identities] (the original hard-coded 10)."""

    def __init__(self, n_identities: int, embed_dim: int = EMBED_DIM):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(embed_dim, 200), nn.BatchNorm1d(200), nn.LeakyReLU(0.2),
            nn.Linear(200, n_identities), nn.BatchNorm1d(n_identities),
        )
        init_weights(self)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.net(emb)


def _check_size(image_size: int) -> int:
    if int(image_size) not in GENERATOR_CHANNELS:
        raise InputError(f"expected image size 64 or 128, got {image_size}")
    return int(image_size)


class ImageGenerator(nn.Module):
    """Embedding [B, 128] -> faces float32 [B, 3, S, S] in [-1, 1] (tanh), S = 64 or 128. No noise z."""

    def __init__(self, image_size: int = 64, embed_dim: int = EMBED_DIM):
        super().__init__()
        self.image_size = _check_size(image_size)
        chans = GENERATOR_CHANNELS[self.image_size]
        layers, c_in = [], embed_dim
        for i, c_out in enumerate(chans):
            first, last = i == 0, i == len(chans) - 1
            conv = nn.ConvTranspose2d(c_in, c_out, 4, 1 if first else 2, 0 if first else 1, bias=False)
            init_weights(conv)
            layers.append(spectral_norm(conv))
            layers += [nn.Tanh()] if last else [nn.Dropout(0.5), nn.ReLU()]
            c_in = c_out
        self.net = nn.Sequential(*layers)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.net(emb[:, :, None, None])


class Discriminator(nn.Module):
    """(images [B, 3, S, S] in [-1, 1], embedding [B, 128]) -> (score [B] raw, features [B, C, 4, 4]).

    ``features`` are the body activations before the embedding is concatenated (feature matching).
    """

    def __init__(self, image_size: int = 64, embed_dim: int = EMBED_DIM):
        super().__init__()
        self.image_size = _check_size(image_size)
        layers, c_in = [], 3
        for c_out in DISCRIMINATOR_CHANNELS[self.image_size]:
            conv = nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False)
            init_weights(conv)
            layers += [spectral_norm(conv), nn.LeakyReLU(0.2)]
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(c_in + embed_dim, 1, 4, 1, 0, bias=False)
        init_weights(self.head)

    def forward(self, images: torch.Tensor, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.body(images)
        tiled = emb[:, :, None, None].expand(-1, -1, feats.shape[2], feats.shape[3])
        score = self.head(torch.cat([feats, tiled], dim=1)).flatten()
        return score, feats


class Wav2Pix(FaceGenerator):
    """Speech encoder + auxiliary identity classifier + image generator (the reference "G").

    ``forward(audio [B, 1, T])`` -> (faces [B, 3, S, S] in [-1, 1], embedding [B, 128], logits [B, n_ids]).
    ``generate(batch)`` -> faces in [0, 1]. Evaluation is deterministic (eval mode) unless
    ``stochastic`` is set, which keeps dropout on as the original inference did (BatchNorm still
    uses its running statistics, so a face never depends on the rest of its batch).
    """

    model_name = "wav2pix"

    def __init__(self, identities: list[str], image_size: int = 64, audio_seconds: float = 1.0,
                 model_name: str = "wav2pix"):
        super().__init__()
        if len(identities) < 1:
            raise InputError("expected at least one identity for the auxiliary classifier, got none")
        self.identities = list(identities)
        self.image_size = _check_size(image_size)
        self.audio_seconds = float(audio_seconds)
        self.model_name = model_name
        self.stochastic = False
        self.encoder = SpeechEncoder(n_audio_samples(audio_seconds))
        self.aux = AuxClassifier(len(self.identities))
        self.generator = ImageGenerator(self.image_size)
        self.eval()  # evaluation mode by default; the trainer switches to train()

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        emb = self.encoder(audio)
        return self.generator(emb), emb, self.aux(emb)

    def set_stochastic(self, on: bool = True) -> "Wav2Pix":
        """Keep dropout active at generation time (the original's random outputs)."""
        self.stochastic = bool(on)
        return self

    @torch.no_grad()
    def generate(self, batch: dict) -> torch.Tensor:
        """Collated batch (``audio`` float32 [B, 1, T]) -> faces float32 [B, 3, S, S] in [0, 1]."""
        was_training = self.training
        self.eval()
        if self.stochastic:
            for m in self.modules():
                if isinstance(m, nn.Dropout):
                    m.train()
        try:
            audio = batch["audio"].to(next(self.parameters()).device)
            fake = self.generator(self.encoder(audio))
        finally:
            self.train(was_training)
        return (fake + 1) / 2

    @classmethod
    def from_checkpoint(cls, ckpt: dict, device: str = "cpu") -> "Wav2Pix":
        """Rebuild from a checkpoint dict; a shape mismatch is an InputError naming both values."""
        model = cls(ckpt["identities"], int(ckpt["image_size"]), float(ckpt["audio_seconds"]),
                    model_name=str(ckpt.get("model", "wav2pix")))
        state = ckpt.get("state", {}).get("generator")
        if state is None:
            raise InputError(f"expected generator weights in checkpoint {ckpt.get('path')}, found none")
        want = model.state_dict()
        for key, tensor in state.items():
            if key in want and tuple(want[key].shape) != tuple(tensor.shape):
                raise InputError(
                    f"checkpoint {ckpt.get('path')} weight {key} has shape {tuple(tensor.shape)}, the model "
                    f"for {len(model.identities)} identities / {model.image_size} px / "
                    f"{model.audio_seconds} s expects {tuple(want[key].shape)}"
                )
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise InputError(f"checkpoint {ckpt.get('path')} does not fit the WAV2PIX model: "
                             f"{str(exc).splitlines()[0]}") from None
        return model.to(device).eval()


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters (spectral-norm u/v vectors are buffers, not counted)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# registered models (w2p_eval.models.registry.MODELS): meta trainer = the function that trains it, baseline
REGISTER_MODELS = (
    Entry("wav2pix", "Wav2Pix", "the WAV2PIX speech-to-face GAN", {"trainer": "w2p_eval.train.gan:train"}, order=10),
    Entry("l1_regression", "Wav2Pix", "WAV2PIX without the discriminator (L1 only)",
          {"trainer": "w2p_eval.train.gan:train", "baseline": True}, order=20),
)
