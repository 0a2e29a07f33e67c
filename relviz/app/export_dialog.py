"""File → Export figure…: view, journal preset, size, DPI, format, colorbar, shared range, colormap, file.

The choices map one to one onto ``relviz export``'s options (``--preset``, ``--width``/``--height``, ``--dpi``,
``--no-colorbar``, ``--no-shared-range``, ``--cmap``) with the same defaults, so the dialog and the command line
write the same figure for the same choices: by default the size comes from the preset (its width, the height
the content needs), as on the command line without ``--width``/``--height``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from relviz.app.exporting import FORMATS

CMAPS = ("inferno", "viridis", "magma", "plasma", "cividis", "jet", "gray")


class ExportDialog(QDialog):
    def __init__(self, views: list[tuple[str, str]], default_path: str, parent: QWidget | None = None):
        super().__init__(parent)
        from relviz.render.style import DEFAULT_PRESET, PRESETS  # matplotlib when a figure is exported, not at start

        self._presets = PRESETS
        self.setWindowTitle("Export figure")
        self._last_view: str | None = None
        self.view = QComboBox()
        for name, help_text in views:
            self.view.addItem(name, name)
            self.view.setItemData(self.view.count() - 1, help_text, 3)
        self.help = QLabel("")
        self.help.setWordWrap(True)
        self.fmt = QComboBox()
        self.fmt.addItems([f.upper() for f in FORMATS])
        self.preset = QComboBox()
        for preset in PRESETS.values():
            self.preset.addItem(f"{preset.name} ({preset.description})", preset.name)
        self.preset.setCurrentIndex(self.preset.findData(DEFAULT_PRESET))
        self.custom_size = QCheckBox("other size (the type stays the preset's)")
        self.width = QDoubleSpinBox()
        self.width.setRange(1.0, 40.0)
        self.width.setValue(6.0)
        self.width.setSuffix(" in")
        self.height = QDoubleSpinBox()
        self.height.setRange(1.0, 40.0)
        self.height.setValue(4.5)
        self.height.setSuffix(" in")
        self.dpi = QSpinBox()
        self.dpi.setRange(50, 1200)
        self.dpi.setValue(300)
        self.colorbar = QCheckBox("colorbar with its value range")
        self.colorbar.setChecked(True)
        self.shared = QCheckBox("one colour range across heads / layers")
        self.shared.setChecked(True)
        self.cmap = QComboBox()
        self.cmap.addItems(CMAPS)
        self.path = QLineEdit(default_path)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path, 1)
        path_row.addWidget(browse)
        size_row = QHBoxLayout()
        size_row.addWidget(self.custom_size)
        size_row.addWidget(self.width)
        size_row.addWidget(QLabel("×"))
        size_row.addWidget(self.height)
        form = QFormLayout()
        form.addRow("view", self.view)
        form.addRow("", self.help)
        form.addRow("format", self.fmt)
        form.addRow("preset", self.preset)
        form.addRow("size", size_row)
        form.addRow("DPI (PNG)", self.dpi)
        form.addRow("colormap", self.cmap)
        form.addRow("", self.colorbar)
        form.addRow("", self.shared)
        form.addRow("file", path_row)
        note = QLabel(
            "Drawn by the same renderer as <code>relviz export</code>; a recipe JSON is written "
            "beside the figure so <code>relviz export --recipe</code> can redraw it."
        )
        note.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(self.buttons)
        self.view.currentIndexChanged.connect(self._on_view)
        self.fmt.currentTextChanged.connect(self._on_format)
        self.preset.currentIndexChanged.connect(self._on_preset)
        self.custom_size.toggled.connect(self._on_preset)
        self._on_preset()
        self._on_view()
        self._on_format(self.fmt.currentText())

    def _on_view(self) -> None:
        self.help.setText(str(self.view.currentData(3) or ""))
        # keep a default file name in step with the view (stem_view.ext); a typed name is left alone
        path = Path(self.path.text().strip()) if self.path.text().strip() else None
        view = self.view.currentData()
        if path is not None and view and self._last_view and path.stem.endswith("_" + self._last_view):
            stem = path.stem[: -len(self._last_view)] + view
            self.path.setText(str(path.with_name(stem + path.suffix)))
        self._last_view = view

    def _on_format(self, text: str) -> None:
        path = self.path.text().strip()
        if path:
            self.path.setText(str(Path(path).with_suffix("." + text.lower())))
        self.dpi.setEnabled(text.lower() == "png")

    def _on_preset(self) -> None:
        """Without "other size" the size shown is the preset's width (the height follows from the content)."""
        custom = self.custom_size.isChecked()
        self.width.setEnabled(custom)
        self.height.setEnabled(custom)
        if not custom:
            self.width.setValue(self._presets[self.preset.currentData()].width)

    def _browse(self) -> None:
        fmt = self.fmt.currentText().lower()
        path, _ = QFileDialog.getSaveFileName(self, "Export figure", self.path.text(), f"{fmt.upper()} (*.{fmt})")
        if path:
            self.path.setText(path)

    def options(self) -> dict[str, Any]:
        return {
            "view": self.view.currentData(),
            "format": self.fmt.currentText().lower(),
            "preset": self.preset.currentData(),
            "width": float(self.width.value()) if self.custom_size.isChecked() else None,
            "height": float(self.height.value()) if self.custom_size.isChecked() else None,
            "dpi": int(self.dpi.value()),
            "colorbar": self.colorbar.isChecked(),
            "shared_range": self.shared.isChecked(),
            "cmap": self.cmap.currentText(),
            "path": self.path.text().strip(),
        }
