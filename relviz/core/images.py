"""Image reading: JPEG, PNG, BMP, TIFF, WebP; grayscale, RGBA, 16-bit and EXIF orientation.

Every image becomes an (H, W, 3) uint8 RGB array in the orientation a viewer shows it (EXIF applied).
Alpha is dropped as PIL's ``convert('RGB')`` does, which is what the official demos feed their models.

The pixel count is checked from the header before anything is decoded: PIL's ``Image.open`` only reads
the header, so ``.size`` is known before ``.load()`` spends the memory.  The limit is
:func:`relviz.core.limits.max_image_pixels` (``--max-pixels`` / ``RELVIZ_MAX_PIXELS``).  Only the first
frame of a multi-frame file (animated PNG or WebP, multi-page TIFF) is read.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from relviz.core import limits
from relviz.core.errors import BadInputError, RelvizError
from relviz.core.files import open_regular, shown, sniff

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: the PIL decoders relviz lets run, whatever a file's name says (JPEG also opens the MPO files cameras write)
IMAGE_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WEBP")
_READABLE = "JPEG, PNG, BMP, TIFF or WebP"


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer):
        # 16-bit (and 32-bit integer) images: map the type's full range to 0..255.
        top = 65535.0 if array.max(initial=0) <= 65535 else float(array.max())
        scale = 255.0 / top
    else:
        scale = 255.0  # float images: 0..1 is the convention
    # float32 in place: one working copy (4 bytes a pixel) rather than float64 temporaries
    work = array.astype(np.float32)
    work *= scale
    np.nan_to_num(work, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
    np.rint(work, out=work)
    np.clip(work, 0, 255, out=work)
    return work.astype(np.uint8)


def pil_to_rgb(image: Image.Image) -> np.ndarray:
    """A PIL image (any mode) as (H, W, 3) uint8 RGB (without a converted copy when it is RGB already)."""
    if image.mode == "RGB":
        return np.asarray(image)
    if image.mode in ("RGB", "RGBA", "P", "L", "LA", "CMYK", "YCbCr", "1", "PA", "LAB", "HSV", "RGBX", "La"):
        return np.asarray(image.convert("RGB"))
    array = _to_uint8(np.asarray(image))  # I;16, I;16B, I, F: one channel with more than 8 bits
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return np.ascontiguousarray(array[..., :3])


def too_many_pixels(what: str, width: int, height: int, limit: int) -> str:
    """The sentence for an image or frame over the pixel limit: its size, the limit, how to raise it."""
    return (f"{what} is {width}×{height} pixels ({width * height / 1e6:.1f} Mpx), more than relviz's limit of "
            f"{limit / 1e6:g} Mpx; if you trust the file, raise the limit with --max-pixels "
            f"{_round_up(width * height)} (or the RELVIZ_MAX_PIXELS environment variable)")


def _round_up(pixels: int) -> int:
    """A round pixel count at least ``pixels`` (a limit to suggest)."""
    step = 10 ** max(0, len(str(pixels)) - 2)
    return -(-pixels // step) * step


def check_pixels(what: str, width: int, height: int) -> None:
    """Refuse an image or frame larger than the pixel limit, or one with no pixels."""
    if width <= 0 or height <= 0:
        raise BadInputError(f"{what} has no pixels (its header says {width}×{height})")
    limit = limits.max_image_pixels()
    if width * height > limit:
        raise BadInputError(too_many_pixels(what, width, height, limit))


def _align_pil_limit(limit: int) -> None:
    """PIL refuses images above twice its own limit; when the user raised ours past it, raise PIL's too."""
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limit:
        Image.MAX_IMAGE_PIXELS = limit


def _bomb_sentence(path: Path, exc: Exception) -> str:
    """PIL's own decompression-bomb refusal, as our sentence (PIL's message holds the pixel count)."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    limit = limits.max_image_pixels()
    if found:
        pixels = int(found.group(1))
        return (f"image {shown(path)} declares {pixels / 1e6:.1f} Mpx, more than relviz's limit of {limit / 1e6:g} "
                f"Mpx; if you trust the file, raise the limit with --max-pixels {_round_up(pixels)} (or the "
                "RELVIZ_MAX_PIXELS environment variable)")
    return (f"image {shown(path)} declares more pixels than relviz's limit of {limit / 1e6:g} Mpx; if you trust "
            "the file, raise the limit with --max-pixels (or the RELVIZ_MAX_PIXELS environment variable)")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return shown(text[0]) if text else type(exc).__name__


def _unidentified(path: Path, fh) -> str:
    """Why PIL found no image in ``fh``: another kind of file, a format relviz does not read, or a broken one."""
    fh.seek(0)
    what = sniff(fh.read(512))
    if what is None:
        return f"{shown(path)} is not an image relviz can read ({_READABLE})"
    if what.endswith(" image") and what.split()[1] in ("PNG", "JPEG", "TIFF", "WebP", "BMP"):
        return f"image {shown(path)} is corrupt or truncated: its {what.split()[1]} header cannot be read"
    return f"{shown(path)} is {what}, not an image relviz can read ({_READABLE})"


def _open_checked(path: Path, fh) -> Image.Image:
    """PIL's lazy open of ``fh``, refused unless its header's size is within the pixel limit."""
    limit = limits.max_image_pixels()
    _align_pil_limit(limit)
    with warnings.catch_warnings():
        # PIL's own warning would come before our check (which follows at once and says the size); its
        # error, above twice its limit, is turned into our sentence
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(fh, formats=IMAGE_FORMATS)
        except Image.DecompressionBombError as exc:
            raise BadInputError(_bomb_sentence(path, exc)) from None
        except UnidentifiedImageError:
            raise BadInputError(_unidentified(path, fh)) from None
        except RelvizError:
            raise
        except Exception as exc:  # noqa: BLE001 - any decoder failure on a header is a bad file
            raise BadInputError(f"image {shown(path)} is corrupt or truncated: its header cannot be read "
                                f"({_first_line(exc)})") from None
    width, height = image.size
    try:
        check_pixels(f"image {shown(path)}", width, height)
    except BadInputError:
        image.close()
        raise
    return image


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image from its header alone, refused if over the pixel limit (nothing decoded)."""
    path = Path(path)
    with open_regular(path, "an image", "image") as fh, _open_checked(path, fh) as image:
        return image.size


def _decode(path: Path, image: Image.Image) -> np.ndarray:
    """Decode the first frame of an opened image into RGB, with EXIF orientation applied."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise BadInputError(_bomb_sentence(path, exc)) from None
        except MemoryError:
            raise BadInputError(f"image {shown(path)} needs more memory to decode than this machine has") from None
        except Exception as exc:  # noqa: BLE001 - truncated data, bad chunks, decoder errors
            raise BadInputError(f"image {shown(path)} is corrupt or truncated: {_first_line(exc)}") from None
    try:
        ImageOps.exif_transpose(image, in_place=True)  # in place: no second copy of a large image
    except Exception:  # noqa: BLE001 - an unreadable EXIF block: show the pixels as stored
        pass
    try:
        return pil_to_rgb(image)
    except Exception as exc:  # noqa: BLE001 - a mode PIL decodes but cannot convert
        raise BadInputError(f"image {shown(path)} has pixels relviz cannot convert to RGB "
                            f"(mode {image.mode}): {_first_line(exc)}") from None


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB, or raise :class:`BadInputError` saying why not."""
    path = Path(path)
    with open_regular(path, "an image", "image") as fh, _open_checked(path, fh) as image:
        rgb = _decode(path, image)
    if rgb.ndim != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise BadInputError(f"image {shown(path)} has no pixels")
    return rgb
