"""Relation Networks / region-feature figures: numbers on screen, every view in every format, bad input."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from PIL import Image

from relviz import zoo
from relviz.core.errors import BadInputError
from relviz.core.trace import Trace
from relviz.render.figure import save_figure
from relviz.render.relation import omega_g
from relviz.render.views import ViewOptions, render_view

TINY = dict(
    backbone="resnet18",
    fpn_channels=32,
    min_size=96,
    max_size=128,
    proposals=24,
    rpn_pre_nms_top_n_test=100,
    representation=64,
    num_classes=5,
    score_thresh=0.0,
    norm="batch",
)
RELATION = dict(key_dim=64, heads=8, geo_dim=32, first_n=12, nms_rank_dim=32, nms_key_dim=32, nms_embed=16)
REGION = dict(samples=10, parts=3, region_geo_dim=16)


def _image() -> np.ndarray:
    img = np.full((96, 128, 3), 190, np.uint8)
    img[10:50, 15:60] = (220, 40, 40)
    img[55:90, 70:120] = (40, 40, 220)
    return img


def _trace(family: str, config: dict, threshold: float = 0.0) -> Trace:
    fam = zoo.get_family(family)
    cfg = {**fam.default_config(), **TINY, **config}
    torch.manual_seed(0)
    module = fam.build(cfg).eval()
    loaded = zoo.LoadedModel(fam, "tiny", module, cfg, torch.device("cpu"), torch.float32)
    source = {"path": "memory.png", "kind": "image", "frame": 0, "size": [128, 96]}
    with torch.inference_mode():
        return fam.run(loaded, [_image()], source, zoo.RunOptions(threshold=threshold))


@pytest.fixture(scope="module")
def traces(tmp_path_factory) -> dict[str, Trace]:
    folder = tmp_path_factory.mktemp("traces")
    out = {}
    for name, family, cfg, thr in (
        ("relation", "relation", RELATION, 0.0),
        ("region", "regionfeat", REGION, 0.0),
        ("empty", "relation", RELATION, 1.01),
        ("region_empty", "regionfeat", REGION, 1.01),
    ):
        path = _trace(family, cfg, thr).save(folder / f"{name}.npz")
        out[name] = Trace.load(path)  # what the command line reads
    # as traced with classic NMS (--config nms=nms): no duplicate-removal tensors
    classic = Trace(
        arrays={k: v for k, v in out["relation"].arrays.items() if not k.startswith("relation/nms")},
        meta=dict(out["relation"].meta),
    )
    classic.arrays.pop("detections/nms_row")
    out["classic"] = classic
    return out


def _check_file(path, fmt: str) -> None:
    data = path.read_bytes()
    if fmt == "png":
        with Image.open(path) as im:
            im.verify()
    elif fmt == "svg":
        ET.fromstring(data)
    else:
        assert data.startswith(b"%PDF-") and b"%%EOF" in data[-64:]


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
@pytest.mark.parametrize(
    "view,trace_name,opts",
    [
        ("relations", "relation", dict(object=1, top_k=6)),
        ("relation-matrix", "relation", dict(object=2, module="fc1", term="appearance", top_k=8)),
        ("geometry", "relation", dict(object=0, module="fc2")),
        ("region-parts", "region", dict(object=1, term="geometry")),
    ],
)
def test_views_export_in_every_format(traces, tmp_path, view, trace_name, opts, fmt):
    fig = render_view(traces[trace_name], view, ViewOptions(width=5.0, **opts))
    path = save_figure(fig, tmp_path / f"{view}.{fmt}", dpi=60)
    _check_file(path, fmt)


def test_relations_of_the_duplicate_removal_module(traces, tmp_path):
    opts = ViewOptions(object=0, module="nms", head="2", term="geometry", top_k=5, width=5.0)
    fig = render_view(traces["relation"], "relations", opts)
    _check_file(save_figure(fig, tmp_path / "nms.png", dpi=60), "png")


def test_relation_matrix_shows_the_submatrix_among_detections(traces):
    tr = traces["relation"]
    fig = render_view(tr, "relation-matrix", ViewOptions(module="fc2", head="3", term="weight", top_k=6))
    shown = fig.axes[0].images[0].get_array()
    rows = tr["detections/proposal"][:6]
    np.testing.assert_allclose(shown, tr["relation/fc2/weight"][3][np.ix_(rows, rows)])
    fig = render_view(tr, "relation-matrix", ViewOptions(module="fc1", head="mean", extra={"rows": "proposals"}))
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), tr["relation/fc1/weight"].mean(0), rtol=1e-6)


def test_relations_bars_are_the_top_values_per_head(traces):
    tr = traces["relation"]
    obj, k = 2, 5
    proposal = tr["detections/proposal"]
    row = proposal[obj]
    weight = tr["relation/fc1/weight"][4]
    # by default the detections are ranked (as on the canvas): each other detection on its own proposal
    fig = render_view(tr, "relations", ViewOptions(object=obj, module="fc1", term="weight", head="4", top_k=k))
    bars = fig.axes[-1].patches  # the single head's bar chart
    others = [d for d in range(len(proposal)) if proposal[d] != row]
    expected = np.sort(weight[row, proposal[others]])[::-1][:k]
    widths = np.array([b.get_width() for b in bars])
    np.testing.assert_allclose(np.sort(widths)[::-1], expected, rtol=1e-6)
    labels = [t.get_text() for t in fig.axes[-1].get_yticklabels()]
    assert all(label.startswith("d") for label in labels)  # named as on the canvas: d3 class 1
    # every proposal on request (itself left out: an arrow cannot point at itself)
    opts = ViewOptions(object=obj, module="fc1", head="4", top_k=k, extra={"among": "all"})
    fig = render_view(tr, "relations", opts)
    widths = np.array([b.get_width() for b in fig.axes[-1].patches])
    line = np.delete(weight[row], row)
    np.testing.assert_allclose(np.sort(widths)[::-1], np.sort(line)[::-1][:k], rtol=1e-6)
    # what the object gives the others: its column
    opts = ViewOptions(object=obj, module="fc1", head="4", top_k=k, extra={"direction": "out"})
    fig = render_view(tr, "relations", opts)
    widths = np.array([b.get_width() for b in fig.axes[-1].patches])
    np.testing.assert_allclose(np.sort(widths)[::-1], np.sort(weight[proposal[others], row])[::-1][:k], rtol=1e-6)


def test_geometry_landscape_from_w_g_reproduces_the_recorded_geometry(traces):
    tr = traces["relation"]
    for module in ("fc1", "fc2", "nms"):
        boxes = tr[f"relation/{module}/boxes"]
        recorded = tr[f"relation/{module}/geometry"]  # (H, N, N)
        for n in (0, 3, 7):
            cols = np.arange(len(boxes))
            if module == "nms":  # block-diagonal: only candidates of the same class are related
                labels = tr["relation/nms/labels"]
                cols = np.flatnonzero(labels == labels[n])
            # float64 here, float32 in the model; the ×100 before the sinusoid amplifies rounding
            np.testing.assert_allclose(omega_g(tr, module, boxes[n], boxes[cols]), recorded[:, n, cols], atol=1e-3)


def test_geometry_view_with_one_head_has_a_scale_panel(traces):
    fig = render_view(traces["relation"], "geometry", ViewOptions(object=1, head="5", extra={"scale": 0.5}))
    assert any("log(w_n / w_m)" in ax.get_xlabel() for ax in fig.axes)


def test_region_parts_show_each_part_map(traces):
    tr = traces["region"]
    obj = 3
    fig = render_view(tr, "region-parts", ViewOptions(object=obj, term="weight"))
    row = tr["detections/region_row"][obj]
    assert tr["region/proposal"][row] == tr["detections/proposal"][obj]
    weights = tr["region/weight"][row]  # (K, P)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    maps = [im for ax in fig.axes for im in ax.images if im.get_array().ndim == 2]  # the photos are RGB
    assert len(maps) == 9
    for k, shown in enumerate(maps):
        np.testing.assert_allclose(shown.get_array(), weights[k].reshape(10, 10))
    assert len({tuple(np.round(im.get_extent(), 6)) for im in maps}) == 9  # each part in its own tile
    fig = render_view(tr, "region-parts", ViewOptions(object=obj, term="appearance", extra={"part": 4}))
    np.testing.assert_allclose(fig.axes[0].images[-1].get_array(), tr["region/appearance"][row][4].reshape(10, 10))
    with pytest.raises(BadInputError, match="part 9 does not exist"):
        render_view(tr, "region-parts", ViewOptions(object=obj, extra={"part": 9}))


def test_zero_detections_say_so(traces, tmp_path):
    for name, view in (
        ("empty", "relations"),
        ("empty", "relation-matrix"),
        ("empty", "geometry"),
        ("region_empty", "region-parts"),
    ):
        assert len(traces[name]["detections/scores"]) == 0
        fig = render_view(traces[name], view, ViewOptions())
        path = save_figure(fig, tmp_path / f"{view}.svg")
        assert "no detections" in path.read_text()
    # the proposal matrix is still there to see
    fig = render_view(traces["empty"], "relation-matrix", ViewOptions(extra={"rows": "proposals"}))
    assert fig.axes[0].images[0].get_array().shape == (24, 24)


def test_bad_selections_are_one_sentence(traces):
    tr = traces["relation"]
    n = len(tr["detections/scores"])
    with pytest.raises(BadInputError, match=f"--object {n} is out of range"):
        render_view(tr, "relations", ViewOptions(object=n))
    with pytest.raises(BadInputError, match="no relation module 'nms'.*classic NMS"):
        render_view(traces["classic"], "relations", ViewOptions(object=0, module="nms"))
    with pytest.raises(BadInputError, match="head 8 does not exist"):
        render_view(tr, "relation-matrix", ViewOptions(head="8"))
    with pytest.raises(BadInputError, match="for relation traces, but this trace is from regionfeat"):
        render_view(traces["region"], "relations", ViewOptions(object=0))
    with pytest.raises(BadInputError, match="for regionfeat traces, but this trace is from relation"):
        render_view(tr, "region-parts", ViewOptions(object=0))
    from relviz.render.relation import region_parts_view

    with pytest.raises(BadInputError, match="needs a regionfeat trace"):
        region_parts_view(tr, ViewOptions(object=0))


def test_command_line_exit_codes(traces, tmp_path, capsys):
    from relviz.cli import main

    path = traces["relation"].save(tmp_path / "t.npz")
    out = tmp_path / "rel.pdf"
    assert (
        main(
            [
                "export",
                "--trace",
                str(path),
                "--view",
                "relations",
                "--object",
                "1",
                "--module",
                "fc1",
                "--head",
                "mean",
                "--term",
                "appearance",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    _check_file(out, "pdf")
    assert (
        main(
            ["export", "--trace", str(path), "--view", "relations", "--object", "999", "--out", str(tmp_path / "x.png")]
        )
        == 2
    )
    assert "out of range" in capsys.readouterr().err
    region = traces["region"].save(tmp_path / "r.npz")
    assert main(["export", "--trace", str(region), "--view", "geometry", "--out", str(tmp_path / "y.png")]) == 2
    assert "regionfeat" in capsys.readouterr().err


def test_trace_and_export_from_the_command_line(tmp_path, capsys):
    from relviz.cli import main

    image = tmp_path / "scene.png"
    Image.fromarray(_image()).save(image)
    config = []
    for key, value in {**TINY, **REGION, "proposals": 12}.items():
        config += ["--config", f"{key}={value}"]
    out = tmp_path / "region.npz"
    argv = [
        "trace",
        "--model",
        "regionfeat-rcnn-r50-fpn",
        "--weights",
        "none",
        "--input",
        str(image),
        "--out",
        str(out),
        "--threshold",
        "0",
        *config,
    ]
    assert main(argv) == 0
    assert "regionfeat" in capsys.readouterr().out
    figure = tmp_path / "parts.svg"
    assert (
        main(
            [
                "export",
                "--trace",
                str(out),
                "--view",
                "region-parts",
                "--object",
                "0",
                "--term",
                "appearance",
                "--out",
                str(figure),
            ]
        )
        == 0
    )
    _check_file(figure, "svg")
    # an architecture setting of the other family is refused with a sentence
    assert main([*argv[: -len(config)], "--config", "heads=4"]) == 2
    assert "unknown setting 'heads'" in capsys.readouterr().err
