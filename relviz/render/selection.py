"""The options every figure view shares (top-k, size, the ``--set`` settings a view declares), checked.

How a selection resolves against a trace (objects, layers, heads, points, frames, captions) is one rule
for the window and the figures, in :mod:`relviz.views.selection`; it is re-exported here for the views.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from relviz.core import limits
from relviz.core.errors import BadInputError
from relviz.views.selection import (  # noqa: F401 - the selection rules the figure views use
    captions,
    check_frame,
    check_object,
    checked_points,
    detection_count,
    detection_labels,
    head_selection,
    layer_index,
    named_layer,
    select_head,
)


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
