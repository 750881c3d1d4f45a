"""face-alignment's 2D-FAN landmark backend (Bulat & Tzimiropoulos 2017) with its S3FD face detector.

Nothing downloads: the weights must already be in ``$TORCH_HOME/hub/checkpoints`` under the exact
file names the installed face-alignment version asks for (read from the package itself, e.g.
``2DFAN4-11f355bf06.pth.tar`` and ``s3fd-619a316812.pth`` for 1.5.x); otherwise
:class:`~w2p_eval.errors.MissingWeightsError` names them. Every option that changed between
face-alignment versions (flip_input, face_detector, compile) is passed explicitly, and the package
version is part of ``version`` (it goes into every result row).
"""

from __future__ import annotations

import os
import warnings
from importlib import metadata
from pathlib import Path
from urllib.parse import urlparse

import cv2
import numpy as np
import torch

from w2p_eval.errors import MissingWeightsError
from w2p_eval.judges.landmarks import (
    AUTO_TARGET_PX, DEFAULT_MARGIN, LandmarkBackend, LandmarkResult, as_rgb_uint8, finish_result,
)
from w2p_eval.registry import Entry
from w2p_eval.utils import select_device

DOWNLOAD_HINT = "the face-alignment project (https://www.adrianbulat.com/downloads/python-fan/)"


def fan_weight_files() -> dict[str, str]:
    """{"fan": file name of the 2D-FAN-4 weights, "s3fd": file name of the detector weights}."""
    import face_alignment.detection.sfd.sfd_detector  # lazy: backend chosen by name (binds face_alignment)

    sfd_detector = face_alignment.detection.sfd.sfd_detector
    return {
        "fan": os.path.basename(urlparse(face_alignment.api.models_urls["2DFAN-4"]).path),
        "s3fd": os.path.basename(urlparse(sfd_detector.models_urls["s3fd"]).path),
    }


def fan_checkpoint_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` (torch.hub's own rule, which face-alignment uses)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def check_fan_weights() -> dict[str, Path]:
    """Paths of both weight files, or MissingWeightsError naming the first one absent."""
    folder = fan_checkpoint_dir()
    paths = {key: folder / name for key, name in fan_weight_files().items()}
    for key, path in paths.items():
        if not path.is_file():
            what = "face-alignment 2D-FAN" if key == "fan" else "face-alignment S3FD face detector"
            raise MissingWeightsError(what, path.name, str(folder), DOWNLOAD_HINT)
    return paths


class FanBackend(LandmarkBackend):
    """2D-FAN-4 + S3FD. Images whose short side is below ``min_side`` px are upscaled (bilinear)
    before detection, and the points are mapped back to the input's pixel grid."""

    name = "fan"

    def __init__(self, device: str | None = None, flip_input: bool = False, min_side: int = AUTO_TARGET_PX,
                 margin: float = DEFAULT_MARGIN):
        paths = check_fan_weights()  # before constructing anything: never a silent download
        import face_alignment  # lazy: backend chosen by name

        self.device = select_device(device)
        self.flip_input = bool(flip_input)
        self.min_side = max(128, int(min_side))  # S3FD pools 7 times: smaller inputs crash it
        self.margin = float(margin)
        self.model = face_alignment.FaceAlignment(
            face_alignment.LandmarksType.TWO_D,
            device=self.device,
            flip_input=self.flip_input,
            face_detector="sfd",
            face_detector_kwargs={"path_to_detector": str(paths["s3fd"])},
            compile=False,
            verbose=False,
        )
        self.version = f"face-alignment {metadata.version('face-alignment')} 2DFAN-4+s3fd"

    def settings(self) -> dict:
        return {"flip_input": self.flip_input, "face_detector": "sfd", "min_side": self.min_side,
                "margin": self.margin, "network": "2DFAN-4"}

    def __call__(self, img: np.ndarray) -> LandmarkResult:
        img = as_rgb_uint8(img)
        scale = 1.0
        work = img
        if min(img.shape[:2]) < self.min_side:
            scale = self.min_side / min(img.shape[:2])
            size = (round(img.shape[1] * scale), round(img.shape[0] * scale))
            work = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "No faces were detected." is a result here, not a warning
            boxes = self.model.face_detector.detect_from_image(work.copy())
            if len(boxes) == 0:
                return LandmarkResult.missing("no face")
            # FAN runs once, on the most confident face (not on every box the detector returns)
            best_box = max(boxes, key=lambda b: float(b[4]) if len(b) > 4 else 0.0)
            points = self.model.get_landmarks_from_image(work, detected_faces=[best_box])
        if not points:
            return LandmarkResult.missing("no face")
        box = np.asarray(best_box[:4], np.float32) / scale
        score = float(best_box[4]) if len(best_box) > 4 else float("nan")
        pts = np.asarray(points[0], np.float32)[:, :2]
        # face-alignment returns pixel coordinates of the (upscaled) image; map back to the input grid
        pts = (pts + 0.5) / scale - 0.5
        return finish_result(pts, box, score, img.shape, self.margin)


def require(**options) -> None:
    """Preflight: both face-alignment weight files are on disk (:func:`check_fan_weights`)."""
    check_fan_weights()


# spawn: a torch landmark judge's worker processes are spawned, not forked
REGISTER_JUDGES = (Entry("fan", "FanBackend", "face-alignment 2D-FAN", {"judge": "landmark", "spawn": True},
                         order=110),)
