"""Run a model on an image or a video: frames, sliding clips, and the GPU → CPU fallback.  No Qt.

The window (``relviz.app``), its video export and the command line's export run models through these
functions, so a frame of a video is the same trace wherever it is drawn.

Every function that does work takes a *reporter* first: any object with ``note(text, level)`` (and,
optionally, ``progress(percent, text)`` and ``check()`` for cancellation), or None.  The application's
``TaskContext`` is one, so the functions run in its workers as they are.

**Clips.**  A clip model (``Family.input_kind == "clip"``, e.g. the space-time Non-local networks) sees
``T`` frames at once.  On a video of ``n`` frames, frame ``t`` is shown with the clip that covers it,
sliding, and held at the ends (:func:`clip_window`)::

    start = clamp(t − T // 2, 0, n − T)          frames start … start + T − 1

so every frame of the video has a result, frame ``t`` sits in the middle of its clip where it can, and
consecutive frames share ``T − 1`` decoded frames (kept by :class:`VideoSource`).  A video shorter than
``T`` runs as the clip of all its frames; a one-frame video as a still (its frame repeated ``T`` times),
as :func:`relviz.zoo.inputs.read_inputs` runs one.  The trace's ``meta.input`` says what was used:
``frame`` (the clip's first frame), ``frame_indices`` (every frame of the clip), ``clip_length`` and
``shown_frame`` (the frame the result is shown on).

**Imports.**  torch and the zoo are imported inside the functions that run a model: importing this
module costs nothing a window could notice (layers: ``pipeline → zoo → models → core``).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np

from relviz.core.errors import BadInputError, RelvizError
from relviz.core.trace import Trace

if TYPE_CHECKING:
    from relviz.core.video import VideoReader
    from relviz.zoo import LoadedModel

#: the clip length of a clip model whose config does not say (the Non-local papers' 8-frame clips)
DEFAULT_CLIP_LENGTH = 8


class Reporter(Protocol):
    """Where a running function reports: notes for the user (``level``: info, warning, error)."""

    def note(self, text: str, level: str = "warning") -> None: ...


def _note(report: Reporter | None, text: str, level: str = "warning") -> None:
    if report is not None:
        report.note(text, level)


def _progress(report: Reporter | None, percent: float, text: str) -> None:
    fn = getattr(report, "progress", None)
    if callable(fn):
        fn(percent, text)


# -- models and devices ------------------------------------------------------------------------------


def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` says a device ran out of memory (torch's ``OutOfMemoryError`` or its message)."""
    text = str(exc).lower()
    return "out of memory" in text or type(exc).__name__ == "OutOfMemoryError"


def load_model(report: Reporter | None, choice: dict[str, Any]) -> LoadedModel:
    """Load what ``choice`` names (``name``, ``weights`` — 'bundled', 'none' or a path —, ``family``,
    ``device``, ``precision``); a GPU that runs out of memory loading it is retried on the CPU in fp32."""
    _progress(report, -1, "loading the model…")
    import relviz.zoo as zoo

    kwargs = dict(
        name=choice.get("name") or None,
        weights=choice.get("weights"),
        family=choice.get("family"),
        device=choice.get("device") or "auto",
        precision=choice.get("precision") or "fp32",
    )
    if kwargs["weights"] == "bundled":
        kwargs["weights"] = None
    try:
        return zoo.load_model(**kwargs)
    except Exception as exc:  # noqa: BLE001 — only GPU memory exhaustion is retried, on the CPU
        if not is_oom(exc) or kwargs["device"] == "cpu":
            raise
        _note(report, f"the GPU ran out of memory loading the model; fell back to the CPU ({exc})")
        return zoo.load_model(**{**kwargs, "device": "cpu", "precision": "fp32"})


def move_to_cpu(loaded: LoadedModel) -> None:
    """Move a loaded model to the CPU in fp32 (after the GPU ran out of memory), freeing the GPU's cache."""
    import torch

    loaded.module.to(device="cpu", dtype=torch.float32)
    loaded.device, loaded.dtype = torch.device("cpu"), torch.float32
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@dataclass(frozen=True)
class RunChoice:
    """The user's run settings, handed to workers by value."""

    threshold: float | None = None  # None: the model's default (its card's score threshold)
    resize: int | None = None  # shorter side; None = the family's default, 0 = keep the size


def _with_cpu_fallback(report: Reporter | None, loaded: LoadedModel, run) -> Trace:
    """``run()``; when the GPU runs out of memory, once more on the CPU (the model moves there for good)."""
    try:
        return run()
    except Exception as exc:  # noqa: BLE001
        if not is_oom(exc) or loaded.device.type == "cpu":
            raise
        _note(report, f"the GPU ran out of memory; fell back to the CPU for {loaded.name}")
        move_to_cpu(loaded)
        return run()


def run_image(report: Reporter | None, loaded: LoadedModel, path: str | Path, run: RunChoice) -> Trace:
    """Run ``loaded`` on the image (or a video's first frame or clip) at ``path``."""
    _progress(report, -1, f"running {loaded.name} on {Path(path).name}…")
    import relviz.zoo as zoo

    options = zoo.RunOptions(threshold=run.threshold, resize=run.resize)
    return name_classes(_with_cpu_fallback(report, loaded, lambda: zoo.run_model(loaded, path, options)))


def run_frames(loaded: LoadedModel, frames: list[np.ndarray], source: dict[str, Any], run: RunChoice) -> Trace:
    """Run ``loaded`` on already decoded ``frames`` (one image, or a clip) as ``zoo.run_model`` would on
    a file; ``source`` is the input's identity recorded in ``meta.input``."""
    import torch

    import relviz.zoo as zoo

    options = zoo.RunOptions(
        threshold=run.threshold,
        resize=run.resize,
        frame=int(source.get("frame", 0) or 0),
        clip_length=len(frames) if loaded.family.input_kind == "clip" else None,
    )
    options = zoo.with_default_threshold(loaded, options)
    with torch.inference_mode():
        trace = loaded.family.run(loaded, frames, source, options)
    trace.meta.setdefault("model", loaded.describe())
    return name_classes(trace)


def name_classes(trace: Trace) -> Trace:
    """Give a 1000-class trace whose labels are only numbers ('class 564') the ImageNet-1k class names."""
    from relviz.core.class_names import display_labels

    labels = trace.meta.get("labels")
    named = display_labels(labels)
    if named is not labels:
        trace.meta["labels"] = named
    return trace


# -- videos ------------------------------------------------------------------------------------------


class TruncatedVideo(BadInputError):
    """A frame past the end of what a cut-short file decodes; ``frames`` is how many do."""

    def __init__(self, message: str, frames: int):
        super().__init__(message)
        self.frames = frames


class VideoSource:
    """A video opened once, read by one thread at a time, with the last few decoded frames kept.

    ``cache`` frames are kept (least recently used dropped first), so the sliding clips of consecutive
    frames decode one new frame each; :func:`video_step` raises it to a clip's length.
    """

    def __init__(self, path: str | Path, cache: int = 1):
        from relviz.core.video import VideoReader

        self.path = Path(path)
        self.reader: VideoReader = VideoReader(self.path)
        self.cache = max(int(cache), 1)
        self._frames: OrderedDict[int, np.ndarray] = OrderedDict()
        self._decodable: int | None = None

    def __len__(self) -> int:
        """The frames the file has: as many as decode once that was counted, else what the header says."""
        return self._decodable if self._decodable is not None else len(self.reader)

    @property
    def fps(self) -> float:
        return self.reader.fps

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` (RGB), or :class:`TruncatedVideo` past the last frame that decodes."""
        image = self._frames.get(index)
        if image is not None:
            self._frames.move_to_end(index)
            return image
        image = self.reader.read(index)
        if image is None:
            n = self.decodable()
            raise TruncatedVideo(
                f"frame {index} of {self.path.name} cannot be decoded: the file is cut short and decodes "
                f"{n} of the {len(self.reader)} frames its header promises",
                n,
            )
        image.setflags(write=False)  # shared by the cache and the window
        self._frames[index] = image
        while len(self._frames) > self.cache:
            self._frames.popitem(last=False)
        return image

    def decodable(self) -> int:
        """How many frames really decode, counted once, sequentially (> 1,000 frames/s)."""
        if self._decodable is None:
            import cv2

            cap = cv2.VideoCapture(str(self.path))
            n = 0
            while cap.grab():
                n += 1
            cap.release()
            self._decodable = n
        return self._decodable

    def close(self) -> None:
        self._frames.clear()
        self.reader.close()


def clip_window(index: int, frames: int, length: int) -> tuple[int, int]:
    """(start, length) of the clip that shows frame ``index`` of a video of ``frames`` frames.

    The clip slides with the frame, ``index`` in its middle (position ``length // 2``), and stops at
    the ends: ``start = clamp(index − length // 2, 0, frames − length)``.  A video shorter than
    ``length`` gives the clip of all its frames.
    """
    if frames < 1:
        raise BadInputError("the video has no frames to run a clip on")
    if not 0 <= index < frames:
        raise BadInputError(f"frame {index} is outside the video's {frames} frames (0 to {frames - 1})")
    length = min(max(int(length), 1), frames)
    start = min(max(index - length // 2, 0), frames - length)
    return start, length


def clip_length_of(loaded: LoadedModel, clip_length: int | None = None) -> int:
    """The clip length to run ``loaded`` with: the one given, else its config's, else 8."""
    from relviz.core.video import check_clip_options

    length = clip_length or loaded.config.get("clip_length") or DEFAULT_CLIP_LENGTH
    return check_clip_options(int(length), 1)[0]


class FrameResult(NamedTuple):
    """One step of a video: the frame shown, its trace, a note for the user, and (past the end of a
    cut-short file, where ``image`` is None) how many frames decode."""

    index: int
    image: np.ndarray | None
    trace: Trace | None
    note: str
    frames: int | None


def _clip_frames(video: VideoSource, index: int, length: int) -> tuple[int, list[np.ndarray]]:
    """(start, frames) of the clip that covers ``index``; a cut-short file shortens the video it sees."""
    n = len(video)
    for _ in range(2):
        start, used = clip_window(index, n, length)
        try:
            return start, [video.frame(start + i) for i in range(used)]
        except TruncatedVideo as exc:
            if exc.frames <= index or exc.frames == n:
                raise
            n = exc.frames  # the file decodes fewer frames than its header says: slide within those
    raise AssertionError("unreachable")


def video_step(
    report: Reporter | None,
    video: VideoSource,
    index: int,
    loaded: LoadedModel | None,
    run: RunChoice,
    clip_length: int | None = None,
) -> FrameResult:
    """Decode frame ``index`` and run ``loaded`` on it (an image model) or on the clip that covers it
    (a clip model, :func:`clip_window`); without a model only the frame is decoded.

    Past the end of a cut-short file the result has no image and says how many frames decode.  A GPU
    that runs out of memory moves the model to the CPU for good and the note says so.
    """
    try:
        image = video.frame(index)
    except TruncatedVideo as exc:
        if exc.frames == 0:
            raise
        return FrameResult(index, None, None, f"{exc}; the timeline now ends at frame {exc.frames - 1}", exc.frames)
    if loaded is None:
        return FrameResult(index, image, None, "", None)
    source: dict[str, Any] = {
        "path": str(video.path),
        "kind": "video",
        "frame": index,
        "shown_frame": index,
        "size": [image.shape[1], image.shape[0]],
        "fps": video.fps,
        "stride": 1,
    }
    frames = [image]
    if loaded.family.input_kind == "clip":
        length = clip_length_of(loaded, clip_length)
        video.cache = max(video.cache, length + 1)
        start, frames = _clip_frames(video, index, length)
        source["frame"] = start
        if len(video) == 1:
            source["still"] = True  # one frame: the family repeats it into a still clip
    note = ""

    def attempt() -> Trace:
        return run_frames(loaded, frames, source, run)

    try:
        trace = attempt()
    except Exception as exc:  # noqa: BLE001
        if not is_oom(exc) or loaded.device.type == "cpu":
            raise
        move_to_cpu(loaded)
        note = "the GPU ran out of memory; fell back to the CPU"
        trace = attempt()
    trace.meta.setdefault("input", {})["shown_frame"] = index
    return FrameResult(index, image, trace, note, None)


# -- opening inputs ----------------------------------------------------------------------------------


def read_image(report: Reporter | None, path: str | Path) -> np.ndarray:
    """The image at ``path`` (RGB), refused from its header when over the pixel limit."""
    from relviz.core.images import read_image as read

    return read(path)


def open_video(report: Reporter | None, path: str | Path) -> tuple[VideoSource, np.ndarray]:
    """The video at ``path``, opened, and its first frame."""
    video = VideoSource(Path(path))
    try:
        return video, video.frame(0)
    except BaseException:
        video.close()
        raise


def load_trace(report: Reporter | None, path: str | Path) -> tuple[Trace, np.ndarray]:
    """A saved trace and the image to show it on: its own, else re-read from its input, else grey."""
    trace = name_classes(Trace.load(path))
    image = trace.image
    if image is None:
        src = trace.meta.get("input", {}).get("path")
        if src and Path(src).is_file():
            from relviz.core.images import read_image as read
            from relviz.core.readers import InputKind, classify

            with contextlib.suppress(RelvizError):
                if classify(src) == InputKind.IMAGE:
                    image = read(src)
                else:
                    info = trace.meta.get("input", {})
                    video = VideoSource(Path(src))
                    try:
                        image = video.frame(int(info.get("shown_frame", info.get("frame", 0)) or 0))
                    finally:
                        video.close()
    if image is None:
        try:
            w, h = trace.image_size
        except (KeyError, TypeError, ValueError):
            w, h = 640, 480
        image = np.full((h, w, 3), 40, np.uint8)
    return trace, image
