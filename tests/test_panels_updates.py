"""What a hover or a click updates, and what it leaves alone: a tabbed-away Geometry dock computes nothing until
its tab comes to the front (then it shows the current selection), the docks refill the plots they built
instead of building new ones, small multiples are one mosaic whose tiles carry their numbers' colours and
select their head when clicked, and the canvas and the Attention tiles share one map per selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from relviz.app.panels import common
from relviz.app.synthetic import synthetic_trace
from relviz.views import maps
from relviz.views.lrnet import prior_weight
from relviz.views.palette import colorize

pytestmark = pytest.mark.gui


def show(window, trace, qtbot):
    window.state.set_image(trace.image, Path("synthetic.png"), "trace")
    window.state.set_trace(trace)
    qtbot.wait(30)


def tile(mosaic, i: int) -> np.ndarray:
    """The numbers tile ``i`` of a mosaic shows, after checking its cells on screen carry their colours."""
    values, scale = mosaic.tiles[i], mosaic.scales[i]
    rgba = mosaic.tile_pixels(i)
    finite = np.isfinite(values)
    np.testing.assert_array_equal(rgba[..., :3][finite], colorize(values, scale)[finite])
    assert (rgba[..., 3][~finite] == 0).all()
    return values


def test_a_tabbed_away_geometry_dock_waits_for_its_tab(qtbot, window):
    trace = synthetic_trace()
    show(window, trace, qtbot)
    window.docks["Relations"].raise_()
    qtbot.wait(30)
    geo = window.geometry_panel
    assert not geo.on_screen()  # moved off the window by the tab, though Qt calls it visible
    window.state.select(object=0, module="fc1", head=None)
    qtbot.wait(20)
    done = geo.redraws
    for obj in (1, 2, 0, 2):  # clicks while the tab is behind: nothing computed
        window.state.select(object=obj)
        qtbot.wait(5)
    assert geo.redraws == done and geo.stale
    window.docks["Geometry"].raise_()
    qtbot.waitUntil(lambda: not geo.stale, timeout=2000)
    assert geo.redraws == done + 1 and geo.on_screen()
    # what it shows is the selection now: ω_G into d2 at the other objects' relative positions
    rel = maps.relations(trace, "fc1", "geometry", None)
    offsets = maps.relative_geometry(rel.boxes, 2)
    scatter = geo._sections["relation"].scatter
    np.testing.assert_allclose(scatter.data["x"], offsets[[0, 1], 0], rtol=1e-6)
    np.testing.assert_allclose(scatter.data["y"], offsets[[0, 1], 1], rtol=1e-6)
    np.testing.assert_allclose(geo._relation_points[:, 2], rel.matrix[2, [0, 1]], rtol=1e-6)
    # on screen, it follows every click again
    window.state.select(object=1)
    assert geo.redraws == done + 2 and not geo.stale


def test_reading_a_stale_geometry_dock_brings_it_up_to_date(qtbot, window):
    trace = synthetic_trace()
    show(window, trace, qtbot)
    window.docks["Relations"].raise_()
    window.state.select(object=0, head=1)
    qtbot.wait(20)
    window.state.select(object=2)
    geo = window.geometry_panel
    assert geo.stale
    geometry = trace["relation/fc1/geometry"][1]
    np.testing.assert_array_equal(geo.relation_points[:, 2], geometry[2, [0, 1]])  # read: computed now
    assert not geo.stale


def test_geometry_tiles_are_refilled_not_rebuilt(qtbot, window):
    trace = synthetic_trace()
    show(window, trace, qtbot)
    window.docks["Geometry"].raise_()
    window.state.select(object=0, head=None)
    qtbot.wait(30)
    geo = window.geometry_panel
    assert geo.shown == ["relation", "lrnet", "region"]
    plots, parts, image = geo._sections["relation"], geo.parts, geo.parts.image
    region = np.asarray(trace["region/geometry"], np.float32)
    for obj in (1, 2):
        window.state.select(object=obj)
        qtbot.wait(10)
        assert geo._sections["relation"] is plots and geo.parts is parts and parts.image is image
        square = maps.square_points(region[obj], np.asarray(trace["region/positions"][obj]).reshape(-1, 2))
        for k in range(len(square)):
            np.testing.assert_array_equal(tile(parts, k), square[k])
        assert parts.captions.texts == [f"part {k}" for k in range(len(square))]
        assert f"region G_k of d{obj}" in geo.info.text()
    # the LR-Net priors: the most peaked groups, as k×k cells on one symmetric range
    prior = np.asarray(trace["lrnet/stage1/geometry"], np.float32)
    order = np.argsort(-prior_weight(prior).reshape(len(prior), -1).max(axis=1), kind="stable")
    assert geo.prior_groups == [int(g) for g in order]
    for i, g in enumerate(geo.prior_groups):
        np.testing.assert_array_equal(tile(geo.priors, i), prior[g])
        assert geo.priors.scales[i].lo == -geo.priors.scales[i].hi


def test_a_click_on_a_tile_selects_its_head_and_the_mean_tile_the_mean(qtbot, window):
    trace = synthetic_trace()
    show(window, trace, qtbot)
    window.state.select(source="detr/encoder/self_attn", point=(70.0, 40.0), layer=0, head=None)
    qtbot.wait(30)
    mosaic = window.attention_panel.plots
    assert mosaic.captions.texts == ["head 0", "head 1", "head 2", "mean"]
    assert mosaic.captions.outlines[3] is not None and mosaic.captions.outlines[1] is None  # the mean is shown
    rect = mosaic.rects[1]
    assert mosaic.tile_at(rect.center().x(), rect.center().y()) == 1
    mosaic.on_click(1)
    qtbot.wait(30)
    assert window.state.sel.head == 1
    assert mosaic.captions.outlines[1] is not None and mosaic.captions.outlines[3] is None
    m = maps.point_map(trace, maps.source(trace, "detr/encoder/self_attn"), (70.0, 40.0), 0)
    np.testing.assert_array_equal(window.canvas.last_heat, m.values[1])
    mosaic.on_click(3)
    qtbot.wait(30)
    assert window.state.sel.head is None
    gap = mosaic.rects[1].left() - mosaic.rects[0].right()
    assert gap >= 1 and mosaic.tile_at(mosaic.rects[0].right() + gap / 2, rect.center().y()) is None


def test_the_canvas_and_the_tiles_share_one_map_per_selection(qtbot, window, monkeypatch):
    trace = synthetic_trace()
    show(window, trace, qtbot)
    window.state.select(source="detr/encoder/self_attn", point=(40.0, 40.0), head=None, layer=1)
    qtbot.wait(30)
    calls = []
    real = maps.point_map
    monkeypatch.setattr(common.maps, "point_map", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    window.state.select(point=(60.0, 30.0))
    qtbot.wait(30)
    assert calls == [(60.0, 30.0)]  # once, for the canvas and the Attention tiles together
    assert window.attention_panel.map is window.canvas.map
