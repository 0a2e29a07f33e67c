"""The Attention panel: small multiples of every head (and their mean) for the selected object or
point, a layer slider, the source; clicking a tile makes that head the canvas heatmap."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from relviz.app.panels.common import configure_pyqtgraph, grid_shape, levels, lut
from relviz.app.state import AppState
from relviz.views import maps


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
        self.image.mouseClickEvent = lambda ev: on_click()


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
        row1 = QHBoxLayout()
        row1.addWidget(self.source, 1)
        row1.addWidget(self.term)
        row1.addWidget(self.mean_box)
        row1.addWidget(self.shared)
        row2 = QHBoxLayout()
        row2.addWidget(self.layer_label)
        row2.addWidget(self.layer, 1)
        self.info = QLabel("")
        self.info.setWordWrap(True)
        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setAcceptDrops(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(row1)
        layout.addLayout(row2)
        layout.addWidget(self.info)
        layout.addWidget(self.plots, 1)
        self.tiles: list[_Tile] = []
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
        self.map = None
        if src is not None and st.trace is not None:
            if src.driver == "object" and sel.object is not None:
                self.map = maps.object_map(st.trace, src, sel.object, sel.layer, sel.term)
            elif src.driver == "point" and sel.point is not None:
                self.map = maps.point_map(st.trace, src, sel.point, sel.layer, sel.term, sel.frame)
        self._draw()

    def _ensure_tiles(self, n: int) -> None:
        if len(self.tiles) == n:
            return
        self._shapes = []
        self.plots.clear()
        self.tiles = []
        rows, cols = grid_shape(n)
        for i in range(n):
            r, c = divmod(i, cols)
            head = None if i == n - 1 and n > 1 else i
            self.tiles.append(_Tile(self.plots.ci, r, c, lambda h=head: self._on_tile(h)))
        grid = self.plots.ci.layout  # equal rows and columns, however many tiles the last row has
        for r in range(rows):
            grid.setRowStretchFactor(r, 1)
            grid.setRowPreferredHeight(r, 10)
        for c in range(cols):
            grid.setColumnStretchFactor(c, 1)
            grid.setColumnPreferredWidth(c, 10)

    def _draw(self) -> None:
        m, sel = self.map, self.state.sel
        if m is None:
            self._ensure_tiles(0)
            src = self.state.current_source()
            if self.state.trace is None:
                self.info.setText("")
            elif src is None:
                self.info.setText("this trace has no attention maps")
            else:
                self.info.setText(f"{src.label}: select {'an object' if src.driver == 'object' else 'a point'}")
            return
        values = m.values
        if m.grid is None and m.points is not None:
            square = maps.square_points(values, m.points)
            values = square if square is not None else values[:, None, :]
        elif values.ndim == 2:
            values = values[:, None, :]
        elif m.crop is not None:  # LR-Net: zoom on the k×k window
            r0, r1, c0, c1 = m.crop
            values = values[:, r0:r1, c0:c1]
        heads = values.shape[0]
        tiles = np.concatenate([values, values.mean(axis=0, keepdims=True)]) if heads > 1 else values
        self._ensure_tiles(len(tiles))
        shared = tiles if self.shared.isChecked() else None
        table = lut("inferno")
        for i, (tile, data) in enumerate(zip(self.tiles, tiles, strict=False)):
            tile.image.setImage(data, autoLevels=False, levels=levels(data, shared), lut=table)
            tile.image.setRect(QRectF(0, 0, data.shape[1], data.shape[0]))
            is_mean = heads > 1 and i == len(tiles) - 1
            title = "mean" if is_mean else (m.head_titles[i] if i < len(m.head_titles) else str(i))
            tile.title.setText(title)
            tile.title.setPos(0, 0)
            chosen = (sel.head is None and is_mean) or (sel.head == i and not is_mean) or heads == 1
            tile.frame.setRect(QRectF(0, 0, data.shape[1], data.shape[0]))
            tile.frame.setPen(pg.mkPen("#00ff88", width=3, cosmetic=True) if chosen else pg.mkPen(None))
        if self._shapes != [t.shape for t in tiles]:
            self._shapes = [t.shape for t in tiles]
            QTimer.singleShot(0, self._fit_tiles)  # once the layout has given the tiles their sizes
        self.info.setText(m.title + ("" if shared is not None else " · per-tile ranges"))

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
