"""A map blended over an image as its cells, in numpy: the video overlays' heatmap, coloured like the canvas."""

from __future__ import annotations

import numpy as np

from relviz.views.palette import ColorScale, cmap_table


def cell_index(size: int, lo: float, hi: float, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``size`` pixels along an axis: the cell holding its centre, and whether a cell covers it."""
    u = (np.arange(size) + 0.5 - lo) / max(hi - lo, 1e-9) * cells
    idx = np.floor(u).astype(np.int64)
    return np.clip(idx, 0, cells - 1), (idx >= 0) & (idx < cells)


def blend_cells(image: np.ndarray, values: np.ndarray, rect: tuple[float, float, float, float], scale: ColorScale,
                opacity: float = 0.65) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with ``values`` (rows, cols) drawn over ``rect`` = (x0, y0, x1, y1) as cells
    (nearest), coloured on ``scale``, fading out towards its low end as on the canvas; NaN cells not drawn."""
    h, w = image.shape[:2]
    rows, cols = values.shape
    x0, y0, x1, y1 = rect
    ci, cover_y = cell_index(h, y0, y1, rows)
    cj, cover_x = cell_index(w, x0, x1, cols)
    cells = np.asarray(values, np.float64)
    norm = scale.normalize(cells)  # (rows, cols) 0..1, NaN kept
    table = cmap_table(scale.cmap, alpha_ramp=True).astype(np.float32) / 255.0
    idx = np.nan_to_num(norm * 255, nan=0).astype(np.int64)
    rgba = table[idx]  # (rows, cols, 4)
    rgba[..., 3] = np.where(np.isfinite(cells), rgba[..., 3] * opacity, 0.0)
    per_pixel = rgba[np.ix_(ci, cj)]  # (H, W, 4)
    per_pixel[~(cover_y[:, None] & cover_x[None, :])] = 0.0
    alpha = per_pixel[..., 3:4]
    out = image.astype(np.float32) * (1 - alpha) + per_pixel[..., :3] * 255.0 * alpha
    return np.clip(out, 0, 255).astype(np.uint8)
