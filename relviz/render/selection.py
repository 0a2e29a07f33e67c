"""Checking a figure's selection against the trace: objects, layers, heads, points."""

from __future__ import annotations

import numpy as np

from relviz.core.errors import BadInputError
from relviz.core.grid import check_point
from relviz.core.trace import Trace


def detection_count(trace: Trace) -> int:
    return int(len(trace.arrays.get("detections/scores", ())))


def check_object(trace: Trace, index: int | None) -> int | None:
    """``index`` if it names a detection, None if not given; a sentence when it is out of range."""
    if index is None:
        return None
    n = detection_count(trace)
    if not 0 <= index < n:
        valid = f"0..{n - 1}" if n else "none: the trace has no detections"
        raise BadInputError(f"--object {index} is out of range; the trace has {n} detections ({valid})")
    return index


def layer_index(layer: str | int | None, count: int, what: str = "layer") -> int:
    """A layer given as an index (negative counts from the end) or None for the last one."""
    if layer is None or layer == "":
        return count - 1
    try:
        i = int(layer)
    except (TypeError, ValueError):
        raise BadInputError(f"{what} {layer!r} does not exist; valid {what}s: 0..{count - 1}") from None
    if not -count <= i < count:
        raise BadInputError(f"{what} {i} does not exist; valid {what}s: 0..{count - 1}")
    return i % count


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
    return values.mean(axis=axis) if head is None else np.take(values, head, axis=axis)


def checked_points(trace: Trace, points) -> list[tuple[float, float]]:
    points = list(points or [])
    for p in points:
        check_point(p, trace.image_size)
    return points


def captions(trace: Trace) -> list[str]:
    labels = trace.meta.get("labels") or []
    out = []
    for i, (label, score) in enumerate(zip(trace.arrays.get("detections/labels", ()),
                                           trace.arrays.get("detections/scores", ()))):
        name = labels[int(label)] if 0 <= int(label) < len(labels) else f"class {int(label)}"
        out.append(f"{i}: {name} {float(score):.2f}")
    return out
