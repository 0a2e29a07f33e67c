"""What a figure prints as text, measured by matplotlib after drawing: sizes, overlaps, clipping."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

from relviz.core.limits import MAX_FIGURE_TEXT_PT, MIN_FIGURE_TEXT_PT
from relviz.render.figure import drawing_context

ROOT = Path(__file__).resolve().parents[1]
RESOURCES = ROOT / "resources"
#: the bundled demos on the bundled inputs, at low thresholds: many detections, the crowded case
DEMOS = {
    "detr": ("demo-detr", RESOURCES / "scene-1.png", 0.2),
    "relation": ("demo-relation", RESOURCES / "scene-1.png", 0.3),
    "regionfeat": ("demo-regionfeat", RESOURCES / "scene-1.png", 0.3),
    "lrnet": ("demo-lrnet", RESOURCES / "tiles" / "patch-0.png", 0.7),
    "nonlocal": ("demo-nonlocal", RESOURCES / "tiles" / "pair-0.png", 0.7),
    "clip": ("demo-nonlocal-clip", RESOURCES / "clip-0.mp4", 0.7),
}
TOLERANCE_PT = 0.5  # anti-aliasing: a hair of overlap is not a collision


@contextmanager
def _recording():
    """Record every text matplotlib really draws (visible, non-empty), with the renderer it drew on."""
    drawn: list[tuple[Text, object]] = []
    original = Text.draw

    def draw(self, renderer):
        if self.get_visible() and self.get_text().strip():
            drawn.append((self, renderer))
        return original(self, renderer)

    Text.draw = draw
    try:
        yield drawn
    finally:
        Text.draw = original


def drawn_texts(fig: Figure) -> list[tuple[Text, object]]:
    """The texts of ``fig`` as drawn at 72 dpi (a pixel is a point), with their renderer."""
    fig.set_dpi(72)
    with drawing_context(fig), _recording() as drawn:
        FigureCanvasAgg(fig).draw()
    return drawn


def text_problems(fig: Figure) -> list[str]:
    """Every text outside 5–12 pt, outside the figure, clipped by its axes, or overlapping another."""
    problems = []
    texts = drawn_texts(fig)
    page = fig.bbox
    boxes = []
    for text, renderer in texts:
        name = repr(text.get_text()[:40])
        size = text.get_fontsize()
        if not MIN_FIGURE_TEXT_PT <= size <= MAX_FIGURE_TEXT_PT:
            problems.append(f"{name} is {size:g} pt")
        box = Text.get_window_extent(text, renderer)
        if (box.x0 < page.x0 - TOLERANCE_PT or box.x1 > page.x1 + TOLERANCE_PT
                or box.y0 < page.y0 - TOLERANCE_PT or box.y1 > page.y1 + TOLERANCE_PT):
            problems.append(f"{name} lies outside the figure ({box.bounds} in {page.bounds})")
        clip = text.get_clip_box() if text.get_clip_on() else None
        if clip is not None and (box.x0 < clip.x0 - TOLERANCE_PT or box.x1 > clip.x1 + TOLERANCE_PT
                                 or box.y0 < clip.y0 - TOLERANCE_PT or box.y1 > clip.y1 + TOLERANCE_PT):
            problems.append(f"{name} is clipped by its axes")
        boxes.append((name, box))
    for i, (name_a, a) in enumerate(boxes):
        for name_b, b in boxes[i + 1:]:
            overlap_x = min(a.x1, b.x1) - max(a.x0, b.x0)
            overlap_y = min(a.y1, b.y1) - max(a.y0, b.y0)
            if overlap_x > TOLERANCE_PT and overlap_y > TOLERANCE_PT:
                problems.append(f"{name_a} overlaps {name_b}")
    return problems


def demo_traces_in(folder: Path, keys=None) -> dict:
    """Traces of the bundled demos (``keys`` of :data:`DEMOS`, default all), saved in ``folder`` and read back
    as ``relviz export --trace`` reads them."""
    from relviz import zoo
    from relviz.core.trace import Trace

    out = {}
    for key in keys or DEMOS:
        model, path, threshold = DEMOS[key]
        loaded = zoo.load_model(model, device="cpu")
        trace = zoo.run_model(loaded, path, zoo.RunOptions(threshold=threshold))
        out[key] = Trace.load(trace.save(folder / f"{key}.npz"))
    return out
