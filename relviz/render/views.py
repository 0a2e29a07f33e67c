"""The registry of figure views that ``relviz export`` and File → Export figure… draw.

A view turns a :class:`~relviz.core.trace.Trace` and :class:`ViewOptions` into a matplotlib figure.
Views live beside their family (``relviz/render/<family>.py``) and register with :func:`register_view`.
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from relviz.core.errors import BadInputError
from relviz.core.trace import Trace
from relviz.render.figure import NoFiniteValues, check_cmap, ignore_layout_notes, message_figure, note_nonfinite
from relviz.render.selection import (
    Setting,
    check_inches,
    check_index_option,
    check_settings,
    check_top_k,
)
from relviz.render.style import DEFAULT_PRESET, check_preset, fit_to_content, use_style


@dataclass
class ViewOptions:
    """The selection and styling a figure is drawn with; also the body of an export recipe."""

    object: int | None = None  # index into detections
    objects: list[int] = field(default_factory=list)  # several objects (--object repeated), in the order given
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
    preset: str = DEFAULT_PRESET  # journal size and type scale (relviz.render.style): column | page

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["point"] = list(self.point) if self.point is not None else None
        data["points"] = [list(p) for p in self.points]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ViewOptions:
        if not isinstance(data, dict):
            raise BadInputError(f"the figure options must be a JSON object, not {type(data).__name__}")
        data = dict(data)
        if data.get("point") is not None:
            data["point"] = _point(data["point"], "point")
        points = data.get("points") or []
        if not isinstance(points, list):
            raise BadInputError("the figure option 'points' must be a list of [x, y] pairs")
        data["points"] = [_point(p, "points") for p in points]
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def _point(value: Any, what: str) -> tuple[float, float]:
    """An (x, y) pair of finite numbers, or a sentence."""
    ok = isinstance(value, list | tuple) and len(value) == 2
    ok = ok and all(isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in value)
    if not ok or not all(math.isfinite(float(v)) for v in value):
        raise BadInputError(f"the figure option {what!r} needs points as two finite numbers X,Y in image pixels, "
                            f"not {str(value)[:40]}")
    return float(value[0]), float(value[1])


def checked_options(view: View, options: ViewOptions) -> ViewOptions:
    """``options`` with what every view shares checked, and the view's ``--set`` settings parsed."""
    return replace(
        options,
        object=check_index_option(options.object, "object"),
        objects=[check_index_option(k, "object") for k in options.objects or []],
        frame=check_index_option(options.frame, "frame"),
        point=_point(options.point, "point") if options.point is not None else None,
        points=[_point(p, "points") for p in options.points or []],
        cmap=check_cmap(options.cmap),
        top_k=check_top_k(options.top_k),
        width=check_inches(options.width, "width"),
        height=check_inches(options.height, "height"),
        head=str(options.head) if options.head is not None else "mean",
        extra=check_settings(view.name, options.extra, view.settings),
        preset=check_preset(options.preset or DEFAULT_PRESET),
    )


@dataclass(frozen=True)
class View:
    name: str
    families: tuple[str, ...]
    draw: Callable[[Trace, ViewOptions], Figure]
    help: str
    settings: dict[str, Setting] = field(default_factory=dict)  # the --set keys it understands
    several_objects: bool = False  # shows several objects (--object repeated) in one figure
    takes_object: bool = True  # False: the view shows no selected object (points, layers, blocks)


_VIEWS: dict[str, View] = {}
# modules whose import registers views; one per family
_VIEW_MODULES = ("relviz.render.detection", "relviz.render.detr", "relviz.render.lrnet", "relviz.render.non_local",
                 "relviz.render.relation")


def register_view(name: str, families: tuple[str, ...], help: str, settings: dict[str, Setting] | None = None,
                  several_objects: bool = False, takes_object: bool = True):
    def wrap(draw: Callable[[Trace, ViewOptions], Figure]):
        _VIEWS[name] = View(name, families, draw, help, dict(settings or {}), several_objects, takes_object)
        return draw

    return wrap


def views() -> dict[str, View]:
    for module in _VIEW_MODULES:
        importlib.import_module(module)
    return dict(_VIEWS)


def views_for(family: str) -> list[str]:
    return [name for name, v in views().items() if family in v.families]


def _drawn(view: View, trace: Trace, options: ViewOptions) -> Figure:
    fig = view.draw(trace, options)
    note_nonfinite(fig)
    if options.width is not None:
        fig.set_figwidth(options.width)
    if options.height is not None:
        fig.set_figheight(options.height)
    return fig


def render_view(trace: Trace, name: str, options: ViewOptions) -> Figure:
    """Draw view ``name`` of ``trace``; a clear error when the view does not fit the trace's family.

    The options every view shares are checked here (colormap, top-k, size, preset, the view's ``--set``
    keys); non-finite values are drawn masked with a note, and a figure with no finite value to draw says so.
    The figure is drawn at its preset's width (or ``--width``) in the preset's type scale, and its height is
    what its content needs (at most the preset's 9.5 in) unless ``--height`` gives one.
    """
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
    options = checked_options(view, options)
    with use_style(options.preset) as style, np.errstate(all="ignore"), warnings.catch_warnings():
        ignore_layout_notes()
        try:
            if options.height is None:
                fig = fit_to_content(lambda: _drawn(view, trace, options), style.max_height)
            else:
                fig = _drawn(view, trace, options)
        except NoFiniteValues:
            return message_figure(f"every value the {name} view would draw here is NaN or infinite: nothing to show",
                                  name)
        fig.relviz_style = style
    return fig
