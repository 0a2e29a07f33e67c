"""Shared figure machinery: images with heatmaps, vector boxes and arrows, colorbars, atomic saving.

Figures are plain :class:`matplotlib.figure.Figure` objects (no pyplot state, no GUI backend).  PDF and
SVG keep boxes, arrows and text as vectors (text stays text: TrueType in PDF, ``<text>`` in SVG) and
each heatmap as one embedded raster; PNG is written at the asked DPI.  Output is deterministic —
no dates, fixed SVG ids — so a recipe regenerates the same file.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle
from matplotlib.textpath import TextToPath
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from relviz.core import limits
from relviz.core.atomic import atomic_path, check_writable
from relviz.core.errors import BadInputError
from relviz.render.labels import placer
from relviz.render.raster import show
from relviz.render.style import current
from relviz.views.palette import (  # noqa: F401
    NO_VALUE_COLOR,
    OVERLAY_OPACITY,
    PALETTE,
    ColorScale,
    box_color,
    finite_range,
    overlay_alpha,
    text_color_on,
)

FORMATS = ("png", "svg", "pdf")
BOX_COLORS = PALETTE  # a detection's box takes its class's colour, as on the canvas
_RC = {"svg.fonttype": "none", "svg.hashsalt": "relviz", "pdf.fonttype": 42, "image.interpolation": "nearest"}
#: how heatmaps are drawn: as their cells unless smoothing is asked for (``--set interpolation=bilinear``)
INTERPOLATIONS = ("nearest", "bilinear")
_SUGGESTED_CMAPS = ("inferno", "viridis", "magma", "plasma", "cividis", "gray", "coolwarm")


class NoFiniteValues(Exception):  # noqa: N818 - a signal to the view registry, not an error for the user
    """Every value a figure would draw is NaN or infinite; :func:`relviz.render.views.render_view` then
    draws a figure that says so."""


def figure_format(path: str | Path) -> str:
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise BadInputError(f"cannot export {Path(path).name}: choose a .png, .svg or .pdf file name")
    return fmt


def drawing_context(fig: Figure):
    """matplotlib's settings to draw ``fig`` with: its style's when a view drew it (ticks made while drawing take
    their sizes from them) and the output's (text stays text, fixed SVG ids)."""
    chosen = getattr(fig, "relviz_style", None)  # a figure drawn by a view; others keep the settings they have
    return matplotlib.rc_context({**chosen.rc(), **_RC} if chosen is not None else _RC)


def new_figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(_RC):
        return Figure(figsize=(width, height), layout="constrained")


def grid_columns(count: int, width: float, min_panel: float = 1.1) -> int:
    """How many panels of at least ``min_panel`` inches fit side by side in ``width`` (at most ``count``)."""
    return max(1, min(count, int(width // min_panel)))


def image_axes(ax: Axes, image: np.ndarray | None, size: tuple[int, int], title: str | None = None) -> None:
    """Show ``image`` (or a grey field of ``size`` = (w, h)) in pixel coordinates, no ticks."""
    w, h = size
    if image is not None:
        photo(ax, image, (0, w, h, 0))
    else:
        ax.add_patch(Rectangle((0, 0), w, h, color="#d0d0d0"))
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal")
    if title:
        ax.set_title(title, fontsize=current().title)


def check_cmap(name: str) -> str:
    """``name`` if matplotlib knows the colormap, else one sentence with a few that it knows."""
    if not isinstance(name, str) or name not in matplotlib.colormaps:
        raise BadInputError(f"unknown colormap {name!r}; valid ones include {', '.join(_SUGGESTED_CMAPS)} "
                            "(any matplotlib colormap name)")
    return name


def colormap(name: str) -> Colormap:
    """The colormap with non-finite (masked) values drawn in :data:`NO_VALUE_COLOR`."""
    return matplotlib.colormaps[check_cmap(name)].with_extremes(bad=NO_VALUE_COLOR)


def masked(values: np.ndarray) -> np.ma.MaskedArray:
    """``values`` with NaN and ±inf masked, so they are drawn as 'no value' and left out of ranges."""
    return np.ma.masked_invalid(np.asarray(values, dtype=np.float64))


def nonfinite(values: np.ndarray) -> int:
    values = np.asarray(values)
    return int(values.size - np.count_nonzero(np.isfinite(values)))


def count_nonfinite(fig: Figure, *arrays: np.ndarray) -> int:
    """Add the NaN/±inf among ``arrays`` (the values a figure draws) to the figure's tally; the view
    registry writes the note ('12 non-finite values masked') when the figure is done."""
    n = sum(nonfinite(a) for a in arrays)
    fig.relviz_nonfinite = getattr(fig, "relviz_nonfinite", 0) + n
    return n


def note_nonfinite(fig: Figure) -> None:
    """The figure's note on masked values, when it masked any."""
    n = getattr(fig, "relviz_nonfinite", 0)
    if n:
        fig.supxlabel(f"{n:,} non-finite value{'s' if n != 1 else ''} (NaN or ±inf) masked, drawn in grey",
                      fontsize=current().small, color="#555555")


def overlay_colormap(name: str, opacity: float = OVERLAY_OPACITY) -> Colormap:
    """``name`` with an opacity that grows with the value (:func:`~relviz.views.palette.overlay_alpha`, as on
    the canvas) up to ``opacity``: a low value leaves the photo as it is instead of darkening it."""
    base = matplotlib.colormaps[check_cmap(name)]
    table = base(np.linspace(0.0, 1.0, 256))
    table[:, 3] = opacity * overlay_alpha(np.linspace(0.0, 1.0, 256))
    bad = matplotlib.colors.to_rgba(NO_VALUE_COLOR, opacity)
    return ListedColormap(table, name=f"{name}_overlay").with_extremes(bad=bad)


def heatmap(ax: Axes, values: np.ndarray, rect: tuple[float, float, float, float], norm: Normalize, cmap: str,
            opacity: float = OVERLAY_OPACITY, interpolation: str = "nearest"):
    """A map drawn as its cells over ``rect`` = (x0, y0, x1, y1) in image pixels (a view's ``Map.rect``),
    over whatever the axes show at up to ``opacity``, fading out towards the low end of the range so the photo
    stays as it is where the value is low; NaN/inf drawn as no value; smooth only with ``bilinear``."""
    x0, y0, x1, y1 = rect
    return overlay(ax, values, (x0, x1, y1, y0), norm, cmap, opacity, interpolation)


def overlay(ax: Axes, values: np.ndarray, extent: tuple[float, float, float, float], norm: Normalize, cmap: str,
            opacity: float = OVERLAY_OPACITY, interpolation: str = "nearest"):
    """:func:`heatmap` over a matplotlib ``extent`` = (left, right, bottom, top) (a tile of a grid)."""
    image = show(ax, masked(values), extent=extent, cmap=overlay_colormap(cmap, opacity), norm=norm,
                 interpolation=interpolation, interpolation_stage="data")
    image.relviz_cmap = cmap
    return image


def object_colors(count: int) -> list[str]:
    """Distinct colours for ``count`` objects shown together (the box palette in order)."""
    return [PALETTE[i % len(PALETTE)] for i in range(count)]


def tinted(ax: Axes, values: np.ndarray, rect: tuple[float, float, float, float], norm: Normalize, color: str,
           opacity: float = OVERLAY_OPACITY, interpolation: str = "nearest"):
    """A map drawn in one colour whose opacity grows with the value (clear at the range's low end, up to
    ``opacity``): several objects' maps on one image, each in its own colour (DETR Fig. 6)."""
    u = np.linspace(0.0, 1.0, 256)
    table = np.tile(matplotlib.colors.to_rgba(color), (256, 1))
    table[:, 3] = opacity * overlay_alpha(u)
    cmap = ListedColormap(table).with_extremes(bad=(0, 0, 0, 0))
    x0, y0, x1, y1 = rect
    return show(ax, masked(values), extent=(x0, x1, y1, y0), cmap=cmap, norm=norm, interpolation=interpolation,
                interpolation_stage="data")


def scale_norm(scale: ColorScale) -> Normalize:
    """A view's colour scale as a matplotlib norm."""
    return Normalize(scale.lo, scale.hi)


def value_image(ax: Axes, values: np.ndarray, cmap: str, norm: Normalize | None = None, **kwargs):
    """A matrix or map drawn cell by cell (``imshow``), NaN/inf drawn as no value."""
    kwargs.setdefault("interpolation", "nearest")
    image = show(ax, masked(values), cmap=colormap(cmap), norm=norm, **kwargs)
    image.relviz_cmap = cmap
    return image


def photo(ax: Axes, image: np.ndarray, extent: tuple[float, float, float, float]):
    """The photo (uint8 RGB) over ``extent`` = (x0, x1, y1, y0), scaled bilinearly to the pixels it covers."""
    return show(ax, image, extent=extent, interpolation="bilinear")


def draw_boxes(ax: Axes, boxes: np.ndarray, captions: Sequence[str] | None = None,
               highlight: int | None = None, linewidth: float | None = None,
               labels: Sequence[int] | None = None, colors: Sequence[str] | None = None) -> None:
    """Boxes (N, 4) xyxy as vector rectangles with captions; the highlighted one drawn thicker.

    Box ``i`` takes the colour of its class ``labels[i]`` (the canvas's palette) unless ``colors`` says.
    Captions are placed where they collide with no other caption (:mod:`relviz.render.labels`): the
    highlighted box's first, then in order (detections are sorted by score); one with no room is left out.
    At most :data:`~relviz.core.limits.MAX_DRAWN_BOXES` are drawn (the first), and the axes say so when
    there are more.
    """
    style = current()
    linewidth = style.line if linewidth is None else linewidth
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    labels = list(labels) if labels is not None else [0] * len(boxes)
    place = placer(ax)
    if len(boxes) > limits.MAX_DRAWN_BOXES:
        note = ax.text(0, 0, f"the first {limits.MAX_DRAWN_BOXES} of {len(boxes):,} boxes", fontsize=style.small,
                       color="white", bbox={"facecolor": "black", "alpha": 0.6, "pad": 1, "edgecolor": "none"})
        x0, x1 = ax.get_xlim()
        y0, y1 = ax.get_ylim()
        place.add(note, [(max(x0, x1), max(y0, y1), "right", "bottom")])
        keep = list(range(limits.MAX_DRAWN_BOXES))
        if highlight is not None and highlight >= limits.MAX_DRAWN_BOXES:
            keep[-1] = highlight
        boxes = boxes[keep]
    else:
        keep = list(range(len(boxes)))
    order = sorted(range(len(keep)), key=lambda j: keep[j] != highlight)  # the highlighted caption first
    for j in order:
        i, (x0, y0, x1, y1) = keep[j], boxes[j]
        if colors is not None and i < len(colors):
            color = colors[i]
        else:
            color = box_color(labels[i] if i < len(labels) else 0)
        lw = linewidth * (2.0 if i == highlight else 1.0)
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=color, linewidth=lw))
        if captions is not None and i < len(captions) and captions[i]:
            caption = ax.text(x0, y0, captions[i], fontsize=style.small, color=text_color_on(color),
                              bbox={"facecolor": color, "alpha": 0.85, "pad": 0.8, "edgecolor": "none"})
            place.add_box_caption(caption, (x0, y0, x1, y1))


def draw_arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float], weight: float,
               color: str = "#ffd700", max_width: float | None = None) -> None:
    """An arrow whose width and opacity grow with ``weight`` in [0, 1] (widths in points, from the style)."""
    style = current()
    max_width = style.arrow if max_width is None else max_width
    weight = float(np.clip(weight, 0.0, 1.0))
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=4 + 5 * weight,
                                 linewidth=0.3 + max_width * weight, color=color,
                                 alpha=0.35 + 0.65 * weight, shrinkA=0, shrinkB=2))


def mark_point(ax: Axes, x: float, y: float, color: str = "#00ff7f", label: str | None = None) -> None:
    """A reference point: a dot with a dark rim and, when given, its number on a dark tag beside it."""
    style = current()
    ax.plot([x], [y], marker="o", markersize=style.marker, markeredgecolor="black", markeredgewidth=0.6,
            markerfacecolor=color)
    if label:
        tag = ax.text(x, y, label, fontsize=style.small, color=color, fontweight="bold",
                      bbox={"facecolor": "black", "alpha": 0.6, "pad": 0.6, "edgecolor": "none"})
        left, right = ax.get_xlim()
        step = 0.012 * abs(right - left)
        placer(ax).add(tag, [(x + step, y - step, "left", "bottom"), (x - step, y - step, "right", "bottom"),
                             (x + step, y + step, "left", "top"), (x - step, y + step, "right", "top")])


def range_norm(lo: float, hi: float, symmetric: bool = False) -> Normalize:
    if symmetric:
        r = max(abs(lo), abs(hi), 1e-12)
        return Normalize(-r, r)
    return Normalize(lo, hi if hi > lo else lo + max(abs(lo) * 1e-6, 1e-12))


def shared_norm(maps: Sequence[np.ndarray], shared: bool, symmetric: bool = False) -> list[Normalize]:
    """One value range for all maps when ``shared``, else each its own — from finite values only.

    A map with no finite value gets (0, 1) (it is drawn all 'no value'); when no map has one, there is
    nothing to draw and :class:`NoFiniteValues` says so.
    """
    whole = finite_range(maps)
    if whole is None:
        raise NoFiniteValues
    if shared:
        return [range_norm(*whole, symmetric)] * len(maps)
    return [range_norm(*(finite_range([m]) or (0.0, 1.0)), symmetric) for m in maps]


def opaque(mappable) -> ScalarMappable:
    """What a colorbar shows for ``mappable``: its norm and its colormap without the overlay's transparency."""
    name = getattr(mappable, "relviz_cmap", None)
    if name is not None:
        cmap = colormap(name)
    else:
        table = mappable.get_cmap()(np.linspace(0.0, 1.0, 256))
        table[:, 3] = 1.0
        cmap = ListedColormap(table)
    return ScalarMappable(norm=mappable.norm, cmap=cmap)


def colorbar(fig: Figure, mappable, axes, label: str, **kwargs: Any):
    """A colorbar of ``mappable``'s range and colormap (opaque: the colours of the values, not of their blend
    over the photo), its ticks and label in the figure's type scale."""
    style = current()
    kwargs.setdefault("shrink", 0.9)
    kwargs.setdefault("aspect", 25)
    kwargs.setdefault("pad", 0.02)
    bar = fig.colorbar(opaque(mappable), ax=axes, **kwargs)
    bar.set_label(label, fontsize=style.base)
    bar.ax.tick_params(labelsize=style.small, width=0.5, length=2)
    bar.outline.set_linewidth(0.5)
    return bar


def text_width_pt(text: str, fontsize: float) -> float:
    """The width of one line of ``text`` at ``fontsize`` points, as matplotlib lays it out (in points)."""
    from matplotlib.font_manager import FontProperties

    width, _, _ = TextToPath().get_text_width_height_descent(text, FontProperties(size=fontsize), ismath=False)
    return float(width)


def wrap_text(text: str, fontsize: float, width_in: float) -> str:
    """``text`` broken at spaces into lines no wider than ``width_in`` inches at ``fontsize``."""
    lines = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            trial = f"{line} {word}" if line else word
            if line and text_width_pt(trial, fontsize) > width_in * 72:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return "\n".join(lines)


def figure_title(fig: Figure, text: str, size: float | None = None) -> None:
    """The figure's title, wrapped to the figure's width in the heading size."""
    size = current().heading if size is None else size
    fig.suptitle(wrap_text(text, size, 0.92 * fig.get_figwidth() - 0.1), fontsize=size)


def message_figure(text: str, title: str = "", width: float | None = None, height: float = 2.0) -> Figure:
    """A figure that says something instead of showing it (e.g. zero detections)."""
    style = current()
    width = style.width if width is None else width
    fig = new_figure(width, height)
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, wrap_text(text, style.base, width - 0.3), ha="center", va="center", fontsize=style.base,
            transform=ax.transAxes)
    if title:
        ax.set_title(wrap_text(title, style.title, width - 0.2), fontsize=style.title)
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 300) -> Path:
    """Write ``fig`` as PNG (at ``dpi``), SVG or PDF, atomically; the format comes from the suffix."""
    fmt = figure_format(path)
    check_writable(path)
    check_figure_size(fig, fmt, dpi)
    with warnings.catch_warnings():
        ignore_layout_notes()
        return _save(fig, path, fmt, dpi)


def ignore_layout_notes() -> None:
    """Inside ``warnings.catch_warnings()``: matplotlib's notes on layout (a figure too small for its decorations)
    are not the user's business; the layout tests check what is drawn."""
    warnings.filterwarnings("ignore", module="matplotlib")
    warnings.filterwarnings("ignore", message="constrained_layout not applied")
    warnings.filterwarnings("ignore", message=".*layout.*", category=UserWarning)


def _save(fig: Figure, path: str | Path, fmt: str, dpi: int) -> Path:
    metadata: dict[str, Any] = {"Creator": "relviz"}
    if fmt == "pdf":
        metadata.update(CreationDate=None, ModDate=None, Producer="relviz")
    elif fmt == "svg":
        metadata["Date"] = None
    else:
        with drawing_context(fig), atomic_path(path) as tmp:
            write_png(fig, tmp, dpi)
        return Path(path)
    with drawing_context(fig), atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata)
    return Path(path)


#: zlib level of the PNGs written: level 6 (matplotlib's) spends twice the time for files 0–12 % smaller
PNG_COMPRESS_LEVEL = 4


def write_png(fig: Figure, path: str | Path, dpi: int) -> None:
    """``fig`` drawn as matplotlib draws a PNG (its layout pass included), written as RGB when every pixel
    is opaque (a quarter less to compress than RGBA) at :data:`PNG_COMPRESS_LEVEL`, with the DPI and
    ``Software: relviz``; the same figure gives the same bytes."""
    canvas = _Pixels()
    fig.savefig(canvas, format="rgba", dpi=dpi)  # hands the renderer's buffer to canvas.write, uncopied
    info = PngInfo()
    info.add_text("Software", "relviz")
    canvas.image.save(path, format="png", pnginfo=info, dpi=(dpi, dpi), compress_level=PNG_COMPRESS_LEVEL)


class _Pixels:
    """Takes the RGBA buffer matplotlib writes for ``format="rgba"`` and keeps it as a Pillow image."""

    def __init__(self) -> None:
        self.size = (0, 0)
        self.image: Image.Image | None = None

    def write(self, data) -> int:
        shape = memoryview(data).shape  # the renderer's buffer: (height, width, 4)
        if shape is None or len(shape) != 3 or shape[2] != 4:
            raise RuntimeError(f"the figure drew a buffer of shape {shape}, not height × width × RGBA")
        self.size = (int(shape[1]), int(shape[0]))
        pixels = np.frombuffer(data, np.uint8)
        # a copy either way (the buffer is the renderer's, gone when savefig returns): RGB unpacked straight
        # from RGBX when every pixel is opaque
        opaque = bool(np.all(pixels[3::4] == 255))
        self.image = Image.frombytes("RGB" if opaque else "RGBA", self.size, data, "raw", "RGBX" if opaque else "RGBA")
        return pixels.size

    def seek(self, *args) -> int:  # matplotlib takes an object with ``seek`` for a file handle
        return 0


def check_figure_size(fig: Figure, fmt: str, dpi: int) -> None:
    """Refuse a figure whose raster would pass the pixel bound, before any pixel is drawn."""
    if not limits.MIN_DPI <= int(dpi) <= limits.MAX_DPI:
        raise BadInputError(f"--dpi {dpi} is out of range ({limits.MIN_DPI}..{limits.MAX_DPI})")
    width, height = (float(v) for v in fig.get_size_inches())
    if not (np.isfinite(width) and np.isfinite(height)) or width <= 0 or height <= 0:
        raise BadInputError(f"the figure would be {width:g}×{height:g} inches; give --width and --height")
    pixels = width * dpi * height * dpi
    if fmt == "png" and (pixels > limits.MAX_FIGURE_PIXELS or max(width, height) * dpi >= 2**16):
        raise BadInputError(
            f"the figure would be {width * dpi:,.0f}×{height * dpi:,.0f} pixels at {dpi} dpi, more than relviz "
            f"draws ({limits.MAX_FIGURE_PIXELS:,}); lower --dpi or give a smaller --width/--height"
        )


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return Path(path)
