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
from matplotlib.ticker import MaxNLocator

from relviz.core.errors import BadInputError
from relviz.core.grid import check_point
from relviz.core.trace import Trace, softmax
from relviz.render.figure import (
    NoFiniteValues,
    colorbar,
    count_nonfinite,
    figure_title,
    finite_range,
    image_axes,
    mark_point,
    new_figure,
    opaque,
    range_norm,
    value_image,
)
from relviz.render.selection import Setting, check_panels
from relviz.render.style import current
from relviz.render.tiles import Tiles
from relviz.render.views import ViewOptions, register_view
from relviz.views.lrnet import (  # noqa: F401 - re-exported: the kernels are computed in the views layer
    PixelKernels,
    layer_names,
    pixel_kernels,
    resolve_layer,
    top_classes,
)
from relviz.views.palette import DIVERGING_CMAP

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


def _range(values: list[np.ndarray], symmetric: bool) -> Normalize:
    """The colour range of the finite values ((0, 1) when there is none: the panel is all 'no value')."""
    return range_norm(*(finite_range(values) or (0.0, 1.0)), symmetric)


def _default_groups(options: ViewOptions) -> int:
    """At most this many groups unless ``--set max_groups`` says: fewer at column size."""
    return int((options.extra or {}).get("max_groups", MAX_GROUPS if current().name == "page" else MAX_GROUPS // 2))


@register_view(
    "local-relation",
    ("lrnet",),
    "LR-Net: at --point and --layer, each group's k×k geometry prior, appearance term and final weight as three "
    "aligned panels (prior and appearance on one logit scale: they add up before the softmax); --head G picks "
    "one group",
    settings=GROUPS_SETTING,
    takes_object=False,
)
def local_relation_view(trace: Trace, options: ViewOptions) -> Figure:
    w, h = trace.image_size
    point = options.point or (w / 2, h / 2)
    check_point(point, trace.image_size)
    kernels = pixel_kernels(trace, options.layer, *point)
    count = kernels.geometry.shape[0]
    groups = _groups(options, count) if str(options.head).lower() not in ("mean", "all", "") else list(
        range(min(count, max(1, _default_groups(options)))))
    check_panels(3 * len(groups), "kernel panels (three per group)", "pick one group with --head G or fewer with "
                 "--set max_groups=N")
    logits = [kernels.geometry[groups], kernels.appearance[groups][:, kernels.valid]]
    if finite_range([*logits, kernels.weight[groups]]) is None:
        raise NoFiniteValues
    style = current()
    width = options.width or style.width
    page = width >= 5.0
    image_width = 1.9 if page else width
    grid_width = width - image_width - 0.2 if page else width
    group_cols = max(1, min(len(groups), int((grid_width - 0.4) // (3 * 0.55 + 0.25))))
    rows = math.ceil(len(groups) / group_cols)
    logit_norm = _range(logits, True)
    weight_norm = _range([kernels.weight[groups]], False)
    terms = [
        ("geometry", kernels.geometry, DIVERGING_CMAP, logit_norm, "prior"),
        ("appearance", kernels.appearance, DIVERGING_CMAP, logit_norm, "appearance"),
        ("weight", kernels.weight, options.cmap, weight_norm, "weight ω"),
    ]
    fig = new_figure(width, style.max_height)
    count_nonfinite(fig, *logits, kernels.weight[groups])
    if page:
        left, right = fig.subfigures(1, 2, width_ratios=[image_width, grid_width], wspace=0.0)
    else:  # the image above the kernels, each part as tall as it needs
        tile = (grid_width - 0.4) / (3 * group_cols * 1.12 + (group_cols - 1) * 0.4)
        image_height = min(1.8, width * h / w) + 0.3 + 0.12 * len(top_classes(trace)[:3])
        left, right = fig.subfigures(2, 1, height_ratios=[image_height, rows * tile * 1.12 + 0.8], hspace=0.0)
    ax = left.add_subplot()
    image_axes(ax, trace.image, trace.image_size, f"{kernels.layer} at ({point[0]:.0f}, {point[1]:.0f})")
    x0, x1, y0, y1 = kernels.window_extent()
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="#00ff7f", linewidth=style.line))
    mark_point(ax, *point)
    classes = top_classes(trace)[:3]
    if classes:
        ax.set_xlabel("\n".join(f"{name}: {p:.2f}" for name, p in classes), fontsize=style.small)
    grid = right.add_subplot()
    k = kernels.geometry.shape[-1]
    window = (0, k, k, 0)
    tiles = Tiles(grid, rows, 3 * group_cols, aspect=1.0, gap=0.12, group=3, group_gap=0.4,
                  below=0.9 if options.colorbar else 0.0)
    mappables: dict[str, object] = {}
    for n, g in enumerate(groups):
        r, gc = n % rows, n // rows
        for t, (key, values, cmap, norm, label) in enumerate(terms):
            c = 3 * gc + t
            mappables[key] = value_image(grid, values[g], cmap, norm, extent=tiles.extent(r, c, window))
            tiles.frame(r, c, linewidth=style.thin)
            if r == 0:
                tiles.title(r, c, label, fontsize=style.small)
            if t == 0:
                tiles.row_label(r, c, f"g{g}", fontsize=style.small)
    if options.colorbar:  # under the first group's kernels: one bar for the logits, one for ω
        for key, (c0, c1), label in (("geometry", (0, 1), "logit (prior, Φ)"), ("weight", (2, 2), "ω")):
            bar = right.colorbar(opaque(mappables[key]), cax=tiles.below_axes(c0, c1, height=0.1, offset=0.2),
                                 orientation="horizontal")
            bar.set_label(label, fontsize=style.small, labelpad=1)
            bar.ax.xaxis.set_major_locator(MaxNLocator(3 if c1 > c0 else 2))
            bar.ax.tick_params(labelsize=style.small, length=1.5, pad=1, width=0.5)
            bar.outline.set_linewidth(0.4)
    shown = f"groups {groups[0]}–{groups[-1]} of {count}" if len(groups) > 1 else f"group {groups[0]} of {count}"
    figure_title(fig, f"local relation kernels ({k}×{k}) at output cell {kernels.cell}, {shown}: geometry prior, "
                      "appearance Φ, and ω = softmax(prior + Φ)")
    return fig


@register_view(
    "geometry-priors",
    ("lrnet",),
    "LR-Net: every layer's k×k geometry prior per group as a grid, each layer on its own range "
    "(--term geometry: logits; weight: softmax over the window, the fixed kernel the layer would use "
    "without appearance; --set range=shared: one range for all)",
    settings={**GROUPS_SETTING, "range": Setting(str, "one colour range per layer or for all", ("layer", "shared"))},
    takes_object=False,
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
    limit = _default_groups(options)
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
    cmap = DIVERGING_CMAP if symmetric else options.cmap
    per_layer = (options.extra or {}).get("range", "layer") == "layer"
    norms = [_range([p], symmetric) for p in priors] if per_layer else [_range(priors, symmetric)] * len(priors)
    style = current()
    width = options.width or style.width
    fig = new_figure(width, style.max_height)
    count_nonfinite(fig, *priors)
    ax = fig.add_subplot()
    bars = options.colorbar
    tiles = Tiles(ax, len(names), cols, gap=0.15, right=1.6 if (bars and per_layer) else 0.0)
    im = None
    for r, (name, prior, norm) in enumerate(zip(names, priors, norms, strict=True)):
        tiles.row_label(r, 0, name, fontsize=style.small)
        k = prior.shape[-1]
        for c in range(min(cols, prior.shape[0])):
            im = value_image(ax, prior[c], cmap, norm, extent=tiles.extent(r, c, (0, k, k, 0)))
            tiles.frame(r, c, linewidth=style.thin)
        if bars and per_layer:  # the row's colorbar, its range written at its ends (inside the row's height)
            bar = fig.colorbar(opaque(im), cax=tiles.right_axes(r), orientation="vertical")
            bar.set_ticks([])
            bar.outline.set_linewidth(0.4)
            x = tiles.width - tiles.right + 0.4
            _, top, _, bottom = tiles.box(r, 0)
            for y, value, va in ((top, norm.vmax, "top"), (bottom, norm.vmin, "bottom")):
                ax.annotate(f"{value:.2g}", (x, y), xytext=(1, 0), textcoords="offset points", ha="left", va=va,
                            fontsize=style.small)
    pitch_pt = (width - 0.8) * 72 / (tiles.width / (1.0 + tiles.gap))  # a tile and its gap, in points
    step = max(1, math.ceil((len(f"g{cols - 1}") * 0.65 * style.small + 2) / pitch_pt))
    for c in range(0, cols, step):  # every column's header, thinned when they would touch
        tiles.title(0, c, f"g{c}", fontsize=style.small)
    label = "geometry prior (logit)" if symmetric else "softmax of the geometry prior"
    if bars and not per_layer and im is not None:
        colorbar(fig, im, ax, label)
    total = max(int(trace.shape(f"lrnet/{n}/geometry")[0]) for n in names)
    more = f", first {cols} of {total} groups" if total > cols else ""
    ranges = "each layer on its own range" if per_layer else "one range for all layers"
    figure_title(fig, f"LR-Net {label}s: rows = layers, columns = groups{more}; {ranges}")
    return fig
