"""dlib's 128-d face descriptor (ResNet, LFW 99.38 %) as a frozen identity backbone.

Model files come from the ``face-recognition-models`` package, located with
``importlib.util.find_spec`` (the package itself is never imported). Inputs are face crops, so
the 5-point shape predictor runs on a fixed box covering the crop (no detector): the face is
aligned with ``dlib.get_face_chip`` (150 px, padding 0.25) and described. Small inputs (64 px)
are upsampled to ``upsample_to`` px first.

Two backbones share that alignment:

- ``dlib_resnet`` (default): the descriptor network read from the ``.dat`` file into torch
  (:mod:`w2p_eval.judges.dlib_torch`), batched, on CPU (oneDNN/MKL) or CUDA;
- ``dlib_resnet_native``: the same network run by dlib-bin (no BLAS, no CUDA), kept for checking.

The alignment (upsampling, shape predictor, face chip) is per image on the CPU; with
``workers`` > 1 it runs in that many worker processes (a pool kept for the backbone's lifetime).
"""

from __future__ import annotations

import abc
import importlib.util
import logging
import math
import multiprocessing as mp
import os
import weakref
from pathlib import Path

import numpy as np
import torch

from w2p_eval.errors import MissingWeightsError
from w2p_eval.judges.dlib_torch import load_dlib_face_net
from w2p_eval.judges.identity import IdentityBackbone, check_images, resize_batch
from w2p_eval.registry import Entry

log = logging.getLogger(__name__)

PREDICTOR_FILE = "shape_predictor_5_face_landmarks.dat"
DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"
CHIP_SIZE = 150
CHIP_PADDING = 0.25
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
    missing = DESCRIPTOR_FILE if not any((f / DESCRIPTOR_FILE).is_file() for f in where) else PREDICTOR_FILE
    raise MissingWeightsError("dlib face descriptor", missing,
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


# ------------------------------------------------------------------------------------------- alignment
class Aligner:
    """5-point shape predictor on the fixed face box + ``dlib.get_face_chip`` (one process)."""

    def __init__(self, predictor_path: str, upsample_to: int):
        import dlib  # lazy: backend chosen by name

        self._dlib = dlib
        self.predictor = dlib.shape_predictor(str(predictor_path))
        self.upsample_to = int(upsample_to)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, S, S, 3] -> aligned chips uint8 [N, 150, 150, 3]."""
        big = images if images.shape[1] >= self.upsample_to else resize_batch(images, self.upsample_to)
        out = np.empty((len(big), CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
        l, t, r, b = FACE_BOX
        for i, im in enumerate(big):
            im = np.ascontiguousarray(im)
            h, w = im.shape[:2]
            box = self._dlib.rectangle(int(l * w), int(t * h), int(r * w) - 1, int(b * h) - 1)
            shape = self.predictor(im, box)
            out[i] = self._dlib.get_face_chip(im, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        return out


_WORKER_ALIGNER: Aligner | None = None


def _init_align_worker(predictor_path: str, upsample_to: int) -> None:
    global _WORKER_ALIGNER
    os.environ["OMP_NUM_THREADS"] = "1"
    _WORKER_ALIGNER = Aligner(predictor_path, upsample_to)


def _align_in_worker(images: np.ndarray) -> np.ndarray:
    return _WORKER_ALIGNER(images)


class _DlibAligned(IdentityBackbone):
    """Shared part of the dlib backbones: alignment (optionally in ``workers`` processes) + linear head."""

    input_size = CHIP_SIZE
    train_config = {"epochs": 400, "lr": 1e-2, "weight_decay": 1e-3, "batch_size": 4096, "patience": 60}
    descriptor_engine = ""

    def __init__(self, device: str = "cpu", upsample_to: int = CHIP_SIZE, workers: int = 1, batch_size: int = 64):
        super().__init__(device)
        import dlib  # lazy: backend chosen by name

        folder = model_dir()
        self._dlib = dlib
        self.predictor_path = folder / PREDICTOR_FILE
        self.descriptor_path = folder / DESCRIPTOR_FILE
        self.input_size = int(upsample_to)
        self.workers = max(1, int(workers))
        self.batch_size = max(1, int(batch_size))
        self._aligner = Aligner(str(self.predictor_path), self.input_size)
        self._pool = None

    def describe(self) -> dict:
        return {**super().describe(), "descriptor": self.descriptor_engine}

    def _get_pool(self):
        if self._pool is None:
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            self._pool = mp.get_context(method).Pool(self.workers, initializer=_init_align_worker,
                                                     initargs=(str(self.predictor_path), self.input_size))
            weakref.finalize(self, self._pool.terminate)
            log.info("alignment runs in %d worker processes (%s)", self.workers, method)
        return self._pool

    def close(self) -> None:
        """Stop the alignment workers (started on first use when ``workers`` > 1)."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None

    def chips(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, S, S, 3] -> aligned 150 px chips uint8 [N, 150, 150, 3]."""
        check_images(images)
        if self.workers == 1 or len(images) < 2:
            return self._aligner(images)
        n = min(self.workers, len(images))
        size = math.ceil(len(images) / n)
        parts = [images[i:i + size] for i in range(0, len(images), size)]
        return np.concatenate(self._get_pool().map(_align_in_worker, parts))

    @abc.abstractmethod
    def describe_chips(self, chips: np.ndarray) -> torch.Tensor:
        """uint8 chips [N, 150, 150, 3] -> float32 CPU descriptors [N, 128]."""

    def trunk(self, images: np.ndarray) -> torch.Tensor:
        """uint8 [N, S, S, 3] -> float32 [N, 128] descriptors: aligned and described ``batch_size`` faces at a
        time, so memory stays bounded by the batch whatever N is."""
        check_images(images)
        out = [self.describe_chips(self.chips(images[i:i + self.batch_size]))
               for i in range(0, len(images), self.batch_size)]
        return torch.cat(out) if out else self.describe_chips(np.zeros((0, CHIP_SIZE, CHIP_SIZE, 3), np.uint8))

    def make_head(self, n_classes: int) -> torch.nn.Module:
        return LinearHead(128, n_classes)


class DlibResnetBackbone(_DlibAligned):
    """dlib alignment + dlib's descriptor network in torch (batched; CPU or CUDA) + a linear head."""

    name = "dlib_resnet"
    descriptor_engine = "torch"

    def __init__(self, device: str = "cpu", upsample_to: int = CHIP_SIZE, workers: int = 1, batch_size: int = 64):
        super().__init__(device, upsample_to, workers, batch_size)
        self.net = load_dlib_face_net(self.descriptor_path, device)

    def version(self) -> str:
        return f"dlib {self._dlib.__version__} alignment, torch {torch.__version__} descriptor"

    def describe_chips(self, chips: np.ndarray) -> torch.Tensor:
        """uint8 chips [N, 150, 150, 3] -> float32 CPU [N, 128], ``batch_size`` at a time."""
        out = []
        with torch.inference_mode():
            for i in range(0, len(chips), self.batch_size):
                x = torch.from_numpy(chips[i:i + self.batch_size]).to(self.device)
                out.append(self.net(x).float().cpu())
        return torch.cat(out) if out else torch.zeros((0, 128))


class DlibResnetNativeBackbone(_DlibAligned):
    """dlib alignment + dlib-bin's own descriptor (CPU, no BLAS): the reference for checking."""

    name = "dlib_resnet_native"
    descriptor_engine = "dlib"

    def __init__(self, device: str = "cpu", upsample_to: int = CHIP_SIZE, workers: int = 1, batch_size: int = 64):
        super().__init__(device, upsample_to, workers, batch_size)
        self.descriptor = self._dlib.face_recognition_model_v1(str(self.descriptor_path))

    def version(self) -> str:
        return f"dlib {self._dlib.__version__}"

    def describe_chips(self, chips: np.ndarray) -> torch.Tensor:
        if len(chips) == 0:
            return torch.zeros((0, 128))
        desc = self.descriptor.compute_face_descriptor(list(chips))
        return torch.tensor(np.array([np.asarray(d) for d in desc]), dtype=torch.float32)


def require(**options) -> None:
    """Preflight (issue 31): the dlib descriptor and predictor files are on disk, or MissingWeightsError naming
    them, where they were looked for and how to get them; nothing is loaded."""
    model_dir()


# registered judges (read by w2p_eval.judges.JUDGES without importing this module; meta require: the preflight)
REGISTER_JUDGES = (
    Entry("dlib_resnet", "DlibResnetBackbone", "dlib's descriptor in torch + a linear head",
          {"judge": "identity", "require": "w2p_eval.judges.dlib_face:require"}, order=10),
    Entry("dlib_resnet_native", "DlibResnetNativeBackbone", "dlib_resnet in dlib-bin",
          {"judge": "identity", "require": "w2p_eval.judges.dlib_face:require"}, order=50),
)
