"""The Geometry panel: what the geometry terms encode.

- Relation Networks: the selected object's ω_G to every other object, plotted at their relative
  position (Δx/w, Δy/h, normalised by the receiving box as in the official code) — the landscape of
  the geometry term sampled where the scene has objects;
- LR-Net: the input-independent k×k geometry priors of each channel group for the current layer;
- Learning Region Features: the geometric prior G_k of every part over the selected box's positions.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from relviz.app.panels.common import configure_pyqtgraph, grid_shape, levels, lut
from relviz.app.state import AppState
from relviz.views import maps


class GeometryPanel(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None):
        super().__init__(parent)
        configure_pyqtgraph()
        self.state = state
        self.info = QLabel("")
        self.info.setWordWrap(True)
        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setAcceptDrops(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.info)
        layout.addWidget(self.plots, 1)
        self.shown: list[str] = []  # which sections are drawn, for tests
        self.relation_points: np.ndarray | None = None  # (N-1, 3): Δx/w, Δy/h, ω_G
        self.landscape: np.ndarray | None = None  # ω_G over the image, when the trace holds W_G
        state.traceChanged.connect(self._redraw)
        state.selectionChanged.connect(self._on_selection)

    def _on_selection(self, changed: frozenset) -> None:
        if changed & {"object", "module", "head", "layer", "source"}:
            self._redraw()

    def _redraw(self) -> None:
        self.plots.clear()
        self.shown = []
        self.relation_points = None
        self.landscape = None
        trace, sel = self.state.trace, self.state.sel
        if trace is None:
            self.info.setText("")
            return
        row = 0
        row = self._relation(row)
        row = self._lrnet(row)
        row = self._region(row)
        if not self.shown:
            self.info.setText("this trace has no geometry terms (relation ω_G, LR-Net priors, region G_k)")
        else:
            head = "mean of heads" if sel.head is None else f"head {sel.head}"
            self.info.setText(f"geometry terms · {head}")

    def _relation(self, row: int) -> int:
        trace, sel = self.state.trace, self.state.sel
        modules = [m for m in maps.relation_modules(trace) if "geometry" in maps.relation_terms(trace, m)]
        if not modules or sel.object is None:
            return row
        module = sel.module if sel.module in modules else modules[0]
        rel = maps.relations(trace, module, "geometry", sel.head)
        r = maps.row_of_detection(rel, sel.object) if rel is not None else None
        if r is None:
            return row
        land = self._landscape(trace, module, rel.boxes[r], sel.head)
        if land is not None:
            return self._show_landscape(row, land, rel.boxes[r], module)
        offsets = maps.relative_geometry(rel.boxes, r)
        others = np.array([i for i in range(len(rel.boxes)) if i != r], int)
        values = rel.matrix[r, others]
        self.relation_points = np.column_stack([offsets[others], values])
        plot = self.plots.addPlot(row=row, col=0, title=f"ω_G of object {sel.object} ({module}) at relative position")
        plot.setLabel("bottom", "Δx / w")
        plot.setLabel("left", "Δy / h")
        plot.invertY(True)
        plot.showGrid(x=True, y=True, alpha=0.2)
        lo, hi = levels(values)
        table = lut("viridis")
        idx = np.clip(((values - lo) / (hi - lo) * 255).astype(int), 0, 255)
        scatter = pg.ScatterPlotItem(
            offsets[others, 0],
            offsets[others, 1],
            size=12,
            brush=[pg.mkBrush(*table[i]) for i in idx],
            pen=pg.mkPen("w", width=0.5),
        )
        plot.addItem(scatter)
        plot.addItem(pg.ScatterPlotItem([0], [0], symbol="+", size=16, pen=pg.mkPen("#00ff88", width=2)))
        self.shown.append("relation")
        return row + 1

    def _landscape(self, trace, module: str, box, head: int | None, res: int = 48):
        """ω_G of a box of the selected object's size placed at every image position, from W_G
        (``relation/<module>/geometry_weight``, ``geometry_bias``): (values (h, w), extent (w, h))."""
        if f"relation/{module}/geometry_weight" not in trace or f"relation/{module}/geometry_bias" not in trace:
            return None
        try:
            from relviz.render.relation import omega_g
        except ImportError:
            return None
        width, height = maps._image_size(trace)
        rows = max(int(round(res * height / width)), 1)
        xs = (np.arange(res) + 0.5) * width / res
        ys = (np.arange(rows) + 0.5) * height / rows
        bw, bh = box[2] - box[0], box[3] - box[1]
        cx, cy = np.meshgrid(xs, ys)
        others = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], -1).reshape(-1, 4)
        per_head = omega_g(trace, module, np.asarray(box), others)  # (H, rows·res)
        values = per_head.mean(axis=0) if head is None else per_head[min(head, len(per_head) - 1)]
        self.landscape = values.reshape(rows, res)
        return self.landscape, (width, height)

    def _show_landscape(self, row: int, land, box, module: str) -> int:
        values, (width, height) = land
        sel = self.state.sel
        plot = self.plots.addPlot(
            row=row, col=0, title=f"ω_G of object {sel.object} ({module}) with its box at each position"
        )
        plot.invertY(True)
        plot.setAspectLocked(True)
        plot.hideAxis("left")
        plot.hideAxis("bottom")
        item = pg.ImageItem(values, levels=levels(values), lut=lut("viridis"))
        item.setRect(QRectF(0, 0, width, height))
        plot.addItem(item)
        plot.setRange(QRectF(0, 0, width, height), padding=0.02)
        outline = pg.QtWidgets.QGraphicsRectItem(QRectF(box[0], box[1], box[2] - box[0], box[3] - box[1]))
        outline.setPen(pg.mkPen("#00ff88", width=2, cosmetic=True))
        plot.addItem(outline)
        self.shown.append("relation")
        return row + 1

    def _lrnet(self, row: int) -> int:
        trace, sel = self.state.trace, self.state.sel
        src = self.state.current_source()
        lr = maps.source(trace, "lrnet")
        layers = [n for n in (lr.layers if lr else ()) if f"lrnet/{n}/geometry" in trace]
        if not layers:
            return row
        li = maps.layer_index(len(layers), sel.layer) if src is not None and src.key == "lrnet" else len(layers) - 1
        name = layers[li]
        prior = np.asarray(trace[f"lrnet/{name}/geometry"], np.float32)  # (m, k, k)
        sub = self.plots.addLayout(row=row, col=0)
        rows, cols = grid_shape(len(prior), 4)
        sub.addLabel(f"LR-Net {name}: geometry prior (k×k logits) per group", row=0, col=0, colspan=cols)
        for g, data in enumerate(prior):
            r, c = divmod(g, cols)
            vb = sub.addViewBox(row=r + 1, col=c, lockAspect=True, invertY=True, enableMouse=False)
            item = pg.ImageItem(data, levels=levels(data, prior), lut=lut("RdBu_r"))
            item.setRect(QRectF(0, 0, data.shape[1], data.shape[0]))
            vb.addItem(item)
            if sel.head == g:
                frame = pg.QtWidgets.QGraphicsRectItem(QRectF(0, 0, data.shape[1], data.shape[0]))
                frame.setPen(pg.mkPen("#00ff88", width=3, cosmetic=True))
                vb.addItem(frame)
        self.shown.append("lrnet")
        return row + 1

    def _region(self, row: int) -> int:
        trace, sel = self.state.trace, self.state.sel
        if "region/geometry" not in trace or sel.object is None or "region/positions" not in trace:
            return row
        geo = np.asarray(trace["region/geometry"], np.float32)
        r = maps.region_row(trace, sel.object)
        if r is None or r >= geo.shape[0]:
            return row
        values = geo[r]  # (K, P)
        pos = np.asarray(trace["region/positions"][r], np.float32).reshape(-1, 2)
        square = maps.square_points(values, pos)
        sub = self.plots.addLayout(row=row, col=0)
        rows, cols = grid_shape(len(values), 4)
        sub.addLabel(f"region G_k of object {sel.object}", row=0, col=0, colspan=cols)
        for k in range(len(values)):
            r, c = divmod(k, cols)
            if square is not None:
                vb = sub.addViewBox(row=r + 1, col=c, lockAspect=True, invertY=True, enableMouse=False)
                data = square[k]
                item = pg.ImageItem(data, levels=levels(data, square), lut=lut("magma"))
                item.setRect(QRectF(0, 0, data.shape[1], data.shape[0]))
                vb.addItem(item)
            else:
                plot = sub.addPlot(row=r + 1, col=c)
                plot.invertY(True)
                lo, hi = levels(values)
                idx = np.clip(((values[k] - lo) / (hi - lo) * 255).astype(int), 0, 255)
                table = lut("magma")
                plot.addItem(
                    pg.ScatterPlotItem(
                        pos[:, 0], pos[:, 1], size=7, brush=[pg.mkBrush(*table[i]) for i in idx], pen=None
                    )
                )
        self.shown.append("region")
        return row + 1
