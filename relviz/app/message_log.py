"""View → Messages…: every message the window gave, with its time, newest last (bounded, see messages)."""

from __future__ import annotations

from PySide6.QtGui import QColor, QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from relviz.app.messages import Message
from relviz.app.state import AppState

LEVEL_COLOR = {"warning": "#f0c040", "error": "#ff6b6b"}


class MessageLogDialog(QDialog):
    """A live table of the state's message log; not modal, so it can stay open beside the canvas."""

    def __init__(self, state: AppState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.setWindowTitle("relviz — messages")
        self.setModal(False)
        self.resize(820, 360)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["time", "level", "message"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.count = QLabel("")
        copy = QPushButton("Copy all")
        copy.clicked.connect(self.copy_all)
        clear = QPushButton("Clear")
        clear.clicked.connect(self.clear)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.count, 1)
        buttons.addWidget(copy)
        buttons.addWidget(clear)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        state.logged.connect(self._append)
        self.refill()

    def refill(self) -> None:
        self.table.setRowCount(0)
        for msg in self.state.messages.log:
            self._add_row(msg)
        self._after_change()

    def _append(self, msg: Message) -> None:
        self._add_row(msg)
        # the log is bounded: drop the rows it no longer holds
        excess = self.table.rowCount() - len(self.state.messages.log)
        for _ in range(max(excess, 0)):
            self.table.removeRow(0)
        self._after_change()

    def _add_row(self, msg: Message) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        for col, text in enumerate((msg.stamp(), msg.level, msg.text)):
            item = QTableWidgetItem(text)
            if msg.level in LEVEL_COLOR:
                item.setForeground(QColor(LEVEL_COLOR[msg.level]))
            if col == 2:
                item.setToolTip(text)
            self.table.setItem(row, col, item)

    def _after_change(self) -> None:
        n = self.table.rowCount()
        self.count.setText(f"{n} message(s); the log keeps the last {self.state.messages.log.maxlen}")
        self.table.scrollToBottom()

    def entries(self) -> list[tuple[str, str, str]]:
        """(time, level, text) of every row, as shown."""
        return [
            tuple(self.table.item(r, c).text() for c in range(3))  # type: ignore[misc]
            for r in range(self.table.rowCount())
        ]

    def copy_all(self) -> None:
        QGuiApplication.clipboard().setText("\n".join(m.line() for m in self.state.messages.log))

    def clear(self) -> None:
        self.state.messages.clear_log()
        self.refill()
