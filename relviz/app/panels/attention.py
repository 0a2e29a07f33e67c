"""The Attention panel: small multiples of every head (and their mean) for the selected object or
point, a layer slider, the source; clicking a tile makes that head the canvas heatmap.

Every tile is drawn as its cells, coloured on one range shared with the canvas (or each on its own, as
stated under the tiles).  For LR-Net the panel shows the hovered pixel's k×k kernels large: for the
picked group, or the strongest few, the weight ω beside its geometry prior and appearance term.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from relviz.app.panels.common import ColorBar, TextLine, configure_pyqtgraph, grid_shape, shown_map
from relviz.app.panels.mosaic import Mosaic
from relviz.app.state import AppState
from relviz.views import maps
from relviz.views.lrnet import STRONGEST_GROUPS, strongest_groups
from relviz.views.palette import DIVERGING_CMAP, color_scale, scales


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
        self.info = TextLine(3)  # three lines, whatever the text: a hover's new text re-lays out nothing
        self.plots = Mosaic(on_click=self._on_tile_index)
        self.colorbar = ColorBar()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(row1)
        layout.addLayout(row2)
        layout.addWidget(self.info)
        layout.addWidget(self.plots, 1)
        layout.addWidget(self.colorbar)
        self.tile_data: list[np.ndarray] = []  # what each tile shows (its cells)
        self.tile_scales: list = []  # each tile's colour scale
        self.tile_titles: list[str] = []
        self.tile_heads: list[int | None] = []  # what a click on each tile selects (head, group; None: the mean)
        self.tile_outlines: list[tuple[str, float] | None] = []  # the chosen tile's highlight, kernel windows
        self.groups: list[int] = []  # LR-Net: the groups shown, one row of three tiles each
        self.map: maps.Map | None = None
        self._updating = False
        self._pending = False
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

    def _show_tiles(self, data: list[np.ndarray], tile_scales: list, titles: list[str], heads: list[int | None],
                    cols: int, outlines: list[tuple[str, float] | None]) -> None:
        self.tile_data, self.tile_scales, self.tile_titles = list(data), list(tile_scales), list(titles)
        self.tile_heads, self.tile_outlines = list(heads), list(outlines)
        self.plots.show_tiles(data, tile_scales, titles, cols, outlines)

    def _draw(self) -> None:
        m, sel = self.map, self.state.sel
        self.groups = []
        if m is None:
            self._show_tiles([], [], [], [], 1, [])
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
        frame = maps.time_step(m, self.state.trace, sel.frame)
        outlines, picks = [], []
        for i in range(len(tiles)):
            is_mean = heads > 1 and i == len(tiles) - 1 and m.axis == "head"
            if m.axis == "frame":
                chosen = i == frame
            else:
                chosen = (sel.head is None and is_mean) or (sel.head == i and not is_mean) or heads == 1
            outlines.append(("#00ff88", 3.0) if chosen else None)
            picks.append(None if is_mean else i)
        self._show_tiles(tiles, tile_scales, titles, picks, grid_shape(len(tiles))[1], outlines)
        self.colorbar.set_scale(tile_scales[0] if shared else m.scale(shared=False, head=sel.head, frame=frame))
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
        # each k×k window outlined: its cells outside the image stay blank
        self._show_tiles(data, tile_scales, titles, heads, 3, [("#6a6a6a", 1.0)] * len(data))
        self.colorbar.set_scale(tile_scales[0] if tile_scales else None)
        k = weight.shape[-1]
        which = f"group {groups[0]}" if sel.head is not None else (
            f"the {len(groups)} strongest of {len(weight)} groups (largest ω in the window)")
        self.info.setText(f"{m.title}: {k}×{k} kernels of {which} · ω, geometry prior, appearance Φ "
                          f"({'ranges shared down each column' if shared else 'each tile its own range'})")

    # -- view → state --------------------------------------------------------------------------------
    def _on_tile_index(self, index: int) -> None:
        if 0 <= index < len(self.tile_heads):
            self.state.select(head=self.tile_heads[index])

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
