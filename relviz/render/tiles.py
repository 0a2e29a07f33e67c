"""Small multiples as tiles of one axes: a fixed grid that costs one axes and one layout pass.

An axes per panel costs matplotlib ≈ 10 ms to build and as much again for every constrained-layout pass
and draw; at 50–80 panels (LR-Net's groups × layers) that was most of a figure's time.  A :class:`Tiles`
grid lays the panels out as unit tiles in one axes (tile ``(r, c)`` is ``box(r, c)`` in the axes' data
coordinates, rows downwards), and maps each panel's own extent into its tile, so the panels draw with
the same images, frames, titles and labels they had as axes.
"""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.patches import Rectangle


@dataclass
class Tiles:
    """``rows`` × ``cols`` tiles, each 1 wide and ``aspect`` high, ``gap`` tile widths apart; ``below``
    tile heights of room under the last row and ``right`` tile widths right of the last column (for
    colorbars); columns in runs of ``group`` (the three kernels of one LR-Net group) ``group_gap`` apart."""

    ax: Axes
    rows: int
    cols: int
    aspect: float = 1.0
    gap: float = 0.12
    below: float = 0.0
    right: float = 0.0
    group: int = 0
    group_gap: float = 0.0

    def __post_init__(self) -> None:
        self.ax.set_xlim(0.0, self.width)
        self.ax.set_ylim(self.height, 0.0)
        self.ax.set_aspect("equal")
        self.ax.axis("off")
        # PDF and SVG would composite every image of the axes into one, resampling each tile over the whole
        # union (seconds for 80 tiles); embedded one by one, each tile is an image of its own, as an axes' was
        self.ax.get_figure(root=True).suppressComposite = True

    def _x0(self, c: int) -> float:
        extra = (c // self.group) * (self.group_gap - self.gap) if self.group else 0.0
        return c * (1.0 + self.gap) + extra

    @property
    def width(self) -> float:
        return self._x0(self.cols - 1) + 1.0 + self.right

    @property
    def height(self) -> float:
        return self.rows * (self.aspect + self.gap) - self.gap + self.below * self.aspect

    def box(self, r: int, c: int) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of tile (r, c); y0 is its top."""
        x0, y0 = self._x0(c), r * (self.aspect + self.gap)
        return x0, y0, x0 + 1.0, y0 + self.aspect

    def extent(self, r: int, c: int, window: tuple[float, float, float, float],
               part: tuple[float, float, float, float] | None = None) -> tuple[float, float, float, float]:
        """Where ``part`` lies in tile (r, c) when the tile shows ``window``; both are matplotlib extents
        (left, right, bottom, top) in the panel's own coordinates, top < bottom (image rows downwards).
        The result is an extent in the axes (for ``imshow``); ``part`` defaults to the whole window."""
        left, right, bottom, top = part if part is not None else window
        (x0, y0), (x1, y1) = self.point(r, c, window, left, bottom), self.point(r, c, window, right, top)
        return x0, x1, y0, y1

    def point(self, r: int, c: int, window: tuple[float, float, float, float], x: float,
              y: float) -> tuple[float, float]:
        """Panel coordinates (x, y) in tile (r, c) showing ``window`` (left, right, bottom, top)."""
        wl, wr, wb, wt = window
        x0, y0, x1, y1 = self.box(r, c)
        return x0 + (x - wl) / (wr - wl) * (x1 - x0), y0 + (y - wt) / (wb - wt) * (y1 - y0)

    def clip(self, r: int, c: int) -> Rectangle:
        """A patch to clip a tile's artists to it (``artist.set_clip_path(tiles.clip(r, c))``)."""
        x0, y0, x1, y1 = self.box(r, c)
        return Rectangle((x0, y0), x1 - x0, y1 - y0, transform=self.ax.transData)

    def background(self, r: int, c: int, color: str) -> None:
        x0, y0, x1, y1 = self.box(r, c)
        self.ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, facecolor=color, edgecolor="none", zorder=0))

    def frame(self, r: int, c: int, linewidth: float = 0.8) -> None:
        """The tile's border, as an axes' spines would draw it."""
        x0, y0, x1, y1 = self.box(r, c)
        self.ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="black",
                                    linewidth=linewidth, zorder=3))

    def title(self, r: int, c: int, text: str, fontsize: float = 6) -> None:
        x0, y0, x1, _ = self.box(r, c)
        self.ax.annotate(text, ((x0 + x1) / 2, y0), xytext=(0, 3), textcoords="offset points", ha="center",
                         va="bottom", fontsize=fontsize)

    def row_label(self, r: int, c: int, text: str, fontsize: float = 7) -> None:
        """A label left of tile (r, c), written upwards as an axes' y label."""
        x0, y0, _, y1 = self.box(r, c)
        self.ax.annotate(text, (x0, (y0 + y1) / 2), xytext=(-3, 0), textcoords="offset points", ha="right",
                         va="center", rotation=90, fontsize=fontsize)

    def below_axes(self, c0: int, c1: int, height: float = 0.12, offset: float = 0.35) -> Axes:
        """An axes under tiles c0..c1 of the last row, inside the room ``below`` (for a colorbar); ``offset``
        and ``height`` in tile heights."""
        x0 = self.box(0, c0)[0]
        x1 = self.box(0, c1)[2]
        top = self.rows * (self.aspect + self.gap) - self.gap + offset * self.aspect
        w, h = self.width, self.height
        return self.ax.inset_axes([x0 / w, 1 - (top + height * self.aspect) / h, (x1 - x0) / w,
                                   height * self.aspect / h])

    def right_axes(self, r: int, width: float = 0.15, offset: float = 0.15) -> Axes:
        """An axes right of row ``r``, inside the room ``right`` (a row's colorbar); ``width`` and ``offset``
        in tile widths."""
        x0 = self._x0(self.cols - 1) + 1.0 + offset
        _, y0, _, y1 = self.box(r, 0)
        w, h = self.width, self.height
        return self.ax.inset_axes([x0 / w, 1 - y1 / h, width / w, (y1 - y0) / h])
