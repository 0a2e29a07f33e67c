"""The Geometry panel: what the geometry terms encode.

- Relation Networks: the selected object's ω_G to every other object, plotted at their relative
  position (Δx/w, Δy/h, normalised by the receiving box as in the official code) — the landscape of
  the geometry term sampled where the scene has objects;
- LR-Net: the input-independent k×k geometry priors of the current layer, large: the picked group, or the
  most peaked few (the groups whose prior alone favours one neighbour most);
- Learning Region Features: the geometric prior G_k of every part over the selected box's positions.

Every map is drawn as its cells, with its colour range stated; the numbers come from :mod:`relviz.views`.

The panel follows the selection only while it is on screen: tabbed away or hidden, a change marks it stale
and it catches up when shown (or when its contents are read).  Its plots are built once per arrangement
(which sections, how many tiles) and then only refilled, so a click costs new numbers, not new widgets.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QVBoxLayout, QWidget

from relviz.app.panels.common import ColorBar, TextLine, WhenShown, cell_image, configure_pyqtgraph, grid_shape, lut
from relviz.app.panels.mosaic import Mosaic
from relviz.app.state import AppState
from relviz.views import geometry, maps
from relviz.views.lrnet import prior_weight
from relviz.views.palette import DIVERGING_CMAP, MATRIX_CMAP, ColorScale, color_scale

MAX_PRIORS = 8  # LR-Net priors shown at once (the most peaked), unless a group is picked
REGION_CMAP = "magma"


def _brushes(values: np.ndarray, scale: ColorScale) -> list:
    table = lut(scale.cmap)
    idx = np.nan_to_num(scale.normalize(values) * 255, nan=0).astype(int)
    return [pg.mkBrush(*table[i]) for i in idx]


class _Landscape:
    """ω_G over the image: the photo, the landscape as cells over it, the selected box outlined."""

    def __init__(self, layout: pg.GraphicsLayout, row: int):
        self.plot = layout.addPlot(row=row, col=0)
        self.plot.invertY(True)
        self.plot.setAspectLocked(True)
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.setMenuEnabled(False)
        self.photo = pg.ImageItem()
        self.plot.addItem(self.photo)
        self.heat = pg.ImageItem()
        self.heat.setOpacity(0.75)
        self.plot.addItem(self.heat)
        self.outline = pg.QtWidgets.QGraphicsRectItem()
        self.outline.setPen(pg.mkPen("#00ff88", width=2, cosmetic=True))
        self.plot.addItem(self.outline)
        self._photo = None
        self._rect = None

    def show(self, title: str, photo: np.ndarray | None, values: np.ndarray, rect, box, scale: ColorScale) -> None:
        self.plot.setTitle(title)
        if photo is not self._photo:
            self._photo = photo
            if photo is None:
                self.photo.clear()
            else:
                self.photo.setImage(photo, autoLevels=False, levels=(0, 255))
        cell_image(self.heat, values, rect, scale)
        self.outline.setRect(QRectF(box[0], box[1], box[2] - box[0], box[3] - box[1]))
        if rect != self._rect:
            self._rect = rect
            self.plot.setRange(QRectF(rect[0], rect[1], rect[2] - rect[0], rect[3] - rect[1]), padding=0.02)


class _RelativeScatter:
    """ω_G at the other objects' relative positions (no W_G in the trace to draw a landscape from)."""

    def __init__(self, layout: pg.GraphicsLayout, row: int):
        self.plot = layout.addPlot(row=row, col=0)
        self.plot.setLabel("bottom", "Δx / w")
        self.plot.setLabel("left", "Δy / h")
        self.plot.invertY(True)
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.scatter = pg.ScatterPlotItem(size=12, pen=pg.mkPen("w", width=0.5))
        self.plot.addItem(self.scatter)
        self.plot.addItem(pg.ScatterPlotItem([0], [0], symbol="+", size=16, pen=pg.mkPen("#00ff88", width=2)))

    def show(self, title: str, offsets: np.ndarray, values: np.ndarray, scale: ColorScale) -> None:
        self.plot.setTitle(title)
        self.scatter.setData(offsets[:, 0], offsets[:, 1], brush=_brushes(values, scale))


class _PointPlots:
    """Region parts whose positions form no lattice: one scatter plot per part."""

    def __init__(self, layout: pg.GraphicsLayout, row: int, n: int, cols: int):
        self.sub = layout.addLayout(row=row, col=0)
        self.scatters = []
        for i in range(n):
            r, c = divmod(i, cols)
            plot = self.sub.addPlot(row=r, col=c)
            plot.invertY(True)
            scatter = pg.ScatterPlotItem(size=7, pen=None)
            plot.addItem(scatter)
            self.scatters.append(scatter)

    def show(self, pos: np.ndarray, values: np.ndarray, scale: ColorScale) -> None:
        for scatter, v in zip(self.scatters, values, strict=True):
            scatter.setData(pos[:, 0], pos[:, 1], brush=_brushes(v, scale))


class GeometryPanel(WhenShown, QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None):
        super().__init__(parent)
        configure_pyqtgraph()
        self.state = state
        self._info = TextLine(2)
        # one widget per kind of section, shown when the trace has it: plots (the ω_G landscape or scatter,
        # region parts at scattered points) and two mosaics of cells (LR-Net priors, region parts)
        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setAcceptDrops(False)
        self.priors = Mosaic()
        self.parts = Mosaic()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self._info)
        for widget in (self.plots, self.priors, self.parts):
            layout.addWidget(widget, 1)
            widget.hide()
        self.colorbar = ColorBar()
        layout.addWidget(self.colorbar)
        self._shown: list[str] = []
        self._relation_points: np.ndarray | None = None  # (N-1, 3): Δx/w, Δy/h, ω_G
        self._landscape: np.ndarray | None = None  # ω_G over the image, when the trace holds W_G
        self._prior_groups: list[int] = []  # LR-Net: the groups whose priors are shown
        self._arrangement: tuple = ()  # what the plots were built for
        self._sections: dict[str, object] = {}
        self._stale = False
        self.redraws = 0  # how often the panel computed and drew (a hidden panel does not)
        state.traceChanged.connect(self._invalidate)
        state.selectionChanged.connect(self._on_selection)

    # -- what is shown (brought up to date when read) ---------------------------------------------------
    @property
    def info(self) -> TextLine:
        self._catch_up()
        return self._info

    @property
    def shown(self) -> list[str]:
        """Which sections are drawn: 'relation', 'lrnet', 'region'."""
        self._catch_up()
        return self._shown

    @property
    def relation_points(self) -> np.ndarray | None:
        self._catch_up()
        return self._relation_points

    @property
    def landscape(self) -> np.ndarray | None:
        self._catch_up()
        return self._landscape

    @property
    def prior_groups(self) -> list[int]:
        self._catch_up()
        return self._prior_groups

    @property
    def stale(self) -> bool:
        return self._stale

    # -- state → view ----------------------------------------------------------------------------------
    def _on_selection(self, changed: frozenset) -> None:
        if changed & {"object", "module", "head", "layer", "source"}:
            self._invalidate()

    def _invalidate(self) -> None:
        """Redraw now if on screen; else remember to (a background tab costs nothing per click)."""
        if self.on_screen():
            self._redraw()
        else:
            self._stale = True

    def _catch_up(self) -> None:
        if self._stale:
            self._redraw()

    def came_on_screen(self) -> None:
        self._catch_up()

    def event(self, event) -> bool:
        self.watch_dock(event)
        return super().event(event)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._catch_up()

    def _redraw(self) -> None:
        self._stale = False
        self.redraws += 1
        self._shown = []
        self._relation_points = None
        self._landscape = None
        self._prior_groups = []
        trace, sel = self.state.trace, self.state.sel
        plans = [] if trace is None else [p for p in (self._relation(), self._lrnet(), self._region()) if p]
        arrangement = tuple(p["key"] for p in plans)
        if arrangement != self._arrangement:  # new sections: build their plots once
            self._arrangement = arrangement
            self.plots.clear()
            self._sections = {}
            row = 0
            for plan in plans:
                if plan.get("widget") is not None:  # a mosaic: the same widget, refilled
                    self._sections[plan["name"]] = plan["widget"]
                else:
                    self._sections[plan["name"]] = plan["build"](self.plots.ci, row)
                    row += 1
            used = {plan.get("widget") for plan in plans}
            self.plots.setVisible(row > 0)
            self.priors.setVisible(self.priors in used)
            self.parts.setVisible(self.parts in used)
        headers = []
        scale = None
        for plan in plans:
            plan["show"](self._sections[plan["name"]])
            self._shown.append(plan["name"])
            headers.append(plan["header"])
            scale = scale or plan["scale"]  # the first section's scale (one section per family)
        self.colorbar.set_scale(scale)
        if trace is None:
            self._info.setText("")
        elif not plans:
            self._info.setText("this trace has no geometry terms (relation ω_G, LR-Net priors, region G_k)")
        else:
            head = "mean of heads" if sel.head is None else f"head {sel.head}"
            self._info.setText(" · ".join(headers) + f" · {head}")

    # -- sections: each returns a plan (what to build, how to fill it) or None --------------------------------
    def _relation(self) -> dict | None:
        trace, sel = self.state.trace, self.state.sel
        modules = [m for m in maps.relation_modules(trace) if "geometry" in maps.relation_terms(trace, m)]
        if not modules or sel.object is None:
            return None
        module = sel.module if sel.module in modules else modules[0]
        rel = maps.relations(trace, module, "geometry", sel.head)
        r = rel.index_of(sel.object) if rel is not None else None
        if r is None:
            return None
        box = rel.boxes[r]
        if geometry.has_landscape(trace, module):
            land = geometry.landscape(trace, module, np.asarray(box), maps.image_size(trace))
            values = land.head(sel.head)
            self._landscape = values
            scale = color_scale([values], MATRIX_CMAP, False, label="ω_G")
            title = f"ω_G into d{sel.object} ({module}) of a box its size centred in each cell"
            photo = self.state.image
            return {"name": "relation", "key": ("landscape",), "build": _Landscape, "scale": scale,
                    "header": f"relation ω_G ({module})",
                    "show": lambda s: s.show(title, photo, values, land.rect, box, scale)}
        offsets = maps.relative_geometry(rel.boxes, r)
        others = np.array([i for i in range(len(rel.boxes)) if i != r], int)
        values = rel.matrix[r, others]
        self._relation_points = np.column_stack([offsets[others], values])
        scale = color_scale([values], MATRIX_CMAP, False, label="ω_G")
        title = f"ω_G into d{sel.object} ({module}) at relative position"
        return {"name": "relation", "key": ("scatter",), "build": _RelativeScatter, "scale": scale,
                "header": f"relation ω_G ({module})",
                "show": lambda s: s.show(title, offsets[others], values, scale)}

    def _lrnet(self) -> dict | None:
        trace, sel = self.state.trace, self.state.sel
        src = self.state.current_source()
        lr = maps.source(trace, "lrnet")
        layers = [n for n in (lr.layers if lr else ()) if f"lrnet/{n}/geometry" in trace]
        if not layers:
            return None
        li = maps.layer_index(len(layers), sel.layer) if src is not None and src.key == "lrnet" else len(layers) - 1
        name = layers[li]
        prior = np.asarray(trace[f"lrnet/{name}/geometry"], np.float32)  # (m, k, k)
        if sel.head is not None and src is not None and src.key == "lrnet":
            groups = [min(sel.head, len(prior) - 1)]
        else:  # the most peaked priors: the groups whose geometry alone favours one neighbour most
            peak = prior_weight(prior).reshape(len(prior), -1).max(axis=1)
            groups = [int(g) for g in np.argsort(-peak, kind="stable")[:MAX_PRIORS]]
        self._prior_groups = groups
        k = prior.shape[-1]
        scale = color_scale([prior[g] for g in groups], DIVERGING_CMAP, True, symmetric=True, label="prior logit")
        _, cols = grid_shape(len(groups), 4)
        which = f"group {groups[0]}" if len(groups) == 1 else f"the {len(groups)} most peaked of {len(prior)} groups"
        datas, captions = [prior[g] for g in groups], [f"g{g}" for g in groups]
        return {"name": "lrnet", "key": ("lrnet",), "scale": scale, "widget": self.priors,
                "header": f"LR-Net {name}: {k}×{k} geometry prior (logits) of {which}",
                "show": lambda s: s.show_tiles(datas, [scale] * len(datas), captions, cols)}

    def _region(self) -> dict | None:
        trace, sel = self.state.trace, self.state.sel
        if "region/geometry" not in trace or sel.object is None or "region/positions" not in trace:
            return None
        geo = np.asarray(trace["region/geometry"], np.float32)
        r = maps.region_row(trace, sel.object)
        if r is None or r >= geo.shape[0]:
            return None
        values = geo[r]  # (K, P)
        pos = np.asarray(trace["region/positions"][r], np.float32).reshape(-1, 2)
        square = maps.square_points(values, pos)
        scale = color_scale([values], REGION_CMAP, True, label="G_k")
        _, cols = grid_shape(len(values), 4)
        header = f"region G_k of d{sel.object}, {len(values)} parts over the box's positions"
        if square is not None:
            datas, captions = list(square), [f"part {k}" for k in range(len(values))]
            return {"name": "region", "key": ("region-cells",), "scale": scale, "widget": self.parts,
                    "header": header, "show": lambda s: s.show_tiles(datas, [scale] * len(datas), captions, cols)}
        return {"name": "region", "key": ("region-points", len(values), cols), "scale": scale,
                "build": lambda layout, row: _PointPlots(layout, row, len(values), cols), "header": header,
                "show": lambda s: s.show(pos, values, scale)}
