"""DETR figures: encoder self-attention at reference points (paper Fig. 3) and decoder
cross-attention per object with heads as small multiples (paper Fig. 6)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from relviz.core.grid import Grid
from relviz.core.limits import MAX_HEATMAP_PIXELS
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
    captions,
    check_object,
    check_panels,
    checked_points,
    detection_count,
    head_selection,
    layer_index,
    select_head,
)
from relviz.render.views import ViewOptions, register_view

ENCODER = "detr/encoder/self_attn"
CROSS = "detr/decoder/cross_attn"
MAX_OBJECTS = 6


def default_points(trace: Trace, limit: int = 4) -> list[tuple[float, float]]:
    """Centres of the top detections (as in the paper's figure), else the image centre."""
    boxes = trace.arrays.get("detections/boxes", np.zeros((0, 4)))[:limit]
    if len(boxes):
        return [(float((b[0] + b[2]) / 2), float((b[1] + b[3]) / 2)) for b in boxes]
    w, h = trace.image_size
    return [(w / 2, h / 2)]


def encoder_rows(trace: Trace, points, layer: int, head: int | None) -> list[np.ndarray]:
    """Encoder self-attention of each point's cell over the grid cells (S,)."""
    grid = Grid.from_json(trace.meta["grid"])
    return [select_head(trace.rows(ENCODER, grid.cell_of_point(x, y))[layer], head) for x, y in points]


def encoder_maps(trace: Trace, points, layer: int, head: int | None) -> list[np.ndarray]:
    """Encoder self-attention of each point's cell over the image (at most MAX_HEATMAP_PIXELS each)."""
    grid = Grid.from_json(trace.meta["grid"])
    return [grid.to_image(r, trace.image_size, MAX_HEATMAP_PIXELS) for r in encoder_rows(trace, points, layer, head)]


def decoder_row(trace: Trace, obj: int, layer: int, head: int | None) -> np.ndarray:
    """Decoder cross-attention of detection ``obj``'s query over the grid cells (S,)."""
    query = int(trace["detections/query"][obj])
    return select_head(trace.rows(CROSS, query)[layer], head)  # (H, S) → (S,)


def decoder_map(trace: Trace, obj: int, layer: int, head: int | None) -> np.ndarray:
    grid = Grid.from_json(trace.meta["grid"])
    return grid.to_image(decoder_row(trace, obj, layer, head), trace.image_size, MAX_HEATMAP_PIXELS)


def _panel_size(trace: Trace, columns: int, rows: int, options: ViewOptions) -> tuple[float, float]:
    w, h = trace.image_size
    width = options.width or min(2.2 * columns + 0.8, 14.0)
    return width, options.height or (width - 0.8) / columns * h / w * rows + 0.5


@register_view("encoder-attention", ("detr",), "encoder self-attention from reference points (DETR Fig. 3)")
def encoder_attention_view(trace: Trace, options: ViewOptions) -> Figure:
    points = checked_points(trace, options.points or ([options.point] if options.point else None))
    points = points or default_points(trace)
    check_panels(len(points) + 1, "panels (one per reference point)", "give fewer --point")
    layers, heads = trace.shape(ENCODER)[:2]
    layer = layer_index(options.layer, layers)
    head = head_selection(options.head, heads)
    grid = Grid.from_json(trace.meta["grid"])
    rows = encoder_rows(trace, points, layer, head)
    maps = [grid.to_image(r, trace.image_size, MAX_HEATMAP_PIXELS) for r in rows]
    norms = shared_norm(maps, options.shared_range)
    fig = new_figure(*_panel_size(trace, len(points) + 1, 1, options))
    count_nonfinite(fig, *rows)
    axes = fig.subplots(1, len(points) + 1, squeeze=False)[0]
    image_axes(axes[0], trace.image, trace.image_size, "reference points")
    if detection_count(trace):
        draw_boxes(axes[0], trace["detections/boxes"], captions(trace))
    head_name = "head mean" if head is None else f"head {head}"
    for i, ((x, y), m, norm) in enumerate(zip(points, maps, norms)):
        mark_point(axes[0], x, y, label=str(i))
        ax = axes[i + 1]
        image_axes(ax, trace.image, trace.image_size, f"point {i} ({x:.0f}, {y:.0f})")
        im = heatmap(ax, m, trace.image_size, norm, options.cmap)
        mark_point(ax, x, y)
        if options.colorbar and not options.shared_range:
            colorbar(fig, im, ax, "attention")
    fig.suptitle(f"encoder self-attention, layer {layer}, {head_name}", fontsize=9)
    if options.colorbar and options.shared_range:
        colorbar(fig, im, list(axes[1:]), "attention")
    return fig


@register_view("decoder-attention", ("detr",), "decoder cross-attention per object, heads as small multiples "
               "(DETR Fig. 6)")
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
    grid = Grid.from_json(trace.meta["grid"])
    rows = [[decoder_row(trace, k, layer, h) for h in columns] for k in objects]
    maps = [[grid.to_image(r, trace.image_size, MAX_HEATMAP_PIXELS) for r in row] for row in rows]
    norms = shared_norm([m for row in maps for m in row], options.shared_range)
    fig = new_figure(*_panel_size(trace, len(columns), len(objects), options))
    count_nonfinite(fig, *[r for row in rows for r in row if r is not None])
    axes = fig.subplots(len(objects), len(columns), squeeze=False)
    boxes, caps = trace["detections/boxes"], captions(trace)
    for r, k in enumerate(objects):
        for c, h in enumerate(columns):
            ax = axes[r, c]
            title = ("mean" if h is None else f"head {h}") if r == 0 else None
            image_axes(ax, trace.image, trace.image_size, title)
            im = heatmap(ax, maps[r][c], trace.image_size, norms[r * len(columns) + c], options.cmap)
            draw_boxes(ax, boxes[k : k + 1], [caps[k]] if c == 0 else None, linewidth=0.8, first_index=k)
            if options.colorbar and not options.shared_range:
                colorbar(fig, im, ax, "attention")
    fig.suptitle(f"decoder cross-attention, layer {layer}", fontsize=9)
    if options.colorbar and options.shared_range:
        colorbar(fig, im, axes.ravel().tolist(), "attention")
    return fig
