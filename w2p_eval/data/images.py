"""Image loading and conversion. Faces are RGB uint8 [H, W, 3] on disk and in memory."""

from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

import w2p_eval.lazy as lazy
from w2p_eval.errors import InputError

# Pixels any image may have (50 MP, 150 MB as RGB: a large camera photo). It is checked from the header,
# before a pixel is decoded, so a 10,000 x 10,000 px file (or a decompression bomb) is a counted skip,
# never a 45 GiB allocation. PIL's own guard is set to the same figure (it raises at twice it).
MAX_IMAGE_PIXELS = 50_000_000
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS


class ImageTooLarge(ValueError):
    """An image whose header declares more pixels (or a longer side) than the reader allows."""


def open_image(path: str | os.PathLike, *, max_pixels: int = MAX_IMAGE_PIXELS, max_side: int | None = None):
    """``PIL.Image.open`` (lazy: only the header is read) with the declared size checked before decoding.

    Raises :class:`ImageTooLarge` (a ValueError) when width x height > ``max_pixels`` or the longer side >
    ``max_side``, and for PIL's DecompressionBombError; the caller decides whether that is a skip."""
    try:
        with warnings.catch_warnings():  # PIL warns between 1x and 2x its limit; the check below decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"image too large ({exc})") from None
    w, h = im.size
    if w * h > max_pixels or (max_side is not None and max(w, h) > max_side):
        im.close()
        limit = f"{max_side} px a side" if max_side is not None and max(w, h) > max_side else f"{max_pixels:,} pixels"
        raise ImageTooLarge(f"image too large: {w}x{h} px (limit {limit})")
    return im


def load_image_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read any image PIL knows (the content decides, not the suffix) -> uint8 [H, W, 3] RGB.
    Images over :data:`MAX_IMAGE_PIXELS` are refused from their header (InputError), never decoded."""
    try:
        with open_image(path) as im:
            if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):  # 16-bit grey: scale, don't clip to white
                grey = (np.asarray(im, dtype=np.float64) / 257.0).clip(0, 255).round().astype(np.uint8)
                return np.repeat(grey[..., None], 3, axis=2)
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except ImageTooLarge as exc:
        raise InputError(f"expected an image of at most {MAX_IMAGE_PIXELS:,} pixels, got {path} ({exc})") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"expected a readable image, got {path} ({exc.__class__.__name__})") from None


def resize_rgb(img: np.ndarray, size: int) -> np.ndarray:
    """Square resize (bilinear with antialiasing) -> uint8 [size, size, 3]."""
    if img.shape[0] == size and img.shape[1] == size:
        return img
    return np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR, reducing_gap=None))


def image_to_tensor(img: np.ndarray, size: int):
    """uint8 [H, W, 3] -> float32 torch tensor [3, size, size] in [-1, 1]."""
    torch = lazy.torch
    arr = resize_rgb(img, size).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())


def tensor_to_uint8(x) -> np.ndarray:
    """float tensor [B, 3, H, W] or [3, H, W] in [0, 1] -> uint8 [B, H, W, 3] / [H, W, 3]."""
    arr = x.detach().float().clamp(0, 1).mul(255).round().to("cpu").numpy().astype(np.uint8)
    return arr.transpose(0, 2, 3, 1) if arr.ndim == 4 else arr.transpose(1, 2, 0)


def save_png(path: str | os.PathLike, img: np.ndarray) -> None:
    Image.fromarray(img).save(str(path), format="PNG")
