"""The ``detections`` view: boxes, classes and scores on the image, for every detector family."""

from __future__ import annotations

from matplotlib.figure import Figure

from relviz.core.trace import Trace
from relviz.render.figure import draw_boxes, image_axes, new_figure
from relviz.render.selection import captions, check_object, detection_count
from relviz.render.style import current
from relviz.render.views import ViewOptions, register_view

DETECTOR_FAMILIES = ("detr", "relation", "regionfeat")


def figure_size(trace: Trace, options: ViewOptions) -> tuple[float, float]:
    """The preset's width (or --width); a height for the image at that width (the final one follows the
    content)."""
    w, h = trace.image_size
    width = options.width or current().width
    return width, options.height or min(current().max_height, width * h / w + 0.4)


@register_view("detections", DETECTOR_FAMILIES, "boxes, classes and scores on the image")
def detections_view(trace: Trace, options: ViewOptions) -> Figure:
    selected = check_object(trace, options.object)
    fig = new_figure(*figure_size(trace, options))
    ax = fig.add_subplot()
    n = detection_count(trace)
    title = f"{n} detections" if n else "no detections above the score threshold"
    image_axes(ax, trace.image, trace.image_size, title)
    if n:
        draw_boxes(ax, trace["detections/boxes"], captions(trace), highlight=selected,
                   labels=trace["detections/labels"])
    return fig
