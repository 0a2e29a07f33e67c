"""Checking a figure's selection against the trace: objects, layers, heads, points, frames, and the
options every view shares (colormap, top-k, size, the ``--set`` settings a view declares)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from relviz.core import limits
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


# -- options every view shares, and the --set settings each view declares --------------------------------
@dataclass(frozen=True)
class Setting:
    """A ``--set KEY=VALUE`` a view understands: its type, its choices or range, and what it does."""

    kind: type  # str, int or float
    help: str
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None

    def describe(self, key: str) -> str:
        if self.choices:
            return f"{key}={'|'.join(self.choices)}"
        return f"{key}=<{'integer' if self.kind is int else 'number'}>"

    def parse(self, key: str, value: Any) -> Any:
        """The checked value, or a sentence saying what ``--set key=…`` takes."""
        if self.kind is str:
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                choices = ", ".join(self.choices)
                raise BadInputError(f"--set {key}={_shown(value)} is not valid; {key} is one of {choices}")
            return value
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if self.kind is int and not (number and float(value).is_integer()):
            raise BadInputError(f"--set {key}={_shown(value)} is not valid; {key} takes an integer ({self.help})")
        if not number or not math.isfinite(value):
            raise BadInputError(f"--set {key}={_shown(value)} is not valid; {key} takes a finite number ({self.help})")
        value = self.kind(value)
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise BadInputError(f"--set {key}={value:g} is out of range; {key} takes {self.low:g}..{self.high:g}")
        return value


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:39] + "…"


def check_settings(view: str, extra: dict[str, Any] | None, settings: dict[str, Setting]) -> dict[str, Any]:
    """The ``--set`` values of ``view``, each checked; a key the view does not know is refused by name."""
    if extra is None:
        return {}
    if not isinstance(extra, dict):
        raise BadInputError(f"the view settings must be KEY=VALUE pairs, not {_shown(extra)}")
    out = {}
    for key, value in extra.items():
        if key not in settings:
            valid = ", ".join(s.describe(k) for k, s in settings.items()) or "none"
            raise BadInputError(f"view {view!r} has no setting {key!r}; its --set keys: {valid}")
        out[key] = settings[key].parse(key, value)
    return out


def check_top_k(k: Any) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= limits.MAX_TOP_K:
        raise BadInputError(f"--top-k {_shown(k)} is out of range; give 1..{limits.MAX_TOP_K}")
    return k


def check_inches(value: Any, what: str) -> float | None:
    if value is None:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not limits.MIN_INCHES <= value <= limits.MAX_INCHES:
        raise BadInputError(f"--{what} {_shown(value)} is out of range; give "
                            f"{limits.MIN_INCHES:g}..{limits.MAX_INCHES:g} inches")
    return float(value)


def check_index_option(value: Any, what: str) -> int | None:
    """An optional integer option (--object, --frame): an integer or nothing."""
    if value is None:
        return None
    if not isinstance(value, int | np.integer) or isinstance(value, bool):
        raise BadInputError(f"--{what} {_shown(value)} is not an integer")
    return int(value)


def check_panels(count: int, what: str, hint: str) -> int:
    """Refuse a figure of more small multiples than :data:`MAX_FIGURE_PANELS`, saying how to ask for fewer."""
    if count > limits.MAX_FIGURE_PANELS:
        raise BadInputError(f"this figure would draw {count:,} {what}, more than the {limits.MAX_FIGURE_PANELS} "
                            f"relviz draws in one figure; {hint}")
    return count


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
