"""The local-relation, geometry-priors and nonlocal figures: PNG/SVG/PDF that really open, and bad input."""

from __future__ import annotations

import importlib
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest
from matplotlib.patches import ConnectionPatch
from PIL import Image

from relviz.core.errors import BadInputError
from relviz.render.figure import save_figure
from relviz.render.lrnet import pixel_kernels
from relviz.render.views import ViewOptions, render_view, views
from relviz.zoo import RunOptions, load_model, run_model

nl_render = importlib.import_module("relviz.render.non_local")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    img = np.zeros((48, 64, 3), np.uint8)
    cv2.circle(img, (20, 24), 10, (255, 0, 0), -1)
    cv2.rectangle(img, (40, 10), (58, 30), (0, 255, 0), -1)
    image = folder / "shapes.png"
    cv2.imwrite(str(image), img[..., ::-1])
    video = folder / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for t in range(5):
        frame = np.zeros((48, 64, 3), np.uint8)
        cv2.circle(frame, (10 + 8 * t, 24), 8, (255, 255, 0), -1)
        writer.write(frame)
    writer.release()
    return image, video


@pytest.fixture(scope="module")
def traces(media):
    image, video = media
    lr = run_model(load_model("lrnet-26", weights="none", overrides={"preset": "tiny"}), image)
    nl = run_model(load_model("nonlocal-r50", weights="none", overrides={"preset": "tiny"}), image)
    clip = run_model(
        load_model("nonlocal-c2d-r50", weights="none", overrides={"preset": "tiny"}),
        video,
        RunOptions(clip_length=4, frame=1),
    )
    return {"lrnet": lr, "nonlocal": nl, "clip": clip}


def _check_file(path):
    data = path.read_bytes()
    if path.suffix == ".png":
        with Image.open(path) as im:
            im.verify()
    elif path.suffix == ".pdf":
        assert data.startswith(b"%PDF") and b"/Type /Page" in data and data.rstrip().endswith(b"%%EOF")
    else:
        root = ET.fromstring(data)
        assert root.tag.endswith("svg")
        assert b"<text" in data  # titles stay text, not paths


CASES = [
    ("local-relation", "lrnet", ViewOptions(point=(30.0, 20.0), layer="res2.0")),
    ("local-relation", "lrnet", ViewOptions(point=(0.0, 0.0), layer="stem", head="2")),
    ("geometry-priors", "lrnet", ViewOptions()),
    ("nonlocal", "nonlocal", ViewOptions(point=(20.0, 24.0), layer="res3.0")),
    ("nonlocal", "clip", ViewOptions(point=(30.0, 24.0), frame=3, layer="res4.0", top_k=5)),
]


@pytest.mark.parametrize(("view", "which", "options"), CASES)
@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
def test_views_export(view, which, options, fmt, traces, tmp_path):
    fig = render_view(traces[which], view, options)
    out = save_figure(fig, tmp_path / f"{view}.{fmt}", dpi=60)
    _check_file(out)


def test_views_registered():
    names = views()
    for name, family in (("local-relation", "lrnet"), ("geometry-priors", "lrnet"), ("nonlocal", "nonlocal")):
        assert family in names[name].families


def test_nonlocal_links_are_the_top_keys(traces):
    trace = traces["clip"]
    row = nl_render.attention_row(trace, "res3.0", 30.0, 24.0, frame=2)  # video frame 2 = clip position 1
    assert row.frame == 1
    flat = row.values.ravel()
    links = nl_render.top_links(row, 7)
    assert [v for *_, v in links] == sorted(flat, reverse=True)[:7]
    fig = render_view(trace, "nonlocal", ViewOptions(point=(30.0, 24.0), frame=2, layer="res3.0", top_k=7))
    assert sum(isinstance(a, ConnectionPatch) for a in fig.artists) == 7
    # the key grid covers the clip's time steps: 4 frames pooled to 2 after res2
    assert row.values.shape[0] == 2 and len(fig.axes[0].images) >= 1


def test_local_relation_panels_show_the_trace_numbers(traces):
    trace = traces["lrnet"]
    kernels = pixel_kernels(trace, "res2.0", 30.0, 20.0)
    fig = render_view(trace, "local-relation", ViewOptions(point=(30.0, 20.0), layer="res2.0", head="1"))
    shown = [np.ma.getdata(im.get_array()) for ax in fig.axes for im in ax.images if im.get_array().ndim == 2]
    assert any(np.allclose(a, kernels.weight[1]) for a in shown)
    assert any(np.allclose(a, kernels.geometry[1]) for a in shown)


def test_bad_selections(traces):
    lr, nl, clip = traces["lrnet"], traces["nonlocal"], traces["clip"]
    with pytest.raises(BadInputError, match="outside the image"):
        render_view(lr, "local-relation", ViewOptions(point=(64.0, 5.0)))
    with pytest.raises(BadInputError, match="valid layers: stem, res2.0, res3.0, res4.0, res5.0"):
        render_view(lr, "local-relation", ViewOptions(point=(5.0, 5.0), layer="res6.0"))
    with pytest.raises(BadInputError, match="groups 0..3"):
        render_view(lr, "local-relation", ViewOptions(point=(5.0, 5.0), layer="stem", head="9"))
    with pytest.raises(BadInputError, match="valid blocks: res3.0, res4.0"):
        render_view(nl, "nonlocal", ViewOptions(point=(5.0, 5.0), layer="res4.4"))
    with pytest.raises(BadInputError, match="outside the image"):
        render_view(clip, "nonlocal", ViewOptions(point=(-1.0, 5.0)))
    with pytest.raises(BadInputError, match="video frames 1, 2, 3, 4"):
        render_view(clip, "nonlocal", ViewOptions(point=(5.0, 5.0), frame=9))
    with pytest.raises(BadInputError, match="views for it: nonlocal"):
        render_view(nl, "geometry-priors", ViewOptions())
    with pytest.raises(BadInputError, match="only the normalised attention"):
        render_view(nl, "nonlocal", ViewOptions(point=(5.0, 5.0), extra={"values": "pairwise"}))


def test_command_line_trace_and_export(media, tmp_path):
    from relviz.cli import main

    image, video = media
    trace = tmp_path / "nl.npz"
    assert (
        main(
            [
                "trace",
                "--model",
                "nonlocal-c2d-r50",
                "--weights",
                "none",
                "--config",
                "preset=tiny",
                "--config",
                "instantiation=dot",
                "--input",
                str(video),
                "--clip-length",
                "4",
                "--out",
                str(trace),
            ]
        )
        == 0
    )
    fig = tmp_path / "nl.pdf"
    assert (
        main(
            [
                "export",
                "--trace",
                str(trace),
                "--view",
                "nonlocal",
                "--point",
                "30,24",
                "--frame",
                "1",
                "--layer",
                "res3.0",
                "--out",
                str(fig),
            ]
        )
        == 0
    )
    _check_file(fig)
    assert (
        main(
            [
                "trace",
                "--model",
                "nonlocal-c2d-r50",
                "--weights",
                "none",
                "--config",
                "preset=tiny",
                "--input",
                str(video),
                "--clip-length",
                "9",
                "--out",
                str(tmp_path / "x.npz"),
            ]
        )
        == 2
    )


def _drawn_colour(fig, im, row: int, col: int, dpi: int = 100) -> np.ndarray:
    """The RGB on the canvas at the centre of cell (row, col) of image ``im``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    left, right, bottom, top = im.get_extent()
    rows, cols = im.get_array().shape[:2]
    x = left + (col + 0.5) * (right - left) / cols
    y = top + (row + 0.5) * (bottom - top) / rows
    px, py = im.axes.transData.transform((x, y))
    buf = np.asarray(canvas.buffer_rgba())
    return buf[int(buf.shape[0] - py), int(px), :3].astype(int)


def test_geometry_priors_tiles_show_every_layer_and_group(traces):
    """One tile per layer × group, each the layer's prior (logits), drawn in the shared colour range."""
    trace = traces["lrnet"]
    fig = render_view(trace, "geometry-priors", ViewOptions(term="geometry"))
    tiles = [im for ax in fig.axes for im in ax.images]
    names = ["stem", "res2.0", "res3.0", "res4.0", "res5.0"]
    priors = [np.asarray(trace[f"lrnet/{n}/geometry"], np.float32) for n in names]
    assert len(tiles) == sum(min(p.shape[0], 16) for p in priors)
    for im, (r, g) in zip(tiles, [(r, g) for r, p in enumerate(priors) for g in range(min(p.shape[0], 16))],
                          strict=True):
        np.testing.assert_allclose(np.ma.getdata(im.get_array()), priors[r][g], rtol=1e-6)
    # each layer on its own symmetric range: its largest |logit| (so no layer's row is drawn all mid-grey or dark)
    per_row = [min(p.shape[0], 16) for p in priors]
    start = np.cumsum([0, *per_row])
    for r, prior in enumerate(priors):
        row = tiles[start[r]:start[r + 1]]
        largest = float(np.abs(prior[:16]).max())
        assert {(round(im.norm.vmin, 5), round(im.norm.vmax, 5)) for im in row} == {(-round(largest, 5),
                                                                                     round(largest, 5))}
    shared = render_view(trace, "geometry-priors", ViewOptions(term="geometry", extra={"range": "shared"}))
    assert len({round(im.norm.vmin, 6) for ax in shared.axes for im in ax.images}) == 1
    # on the canvas: a tile's cell is its value's colour, in its own place
    last = tiles[-1]
    value = np.ma.getdata(last.get_array())[0, -1]
    expected = (np.asarray(last.cmap(last.norm(value))[:3]) * 255).round()
    assert np.abs(_drawn_colour(fig, last, 0, last.get_array().shape[1] - 1) - expected).max() <= 2
    extents = {tuple(np.round(im.get_extent(), 6)) for im in tiles}
    assert len(extents) == len(tiles)  # no two tiles on top of each other
