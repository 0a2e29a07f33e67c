"""Small multiples drawn as one mosaic: every tile's cells in one RGBA image, captions and outlines in one item.

Seventeen region parts or twelve LR-Net kernels as seventeen view boxes cost seventeen sets of graphics
items to update, lay out and paint on every hover; one image and one caption item cost one.  Each tile
keeps its cells (an integer number of image pixels per cell, nearest), its own colour scale, a caption
and an optional outline; a click on a tile reports the tile's index.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import QGraphicsItem

from relviz.app.panels.common import cell_colors, configure_pyqtgraph
from relviz.views.palette import ColorScale

MIN_TILE_PIXELS = 24  # a tile is drawn at least this many image pixels wide: room for a visible gap


def layout_factor(rows: int, cols: int) -> tuple[int, int]:
    """(pixels per cell, pixels between tiles) for tiles of rows × cols cells."""
    f = max(1, int(np.ceil(MIN_TILE_PIXELS / max(rows, cols, 1))))
    gap = max(1, round(0.06 * f * max(rows, cols)))
    return f, gap


class _Captions(pg.GraphicsObject):
    """The tiles' captions (in screen pixels, at each tile's top-left corner) and outlines, one item."""

    def __init__(self) -> None:
        super().__init__()
        self.rects: list[QRectF] = []
        self.texts: list[str] = []
        self.outlines: list[tuple[str, float] | None] = []
        self.bounds = QRectF(0, 0, 1, 1)
        self.font = QFont()
        self.font.setPointSizeF(8.0)

    def set(self, rects: list[QRectF], texts: list[str], outlines: list[tuple[str, float] | None]) -> None:
        if rects == self.rects and texts == self.texts and outlines == self.outlines:
            return  # the same captions: nothing to repaint
        bounds = QRectF()
        for r in rects:
            bounds = bounds.united(r)
        if bounds != self.bounds:
            self.prepareGeometryChange()
            self.bounds = bounds
        self.rects, self.texts, self.outlines = rects, texts, outlines
        self.update()

    def boundingRect(self) -> QRectF:
        return self.bounds.adjusted(-2, -2, 2, 2)

    def paint(self, p: QPainter, *args) -> None:
        to_screen = p.transform()
        for rect, outline in zip(self.rects, self.outlines, strict=True):
            if outline:
                pen = QPen(QColor(outline[0]), outline[1])
                pen.setCosmetic(True)
                p.setPen(pen)
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.drawRect(rect)
        p.save()
        p.resetTransform()
        p.setFont(self.font)
        metrics = p.fontMetrics()
        h = metrics.height()
        for rect, text in zip(self.rects, self.texts, strict=True):
            if not text:
                continue
            corner = to_screen.map(QPointF(rect.left(), rect.top()))
            box = QRectF(corner.x() + 1, corner.y() + 1, metrics.horizontalAdvance(text) + 6, h)
            p.fillRect(box, QColor(0, 0, 0, 150))
            p.setPen(QColor("white"))
            p.drawText(box.adjusted(3, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter, text)
        p.restore()


class Mosaic(pg.GraphicsView):
    """Tiles of cells in a grid, in one view box that keeps their aspect."""

    def __init__(self, on_click: Callable[[int], None] | None = None, parent=None):
        configure_pyqtgraph()
        super().__init__(parent)
        self.setAcceptDrops(False)
        self.setAntialiasing(False)  # cells are cells
        self.vb = pg.ViewBox(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False)
        self.setCentralItem(self.vb)
        self.image = pg.ImageItem()
        self.vb.addItem(self.image)
        self.captions = _Captions()
        self.captions.setZValue(1)
        # the captions seldom change while the cells under them change on every hover: repaint from a cache
        self.captions.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.vb.addItem(self.captions, ignoreBounds=True)
        self.on_click = on_click
        self.image.mouseClickEvent = self._clicked
        self.tiles: list[np.ndarray] = []  # what each tile shows (its cells)
        self.scales: list[ColorScale] = []
        self.titles: list[str] = []
        self.rects: list[QRectF] = []  # each tile's rectangle in mosaic pixels
        self.factor = 1  # mosaic pixels per cell
        self._size: tuple[int, int] | None = None

    def show_tiles(self, tiles: Sequence[np.ndarray], scales: Sequence[ColorScale], titles: Sequence[str],
                   cols: int, outlines: Sequence[tuple[str, float] | None] | None = None) -> None:
        """Draw ``tiles`` (2-D arrays of one shape; smaller ones are padded with blank cells) row-major in
        ``cols`` columns, each on its scale, with its caption and outline (colour, width) or None."""
        n = len(tiles)
        self.tiles, self.scales, self.titles = [np.asarray(t, np.float32) for t in tiles], list(scales), list(titles)
        if n == 0:
            self.image.clear()
            self.rects = []
            self.captions.set([], [], [])
            return
        h = max(t.shape[0] for t in self.tiles)
        w = max(t.shape[1] for t in self.tiles)
        f, gap = layout_factor(h, w)
        cols = max(1, min(cols, n))
        rows = int(np.ceil(n / cols))
        th, tw = h * f, w * f
        height, width = rows * th + (rows - 1) * gap, cols * tw + (cols - 1) * gap
        mosaic = np.zeros((height, width, 4), np.uint8)
        colours: list[np.ndarray | None] = [None] * n
        by_scale: dict[ColorScale, list[int]] = {}  # one colouring pass per scale (shared ranges: one in all)
        for i, (tile, scale) in enumerate(zip(self.tiles, self.scales, strict=True)):
            if tile.shape == (h, w):
                by_scale.setdefault(scale, []).append(i)
        for scale, members in by_scale.items():
            for i, rgba in zip(members, cell_colors(np.stack([self.tiles[i] for i in members]), scale), strict=True):
                colours[i] = rgba
        self.rects = []
        for i, tile in enumerate(self.tiles):
            r, c = divmod(i, cols)
            y0, x0 = r * (th + gap), c * (tw + gap)
            rgba = colours[i] if colours[i] is not None else cell_colors(tile, self.scales[i])
            if f > 1:
                rgba = np.repeat(np.repeat(rgba, f, axis=0), f, axis=1)
            mosaic[y0:y0 + tile.shape[0] * f, x0:x0 + tile.shape[1] * f] = rgba
            self.rects.append(QRectF(x0, y0, tile.shape[1] * f, tile.shape[0] * f))
        self.factor = f
        self.image.setImage(mosaic, autoLevels=False, levels=None, lut=None)
        if self._size != (height, width):
            self._size = (height, width)
            self.image.setRect(QRectF(0, 0, width, height))
            self.vb.setRange(QRectF(0, 0, width, height), padding=0.02)
            self.vb.updateMatrix()  # now, not at paint time (which would paint twice)
        self.captions.set(self.rects, self.titles, list(outlines) if outlines is not None else [None] * n)

    def tile_pixels(self, i: int) -> np.ndarray:
        """The RGBA cells tile ``i`` shows on screen (one mosaic pixel per cell, read back from the image)."""
        rect, f = self.rects[i], self.factor
        rows, cols = self.tiles[i].shape
        y0, x0 = int(rect.top()), int(rect.left())
        return self.image.image[y0 + f // 2:y0 + rows * f:f, x0 + f // 2:x0 + cols * f:f]

    def tile_at(self, x: float, y: float) -> int | None:
        """The index of the tile under mosaic point (x, y), or None (a gap, outside)."""
        for i, rect in enumerate(self.rects):
            if rect.contains(QPointF(x, y)):
                return i
        return None

    def _clicked(self, event) -> None:
        i = self.tile_at(event.pos().x(), event.pos().y())
        if i is not None and self.on_click is not None:
            self.on_click(i)
