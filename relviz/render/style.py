"""Journal presets and one type scale: what size a figure is and how large everything in it prints.

A figure is drawn at the size it will be printed, so a point in it is a point on paper.  A
:class:`Preset` fixes the width (a single column, 3.5 in, or a full page, 7.16 in), the tallest the
figure may grow (9.5 in: its height follows from its content, :func:`fit_to_content`) and one base type
size from which every other size follows (:class:`Style`): ticks, captions and tile titles a step
below the base, panel titles a step above, the figure's title two steps above — every text 5–12 pt.
Line widths and marker sizes are in points too, so a box prints as thin at both presets.

Everything that draws a figure — the views, ``relviz export``, the window's File → Export figure… and
batch exports — takes its sizes from here::

    with use_style("column") as style:
        fig = new_figure(style.width, 3.0)
        ax.set_title("…", fontsize=style.title)
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import matplotlib

from relviz.core import limits
from relviz.core.errors import BadInputError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: the smallest and largest type a figure prints (points, at the preset's size)
MIN_TEXT_PT, MAX_TEXT_PT = limits.MIN_FIGURE_TEXT_PT, limits.MAX_FIGURE_TEXT_PT


@dataclass(frozen=True)
class Preset:
    """A journal size: ``width`` inches wide, at most ``max_height`` tall, body text at ``base`` points."""

    name: str
    width: float
    base: float
    max_height: float = 9.5
    description: str = ""


PRESETS: dict[str, Preset] = {
    "column": Preset("column", 3.5, base=7.0, description="single column, 3.5 in wide"),
    "page": Preset("page", 7.16, base=8.0, description="full page width, 7.16 in"),
}
DEFAULT_PRESET = "page"


@dataclass(frozen=True)
class Style:
    """The sizes one figure is drawn with: its preset's width and type scale (points), line widths and
    marker sizes (points)."""

    preset: Preset

    @property
    def name(self) -> str:
        return self.preset.name

    @property
    def width(self) -> float:
        return self.preset.width

    @property
    def max_height(self) -> float:
        return self.preset.max_height

    # -- the type scale: one base size, everything else in proportion --------------------------------
    @property
    def base(self) -> float:
        """Axis labels, colorbar labels, legends."""
        return self.preset.base

    @property
    def small(self) -> float:
        """Tick labels, box captions, tile titles, notes."""
        return max(MIN_TEXT_PT, self.base - 1.5)

    @property
    def title(self) -> float:
        """A panel's title."""
        return min(MAX_TEXT_PT, self.base + 1.0)

    @property
    def heading(self) -> float:
        """The figure's title."""
        return min(MAX_TEXT_PT, self.base + 2.0)

    # -- strokes and marks, in points ------------------------------------------------------------------
    @property
    def line(self) -> float:
        """A box's outline."""
        return 0.8 if self.name == "column" else 1.0

    @property
    def thin(self) -> float:
        """Frames, part bins, secondary outlines."""
        return 0.5

    @property
    def marker(self) -> float:
        """A reference point's marker."""
        return 4.0 if self.name == "column" else 5.0

    @property
    def arrow(self) -> float:
        """The widest arrow (the strongest relation)."""
        return 1.8 if self.name == "column" else 2.5

    def rc(self) -> dict[str, Any]:
        """matplotlib rcParams for this style (what a figure's axes, ticks and colorbars take by default)."""
        return {
            "font.size": self.base,
            "axes.titlesize": self.title,
            "axes.labelsize": self.base,
            "xtick.labelsize": self.small,
            "ytick.labelsize": self.small,
            "legend.fontsize": self.small,
            "legend.title_fontsize": self.base,
            "figure.titlesize": self.heading,
            "figure.labelsize": self.base,
            "axes.titlepad": 3.0,
            "axes.labelpad": 2.0,
            "axes.linewidth": 0.6,
            "lines.linewidth": self.line,
            "lines.markersize": self.marker,
            "patch.linewidth": self.line,
            "xtick.major.width": 0.6,
            "ytick.major.width": 0.6,
            "xtick.major.size": 2.5,
            "ytick.major.size": 2.5,
            "xtick.major.pad": 2.0,
            "ytick.major.pad": 2.0,
            # gaps in inches (pads), none as fractions of the figure: the layout does not change with the height,
            # so the height the content needs is found in one pass (fit_height)
            "figure.constrained_layout.h_pad": 3 / 72,
            "figure.constrained_layout.w_pad": 3 / 72,
            "figure.constrained_layout.hspace": 0.0,
            "figure.constrained_layout.wspace": 0.0,
        }


def check_preset(name: Any) -> str:
    """``name`` if it is a preset, else one sentence listing them."""
    if not isinstance(name, str) or name not in PRESETS:
        choices = ", ".join(f"{p.name} ({p.description})" for p in PRESETS.values())
        raise BadInputError(f"--preset {name!r} is not a figure preset; choose {choices}")
    return name


def style(name: str | None = None) -> Style:
    """The style of preset ``name`` (the default preset when None)."""
    return Style(PRESETS[check_preset(name or DEFAULT_PRESET)])


_CURRENT: contextvars.ContextVar[Style | None] = contextvars.ContextVar("relviz_style", default=None)


def current() -> Style:
    """The style of the figure being drawn (:func:`use_style`), else the default preset's."""
    return _CURRENT.get() or style()


@contextmanager
def use_style(preset: str | Style | None = None) -> Iterator[Style]:
    """Draw with ``preset``'s sizes: the figure helpers and matplotlib's defaults (rcParams) take them."""
    chosen = preset if isinstance(preset, Style) else style(preset)
    token = _CURRENT.set(chosen)
    try:
        with matplotlib.rc_context(chosen.rc()):
            yield chosen
    finally:
        _CURRENT.reset(token)


# -- the height a figure's content needs --------------------------------------------------------------
def _cells(fig) -> tuple[list[tuple[Any, Any]], list[Any]]:
    """The drawn ``fig``'s fixed-aspect axes (images, tiles) as (cell, drawn) boxes, and its empty cells (hidden
    axes, or blank ones without axis), in display pixels; colorbars and axes that stretch are left out."""
    fixed, empty = [], []
    for ax in fig.get_axes():
        if hasattr(ax, "_colorbar"):
            continue
        # positions are fractions of the axes' own (sub)figure: in display pixels, they compare across subfigures
        to_display = ax.get_figure(root=False).transSubfigure
        layout = ax.get_position(original=True).transformed(to_display)
        blank = not ax.axison and not ax.images and not ax.patches and not ax.texts
        if not ax.get_visible() or blank:
            empty.append(layout)
        elif ax.get_aspect() != "auto":
            fixed.append((layout, ax.get_position(original=False).transformed(to_display)))
    return fixed, empty


def _vertical_slack(fig, cells: tuple[list, list] | None = None) -> float:
    """Inches of height the figure could lose without shrinking any fixed-aspect axes (images, tiles): the
    least, over vertical lines through such axes, of the height the axes on that line leave unused once drawn
    at their aspect (axes stacked on one line add their slack up). An empty cell of a grid (hidden, or blank
    without axis) gives up as much as the images in its own row: otherwise the one column with a second row
    of panels would count twice the slack of the columns beside it, which have only one.  ``cells``: the
    figure's :func:`_cells` when the caller has them."""
    boxes, empty = cells or _cells(fig)
    fixed = [(layout, max(0.0, layout.height - drawn.height) / fig.dpi) for layout, drawn in boxes]
    if not fixed:
        return 0.0
    for cell in empty:
        row = [slack for layout, slack in fixed if abs(layout.y0 - cell.y0) < 1 and abs(layout.y1 - cell.y1) < 1]
        if row:
            fixed.append((cell, max(row)))
    lines = [(layout.x0 + layout.x1) / 2 for layout, _ in fixed]
    return min(sum(slack for layout, slack in fixed if layout.x0 <= x <= layout.x1) for x in lines)


def _narrowing(fig, cells: tuple[list, list] | None = None) -> float:
    """Inches of width the fixed-aspect axes (images, tiles) leave unused in their cells, added up."""
    boxes, _ = cells or _cells(fig)
    return sum(max(0.0, layout.width - drawn.width) for layout, drawn in boxes) / fig.dpi


#: the least height a fitted figure keeps (inches)
MIN_HEIGHT = 0.8


def fit_height(fig, max_height: float, min_height: float = MIN_HEIGHT, passes: int = 2) -> float:
    """Shrink ``fig`` to the height its content needs at its width (no empty bands above and below images
    drawn at their aspect), at most ``max_height``; returns the height."""
    fig.set_figheight(min(fig.get_figheight(), max_height))
    for _ in range(passes):
        fig.draw_without_rendering()
        slack = _vertical_slack(fig)
        if slack < 0.01:
            break
        fig.set_figheight(round(max(min_height, fig.get_figheight() - slack), 3))
    return fig.get_figheight()


def fit_to_content(build: Callable[[], Figure], max_height: float, min_height: float = MIN_HEIGHT,
                   tries: int = 5, tolerance: float = 0.01) -> Figure:
    """The figure ``build()`` makes, at the height its content needs (at most ``max_height``).

    Each figure is drawn once at its height and checked: height its images leave unused (the slack of
    :func:`fit_height`) is taken off, content past the top or bottom edge adds height.  A figure that passes is
    returned as it is; any other height is tried on a figure built afresh (matplotlib's layout of a figure
    depends on the layouts it had before).  Taking height off a figure may take only part of it off its images
    (rows that stretch give up the rest), so once two heights left slack the next is where their slack would
    reach zero (a secant step); a step that went too far shows as images narrower than their cells, and the
    plain step (the slack alone, which never goes too far) is taken instead.
    """
    fig = build()
    height = min(fig.get_figheight(), max_height)
    fig.set_figheight(height)
    last: tuple[float, float, float] | None = None  # (height, slack, narrowing) of the last figure with slack
    fallback: float | None = None  # the plain step's height while a secant step is being tried
    for _ in range(tries):
        fig.draw_without_rendering()
        cells = _cells(fig)
        narrowing = _narrowing(fig, cells)
        if fallback is not None and last is not None and narrowing > last[2] + tolerance:
            target, fallback = fallback, None
        else:
            fallback = None
            slack = _vertical_slack(fig, cells)
            if slack >= tolerance:
                target = height - slack
                if last is not None and last[0] > height:
                    rate = (last[1] - slack) / (last[0] - height)  # slack lost per inch of height
                    if 0.05 < rate < 1.0:
                        target, fallback = height - slack / rate, target
                last = (height, slack, narrowing)
            else:
                over = _overflow_as_drawn(fig) if height < max_height else 0.0
                if over < tolerance:
                    return fig
                target = height + 2 * over + 0.02
        fitted = min(max_height, max(min_height, round(target, 3)))
        if fitted == height:
            return fig
        height = fitted
        fig = build()
        fig.set_figheight(height)
    return fig


def _overflow_as_drawn(fig) -> float:
    """Inches by which the drawn content passes the figure's top or bottom edge (0 when it fits)."""
    renderer = fig._get_renderer()
    tight = fig.get_tightbbox(renderer)
    height = fig.get_figheight()
    return max(0.0, -tight.y0) + max(0.0, tight.y1 - height)
