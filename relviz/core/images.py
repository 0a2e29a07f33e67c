"""Image reading: JPEG, PNG, BMP, TIFF, WebP; grayscale, RGBA, 16-bit and EXIF orientation.

Every image becomes an (H, W, 3) uint8 RGB array in the orientation a viewer shows it (EXIF applied).
Alpha is dropped as PIL's ``convert('RGB')`` does, which is what the official demos feed their models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from relviz.core.errors import BadInputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer):
        # 16-bit (and 32-bit integer) images: map the type's full range to 0..255.
        top = 65535.0 if array.max(initial=0) <= 65535 else float(array.max())
        return np.clip(np.round(array.astype(np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)
    # float images: 0..1 is the convention
    return np.clip(np.round(array.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)


def pil_to_rgb(image: Image.Image) -> np.ndarray:
    """A PIL image (any mode) as (H, W, 3) uint8 RGB."""
    if image.mode in ("RGB", "RGBA", "P", "L", "LA", "CMYK", "YCbCr", "1", "PA", "LAB", "HSV"):
        return np.asarray(image.convert("RGB"))
    array = _to_uint8(np.asarray(image))  # I;16, I;16B, I, F: one channel with more than 8 bits
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return np.ascontiguousarray(array[..., :3])


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB, or raise :class:`BadInputError` saying why not."""
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"image {path} does not exist")
    if path.is_dir():
        raise BadInputError(f"{path} is a folder, not an image")
    if path.stat().st_size == 0:
        raise BadInputError(f"image {path} is empty (0 bytes)")
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            rgb = pil_to_rgb(image)
    except UnidentifiedImageError:
        raise BadInputError(f"{path} is not an image relviz can read (JPEG, PNG, BMP, TIFF or WebP)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadInputError(f"image {path} is corrupt or truncated: {exc}") from None
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise BadInputError(f"image {path} has no pixels")
    return rgb
