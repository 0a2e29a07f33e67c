"""Feature grids and how their cells map back onto the original image's pixels.

Every relation map in a trace lives on a feature grid.  A :class:`Grid` records its shape, its stride
in the model's input pixels and the resize factor from the original image to the model's input, so a
map can be drawn on the original image and a clicked pixel finds its cell.  It is stored in a trace's
``meta`` as a plain dict (:meth:`to_json`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from relviz.core.errors import BadInputError


@dataclass(frozen=True)
class Grid:
    height: int
    width: int
    stride: float  # model-input pixels per cell
    scale_x: float = 1.0  # model-input pixels per original pixel
    scale_y: float = 1.0
    frames: int = 1  # time steps (video models)
    frame_stride: int = 1  # input frames per time step

    @property
    def size(self) -> int:
        return self.frames * self.height * self.width

    def to_json(self) -> dict:
        return {
            "shape": [self.frames, self.height, self.width] if self.frames > 1 else [self.height, self.width],
            "stride": self.stride,
            "scale": [self.scale_x, self.scale_y],
            "frame_stride": self.frame_stride,
        }

    @classmethod
    def from_json(cls, data: dict) -> Grid:
        """The grid a trace's metadata describes (checked by :mod:`relviz.core.trace_meta` when read)."""
        try:
            shape = [int(v) for v in data["shape"]]
            frames = shape[0] if len(shape) == 3 else 1
            h, w = shape[-2:]
            sx, sy = data.get("scale", [1.0, 1.0])
            grid = cls(int(h), int(w), float(data["stride"]), float(sx), float(sy), int(frames),
                       int(data.get("frame_stride", 1)))
        except (KeyError, TypeError, ValueError, IndexError):
            raise BadInputError(f"the trace's feature grid {_short(data)} is malformed: it needs a shape [h, w] "
                                "or [t, h, w], a stride and a scale [sx, sy]") from None
        if min(grid.height, grid.width, grid.frames, grid.frame_stride) < 1 or not all(
            np.isfinite(v) and v > 0 for v in (grid.stride, grid.scale_x, grid.scale_y)
        ):
            raise BadInputError(f"the trace's feature grid {_short(data)} has a size, stride or scale that is not "
                                "a positive number")
        return grid

    def cell_of_point(self, x: float, y: float, frame: int = 0) -> int:
        """Flat index (t·H·W + i·W + j) of the cell holding original-image pixel (x, y)."""
        j = int(np.floor(x * self.scale_x / self.stride))
        i = int(np.floor(y * self.scale_y / self.stride))
        j = min(max(j, 0), self.width - 1)
        i = min(max(i, 0), self.height - 1)
        t = min(max(frame // max(self.frame_stride, 1), 0), self.frames - 1)
        return (t * self.height + i) * self.width + j

    def point_of_cell(self, index: int) -> tuple[float, float, int]:
        """(x, y, t) in original-image pixels of the centre of flat cell ``index``."""
        t, rest = divmod(int(index), self.height * self.width)
        i, j = divmod(rest, self.width)
        return ((j + 0.5) * self.stride / self.scale_x, (i + 0.5) * self.stride / self.scale_y, t)

    def to_image(self, values: np.ndarray, image_size: tuple[int, int], max_pixels: int | None = None) -> np.ndarray:
        """A (H, W) map on this grid drawn over the original image (width, height), bilinear.

        The result covers the whole image at its resolution, or coarser when ``max_pixels`` bounds it (a
        figure stretches it over the image's extent).  Cells that are not finite stay NaN over exactly the
        pixels they cover, and their neighbours interpolate from the finite cells only; pixels beyond the
        grid's cover are 0.
        """
        values = np.asarray(values, dtype=np.float64).reshape(self.height, self.width)
        w, h = image_size
        f = 1.0 if not max_pixels or w * h <= max_pixels else float(np.sqrt(max_pixels / (w * h)))
        out_w, out_h = max(1, round(w * f)), max(1, round(h * f))
        # per output pixel: the two neighbouring cells and the weight of the second (bilinear, edges
        # replicated as OpenCV does), the cell holding it, and whether the grid covers it
        ys = _axis(out_h, h / out_h * self.scale_y / self.stride, self.height)
        xs = _axis(out_w, w / out_w * self.scale_x / self.stride, self.width)
        finite = np.isfinite(values)
        num = _bilinear(np.where(finite, values, 0.0), ys, xs)
        den = _bilinear(finite.astype(np.float64), ys, xs)
        out = np.where(den > 1e-12, num / np.where(den > 1e-12, den, 1.0), 0.0)
        out[~(ys.covered[:, None] & xs.covered[None, :])] = 0.0
        if not finite.all():
            holes = ~finite[np.ix_(ys.cell, xs.cell)] & ys.covered[:, None] & xs.covered[None, :]
            out[holes] = np.nan
        return out.astype(np.float32)


@dataclass(frozen=True)
class _Axis:
    low: np.ndarray  # the cell before the pixel centre
    high: np.ndarray  # the cell after it
    t: np.ndarray  # the weight of ``high``
    cell: np.ndarray  # the cell holding the pixel centre (clipped to the grid)
    covered: np.ndarray  # False beyond the grid's cover


def _axis(size: int, cells_per_pixel: float, cells: int) -> _Axis:
    u = (np.arange(size) + 0.5) * cells_per_pixel  # the pixel centre in cell units
    c = np.clip(u - 0.5, 0.0, cells - 1)
    low = np.floor(c).astype(np.int64)
    cell = np.floor(u).astype(np.int64)
    return _Axis(low, np.minimum(low + 1, cells - 1), c - low, np.clip(cell, 0, cells - 1), cell < cells)


def _bilinear(values: np.ndarray, ys: _Axis, xs: _Axis) -> np.ndarray:
    """``values`` sampled at every (row, column) pair of ``ys`` × ``xs``; memory is the output's size."""
    tx = xs.t[None, :]
    top = values[np.ix_(ys.low, xs.low)] * (1 - tx) + values[np.ix_(ys.low, xs.high)] * tx
    bottom = values[np.ix_(ys.high, xs.low)] * (1 - tx) + values[np.ix_(ys.high, xs.high)] * tx
    return top * (1 - ys.t[:, None]) + bottom * ys.t[:, None]


def _short(data) -> str:
    text = repr(data)
    return text if len(text) <= 80 else text[:79] + "…"


def check_point(point: tuple[float, float], image_size: tuple[int, int]) -> None:
    """Refuse a point outside the image with a sentence."""
    x, y = point
    w, h = image_size
    if not (0 <= x < w and 0 <= y < h):
        raise BadInputError(f"point ({x:g}, {y:g}) is outside the image, which is {w}×{h} pixels")
