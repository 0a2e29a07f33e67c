"""Images drawn straight at the output pixels they cover, in uint8.

matplotlib resamples every image through a float64 RGBA array of its size on the output: a 256² photo
drawn 1724 pixels wide at 300 DPI costs ≈ 95 MB per copy, and a 6×6 heatmap over it as much again.  A
:class:`PixelImage` colours its values at their own resolution (a heatmap's cells, a photo's pixels) and
scales that uint8 RGBA once to the pixels it occupies at the output's DPI: nearest for cells, bilinear
(area-averaging when it shrinks, Pillow's filter) for photos.  PDF and SVG embed it at that size too, as
matplotlib does.  Anything else — smoothing a heatmap (which interpolates the data, not the colours),
rotated or non-affine axes, per-pixel alpha — is left to matplotlib.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.image import AxesImage
from matplotlib.transforms import Bbox, IdentityTransform
from PIL import Image

#: what a PixelImage draws itself; anything else goes through matplotlib's own resampling
_OWN = ("nearest", "bilinear")


class PixelImage(AxesImage):
    """An :class:`~matplotlib.image.AxesImage` that scales its colours, not its values, to the output pixels."""

    #: the last image made — (placement, interpolation, alpha) and the pixels — reused when a figure with a
    #: layout engine is drawn twice (the layout pass, then the real one)
    _drawn: tuple | None = None

    def set_data(self, A) -> None:  # noqa: N803 - matplotlib's name
        self._drawn = None
        super().set_data(A)

    def set_alpha(self, alpha) -> None:
        self._drawn = None
        super().set_alpha(alpha)

    def changed(self) -> None:  # the norm or the colormap changed
        self._drawn = None
        super().changed()

    def make_image(self, renderer, magnification: float = 1.0, unsampled: bool = False):
        interpolation = self.get_interpolation()
        data = self.get_array()
        photo = data is not None and data.ndim == 3
        alpha = self.get_alpha()
        own = interpolation == "nearest" or (interpolation == "bilinear" and photo)
        if unsampled or not own or (alpha is not None and np.ndim(alpha) > 0):
            return super().make_image(renderer, magnification, unsampled)
        place = self._placement(magnification)
        if place is None:
            return super().make_image(renderer, magnification, unsampled)
        if place == "empty":
            return None, 0, 0, None
        (x0, y0, width, height), us, vs = place
        key = (place, interpolation, alpha)
        if self._drawn is not None and self._drawn[0] == key:
            out = self._drawn[1]
        else:
            source = self._colours(rgb=interpolation == "bilinear")
            if source is None:
                return super().make_image(renderer, magnification, unsampled)
            if interpolation == "nearest":
                out = _nearest(source, width, height, us, vs)
            else:
                out = _bilinear(source, width, height, us, vs, 255 if alpha is None else round(255 * float(alpha)))
                if out is None:
                    return super().make_image(renderer, magnification, unsampled)
            self._drawn = (key, out)
        return out, x0 / magnification, y0 / magnification, IdentityTransform()

    def _placement(self, magnification: float):
        """The output pixels the image covers — (x0, y0, width, height), rounded as matplotlib rounds them —
        and the source coordinates (columns u, rows v, in source pixels from row 0) of that block's
        left/right and bottom/top edges (the renderer takes images bottom row first); "empty" when nothing
        is visible, None when the image is not drawn axis-aligned."""
        trans = self.get_transform()
        if not trans.is_affine:
            return None
        matrix = trans.get_affine().get_matrix()
        if matrix[0, 1] != 0 or matrix[1, 0] != 0:
            return None
        left, right, bottom, top = self.get_extent()
        (dl, db), (dr, dt) = trans.transform([[left, bottom], [right, top]])
        if dl == dr or db == dt:
            return "empty"
        covered = Bbox.from_extents(min(dl, dr), min(db, dt), max(dl, dr), max(db, dt))
        clip = (self.get_clip_box() or self.axes.bbox) if self.get_clip_on() else self.get_figure(root=True).bbox
        clipped = Bbox.intersection(covered, clip)
        path = self.get_clip_path() if self.get_clip_on() else None
        if clipped is not None and path is not None:
            # only what the clip path lets through is made (a photo clipped to a small tile of a grid)
            clipped = Bbox.intersection(clipped, path.get_fully_transformed_path().get_extents())
        if clipped is None:
            return "empty"
        e = clipped.extents * magnification
        # the pixel rounding of matplotlib's _make_image, so the image lands where matplotlib would put it
        x0, y0 = math.floor(e[0] + 0.5), math.ceil(e[1] - 0.5 - 1e-8)
        x1, y1 = math.floor(e[2] + 0.5 + 1e-8), math.ceil(e[3] - 0.5)
        width, height = int(x1 - x0), int(y1 - y0)
        if width <= 0 or height <= 0:
            return "empty"
        rows, cols = self.get_array().shape[:2]
        first, last = (dt, db) if self.origin == "upper" else (db, dt)  # display y of row 0 and of the last row

        def u(x: float) -> float:
            return (x / magnification - dl) / (dr - dl) * cols

        def v(y: float) -> float:
            return (y / magnification - first) / (last - first) * rows

        return (x0, y0, width, height), (u(x0), u(x1)), (v(y0), v(y1))  # the output's row 0 is its bottom (y0)

    def _colours(self, rgb: bool = False) -> np.ndarray | None:
        """The image's RGBA, uint8, at its own resolution: values through the norm and colormap (NaN and
        masked as the colormap's 'bad' colour), photos as they are; the scalar alpha applied.  With ``rgb``,
        an opaque photo stays RGB (its alpha is added after scaling, which then needs no premultiplying)."""
        data = self.get_array()
        alpha = self.get_alpha()
        if data.ndim == 2:
            rgba = self.to_rgba(data, bytes=True, norm=True)
        elif data.shape[-1] in (3, 4):
            values = np.asarray(data)
            if values.dtype != np.uint8:
                values = np.clip(np.nan_to_num(values.astype(np.float32)) * 255 + 0.5, 0, 255).astype(np.uint8)
            if values.shape[-1] == 3:
                if rgb:
                    return np.ascontiguousarray(values)
                values = np.concatenate([values, np.full(values.shape[:2] + (1,), 255, np.uint8)], axis=-1)
            rgba = values
        else:
            return None
        rgba = np.ascontiguousarray(rgba)
        if alpha is not None and alpha != 1:
            rgba = rgba.copy()
            rgba[..., 3] = np.round(rgba[..., 3] * float(alpha)).astype(np.uint8)
        return rgba


def _nearest(rgba: np.ndarray, width: int, height: int, us: tuple[float, float],
             vs: tuple[float, float]) -> np.ndarray:
    """Each output pixel takes the source cell under its centre."""
    rows, cols = rgba.shape[:2]
    cu = us[0] + (np.arange(width) + 0.5) * (us[1] - us[0]) / width
    cv = vs[0] + (np.arange(height) + 0.5) * (vs[1] - vs[0]) / height
    ci = np.clip(np.floor(cu).astype(np.intp), 0, cols - 1)
    ri = np.clip(np.floor(cv).astype(np.intp), 0, rows - 1)
    packed = rgba.view(np.uint32).reshape(rows, cols)  # one 4-byte pixel per element: a quarter of the gathers
    return packed.take(ri, axis=0).take(ci, axis=1).view(np.uint8).reshape(height, width, 4)


def _bilinear(source: np.ndarray, width: int, height: int, us: tuple[float, float],
              vs: tuple[float, float], alpha: int = 255) -> np.ndarray | None:
    """The source box scaled bilinearly (Pillow's filter, which also averages when it shrinks; RGBA in
    premultiplied alpha), bottom row first; an RGB source gets ``alpha`` after.  None for a mirrored
    placement, which matplotlib draws instead."""
    rows, cols = source.shape[:2]
    top, bottom = vs[1], vs[0]  # the output's bottom row (vs[0]) lies below its top row in the source
    if us[1] <= us[0] or bottom <= top:
        return None
    box = (max(0.0, us[0]), max(0.0, top), min(float(cols), us[1]), min(float(rows), bottom))
    if box[2] <= box[0] or box[3] <= box[1]:
        return None
    mode = "RGB" if source.shape[-1] == 3 else "RGBA"
    scaled = np.asarray(Image.fromarray(source, mode).resize((width, height), Image.Resampling.BILINEAR, box=box))
    out = np.empty((height, width, 4), np.uint8)  # writable and bottom row first, as the renderer takes it
    out[..., :scaled.shape[-1]] = scaled[::-1]
    if mode == "RGB":
        out[..., 3] = alpha
    return out


def show(ax: Axes, data: Any, *, extent: tuple[float, float, float, float] | None = None,
         aspect: str | float | None = "equal", **kwargs: Any) -> PixelImage:
    """``ax.imshow(data, …)`` with a :class:`PixelImage`: the same limits, aspect, clipping and norm."""
    kwargs.setdefault("resample", None)  # imshow's default: rcParams["image.resample"]
    image = PixelImage(ax, extent=extent, **kwargs)
    image.set_data(data)
    if aspect is not None:
        ax.set_aspect(aspect)
    image.set_clip_path(ax.patch)
    if np.ndim(data) == 2:
        image.autoscale_None()  # limits the norm was not given come from the data, as imshow does
    image.set_extent(image.get_extent())
    ax.add_image(image)
    return image
