"""Relation Networks' geometry term ω_G = ReLU(W_G · E_G) (Hu et al. 2018, Eq. 5), evaluated from W_G alone.

:func:`omega_g` gives the value a box would get from the selected object for any box geometry, so the
Geometry panel and the ``geometry`` figure draw one landscape: ω_G of a box of the object's size (× a
scale) centred at each cell of a grid over the image (:func:`landscape`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from relviz.core.trace import Trace

#: landscape cells across the image in the window (the figure's default is finer)
PANEL_RESOLUTION = 48
FIGURE_RESOLUTION = 72


def has_landscape(trace: Trace, module: str) -> bool:
    """Whether the trace holds W_G (``geometry_weight``, ``geometry_bias``) for ``module``."""
    return f"relation/{module}/geometry_weight" in trace and f"relation/{module}/geometry_bias" in trace


def omega_g(
    trace: Trace, module: str, receiver: np.ndarray, others: np.ndarray, heads: list[int] | None = None
) -> np.ndarray:
    """ω_G (H, M) of boxes ``others`` (M, 4) into ``receiver`` (4,), from W_G alone (as the model).

    ``heads`` picks some heads (all by default); the boxes are embedded in chunks, so memory stays
    bounded whatever M and the embedding width d_g.
    """
    meta = trace.meta.get("relation", {})
    weight = trace[f"relation/{module}/geometry_weight"].astype(np.float64)  # (H, d_g)
    bias = trace[f"relation/{module}/geometry_bias"].astype(np.float64)
    if heads is not None:
        weight, bias = weight[heads], bias[heads]
    d_g = weight.shape[1]
    eps = float(meta.get("offset_clamp", 1e-3))
    scale = float(meta.get("position_scale", 100.0))
    wavelength = float(meta.get("wavelength", 1000.0))
    r = np.asarray(receiver, np.float64)
    o = np.asarray(others, np.float64).reshape(-1, 4)
    denom = wavelength ** ((8.0 / d_g) * np.arange(d_g // 8))
    chunk = max(1, 2**21 // max(d_g, 1))
    out = np.empty((len(weight), len(o)))
    for start in range(0, len(o), chunk):
        pos = box_geometry(r, o[start : start + chunk], eps)  # (M, 4)
        ang = (scale * pos)[..., None] / denom  # (M, 4, d_g/8)
        emb = np.concatenate([np.sin(ang), np.cos(ang)], -1).reshape(len(pos), d_g)
        out[:, start : start + chunk] = np.maximum(emb @ weight.T + bias, 0.0).T
    return out


def box_geometry(r: np.ndarray, o: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    """(log|Δx|/w, log|Δy|/h, log w/w_m, log h/h_m) of boxes ``o`` relative to ``r`` (the official code's
    clamps: offsets normalised by the receiving box, at least ``eps``)."""
    w, h = r[2] - r[0], r[3] - r[1]
    ow, oh = o[:, 2] - o[:, 0], o[:, 3] - o[:, 1]
    dx = np.log(np.maximum(np.abs((r[0] + r[2]) / 2 - (o[:, 0] + o[:, 2]) / 2) / w, eps))
    dy = np.log(np.maximum(np.abs((r[1] + r[3]) / 2 - (o[:, 1] + o[:, 3]) / 2) / h, eps))
    return np.stack([dx, dy, np.log(w / ow), np.log(h / oh)], -1)


def relative_offsets(boxes: np.ndarray, index: int) -> np.ndarray:
    """(N, 2) signed centre offsets (Δx / w, Δy / h) of every box from box ``index``, in its size."""
    b = np.asarray(boxes, np.float64)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    w = np.maximum(b[index, 2] - b[index, 0], 1e-3)
    h = np.maximum(b[index, 3] - b[index, 1], 1e-3)
    return np.stack([(cx - cx[index]) / w, (cy - cy[index]) / h], axis=1)


def landscape_cells(res: int, width: int, height: int, most: int = 160_000) -> tuple[int, int]:
    """Columns and rows of a landscape ``res`` cells across, at the image's aspect, at most ``most`` cells."""
    nx, ny = res, max(1, int(res * height / width))
    f = min(1.0, float(np.sqrt(most / (nx * ny))))
    return max(1, int(nx * f)), max(1, int(ny * f))


def boxes_at(box: np.ndarray, xs: np.ndarray, ys: np.ndarray, s: float) -> np.ndarray:
    """Boxes of ``box``'s size × ``s`` centred at every (x, y) of ``xs`` × ``ys``, row-major: (len(ys)·len(xs), 4)."""
    w, h = (box[2] - box[0]) * s, (box[3] - box[1]) * s
    cx, cy = np.meshgrid(xs, ys)
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1).reshape(-1, 4)


@dataclass
class Landscape:
    """ω_G per head over a grid of cells covering the image: cell (i, j) is the box centred in it."""

    values: np.ndarray  # (H, rows, cols)
    rect: tuple[float, float, float, float]  # (x0, y0, x1, y1): the image rectangle the cells cover
    box: np.ndarray  # (4,) the receiving box
    scale: float  # the size of the boxes placed, × the receiving box's

    def head(self, head: int | None) -> np.ndarray:
        return self.values.mean(axis=0) if head is None else self.values[min(max(head, 0), len(self.values) - 1)]


def landscape(
    trace: Trace,
    module: str,
    box: np.ndarray,
    size: tuple[int, int],
    resolution: int = PANEL_RESOLUTION,
    scale: float = 1.0,
    heads: list[int] | None = None,
) -> Landscape:
    """ω_G into ``box`` of a box of its size × ``scale`` centred at each cell of a grid ``resolution`` cells
    across an image of ``size`` (w, h)."""
    width, height = size
    nx, ny = landscape_cells(resolution, width, height)
    xs = (np.arange(nx) + 0.5) * width / nx
    ys = (np.arange(ny) + 0.5) * height / ny
    box = np.asarray(box, np.float64)
    values = omega_g(trace, module, box, boxes_at(box, xs, ys, scale), heads)
    return Landscape(values.reshape(len(values), ny, nx), (0.0, 0.0, float(width), float(height)), box, float(scale))
