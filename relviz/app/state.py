"""The one state object: the image, the trace and the selection, with signals.

Panels read it and write user choices back to it; they never call each other.  Requests that need
work off the UI thread (load a model, run, open a file, export) are signals here too, answered by the
:class:`~relviz.app.controller.Controller`, which owns the workers.

Selection rules
---------------
A selection is: object (and partner), point, frame, view (``source``: the map the canvas shows),
layer, head, term and relation module.  What a change keeps and what it resets:

=================================  ==========================================================================
change                             rule
=================================  ==========================================================================
a new model's trace                object 0 (the strongest detection) when the trace has detections, else
(the first trace, or one whose     none; partner none; the point kept when the trace has point maps and it
``meta.model`` or family differs)  lies in the image, else the image centre; the view its family's default
                                   (object-driven when an object is selected); layer = each view's default
                                   (the last) — per-view layer memory is forgotten; head = mean; term ω;
                                   module = the first (fc1)
a new input, same model (another   object 0 again (detections of another image are not the same objects);
image, folder step, trace file)    point, view, head, term and module kept where the trace has them
a re-run on the same input         the object followed by box overlap (else 0); everything else kept
(threshold, input size)
a new frame of the same video      the object followed (same DETR query slot, else the best box overlap;
                                   none when it left); point, view, layer, head, term, module kept
a view change                      the layer resolved for that view: the one last chosen *in that view*
                                   when it is valid there, else the view's default (the last) — a layer
                                   picked in the DETR encoder is not carried into the decoder; the head
                                   kept when the view has it, else the mean
picking an object / a point        switches the view to one driven by objects / points when the current
                                   one is not (and resolves its layer as above)
any change                         the point is part of the selection only while the view is point-driven
                                   (encoder, non-local, LR-Net): in an object view it is put aside and
                                   comes back with the next point view, so no point marker shows there
=================================  ==========================================================================
"""

from __future__ import annotations

import json
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


def _model_key(trace: Trace) -> str:
    """What makes two traces come from the same model: family, name, config, weights (not the device)."""
    model = trace.meta.get("model")
    model = {k: v for k, v in model.items() if k not in ("device", "dtype")} if isinstance(model, dict) else {}
    return json.dumps([trace.family, model], sort_keys=True, default=str)


def _input_key(trace: Trace) -> tuple:
    info = trace.meta.get("input")
    info = info if isinstance(info, dict) else {}
    return (info.get("path"), info.get("kind"), info.get("shown_frame", info.get("frame")))


def _image_wh(trace: Trace) -> tuple[float, float]:
    try:
        w, h = trace.image_size
        return float(w), float(h)
    except (KeyError, TypeError, ValueError):
        if trace.image is not None:
            return float(trace.image.shape[1]), float(trace.image.shape[0])
        return 1.0, 1.0


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
        # selection memory (rules in the module docstring)
        self._kept_point: tuple[float, float] | None = None  # the point put aside while an object view shows
        self._layers: dict[str, int] = {}  # per view: the layer last chosen in it
        self._model_key: str | None = None  # which model made the trace on screen (or the last one)
        self._input_key: tuple | None = None  # and from which input and frame

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
        """Show ``trace`` and carry the selection over by the rules in the module docstring; ``follow``
        says the trace is another frame of the video on screen (the object is followed)."""
        old = self.trace
        self.trace = trace
        sel = self.sel
        if trace is None:  # nothing to select in until a result comes; the rest waits for it
            changes: dict[str, Any] = {"object": None, "partner": None}
            if sel.point is not None:
                self._kept_point = sel.point
                changes["point"] = None
            self.traceChanged.emit()
            self._apply(changes, {"trace"}, force=True)
            return
        model, where = _model_key(trace), _input_key(trace)
        new_model = model != self._model_key
        same_input = not new_model and where == self._input_key
        self._model_key, self._input_key = model, where
        n = len(maps.detections(trace)[0])
        changes = {"partner": None}
        if new_model:
            self._layers.clear()
            changes.update(object=0 if n else None, layer=-1, head=None, term="weight")
        elif follow or same_input:  # another frame of this video, or a re-run on this input
            changes["object"] = maps.follow_object(old, trace, sel.object) if old is not None else None
            changes["partner"] = maps.follow_object(old, trace, sel.partner) if old is not None else None
            if changes["object"] is None and not follow and n:
                changes["object"] = 0
        else:
            changes["object"] = 0 if n else None
        mods = maps.relation_modules(trace)
        if new_model or sel.module not in mods:
            changes["module"] = mods[0] if mods else None
        keys = [s.key for s in maps.sources(trace)]
        view = sel.source
        if new_model or view not in keys:
            driver = "object" if changes.get("object") is not None else "point"
            view = maps.default_source(trace, driver) or (keys[0] if keys else None)
        changes["source"] = view
        if not new_model:
            changes["layer"] = self._layer_for(trace, view)
            changes["head"] = self._head_for(trace, view, sel.head)
        changes["point"] = self._point_for(trace, view)
        self.traceChanged.emit()
        # "trace": every map must be recomputed, though the selection fields may be the same
        self._apply(changes, {"trace"}, force=True)

    def _apply(self, changes: dict[str, Any], extra: set[str] = frozenset(), force: bool = False) -> None:
        changed = {k for k, v in changes.items() if getattr(self.sel, k) != v}
        if not changed and not force:
            return
        self.sel = replace(self.sel, **changes)
        self.selectionChanged.emit(frozenset(changed | set(extra)))

    # -- the rules' parts ----------------------------------------------------------------------------
    def _layer_for(self, trace: Trace | None, view: str | None) -> int:
        """The layer of ``view``: the one last chosen in it if valid there, else its default (the last)."""
        src = maps.source(trace, view)
        layer = self._layers.get(view or "", -1)
        n = len(src.layers) if src is not None else 0
        return layer if n and -n <= layer < n else -1

    @staticmethod
    def _head_for(trace: Trace | None, view: str | None, head: int | None) -> int | None:
        """``head`` when ``view`` has it (or the view has no heads of its own), else the mean."""
        src = maps.source(trace, view)
        if head is None or src is None:
            return head
        return head if head < max(src.heads, 1) else None

    def _point_for(self, trace: Trace | None, view: str | None, point: tuple[float, float] | None = None):
        """The point the selection holds in ``view``: the given or remembered one when ``view`` is
        point-driven (the image centre if that is outside the image), else None (the point is kept aside)."""
        candidate = point if point is not None else (self.sel.point or self._kept_point)
        src = maps.source(trace, view)
        if src is None or src.driver != "point":
            if candidate is not None:
                self._kept_point = candidate
            return None
        w, h = _image_wh(trace)
        if candidate is None or not (0 <= candidate[0] < w and 0 <= candidate[1] < h):
            candidate = (w / 2.0, h / 2.0)  # a reference point to start from: the centre
        self._kept_point = candidate
        return candidate

    # -- selection -----------------------------------------------------------------------------------
    def select(self, **changes: Any) -> None:
        """Change selection fields; switches the view to fit what was picked (rules in the docstring)."""
        if "head" in changes and changes["head"] is not None:
            changes["head"] = max(int(changes["head"]), 0)
        view = changes.get("source", self.sel.source)
        if "object" in changes and changes["object"] is not None and "source" not in changes:
            src = maps.source(self.trace, self.sel.source)
            if src is None or src.driver != "object":
                view = maps.default_source(self.trace, "object") or view
        if "point" in changes and changes["point"] is not None and "source" not in changes:
            src = maps.source(self.trace, self.sel.source)
            if src is None or src.driver != "point":
                view = maps.default_source(self.trace, "point") or view
        if view != self.sel.source:
            changes["source"] = view
            if "layer" not in changes:
                changes["layer"] = self._layer_for(self.trace, view)
            if "head" not in changes:
                changes["head"] = self._head_for(self.trace, view, self.sel.head)
        if "layer" in changes and view is not None:
            self._layers[view] = int(changes["layer"])
        if self.trace is not None and ("point" in changes or "source" in changes):
            if "point" in changes and changes["point"] is None:
                self._kept_point = None  # cleared on purpose, not put aside
            changes["point"] = self._point_for(self.trace, view, changes.get("point"))
        self._apply(changes)

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
