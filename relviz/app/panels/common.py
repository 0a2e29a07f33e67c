"""Helpers shared by the panels: colours, colormap lookup tables, a colour bar, small-multiple grids, the
map the selection shows.

Colours and ranges come from :mod:`relviz.views.palette`, so the panels, the figures and the video
overlays colour the same numbers the same way.  Maps are coloured here, once per change, into RGBA
images: pyqtgraph would otherwise rebuild a Qt colour table for every item on every repaint and draw an
indexed image, several times slower to scale onto the screen than an RGBA one.
"""

from __future__ import annotations

import weakref

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QLinearGradient, QPainter, QPalette
from PySide6.QtWidgets import QDockWidget, QHBoxLayout, QSizePolicy, QWidget

from relviz.views import maps
from relviz.views.palette import PALETTE, ColorScale, box_color, cmap_table, color_scale

__all__ = ["PALETTE", "ColorBar", "cell_colors", "cell_image", "configure_pyqtgraph", "grid_shape", "label_color",
           "levels", "lut", "shown_map"]
_CONFIGURED = False
_SHOWN: tuple | None = None  # the last map computed for a selection (one entry)


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


def shown_map(state) -> maps.Map | None:
    """The map the selection shows (the canvas heatmap and the Attention tiles), or None.

    Computed once per selection: the canvas and the Attention panel both ask on every hover, and the second
    ask returns the first one's map.
    """
    global _SHOWN
    trace, sel = state.trace, state.sel
    src = state.current_source()
    if trace is None or src is None:
        return None
    if src.driver == "object":
        if sel.object is None:
            return None
        key = (id(trace), src, "object", sel.object, sel.layer, sel.term)
    else:
        if sel.point is None:
            return None
        key = (id(trace), src, "point", sel.point, sel.layer, sel.term, sel.frame)
    if _SHOWN is not None and _SHOWN[0] == key and _SHOWN[2]() is trace:
        return _SHOWN[1]
    if src.driver == "object":
        m = maps.object_map(trace, src, sel.object, sel.layer, sel.term)
    else:
        m = maps.point_map(trace, src, sel.point, sel.layer, sel.term, sel.frame)
    _SHOWN = (key, m, weakref.ref(trace))  # a dropped trace is not kept alive by its map
    return m


class WhenShown:
    """For a panel whose work is worth doing only on screen: :meth:`on_screen` says whether it is, and
    :meth:`came_on_screen` is called when its dock is shown or its tab is brought to the front.

    A tabbed-away dock stays "visible" to Qt (it is moved off the window), so visibility alone cannot tell;
    the visible region and the dock's ``visibilityChanged`` (emitted on tab switches too) can.  Mix in before
    QWidget and call :meth:`watch_dock` from ``event``.
    """

    _dock: QDockWidget | None = None

    def on_screen(self) -> bool:
        return self.isVisible() and not self.visibleRegion().isEmpty()

    def came_on_screen(self) -> None:  # pragma: no cover - overridden
        pass

    def watch_dock(self, event) -> None:
        """Follow the dock the panel is put in (``event``: the panel's events; a ParentChange looks up)."""
        if event.type() != QEvent.Type.ParentChange:
            return
        dock = self.parentWidget()
        while dock is not None and not isinstance(dock, QDockWidget):
            dock = dock.parentWidget()
        if dock is not None and dock is not self._dock:
            self._dock = dock
            dock.visibilityChanged.connect(lambda visible: self.came_on_screen() if visible else None)


class TextLine(QWidget):
    """Text that changes on every hover without re-laying out anything: a fixed number of lines, word-wrapped
    (the last one elided), painted on an opaque background.  A QLabel asks its layout for room on every new
    text, which reaches the main window's layout each time; this widget only repaints itself.
    ``text()``/``setText()`` as a QLabel's."""

    def __init__(self, lines: int = 1, parent: QWidget | None = None, point_size: float | None = None,
                 align: Qt.AlignmentFlag = Qt.AlignmentFlag.AlignLeft):
        super().__init__(parent)
        self._text = ""
        self._align = align
        if point_size is not None:
            font = QFont(self.font())
            font.setPointSizeF(point_size)
            self.setFont(font)
        self.lines = lines
        self.setFixedHeight(lines * self.fontMetrics().lineSpacing() + 4)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setAutoFillBackground(True)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)

    def sizeHint(self) -> QSize:
        return QSize(max(self.minimumWidth(), 80), self.height())

    def minimumSizeHint(self) -> QSize:
        return QSize(max(self.minimumWidth(), 10), self.height())

    def text(self) -> str:
        return self._text

    def setText(self, text: str) -> None:
        if text != self._text:
            self._text = text
            self.setToolTip(text)  # the whole text, where a narrow dock cuts it
            self.update()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().color(QPalette.ColorRole.Window))
        p.setPen(self.palette().color(QPalette.ColorRole.WindowText))
        rect = self.rect().adjusted(2, 2, -2, -2)
        if self.lines == 1:
            text = self.fontMetrics().elidedText(self._text, Qt.TextElideMode.ElideRight, rect.width())
            p.drawText(rect, int(self._align | Qt.AlignmentFlag.AlignVCenter), text)
        else:
            p.drawText(rect, int(self._align | Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap), self._text)
        p.end()


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
        self.low = TextLine(point_size=8, align=Qt.AlignmentFlag.AlignRight)
        self.high = TextLine(point_size=8)
        self.mode = TextLine(point_size=8)
        self.gradient = _Gradient()
        # fixed widths, wide enough for any number '%.3g' writes: new numbers on every hover must neither
        # re-lay out the window nor be cut off
        number = max(self.low.fontMetrics().horizontalAdvance(t) for t in ("-8.88e+88", "-0.000888")) + 8
        self.low.setFixedWidth(number)
        self.high.setFixedWidth(number)
        self.mode.setFixedWidth(self.mode.fontMetrics().horizontalAdvance("(geometry logit, shared range)") + 8)
        for label in (self.low, self.high, self.mode):
            label.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(max(16, self.low.height()))
        self.setAutoFillBackground(True)  # opaque: new numbers repaint the bar, not the window beneath it
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
        table = cmap_table(scale.cmap)
        if table is not self.gradient.table:  # the tables are cached: the same colormap, the same object
            self.gradient.table = table
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


def cell_colors(values: np.ndarray, scale: ColorScale, alpha_ramp: bool = False) -> np.ndarray:
    """(rows, cols, 4) uint8 RGBA of ``values`` on ``scale``: the colour :func:`relviz.views.palette.colorize`
    gives the figures and overlays; non-finite cells transparent."""
    values = np.asarray(values, np.float64)
    finite = np.isfinite(values)
    scaled = scale.normalize(values) * 255
    if finite.all():
        return cmap_table(scale.cmap, alpha_ramp)[scaled.astype(np.intp)]
    scaled[~finite] = 0
    rgba = cmap_table(scale.cmap, alpha_ramp)[scaled.astype(np.intp)]
    rgba[~finite] = 0
    return rgba


def cell_image(item: pg.ImageItem, values: np.ndarray, rect: tuple[float, float, float, float],
               scale: ColorScale, alpha_ramp: bool = False) -> None:
    """Show ``values`` as its cells (nearest: one image pixel per cell) over ``rect`` = (x0, y0, x1, y1),
    coloured on ``scale``; non-finite cells are left transparent.

    The item keeps what it shows: ``item.values`` (the numbers) and ``item.scale`` (their colour scale);
    ``item.image`` holds the RGBA cells (:func:`cell_colors`).
    """
    item.values = np.asarray(values, np.float32)
    item.scale = scale
    item.setImage(cell_colors(item.values, scale, alpha_ramp), autoLevels=False, levels=None, lut=None)
    x0, y0, x1, y1 = rect
    item.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))

