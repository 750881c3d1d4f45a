"""The one protocol every face generator follows: WAV2PIX, each baseline, and real faces."""

from __future__ import annotations

import abc

import torch


class FaceGenerator(torch.nn.Module, abc.ABC):
    """Audio in, faces out.

    Subclasses set ``model_name``, ``image_size``, ``audio_seconds`` and ``identities`` and
    implement :meth:`generate` and :meth:`from_checkpoint`.
    """

    model_name: str = "generator"
    image_size: int = 64
    audio_seconds: float = 1.0
    identities: list[str] = []

    @abc.abstractmethod
    def generate(self, batch: dict) -> torch.Tensor:
        """Faces for a collated PairDataset batch.

        ``batch["audio"]`` is float32 [B, 1, T]; ``batch["image"]`` (the paired real faces, [-1, 1])
        and ``batch["pair_id"]`` are there too (only ``real_faces`` may look at the image).
        Returns float32 [B, 3, image_size, image_size] in [0, 1].
        """

    @classmethod
    @abc.abstractmethod
    def from_checkpoint(cls, ckpt: dict, device: str = "cpu") -> "FaceGenerator":
        """Rebuild the generator from a loaded checkpoint dict (see models/checkpoint.py)."""
