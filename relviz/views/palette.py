"""Colours and colour scales: one palette for boxes, one rule for a map's value range.

The window (pyqtgraph lookup tables), the figures (matplotlib colormaps) and the video overlays (numpy
RGB) all take their colours from here, so a detection has one colour and a map one range everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

#: Tableau-10: distinct at small sizes; a detection's box takes the colour of its class
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac")  # fmt: skip
HEAT_CMAP = "inferno"  # attention and weight maps
MATRIX_CMAP = "viridis"  # relation matrices and landscapes
DIVERGING_CMAP = "coolwarm"  # signed logits (geometry priors, appearance terms), centred on 0
#: the colour of a value that is NaN or infinite: a neutral grey that no colormap's end takes
NO_VALUE_COLOR = "#9a9a9a"
#: the opacity of a heatmap's highest values over the photo (lower values fade out: :func:`overlay_alpha`)
OVERLAY_OPACITY = 0.8


def overlay_alpha(u: np.ndarray) -> np.ndarray:
    """How opaque an overlay's colour is at ``u`` in 0..1 of its range (times the overlay's opacity): clear at
    the low end, so the lowest values leave the photo as it is, full from 90 % of the range up."""
    return np.clip(np.asarray(u, np.float64) ** 0.6 * 1.1, 0.0, 1.0)


def text_color_on(color: str) -> str:
    """Black or white, whichever reads better on ``color`` (by its relative luminance)."""
    r, g, b = (c / 255.0 for c in rgb(color))
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "black" if luminance > 0.18 else "white"


def box_color(label: int) -> str:
    """The hex colour of a detection of class ``label``."""
    return PALETTE[int(label) % len(PALETTE)]


def rgb(color: str) -> tuple[int, int, int]:
    """``#rrggbb`` as an (r, g, b) tuple of 0..255."""
    c = color.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


@lru_cache(maxsize=64)
def cmap_table(name: str = HEAT_CMAP, alpha_ramp: bool = False) -> np.ndarray:
    """A (256, 4) uint8 table of a matplotlib colormap; with ``alpha_ramp`` low values fade out (overlays).

    The table is read-only: it is shared by every caller.
    """
    from matplotlib import colormaps

    table = (colormaps[name](np.linspace(0, 1, 256)) * 255).round().astype(np.uint8)
    if alpha_ramp:
        table[:, 3] = (255 * overlay_alpha(np.linspace(0, 1, 256))).astype(np.uint8)
    table.setflags(write=False)
    return table


def finite_range(arrays: Sequence[np.ndarray]) -> tuple[float, float] | None:
    """(min, max) over the finite values of ``arrays``; None when none is finite."""
    lows, highs = [], []
    for a in arrays:
        a = np.asarray(a, dtype=np.float64)
        finite = a[np.isfinite(a)]
        if finite.size:
            lows.append(float(finite.min()))
            highs.append(float(finite.max()))
    return (min(lows), max(highs)) if lows else None


@dataclass(frozen=True)
class ColorScale:
    """The value range a map is coloured over, its colormap, and whether several maps share it."""

    lo: float
    hi: float
    cmap: str = HEAT_CMAP
    shared: bool = True  # one range for a set of small multiples (else: this map's own)
    label: str = ""  # what the values are ('attention', 'ω', 'logit')

    def normalize(self, values: np.ndarray) -> np.ndarray:
        """``values`` scaled to 0..1 over the range (clipped); NaN stays NaN."""
        span = self.hi - self.lo
        return np.clip((np.asarray(values, np.float64) - self.lo) / (span if span > 0 else 1.0), 0.0, 1.0)

    def describe(self) -> str:
        """The range as the window states it: 'shared range 0.001 … 0.2' or 'per map 0 … 1'."""
        return f"{'shared range' if self.shared else 'per map'} {self.lo:.3g} … {self.hi:.3g}"


def color_scale(
    arrays: Sequence[np.ndarray], cmap: str = HEAT_CMAP, shared: bool = True, symmetric: bool = False, label: str = ""
) -> ColorScale:
    """The scale over the finite values of ``arrays``: never empty (a flat map gets a hair-wide range), (0, 1)
    when nothing is finite; ``symmetric`` centres it on 0 (signed logits)."""
    lo, hi = finite_range(arrays) or (0.0, 1.0)
    if symmetric:
        r = max(abs(lo), abs(hi), 1e-12)
        lo, hi = -r, r
    if hi - lo < 1e-12:
        hi = lo + max(abs(lo) * 1e-6, 1e-12)
    return ColorScale(lo, hi, cmap, shared, label)


def scales(maps: Sequence[np.ndarray], shared: bool, cmap: str = HEAT_CMAP, symmetric: bool = False,
           label: str = "") -> list[ColorScale]:
    """One scale per map: all the same when ``shared``, else each map's own."""
    if shared:
        return [color_scale(maps, cmap, True, symmetric, label)] * len(maps)
    return [color_scale([m], cmap, False, symmetric, label) for m in maps]


def colorize(values: np.ndarray, scale: ColorScale) -> np.ndarray:
    """(..., 3) uint8 RGB of ``values`` on ``scale``; non-finite values in :data:`NO_VALUE_COLOR`."""
    table = cmap_table(scale.cmap)
    values = np.asarray(values, np.float64)
    idx = np.nan_to_num(scale.normalize(values) * 255, nan=0).astype(np.int64)
    out = table[idx, :3].copy()
    out[~np.isfinite(values)] = rgb(NO_VALUE_COLOR)
    return out
