"""The Model panel: zoo picker, "Open checkpoint…", device, precision, score threshold, run, cancel."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from relviz.app.state import AppState
from relviz.core.limits import MAX_RESIZE, MIN_RESIZE
from relviz.core.readers import CHECKPOINT_SUFFIXES

BUNDLED, RANDOM = "bundled", "none"


def fit_popup(combo: QComboBox) -> None:
    """Make ``combo``'s open list wide enough for its longest entry (the closed box may be narrower)."""
    metrics = combo.view().fontMetrics()
    widest = max((metrics.horizontalAdvance(combo.itemText(i)) for i in range(combo.count())), default=0)
    combo.view().setMinimumWidth(widest + 32)  # the item margins and a scroll bar


class InputSizeBox(QSpinBox):
    """The model input's shorter side: 0 (the model's default) or ``MIN_RESIZE``..``MAX_RESIZE`` pixels, the
    bounds ``--resize`` and recipes obey; 1..15 can be neither typed nor stepped to."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setRange(0, MAX_RESIZE)

    def validate(self, text: str, pos: int):
        state, text, pos = super().validate(text, pos)
        if state == QValidator.State.Acceptable and 0 < self.valueFromText(text) < MIN_RESIZE:
            state = QValidator.State.Intermediate  # may still become 16 or more; never a value as it is
        return state, text, pos

    def stepBy(self, steps: int) -> None:
        value = self.value() + steps * self.singleStep()
        if 0 < value < MIN_RESIZE:
            value = MIN_RESIZE if steps > 0 else 0
        self.setValue(min(max(value, 0), MAX_RESIZE))


class ModelPanel(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.status = QLabel("no model loaded")
        self.status.setObjectName("modelStatus")
        self.status.setWordWrap(True)
        self.zoo = QComboBox()
        self.zoo.setToolTip("models relviz knows; bundled ones carry trained demo weights")
        self.weights = QComboBox()
        self.weights.setToolTip("bundled weights, seeded random weights (to try the pipeline), or a checkpoint")
        self.load = QPushButton("Load model")
        self.open_ckpt = QPushButton("Open checkpoint…")
        self.device = QComboBox()
        self.precision = QComboBox()
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.0, 1.0)
        self.threshold.setSingleStep(0.05)
        self.threshold.setDecimals(2)
        self.threshold.setValue(state.threshold)
        self.threshold.setToolTip("detections with a score below this are not shown")
        self.resize = InputSizeBox()
        self.resize.setSingleStep(32)
        self.resize.setSpecialValueText("model default")
        self.resize.setSuffix(" px")
        self.resize.setToolTip(
            f"shorter side of the model's input, {MIN_RESIZE}..{MAX_RESIZE} px, or 0 for the model's default "
            "(smaller runs faster; DETR's default is 800)"
        )
        self.run = QPushButton("Run")
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("idle")
        for combo in (self.zoo, self.weights, self.device, self.precision):
            # the dock's width never depends on the longest entry; the open list shows entries in full
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(8)
            combo.currentIndexChanged.connect(lambda _=0, c=combo: c.setToolTip(c.currentText()))

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("model", self.zoo)
        form.addRow("weights", self.weights)
        form.addRow("device", self.device)
        form.addRow("precision", self.precision)
        form.addRow("score ≥", self.threshold)
        form.addRow("input size", self.resize)
        buttons = QHBoxLayout()
        buttons.addWidget(self.load)
        buttons.addWidget(self.open_ckpt)
        runrow = QHBoxLayout()
        runrow.addWidget(self.run)
        runrow.addWidget(self.cancel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.status)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addLayout(runrow)
        layout.addWidget(self.progress)
        layout.addStretch(1)

        self._checkpoint: str | None = None
        self._hinted = False
        # the saved device and precision wait for a listing that offers them (a GPU is listed once torch is
        # imported, after the model list itself); the user's own pick in a combo ends the wait
        self._pending: dict[str, str] = {}
        self.zoo.currentIndexChanged.connect(self._on_zoo)
        self.load.clicked.connect(self.request_load)
        self.device.currentTextChanged.connect(lambda _: self._on_device())
        self.device.activated.connect(lambda _: self._pending.clear())  # the user's pick, not a listing's
        self.precision.activated.connect(lambda _: self._pending.pop("precision", None))
        self.weights.currentIndexChanged.connect(lambda _: self._on_device())
        self.open_ckpt.clicked.connect(self._open_checkpoint)
        self.run.clicked.connect(state.runRequested.emit)
        self.cancel.clicked.connect(state.cancelRequested.emit)
        self.threshold.editingFinished.connect(self._on_threshold)
        self.resize.editingFinished.connect(self._on_resize)
        state.zooChanged.connect(self._on_zoo_list)
        state.modelChanged.connect(self._on_model)
        state.busyChanged.connect(self._on_busy)
        state.progress.connect(self._on_progress)
        self._on_zoo_list()
        self._on_model()

    # -- state → view --------------------------------------------------------------------------------
    def _on_zoo_list(self) -> None:
        current = self.zoo.currentData()
        self.zoo.blockSignals(True)
        self.zoo.clear()
        for entry in self.state.zoo:
            mark = "" if entry.get("has_weights") else "  (no bundled weights)"
            self.zoo.addItem(f"{entry['name']}{mark}", entry["name"])
            self.zoo.setItemData(self.zoo.count() - 1, entry.get("description", ""), 3)  # tooltip role
        if not self.state.zoo:
            self.zoo.addItem("loading the model zoo…" if self.state.busy else "(model zoo unavailable)", None)
        hint = self.state.choice_hint if self.state.zoo and not self._hinted else {}
        if hint:
            self._hinted = True  # the saved choice preselects once, when the zoo arrives
            self._pending = {k: hint[k] for k in ("device", "precision") if hint.get(k)}
        idx = self.zoo.findData(hint.get("name") or current or self.state.model.name)
        self.zoo.setCurrentIndex(max(idx, 0))
        self.zoo.blockSignals(False)
        self._on_zoo()
        self.device.blockSignals(True)
        dev = self.device.currentText() or "auto"
        if self._pending.get("device") in self.state.devices:
            dev = self._pending.pop("device")
        self.device.clear()
        self.device.addItems(self.state.devices)
        self.device.setCurrentText(dev if dev in self.state.devices else "auto")
        self.device.blockSignals(False)
        self._on_device()
        if "device" not in self._pending and self._pending.get("precision") in self.precision_options():
            self.precision.setCurrentText(self._pending.pop("precision"))
        fit_popup(self.zoo)
        fit_popup(self.device)

    def chosen_family(self) -> str | None:
        """The family of what Load model would load: the zoo entry's, the loaded checkpoint's, or None for
        a checkpoint whose family is known only once it is read."""
        weights = self.weights.currentData()
        if weights in (BUNDLED, RANDOM):
            name = self.zoo.currentData()
            entry = next((e for e in self.state.zoo if e["name"] == name), None)
            return entry.get("family") if entry else None
        if weights and weights == self.state.model.weights:
            return self.state.model.family or None
        return None

    def _on_device(self) -> None:
        """Only the precisions the chosen family runs on the chosen device (``Family.supported_precisions``;
        for the device alone: fp16 on GPUs, bf16 on CPUs and recent GPUs)."""
        options = self.state.precisions_for(self.chosen_family(), self.device.currentText() or "auto")
        prec = self.precision.currentText() or "fp32"
        self.precision.blockSignals(True)
        self.precision.clear()
        self.precision.addItems(options)
        self.precision.setCurrentText(prec if prec in options else "fp32")
        self.precision.blockSignals(False)
        fit_popup(self.precision)

    def precision_options(self) -> list[str]:
        return [self.precision.itemText(i) for i in range(self.precision.count())]

    def _on_zoo(self) -> None:
        name = self.zoo.currentData()
        entry = next((e for e in self.state.zoo if e["name"] == name), None)
        self.weights.clear()
        if entry is not None and entry.get("has_weights"):
            self.weights.addItem("bundled weights", BUNDLED)
        if entry is not None:
            self.weights.addItem("random weights (seeded)", RANDOM)
        if self._checkpoint:
            self.weights.addItem(f"checkpoint: {Path(self._checkpoint).name}", self._checkpoint)
            self.weights.setItemData(self.weights.count() - 1, self._checkpoint, Qt.ItemDataRole.ToolTipRole)
        self.load.setEnabled(entry is not None or bool(self._checkpoint))
        fit_popup(self.weights)
        self._on_device()

    def _on_model(self) -> None:
        info = self.state.model
        if info.weights not in ("", BUNDLED, RANDOM) and info.weights != self._checkpoint:
            self._checkpoint = info.weights
            self._on_zoo()
            self.weights.setCurrentIndex(self.weights.count() - 1)
        elif info.weights in (BUNDLED, RANDOM) and self.zoo.findData(info.name) >= 0:
            # the pickers show what is loaded, also when the app chose it at start-up
            self.zoo.blockSignals(True)
            self.zoo.setCurrentIndex(self.zoo.findData(info.name))
            self.zoo.blockSignals(False)
            self._on_zoo()
            self.weights.setCurrentIndex(max(self.weights.findData(info.weights), 0))
        text = (
            f"<b>{html.escape(info.describe())}</b>"
            if info.name
            else "<b>no model loaded</b> — choose one and press Load model, or open a checkpoint"
        )
        if self.state.model_note:
            text += f"<br><span style='color:#e0a030'>{html.escape(self.state.model_note)}</span>"
        self.status.setText(text)
        self.threshold.setValue(self.state.threshold)  # a loaded model brings its default threshold
        if info.device:
            self.device.setCurrentText(info.device if info.device in self.state.devices else "auto")
        self.run.setEnabled(bool(info.name))

    def _on_busy(self, busy: bool, text: str) -> None:
        self.cancel.setEnabled(busy)
        self.load.setEnabled(not busy)
        self.run.setEnabled(not busy and bool(self.state.model.name))
        if busy:
            self.progress.setRange(0, 0)  # indeterminate until a task reports a percentage
            self.progress.setFormat(text or "working…")
        else:
            self.progress.setRange(0, 100)
            self.progress.setValue(0)
            self.progress.setFormat("idle")
        if not self.state.zoo:
            self._on_zoo_list()

    def _on_progress(self, percent: int, text: str) -> None:
        if percent >= 0:
            self.progress.setRange(0, 100)
            self.progress.setValue(percent)
        self.progress.setFormat(f"{text} %p%" if percent >= 0 else text)

    # -- view → state --------------------------------------------------------------------------------
    def choice(self) -> dict:
        return {
            "name": self.zoo.currentData(),
            "weights": self.weights.currentData() or RANDOM,
            "device": self.device.currentText() or "auto",
            "precision": self.precision.currentText() or "fp32",
        }

    def request_load(self) -> None:
        choice = self.choice()
        if choice["weights"] not in (BUNDLED, RANDOM):
            choice["name"] = None  # a checkpoint's family is detected from its keys
        self.state.loadModelRequested.emit(choice)

    def _open_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open checkpoint", "", f"Checkpoints ({' '.join('*' + s for s in CHECKPOINT_SUFFIXES)})"
        )
        if path:
            self.state.openRequested.emit([path])

    def _on_resize(self) -> None:
        value = int(self.resize.value()) or None
        if value != self.state.resize:
            self.state.resize = value
            if self.state.model.name and self.state.source_path is not None:
                self.state.runRequested.emit()

    def _on_threshold(self) -> None:
        value = float(self.threshold.value())
        if abs(value - self.state.threshold) > 1e-9:
            self.state.threshold = value
            if self.state.model.name and self.state.source_path is not None:
                self.state.runRequested.emit()
