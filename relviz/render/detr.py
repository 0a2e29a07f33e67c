"""DETR figures: encoder self-attention at reference points (paper Fig. 3) and decoder
cross-attention per object with heads as small multiples (paper Fig. 6)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from relviz.core.trace import Trace
from relviz.render.figure import (
    colorbar,
    count_nonfinite,
    draw_boxes,
    heatmap,
    image_axes,
    mark_point,
    message_figure,
    new_figure,
    shared_norm,
)
from relviz.render.selection import (
    Setting,
    captions,
    check_object,
    check_panels,
    checked_points,
    detection_count,
    head_selection,
    layer_index,
)
from relviz.render.views import ViewOptions, register_view
from relviz.views import maps

ENCODER = "detr/encoder/self_attn"
CROSS = "detr/decoder/cross_attn"
MAX_OBJECTS = 6
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


def _panel_size(trace: Trace, columns: int, rows: int, options: ViewOptions) -> tuple[float, float]:
    w, h = trace.image_size
    width = options.width or min(2.2 * columns + 0.8, 14.0)
    return width, options.height or (width - 0.8) / columns * h / w * rows + 0.5


@register_view("encoder-attention", ("detr",), "encoder self-attention from reference points (DETR Fig. 3)",
               settings=SMOOTH)
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
    fig = new_figure(*_panel_size(trace, len(points) + 1, 1, options))
    count_nonfinite(fig, *shown)
    axes = fig.subplots(1, len(points) + 1, squeeze=False)[0]
    image_axes(axes[0], trace.image, trace.image_size, "reference points")
    if detection_count(trace):
        draw_boxes(axes[0], trace["detections/boxes"], captions(trace), labels=trace["detections/labels"])
    head_name = "head mean" if head is None else f"head {head}"
    for i, ((x, y), view, m, norm) in enumerate(zip(points, views, shown, norms, strict=True)):
        mark_point(axes[0], x, y, label=str(i))
        ax = axes[i + 1]
        image_axes(ax, trace.image, trace.image_size, f"point {i} ({x:.0f}, {y:.0f})")
        im = heatmap(ax, m, view.rect, norm, options.cmap, interpolation=interpolation)
        mark_point(ax, x, y)
        if options.colorbar and not options.shared_range:
            colorbar(fig, im, ax, "attention")
    fig.suptitle(f"encoder self-attention, layer {layer}, {head_name}", fontsize=9)
    if options.colorbar and options.shared_range:
        colorbar(fig, im, list(axes[1:]), "attention")
    return fig


@register_view("decoder-attention", ("detr",), "decoder cross-attention per object, heads as small multiples "
               "(DETR Fig. 6)", settings=SMOOTH)
def decoder_attention_view(trace: Trace, options: ViewOptions) -> Figure:
    selected = check_object(trace, options.object)
    n = detection_count(trace)
    if n == 0:
        return message_figure("no detections above the score threshold:\nno decoder attention to show",
                              "decoder cross-attention")
    objects = [selected] if selected is not None else list(range(min(n, MAX_OBJECTS)))
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
    fig = new_figure(*_panel_size(trace, len(columns), len(objects), options))
    count_nonfinite(fig, *[m for row in shown for m in row])
    axes = fig.subplots(len(objects), len(columns), squeeze=False)
    boxes, caps, labels = trace["detections/boxes"], captions(trace), trace["detections/labels"]
    for r, k in enumerate(objects):
        for c, h in enumerate(columns):
            ax = axes[r, c]
            title = ("mean" if h is None else f"head {h}") if r == 0 else None
            image_axes(ax, trace.image, trace.image_size, title)
            im = heatmap(ax, shown[r][c], views[r].rect, norms[r * len(columns) + c], options.cmap,
                         interpolation=interpolation)
            draw_boxes(ax, boxes[k : k + 1], [caps[k]] if c == 0 else None, linewidth=0.8, labels=labels[k : k + 1])
            if options.colorbar and not options.shared_range:
                colorbar(fig, im, ax, "attention")
    fig.suptitle(f"decoder cross-attention, layer {layer}", fontsize=9)
    if options.colorbar and options.shared_range:
        colorbar(fig, im, axes.ravel().tolist(), "attention")
    return fig
