"""PNG figures: the pixels matplotlib draws, written as RGB when opaque, with their DPI, the same bytes twice."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.colors import Normalize
from PIL import Image

from relviz.render.figure import drawing_context, heatmap, new_figure, photo, save_figure


def _figure(transparent: bool = False):
    fig = new_figure(3.0, 2.0)
    ax = fig.add_subplot()
    photo(ax, np.linspace(0, 255, 12 * 16 * 3).astype(np.uint8).reshape(12, 16, 3), (0, 16, 12, 0))
    heatmap(ax, np.arange(12.0).reshape(3, 4), (0, 0, 16, 12), Normalize(0, 11), "viridis")
    ax.set_title("a title")
    if transparent:
        fig.patch.set_alpha(0.0)
    return fig


def test_png_has_matplotlibs_pixels_as_rgb_with_its_dpi(tmp_path):
    out = save_figure(_figure(), tmp_path / "f.png", dpi=120)
    reference, fig = io.BytesIO(), _figure()
    with drawing_context(fig):  # as save_figure draws: the figure's type scale, text kept as text
        fig.savefig(reference, format="png", dpi=120)
    with Image.open(out) as ours, Image.open(reference) as theirs:
        assert ours.mode == "RGB" and ours.size == (360, 240) == theirs.size
        assert ours.info["Software"] == "relviz"
        assert np.allclose(ours.info["dpi"], (120, 120), atol=0.01)
        assert np.array_equal(np.asarray(ours), np.asarray(theirs.convert("RGB")))
        assert np.all(np.asarray(theirs)[..., 3] == 255)  # nothing was lost by dropping alpha
    assert save_figure(_figure(), tmp_path / "g.png", dpi=120).read_bytes() == out.read_bytes()


def test_png_keeps_alpha_when_the_figure_is_transparent(tmp_path):
    out = save_figure(_figure(transparent=True), tmp_path / "t.png", dpi=50)
    with Image.open(out) as im:
        assert im.mode == "RGBA"
        alpha = np.asarray(im)[..., 3]
        assert alpha.min() == 0 and alpha.max() == 255
