"""Validate a landmark backend against human 68-point annotations (iBUG ``.pts`` files, 300-W).

Protocol: for each annotated photo, the image is cropped to a square around the annotated face
(side = ``CROP_CONTEXT`` (2) x the annotation's larger extent, clipped to the image) and scaled so its long side is at
most ``max_side`` px; the backend sees only that crop (detection + alignment, as in evaluation) and
its points are mapped back to the photo. Error = NME: the mean point-to-point distance divided by
the annotation's outer-eye-corner distance (points 37 and 46, 1-based iBUG = indexes 36 and 45).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from w2p_eval.data.images import load_image_rgb
from w2p_eval.errors import InputError
from w2p_eval.judges.landmarks import IMAGE_SUFFIXES, get_backend, score_images

LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 36, 45  # 0-based indexes of iBUG points 37 and 46
CROP_CONTEXT = 2.0  # validation crop side / annotated face extent


def read_pts(path: str | os.PathLike) -> np.ndarray:
    """Parse an iBUG ``.pts`` file -> float32 [n_points, 2] (x, y), converted to 0-based pixels.

    The format: ``version: 1``, ``n_points: 68``, ``{``, one "x y" line per point, ``}``; the
    coordinates are 1-based (Matlab convention of the 300-W annotations), so 1 is subtracted.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"expected a readable iBUG .pts file, got {path} ({exc.__class__.__name__})") from None
    try:
        head, rest = text.split("{", 1)
        body = rest.split("}", 1)[0]
        n_points = int(head.split("n_points:")[1].split()[0])
        pts = np.array(body.split(), dtype=np.float64).reshape(-1, 2)
    except (IndexError, ValueError):
        raise InputError(f"expected iBUG .pts text (n_points: N, then {{ x y lines }}), got {path}") from None
    if pts.shape[0] != n_points:
        raise InputError(f"expected {n_points} points as declared in {path}, got {pts.shape[0]}")
    return (pts - 1.0).astype(np.float32)


def outer_eye_distance(points: np.ndarray) -> np.ndarray:
    """Distance between the outer eye corners of [..., 68, 2] points -> [...]."""
    points = np.asarray(points, np.float64)
    return np.linalg.norm(points[..., LEFT_EYE_OUTER, :] - points[..., RIGHT_EYE_OUTER, :], axis=-1)


INNER = np.arange(17, 68)  # the 51 inner iBUG points (brows, nose, eyes, mouth): judges differ on the jaw line


def nme(pred: np.ndarray, ref: np.ndarray, points: np.ndarray | None = None) -> np.ndarray:
    """Normalised mean error per image: mean_k ||pred_k - ref_k|| / outer-eye distance of ``ref``.

    ``pred``, ``ref``: [N, 68, 2] or [68, 2] float pixels; ``points``: the point indexes averaged (default all 68;
    :data:`INNER` for the 51 inner points). Returns float64 [N] (or a 0-d value); NaN where either side has NaN
    points (not detected) or the reference eye distance is 0.
    """
    pred = np.asarray(pred, np.float64)
    ref = np.asarray(ref, np.float64)
    if pred.shape != ref.shape or pred.shape[-2:] != (68, 2):
        raise InputError(f"expected two [N, 68, 2] point arrays of the same shape, got {pred.shape} and {ref.shape}")
    scale = outer_eye_distance(ref)
    dist = np.linalg.norm(pred - ref, axis=-1)
    err = (dist if points is None else dist[..., points]).mean(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(scale > 0, err / np.where(scale > 0, scale, 1.0), np.nan)


def annotated_pairs(folder: str | os.PathLike) -> list[tuple[Path, Path]]:
    """(image, .pts) pairs in ``folder`` sorted by name (images without a .pts are ignored)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"expected a folder of images with iBUG .pts annotations, got missing path {folder}")
    pairs = [(p, p.with_suffix(".pts")) for p in sorted(folder.iterdir())
             if p.suffix.lower() in IMAGE_SUFFIXES and p.with_suffix(".pts").is_file()]
    if not pairs:
        raise InputError(f"expected images with matching .pts files in {folder}, found none")
    return pairs


def face_crop(img: np.ndarray, ref: np.ndarray, max_side: int = 400,
              context: float = CROP_CONTEXT) -> tuple[np.ndarray, np.ndarray, float]:
    """Square crop around annotated points (``context`` x their extent) -> (crop uint8, offset [2], scale)."""
    lo, hi = ref.min(0), ref.max(0)
    centre, half = (lo + hi) / 2, context * float((hi - lo).max()) / 2
    a = np.maximum(0, np.floor(centre - half)).astype(int)
    b = np.minimum([img.shape[1], img.shape[0]], np.ceil(centre + half)).astype(int)
    crop = img[a[1]:b[1], a[0]:b[0]]
    scale = min(1.0, max_side / max(crop.shape[:2]))
    if scale < 1.0:
        size = (round(crop.shape[1] * scale), round(crop.shape[0] * scale))
        crop = np.asarray(Image.fromarray(crop).resize(size, Image.BILINEAR))
    return np.ascontiguousarray(crop), a.astype(np.float64), scale


def validate_backend(folder: str | os.PathLike, backend: str = "dlib", workers: int = 1,
                     max_side: int = 400, context: float = CROP_CONTEXT, **backend_kwargs) -> dict:
    """NME of ``backend`` vs the human annotations in ``folder``.

    Returns {"backend", "version", "n", "n_detected", "nme_mean", "nme_median", "nme_inner_mean" (the 51 inner
    points), "per_image": {name: nme or None (not detected)}}; the means are over detected images only.
    """
    crops, refs, offsets, names = [], [], [], []
    for image_path, pts_path in annotated_pairs(folder):
        ref = read_pts(pts_path)
        if ref.shape != (68, 2):
            raise InputError(f"expected 68 points, got {ref.shape[0]} in {pts_path}")
        crop, offset, scale = face_crop(load_image_rgb(image_path), ref, max_side, context)
        crops.append(crop)
        refs.append(ref)
        offsets.append((offset, scale))
        names.append(image_path.name)
    results = score_images(crops, backend, workers=workers, **backend_kwargs)
    per_image: dict[str, float | None] = {}
    inner: list[float] = []
    for name, res, ref, (offset, scale) in zip(names, results, refs, offsets):
        if not res.detected:
            per_image[name] = None
            continue
        # pixel centres: crop pixel j covers photo pixels [a + j/s, a + (j+1)/s)
        pts = (res.points.astype(np.float64) + 0.5) / scale - 0.5 + offset
        per_image[name] = float(nme(pts, ref))
        inner.append(float(nme(pts, ref, INNER)))
    vals = np.array([v for v in per_image.values() if v is not None], np.float64)
    return {
        "backend": backend,
        "version": get_backend(backend, **backend_kwargs).version,
        "n": len(names),
        "n_detected": int(vals.size),
        "nme_mean": float(vals.mean()) if vals.size else float("nan"),
        "nme_median": float(np.median(vals)) if vals.size else float("nan"),
        "nme_inner_mean": float(np.mean(inner)) if inner else float("nan"),
        "per_image": per_image,
    }
