"""One rule for each part of a selection, shared by the window and the figures.

- **layers**: an index (negative counts from the end) or a name; nothing means the last layer.  The window
  clamps what it is given (:func:`clamp_layer`); a figure refuses what does not exist (:func:`layer_index`,
  :func:`named_layer`) — the same layer either way when it exists;
- **heads**: ``None`` (or ``'mean'``) is the mean over heads, else one head (:func:`select_head`);
- **relation modules**: in the network's order (fc1, fc2, then the duplicate-removal module ``nms``), the
  default being the first (fc1) in the window and in ``relviz export`` alike (:func:`default_module`);
- **detections**: named ``d<i> <class>`` wherever they are drawn (:func:`detection_label`), the class from
  the trace's class names, else ``class <n>``.
"""

from __future__ import annotations

import re

import numpy as np

from relviz.core.errors import BadInputError
from relviz.core.grid import check_point
from relviz.core.trace import Trace

NMS_MODULE = "nms"


# -- detections ----------------------------------------------------------------------------------------
def detection_count(trace: Trace | None) -> int:
    if trace is None:
        return 0
    return int(len(trace.arrays.get("detections/scores", trace.arrays.get("detections/boxes", ()))))


def check_object(trace: Trace, index: int | None) -> int | None:
    """``index`` if it names a detection, None if not given; a sentence when it is out of range."""
    if index is None:
        return None
    n = detection_count(trace)
    if not 0 <= index < n:
        valid = f"0..{n - 1}" if n else "none: the trace has no detections"
        raise BadInputError(f"--object {index} is out of range; the trace has {n} detections ({valid})")
    return index


def class_names(trace: Trace | None) -> list[str]:
    """The trace's class names (``meta.labels`` and its older spellings), [] when it has none."""
    if trace is None:
        return []
    for key in ("labels", "class_names", "classes"):
        value = trace.meta.get(key)
        if isinstance(value, list) and value:
            return [str(v) for v in value]
    model = trace.meta.get("model")
    if isinstance(model, dict) and isinstance(model.get("class_names"), list):
        return [str(v) for v in model["class_names"]]
    return []


def label_text(trace: Trace | None, label: int, names: list[str] | None = None) -> str:
    names = class_names(trace) if names is None else names
    return names[int(label)] if 0 <= int(label) < len(names) else f"class {int(label)}"


def detection_labels(trace: Trace | None) -> list[str]:
    """``d<i> <class>`` of every detection: how the canvas, the matrices, the bars and the figures name it."""
    if trace is None or "detections/labels" not in trace:
        return [f"d{i}" for i in range(detection_count(trace))]
    names = class_names(trace)
    return [f"d{i} {label_text(trace, int(lab), names)}" for i, lab in enumerate(trace["detections/labels"])]


def detection_label(trace: Trace | None, index: int) -> str:
    labels = detection_labels(trace)
    return labels[index] if 0 <= index < len(labels) else f"d{index}"


def captions(trace: Trace | None) -> list[str]:
    """``d<i> <class> <score>`` of every detection (box captions)."""
    scores = trace.arrays.get("detections/scores", ()) if trace is not None else ()
    return [f"{lab} {float(s):.2f}" for lab, s in zip(detection_labels(trace), scores, strict=False)]


# -- layers, heads, frames, points ---------------------------------------------------------------------
def clamp_layer(count: int, layer: int) -> int:
    """``layer`` (negative counts from the end) clamped into 0..count−1: the window's rule."""
    if count <= 0:
        return 0
    if layer < 0:
        layer = count + layer
    return min(max(layer, 0), count - 1)


def layer_index(layer: str | int | None, count: int, what: str = "layer") -> int:
    """A layer given as an index (negative counts from the end) or None for the last one; a sentence when it
    does not exist: the figures' rule (the same layer as :func:`clamp_layer` whenever it exists)."""
    if layer is None or layer == "":
        return count - 1
    try:
        i = int(layer)
    except (TypeError, ValueError):
        raise BadInputError(f"{what} {layer!r} does not exist; valid {what}s: 0..{count - 1}") from None
    if not -count <= i < count:
        raise BadInputError(f"{what} {i} does not exist; valid {what}s: 0..{count - 1}")
    return i % count


def named_layer(value: str | int | None, names: list[str], what: str = "layer", plural: str = "layers") -> str:
    """A layer (or block) given by name or by index into ``names`` (negative from the end); None = the last."""
    if value is None or value == "":
        return names[-1]
    if str(value) in names:
        return str(value)
    try:
        i = int(value)
    except (TypeError, ValueError):
        i = None
    if i is not None and -len(names) <= i < len(names):
        return names[i]
    shown = ", ".join(names[:20]) + (", …" if len(names) > 20 else "")
    raise BadInputError(f"{what} {value!r} does not exist; valid {plural}: {shown} (or an index 0..{len(names) - 1})")


def head_selection(head: str | int | None, count: int) -> int | None:
    """None for the head mean, else a valid head index."""
    if head is None or str(head).lower() in ("mean", "avg", "m", ""):
        return None
    try:
        h = int(head)
    except (TypeError, ValueError):
        raise BadInputError(f"head {head!r} is neither 'mean' nor an index 0..{count - 1}") from None
    if not 0 <= h < count:
        raise BadInputError(f"head {h} does not exist; valid heads: 0..{count - 1} or mean")
    return h


def select_head(values: np.ndarray, head: int | None, axis: int = 0) -> np.ndarray:
    """One head of ``values`` (clamped into range), or the mean over heads for None."""
    values = np.asarray(values)
    if head is None:
        return values.mean(axis=axis)
    return np.take(values, min(max(int(head), 0), values.shape[axis] - 1), axis=axis)


def checked_points(trace: Trace, points) -> list[tuple[float, float]]:
    points = list(points or [])
    for p in points:
        check_point(p, trace.image_size)
    return points


def check_frame(trace: Trace, frame: int | None, frames: int) -> int:
    """The clip position (0..frames−1) of ``frame``: a video frame number the clip holds, else a clip index."""
    if frame is None:
        return 0
    info = trace.meta.get("input", {})
    indices = list(info.get("frame_indices") or [])
    if indices and frame in indices and info.get("kind") == "video":
        return indices.index(frame)
    if 0 <= frame < frames:
        return int(frame)
    held = f"; it holds video frames {', '.join(map(str, indices[:12]))}{'…' if len(indices) > 12 else ''}" if (
        indices and info.get("kind") == "video") else ""
    raise BadInputError(f"frame {frame} is not in this trace: give a clip position 0..{frames - 1}{held}")


def clip_position(trace: Trace, frame: int, frames: int) -> int:
    """The clip position of video frame (or clip index) ``frame``, clamped: the window's rule."""
    info = trace.meta.get("input", {})
    indices = list(info.get("frame_indices") or [])
    if indices and frame in indices:
        return indices.index(frame)
    if indices and info.get("kind") == "video":  # the nearest frame the clip holds
        return int(np.argmin(np.abs(np.asarray(indices) - frame)))
    return min(max(int(frame), 0), max(frames - 1, 0))


# -- relation modules ----------------------------------------------------------------------------------
def _natural(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def relation_modules(trace: Trace | None) -> list[str]:
    """The relation modules (``relation/<module>/weight``) in the network's order: fc1, fc2, …, then nms."""
    if trace is None:
        return []
    found = {n.split("/")[1] for n in trace.names() if n.startswith("relation/") and n.endswith("/weight")
             and n.count("/") == 2}
    return sorted(found, key=lambda m: (m == NMS_MODULE, _natural(m)))


def default_module(modules: list[str]) -> str | None:
    """The module shown when none is chosen: the first of the head (fc1), the duplicate removal last."""
    head = [m for m in modules if m != NMS_MODULE]
    return head[0] if head else (modules[0] if modules else None)
