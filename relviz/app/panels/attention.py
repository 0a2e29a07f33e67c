"""The Attention panel: small multiples of every head (and their mean) for the selected object or
point, a layer slider, the source; clicking a tile makes that head the canvas heatmap.

Every tile is drawn as its cells, coloured on one range shared with the canvas (or each on its own, as
stated under the tiles).  For LR-Net the panel shows the hovered pixel's k×k kernels large: for the
picked group, or the strongest few, the weight ω beside its geometry prior and appearance term.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from relviz.app.panels.common import ColorBar, cell_image, configure_pyqtgraph, grid_shape, shown_map
from relviz.app.state import AppState
from relviz.views import maps
from relviz.views.lrnet import STRONGEST_GROUPS, strongest_groups
from relviz.views.palette import DIVERGING_CMAP, color_scale, scales


class _Tile:
    def __init__(self, layout: pg.GraphicsLayout, row: int, col: int, on_click):
        self.vb = layout.addViewBox(row=row, col=col, lockAspect=True, invertY=True, enableMouse=False)
        self.vb.setMenuEnabled(False)
        self.image = pg.ImageItem()
        self.vb.addItem(self.image)
        self.frame = pg.QtWidgets.QGraphicsRectItem()
        self.frame.setPen(pg.mkPen(None))
        self.vb.addItem(self.frame, ignoreBounds=True)  # its pen width must not widen the range
        self.title = pg.TextItem("", color="#ffffff", anchor=(0, 0), fill=pg.mkBrush(0, 0, 0, 150))
        self.vb.addItem(self.title, ignoreBounds=True)  # the title must not widen the auto range
        self.head: int | None = None  # what a click on the tile selects (a head, a group; None: the mean)
        self.image.mouseClickEvent = lambda ev: on_click(self.head)
        self._title = ""
        self._outline: tuple[str | None, float] = (None, 0)

    def set_title(self, text: str) -> None:
        if text != self._title:  # a text item re-lays out its document on every setText
            self._title = text
            self.title.setText(text)

    def set_outline(self, color: str | None, width: float = 3) -> None:
        """The tile's frame: the chosen head's highlight, a kernel window's extent, or none."""
        if (color, width) != self._outline:
            self._outline = (color, width)
            self.frame.setPen(pg.mkPen(color, width=width, cosmetic=True) if color else pg.mkPen(None))


class AttentionPanel(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None):
        super().__init__(parent)
        configure_pyqtgraph()
        self.state = state
        self.source = QComboBox()
        self.layer = QSlider(Qt.Orientation.Horizontal)
        self.layer.setRange(0, 0)
        self.layer.setPageStep(1)
        self.layer_label = QLabel("layer –")
        self.term = QComboBox()
        self.term.setToolTip("ω: the weight; ω_A: the appearance term; ω_G: the geometry term")
        self.mean_box = QCheckBox("mean")
        self.mean_box.setToolTip("show the mean over heads on the canvas (M)")
        self.shared = QCheckBox("shared range")
        self.shared.setChecked(True)
        self.shared.setToolTip("one colour range across all heads")
        # the view's name takes the first row (with the term), so it is never cut off; the switches the second
        self.source.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.source.setMinimumContentsLength(12)
        row1 = QHBoxLayout()
        row1.addWidget(self.source, 1)
        row1.addWidget(self.term)
        row2 = QHBoxLayout()
        row2.addWidget(self.layer_label)
        row2.addWidget(self.layer, 1)
        row2.addWidget(self.mean_box)
        row2.addWidget(self.shared)
        self.info = QLabel("")
        self.info.setWordWrap(True)
        # three lines, whatever the text: a hover's new text must not re-lay out the window
        self.info.setFixedHeight(3 * self.info.fontMetrics().lineSpacing() + 4)
        self.info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setAcceptDrops(False)
        self.colorbar = ColorBar()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(row1)
        layout.addLayout(row2)
        layout.addWidget(self.info)
        layout.addWidget(self.plots, 1)
        layout.addWidget(self.colorbar)
        self.tiles: list[_Tile] = []
        self.tile_data: list[np.ndarray] = []  # what each tile shows (its cells), for tests
        self.tile_scales: list = []  # each tile's colour scale
        self.groups: list[int] = []  # LR-Net: the groups shown, one row of three tiles each
        self.map: maps.Map | None = None
        self._updating = False
        self._pending = False
        self._shapes: list[tuple[int, ...]] = []
        self.source.currentIndexChanged.connect(self._on_source)
        self.layer.valueChanged.connect(self._on_layer)
        self.mean_box.toggled.connect(self._on_mean)
        self.term.currentIndexChanged.connect(self._on_term)
        self.shared.toggled.connect(lambda _: self._draw())
        state.traceChanged.connect(self._on_trace)
        state.selectionChanged.connect(self._on_selection)

    # -- state → view --------------------------------------------------------------------------------
    def _on_trace(self) -> None:
        self._updating = True
        self.source.clear()
        for src in maps.sources(self.state.trace):
            self.source.addItem(f"{src.label} ({src.driver})", src.key)
        self._updating = False
        self.refresh()

    def _on_selection(self, changed: frozenset) -> None:
        """Coalesced: a burst of hovers redraws the small multiples once, after the canvas."""
        if not changed & {"source", "layer", "head", "object", "point", "term", "frame"}:
            return
        if not self._pending:
            self._pending = True
            QTimer.singleShot(0, self.refresh)

    def refresh(self) -> None:
        self._pending = False
        st, sel = self.state, self.state.sel
        src = st.current_source()
        self._updating = True
        idx = self.source.findData(sel.source)
        if idx >= 0:
            self.source.setCurrentIndex(idx)
        n_layers = len(src.layers) if src else 0
        self.layer.setRange(0, max(n_layers - 1, 0))
        li = maps.layer_index(n_layers, sel.layer)
        self.layer.setValue(li)
        self.layer_label.setText(
            f"{'block' if src and src.key in ('nonlocal', 'lrnet') else 'layer'} {src.layers[li] if src else '–'}"
        )
        self.mean_box.setChecked(sel.head is None)
        terms = list(src.terms) if src else []
        if [self.term.itemData(i) for i in range(self.term.count())] != terms:
            self.term.clear()
            for t in terms:
                self.term.addItem(maps.TERM_SYMBOLS.get(t, t), t)
        self.term.setVisible(len(terms) > 1)
        if sel.term in terms:
            self.term.setCurrentIndex(terms.index(sel.term))
        self._updating = False
        self.map = shown_map(st)  # the canvas's map: computed once for both
        self._draw()

    def _ensure_tiles(self, n: int, cols: int | None = None, heads: list[int | None] | None = None) -> None:
        heads = heads if heads is not None else [None if i == n - 1 and n > 1 else i for i in range(n)]
        key = (n, cols)
        if getattr(self, "_layout_key", None) == key:  # the same tiles, new heads: no rebuild on a hover
            for tile, head in zip(self.tiles, heads, strict=True):
                tile.head = head
            return
        self._layout_key = key
        self._shapes = []
        self.plots.clear()
        self.tiles = []
        rows, cols = grid_shape(n) if cols is None else (int(np.ceil(n / cols)) if n else 0, cols)
        for i in range(n):
            r, c = divmod(i, cols)
            self.tiles.append(_Tile(self.plots.ci, r, c, self._on_tile))
            self.tiles[-1].head = heads[i]
        grid = self.plots.ci.layout  # equal rows and columns, however many tiles the last row has
        for r in range(rows):
            grid.setRowStretchFactor(r, 1)
            grid.setRowPreferredHeight(r, 10)
        for c in range(cols):
            grid.setColumnStretchFactor(c, 1)
            grid.setColumnPreferredWidth(c, 10)

    def _draw(self) -> None:
        m, sel = self.map, self.state.sel
        self.groups = []
        if m is None:
            self._ensure_tiles(0)
            self.tile_data, self.tile_scales = [], []
            self.colorbar.set_scale(None)
            src = self.state.current_source()
            if self.state.trace is None:
                self.info.setText("")
            elif src is None:
                self.info.setText("this trace has no attention maps")
            else:
                self.info.setText(f"{src.label}: select {'an object' if src.driver == 'object' else 'a point'}")
            return
        if self.state.sel.source == "lrnet":
            self._draw_kernels(m)
            return
        if m.values.ndim == 2:  # values at scattered points, no lattice: one strip per head
            m = maps.Map(m.values[:, None, :], (0.0, 0.0, float(m.values.shape[1]), 1.0), title=m.title,
                         head_titles=m.head_titles, axis=m.axis, unit=m.unit)
        tiles, titles = m.multiples()
        heads = m.values.shape[0]
        shared = self.shared.isChecked()
        tile_scales = scales(tiles, shared, symmetric=m.symmetric, label=m.unit)
        self._ensure_tiles(len(tiles))
        frame = maps.time_step(m, self.state.trace, sel.frame)
        for i, (tile, data, scale) in enumerate(zip(self.tiles, tiles, tile_scales, strict=False)):
            self._show(tile, data, scale, titles[i])
            is_mean = heads > 1 and i == len(tiles) - 1 and m.axis == "head"
            if m.axis == "frame":
                chosen = i == frame
            else:
                chosen = (sel.head is None and is_mean) or (sel.head == i and not is_mean) or heads == 1
            tile.set_outline("#00ff88" if chosen else None)
        self.tile_data, self.tile_scales = list(tiles), tile_scales
        self.colorbar.set_scale(tile_scales[0] if shared else m.scale(shared=False, head=sel.head, frame=frame))
        self._refit([t.shape for t in tiles])
        self.info.setText(m.title + (" · one range shared by the tiles and the canvas" if shared
                                     else " · each tile its own range"))

    def _draw_kernels(self, m: maps.Map) -> None:
        """LR-Net at the hovered pixel: ω, the geometry prior and the appearance term, one row per group."""
        sel, trace = self.state.sel, self.state.trace
        pk = m.kernels
        if pk is not None:
            weight, prior, appearance = pk.weight, pk.geometry, pk.appearance
            groups = [min(sel.head, len(weight) - 1)] if sel.head is not None else strongest_groups(pk)
        else:  # traces without layer metadata: the three terms from the layer's own grid
            src = self.state.current_source()
            terms = {t: maps.point_map(trace, src, sel.point, sel.layer, t, sel.frame).values
                     for t in ("weight", "geometry", "appearance")}
            weight, prior, appearance = terms["weight"], terms["geometry"], terms["appearance"]
            order = np.argsort(-weight.reshape(len(weight), -1).max(axis=1), kind="stable")
            groups = [min(sel.head, len(weight) - 1)] if sel.head is not None else [int(g) for g in
                                                                                    order[:STRONGEST_GROUPS]]
        self.groups = groups
        shared = self.shared.isChecked()
        columns = [(weight, "ω", "ω", False), (prior, "prior", "geometry logit", True),
                   (appearance, "Φ", "appearance Φ", True)]
        by_column = []  # each column's scales, one per group: shared down the column or each tile's own
        for values, _, unit, symmetric in columns:
            shown = [values[g] for g in groups]
            cmap = DIVERGING_CMAP if symmetric else "inferno"
            by_column.append([color_scale(shown, cmap, True, symmetric, unit)] * len(groups) if shared
                             else [color_scale([v], cmap, False, symmetric, unit) for v in shown])
        data, titles, tile_scales, heads = [], [], [], []
        for r, g in enumerate(groups):  # row-major: one row of three tiles per group
            for c, (values, name, _, _) in enumerate(columns):
                data.append(values[g])
                titles.append(f"g{g} {name}")
                tile_scales.append(by_column[c][r])
                heads.append(g)
        self._ensure_tiles(len(data), cols=3, heads=heads)
        for tile, values, scale, title in zip(self.tiles, data, tile_scales, titles, strict=True):
            self._show(tile, values, scale, title)
            tile.set_outline("#6a6a6a", 1)  # the k×k window's extent: cells outside the image stay blank
        self.tile_data, self.tile_scales = data, tile_scales
        self.colorbar.set_scale(tile_scales[0] if tile_scales else None)
        self._refit([d.shape for d in data])
        k = weight.shape[-1]
        which = f"group {groups[0]}" if sel.head is not None else (
            f"the {len(groups)} strongest of {len(weight)} groups (largest ω in the window)")
        self.info.setText(f"{m.title}: {k}×{k} kernels of {which} · ω, geometry prior, appearance Φ "
                          f"({'ranges shared down each column' if shared else 'each tile its own range'})")

    @staticmethod
    def _show(tile: _Tile, data: np.ndarray, scale, title: str) -> None:
        rows, cols = data.shape
        cell_image(tile.image, data, (0.0, 0.0, float(cols), float(rows)), scale)
        tile.set_title(title)
        if tile.frame.rect() != QRectF(0, 0, cols, rows):
            tile.frame.setRect(QRectF(0, 0, cols, rows))

    def _refit(self, shapes: list[tuple[int, ...]]) -> None:
        if self._shapes != shapes:
            self._shapes = shapes
            QTimer.singleShot(0, self._fit_tiles)  # once the layout has given the tiles their sizes

    def _fit_tiles(self) -> None:
        for tile in self.tiles:
            tile.vb.autoRange(padding=0.02)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_tiles()

    # -- view → state --------------------------------------------------------------------------------
    def _on_tile(self, head: int | None) -> None:
        self.state.select(head=head)

    def _on_source(self, index: int) -> None:
        if not self._updating and index >= 0:
            self.state.select(source=self.source.itemData(index))

    def _on_layer(self, value: int) -> None:
        if not self._updating:
            self.state.select(layer=int(value))

    def _on_term(self, index: int) -> None:
        if not self._updating and index >= 0:
            self.state.select(term=self.term.itemData(index))

    def _on_mean(self, on: bool) -> None:
        if self._updating:
            return
        if on:
            self.state.select(head=None)
        elif self.state.sel.head is None:
            self.state.select(head=0)
