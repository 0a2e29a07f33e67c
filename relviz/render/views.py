"""The registry of figure views that ``relviz export`` and File → Export figure… draw.

A view turns a :class:`~relviz.core.trace.Trace` and :class:`ViewOptions` into a matplotlib figure.
Views live beside their family (``relviz/render/<family>.py``) and register with :func:`register_view`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from matplotlib.figure import Figure

from relviz.core.errors import BadInputError
from relviz.core.trace import Trace


@dataclass
class ViewOptions:
    """The selection and styling a figure is drawn with; also the body of an export recipe."""

    object: int | None = None  # index into detections
    point: tuple[float, float] | None = None  # (x, y) in original image pixels
    points: list[tuple[float, float]] = field(default_factory=list)  # several reference points
    frame: int | None = None
    layer: str | None = None  # index ("3") or name; None = the view's default (usually the last)
    head: str = "mean"  # "mean" or an index
    term: str = "weight"  # weight | geometry | appearance
    module: str | None = None
    colorbar: bool = True
    shared_range: bool = True
    cmap: str = "inferno"
    width: float | None = None  # inches
    height: float | None = None
    top_k: int = 20
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["point"] = list(self.point) if self.point is not None else None
        data["points"] = [list(p) for p in self.points]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ViewOptions:
        data = dict(data)
        if data.get("point") is not None:
            data["point"] = tuple(float(v) for v in data["point"])
        data["points"] = [tuple(float(v) for v in p) for p in data.get("points") or []]
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class View:
    name: str
    families: tuple[str, ...]
    draw: Callable[[Trace, ViewOptions], Figure]
    help: str


_VIEWS: dict[str, View] = {}
# modules whose import registers views; one per family
_VIEW_MODULES = ("relviz.render.detection", "relviz.render.detr", "relviz.render.lrnet", "relviz.render.non_local",
                 "relviz.render.relation")


def register_view(name: str, families: tuple[str, ...], help: str):
    def wrap(draw: Callable[[Trace, ViewOptions], Figure]):
        _VIEWS[name] = View(name, families, draw, help)
        return draw

    return wrap


def views() -> dict[str, View]:
    for module in _VIEW_MODULES:
        importlib.import_module(module)
    return dict(_VIEWS)


def views_for(family: str) -> list[str]:
    return [name for name, v in views().items() if family in v.families]


def render_view(trace: Trace, name: str, options: ViewOptions) -> Figure:
    """Draw view ``name`` of ``trace``; a clear error when the view does not fit the trace's family."""
    available = views()
    if name not in available:
        raise BadInputError(f"unknown view {name!r}; valid views: {', '.join(sorted(available))}")
    view = available[name]
    if trace.family not in view.families:
        valid = ", ".join(views_for(trace.family)) or "none"
        raise BadInputError(
            f"view {name!r} is for {'/'.join(view.families)} traces, but this trace is from "
            f"{trace.family or 'an unknown family'}; views for it: {valid}"
        )
    return view.draw(trace, options)
