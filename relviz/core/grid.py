"""Feature grids and how their cells map back onto the original image's pixels.

Every relation map in a trace lives on a feature grid.  A :class:`Grid` records its shape, its stride
in the model's input pixels and the resize factor from the original image to the model's input, so a
map can be drawn on the original image and a clicked pixel finds its cell.  It is stored in a trace's
``meta`` as a plain dict (:meth:`to_json`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
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
        shape = list(data["shape"])
        frames = shape[0] if len(shape) == 3 else 1
        h, w = shape[-2:]
        sx, sy = data.get("scale", [1.0, 1.0])
        return cls(int(h), int(w), float(data["stride"]), float(sx), float(sy), int(frames),
                   int(data.get("frame_stride", 1)))

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

    def to_image(self, values: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
        """A (H, W) map on this grid, resized to the original image (width, height), bilinear."""
        values = np.asarray(values, dtype=np.float32).reshape(self.height, self.width)
        w, h = image_size
        # the grid covers (H·stride/scale_y) × (W·stride/scale_x) original pixels, maybe beyond the image
        cover_w = self.width * self.stride / self.scale_x
        cover_h = self.height * self.stride / self.scale_y
        full_w, full_h = max(1, round(cover_w)), max(1, round(cover_h))
        up = cv2.resize(values, (full_w, full_h), interpolation=cv2.INTER_LINEAR)
        out = np.zeros((h, w), np.float32)
        out[: min(h, full_h), : min(w, full_w)] = up[:h, :w]
        return out


def check_point(point: tuple[float, float], image_size: tuple[int, int]) -> None:
    """Refuse a point outside the image with a sentence."""
    x, y = point
    w, h = image_size
    if not (0 <= x < w and 0 <= y < h):
        raise BadInputError(f"point ({x:g}, {y:g}) is outside the image, which is {w}×{h} pixels")
