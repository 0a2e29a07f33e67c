"""The Timeline panel (video): play, pause, step, scrub.  It writes the frame into the state; the
controller decodes and runs the model on it in a worker, dropping frames rather than stalling."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QToolButton, QWidget

from relviz.app.state import AppState


class TimelinePanel(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.play = QToolButton()
        self.play.setText("▶")
        self.play.setToolTip("play / pause (space)")
        self.back = QToolButton()
        self.back.setText("◀|")
        self.back.setToolTip("previous frame (,)")
        self.fwd = QToolButton()
        self.fwd.setText("|▶")
        self.fwd.setToolTip("next frame (.)")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.label = QLabel("no video")
        self.label.setMinimumWidth(170)
        self.shown_label = QLabel("")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        for w in (self.back, self.play, self.fwd):
            layout.addWidget(w)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.label)
        layout.addWidget(self.shown_label)
        self._updating = False
        self.play.clicked.connect(lambda: state.playRequested.emit(not state.playing))
        self.back.clicked.connect(lambda: self.step(-1))
        self.fwd.clicked.connect(lambda: self.step(1))
        self.slider.valueChanged.connect(self._on_slider)
        state.videoChanged.connect(self._on_video)
        state.selectionChanged.connect(self._on_selection)
        state.traceChanged.connect(self._on_trace)
        self._on_video()

    def step(self, delta: int) -> None:
        if self.state.video_frames:
            if self.state.playing:
                self.state.playRequested.emit(False)
            frame = min(max(self.state.sel.frame + delta, 0), self.state.video_frames - 1)
            self.state.select(frame=frame)

    def _on_video(self) -> None:
        n = self.state.video_frames
        self.setEnabled(n > 0)
        self._updating = True
        self.slider.setRange(0, max(n - 1, 0))
        self.slider.setValue(self.state.sel.frame)
        self._updating = False
        self.play.setText("❚❚" if self.state.playing else "▶")
        self._label()

    def _label(self) -> None:
        n = self.state.video_frames
        if not n:
            self.label.setText("no video")
            return
        f = self.state.sel.frame
        fps = self.state.video_fps or 25.0
        self.label.setText(f"frame {f} / {n - 1}   {f / fps:6.2f} s")

    def _on_selection(self, changed: frozenset) -> None:
        if "frame" in changed:
            self._updating = True
            self.slider.setValue(self.state.sel.frame)
            self._updating = False
            self._label()

    def _on_slider(self, value: int) -> None:
        if not self._updating:
            self.state.select(frame=int(value))

    def set_shown(self, text: str) -> None:
        self.shown_label.setText(text)

    def _on_trace(self) -> None:
        """A clip model's result names the frames it saw: 'clip 8–15' beside the frame shown."""
        trace = self.state.trace
        info = trace.meta.get("input", {}) if trace is not None else {}
        used = info.get("frame_indices") if isinstance(info, dict) else None
        if self.state.video_frames and isinstance(used, list) and len(used) > 1:
            self.set_shown(f"clip {used[0]}–{used[-1]}")
            self.shown_label.setToolTip(
                f"the model saw frames {used[0]} to {used[-1]} ({len(used)} frames) for frame "
                f"{info.get('shown_frame', self.state.sel.frame)}"
            )
        else:
            self.set_shown("")
            self.shown_label.setToolTip("")
