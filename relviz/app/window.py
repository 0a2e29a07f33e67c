"""The main window: the canvas in the centre, docks around it, menus, drops, keys, messages."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from relviz.app.controller import Controller
from relviz.app.export_dialog import ExportDialog
from relviz.app.message_log import MessageLogDialog
from relviz.app.messages import EXPORT, INPUT
from relviz.app.panels.attention import AttentionPanel
from relviz.app.panels.canvas import CanvasPanel
from relviz.app.panels.geometry import GeometryPanel
from relviz.app.panels.model import ModelPanel
from relviz.app.panels.objects import ObjectsPanel
from relviz.app.panels.relations import RelationsPanel
from relviz.app.panels.timeline import TimelinePanel
from relviz.app.settings import Settings
from relviz.app.state import AppState
from relviz.core.images import IMAGE_SUFFIXES
from relviz.core.readers import CHECKPOINT_SUFFIXES, TRACE_SUFFIXES
from relviz.core.video import VIDEO_SUFFIXES
from relviz.views import maps

LEVEL_STYLE = {
    "info": "background:#20303a; color:#d8eefa;",
    "warning": "background:#4a3b10; color:#ffe7a0;",
    "error": "background:#5a1f1f; color:#ffd6d6;",
}

# the figure view that draws what the canvas shows, per map source (first one registered wins)
PREFERRED_VIEWS = {
    "detr/decoder/cross_attn": ("decoder-attention",),
    "detr/encoder/self_attn": ("encoder-attention",),
    "lrnet": ("local-relation",),
    "nonlocal": ("nonlocal",),
    "region": ("region-parts",),
}

FAMILY_VIEWS = {"relation": ("relations",), "regionfeat": ("region-parts",)}

SHORTCUTS = [
    ("← / →", "previous / next image of the folder (or frame of a video)"),
    ("space", "play / pause the video"),
    (", / .", "previous / next video frame"),
    ("[ / ]", "previous / next layer"),
    ("0 – 9", "head 0 – 9"),
    ("M", "mean over heads"),
    ("Ctrl+E", "export figure"),
    ("Ctrl+O", "open files"),
    ("Ctrl+R", "run the model"),
]


class MessageBar(QFrame):
    """A line above the canvas with the warnings and errors still standing (never a blocking dialog).

    It shows the state's problems (:mod:`relviz.app.messages` says how long each stays); info messages
    never touch it.  The close button dismisses what is shown; "Messages…" opens the log.
    """

    def __init__(self, state: AppState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.setObjectName("messageBar")
        self.label = QLabel("")
        self.label.setTextFormat(Qt.TextFormat.PlainText)  # a file name with "<" is not markup
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.log_button = QToolButton()
        self.log_button.setText("Messages…")
        self.log_button.setToolTip("every message with its time (View → Messages…)")
        self.log_button.setAutoRaise(True)
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setToolTip("dismiss")
        self.close_button.setAutoRaise(True)
        self.close_button.clicked.connect(state.dismiss_problems)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 3, 4, 3)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.log_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        state.problemsChanged.connect(self.refresh)
        self.level = ""
        self.hide()

    def refresh(self) -> None:
        book = self.state.messages
        if not book.problems:
            self.level = ""
            self.label.setText("")
            self.hide()
            return
        self.level = book.worst()
        self.label.setText("\n".join(book.bar_lines()))
        style = LEVEL_STYLE[self.level]
        self.setStyleSheet(f"QFrame#messageBar {{{style}}} QLabel {{{style}}} QToolButton {{{style}}}")
        self.show()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None, state: AppState | None = None):
        super().__init__()
        self.setWindowTitle("relviz")
        self.setObjectName("relvizMainWindow")
        self.setAcceptDrops(True)
        self.resize(1440, 900)
        self.settings = settings
        self.state = state or AppState(self)
        self.controller = Controller(self.state, settings, self)

        self.canvas = CanvasPanel(self.state)
        self.message_bar = MessageBar(self.state)
        self.message_log: MessageLogDialog | None = None
        self.message_bar.log_button.clicked.connect(self.show_messages)
        central = QWidget()
        cl = QVBoxLayout(central)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.setSpacing(0)
        cl.addWidget(self.message_bar)
        cl.addWidget(self.canvas, 1)
        self.setCentralWidget(central)

        self.model_panel = ModelPanel(self.state)
        self.objects_panel = ObjectsPanel(self.state)
        self.relations_panel = RelationsPanel(self.state)
        self.attention_panel = AttentionPanel(self.state)
        self.geometry_panel = GeometryPanel(self.state)
        self.timeline_panel = TimelinePanel(self.state)
        self.docks: dict[str, QDockWidget] = {}
        left, right, bottom = (
            Qt.DockWidgetArea.LeftDockWidgetArea,
            Qt.DockWidgetArea.RightDockWidgetArea,
            Qt.DockWidgetArea.BottomDockWidgetArea,
        )
        self._dock("Model", self.model_panel, left)
        self._dock("Objects", self.objects_panel, left)
        self._dock("Attention", self.attention_panel, right)
        self._dock("Relations", self.relations_panel, right)
        self._dock("Geometry", self.geometry_panel, right)
        self._dock("Timeline", self.timeline_panel, bottom)
        self.tabifyDockWidget(self.docks["Relations"], self.docks["Geometry"])
        self.docks["Relations"].raise_()
        self.resizeDocks([self.docks["Model"], self.docks["Attention"]], [300, 420], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["Attention"], self.docks["Relations"]], [430, 380], Qt.Orientation.Vertical)
        # the Model panel is a form: its own height; the Objects table gets the rest of the left column
        model_height = self.model_panel.sizeHint().height()
        self.resizeDocks([self.docks["Model"], self.docks["Objects"]], [model_height, 900], Qt.Orientation.Vertical)
        self._default_state = self.saveState()
        self._auto_hidden: set[str] = set()  # docks hidden because the family has nothing for them
        self.docks["Timeline"].hide()  # until a video opens
        self._auto_hidden.add("Timeline")

        self.status_text = QLabel("")
        self.status_text.setTextFormat(Qt.TextFormat.PlainText)
        self.model_text = QLabel("no model loaded")
        self.busy_text = QLabel("")
        self.log_button = QToolButton()
        self.log_button.setText("Messages")
        self.log_button.setToolTip("every message with its time (View → Messages…)")
        self.log_button.setAutoRaise(True)
        self.log_button.clicked.connect(self.show_messages)
        self.statusBar().addWidget(self.status_text, 1)
        self.statusBar().addPermanentWidget(self.log_button)
        self.statusBar().addPermanentWidget(self.busy_text)
        self.statusBar().addPermanentWidget(self.model_text)
        self._build_menus()
        self._build_shortcuts()

        self.state.message.connect(self._on_message)
        self.state.busyChanged.connect(self._on_busy)
        self.state.modelChanged.connect(lambda: self.model_text.setText(self.state.model.describe()))
        self.state.itemsChanged.connect(self._on_items)
        self.state.imageChanged.connect(self._on_items)
        self.state.videoChanged.connect(self._on_video)
        self.state.traceChanged.connect(self.adapt_docks)
        self._restore()

    # -- construction --------------------------------------------------------------------------------
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> None:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock{title}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        self.docks[title] = dock
        dock.toggleViewAction().triggered.connect(lambda checked, t=title: self._user_toggled(t, checked))

    def _action(self, menu, text: str, slot, shortcut: str | QKeySequence | None = None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self._action(file_menu, "&Open…", self.open_dialog, QKeySequence.StandardKey.Open)
        self._action(file_menu, "Open &folder…", self.open_folder_dialog)
        self._action(file_menu, "Open &checkpoint…", self.open_checkpoint_dialog)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file_menu.addSeparator()
        self.export_action = self._action(file_menu, "&Export figure…", self.export_figure_dialog, "Ctrl+E")
        self._action(file_menu, "Export &trace (.npz)…", self.export_trace_dialog)
        self._action(file_menu, "Export &video with overlays (.mp4)…", self.export_video_dialog)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        model_menu = bar.addMenu("&Model")
        self._action(model_menu, "&Run", self.state.runRequested.emit, "Ctrl+R")
        self._action(model_menu, "&Cancel", self.state.cancelRequested.emit, "Esc")
        self._action(model_menu, "&Load chosen model", self.model_panel.request_load)
        view_menu = bar.addMenu("&View")
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        self.messages_action = self._action(view_menu, "&Messages…", self.show_messages, "Ctrl+Shift+M")
        self._action(view_menu, "Reset &layout", self.reset_layout)
        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "&Keyboard shortcuts", self.show_shortcuts)
        self._action(help_menu, "&About relviz", self.show_about)

    def _build_shortcuts(self) -> None:
        def key(seq: str, slot) -> None:
            sc = QShortcut(QKeySequence(seq), self)
            sc.setContext(Qt.ShortcutContext.WindowShortcut)
            sc.activated.connect(slot)

        key("Left", lambda: self.step(-1))
        key("Right", lambda: self.step(1))
        key("Space", lambda: self.state.playRequested.emit(not self.state.playing))
        key(",", lambda: self.timeline_panel.step(-1))
        key(".", lambda: self.timeline_panel.step(1))
        key("[", lambda: self.state.step_layer(-1))
        key("]", lambda: self.state.step_layer(1))
        key("M", lambda: self.state.select(head=None))
        for i in range(10):
            key(str(i), lambda h=i: self.state.set_head(h))

    # -- actions -------------------------------------------------------------------------------------
    def step(self, delta: int) -> None:
        if len(self.state.items) > 1:
            self.controller.step_item(delta)
        elif self.state.video_frames:
            self.timeline_panel.step(delta)

    def open_dialog(self) -> None:
        exts = " ".join(f"*{s}" for s in (*IMAGE_SUFFIXES, *VIDEO_SUFFIXES, *CHECKPOINT_SUFFIXES, *TRACE_SUFFIXES))
        paths, _ = QFileDialog.getOpenFileNames(self, "Open", "", f"relviz inputs ({exts});;All files (*)")
        if paths:
            self.state.openRequested.emit(paths)

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open folder")
        if folder:
            self.state.openRequested.emit([folder])

    def open_checkpoint_dialog(self) -> None:
        self.model_panel._open_checkpoint()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent_files() if self.settings else []
        for path in recent:
            act = self.recent_menu.addAction(path)
            act.triggered.connect(lambda _=False, p=path: self.state.openRequested.emit([p]))
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear", lambda: self.settings.clear_recent())

    def _export_folder(self) -> Path:
        folder = self.settings.export_dir() if self.settings else ""
        return Path(folder) if folder and Path(folder).is_dir() else Path.cwd()

    def _stem(self) -> str:
        return self.state.source_path.stem if self.state.source_path else "relviz"

    def export_views(self) -> list[tuple[str, str]]:
        trace = self.state.trace
        if trace is None:
            return []
        try:
            from relviz.render.views import views
        except ImportError as exc:
            self.state.info(f"the figure renderer is not available: {exc}", "error", EXPORT)
            return []
        try:
            available = views()
        except ImportError as exc:
            self.state.info(f"the figure renderer is not complete: {exc}", "error", EXPORT)
            return []
        return [(name, v.help) for name, v in available.items() if trace.family in v.families]

    def export_figure_dialog(self, accept: bool | None = None) -> ExportDialog | None:
        """File → Export figure…; returns the dialog (tests fill it in and call ``accept_export``)."""
        if self.state.trace is None:
            self.state.info("nothing to export yet: run a model or open a trace first", "warning", EXPORT)
            return None
        views = self.export_views()
        if not views:
            self.state.info(f"no figure views for {self.state.trace.family or 'this'} traces", "warning", EXPORT)
            return None
        names = [v[0] for v in views]
        preferred = PREFERRED_VIEWS.get(self.state.sel.source or "", ())
        if self.state.sel.source is None or self.state.current_source() is None:
            preferred = ()
        preferred = (*preferred, *FAMILY_VIEWS.get(self.state.trace.family, ()))
        first = next((v for v in preferred if v in names), names[0])
        views = [v for v in views if v[0] == first] + [v for v in views if v[0] != first]
        default = str(self._export_folder() / f"{self._stem()}_{first}.pdf")
        dialog = ExportDialog(views, default, self)
        dialog.fmt.setCurrentText("PDF")
        if accept is None:
            if dialog.exec():
                self.accept_export(dialog)
        return dialog

    def accept_export(self, dialog: ExportDialog) -> None:
        self.state.exportRequested.emit("figure", dialog.options())

    def export_trace_dialog(self) -> None:
        if self.state.trace is None:
            self.state.info("no trace to export yet", "warning", EXPORT)
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Export trace", str(self._export_folder() / f"{self._stem()}.npz"), "relviz trace (*.npz)"
        )
        if path:
            self.state.exportRequested.emit("trace", {"path": path})

    def export_video_dialog(self) -> None:
        if self.state.source_kind != "video":
            self.state.info("export video needs an open video", "warning", EXPORT)
            return
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export video with overlays",
            str(self._export_folder() / f"{self._stem()}_relviz.mp4"),
            "MPEG-4 (*.mp4)",
        )
        if path:
            self.state.exportRequested.emit("video", {"path": path})

    def show_messages(self) -> MessageLogDialog:
        """View → Messages…: the log of every message with its time (one dialog, raised if open)."""
        if self.message_log is None:
            self.message_log = MessageLogDialog(self.state, self)
        self.message_log.show()
        self.message_log.raise_()
        self.message_log.activateWindow()
        return self.message_log

    def reset_layout(self) -> None:
        self.restoreState(self._default_state)
        for dock in self.docks.values():
            dock.show()
        self._auto_hidden.clear()
        self.adapt_docks()

    def show_shortcuts(self) -> None:
        rows = "".join(f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in SHORTCUTS)
        QMessageBox.information(self, "Keyboard shortcuts", f"<table cellpadding=3>{rows}</table>")

    def show_about(self) -> None:
        from relviz import __version__

        QMessageBox.about(
            self,
            "About relviz",
            f"<b>relviz {__version__}</b><p>A desktop explorer for relation "
            "models in computer vision: DETR, Relation Networks, Learning Region Features, "
            "LR-Net and Non-local networks.</p>",
        )

    # -- drag and drop -------------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        event.acceptProposedAction()  # accept anything; the drop explains what cannot be opened

    def dragMoveEvent(self, event) -> None:
        event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        mime = event.mimeData()
        paths = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()] if mime.hasUrls() else []
        event.acceptProposedAction()
        if not paths:
            what = "text" if mime.hasText() else "data"
            self.state.begin_request()
            self.state.info(f"relviz opens files and folders; the drop held {what}, not a file", "error", INPUT)
            return
        self.state.openRequested.emit(paths)

    # -- state → window ------------------------------------------------------------------------------
    def _on_message(self, text: str, level: str) -> None:
        """The status bar shows the latest message of any level; the message bar follows the problems."""
        self.status_text.setText(text)
        self.status_text.setStyleSheet({"error": "color:#ff6b6b;", "warning": "color:#f0c040;"}.get(level, ""))

    def _on_busy(self, busy: bool, text: str) -> None:
        self.busy_text.setText(f"working: {text}…" if busy else "")

    def _on_items(self) -> None:
        title = "relviz"
        if self.state.source_path is not None:
            title = f"{self.state.source_path.name} — relviz"
        if len(self.state.items) > 1:
            title = f"[{self.state.item_index + 1}/{len(self.state.items)}] {title}"
        self.setWindowTitle(title)

    def _on_video(self) -> None:
        self.adapt_docks()

    # -- docks that adapt to the family ----------------------------------------------------------------
    def dock_needs(self) -> dict[str, bool] | None:
        """Which docks have something to show for what is open; None while there is no result to judge by
        (the docks then stay as they are, so they do not flicker while a model runs)."""
        needs = {"Timeline": self.state.video_frames > 0}
        trace = self.state.trace
        if trace is None:
            return needs
        needs.update(
            Objects="detections/boxes" in trace or "classification/logits" in trace,
            Attention=bool(maps.sources(trace)),
            Relations=bool(maps.relation_modules(trace)),
            Geometry=has_geometry(trace),
        )
        return needs

    def adapt_docks(self) -> None:
        """Hide the docks with nothing to show for the loaded family and show them again when a family
        needs them.  A dock the user closed stays closed: only docks hidden here come back by themselves."""
        for title, needed in (self.dock_needs() or {}).items():
            dock = self.docks[title]
            if not needed and not dock.isHidden():
                dock.hide()
                self._auto_hidden.add(title)
            elif needed and title in self._auto_hidden:
                self._auto_hidden.discard(title)
                dock.show()
        if not self.docks["Relations"].isHidden():
            self.docks["Relations"].raise_()  # the pair matrix first, geometry in the tab behind it
        elif not self.docks["Geometry"].isHidden():
            self.docks["Geometry"].raise_()

    def _user_toggled(self, title: str, visible: bool) -> None:
        """View → <dock>: the user decides; the dock leaves the automatic hiding."""
        self._auto_hidden.discard(title)

    # -- settings ------------------------------------------------------------------------------------
    def _restore(self) -> None:
        if self.settings is None:
            return
        geometry, state = self.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)
        # docks are saved as the user left them (see closeEvent): hidden ones stay hidden, but the Timeline
        # waits for a video as always
        if self.docks["Timeline"].isHidden():
            self._auto_hidden.add("Timeline")
        self.state.threshold = self.settings.threshold(self.state.threshold)
        self.model_panel.threshold.setValue(self.state.threshold)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.settings is not None:
            for title in self._auto_hidden:  # the saved layout is the user's, not the last family's
                self.docks[title].show()
            self.settings.save_window_state(self.saveGeometry(), self.saveState())
            self.settings.save_threshold(self.state.threshold)
            self.settings.sync()
        self.controller.shutdown()
        super().closeEvent(event)


def has_geometry(trace) -> bool:
    """Whether ``trace`` holds a geometry term the Geometry panel draws (relation ω_G, LR-Net priors,
    region G_k)."""
    if "region/geometry" in trace:
        return True
    if any(n.startswith("lrnet/") and n.endswith("/geometry") for n in trace.names()):
        return True
    return any("geometry" in maps.relation_terms(trace, m) for m in maps.relation_modules(trace))


def schedule(ms: int, fn) -> None:
    QTimer.singleShot(ms, fn)
