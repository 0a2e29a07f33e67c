"""The controller answers the state's requests with work in workers, and writes results back.

It owns the loaded model and the workers; it never touches a widget.  What runs in the workers is the
Qt-free :mod:`relviz.pipeline` (models, frames, clips, the GPU → CPU fallback).  Model loading, inference and
video decoding run one at a time on the ``model`` pool (model code is not re-entrant); image reading,
trace loading and figure exports run on the ``io`` pool.  torch and the zoo are imported inside the
first task, after the window is shown.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QTimer

from relviz import pipeline
from relviz.app import exporting
from relviz.app.messages import EXPORT, INPUT, MODEL, RUN
from relviz.app.settings import Settings
from relviz.app.state import AppState, ModelInfo
from relviz.app.workers import Runner, Task, TaskContext
from relviz.core.errors import RelvizError
from relviz.core.readers import InputKind, classify, folder_items
from relviz.core.trace import Trace
from relviz.pipeline import RunChoice, VideoSource

RESOURCES = Path(__file__).resolve().parents[2] / "resources"


def _sample_labels() -> dict[str, set[str]]:
    """Object labels per bundled sample (path relative to resources/), from ``resources/samples.json``."""
    try:
        files = json.loads((RESOURCES / "samples.json").read_text())["files"]
        return {name: {o["label"] for o in info.get("objects", [])} for name, info in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
#: the bundled models the app starts on, best first: the relation detector shows boxes and relations
#: on the bundled scenes (see the model cards in weights/ for each one's accuracy)
PREFERRED_DEMO_MODELS = ("demo-relation", "demo-regionfeat", "demo-detr")


# -- functions run in workers (no Qt) ----------------------------------------------------------------


def _zoo_listing(ctx: TaskContext) -> dict[str, Any]:
    ctx.progress(-1, "importing torch and the model zoo…")
    try:
        import relviz.zoo as zoo
    except ImportError as exc:
        raise RelvizError(f"the model zoo could not be imported ({exc}); traces (.npz) still open") from None
    from relviz.core.devices import available_devices

    entries = [
        {"name": e.name, "family": e.family, "description": e.description, "has_weights": e.has_weights}
        for e in zoo.models().values()
    ]
    from relviz.core.devices import resolve_device, supported_precisions

    devices = ["auto", *available_devices()]
    resolved = {d: resolve_device(d) for d in devices}
    precisions = {d: supported_precisions(dev) for d, dev in resolved.items()}
    by_family = {
        name: {d: family_precisions(fam, dev, precisions[d]) for d, dev in resolved.items()}
        for name, fam in zoo.families().items()
    }
    return {"zoo": entries, "devices": devices, "precisions": precisions, "family_precisions": by_family}


def family_precisions(family, device, fallback: list[str]) -> list[str]:
    """The precisions ``family`` supports on ``device``: the family's own answer where it gives one
    (``Family.supported_precisions``), else the device's; fp32 always comes first."""
    method = getattr(family, "supported_precisions", None)
    if not callable(method):
        return list(fallback)
    try:
        names = [str(n) for n in method(device)]
    except Exception:  # noqa: BLE001 — a family that cannot say offers what the device offers
        return list(fallback)
    names = [n for n in dict.fromkeys(names) if n in ("fp32", "fp16", "bf16")]
    return ["fp32", *[n for n in names if n != "fp32"]]


def _problem(path: Path, exc: BaseException) -> str:
    """One sentence for a path that cannot be used: a RelvizError's own, or what the system said."""
    if isinstance(exc, RelvizError):
        return str(exc)
    if isinstance(exc, OSError):
        reason = exc.strerror or type(exc).__name__
        if exc.errno == 40:  # ELOOP
            reason = "a symbolic link that points back to itself"
        return f"relviz cannot read {path}: {reason}"
    return f"relviz cannot open {path}: {exc}"


# -- the controller (UI thread) ----------------------------------------------------------------------


class Controller(QObject):
    def __init__(self, state: AppState, settings: Settings | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.state = state
        self.settings = settings
        self.runner = Runner(self)
        self.loaded = None  # relviz.zoo.LoadedModel
        self.zoo_ready = False
        self.zoo_ready_at: float | None = None
        self.video: VideoSource | None = None
        self.clip_length: int | None = None
        self._pending_loads = 0  # model loads (and a start-up waiting for the zoo listing) in flight
        self._load_requests = 0  # model loads asked for so far
        self._run_after_load = False
        self._frame_busy = False
        self._frame_pending: int | None = None
        self._play_t0 = 0.0
        self._play_f0 = 0
        self._generation = 0  # bumps when the input changes; results of older inputs are dropped
        self._shown_generation = -1  # the input generation whose model results are on screen
        self.results = 0  # results drawn
        self.started = False
        self._traces_opening = 0
        self._busy_names: list[str] = []  # tasks that show as "working" (frame steps do not)
        self.play_timer = QTimer(self)
        self.play_timer.timeout.connect(self._tick)
        self.shown_frames = 0
        self.dropped_frames = 0
        state.openRequested.connect(self.open_paths)
        state.loadModelRequested.connect(self.load_model)
        state.runRequested.connect(self.run)
        state.cancelRequested.connect(self.cancel)
        state.exportRequested.connect(self.export)
        state.playRequested.connect(self.play)
        state.selectionChanged.connect(self._on_selection)

    # -- bookkeeping ---------------------------------------------------------------------------------
    def _start(
        self,
        name: str,
        fn,
        *args,
        pool: str = "model",
        done=None,
        failed=None,
        cancelled=None,
        busy: bool = True,
        progress: bool = True,
        topic: str | None = None,
        request: int | None = None,
    ) -> Task:
        """Run ``fn`` in a worker; its failure and notes are messages on ``topic`` from ``request``
        (the current request when None), so they stay on screen by the rule in relviz.app.messages."""
        req = self.state.messages.request if request is None else request
        if busy:
            self._busy_names.append(name)
            self.state.set_busy(True, name)

        def finished() -> None:
            if not busy:
                return
            self._busy_names.remove(name)
            if self._busy_names:
                self.state.set_busy(True, self._busy_names[-1])
            else:
                self.state.set_busy(False)

        def on_failed(text: str) -> None:
            self.state.info(text, "error", topic, req)
            if failed is not None:
                failed(text)

        task = Task(name, fn, *args)
        return self.runner.start(
            task,
            pool,
            done=done,
            failed=on_failed,
            finished=finished,
            progress=(lambda p, t: self.state.progress.emit(p, t)) if progress else None,
            note=lambda text, level: self.state.info(text, level, topic, req),
            cancelled=lambda: (self.state.info(f"cancelled {name}", "info"), cancelled and cancelled()),
        )

    def idle(self) -> bool:
        """Nothing loading, running, decoding or exporting (the screenshot waits for this)."""
        return not self.runner.active and not self._loading and not self._frame_busy

    @property
    def _loading(self) -> bool:
        return self._pending_loads > 0

    def _load_finished(self, refused: bool = False) -> None:
        """A zoo listing or model load ended; a run asked for meanwhile happens now (or is dropped).

        After a ``refused`` load the previous model is not run again on an input whose results are
        already shown: nothing changed, and a re-run would look as if the new model had worked."""
        self._pending_loads = max(self._pending_loads - 1, 0)
        if refused and self._results_current():
            self._run_after_load = False
        if self._pending_loads == 0 and self._run_after_load:
            self._run_after_load = False
            if self.loaded is not None and self.state.source_path is not None and self.state.source_kind != "trace":
                self.run()

    def _results_current(self) -> bool:
        """The model's results for the input now open are on screen."""
        return self.state.trace is not None and self._shown_generation == self._generation

    def cancel(self) -> None:
        self.play(False)
        self.runner.cancel_all()
        self._frame_pending = None

    def shutdown(self) -> None:
        self.play_timer.stop()
        self.runner.wait(10000)
        if self.video is not None:
            self.video.close()
            self.video = None

    # -- start-up ------------------------------------------------------------------------------------
    def startup(self, paths: list[str], model: str | None = None, device: str | None = None) -> None:
        """Fill the model list at once, load the first model, open ``paths`` (or the demo scene).

        The model list comes from the zoo's plain data (:func:`relviz.zoo.catalog.cpu_listing`, no torch), so
        it is there with the window and the first model starts loading at once (its worker imports torch
        anyway).  The full listing, once torch is imported, only adds GPU devices and their precisions.  When
        the device (or precision) to start on is one only the full listing can confirm — a saved ``cuda:1``
        or ``fp16`` — the first model waits for it, as before."""
        self.started = True
        # one request: what start-up says about the paths and the model stays until the user acts
        req = self.state.begin_request()
        requested = self._load_requests
        if paths:
            self.open_paths(paths, req)
        else:
            demo = self._demo_scene()
            if demo is not None:
                self.open_paths([str(demo)], req)
        checkpoint_given = self._load_requests > requested  # a checkpoint among the paths is the model
        from relviz.zoo.catalog import cpu_listing

        self._apply_listing(cpu_listing())
        now = self._choice_known_without_torch(device)
        if now:
            self._start_initial_model(model, device, req, checkpoint_given, held=0)
        else:
            self._pending_loads += 1  # a run asked for meanwhile waits for the model chosen after the listing

        def done(info: dict[str, Any]) -> None:
            self.zoo_ready = True
            self.zoo_ready_at = time.time()
            self._apply_listing(info)
            if not now:
                self._start_initial_model(model, device, req, checkpoint_given, held=1)
                self._load_finished()

        def failed(text: str) -> None:
            if not now:
                self._load_finished()
            self.state.zooChanged.emit()

        self._start("listing devices", _zoo_listing, done=done, failed=failed, topic=MODEL, request=req)

    def _apply_listing(self, info: dict[str, Any]) -> None:
        """The model list, devices and precisions into the state (the catalog's first, the zoo's later)."""
        self.state.zoo = info["zoo"]
        self.state.devices = info["devices"]
        self.state.precisions_by_device = info["precisions"]
        self.state.precisions_by_family = info.get("family_precisions", {})
        if self.settings is not None:  # the Model panel preselects the last choice
            self.state.choice_hint = self.settings.model_choice()
        self.state.zooChanged.emit()

    def _choice_known_without_torch(self, device: str | None) -> bool:
        """Whether the device and precision to start on are ones the catalog's listing already offers."""
        saved = self.settings.model_choice() if self.settings else {}
        dev = device or saved.get("device") or "auto"
        if dev not in self.state.devices:
            return False
        precision = saved.get("precision") or "fp32"
        return device is not None or precision in self.state.precisions_by_device.get(dev, ["fp32"])

    def _start_initial_model(
        self, model: str | None, device: str | None, request: int, checkpoint_given: bool, held: int
    ) -> None:
        """Load the model asked for, the saved one or the best bundled demo; say so when there is none
        (``held``: the start-up's own count in the loads in flight)."""
        if checkpoint_given and model is None:
            return
        choice = self._initial_choice(model, device, request)
        if choice is not None:
            self.load_model(choice, request)
        elif model is None and self.loaded is None and self._pending_loads == held:
            trace_open = self._traces_opening > 0 or self.state.source_kind == "trace"
            self.state.info(
                "no model loaded: the bundled demo weights are not installed yet — choose a "
                "model (random weights) or open a checkpoint",
                "info" if trace_open else "warning",
                MODEL,
                request,
            )

    def _initial_choice(
        self, model: str | None, device: str | None, request: int | None = None
    ) -> dict[str, Any] | None:
        entries = {e["name"]: e for e in self.state.zoo}
        saved = self.settings.model_choice() if self.settings else {}
        dev = device or saved.get("device") or "auto"
        if dev not in self.state.devices:
            if device:
                self.state.info(
                    f"device {device!r} is not present here ({', '.join(self.state.devices)}); using auto",
                    "warning",
                    MODEL,
                    request,
                )
            dev = "auto"
        if model:
            entry = entries.get(model)
            if entry is None:
                self.state.info(
                    f"unknown model {model!r}; the zoo has: {', '.join(entries) or 'none'}", "error", MODEL, request
                )
                return None
            if not entry["has_weights"]:
                self.state.info(
                    f"{model} has no bundled weights: running it with seeded random weights "
                    "(open a checkpoint for trained ones)",
                    "warning",
                    MODEL,
                    request,
                )
            return {
                "name": model,
                "weights": "bundled" if entry["has_weights"] else "none",
                "device": dev,
                "precision": "fp32",
            }
        name = saved.get("name")
        if name in entries and entries[name]["has_weights"] and saved.get("weights") in ("bundled", ""):
            precision = saved.get("precision") or "fp32"
            if precision not in self.state.precisions_for(entries[name].get("family"), dev):
                precision = "fp32"  # saved for another device, or the family does not run it
            return {"name": name, "weights": "bundled", "device": dev, "precision": precision}
        bundled = [name for name, entry in entries.items() if entry["has_weights"]]
        for name in (*PREFERRED_DEMO_MODELS, *bundled):
            if name in bundled:
                return {"name": name, "weights": "bundled", "device": dev, "precision": "fp32"}
        return None

    @staticmethod
    def _demo_scene() -> Path | None:
        """The bundled detection scene the app opens on (the demo detectors' kind of input)."""
        if not RESOURCES.is_dir():
            return None
        images = []
        for path in sorted(RESOURCES.rglob("*")):
            with contextlib.suppress(RelvizError):
                if path.is_file() and classify(path) == InputKind.IMAGE:
                    images.append(path)
        scenes = [p for p in images if p.name.startswith("scene-")]
        # first a scene with an 'odd' object, the label the relation modules decide, when the samples say so
        labels = _sample_labels()
        scenes.sort(key=lambda p: "odd" not in labels.get(p.relative_to(RESOURCES).as_posix(), ()))
        return (scenes or images or [None])[0]

    # -- opening -------------------------------------------------------------------------------------
    def open_paths(self, paths: list[str], request: int | None = None) -> None:
        """Open what was dropped, chosen or given on the command line, through the one reader registry.

        Each path that cannot be opened gets its own message; the others open (one request: the
        messages of the bad ones stay while the good ones open)."""
        req = self.state.begin_request() if request is None else request
        items: list[Path] = []
        for raw in paths if isinstance(paths, (list, tuple)) else [paths]:
            path = Path(str(raw))
            try:
                kind = classify(path)
                if kind == InputKind.FOLDER:
                    items.extend(folder_items(path))
            except (RelvizError, OSError) as exc:
                self.state.info(_problem(path, exc), "error", INPUT, req)
                continue
            if kind == InputKind.CHECKPOINT:
                choice = {"name": None, "weights": str(path), "device": self._device_choice(), "precision": "fp32"}
                self.load_model(choice, req)
            elif kind == InputKind.TRACE:
                self._open_trace(path, req)
            elif kind != InputKind.FOLDER:
                items.append(path)
            if self.settings is not None:
                self.settings.add_recent(path)
        if items:
            self.state.set_items(items, 0)
            self.open_item(0, req)

    def _device_choice(self) -> str:
        if self.settings is not None:
            return self.settings.model_choice().get("device") or "auto"
        return "auto"

    def step_item(self, delta: int) -> None:
        n = len(self.state.items)
        if n > 1:
            self.open_item((self.state.item_index + delta) % n, self.state.begin_request())

    def open_item(self, index: int, request: int | None = None) -> None:
        req = self.state.begin_request() if request is None else request
        path = self.state.items[index]
        self.state.item_index = index
        self.state.itemsChanged.emit()
        self._generation += 1
        gen = self._generation
        self.play(False)
        try:
            kind = classify(path)
        except (RelvizError, OSError) as exc:  # gone, or unreadable, since the folder was listed
            self.state.info(_problem(path, exc), "error", INPUT, req)
            return
        if kind == InputKind.IMAGE:

            def done(image: np.ndarray) -> None:
                if gen != self._generation:
                    return
                self._close_video()
                self.state.set_image(image, path, "image")
                self.state.set_trace(None)
                self.state.select(frame=0)
                self.state.success(f"opened {path.name} ({image.shape[1]}×{image.shape[0]})", INPUT, req)
                if self.loaded is not None or self._loading:
                    self.run()
                else:
                    self.results += 1  # nothing more will come: the image is the result

            self._start(
                f"reading {path.name}", pipeline.read_image, str(path), pool="io", done=done, topic=INPUT, request=req
            )
        elif kind == InputKind.VIDEO:

            def done_video(result) -> None:
                video, first = result
                if gen != self._generation:
                    video.close()
                    return
                self._close_video()
                self.video = video
                self.state.video_frames = len(video.reader)
                self.state.video_fps = video.reader.fps
                self.state.set_image(first, path, "video")
                self.state.set_trace(None)
                self.state.select(frame=0)
                self.state.videoChanged.emit()
                n = len(video.reader)
                what = "1 frame" if n == 1 else f"{n} frames at {video.reader.fps:.3g} fps"
                self.state.success(f"opened {path.name}: {what}", INPUT, req)
                if self.loaded is not None or self._loading:
                    self.run()
                else:
                    self.results += 1

            name = f"opening {path.name}"
            self._start(name, pipeline.open_video, str(path), done=done_video, topic=INPUT, request=req)
        else:
            self.state.info(f"{path.name} is a {kind.value}, not an image or a video", "error", INPUT, req)

    def _close_video(self) -> None:
        if self.video is not None:
            # the model pool's thread may be reading it: close it there, after what is queued
            video = self.video
            self.video = None
            self.runner.start(Task("closing a video", lambda ctx: video.close()), "model")
        if self.state.video_frames:
            self.state.video_frames = 0
            self.state.videoChanged.emit()

    def _open_trace(self, path: Path, request: int | None = None) -> None:
        req = self.state.begin_request() if request is None else request
        self._generation += 1
        gen = self._generation
        self._traces_opening += 1

        def failed(text: str) -> None:
            self._traces_opening -= 1

        def done(result) -> None:
            self._traces_opening -= 1
            if gen != self._generation:
                return
            trace, image = result
            self._close_video()
            self.state.set_image(image, path, "trace")
            self.state.set_trace(trace)
            self.results += 1
            self.state.success(
                f"opened trace {path.name} ({trace.family or 'unknown family'}, {len(trace.names())} tensors)",
                INPUT,
                req,
            )

        name = f"reading {path.name}"
        self._start(name, pipeline.load_trace, str(path), pool="io", done=done, failed=failed, topic=INPUT, request=req)

    # -- model ---------------------------------------------------------------------------------------
    def load_model(self, choice: dict[str, Any], request: int | None = None) -> None:
        """Load a zoo model or a checkpoint in the model worker, then run it on what is open.

        A load that is refused leaves the previous model loaded, its results on screen and not re-run;
        the error stays, and the status bar and the Model panel say which model is still loaded."""
        req = self.state.begin_request() if request is None else request
        self._pending_loads += 1
        self._load_requests += 1
        if self.state.image is not None and self.state.source_kind != "trace":
            self._run_after_load = True

        def done(loaded) -> None:
            self.loaded = loaded
            weights = loaded.weights
            self.state.model = ModelInfo(
                loaded.name,
                weights,
                str(loaded.device),
                str(loaded.dtype)
                .replace("torch.", "")
                .replace("float32", "fp32")
                .replace("bfloat16", "bf16")
                .replace("float16", "fp16"),
                loaded.family.name,
            )
            self.state.model_note = ""
            if loaded.default_threshold is not None:  # a bundled model opens at its card's threshold
                self.state.threshold = loaded.default_threshold
            self.state.modelChanged.emit()
            self.state.success(f"loaded {self.state.model.describe()}", MODEL, req)
            if self.settings is not None:
                self.settings.save_model_choice(
                    {
                        "name": loaded.name if weights in ("none", "bundled") else "",
                        "weights": weights,
                        "device": choice.get("device") or "auto",
                        "precision": choice.get("precision") or "fp32",
                    }
                )
            self._load_finished()

        def failed(text: str) -> None:
            if self.loaded is not None:
                weights = choice.get("weights")
                what = Path(str(weights)).name if weights not in (None, "bundled", "none") else choice.get("name")
                what = what or "the model"
                self.state.model_note = f"{what} was refused; the previous model is still loaded"
                self.state.modelChanged.emit()
                self.state.info(f"{what} was refused; still loaded: {self.state.model.describe()}", "info", MODEL, req)
            self._load_finished(refused=True)

        self._start(
            "loading the model", pipeline.load_model, dict(choice), done=done, failed=failed, topic=MODEL, request=req
        )

    def run(self) -> None:
        """Run the model on the current image or video frame."""
        req = self.state.begin_request()
        if self.loaded is None:
            if self._loading:
                self._run_after_load = True
                return
            self.state.info(
                "no model loaded: choose a model and press Load model, or open a checkpoint", "warning", MODEL, req
            )
            return
        path = self.state.source_path
        if path is None or self.state.source_kind == "trace":
            self.state.info("open an image or a video to run the model on", "warning", INPUT, req)
            return
        if self.state.source_kind == "video":
            self.request_frame(self.state.sel.frame)
            return
        gen = self._generation

        def done(trace: Trace) -> None:
            if gen != self._generation:
                return
            if trace.image is not None and self.state.image is None:
                self.state.set_image(trace.image, path, "image")
            self.state.set_trace(trace)
            self._shown_generation = gen
            self.results += 1
            n = len(trace["detections/boxes"]) if "detections/boxes" in trace else 0
            self.state.success(
                f"{self.loaded.name} on {path.name}: {n} detections"
                if "detections/boxes" in trace
                else f"{self.loaded.name} on {path.name}: done",
                RUN,
                req,
            )
            self._sync_device_info()

        def failed(text: str) -> None:
            self.results += 1

        self._start(
            f"running {self.loaded.name}",
            pipeline.run_image,
            self.loaded,
            str(path),
            self.run_choice(),
            done=done,
            failed=failed,
            topic=RUN,
            request=req,
        )

    def run_choice(self) -> RunChoice:
        return RunChoice(float(self.state.threshold), self.state.resize)

    def _sync_device_info(self) -> None:
        if self.loaded is not None and str(self.loaded.device) != self.state.model.device:
            self.state.model.device = str(self.loaded.device)
            self.state.model.precision = "fp32"
            self.state.modelChanged.emit()

    # -- video ---------------------------------------------------------------------------------------
    def _on_selection(self, changed: frozenset) -> None:
        if "frame" in changed and self.state.source_kind == "video" and self.video is not None:
            self.request_frame(self.state.sel.frame)

    def request_frame(self, index: int) -> None:
        """Decode (and run on) frame ``index``; while a frame is in flight only the latest request waits."""
        if self.video is None:
            return
        if self._frame_busy:
            if self._frame_pending is not None:
                self.dropped_frames += 1
            self._frame_pending = index
            return
        self._frame_busy = True
        gen = self._generation

        def done(result) -> None:
            index, image, trace, note, frames = result
            if note:  # the file ends early, or the GPU ran out of memory and the model moved to the CPU
                self.state.info(note, "warning", INPUT if image is None else MODEL)
                self._sync_device_info()
            if image is None:  # the file ends early: shrink the timeline and show its last frame
                self.play(False)
                self._frame_pending = None
                self._frame_busy = False
                if gen == self._generation and frames:
                    self.state.video_frames = frames
                    self.state.videoChanged.emit()
                    self.state.select(frame=frames - 1)
                return
            if gen == self._generation:
                self.state.set_image(image, self.state.source_path, "video")
                if trace is not None:
                    self.state.set_trace(trace, follow=self.state.trace is not None)
                    self._shown_generation = gen
                self.results += 1
                self.shown_frames += 1
            self._next_frame()

        def failed(text: str) -> None:
            self.play(False)
            self._frame_pending = None
            self.results += 1
            if gen == self._generation and self.loaded is not None:
                self._show_frame_only(index, gen)  # the canvas shows the frame the timeline shows
            self._next_frame()

        self._start(
            f"frame {index}",
            pipeline.video_step,
            self.video,
            index,
            self.loaded,
            self.run_choice(),
            self.clip_length,
            done=done,
            failed=failed,
            cancelled=lambda: self._next_frame(),
            busy=False,
            progress=False,
            topic=RUN,
        )

    def _show_frame_only(self, index: int, gen: int) -> None:
        """Decode frame ``index`` without the model (its run failed): the frame is shown, no stale result."""
        video = self.video

        def done(result) -> None:
            if gen == self._generation and result.image is not None and self.state.sel.frame == index:
                self.state.set_image(result.image, self.state.source_path, "video")
                self.state.set_trace(None)

        if video is not None:
            self._start(
                f"frame {index}", pipeline.video_step, video, index, None, self.run_choice(), None,
                done=done, busy=False, progress=False, topic=RUN,
            )

    def _next_frame(self) -> None:
        self._frame_busy = False
        if self._frame_pending is not None:
            index, self._frame_pending = self._frame_pending, None
            self.request_frame(index)

    def play(self, on: bool) -> None:
        if on and (self.video is None or not self.state.video_frames):
            return
        if on == self.state.playing:
            return
        self.state.playing = on
        if on:
            if self.state.sel.frame >= self.state.video_frames - 1:
                self.state.select(frame=0)
            self._play_t0 = time.perf_counter()
            self._play_f0 = self.state.sel.frame
            self.play_timer.start(max(15, int(1000 / min(self.state.video_fps or 25, 60))))
        else:
            self.play_timer.stop()
        self.state.videoChanged.emit()

    def _tick(self) -> None:
        """Real-time playback: the frame due now; frames inference cannot keep up with are skipped."""
        due = self._play_f0 + int((time.perf_counter() - self._play_t0) * (self.state.video_fps or 25))
        last = self.state.video_frames - 1
        if due >= last:
            self.state.select(frame=last)
            self.play(False)
            return
        if due != self.state.sel.frame:
            self.state.select(frame=due)

    # -- export --------------------------------------------------------------------------------------
    def export(self, kind: str, options: dict[str, Any]) -> None:
        req = self.state.begin_request()
        trace = self.state.trace
        path = options.get("path", "")
        if kind in ("figure", "trace") and trace is None:
            self.state.info("nothing to export yet: run a model or open a trace first", "warning", EXPORT, req)
            return
        try:
            from relviz.core.atomic import check_writable

            check_writable(path)
        except (RelvizError, OSError) as exc:
            self.state.info(_problem(Path(str(path)), exc), "error", EXPORT, req)
            return
        if self.settings is not None:
            self.settings.save_export_dir(str(Path(path).parent))

        def wrote(p: str) -> None:
            self.state.success(f"wrote {p}", EXPORT, req)

        name = f"exporting {Path(path).name}"
        if kind == "figure":
            args = (trace, options, self.state.sel, self._recipe_input())
            self._start(name, exporting.export_figure, *args, pool="io", done=wrote, topic=EXPORT, request=req)
        elif kind == "trace":
            self._start(name, exporting.export_trace, trace, path, pool="io", done=wrote, topic=EXPORT, request=req)
        elif kind == "video":
            if self.state.source_kind != "video" or self.state.source_path is None:
                self.state.info("export video needs an open video", "warning", EXPORT, req)
                return
            self.play(False)
            args = (str(self.state.source_path), path, self.loaded, self.run_choice(), self.state.sel, options)
            self._start(name, exporting.export_video, *args, done=wrote, topic=EXPORT, request=req)
        else:
            self.state.info(f"unknown export kind {kind!r}", "error", EXPORT, req)

    def _recipe_input(self) -> dict[str, Any]:
        """Where the shown trace came from, for the export recipe."""
        st = self.state
        if st.source_kind == "trace" and st.source_path is not None:
            return {"trace": str(st.source_path)}
        info = st.model
        bundled_or_random = info.weights in ("bundled", "none")
        return {
            "model": info.name if bundled_or_random else None,
            "weights": None if info.weights == "bundled" else (info.weights or None),
            "family": info.family or None,
            "input": str(st.source_path.resolve()) if st.source_path else None,
            "device": info.device or "auto",
            "precision": info.precision or "fp32",
            "threshold": float((st.trace.meta.get("threshold") if st.trace else None) or st.threshold),
            "resize": st.resize,
            "frame": int(st.sel.frame),
        }
