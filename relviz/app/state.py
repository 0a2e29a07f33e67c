"""The one state object: the image, the trace and the selection, with signals.

Panels read it and write user choices back to it; they never call each other.  Requests that need
work off the UI thread (load a model, run, open a file, export) are signals here too, answered by the
:class:`~relviz.app.controller.Controller`, which owns the workers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from relviz.app.messages import MessageBook
from relviz.core.trace import Trace
from relviz.views import maps


@dataclass(frozen=True)
class Selection:
    """What the user is looking at; every panel follows it."""

    object: int | None = None  # detection index
    partner: int | None = None  # second object of a selected pair (relation matrix cell)
    point: tuple[float, float] | None = None  # (x, y) original image pixels
    frame: int = 0
    layer: int = -1  # index into the current source's layers; negative counts from the end
    head: int | None = None  # None = mean over heads
    term: str = "weight"  # weight | geometry | appearance
    module: str | None = None  # relation module
    source: str | None = None  # the map source drawn on the canvas (maps.Source.key)


@dataclass
class ModelInfo:
    name: str = ""
    weights: str = ""  # 'bundled', 'none' (seeded random) or a path
    device: str = ""
    precision: str = ""
    family: str = ""

    def describe(self) -> str:
        if not self.name:
            return "no model loaded"
        w = {"none": "random weights (seeded)", "bundled": "bundled weights"}.get(self.weights, Path(self.weights).name)
        return f"{self.name} ({self.family}, {w}) on {self.device}, {self.precision}"


class AppState(QObject):
    imageChanged = Signal()
    traceChanged = Signal()
    selectionChanged = Signal(object)  # frozenset of changed Selection field names
    message = Signal(str, str)  # text, level: info | warning | error
    problemsChanged = Signal()  # the warnings and errors still shown (see relviz.app.messages)
    logged = Signal(object)  # a messages.Message, as it enters the log
    busyChanged = Signal(bool, str)
    progress = Signal(int, str)  # percent (-1 = unknown), text
    modelChanged = Signal()
    itemsChanged = Signal()
    videoChanged = Signal()
    zooChanged = Signal()
    # requests answered by the controller
    openRequested = Signal(object)  # list[str]
    loadModelRequested = Signal(dict)  # name, weights, device, precision
    runRequested = Signal()
    cancelRequested = Signal()
    exportRequested = Signal(str, dict)  # kind ('figure'|'trace'|'video'), options
    playRequested = Signal(bool)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.image: np.ndarray | None = None
        self.source_path: Path | None = None
        self.source_kind: str = ""  # image | video | trace
        self.trace: Trace | None = None
        self.sel = Selection()
        self.items: list[Path] = []
        self.item_index = -1
        self.video_frames = 0
        self.video_fps = 25.0
        self.playing = False
        self.model = ModelInfo()
        self.zoo: list[dict[str, Any]] = []  # name, family, description, has_weights
        self.devices: list[str] = ["auto", "cpu"]
        self.precisions: list[str] = ["fp32"]
        self.precisions_by_device: dict[str, list[str]] = {}
        self.precisions_by_family: dict[str, dict[str, list[str]]] = {}  # family -> device -> precisions
        self.choice_hint: dict[str, str] = {}  # last model/device/precision the user chose (settings)
        self.threshold = 0.7
        self.resize: int | None = None  # model input's shorter side; None = the family's default
        self.busy = False
        self.busy_text = ""
        self.last_message: tuple[str, str] = ("", "")
        self.messages = MessageBook()
        self.model_note = ""  # a line under the loaded model, e.g. that a checkpoint was refused

    def precisions_for(self, family: str | None, device: str) -> list[str]:
        """The precisions to offer for ``family`` on ``device``; for an unknown family (a checkpoint not
        loaded yet) those every family supports there."""
        by_device = self.precisions_by_device.get(device, self.precisions)
        if family in self.precisions_by_family:
            return list(self.precisions_by_family[family].get(device, by_device))
        families = list(self.precisions_by_family.values())
        common = [p for p in by_device if all(p in f.get(device, by_device) for f in families)]
        return common or ["fp32"]

    # -- content -------------------------------------------------------------------------------------
    def set_image(self, image: np.ndarray | None, path: Path | None = None, kind: str = "image") -> None:
        self.image = image
        if path is not None:
            self.source_path = Path(path)
        self.source_kind = kind
        self.imageChanged.emit()

    def set_trace(self, trace: Trace | None, follow: bool = False) -> None:
        """Show ``trace``; with ``follow`` the selected object is carried over (video frames)."""
        old = self.trace
        self.trace = trace
        changes: dict[str, Any] = {}
        if follow:
            changes["object"] = maps.follow_object(old, trace, self.sel.object)
            changes["partner"] = maps.follow_object(old, trace, self.sel.partner)
        else:
            changes["object"] = None
            changes["partner"] = None
        n = len(maps.detections(trace)[0])
        if changes["object"] is None and not follow and n:
            changes["object"] = 0 if trace is not None and self.sel.point is None else None  # start on one
        point = self.sel.point
        if point is not None and trace is not None:
            w, h = maps._image_size(trace)
            if not (0 <= point[0] < w and 0 <= point[1] < h):  # left over from a larger image
                point = changes["point"] = None
        if changes["object"] is None and point is None and trace is not None:
            if maps.default_source(trace, "point") is not None:
                w, h = maps._image_size(trace)
                changes["point"] = (w / 2.0, h / 2.0)  # a reference point to start from: the centre
        mods = maps.relation_modules(trace)
        if self.sel.module not in mods:
            changes["module"] = mods[0] if mods else None
        keys = [s.key for s in maps.sources(trace)]
        if self.sel.source not in keys:
            driver = "object" if changes.get("object") is not None else "point"
            changes["source"] = maps.default_source(trace, driver) or (keys[0] if keys else None)
        changed = {k for k, v in changes.items() if getattr(self.sel, k) != v}
        self.sel = replace(self.sel, **changes)
        self.traceChanged.emit()
        # "trace": every map must be recomputed, though the selection fields may be the same
        self.selectionChanged.emit(frozenset(changed | {"trace"}))

    # -- selection -----------------------------------------------------------------------------------
    def select(self, **changes: Any) -> None:
        """Change selection fields; switches the canvas source to fit what was picked."""
        if "head" in changes and changes["head"] is not None:
            changes["head"] = max(int(changes["head"]), 0)
        if "object" in changes and changes["object"] is not None and "source" not in changes:
            src = maps.source(self.trace, self.sel.source)
            if src is None or src.driver != "object":
                best = maps.default_source(self.trace, "object")
                if best:
                    changes["source"] = best
        if "point" in changes and changes["point"] is not None and "source" not in changes:
            src = maps.source(self.trace, self.sel.source)
            if src is None or src.driver != "point":
                best = maps.default_source(self.trace, "point")
                if best:
                    changes["source"] = best
        changed = {k for k, v in changes.items() if getattr(self.sel, k) != v}
        if not changed:
            return
        self.sel = replace(self.sel, **changes)
        self.selectionChanged.emit(frozenset(changed))

    def current_source(self) -> maps.Source | None:
        return maps.source(self.trace, self.sel.source)

    def layer_count(self) -> int:
        src = self.current_source()
        return len(src.layers) if src else 0

    def head_count(self) -> int:
        src = self.current_source()
        n = src.heads if src else 0
        if self.sel.module and self.trace is not None:
            rel = maps.relations(self.trace, self.sel.module, self.sel.term, None, self.sel.layer)
            if rel is not None:
                n = max(n, rel.per_head.shape[0])
        return n

    def step_layer(self, delta: int) -> None:
        n = self.layer_count()
        if n:
            cur = maps.layer_index(n, self.sel.layer)
            self.select(layer=min(max(cur + delta, 0), n - 1))

    def set_head(self, head: int | None) -> None:
        n = self.head_count()
        if head is not None and n and head >= n:
            self.info(f"there are only {n} heads (0–{n - 1})", "warning", topic="head")
            return
        self.resolve("head")
        self.select(head=head)

    # -- messages ------------------------------------------------------------------------------------
    def info(self, text: str, level: str = "info", topic: str | None = None, request: int | None = None) -> None:
        """Tell the user: to the log and the status bar; a warning or error also stays on the message bar
        until dismissed or resolved by a later success on ``topic`` (rule in :mod:`relviz.app.messages`)."""
        msg = self.messages.post(text, level, topic, request)
        self.last_message = (msg.text, msg.level)
        self.logged.emit(msg)
        self.message.emit(msg.text, msg.level)
        if msg.is_problem:
            self.problemsChanged.emit()

    def success(self, text: str, topic: str, request: int | None = None) -> None:
        """An info message for something that worked: it resolves ``topic``'s problems from earlier requests."""
        self.resolve(topic, self.messages.request if request is None else request)
        self.info(text, "info", topic, request)

    def resolve(self, topic: str, request: int | None = None) -> None:
        """Drop ``topic``'s problems from requests before ``request`` (all of them when None)."""
        if self.messages.resolve(topic, request):
            self.problemsChanged.emit()

    def begin_request(self) -> int:
        """A new user request (a drop, a load, a run, an export); its work's messages carry the number."""
        return self.messages.begin()

    def dismiss_problems(self) -> None:
        if self.messages.dismiss():
            self.problemsChanged.emit()

    def set_busy(self, busy: bool, text: str = "") -> None:
        self.busy, self.busy_text = busy, text
        self.busyChanged.emit(busy, text)

    def set_items(self, items: list[Path], index: int = 0) -> None:
        self.items = list(items)
        self.item_index = index if items else -1
        self.itemsChanged.emit()
