"""The panels show exactly what the views layer computed: the numbers in the items on screen, checked
against the views (and against the figures drawn for the same selection)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from relviz.app.synthetic import synthetic_trace
from relviz.render.views import ViewOptions, render_view
from relviz.views import maps
from relviz.views.palette import colorize

pytestmark = pytest.mark.gui


def show(window, trace, qtbot):
    window.state.set_image(trace.image, Path("synthetic.png"), "trace")
    window.state.set_trace(trace)
    qtbot.wait(20)  # the coalesced panel refreshes


def drawn(item) -> np.ndarray:
    """The numbers an image item shows, after checking that its cells carry their colours on its scale: the
    colours the figures and the video overlays give the same numbers (non-finite cells transparent)."""
    values, rgba = item.values, item.image
    assert rgba.dtype == np.uint8 and rgba.shape == (*values.shape, 4)
    finite = np.isfinite(values)
    np.testing.assert_array_equal(rgba[..., :3][finite], colorize(values, item.scale)[finite])
    assert (rgba[..., 3][~finite] == 0).all()
    return values


def tile(mosaic, i: int) -> np.ndarray:
    """The numbers tile ``i`` of a mosaic shows, after checking the cells on screen carry their colours."""
    values, scale = mosaic.tiles[i], mosaic.scales[i]
    rgba = mosaic.tile_pixels(i)
    assert rgba.shape == (*values.shape, 4)
    finite = np.isfinite(values)
    np.testing.assert_array_equal(rgba[..., :3][finite], colorize(values, scale)[finite])
    assert (rgba[..., 3][~finite] == 0).all()
    return values


def test_canvas_draws_the_map_as_its_cells_with_the_shared_colour_scale(qtbot, window):
    trace = synthetic_trace()
    show(window, trace, qtbot)
    window.state.select(source="detr/encoder/self_attn", point=(70.0, 40.0), head=1, layer=0)
    qtbot.wait(20)
    src = maps.source(trace, "detr/encoder/self_attn")
    m = maps.point_map(trace, src, (70.0, 40.0), 0)
    item = window.canvas.heat_item
    np.testing.assert_array_equal(drawn(item), m.values[1])  # 6×8 cells, not an upsampled image
    rect = item.mapRectToParent(item.boundingRect())
    assert (rect.x(), rect.y(), rect.width(), rect.height()) == (0.0, 0.0, 128.0, 96.0)
    scale = m.scale(shared=True)
    assert item.scale == scale
    bar = window.canvas.colorbar
    assert bar.gradient.isVisible() and bar.scale == scale
    assert bar.texts() == (f"{scale.lo:.3g}", f"{scale.hi:.3g}", "(attention, shared range)")
    # the small multiples: every head and the mean, in the very same range as the canvas
    panel = window.attention_panel
    assert panel.plots.captions.texts == ["head 0", "head 1", "head 2", "mean"]
    for i, data in enumerate([*m.values, m.values.mean(0)]):
        np.testing.assert_allclose(tile(panel.plots, i), data, rtol=1e-6)
        assert panel.plots.scales[i] == scale
    assert panel.colorbar.scale == scale
    # per-map ranges on request, and the bar says so
    panel.shared.setChecked(False)
    assert (panel.plots.scales[2].lo, panel.plots.scales[2].hi) == pytest.approx(
        (m.values[2].min(), m.values[2].max()))
    assert panel.colorbar.texts()[2] == "(attention, per map)"


def test_the_figure_and_the_window_draw_the_same_cells(qtbot, window):
    trace = synthetic_trace()
    trace.meta["family"] = "detr"
    show(window, trace, qtbot)
    window.state.select(object=1, source="detr/decoder/cross_attn", layer=1, head=2)
    qtbot.wait(20)
    fig = render_view(trace, "decoder-attention", ViewOptions(object=1, layer="1", head="2", colorbar=False))
    image = fig.axes[0].get_images()[-1]
    np.testing.assert_allclose(np.ma.getdata(image.get_array()), drawn(window.canvas.heat_item), rtol=1e-6)
    assert image.get_interpolation() == "nearest"
    assert image.get_extent() == [0.0, 128.0, 96.0, 0.0]  # the grid's cells over the image


def test_relations_panel_is_over_detections_named_as_on_the_canvas(qtbot, window):
    trace = synthetic_trace()
    show(window, trace, qtbot)
    window.state.select(module="fc1", term="weight", head=None, object=0)
    panel = window.relations_panel
    rel = maps.relations(trace, "fc1", "weight", None)
    np.testing.assert_allclose(drawn(panel.matrix_item), rel.matrix)
    ticks = [t for _, t in panel.matrix_plot.getAxis("left")._tickLevels[0]]
    assert ticks == ["d0 circle", "d1 square", "d2 triangle"]
    assert window.canvas.overlay.texts[0].startswith("d0 circle")
    # a click on cell (2, 1) selects detection 2 receiving from detection 1
    panel.click_cell(2, 1)
    assert (window.state.sel.object, window.state.sel.partner) == (2, 1)
    # the bars are the canvas's arrows, in the same order
    assert list(panel.bar_rows) == list(window.canvas.arrow_entries)
    np.testing.assert_allclose(panel.bars.opts["height"], rel.matrix[2, panel.bar_rows])
    heights = list(panel.bars.opts["height"])
    assert heights == sorted(heights, reverse=True) and 2 not in panel.bar_rows
    # every proposal on request: DETR's queries named q…, detections by their names
    window.state.select(module=maps.DETR_DECODER_MODULE)
    panel.proposals.setChecked(True)
    assert "query–query attention" in panel.info.text()
    assert len(panel.rel) == trace.shape("detr/decoder/self_attn")[-1]
    panel.click_cell(0, 1)  # query 0 is no detection: the cell is shown, the selection kept
    assert window.state.sel.object == 2 and "not a detection" in panel.info.text()


def test_lrnet_kernels_are_shown_large_with_prior_and_appearance(qtbot, window):
    trace = synthetic_trace()
    show(window, trace, qtbot)
    window.state.select(source="lrnet", point=(40.0, 40.0), head=1, term="weight")
    qtbot.wait(20)
    panel = window.attention_panel
    assert panel.groups == [1] and len(panel.plots.tiles) == 3
    w = trace["lrnet/stage1/weight"][1, :, 2, 2].reshape(3, 3)
    a = trace["lrnet/stage1/appearance"][1, :, 2, 2].reshape(3, 3)
    np.testing.assert_array_equal(tile(panel.plots, 0), w)
    np.testing.assert_array_equal(tile(panel.plots, 1), trace["lrnet/stage1/geometry"][1])
    np.testing.assert_array_equal(tile(panel.plots, 2), a)
    assert panel.plots.captions.texts == ["g1 ω", "g1 prior", "g1 Φ"]
    # the canvas draws the group's 3×3 kernel as cells over the window around the point
    item = window.canvas.heat_item
    np.testing.assert_array_equal(drawn(item), w)
    rect = item.mapRectToParent(item.boundingRect())
    assert (rect.x(), rect.y(), rect.width(), rect.height()) == (16.0, 16.0, 48.0, 48.0)
    # the mean of groups: the strongest groups are shown, each a row of three tiles
    window.state.select(head=None)
    qtbot.wait(20)
    assert panel.groups and len(panel.plots.tiles) == 3 * len(panel.groups)
    # the geometry panel shows priors as k×k cells, not dots
    geo = window.geometry_panel
    assert "lrnet" in geo.shown and geo.prior_groups
