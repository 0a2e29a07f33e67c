"""Helpers shared by the panels: colours, colormap lookup tables, small-multiple grids."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor

_CONFIGURED = False


def configure_pyqtgraph() -> None:
    """Set pyqtgraph's global options once: row-major images (numpy's (H, W) order), white-on-dark."""
    global _CONFIGURED
    if not _CONFIGURED:
        pg.setConfigOptions(imageAxisOrder="row-major", antialias=True, background="#1e1e1e", foreground="#d0d0d0")
        _CONFIGURED = True


# Tableau-10: distinct at small sizes, the palette matplotlib figures use too
PALETTE = [
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
]


def label_color(label: int) -> QColor:
    return QColor(PALETTE[int(label) % len(PALETTE)])


_LUTS: dict[tuple[str, bool], np.ndarray] = {}


def lut(name: str = "inferno", alpha_ramp: bool = False) -> np.ndarray:
    """A (256, 4) uint8 lookup table of a matplotlib colormap; with ``alpha_ramp`` low values fade out."""
    key = (name, alpha_ramp)
    if key not in _LUTS:
        from matplotlib import colormaps

        table = (colormaps[name](np.linspace(0, 1, 256)) * 255).astype(np.uint8)
        if alpha_ramp:
            table[:, 3] = (255 * np.clip(np.linspace(0, 1, 256) ** 0.6 * 1.1, 0, 1)).astype(np.uint8)
        _LUTS[key] = table
    return _LUTS[key]


def levels(values: np.ndarray, shared: np.ndarray | None = None) -> tuple[float, float]:
    """(min, max) for a map, over ``shared`` when one range is shared across heads; never empty."""
    data = values if shared is None else shared
    finite = data[np.isfinite(data)] if data.size else data
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    if hi - lo < 1e-12:
        hi = lo + 1e-6
    return lo, hi


def grid_shape(n: int, max_cols: int = 4) -> tuple[int, int]:
    cols = min(max_cols, max(1, int(np.ceil(np.sqrt(n)))))
    return int(np.ceil(n / cols)), cols
