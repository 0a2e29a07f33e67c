"""The Relations panel: the object-to-object matrix for a module, head (or mean) and term, and a bar chart
of the selected object's strongest relations.  Clicking a cell selects the pair.

The matrix is taken over the detections by default — entries named as on the canvas (``d3 circle``) —
or over every proposal on request; its bars are the same ranking the canvas draws as arrows
(:meth:`relviz.views.relations.RelationView.ranking`).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from relviz.app.panels.common import ColorBar, TextLine, cell_image, configure_pyqtgraph
from relviz.app.state import AppState
from relviz.views import maps
from relviz.views.palette import MATRIX_CMAP, color_scale
from relviz.views.relations import DETR_DECODER_MODULE, TOP_RELATIONS, term_name

TOP_K = TOP_RELATIONS
MAX_TICKS = 40  # axis labels on at most this many entries (every n-th beyond)


class RelationsPanel(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None):
        super().__init__(parent)
        configure_pyqtgraph()
        self.state = state
        self.module = QComboBox()
        self.module.setToolTip("relation module (DETR: decoder self-attention between object queries)")
        self.module.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.term = QComboBox()
        self.term.setToolTip("ω: the relation weight; ω_G: geometry term; ω_A: appearance term")
        self.term.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.head = QComboBox()
        self.head.setToolTip("one head, or the mean over heads (keys 0–9, M)")
        self.head.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.proposals = QCheckBox("all proposals")
        self.proposals.setToolTip("the matrix over every proposal (query) of the module instead of the detections")
        for combo in (self.module, self.term, self.head):  # never narrower than their longest entry
            combo.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.info = TextLine(2)  # two lines, whatever the text: a click's new text re-lays out nothing
        top = QHBoxLayout()
        top.addWidget(QLabel("module"))
        top.addWidget(self.module)
        top.addWidget(self.term)
        top.addWidget(self.head)
        top.addStretch(1)
        second = QHBoxLayout()
        second.addWidget(self.proposals)
        second.addStretch(1)

        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setAcceptDrops(False)
        self.matrix_plot = self.plots.addPlot(row=0, col=0)
        self.matrix_plot.invertY(True)
        self.matrix_plot.setAspectLocked(True)  # square cells
        self.matrix_plot.setLabel("left", "receiving")
        self.matrix_plot.setLabel("bottom", "contributing")
        self.matrix_plot.setMouseEnabled(False, False)
        self.matrix_item = pg.ImageItem()
        self.matrix_plot.addItem(self.matrix_item)
        self.row_box = pg.QtWidgets.QGraphicsRectItem()
        self.row_box.setPen(pg.mkPen("#00ff88", width=2, cosmetic=True))
        self.matrix_plot.addItem(self.row_box)
        self.cell_box = pg.QtWidgets.QGraphicsRectItem()
        self.cell_box.setPen(pg.mkPen("w", width=2, cosmetic=True))
        self.matrix_plot.addItem(self.cell_box)
        self.bar_plot = self.plots.addPlot(row=1, col=0)
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.7, brush="#4e79a7")
        self.bar_plot.addItem(self.bars)
        self.bar_plot.setMouseEnabled(False, False)
        self.bar_plot.getAxis("left").enableAutoSIPrefix(False)  # the values as they are, not 'ω (x0.001)'
        self.plots.ci.layout.setRowStretchFactor(0, 3)
        self.plots.ci.layout.setRowStretchFactor(1, 2)
        self.colorbar = ColorBar()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(top)
        layout.addLayout(second)
        layout.addWidget(self.info)
        layout.addWidget(self.plots, 1)
        layout.addWidget(self.colorbar)

        self.rel: maps.Relations | None = None
        self._rel_key: tuple | None = None  # what self.rel was computed for
        self._rel_trace = None
        self._drawn_matrix = None  # the relations whose matrix the image shows
        self._bar_range: tuple | None = None
        self.tick_labels: dict[str, list[str]] = {"left": [], "bottom": []}  # the matrix's axis labels shown
        self.tick_source: list[str] = []  # the entries they were made for
        self._shown_n = -1
        self.matrix_plot.getViewBox().sigResized.connect(lambda _: self._set_ticks())
        self.bar_rows: np.ndarray = np.zeros(0, int)  # the entries the bars show, strongest first
        self.picked: tuple[int, int] | None = None  # a clicked cell whose row is a proposal, not a detection
        self._updating = False
        self.module.currentTextChanged.connect(self._on_module)
        self.term.currentIndexChanged.connect(self._on_term)
        self.head.currentIndexChanged.connect(self._on_head)
        self.proposals.toggled.connect(lambda _: self._on_selection(frozenset({"module"})))
        self.matrix_item.mouseClickEvent = self._on_matrix_click
        state.traceChanged.connect(self._on_trace)
        state.selectionChanged.connect(self._on_selection)

    @property
    def over(self) -> str:
        return "proposals" if self.proposals.isChecked() else "detections"

    # -- state → view --------------------------------------------------------------------------------
    def _on_trace(self) -> None:
        self._updating = True
        self.module.clear()
        self.module.addItems(maps.relation_modules(self.state.trace))
        self._updating = False
        self.picked = None
        self._on_selection(frozenset({"module", "term", "head", "object", "layer"}))

    def _on_selection(self, changed: frozenset) -> None:
        if not changed & {"module", "term", "head", "object", "partner", "layer", "trace"}:
            return
        sel, trace = self.state.sel, self.state.trace
        self._updating = True
        if sel.module and self.module.currentText() != sel.module:
            self.module.setCurrentText(sel.module)
        terms = maps.relation_terms(trace, sel.module) if trace is not None and sel.module else []
        current = [self.term.itemData(i) for i in range(self.term.count())]
        if current != terms:
            self.term.clear()
            for t in terms:
                self.term.addItem(term_name(sel.module, t, short=True), t)
        self.term.setVisible(len(terms) > 1)
        if sel.term in terms:
            self.term.setCurrentIndex(terms.index(sel.term))
        self._updating = False
        term = sel.term if sel.term in terms else (terms[0] if terms else "weight")
        key = (id(trace), sel.module, term, sel.head, sel.layer, self.over)
        if key != self._rel_key or self._rel_trace is not trace or "trace" in changed:
            # a new matrix; picking another object in the same one only moves the row and the bars
            self.rel = maps.relations(trace, sel.module, term, sel.head, sel.layer, over=self.over) \
                if trace is not None and sel.module else None
            self._rel_key, self._rel_trace, self._drawn_matrix = key, trace, None
        if changed & {"object", "partner", "module", "trace"}:
            self.picked = None
        self._sync_heads()
        self._draw()

    def _sync_heads(self) -> None:
        n = self.rel.per_head.shape[0] if self.rel is not None else 0
        self._updating = True
        if self.head.count() != n + 1:
            self.head.clear()
            self.head.addItem("mean of heads", None)
            for h in range(n):
                self.head.addItem(f"head {h}", h)
        head = self.state.sel.head
        self.head.setCurrentIndex(0 if head is None or head >= n else head + 1)
        self._updating = False

    def _clear(self, text: str) -> None:
        self._drawn_matrix = None
        self.matrix_item.clear()
        self.bars.setOpts(x=[], height=[])
        self.bar_rows = np.zeros(0, int)
        self.row_box.setRect(QRectF())
        self.cell_box.setRect(QRectF())
        self.colorbar.set_scale(None)
        self.info.setText(text)
        self._shown_n = -1
        self._set_ticks()
        self.bar_plot.getAxis("bottom").setTicks([[]])

    def _cell_pixels(self) -> float:
        """The side of a matrix cell on screen (square cells), or 0 before the plot has its size."""
        n = len(self.rel) if self.rel is not None else 0
        vb = self.matrix_plot.getViewBox()
        return min(vb.width(), vb.height()) / (n * 1.04) if n and vb.width() > 0 else 0.0

    def _ticks(self, labels: list[str], axis: str) -> list[tuple[float, str]]:
        """Tick labels that never overlap: on the x axis the short names ('d3'), on the y axis the full ones
        ('d3 circle') while there are at most 12; every n-th entry when the cells are smaller than a label."""
        n = len(labels)
        names = [lab.split()[0] if axis == "bottom" or n > 12 else lab for lab in labels]
        metrics = QFontMetrics(self.matrix_plot.getAxis(axis).style.get("tickFont") or QFont())
        need = (max((metrics.horizontalAdvance(t) for t in names), default=0) + 6 if axis == "bottom"
                else metrics.height())  # the room one label takes along its axis
        cell = self._cell_pixels()
        step = max(1, int(np.ceil(need / cell))) if cell > 0 else 1
        step = max(step, int(np.ceil(n / MAX_TICKS)))
        return [(i + 0.5, names[i]) for i in range(0, n, step)]

    def _set_ticks(self) -> None:
        """Label the matrix's axes for its entries at the cells' current size (again on every resize)."""
        labels = self.rel.labels if self.rel is not None else []
        self.tick_source = list(labels)
        for axis in ("left", "bottom"):
            ticks = self._ticks(labels, axis)
            self.tick_labels[axis] = [t for _, t in ticks]
            self.matrix_plot.getAxis(axis).setTicks([ticks])  # none without entries (no -1…1 scale)

    def _draw(self) -> None:
        rel, sel = self.rel, self.state.sel
        if rel is None or rel.matrix.size == 0:
            self.rel = None
            trace = self.state.trace
            if trace is None:
                text = ""
            elif maps.relation_modules(trace):
                text = "no objects to relate (no detections above the score threshold)"
            else:
                text = "no relation module in this trace"
            self._clear(text)
            return
        m = rel.matrix
        n = len(rel)
        scale = color_scale([rel.per_head] if sel.head is not None else [m], MATRIX_CMAP, sel.head is not None,
                            label=term_name(rel.module, rel.term, short=True))
        if self._drawn_matrix is not rel:  # the same matrix as drawn: its cells and colour bar stay
            self._drawn_matrix = rel
            cell_image(self.matrix_item, m, (0.0, 0.0, float(n), float(n)), scale)
            self.colorbar.set_scale(scale)
        if self._shown_n != n:  # the same entries: the range and the axis labels stay
            self._shown_n = n
            self.matrix_plot.setRange(QRectF(0, 0, n, n), padding=0.02)
            self.matrix_plot.getViewBox().updateMatrix()
        if self.tick_source != rel.labels:
            self._set_ticks()
        head = "mean of heads" if sel.head is None else f"head {sel.head}"
        what = "detections" if rel.over == "detections" else ("queries" if rel.module == DETR_DECODER_MODULE
                                                                else "proposals")
        note = f" ({rel.note})" if rel.note else ""
        self.info.setText(f"{sel.module}: {rel.name}, {head}, over {n} {what}{note}")
        index = rel.index_of(sel.object)
        if index is None:
            self.row_box.setRect(QRectF())
            self.cell_box.setRect(QRectF())
            self.bars.setOpts(x=[], height=[])
            self.bar_rows = np.zeros(0, int)
            if self.picked is not None:
                r, c = self.picked
                self.cell_box.setRect(QRectF(c, r, 1, 1))
            return
        self.row_box.setRect(QRectF(0, index, n, 1))
        col = rel.index_of(sel.partner) if self.picked is None else self.picked[1]
        if self.picked is not None:
            self.row_box.setRect(QRectF(0, self.picked[0], n, 1))
        self.cell_box.setRect(QRectF(col, self.picked[0] if self.picked else index, 1, 1) if col is not None
                              else QRectF())
        top = rel.ranking(index, TOP_K)
        self.bar_rows = top
        brushes = ["#f28e2b" if t == col else "#4e79a7" for t in top]
        heights = m[index, top]
        self.bars.setOpts(x=np.arange(len(top)), height=heights, brushes=brushes)
        # the bars share the matrix's range (one object's bars compare with another's), set here and not by
        # auto-range at paint time, which would change it mid-paint (a second paint) and on every click
        bar_range = (max(len(top), 1), scale.lo, scale.hi)
        if bar_range != self._bar_range:
            self._bar_range = bar_range
            lo, hi = min(0.0, scale.lo), max(0.0, scale.hi)
            self.bar_plot.setRange(xRange=(-0.6, bar_range[0] - 0.4), yRange=(lo, hi if hi > lo else lo + 1.0),
                                   padding=0.04)
            self.bar_plot.getViewBox().updateMatrix()  # now: a matrix updated at paint time means a second paint
        self.bar_plot.getAxis("bottom").setTicks([[(i, rel.labels[t].split()[0]) for i, t in enumerate(top)]])
        self._bar_label("left", term_name(rel.module, rel.term, short=True))
        self._bar_label("bottom", f"strongest relations into {rel.labels[index]} (arrows on the canvas)")

    def _bar_label(self, axis: str, text: str) -> None:
        if self.bar_plot.getAxis(axis).labelText != text:  # an axis label re-lays out its text on every set
            self.bar_plot.setLabel(axis, text)

    # -- view → state --------------------------------------------------------------------------------
    def _on_module(self, text: str) -> None:
        if not self._updating and text:
            self.state.select(module=text)

    def _on_term(self, index: int) -> None:
        if not self._updating and index >= 0:
            self.state.select(term=self.term.itemData(index))

    def _on_head(self, index: int) -> None:
        if not self._updating and index >= 0:
            self.state.select(head=self.head.itemData(index))

    def _on_matrix_click(self, event) -> None:
        pos = event.pos()
        self.click_cell(int(pos.y()), int(pos.x()))

    def click_cell(self, row: int, col: int) -> None:
        """Select the pair (receiving entry ``row``, contributing entry ``col``) of the matrix: their detections,
        or — in proposal mode, for a proposal that is no detection — the cell itself, with its value."""
        rel = self.rel
        if rel is None or not (0 <= row < len(rel) and 0 <= col < len(rel)):
            return
        obj, partner = int(rel.detection[row]), int(rel.detection[col])
        self.state.resolve("matrix")
        if obj < 0:  # a proposal that became no detection: shown here, nothing to select elsewhere
            self.picked = (row, col)
            self._draw()
            self.info.setText(f"{rel.labels[row]} ← {rel.labels[col]}: {rel.name} {rel.matrix[row, col]:.4g} "
                              "(a proposal that is not a detection)")
            return
        self.picked = None
        self.state.select(object=obj, partner=partner if partner >= 0 else None)
