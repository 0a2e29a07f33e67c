"""The Relations panel: the N×N object-to-object matrix for a module, head (or mean) and term, and a
bar chart of the selected object's strongest relations.  Clicking a cell selects the pair."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from relviz.app.panels.common import configure_pyqtgraph, levels, lut
from relviz.app.state import AppState
from relviz.views import maps

TOP_K = 10


class RelationsPanel(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None):
        super().__init__(parent)
        configure_pyqtgraph()
        self.state = state
        self.module = QComboBox()
        self.module.setToolTip("relation module (DETR: decoder self-attention between object queries)")
        self.term = QComboBox()
        self.term.setToolTip("ω: the relation weight; ω_G: geometry term; ω_A: appearance term")
        self.head = QComboBox()
        self.head.setToolTip("one head, or the mean over heads (keys 0–9, M)")
        self.info = QLabel("")
        top = QHBoxLayout()
        top.addWidget(QLabel("module"))
        top.addWidget(self.module, 1)
        top.addWidget(QLabel("term"))
        top.addWidget(self.term)
        top.addWidget(self.head)

        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setAcceptDrops(False)
        self.matrix_plot = self.plots.addPlot(row=0, col=0)
        self.matrix_plot.invertY(True)
        self.matrix_plot.setAspectLocked(True)
        self.matrix_plot.setLabel("left", "receiving object")
        self.matrix_plot.setLabel("bottom", "contributing object")
        self.matrix_item = pg.ImageItem()
        self.matrix_plot.addItem(self.matrix_item)
        self.row_box = pg.QtWidgets.QGraphicsRectItem()
        self.row_box.setPen(pg.mkPen("#00ff88", width=2, cosmetic=True))
        self.matrix_plot.addItem(self.row_box)
        self.cell_box = pg.QtWidgets.QGraphicsRectItem()
        self.cell_box.setPen(pg.mkPen("w", width=2, cosmetic=True))
        self.matrix_plot.addItem(self.cell_box)
        self.bar_plot = self.plots.addPlot(row=1, col=0)
        self.bar_plot.setLabel("left", "weight")
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.7, brush="#4e79a7")
        self.bar_plot.addItem(self.bars)
        self.plots.ci.layout.setRowStretchFactor(0, 3)
        self.plots.ci.layout.setRowStretchFactor(1, 2)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(top)
        layout.addWidget(self.info)
        layout.addWidget(self.plots, 1)

        self.rel: maps.Relations | None = None
        self.bar_rows: np.ndarray = np.zeros(0, int)
        self._updating = False
        self.module.currentTextChanged.connect(self._on_module)
        self.term.currentIndexChanged.connect(self._on_term)
        self.head.currentIndexChanged.connect(self._on_head)
        self.matrix_item.mouseClickEvent = self._on_matrix_click
        state.traceChanged.connect(self._on_trace)
        state.selectionChanged.connect(self._on_selection)

    # -- state → view --------------------------------------------------------------------------------
    def _on_trace(self) -> None:
        self._updating = True
        self.module.clear()
        self.module.addItems(maps.relation_modules(self.state.trace))
        self._updating = False
        self._on_selection(frozenset({"module", "term", "head", "object", "layer"}))

    def _on_selection(self, changed: frozenset) -> None:
        if not changed & {"module", "term", "head", "object", "partner", "layer"}:
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
                self.term.addItem(f"{maps.TERM_SYMBOLS[t]} ({t})", t)
        if sel.term in terms:
            self.term.setCurrentIndex(terms.index(sel.term))
        self._updating = False
        self.rel = None
        if trace is not None and sel.module:
            term = sel.term if sel.term in terms else (terms[0] if terms else "weight")
            self.rel = maps.relations(trace, sel.module, term, sel.head, sel.layer)
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

    def _draw(self) -> None:
        rel, sel = self.rel, self.state.sel
        if rel is not None and rel.matrix.size == 0:
            rel = self.rel = None
        if rel is None:
            self.matrix_item.clear()
            self.bars.setOpts(x=[], height=[])
            self.row_box.setRect(QRectF())
            self.cell_box.setRect(QRectF())
            trace = self.state.trace
            if trace is None:
                text = ""
            elif maps.relation_modules(trace):
                text = "no objects to relate (no detections above the score threshold)"
            else:
                text = "no relation module in this trace"
            self.info.setText(text)
            return
        m = rel.matrix
        n = m.shape[0]
        shared = rel.per_head if sel.head is not None else None
        self.matrix_item.setImage(m, autoLevels=False, levels=levels(m, shared), lut=lut("viridis"))
        self.matrix_item.setRect(QRectF(0, 0, m.shape[1], n))
        self.matrix_plot.setRange(QRectF(0, 0, m.shape[1], n), padding=0.02)
        head = "mean of heads" if sel.head is None else f"head {sel.head}"
        term_sym = maps.TERM_SYMBOLS.get(sel.term, sel.term) if sel.module != maps.DETR_DECODER_MODULE else "attn"
        self.info.setText(f"{sel.module}: {term_sym}, {head}, {n} objects, range {m.min():.3g} … {m.max():.3g}")
        row = maps.row_of_detection(rel, sel.object)
        if row is None:
            self.row_box.setRect(QRectF())
            self.cell_box.setRect(QRectF())
            self.bars.setOpts(x=[], height=[])
            self.bar_rows = np.zeros(0, int)
            return
        self.row_box.setRect(QRectF(0, row, m.shape[1], 1))
        col = maps.row_of_detection(rel, sel.partner)
        self.cell_box.setRect(QRectF(col, row, 1, 1) if col is not None else QRectF())
        top = maps.strongest(m[row], row, TOP_K)
        self.bar_rows = top
        brushes = ["#f28e2b" if t == col else "#4e79a7" for t in top]
        self.bars.setOpts(x=np.arange(len(top)), height=m[row, top], brushes=brushes)
        ticks = [
            (i, str(int(rel.detection_of_row[t])) if rel.detection_of_row[t] >= 0 else f"r{t}")
            for i, t in enumerate(top)
        ]
        self.bar_plot.getAxis("bottom").setTicks([ticks])
        self.bar_plot.setLabel("bottom", f"strongest relations of object {sel.object}")

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
        """Select the pair (receiving object ``row``, contributing object ``col``) of the matrix."""
        if self.rel is None:
            return
        n = self.rel.matrix.shape[0]
        if not (0 <= row < n and 0 <= col < self.rel.matrix.shape[1]):
            return
        obj, partner = int(self.rel.detection_of_row[row]), int(self.rel.detection_of_row[col])
        if obj < 0:
            self.state.info(f"row {row} of {self.state.sel.module} matches no detection", "warning", "matrix")
            return
        self.state.resolve("matrix")
        self.state.select(object=obj, partner=partner if partner >= 0 else None)
