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
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle

from relviz.core.atomic import atomic_path, check_writable
from relviz.core.errors import BadInputError

FORMATS = ("png", "svg", "pdf")
BOX_COLORS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
              "#469990", "#9a6324", "#800000", "#808000", "#000075", "#a9a9a9")  # fmt: skip
_RC = {"svg.fonttype": "none", "svg.hashsalt": "relviz", "pdf.fonttype": 42, "font.size": 8,
       "image.interpolation": "bilinear"}


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
        ax.imshow(image, extent=(0, w, h, 0), interpolation="bilinear")
    else:
        ax.add_patch(Rectangle((0, 0), w, h, color="#d0d0d0"))
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal")
    if title:
        ax.set_title(title, fontsize=8)


def heatmap(ax: Axes, values: np.ndarray, size: tuple[int, int], norm: Normalize, cmap: str,
            alpha: float = 0.6):
    """A map already at image resolution, blended over whatever the axes show."""
    w, h = size
    return ax.imshow(values, extent=(0, w, h, 0), cmap=cmap, norm=norm, alpha=alpha, interpolation="bilinear")


def draw_boxes(ax: Axes, boxes: np.ndarray, captions: Sequence[str] | None = None,
               highlight: int | None = None, linewidth: float = 1.2, first_index: int = 0) -> None:
    """Boxes (N, 4) xyxy as vector rectangles with captions; the highlighted one drawn thicker.

    Box ``i`` is detection ``first_index + i`` and takes that detection's colour everywhere.
    """
    for i, (x0, y0, x1, y1) in enumerate(np.asarray(boxes, dtype=float).reshape(-1, 4)):
        color = BOX_COLORS[(first_index + i) % len(BOX_COLORS)]
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


def shared_norm(maps: Sequence[np.ndarray], shared: bool) -> list[Normalize]:
    """One value range for all maps when ``shared``, else each its own."""
    if shared and maps:
        lo = float(min(np.min(m) for m in maps))
        hi = float(max(np.max(m) for m in maps))
        return [Normalize(lo, hi if hi > lo else lo + 1e-12)] * len(maps)
    return [Normalize(float(np.min(m)), float(max(np.max(m), np.min(m) + 1e-12))) for m in maps]


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
    metadata: dict[str, Any] = {"Creator": "relviz"}
    if fmt == "pdf":
        metadata.update(CreationDate=None, ModDate=None, Producer="relviz")
    elif fmt == "svg":
        metadata["Date"] = None
    else:
        metadata = {"Software": "relviz"}
    with matplotlib.rc_context(_RC), atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata)
    return Path(path)


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return Path(path)
