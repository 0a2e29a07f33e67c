"""The Objects panel: a table of detections; selecting a row selects the object everywhere.  For a
classifier (class scores, no detections) it lists the most probable classes instead."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from relviz.app.panels.common import label_color
from relviz.app.state import AppState
from relviz.views import maps

COLUMNS = ["#", "label", "score", "x0", "y0", "x1", "y1", "query"]
TOP_CLASSES = 5


class _NumItem(QTableWidgetItem):
    """Sorts by number, not by text."""

    def __init__(self, value: float, text: str):
        super().__init__(text)
        self.value = value
        self.setData(Qt.ItemDataRole.UserRole, value)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        if isinstance(other, _NumItem):
            return self.value < other.value
        return super().__lt__(other)


class ObjectsPanel(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setSortingEnabled(True)
        self.summary = QLabel("no detections")
        self.summary.setWordWrap(True)  # a long line wraps: it never widens the dock
        self.summary.setTextFormat(Qt.TextFormat.PlainText)
        self.summary.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Maximum)
        # a classifier's best classes, one a line, when the trace has class scores and no detections
        self.classes = QLabel("")
        self.classes.setWordWrap(True)
        self.classes.setTextFormat(Qt.TextFormat.PlainText)
        self.classes.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.classes.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)  # the table's room
        self.classes.hide()
        self.table.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.summary)
        layout.addWidget(self.classes)
        layout.addWidget(self.table, 1)
        self._updating = False
        self.table.itemSelectionChanged.connect(self._on_table)
        state.traceChanged.connect(self._on_trace)
        state.selectionChanged.connect(self._on_selection)

    def _on_trace(self) -> None:
        trace = self.state.trace
        boxes, scores, labels = maps.detections(trace)
        queries = (
            np.asarray(trace["detections/query"]).reshape(-1)
            if trace is not None and "detections/query" in trace
            else None
        )
        self._updating = True
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(boxes))
        for i, (box, score, lab) in enumerate(zip(boxes, scores, labels, strict=False)):
            cells = [
                _NumItem(i, str(i)),
                QTableWidgetItem(maps.label_text(trace, int(lab))),
                _NumItem(float(score), f"{score:.3f}"),
                *[_NumItem(float(v), f"{v:.0f}") for v in box],
                _NumItem(float(queries[i]), str(int(queries[i])))
                if queries is not None and i < len(queries)
                else QTableWidgetItem(""),
            ]
            cells[1].setForeground(label_color(int(lab)))
            for c, item in enumerate(cells):
                item.setData(Qt.ItemDataRole.UserRole + 1, i)
                self.table.setItem(i, c, item)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self._updating = False
        classes = maps.top_classes(trace, TOP_CLASSES)
        classifier = bool(classes) and not len(boxes)
        self.table.setVisible(not classifier)
        self.classes.setVisible(classifier)
        self.classes.setText("\n".join(f"{p:.2f}  {name}" for name, p in classes) if classifier else "")
        if trace is None:
            self.summary.setText("no detections")
        elif classifier:
            self.summary.setText(f"top {len(classes)} classes (probability)")
        else:
            self.summary.setText(
                f"{len(boxes)} detections"
                + (f" (score ≥ {trace.meta['threshold']})" if "threshold" in trace.meta else "")
            )
        self._on_selection(frozenset({"object"}))

    def _on_selection(self, changed: frozenset) -> None:
        if "object" not in changed:
            return
        self._updating = True
        idx = self.state.sel.object
        self.table.clearSelection()
        if idx is not None:
            row = self.row_of(idx)
            if row is not None:
                self.table.selectRow(row)
                self.table.scrollToItem(self.table.item(row, 0))
        self._updating = False

    def row_of(self, index: int) -> int | None:
        for r in range(self.table.rowCount()):
            item = self.table.item(r, 0)
            if item is not None and item.data(Qt.ItemDataRole.UserRole + 1) == index:
                return r
        return None

    def _on_table(self) -> None:
        if self._updating:
            return
        rows = self.table.selectionModel().selectedRows()
        if rows:
            item = self.table.item(rows[0].row(), 0)
            self.state.select(object=int(item.data(Qt.ItemDataRole.UserRole + 1)), partner=None)
