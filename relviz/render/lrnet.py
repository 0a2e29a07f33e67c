"""LR-Net figures: one pixel's local relation kernels (``local-relation``) and every layer's geometry
priors (``geometry-priors``).  The kernels come from :func:`relviz.views.lrnet.pixel_kernels`, the same
computation the window's canvas and panels show.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from relviz.core.errors import BadInputError
from relviz.core.grid import check_point
from relviz.core.trace import Trace, softmax
from relviz.render.figure import (
    NoFiniteValues,
    colorbar,
    count_nonfinite,
    finite_range,
    image_axes,
    mark_point,
    new_figure,
    photo,
    range_norm,
    value_image,
)
from relviz.render.selection import Setting, check_panels
from relviz.render.tiles import Tiles
from relviz.render.views import ViewOptions, register_view
from relviz.views.lrnet import (  # noqa: F401 - re-exported: the kernels are computed in the views layer
    PixelKernels,
    layer_names,
    pixel_kernels,
    resolve_layer,
    top_classes,
)

MAX_GROUPS = 16
GROUPS_SETTING = {"max_groups": Setting(int, "how many groups to draw at most", low=1, high=1024)}


def _groups(options: ViewOptions, count: int) -> list[int]:
    head = options.head
    if head is None or str(head).lower() in ("mean", "all", ""):
        limit = int((options.extra or {}).get("max_groups", MAX_GROUPS))
        return list(range(min(count, max(1, limit))))
    try:
        h = int(head)
    except (TypeError, ValueError):
        raise BadInputError(f"group {head!r} is neither 'mean' (all groups) nor an index 0..{count - 1}") from None
    if not 0 <= h < count:
        raise BadInputError(f"group {h} does not exist; this layer has groups 0..{count - 1} (or 'mean' for all)")
    return [h]


def _crop(image: np.ndarray | None, extent: tuple[float, float, float, float]):
    if image is None:
        return None, None
    h, w = image.shape[:2]
    x0, x1, y0, y1 = extent
    a0, a1 = max(0, int(math.floor(x0))), min(w, int(math.ceil(x1)))
    b0, b1 = max(0, int(math.floor(y0))), min(h, int(math.ceil(y1)))
    if a1 <= a0 or b1 <= b0:
        return None, None
    return image[b0:b1, a0:a1], (a0, a1, b1, b0)


def _range(values: list[np.ndarray], symmetric: bool) -> Normalize:
    """The colour range of the finite values ((0, 1) when there is none: the panel is all 'no value')."""
    return range_norm(*(finite_range(values) or (0.0, 1.0)), symmetric)


@register_view(
    "local-relation",
    ("lrnet",),
    "LR-Net: the k×k kernels of every group at --point and --layer (geometry prior, appearance "
    "term, final weight) on the image neighbourhood they cover; --head G picks one group",
    settings=GROUPS_SETTING,
)
def local_relation_view(trace: Trace, options: ViewOptions) -> Figure:
    w, h = trace.image_size
    point = options.point or (w / 2, h / 2)
    check_point(point, trace.image_size)
    kernels = pixel_kernels(trace, options.layer, *point)
    groups = _groups(options, kernels.geometry.shape[0])
    check_panels(3 * len(groups), "kernel panels (three per group)", "pick one group with --head G or fewer with "
                 "--set max_groups=N")
    shown = [kernels.geometry[groups], kernels.weight[groups], kernels.appearance[groups][:, kernels.valid]]
    if finite_range(shown) is None:
        raise NoFiniteValues
    extent = kernels.window_extent()
    crop, crop_extent = _crop(trace.image, extent)
    per_col = 8
    group_cols = max(1, math.ceil(len(groups) / per_col))
    rows = math.ceil(len(groups) / group_cols)
    terms = [
        ("geometry", kernels.geometry, "coolwarm", True, "geometry prior"),
        ("appearance", kernels.appearance, "coolwarm", True, "appearance Φ"),
        ("weight", kernels.weight, options.cmap, False, "weight ω"),
    ]
    norms = {}
    for key, values, _, symmetric, _ in terms:
        sel = [values[g] for g in groups]
        norms[key] = _range(sel, symmetric) if options.shared_range else None
    width = options.width or 3.2 + 1.35 * 3 * group_cols
    height = options.height or max(3.0, 1.0 + 1.15 * rows)
    fig = new_figure(width, height)
    count_nonfinite(fig, *shown)
    left, right = fig.subfigures(1, 2, width_ratios=[3.0, 1.35 * 3 * group_cols])
    ax = left.add_subplot()
    image_axes(ax, trace.image, trace.image_size, f"layer {kernels.layer}, point ({point[0]:.0f}, {point[1]:.0f})")
    x0, x1, y0, y1 = extent
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="#00ff7f", linewidth=1.0))
    mark_point(ax, *point)
    classes = top_classes(trace)
    if classes:
        ax.set_xlabel("\n".join(f"{name}: {p:.2f}" for name, p in classes), fontsize=7)
    grid = right.add_subplot()
    window = (x0, x1, y1, y0)  # the panels' extent: (left, right, bottom, top) in image pixels
    bars = options.colorbar and options.shared_range
    tiles = Tiles(grid, rows, 3 * group_cols, aspect=(y1 - y0) / (x1 - x0), gap=0.3, below=0.8 if bars else 0.0)
    mappables: dict[str, object] = {}
    for n, g in enumerate(groups):
        r, gc = n % rows, n // rows
        for t, (key, values, cmap, symmetric, label) in enumerate(terms):
            c = 3 * gc + t
            tiles.background(r, c, "#808080")
            if crop is not None:
                photo(grid, crop, tiles.extent(r, c, window, crop_extent)).set_clip_path(tiles.clip(r, c))
            norm = norms[key] or _range([values[g]], symmetric)
            mappables[key] = value_image(grid, values[g], cmap, norm, extent=tiles.extent(r, c, window), alpha=0.7)
            tiles.frame(r, c)
            if r == 0:
                tiles.title(r, c, label, fontsize=7)
            if t == 0:
                tiles.row_label(r, c, f"group {g}")
    if bars:
        for t, (key, *_) in enumerate(terms):
            cax = tiles.below_axes(t, t)
            right.colorbar(mappables[key], cax=cax, orientation="horizontal", label="ω" if key == "weight" else "logit")
    total = kernels.geometry.shape[0]
    shown = f"groups {groups[0]}–{groups[-1]} of {total}" if len(groups) > 1 else f"group {groups[0]} of {total}"
    k = kernels.geometry.shape[-1]
    fig.suptitle(f"local relation kernels ({k}×{k}) at output cell {kernels.cell}; {shown}", fontsize=9)
    return fig


@register_view(
    "geometry-priors",
    ("lrnet",),
    "LR-Net: every layer's k×k geometry prior per group as a grid (--term geometry: logits; "
    "weight: softmax over the window, the fixed kernel the layer would use without appearance)",
    settings=GROUPS_SETTING,
)
def geometry_priors_view(trace: Trace, options: ViewOptions) -> Figure:
    names = layer_names(trace)
    if not names:
        raise BadInputError("the trace holds no local relation layers (was it recorded with capture off?)")
    if options.layer not in (None, ""):
        names = [resolve_layer(trace, options.layer)]
    term = options.term or "geometry"
    if term not in ("geometry", "weight"):
        raise BadInputError(
            f"--term {term} does not apply to geometry priors; use geometry (logits) or "
            "weight (softmax over the window)"
        )
    limit = int((options.extra or {}).get("max_groups", MAX_GROUPS))
    priors = []
    for name in names:
        geom = np.asarray(trace[f"lrnet/{name}/geometry"], dtype=np.float32)
        if term == "weight":
            g, k, _ = geom.shape
            geom = softmax(geom.reshape(g, k * k), axis=1).reshape(g, k, k)
        priors.append(geom[:limit])
    cols = max(p.shape[0] for p in priors)
    check_panels(len(names) * cols, "prior panels (layers × groups)", "pick one layer with --layer or fewer groups "
                 "with --set max_groups=N")
    if finite_range(priors) is None:
        raise NoFiniteValues
    symmetric = term == "geometry"
    cmap = "coolwarm" if symmetric else options.cmap
    norm = _range(priors, symmetric) if options.shared_range else None
    width = options.width or min(1.0 + 0.75 * cols, 16.0)
    height = options.height or 0.6 + 0.75 * len(names)
    fig = new_figure(width, height)
    count_nonfinite(fig, *priors)
    ax = fig.add_subplot()
    tiles = Tiles(ax, len(names), cols)
    im = None
    for r, (name, prior) in enumerate(zip(names, priors, strict=True)):
        tiles.row_label(r, 0, name)
        for c in range(min(cols, prior.shape[0])):
            k = prior.shape[-1]
            im = value_image(ax, prior[c], cmap, norm or _range([prior[c]], symmetric),
                             extent=tiles.extent(r, c, (0, k, k, 0)))
            tiles.frame(r, c)
            if r == 0:
                tiles.title(r, c, f"g{c}")
    label = "geometry prior (logit)" if symmetric else "softmax of the geometry prior"
    if options.colorbar and im is not None and norm is not None:
        colorbar(fig, im, ax, label)
    total = max(int(trace.shape(f"lrnet/{n}/geometry")[0]) for n in names)
    more = f" (first {cols} of up to {total} groups)" if total > cols else ""
    fig.suptitle(f"LR-Net geometry priors, rows = layers, columns = groups{more}", fontsize=9)
    return fig
