"""Shared figure machinery: images with heatmaps, vector boxes and arrows, colorbars, atomic saving.

Figures are plain :class:`matplotlib.figure.Figure` objects (no pyplot state, no GUI backend).  PDF and
SVG keep boxes, arrows and text as vectors (text stays text: TrueType in PDF, ``<text>`` in SVG) and
each heatmap as one embedded raster; PNG is written at the asked DPI.  Output is deterministic —
no dates, fixed SVG ids — so a recipe regenerates the same file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from relviz.core import limits
from relviz.core.atomic import atomic_path, check_writable
from relviz.core.errors import BadInputError
from relviz.render.raster import show
from relviz.views.palette import NO_VALUE_COLOR, PALETTE, ColorScale, box_color, finite_range  # noqa: F401

FORMATS = ("png", "svg", "pdf")
BOX_COLORS = PALETTE  # a detection's box takes its class's colour, as on the canvas
_RC = {"svg.fonttype": "none", "svg.hashsalt": "relviz", "pdf.fonttype": 42, "font.size": 8,
       "image.interpolation": "nearest"}
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


def new_figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(_RC):
        return Figure(figsize=(width, height), layout="constrained")


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
        ax.set_title(title, fontsize=8)


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
                      fontsize=6, color="#555555")


def heatmap(ax: Axes, values: np.ndarray, rect: tuple[float, float, float, float], norm: Normalize, cmap: str,
            alpha: float = 0.6, interpolation: str = "nearest"):
    """A map drawn as its cells over ``rect`` = (x0, y0, x1, y1) in image pixels (a view's ``Map.rect``),
    blended over whatever the axes show; NaN/inf drawn as no value; smooth only with ``bilinear``."""
    x0, y0, x1, y1 = rect
    return show(ax, masked(values), extent=(x0, x1, y1, y0), cmap=colormap(cmap), norm=norm, alpha=alpha,
                interpolation=interpolation, interpolation_stage="data")


def scale_norm(scale: ColorScale) -> Normalize:
    """A view's colour scale as a matplotlib norm."""
    return Normalize(scale.lo, scale.hi)


def value_image(ax: Axes, values: np.ndarray, cmap: str, norm: Normalize | None = None, **kwargs):
    """A matrix or map drawn cell by cell (``imshow``), NaN/inf drawn as no value."""
    kwargs.setdefault("interpolation", "nearest")
    return show(ax, masked(values), cmap=colormap(cmap), norm=norm, **kwargs)


def photo(ax: Axes, image: np.ndarray, extent: tuple[float, float, float, float]):
    """The photo (uint8 RGB) over ``extent`` = (x0, x1, y1, y0), scaled bilinearly to the pixels it covers."""
    return show(ax, image, extent=extent, interpolation="bilinear")


def draw_boxes(ax: Axes, boxes: np.ndarray, captions: Sequence[str] | None = None,
               highlight: int | None = None, linewidth: float = 1.2, labels: Sequence[int] | None = None) -> None:
    """Boxes (N, 4) xyxy as vector rectangles with captions; the highlighted one drawn thicker.

    Box ``i`` takes the colour of its class ``labels[i]`` (the canvas's palette).  At most
    :data:`~relviz.core.limits.MAX_DRAWN_BOXES` are drawn (the first: detections are sorted by score),
    and the axes say so when there are more.
    """
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    labels = list(labels) if labels is not None else [0] * len(boxes)
    if len(boxes) > limits.MAX_DRAWN_BOXES:
        ax.text(0.99, 0.01, f"the first {limits.MAX_DRAWN_BOXES} of {len(boxes):,} boxes", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=5, color="white",
                bbox={"facecolor": "black", "alpha": 0.6, "pad": 1, "edgecolor": "none"})
        keep = list(range(limits.MAX_DRAWN_BOXES))
        if highlight is not None and highlight >= limits.MAX_DRAWN_BOXES:
            keep[-1] = highlight
        boxes = boxes[keep]
    else:
        keep = list(range(len(boxes)))
    for i, (x0, y0, x1, y1) in zip(keep, boxes, strict=True):
        color = box_color(labels[i] if i < len(labels) else 0)
        lw = linewidth * (2.2 if i == highlight else 1.0)
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=color, linewidth=lw))
        if captions is not None and i < len(captions) and captions[i]:
            ax.text(x0, y0, captions[i], fontsize=6, color="white", va="bottom", ha="left",
                    bbox={"facecolor": color, "alpha": 0.8, "pad": 1, "edgecolor": "none"}, clip_on=True)


def draw_arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float], weight: float,
               color: str = "#ffd700", max_width: float = 3.0) -> None:
    """An arrow whose width and opacity grow with ``weight`` in [0, 1]."""
    weight = float(np.clip(weight, 0.0, 1.0))
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=6 + 6 * weight,
                                 linewidth=0.3 + max_width * weight, color=color,
                                 alpha=0.25 + 0.75 * weight))


def mark_point(ax: Axes, x: float, y: float, color: str = "#00ff7f", label: str | None = None) -> None:
    ax.plot([x], [y], marker="o", markersize=5, markeredgecolor="black", markerfacecolor=color)
    if label:
        ax.annotate(label, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=7, color=color)


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


def colorbar(fig: Figure, mappable, axes, label: str) -> None:
    fig.colorbar(mappable, ax=axes, shrink=0.8, label=label)


def message_figure(text: str, title: str = "", width: float = 5.0, height: float = 3.0) -> Figure:
    """A figure that says something instead of showing it (e.g. zero detections)."""
    fig = new_figure(width, height)
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=10, wrap=True, transform=ax.transAxes)
    if title:
        ax.set_title(title)
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 300) -> Path:
    """Write ``fig`` as PNG (at ``dpi``), SVG or PDF, atomically; the format comes from the suffix."""
    fmt = figure_format(path)
    check_writable(path)
    check_figure_size(fig, fmt, dpi)
    metadata: dict[str, Any] = {"Creator": "relviz"}
    if fmt == "pdf":
        metadata.update(CreationDate=None, ModDate=None, Producer="relviz")
    elif fmt == "svg":
        metadata["Date"] = None
    else:
        with matplotlib.rc_context(_RC), atomic_path(path) as tmp:
            write_png(fig, tmp, dpi)
        return Path(path)
    with matplotlib.rc_context(_RC), atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata)
    return Path(path)


#: zlib level of the PNGs written: level 6 (matplotlib's) spends twice the time for files 0–12 % smaller
PNG_COMPRESS_LEVEL = 4


def write_png(fig: Figure, path: str | Path, dpi: int) -> None:
    """``fig`` drawn as matplotlib draws a PNG (its layout pass included), written as RGB when every pixel
    is opaque (a quarter less to compress than RGBA) at :data:`PNG_COMPRESS_LEVEL`, with the DPI and
    ``Software: relviz``; the same figure gives the same bytes."""
    width, height = int(fig.get_figwidth() * dpi), int(fig.get_figheight() * dpi)  # the Agg canvas's size
    canvas = _Pixels(width, height)
    fig.savefig(canvas, format="rgba", dpi=dpi)  # hands the renderer's buffer to canvas.write, uncopied
    info = PngInfo()
    info.add_text("Software", "relviz")
    canvas.image.save(path, format="png", pnginfo=info, dpi=(dpi, dpi), compress_level=PNG_COMPRESS_LEVEL)


class _Pixels:
    """Takes the RGBA buffer matplotlib writes for ``format="rgba"`` and keeps it as a Pillow image."""

    def __init__(self, width: int, height: int) -> None:
        self.size = (width, height)
        self.image: Image.Image | None = None

    def write(self, data) -> int:
        pixels = np.frombuffer(data, np.uint8)
        if pixels.size != self.size[0] * self.size[1] * 4:
            raise RuntimeError(f"the figure drew {pixels.size:,} bytes, not {self.size[0]}×{self.size[1]} RGBA")
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
