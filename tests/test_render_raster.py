"""Images drawn at their output pixels (relviz.render.raster) put the same pixels where matplotlib's own
resampling puts them: a heatmap's cells exactly, a photo within rounding of the bilinear filter."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from PIL import Image

from relviz.render.figure import colormap, heatmap, masked, overlay_colormap, photo, save_figure, value_image
from relviz.render.raster import PixelImage


def _pixels(fig: Figure, dpi: int = 100) -> np.ndarray:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return np.asarray(Image.open(buf).convert("RGBA")).astype(int)


def _pair(draw, size=(3.0, 2.4), dpi=100) -> tuple[np.ndarray, np.ndarray]:
    """The figure drawn by ``draw(ax, ours)`` with relviz's images and with matplotlib's imshow."""
    out = []
    for ours in (True, False):
        fig = Figure(figsize=size)
        ax = fig.add_axes((0.1, 0.1, 0.8, 0.8))
        draw(ax, ours)
        out.append(_pixels(fig, dpi))
    return out[0], out[1]


CELLS = np.array([[0.0, 1.0, 2.0], [3.0, np.nan, 5.0], [6.0, 7.0, 8.0], [9.0, 10.0, np.inf]])


@pytest.mark.parametrize("ylim", [(4, 0), (0, 4)])
def test_cells_land_on_the_same_pixels_as_imshow(ylim):
    norm = Normalize(0.0, 10.0)
    extent = (0.0, 30.0, 40.0, 0.0)

    def draw(ax, ours):
        kwargs = dict(cmap=colormap("viridis"), norm=norm, interpolation="nearest", extent=extent, alpha=0.6)
        if ours:
            im = value_image(ax, CELLS, "viridis", norm, extent=extent, alpha=0.6)
            assert isinstance(im, PixelImage)
        else:
            ax.imshow(masked(CELLS), **kwargs)
        ax.set_ylim(ylim[0] * 10, ylim[1] * 10)

    ours, theirs = _pair(draw)
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() <= 1  # alpha rounding at most
    assert len(np.unique(ours.reshape(-1, 4), axis=0)) >= 12  # the cells themselves, not a blank axes


def test_heatmap_over_part_of_the_axes_is_clipped_like_imshow():
    norm = Normalize(0.0, 10.0)

    def draw(ax, ours):
        ax.set_xlim(0, 100)
        ax.set_ylim(80, 0)
        if ours:
            heatmap(ax, CELLS, (-20.0, 10.0, 60.0, 90.0), norm, "inferno")  # sticks out left and bottom
        else:
            ax.imshow(masked(CELLS), extent=(-20.0, 60.0, 90.0, 10.0), cmap=overlay_colormap("inferno"), norm=norm,
                      interpolation="nearest", interpolation_stage="data")
        ax.set_xlim(0, 100)
        ax.set_ylim(80, 0)

    ours, theirs = _pair(draw)
    assert np.abs(ours - theirs).max() <= 1


def test_photo_is_scaled_bilinearly_to_the_pixels_it_covers():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(small).resize((40, 32), Image.Resampling.BILINEAR))  # few sharp edges

    def draw(ax, ours):
        if ours:
            photo(ax, smooth, (0, 40, 32, 0))
        else:
            ax.imshow(smooth, extent=(0, 40, 32, 0), interpolation="bilinear")

    ours, theirs = _pair(draw, dpi=200)
    diff = np.abs(ours - theirs).max(-1)
    assert np.mean(diff > 8) < 0.01 and diff.max() <= 40  # the two bilinear filters differ by rounding only


def test_the_image_handed_to_the_renderer_is_uint8_at_its_output_size():
    fig = Figure(figsize=(4.0, 4.0), dpi=300)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    im = photo(ax, np.zeros((16, 16, 3), np.uint8), (0, 16, 16, 0))
    ax.set_xlim(0, 16)
    ax.set_ylim(16, 0)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    data, x, y, _ = im.make_image(canvas.get_renderer())
    assert data.dtype == np.uint8 and data.shape == (1200, 1200, 4)
    assert (x, y) == (0, 0)


def test_smoothed_heatmaps_are_left_to_matplotlib():
    """--set interpolation=bilinear smooths the values (then colours them): matplotlib's own path."""
    norm = Normalize(0.0, 10.0)
    values = np.arange(12.0).reshape(3, 4)

    def draw(ax, ours):
        if ours:
            heatmap(ax, values, (0, 0, 40, 30), norm, "inferno", interpolation="bilinear")
        else:
            ax.imshow(masked(values), extent=(0, 40, 30, 0), cmap=overlay_colormap("inferno"), norm=norm,
                      interpolation="bilinear", interpolation_stage="data")

    ours, theirs = _pair(draw)
    assert np.array_equal(ours, theirs)


@pytest.mark.parametrize("suffix", ["png", "pdf", "svg"])
def test_figures_with_images_are_written_the_same_twice(tmp_path, suffix):
    outs = []
    for i in range(2):
        fig = Figure(figsize=(2.0, 2.0))
        ax = fig.add_subplot()
        photo(ax, np.full((8, 8, 3), 200, np.uint8), (0, 8, 8, 0))
        heatmap(ax, CELLS, (0, 0, 8, 8), Normalize(0, 10), "inferno")
        outs.append(save_figure(fig, tmp_path / f"f{i}.{suffix}", dpi=72).read_bytes())
    assert outs[0] == outs[1]
    if suffix == "pdf":
        assert b"/Subtype /Image" in outs[0]
    if suffix == "svg":
        assert b"<image" in outs[0]
