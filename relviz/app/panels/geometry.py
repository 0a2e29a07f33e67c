"""The Geometry panel: what the geometry terms encode.

- Relation Networks: the selected object's ω_G to every other object, plotted at their relative
  position (Δx/w, Δy/h, normalised by the receiving box as in the official code) — the landscape of
  the geometry term sampled where the scene has objects;
- LR-Net: the input-independent k×k geometry priors of the current layer, large: the picked group, or the
  most peaked few (the groups whose prior alone favours one neighbour most);
- Learning Region Features: the geometric prior G_k of every part over the selected box's positions.

Every map is drawn as its cells, with its colour range stated; the numbers come from :mod:`relviz.views`.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from relviz.app.panels.common import ColorBar, cell_image, configure_pyqtgraph, grid_shape, lut
from relviz.app.state import AppState
from relviz.views import geometry, maps
from relviz.views.lrnet import prior_weight
from relviz.views.palette import DIVERGING_CMAP, MATRIX_CMAP, color_scale

MAX_PRIORS = 8  # LR-Net priors shown at once (the most peaked), unless a group is picked


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
        self.colorbar = ColorBar()
        layout.addWidget(self.colorbar)
        self.shown: list[str] = []  # which sections are drawn, for tests
        self.relation_points: np.ndarray | None = None  # (N-1, 3): Δx/w, Δy/h, ω_G
        self.landscape: np.ndarray | None = None  # ω_G over the image, when the trace holds W_G
        self.prior_groups: list[int] = []  # LR-Net: the groups whose priors are shown
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
        self.prior_groups = []
        self.colorbar.set_scale(None)
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
        r = rel.index_of(sel.object) if rel is not None else None
        if r is None:
            return row
        land = self._landscape(trace, module, rel.boxes[r], sel.head)
        if land is not None:
            return self._show_landscape(row, land, rel.boxes[r], module)
        offsets = maps.relative_geometry(rel.boxes, r)
        others = np.array([i for i in range(len(rel.boxes)) if i != r], int)
        values = rel.matrix[r, others]
        self.relation_points = np.column_stack([offsets[others], values])
        plot = self.plots.addPlot(row=row, col=0, title=f"ω_G into d{sel.object} ({module}) at relative position")
        plot.setLabel("bottom", "Δx / w")
        plot.setLabel("left", "Δy / h")
        plot.invertY(True)
        plot.showGrid(x=True, y=True, alpha=0.2)
        scale = color_scale([values], MATRIX_CMAP, False, label="ω_G")
        self.colorbar.set_scale(scale)
        table = lut(MATRIX_CMAP)
        idx = np.nan_to_num(scale.normalize(values) * 255, nan=0).astype(int)
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

    def _landscape(self, trace, module: str, box, head: int | None):
        """ω_G of a box of the selected object's size centred at each cell of a grid over the image, from W_G
        (:func:`relviz.views.geometry.landscape`): (values (rows, cols), rect)."""
        if not geometry.has_landscape(trace, module):
            return None
        land = geometry.landscape(trace, module, np.asarray(box), maps.image_size(trace))
        self.landscape = land.head(head)
        return self.landscape, land.rect

    def _show_landscape(self, row: int, land, box, module: str) -> int:
        values, rect = land
        sel = self.state.sel
        plot = self.plots.addPlot(
            row=row, col=0, title=f"ω_G into d{sel.object} ({module}) of a box its size centred in each cell"
        )
        plot.invertY(True)
        plot.setAspectLocked(True)
        plot.hideAxis("left")
        plot.hideAxis("bottom")
        if self.state.image is not None:
            photo = pg.ImageItem(self.state.image, levels=(0, 255))
            plot.addItem(photo)
        item = pg.ImageItem()
        item.setOpacity(0.75)
        scale = color_scale([values], MATRIX_CMAP, False, label="ω_G")
        cell_image(item, values, rect, scale)
        self.colorbar.set_scale(scale)
        plot.addItem(item)
        plot.setRange(QRectF(rect[0], rect[1], rect[2] - rect[0], rect[3] - rect[1]), padding=0.02)
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
        if sel.head is not None and src is not None and src.key == "lrnet":
            groups = [min(sel.head, len(prior) - 1)]
        else:  # the most peaked priors: the groups whose geometry alone favours one neighbour most
            peak = prior_weight(prior).reshape(len(prior), -1).max(axis=1)
            groups = [int(g) for g in np.argsort(-peak, kind="stable")[:MAX_PRIORS]]
        self.prior_groups = groups
        k = prior.shape[-1]
        scale = color_scale([prior[g] for g in groups], DIVERGING_CMAP, True, symmetric=True, label="prior logit")
        self.colorbar.set_scale(scale)
        sub = self.plots.addLayout(row=row, col=0)
        rows, cols = grid_shape(len(groups), 4)
        which = f"group {groups[0]}" if len(groups) == 1 else f"the {len(groups)} most peaked of {len(prior)} groups"
        sub.addLabel(f"LR-Net {name}: {k}×{k} geometry prior (logits) of {which}", row=0, col=0, colspan=cols)
        for n, g in enumerate(groups):
            r, c = divmod(n, cols)
            vb = sub.addViewBox(row=r + 1, col=c, lockAspect=True, invertY=True, enableMouse=False)
            item = pg.ImageItem()
            cell_image(item, prior[g], (0.0, 0.0, float(k), float(k)), scale)
            vb.addItem(item)
            label = pg.TextItem(f"g{g}", color="#ffffff", anchor=(0, 0), fill=pg.mkBrush(0, 0, 0, 150))
            vb.addItem(label, ignoreBounds=True)
            vb.setRange(QRectF(0, 0, k, k), padding=0.02)
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
        scale = color_scale([values], "magma", True, label="G_k")
        self.colorbar.set_scale(scale)
        sub = self.plots.addLayout(row=row, col=0)
        rows, cols = grid_shape(len(values), 4)
        sub.addLabel(f"region G_k of object {sel.object}", row=0, col=0, colspan=cols)
        for k in range(len(values)):
            r, c = divmod(k, cols)
            if square is not None:
                vb = sub.addViewBox(row=r + 1, col=c, lockAspect=True, invertY=True, enableMouse=False)
                data = square[k]
                item = pg.ImageItem()
                cell_image(item, data, (0.0, 0.0, float(data.shape[1]), float(data.shape[0])), scale)
                vb.addItem(item)
            else:
                plot = sub.addPlot(row=r + 1, col=c)
                plot.invertY(True)
                idx = np.nan_to_num(scale.normalize(values[k]) * 255, nan=0).astype(int)
                table = lut("magma")
                plot.addItem(
                    pg.ScatterPlotItem(
                        pos[:, 0], pos[:, 1], size=7, brush=[pg.mkBrush(*table[i]) for i in idx], pen=None
                    )
                )
        self.shown.append("region")
        return row + 1
