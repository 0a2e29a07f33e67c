"""The canvas: the image or video frame, its boxes and labels, the current heatmap, relation arrows.

All boxes, labels and arrows are painted by one :class:`OverlayItem` (one graphics item however many
objects), region sample points by one scatter item.  Hovering a point (with "follow mouse" on) or
clicking writes the point or object into the state; the state's selection decides what is drawn.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import (
    QCheckBox,
    QGraphicsItem,
    QHBoxLayout,
    QLabel,
    QSlider,
    QStackedLayout,
    QVBoxLayout,
    QWidget,
)

from relviz.app.panels.common import (
    ColorBar,
    TextLine,
    cell_image,
    configure_pyqtgraph,
    label_color,
    lut,
    shown_map,
)
from relviz.app.state import AppState
from relviz.views import maps
from relviz.views.relations import TOP_RELATIONS
from relviz.views.selection import captions

MAX_ARROWS = TOP_RELATIONS  # the selected object's strongest relations, as many as the Relations bars


ARROW_DIM = QColor("#1c3c44")  # the weakest arrow's colour: the arrow colour most of the way to the dark


def _mix(a: QColor, b: QColor, t: float) -> QColor:
    """``a`` to ``b`` at ``t`` in 0..1, opaque."""
    return QColor(round(a.red() + (b.red() - a.red()) * t), round(a.green() + (b.green() - a.green()) * t),
                  round(a.blue() + (b.blue() - a.blue()) * t))


class _Layer(pg.GraphicsObject):
    """One layer of the overlay, painted by ``paint_fn`` over the overlay's bounds."""

    def __init__(self, parent: OverlayItem, paint_fn, behind: bool = False):
        super().__init__(parent)
        self.overlay = parent
        self.paint_fn = paint_fn
        if behind:
            self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemStacksBehindParent, True)

    def boundingRect(self) -> QRectF:
        return self.overlay.boundingRect()

    def paint(self, p: QPainter, *args) -> None:
        self.paint_fn(p)


class OverlayItem(pg.GraphicsObject):
    """Boxes, their labels and relation arrows, in three layers: the arrows under the boxes, every box with
    its label (cached: it changes with the trace only), the selected pair's highlight on top.  A click
    repaints the arrows and the highlight, not every box and label."""

    def __init__(self):
        super().__init__()
        self.boxes = np.zeros((0, 4), np.float32)
        self.colors: list[QColor] = []
        self.texts: list[str] = []
        self.selected: int | None = None
        self.partner: int | None = None
        self.arrows = np.zeros((0, 4), np.float32)  # x0, y0, x1, y1
        self.strengths = np.zeros(0, np.float32)  # 0..1
        self.arrow_color = QColor("#40e0ff")
        self.bounds = QRectF(0, 0, 1, 1)
        self.show_labels = True
        self.font = QFont()
        self.font.setPointSizeF(8.5)
        self.arrow_layer = _Layer(self, self._paint_arrows, behind=True)
        self.highlight = _Layer(self, self._paint_highlight)

    def set_bounds(self, width: int, height: int) -> None:
        self.prepareGeometryChange()
        for layer in (self.arrow_layer, self.highlight):
            layer.prepareGeometryChange()
        self.bounds = QRectF(0, 0, width, height)

    def set_boxes(self, boxes: np.ndarray, colors: list[QColor], texts: list[str]) -> None:
        self.boxes, self.colors, self.texts = np.asarray(boxes, np.float32).reshape(-1, 4), colors, texts
        self.update()
        self.highlight.update()

    def set_selection(self, selected: int | None, partner: int | None) -> None:
        if (selected, partner) != (self.selected, self.partner):
            self.selected, self.partner = selected, partner
            self.highlight.update()

    def set_arrows(self, segments: np.ndarray, strengths: np.ndarray) -> None:
        self.arrows = np.asarray(segments, np.float32).reshape(-1, 4)
        self.strengths = np.clip(np.asarray(strengths, np.float32).reshape(-1), 0, 1)
        self.arrow_layer.update()

    def set_labels(self, on: bool) -> None:
        self.show_labels = on
        self.update()
        self.highlight.update()

    def boundingRect(self) -> QRectF:
        return self.bounds.adjusted(-50, -50, 50, 50)

    def paint(self, p: QPainter, *args) -> None:
        """Every box in its class colour, with its label."""
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        for i in range(len(self.boxes)):
            self._box(p, i, self.colors[i] if i < len(self.colors) else QColor("white"), 1.5)
        if self.show_labels:
            self._labels(p, range(len(self.boxes)), selected=None)

    def _paint_arrows(self, p: QPainter) -> None:
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        to_screen = p.transform()  # widths in screen pixels (cosmetic pens)
        for (x0, y0, x1, y1), s in zip(self.arrows, self.strengths, strict=False):
            # opaque colours, from dim to bright with the strength (and wider): a translucent antialiased
            # stroke costs about seven times as much to draw
            color = _mix(ARROW_DIM, self.arrow_color, 0.3 + 0.7 * float(s))
            pen = QPen(color, 1.0 + 5.0 * float(s))
            pen.setCosmetic(True)
            pen.setCapStyle(Qt.PenCapStyle.FlatCap)  # the head covers the end; round caps cost 3× to stroke
            p.setPen(pen)
            p.drawLine(QPointF(x0, y0), QPointF(x1, y1))
            self._arrow_head(p, to_screen, QPointF(x0, y0), QPointF(x1, y1), color, 6 + 8 * float(s))

    def _paint_highlight(self, p: QPainter) -> None:
        """The selected object (white, on top) and its partner (dashed), over the boxes."""
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        pair = [i for i in (self.partner, self.selected) if i is not None and 0 <= i < len(self.boxes)]
        for i in pair:
            color = self.colors[i] if i < len(self.colors) else QColor("white")
            self._box(p, i, QColor("white") if i == self.selected else color, 3.5 if i == self.selected else 2.5,
                      dashed=i == self.partner and i != self.selected)
        if self.show_labels:
            self._labels(p, pair, selected=self.selected)

    def _box(self, p: QPainter, i: int, color: QColor, width: float, dashed: bool = False) -> None:
        x0, y0, x1, y1 = self.boxes[i]
        pen = QPen(color, width)
        pen.setCosmetic(True)
        if dashed:
            pen.setStyle(Qt.PenStyle.DashLine)
        p.setPen(pen)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(QRectF(float(x0), float(y0), float(x1 - x0), float(y1 - y0)))

    def _labels(self, p: QPainter, order, selected: int | None) -> None:
        to_screen = p.transform()
        p.save()
        p.resetTransform()  # text in screen pixels, placed at the mapped box corners
        p.setFont(self.font)
        metrics = p.fontMetrics()
        for i in order:
            if i >= len(self.texts):
                continue
            x0, y0, text = self.boxes[i][0], self.boxes[i][1], self.texts[i]
            corner = to_screen.map(QPointF(float(x0), float(y0)))
            w = metrics.horizontalAdvance(text) + 6
            h = metrics.height()
            rect = QRectF(corner.x(), corner.y() - h, w, h)
            color = self.colors[i] if i < len(self.colors) else QColor("black")
            p.fillRect(rect, QColor("white") if i == selected else color)
            p.setPen(QColor("black") if i == selected else QColor("white"))
            p.drawText(rect.adjusted(3, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter, text)
        p.restore()

    @staticmethod
    def _arrow_head(p: QPainter, to_screen, a: QPointF, b: QPointF, color: QColor, size: float) -> None:
        sa, sb = to_screen.map(a), to_screen.map(b)
        dx, dy = sb.x() - sa.x(), sb.y() - sa.y()
        length = math.hypot(dx, dy)
        if length < 1e-6:
            return
        ux, uy = dx / length, dy / length
        left = QPointF(sb.x() - size * ux + size * 0.5 * uy, sb.y() - size * uy - size * 0.5 * ux)
        right = QPointF(sb.x() - size * ux - size * 0.5 * uy, sb.y() - size * uy + size * 0.5 * ux)
        p.save()
        p.resetTransform()
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(color)
        p.drawPolygon(QPolygonF([sb, left, right]))
        p.restore()

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addRect(self.bounds)
        return path


class CanvasPanel(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None):
        super().__init__(parent)
        configure_pyqtgraph()
        self.state = state
        self.view = pg.GraphicsView()
        self.view.setAcceptDrops(False)  # drops go to the window
        # no antialiasing for the images: cells are drawn as cells, and a scaled image is several times
        # cheaper to draw without it; the boxes and arrows switch it on for themselves
        self.view.setAntialiasing(False)
        self.vb = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.view.setCentralItem(self.vb)
        self.image_item = pg.ImageItem()
        self.heat_item = pg.ImageItem()
        self.heat_item.setZValue(1)
        self.heat_item.setOpacity(0.6)
        self.overlay = OverlayItem()
        self.overlay.setZValue(2)
        self.points_item = pg.ScatterPlotItem(pxMode=True, size=9, pen=pg.mkPen("w", width=0.5))
        self.points_item.setZValue(3)
        self.marker = pg.ScatterPlotItem(
            pxMode=True, size=16, symbol="+", pen=pg.mkPen("#00ff88", width=2.5), brush=None
        )
        self.marker.setZValue(4)
        for item in (self.image_item, self.heat_item, self.overlay, self.points_item, self.marker):
            self.vb.addItem(item)
        # the photo and the boxes do not change on a hover: repaint them from a device-pixel cache
        self.image_item.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.overlay.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)

        self.placeholder = QLabel(
            "<h2>relviz</h2><p>Drop an image, video, folder or checkpoint (.pth, .pt, .safetensors) "
            "anywhere on this window,<br>or use File → Open… and Model → Open checkpoint….</p>"
        )
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setObjectName("placeholder")
        self.placeholder.setStyleSheet("color: #9a9a9a; background: #1e1e1e;")
        self.stack = QStackedLayout()
        self.stack.addWidget(self.placeholder)
        self.stack.addWidget(self.view)

        self.caption = TextLine(1)  # a new caption per hover repaints itself only
        self.caption.setObjectName("canvasCaption")
        self.follow = QCheckBox("follow mouse")
        self.follow.setChecked(True)
        self.follow.setToolTip(
            "Hovering the image moves the reference point of point maps (encoder, "
            "non-local, LR-Net); clicking always does."
        )
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(60)
        self.opacity.setFixedWidth(110)
        self.opacity.setToolTip("heatmap opacity")
        self.opacity.valueChanged.connect(lambda v: self.heat_item.setOpacity(v / 100))
        self.labels_box = QCheckBox("labels")
        self.labels_box.setChecked(True)
        self.labels_box.toggled.connect(self._toggle_labels)
        self.colorbar = ColorBar()
        self.colorbar.setMaximumWidth(460)
        bar = QHBoxLayout()  # the caption, with the room the controls leave
        bar.setContentsMargins(4, 0, 4, 0)
        bar.addWidget(self.caption, 1)
        bar.addWidget(self.labels_box)
        bar.addWidget(self.follow)
        bar.addWidget(QLabel("heatmap"))
        bar.addWidget(self.opacity)
        scale_row = QHBoxLayout()  # the heatmap's colour scale under the image, as in a figure
        scale_row.setContentsMargins(4, 0, 4, 2)
        scale_row.addWidget(self.colorbar, 1)
        scale_row.addStretch(0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(bar)
        layout.addLayout(self.stack, 1)
        layout.addLayout(scale_row)

        self.vb.scene().sigMouseMoved.connect(self._on_move)
        self.vb.scene().sigMouseClicked.connect(self._on_click)
        state.imageChanged.connect(self._on_image)
        state.traceChanged.connect(self._on_trace)
        state.selectionChanged.connect(self._on_selection)
        state.modelChanged.connect(self._on_model)
        self._size: tuple[int, int] = (0, 0)
        self.last_heat: np.ndarray | None = None  # the map last drawn (its cells), for tests
        self.map: maps.Map | None = None  # the view the heatmap shows
        self.relation: maps.Relations | None = None  # the view the arrows come from
        self.arrow_entries = np.zeros(0, int)  # the relation entries the arrows come from, strongest first
        self.last_update_s = 0.0

    # -- state → view --------------------------------------------------------------------------------
    def _toggle_labels(self, on: bool) -> None:
        self.overlay.set_labels(on)

    def _on_image(self) -> None:
        img = self.state.image
        if img is None:
            self.stack.setCurrentIndex(0)
            self.image_item.clear()
            return
        self.stack.setCurrentIndex(1)
        self.image_item.setImage(img, autoLevels=False, levels=(0, 255))
        h, w = img.shape[:2]
        if (w, h) != self._size:
            self._size = (w, h)
            self.overlay.set_bounds(w, h)
            self.vb.setRange(QRectF(0, 0, w, h), padding=0.01)

    def _on_model(self) -> None:
        if self.state.trace is None:
            self.caption.setText(self._caption(None))

    def _on_trace(self) -> None:
        trace = self.state.trace
        boxes, scores, labels = maps.detections(trace)
        texts = captions(trace)  # "d0 circle 0.95": the names the matrices, bars and figures use
        self.overlay.set_boxes(boxes, [label_color(int(lab)) for lab in labels], texts)

    def _on_selection(self, changed: frozenset) -> None:
        t0 = time.perf_counter()
        sel = self.state.sel
        if changed & {"object", "partner", "trace"}:
            self.overlay.set_selection(sel.object, sel.partner)
        self._draw_heat()
        if changed & {"object", "module", "head", "term", "layer", "trace"}:  # not on a mere hover
            self._draw_arrows()
        if sel.point is not None and self._point_mode():  # the point drives point maps only
            self.marker.setData([sel.point[0]], [sel.point[1]])
        else:
            self.marker.clear()
        self.last_update_s = time.perf_counter() - t0

    def _draw_heat(self) -> None:
        sel, trace = self.state.sel, self.state.trace
        if self.map is not None and self.map.points is not None:
            self.points_item.clear()
        m = shown_map(self.state)
        self.map = m
        if m is None:
            self.heat_item.clear()
            self.last_heat = None
            self.colorbar.set_scale(None)
            self.caption.setText(self._caption(None))
            return
        values = m.head(sel.head, maps.time_step(m, trace, sel.frame))
        self.last_heat = values
        self.caption.setText(self._caption(m))
        scale = m.scale(shared=True)  # the range the small multiples share
        self.colorbar.set_scale(scale)
        if m.rect is not None:
            cell_image(self.heat_item, values, m.rect, scale, alpha_ramp=not m.symmetric)
        elif m.points is not None:  # values at scattered points (no lattice): one dot per point
            self.heat_item.clear()
            table = lut(scale.cmap)
            idx = np.nan_to_num(scale.normalize(values) * 255, nan=0).astype(int)
            brushes = [pg.mkBrush(*table[i]) for i in idx]
            self.points_item.setData(m.points[:, 0], m.points[:, 1], brush=brushes, size=10)

    def _caption(self, m: maps.Map | None) -> str:
        sel = self.state.sel
        if self.state.trace is None:
            if self.state.image is None:
                return ""
            return (
                f"{self.state.model.describe()} — Run (Ctrl+R) to see its relations"
                if self.state.model.name
                else "no model loaded: choose one in the Model panel, or drop a checkpoint"
            )
        if m is None:
            src = self.state.current_source()
            if src is None:
                return "this trace has no attention maps"
            return f"{src.label}: click {'an object' if src.driver == 'object' else 'a point'}"
        if m.values.shape[0] == 1 or m.axis != "head":
            return m.title
        word = m.head_titles[0].split()[0] if m.head_titles else "head"  # head, part or group
        head = f"mean of {word}s" if sel.head is None else f"{word} {sel.head}"
        return f"{m.title} · {head}"

    def _draw_arrows(self) -> None:
        """The selected object's strongest relations among the detections: the same ranking as the bars."""
        sel, trace = self.state.sel, self.state.trace
        rel = None
        if trace is not None and sel.module is not None and sel.object is not None:
            term = sel.term if sel.term in maps.relation_terms(trace, sel.module) else "weight"
            rel = maps.relations(trace, sel.module, term, sel.head, sel.layer)
        index = rel.index_of(sel.object) if rel is not None else None
        self.relation = rel
        if rel is None or index is None:
            self.arrow_entries = np.zeros(0, int)
            self.overlay.set_arrows(np.zeros((0, 4)), np.zeros(0))
            return
        top, segments, strength = rel.arrows(index, MAX_ARROWS)
        self.arrow_entries = top
        self.overlay.set_arrows(segments, strength)

    # -- view → state --------------------------------------------------------------------------------
    def _to_image(self, scene_pos) -> tuple[float, float] | None:
        if self.state.image is None:
            return None
        p = self.vb.mapSceneToView(scene_pos)
        w, h = self._size
        # a screen pixel on the image's edge may map a hair outside it: such points are taken onto the edge
        slack = 1.0
        if -slack <= p.x() < w + slack and -slack <= p.y() < h + slack:
            return min(max(float(p.x()), 0.0), w - 1e-3), min(max(float(p.y()), 0.0), h - 1e-3)
        return None

    def _on_move(self, scene_pos) -> None:
        if not self.follow.isChecked():
            return
        src = self.state.current_source()
        if src is None or src.driver != "point":
            return
        pt = self._to_image(scene_pos)
        if pt is not None:
            self.state.select(point=pt)

    def _on_click(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        pt = self._to_image(event.scenePos())
        if pt is None:
            return
        mods = event.modifiers()
        pick = bool(mods & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier))
        self.click_at(*pt, pick_object=pick)

    def click_at(self, x: float, y: float, pick_object: bool = False) -> None:
        """A click at image pixel (x, y).

        With an object map on the canvas, a click inside boxes selects the smallest of them; with a
        point map (encoder, non-local, LR-Net) the click moves the reference point, even inside a box
        (paper figures put the points on objects) — Ctrl/Shift+click selects the object instead.
        """
        boxes = maps.detections(self.state.trace)[0]
        inside = np.flatnonzero((boxes[:, 0] <= x) & (x <= boxes[:, 2]) & (boxes[:, 1] <= y) & (y <= boxes[:, 3]))
        if len(inside) and (pick_object or not self._point_mode()):
            areas = (boxes[inside, 2] - boxes[inside, 0]) * (boxes[inside, 3] - boxes[inside, 1])
            self.state.select(object=int(inside[np.argmin(areas)]), partner=None)
        else:
            self.state.select(point=(x, y))

    def _point_mode(self) -> bool:
        src = self.state.current_source()
        return src is not None and src.driver == "point"
