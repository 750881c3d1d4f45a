"""Image loading and conversion. Faces are RGB uint8 [H, W, 3] on disk and in memory."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from w2p_eval.errors import InputError


def load_image_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read any image PIL knows (the content decides, not the suffix) -> uint8 [H, W, 3] RGB."""
    try:
        with Image.open(path) as im:
            if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):  # 16-bit grey: scale, don't clip to white
                grey = (np.asarray(im, dtype=np.float64) / 257.0).clip(0, 255).round().astype(np.uint8)
                return np.repeat(grey[..., None], 3, axis=2)
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(f"expected a readable image, got {path} ({exc.__class__.__name__})") from None


def resize_rgb(img: np.ndarray, size: int) -> np.ndarray:
    """Square resize (bilinear with antialiasing) -> uint8 [size, size, 3]."""
    if img.shape[0] == size and img.shape[1] == size:
        return img
    return np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR, reducing_gap=None))


def image_to_tensor(img: np.ndarray, size: int):
    """uint8 [H, W, 3] -> float32 torch tensor [3, size, size] in [-1, 1]."""
    import torch  # lazy: landmark worker processes read images through this module without torch

    arr = resize_rgb(img, size).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())


def tensor_to_uint8(x) -> np.ndarray:
    """float tensor [B, 3, H, W] or [3, H, W] in [0, 1] -> uint8 [B, H, W, 3] / [H, W, 3]."""
    arr = x.detach().float().clamp(0, 1).mul(255).round().to("cpu").numpy().astype(np.uint8)
    return arr.transpose(0, 2, 3, 1) if arr.ndim == 4 else arr.transpose(1, 2, 0)


def save_png(path: str | os.PathLike, img: np.ndarray) -> None:
    Image.fromarray(img).save(str(path), format="PNG")
