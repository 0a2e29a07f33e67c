"""Helpers shared by the panels: colours, colormap lookup tables, a colour bar, small-multiple grids.

Colours and ranges come from :mod:`relviz.views.palette`, so the panels, the figures and the video
overlays colour the same numbers the same way.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QLinearGradient, QPainter
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QWidget

from relviz.views.palette import PALETTE, ColorScale, box_color, cmap_table, color_scale

__all__ = ["PALETTE", "ColorBar", "configure_pyqtgraph", "grid_shape", "label_color", "levels", "lut"]
_CONFIGURED = False


def configure_pyqtgraph() -> None:
    """Set pyqtgraph's global options once: row-major images (numpy's (H, W) order), white-on-dark."""
    global _CONFIGURED
    if not _CONFIGURED:
        pg.setConfigOptions(imageAxisOrder="row-major", antialias=True, background="#1e1e1e", foreground="#d0d0d0")
        _CONFIGURED = True


def label_color(label: int) -> QColor:
    return QColor(box_color(label))


def lut(name: str = "inferno", alpha_ramp: bool = False) -> np.ndarray:
    """A (256, 4) uint8 lookup table of a matplotlib colormap; with ``alpha_ramp`` low values fade out."""
    return cmap_table(name, alpha_ramp)


def levels(values: np.ndarray, shared: np.ndarray | None = None) -> tuple[float, float]:
    """(min, max) for a map, over ``shared`` when one range is shared across heads; never empty."""
    scale = color_scale([values if shared is None else shared])
    return scale.lo, scale.hi


def grid_shape(n: int, max_cols: int = 4) -> tuple[int, int]:
    cols = min(max_cols, max(1, int(np.ceil(np.sqrt(n)))))
    return int(np.ceil(n / cols)), cols


class _Gradient(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.table = cmap_table("inferno")
        self.setMinimumSize(60, 10)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        return QSize(120, 12)

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        grad = QLinearGradient(0, 0, self.width(), 0)
        for i in range(0, 256, 15):
            r, g, b, _ = (int(v) for v in self.table[i])
            grad.setColorAt(i / 255, QColor(r, g, b))
        r, g, b, _ = (int(v) for v in self.table[255])
        grad.setColorAt(1.0, QColor(r, g, b))
        p.fillRect(QRectF(0, 0, self.width(), self.height()), grad)
        p.end()


class ColorBar(QWidget):
    """A horizontal colour bar with its numbers: low end, colormap, high end, and whether the range is shared
    by the small multiples or the map's own ('shared range' / 'per map')."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.scale: ColorScale | None = None
        self.low = QLabel("")
        self.high = QLabel("")
        self.mode = QLabel("")
        self.gradient = _Gradient()
        for label, width in ((self.low, 48), (self.high, 48), (self.mode, 150)):
            label.setStyleSheet("font-size: 8pt;")
            label.setFixedWidth(width)  # new numbers on every hover must not re-lay out the window
        self.low.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.setFixedHeight(16)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        layout.addWidget(self.low)
        layout.addWidget(self.gradient, 1)
        layout.addWidget(self.high)
        layout.addWidget(self.mode)
        self.set_scale(None)

    def set_scale(self, scale: ColorScale | None) -> None:
        self.scale = scale
        if scale is None:  # keep the space (hiding would re-lay out the window on every hover)
            self.low.setText("")
            self.high.setText("")
            self.mode.setText("")
            self.gradient.setVisible(False)
            return
        self.gradient.table = cmap_table(scale.cmap)
        self.gradient.update()
        self.low.setText(f"{scale.lo:.3g}")
        self.high.setText(f"{scale.hi:.3g}")
        what = f"{scale.label}, " if scale.label else ""
        self.mode.setText(f"({what}{'shared range' if scale.shared else 'per map'})")
        self.setToolTip(scale.describe())
        self.setVisible(True)
        self.gradient.setVisible(True)

    def texts(self) -> tuple[str, str, str]:
        return self.low.text(), self.high.text(), self.mode.text()


def cell_image(item: pg.ImageItem, values: np.ndarray, rect: tuple[float, float, float, float],
               scale: ColorScale, alpha_ramp: bool = False) -> None:
    """Show ``values`` as its cells (nearest: one image pixel per cell) over ``rect`` = (x0, y0, x1, y1),
    coloured on ``scale``; non-finite cells are left transparent."""
    data = np.asarray(values, np.float32)
    item.setImage(data, autoLevels=False, levels=(scale.lo, scale.hi), lut=lut(scale.cmap, alpha_ramp))
    x0, y0, x1, y1 = rect
    item.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))

