"""The papers' figure forms and the colour rules: what each figure draws, checked against the trace's numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from figure_layout import demo_traces_in
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize, to_rgba
from PIL import Image

from relviz.render.figure import drawing_context, heatmap, image_axes, new_figure
from relviz.render.views import ViewOptions, render_view
from relviz.views import maps
from relviz.views.palette import OVERLAY_OPACITY, overlay_alpha
from relviz.views.relations import box_centres, relation_view


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    return demo_traces_in(tmp_path_factory.mktemp("form-traces"), ["detr", "relation", "lrnet"])


def _pixels(fig) -> np.ndarray:
    with drawing_context(fig):
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        return np.asarray(canvas.buffer_rgba())[..., :3].astype(int)


def test_overlay_leaves_the_photo_as_it_is_where_the_value_is_low():
    """A heatmap's lowest cell leaves the photo's colour untouched; its highest is the colormap's colour at
    the stated opacity over the photo."""
    import matplotlib

    grey = np.full((20, 40, 3), 150, np.uint8)
    fig = new_figure(2.0, 1.0)
    fig.set_layout_engine(None)
    ax = fig.add_axes((0, 0, 1, 1))
    image_axes(ax, grey, (40, 20))
    heatmap(ax, np.array([[0.0, 1.0]]), (0, 0, 40, 20), Normalize(0, 1), "inferno")
    pixels = _pixels(fig)
    h, w = pixels.shape[:2]
    low, high = pixels[h // 2, w // 4], pixels[h // 2, 3 * w // 4]
    assert np.abs(low - 150).max() <= 1
    top = np.asarray(matplotlib.colormaps["inferno"](1.0)[:3]) * 255
    expected = OVERLAY_OPACITY * top + (1 - OVERLAY_OPACITY) * 150
    assert np.abs(high - expected).max() <= 2
    assert overlay_alpha(np.array([0.0]))[0] == 0.0 and overlay_alpha(np.array([1.0]))[0] == 1.0


def test_colorbars_show_the_colormap_without_the_overlays_transparency(traces):
    import matplotlib

    fig = render_view(traces["detr"], "encoder-attention", ViewOptions(preset="column"))
    bars = [ax._colorbar for ax in fig.axes if hasattr(ax, "_colorbar")]
    assert len(bars) == 1
    u = np.linspace(0, 1, 7)
    np.testing.assert_allclose(bars[0].cmap(u), matplotlib.colormaps["inferno"](u))  # alpha 1 throughout
    maps_drawn = [im for ax in fig.axes for im in ax.images if im.get_array().ndim == 2]
    assert maps_drawn and all(im.cmap(0.0)[3] == 0.0 for im in maps_drawn)  # the overlays do fade


def test_encoder_points_stand_alone_unless_boxes_are_asked(traces):
    trace = traces["detr"]
    plain = render_view(trace, "encoder-attention", ViewOptions())
    points_panel = plain.axes[0]
    assert not [p for p in points_panel.patches if p.get_fill() is False]  # no detection boxes
    assert [t.get_text() for t in points_panel.texts] == ["0", "1", "2", "3"]  # the points, numbered
    boxed = render_view(trace, "encoder-attention", ViewOptions(extra={"boxes": "show"}))
    outlines = [p for p in boxed.axes[0].patches if p.get_fill() is False]
    assert len(outlines) == len(trace["detections/boxes"])


def test_decoder_objects_draws_each_objects_attention_in_its_boxs_colour(traces):
    """DETR Fig. 6: one image; object k's decoder attention (head mean of the last layer) tinted in one colour,
    its box outlined in the same colour, each on its own range."""
    trace = traces["detr"]
    objects = [2, 0, 3]
    fig = render_view(trace, "decoder-objects", ViewOptions(objects=objects))
    (ax,) = fig.axes
    tints = [im for im in ax.images if im.get_array().ndim == 2]
    outlines = [p for p in ax.patches if p.get_fill() is False]
    assert len(tints) == len(outlines) == len(objects)
    colours = [to_rgba(p.get_edgecolor())[:3] for p in outlines]
    assert len(set(colours)) == len(objects)
    source = maps.source(trace, "detr/decoder/cross_attn")
    layers = trace.shape("detr/decoder/cross_attn")[0]
    for k, im, box_colour in zip(objects, tints, colours, strict=True):
        expected = maps.object_map(trace, source, k, layers - 1).head(None)
        np.testing.assert_allclose(np.ma.getdata(im.get_array()), expected, rtol=1e-6)
        assert im.norm.vmin == pytest.approx(float(expected.min())) and im.norm.vmax == pytest.approx(
            float(expected.max()))
        np.testing.assert_allclose(im.cmap(1.0)[:3], box_colour)
        assert im.cmap(0.0)[3] == 0.0


def test_relation_pairs_join_each_object_to_its_strongest_partners(traces):
    """Relation Networks' figure: each object's line goes to the detections with the largest ω in its row
    (receiving object n = the panel's object), strongest first, itself left out."""
    trace = traces["relation"]
    fig = render_view(trace, "relation-pairs", ViewOptions(objects=[0, 1, 3], extra={"partners": 3}))
    weight = trace["relation/fc1/weight"].mean(0)  # (P, P), rows receive
    rows = trace["detections/proposal"]
    centres = box_centres(trace["detections/boxes"])
    valid = np.flatnonzero(rows >= 0)
    for ax, k in zip(fig.axes, [0, 1, 3], strict=True):
        line = weight[rows[k], rows[valid]]
        others = [int(valid[i]) for i in np.argsort(-line, kind="stable") if valid[i] != k][:3]
        drawn = [tuple(np.round(np.asarray(seg.get_xydata())[1], 3)) for seg in ax.lines]
        assert drawn == [tuple(np.round(centres[m], 3)) for m in others]
        widths = [seg.get_linewidth() for seg in ax.lines]
        assert widths == sorted(widths, reverse=True)  # line width by weight
    view = relation_view(trace, "fc1", "weight", None)
    assert len(view) == len(valid)


def test_local_relation_prior_and_appearance_share_one_logit_scale(traces):
    trace = traces["lrnet"]
    fig = render_view(trace, "local-relation", ViewOptions(point=(16.0, 16.0), head="2", layer="res3.0"))
    grid = [ax for ax in fig.axes if len(ax.images) == 3][0]
    prior, appearance, weight = grid.images
    assert prior.norm.vmin == appearance.norm.vmin == -appearance.norm.vmax
    largest = max(np.nanmax(np.abs(np.ma.getdata(prior.get_array()))),
                  np.nanmax(np.abs(np.ma.filled(appearance.get_array(), 0.0))))
    assert prior.norm.vmax == pytest.approx(largest, rel=1e-5)
    assert weight.norm.vmin >= 0 and weight.norm is not prior.norm
    np.testing.assert_allclose(np.ma.getdata(weight.get_array()).sum(), 1.0, rtol=1e-4)  # ω is a softmax


def test_one_command_writes_several_views_and_objects_each_with_its_recipe(traces, tmp_path, capsys):
    from relviz.cli import main

    trace = tmp_path / "relation.npz"
    traces["relation"].save(trace)
    out = tmp_path / "rel.png"
    code = main(["export", "--trace", str(trace), "--view", "relation-pairs", "--view", "relations", "--object", "0",
                 "--object", "2", "--preset", "column", "--dpi", "100", "--out", str(out)])
    assert code == 0
    written = sorted(p.name for p in tmp_path.glob("rel-*.png"))
    assert written == ["rel-relation-pairs.png", "rel-relations-o0.png", "rel-relations-o2.png"]
    for name in written:
        path = tmp_path / name
        recipe = json.loads(path.with_name(path.stem + ".recipe.json").read_text())
        assert recipe["options"]["preset"] == "column"
        with Image.open(path) as im:
            assert im.size[0] == 350
        before = path.read_bytes()
        assert main(["export", "--recipe", str(path.with_name(path.stem + ".recipe.json"))]) == 0
        assert path.read_bytes() == before
    pairs = json.loads((tmp_path / "rel-relation-pairs.recipe.json").read_text())
    assert pairs["options"]["objects"] == [0, 2]
    single = json.loads((tmp_path / "rel-relations-o2.recipe.json").read_text())
    assert (single["options"]["object"], single["options"]["objects"]) == (2, [2])
    assert main(["export", "--trace", str(trace), "--view", "relations", "--preset", "poster", "--out",
                 str(out)]) == 2
    assert "--preset" in capsys.readouterr().err
