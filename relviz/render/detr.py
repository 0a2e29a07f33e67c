"""DETR figures: encoder self-attention at reference points (paper Fig. 3), decoder cross-attention
per object with heads as small multiples, and several objects' decoder attention on one image, each in
its own colour with its box (paper Fig. 6)."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from relviz.core.trace import Trace
from relviz.render.figure import (
    OVERLAY_OPACITY,
    colorbar,
    count_nonfinite,
    draw_boxes,
    figure_title,
    grid_columns,
    heatmap,
    image_axes,
    mark_point,
    message_figure,
    new_figure,
    object_colors,
    overlay,
    photo,
    shared_norm,
    tinted,
)
from relviz.render.selection import (
    Setting,
    captions,
    check_object,
    check_panels,
    checked_points,
    detection_count,
    detection_labels,
    head_selection,
    layer_index,
)
from relviz.render.style import current
from relviz.render.tiles import Tiles
from relviz.render.views import ViewOptions, register_view
from relviz.views import maps
from relviz.views.palette import box_color

ENCODER = "detr/encoder/self_attn"
CROSS = "detr/decoder/cross_attn"
#: how heatmaps are drawn: their cells (nearest) unless smoothing is asked
SMOOTH = {"interpolation": Setting(str, "draw the cells (nearest) or smooth them (bilinear)", ("nearest", "bilinear"))}


def default_points(trace: Trace, limit: int = 4) -> list[tuple[float, float]]:
    """Centres of the top detections (as in the paper's figure), else the image centre."""
    boxes = trace.arrays.get("detections/boxes", np.zeros((0, 4)))[:limit]
    if len(boxes):
        return [(float((b[0] + b[2]) / 2), float((b[1] + b[3]) / 2)) for b in boxes]
    w, h = trace.image_size
    return [(w / 2, h / 2)]


def encoder_maps(trace: Trace, points, layer: int) -> list[maps.Map]:
    """The encoder self-attention of each point's cell (every head), as the window computes it."""
    src = maps.source(trace, ENCODER)
    return [maps.point_map(trace, src, p, layer) for p in points]


def decoder_map(trace: Trace, obj: int, layer: int) -> maps.Map:
    """Decoder cross-attention of detection ``obj``'s query (every head), as the window computes it."""
    return maps.object_map(trace, maps.source(trace, CROSS), obj, layer)


def _objects(trace: Trace, options: ViewOptions, limit: int) -> list[int]:
    """The objects a figure shows: ``--object`` (repeatable) in the order given, else the ``limit`` strongest."""
    chosen = [check_object(trace, k) for k in options.objects] if options.objects else []
    if not chosen and options.object is not None:
        chosen = [check_object(trace, options.object)]
    return list(dict.fromkeys(chosen)) or list(range(min(detection_count(trace), limit)))


def _blank_unused(axes, used: int) -> None:
    for ax in axes[used:]:
        ax.set_visible(False)


@register_view("encoder-attention", ("detr",), "encoder self-attention from reference points (DETR Fig. 3): the "
               "points marked on the image, one map per point (--set boxes=show adds the detections)",
               settings={**SMOOTH, "boxes": Setting(str, "draw the detections on the points' image", ("hide", "show"))},
               takes_object=False)
def encoder_attention_view(trace: Trace, options: ViewOptions) -> Figure:
    points = checked_points(trace, options.points or ([options.point] if options.point else None))
    points = points or default_points(trace)
    check_panels(len(points) + 1, "panels (one per reference point)", "give fewer --point")
    layers, heads = trace.shape(ENCODER)[:2]
    layer = layer_index(options.layer, layers)
    head = head_selection(options.head, heads)
    views = encoder_maps(trace, points, layer)
    shown = [v.head(head) for v in views]
    norms = shared_norm(shown, options.shared_range)
    interpolation = options.extra.get("interpolation", "nearest")
    style = current()
    width = options.width or style.width
    bar_room = 0.6 if options.colorbar else 0.0
    per_panel_bars = options.colorbar and not options.shared_range
    cols = grid_columns(len(points) + 1, width - bar_room, 1.65 if per_panel_bars else 1.1)
    rows = math.ceil((len(points) + 1) / cols)
    fig = new_figure(width, style.max_height)
    count_nonfinite(fig, *shown)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    _blank_unused(axes, len(points) + 1)
    image_axes(axes[0], trace.image, trace.image_size, "reference points")
    if detection_count(trace) and options.extra.get("boxes", "hide") == "show":
        draw_boxes(axes[0], trace["detections/boxes"], captions(trace), labels=trace["detections/labels"])
    head_name = "head mean" if head is None else f"head {head}"
    maps_axes = []
    for i, ((x, y), view, m, norm) in enumerate(zip(points, views, shown, norms, strict=True)):
        mark_point(axes[0], x, y, label=str(i))
        ax = axes[i + 1]
        image_axes(ax, trace.image, trace.image_size, f"{i}: ({x:.0f}, {y:.0f})")
        im = heatmap(ax, m, view.rect, norm, options.cmap, interpolation=interpolation)
        mark_point(ax, x, y)
        maps_axes.append(ax)
        if options.colorbar and not options.shared_range:
            colorbar(fig, im, ax, "attention")
    figure_title(fig, f"encoder self-attention from each point, layer {layer}, {head_name}")
    if options.colorbar and options.shared_range:
        colorbar(fig, im, list(axes[: len(points) + 1]), "attention")
    return fig


@register_view("decoder-attention", ("detr",), "decoder cross-attention per object (--object, repeatable), heads "
               "as small multiples", settings=SMOOTH, several_objects=True)
def decoder_attention_view(trace: Trace, options: ViewOptions) -> Figure:
    n = detection_count(trace)
    if n == 0:
        return message_figure("no detections above the score threshold: no decoder attention to show",
                              "decoder cross-attention")
    style = current()
    objects = _objects(trace, options, 4 if style.name == "page" else 1)
    layers, heads = trace.shape(CROSS)[:2]
    layer = layer_index(options.layer, layers)
    head = head_selection(options.head, heads)
    columns = [head] if head is not None else [*range(heads), None]
    check_panels(len(columns) * len(objects), "panels (objects × heads and their mean)",
                 "choose one head with --head H or one object with --object K")
    views = [decoder_map(trace, k, layer) for k in objects]
    shown = [[v.head(h) for h in columns] for v in views]
    norms = shared_norm([m for row in shown for m in row], options.shared_range)
    interpolation = options.extra.get("interpolation", "nearest")
    width = options.width or style.width
    fig = new_figure(width, style.max_height)
    count_nonfinite(fig, *[m for row in shown for m in row])
    boxes, labels = trace["detections/boxes"], trace["detections/labels"]
    names = detection_labels(trace)
    if len(objects) > 1:
        return _objects_by_heads(fig, trace, options, objects, columns, views, shown, norms, layer)
    if len(objects) == 1:  # one object: its heads as a grid
        cols = grid_columns(len(columns), width - 0.7, 0.75)
        cols = math.ceil(len(columns) / math.ceil(len(columns) / cols))  # rows as full as they can be
        grid = fig.subplots(math.ceil(len(columns) / cols), cols, squeeze=False)
        cells = [(grid.flat[c], 0, c) for c in range(len(columns))]
        _blank_unused(grid.ravel(), len(columns))
        used = [a for a, _, _ in cells]
    else:  # objects as rows, heads as columns
        grid = fig.subplots(len(objects), len(columns), squeeze=False)
        cells = [(grid[r, c], r, c) for r in range(len(objects)) for c in range(len(columns))]
        used = grid.ravel().tolist()
    panel = (width - 0.8) / min(len(columns), grid.shape[1])
    for ax, r, c in cells:
        h, k = columns[c], objects[r]
        short = f"h{h}" if panel < 0.6 else f"head {h}"
        title = ("mean" if h is None else short) if (r == 0 or len(objects) == 1) else None
        image_axes(ax, trace.image, trace.image_size, title)
        im = heatmap(ax, shown[r][c], views[r].rect, norms[r * len(columns) + c], options.cmap,
                     interpolation=interpolation)
        draw_boxes(ax, boxes[k : k + 1], linewidth=style.thin, labels=labels[k : k + 1])
        if c == 0 and len(objects) > 1:
            ax.set_ylabel(names[k].split(" ")[0] if panel < 0.9 else names[k], fontsize=style.small)
        if options.colorbar and not options.shared_range:
            colorbar(fig, im, ax, "attention")
    who = names[objects[0]] if len(objects) == 1 else "each object (rows)"
    figure_title(fig, f"decoder cross-attention of {who} per head, layer {layer}")
    if options.colorbar and options.shared_range:
        colorbar(fig, im, used, "attention")
    return fig


def _objects_by_heads(fig: Figure, trace: Trace, options: ViewOptions, objects: list[int], columns: list,
                      views: list, shown: list, norms: list, layer: int) -> Figure:
    """Objects as rows and heads as columns, as tiles of one axes (one layout pass for dozens of panels)."""
    style = current()
    w, h = trace.image_size
    window = (0, w, h, 0)
    width = fig.get_figwidth()
    ax = fig.add_subplot()
    tiles = Tiles(ax, len(objects), len(columns), aspect=h / w, gap=0.08)
    pitch = (width - 1.2) / len(columns)
    boxes, labels = trace["detections/boxes"], trace["detections/labels"]
    names = detection_labels(trace)
    interpolation = options.extra.get("interpolation", "nearest")
    im = None
    for r, k in enumerate(objects):
        x0, y0, x1, y1 = boxes[k]
        for c, head in enumerate(columns):
            clip = tiles.clip(r, c)
            if trace.image is not None:
                photo(ax, trace.image, tiles.extent(r, c, window)).set_clip_path(clip)
            else:
                tiles.background(r, c, "#d0d0d0")
            mx0, my0, mx1, my1 = views[r].rect
            im = overlay(ax, shown[r][c], tiles.extent(r, c, window, (mx0, mx1, my1, my0)),
                         norms[r * len(columns) + c], options.cmap, interpolation=interpolation)
            im.set_clip_path(clip)
            (bx0, by0), (bx1, by1) = tiles.point(r, c, window, x0, y0), tiles.point(r, c, window, x1, y1)
            ax.add_patch(Rectangle((bx0, by0), bx1 - bx0, by1 - by0, fill=False, edgecolor=box_color(labels[k]),
                                   linewidth=style.thin, clip_path=clip))
            tiles.frame(r, c, linewidth=style.thin)
            if r == 0:
                tiles.title(r, c, "mean" if head is None else (f"h{head}" if pitch < 0.6 else f"head {head}"),
                            fontsize=style.small)
        tiles.row_label(r, 0, names[k].split(" ")[0] if pitch < 0.9 else names[k], fontsize=style.small)
    figure_title(fig, f"decoder cross-attention of each object (rows) per head, layer {layer}")
    if options.colorbar and im is not None:
        colorbar(fig, im, ax, "attention" if options.shared_range else "attention (each panel its own range)")
    return fig


@register_view("decoder-objects", ("detr",), "decoder cross-attention of several objects on one image, each in "
               "its own colour with its box (DETR Fig. 6; --object repeatable, --head H|mean)",
               settings={**SMOOTH, "opacity": Setting(float, "the opacity of each map's strongest cells", low=0.05,
                                                       high=1.0)},
               several_objects=True)
def decoder_objects_view(trace: Trace, options: ViewOptions) -> Figure:
    if detection_count(trace) == 0:
        return message_figure("no detections above the score threshold: no decoder attention to show",
                              "decoder attention per object")
    style = current()
    objects = _objects(trace, options, 4)
    check_panels(len(objects), "objects", "give fewer --object")
    layers, heads = trace.shape(CROSS)[:2]
    layer = layer_index(options.layer, layers)
    head = head_selection(options.head, heads)
    shown = [(decoder_map(trace, k, layer), k) for k in objects]
    values = [view.head(head) for view, _ in shown]
    norms = shared_norm(values, False)  # each object on its own range, as in the paper
    opacity = float(options.extra.get("opacity", OVERLAY_OPACITY))
    interpolation = options.extra.get("interpolation", "nearest")
    width = options.width or style.width
    fig = new_figure(width, style.max_height)
    count_nonfinite(fig, *values)
    ax = fig.add_subplot()
    image_axes(ax, trace.image, trace.image_size)
    colors = object_colors(len(objects))
    for (view, _), m, norm, color in zip(shown, values, norms, colors, strict=True):
        tinted(ax, m, view.rect, norm, color, opacity, interpolation)
    boxes, caps = trace["detections/boxes"], captions(trace)
    draw_boxes(ax, boxes[objects], [caps[k] for k in objects], colors=colors)
    head_name = "head mean" if head is None else f"head {head}"
    figure_title(fig, f"decoder attention of {len(objects)} object{'s' if len(objects) != 1 else ''}, "
                      f"each in its box's colour on its own range (layer {layer}, {head_name})")
    return fig
