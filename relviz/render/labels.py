"""Captions on an image placed where they collide with nothing: box labels, values beside boxes, notes.

Where a caption can go depends on the final layout (the axes' size in points, which the layout engine
decides when the figure is drawn), so a :class:`LabelPlacer` places its captions while the figure is
drawn, before the captions themselves are: each caption, in the order given (the most important first),
takes the first of its candidate spots that lies inside the axes and overlaps no caption placed before
it; a caption with no such spot is not drawn (thinned: its box stays, in its colour).  Every caption the
figure prints is then legible and whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.text import Text
from matplotlib.transforms import Bbox

#: the room kept around a caption (points): its background box's pad and a hair
MARGIN_PT = 1.5

#: spots around a box (x0, y0, x1, y1 in data, y downwards): (corner x, corner y, ha, va)
AROUND_BOX = (
    ("x0", "y0", "left", "bottom"),  # above the top-left corner
    ("x0", "y1", "left", "top"),  # below the bottom-left corner
    ("x1", "y0", "right", "bottom"),  # above, right-aligned
    ("x1", "y1", "right", "top"),  # below, right-aligned
    ("x0", "y0", "left", "top"),  # inside the top-left corner
    ("x0", "y1", "left", "bottom"),  # inside the bottom-left corner
)


@dataclass
class _Caption:
    text: Text
    spots: list[tuple[float, float, str, str]]


class LabelPlacer(Artist):
    """Places the captions of one axes when it is drawn; see the module's docstring."""

    def __init__(self, ax: Axes) -> None:
        super().__init__()
        self.ax = ax
        self.captions: list[_Caption] = []
        self.hidden = 0  # captions the last draw found no room for
        self.set_zorder(-100)  # drawn (placing the captions) before anything else of the axes
        self.set_in_layout(False)
        ax.add_artist(self)

    def get_window_extent(self, renderer=None) -> Bbox:
        return Bbox.null()  # takes no room of its own

    def add(self, text: Text, spots: Sequence[tuple[float, float, str, str]]) -> Text:
        """Place ``text`` at the first free spot of ``spots`` — (x, y, ha, va) in data coordinates."""
        text.set_clip_on(False)
        self.captions.append(_Caption(text, list(spots)))
        return text

    def add_box_caption(self, text: Text, box: Sequence[float]) -> Text:
        """Place ``text`` around (or inside) ``box`` = (x0, y0, x1, y1)."""
        corners = {"x0": box[0], "y0": box[1], "x1": box[2], "y1": box[3]}
        return self.add(text, [(corners[x], corners[y], ha, va) for x, y, ha, va in AROUND_BOX])

    def draw(self, renderer) -> None:
        frame = self.ax.get_window_extent(renderer)
        margin = MARGIN_PT * renderer.points_to_pixels(1.0)
        placed: list[Bbox] = []
        self.hidden = 0
        for caption in self.captions:
            text = caption.text
            text.set_visible(True)
            for x, y, ha, va in caption.spots:
                text.set_position((x, y))
                text.set_horizontalalignment(ha)
                text.set_verticalalignment(va)
                extent = text.get_window_extent(renderer).padded(margin)
                inside = (extent.x0 >= frame.x0 - 0.5 and extent.x1 <= frame.x1 + 0.5
                          and extent.y0 >= frame.y0 - 0.5 and extent.y1 <= frame.y1 + 0.5)
                if inside and not any(extent.overlaps(other) for other in placed):
                    placed.append(extent)
                    break
            else:
                text.set_visible(False)
                self.hidden += 1
        self.stale = False


def placer(ax: Axes) -> LabelPlacer:
    """The axes' label placer (one per axes, made on first use)."""
    existing = getattr(ax, "_relviz_placer", None)
    if existing is None:
        existing = LabelPlacer(ax)
        ax._relviz_placer = existing
    return existing
