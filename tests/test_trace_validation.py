"""Traces are checked at the boundary: the metadata schema, the tensor contract, the archive's declared
sizes; and figures draw non-finite values masked, with a note, instead of crashing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb

sys.path.insert(0, str(Path(__file__).parent))
from corpus.traces import (  # noqa: E402
    BUILDERS,
    build,
    deflated,
    npy_bytes,
    npy_header,
    payload,
    write_npz,
    write_zip,
    zeros_member,
)

from relviz.app.synthetic import synthetic_trace  # noqa: E402
from relviz.core import limits  # noqa: E402
from relviz.core.errors import BadInputError  # noqa: E402
from relviz.core.grid import Grid  # noqa: E402
from relviz.core.trace import FactoredAttention, MissingTensorError, Trace  # noqa: E402
from relviz.core.trace_meta import parse_meta  # noqa: E402
from relviz.render.figure import NO_VALUE_COLOR, shared_norm  # noqa: E402
from relviz.render.views import ViewOptions, render_view  # noqa: E402

DEMOS = {
    "demo-relation": "resources/scene-1.png",
    "demo-detr": "resources/scene-1.png",
    "demo-regionfeat": "resources/scene-1.png",
    "demo-lrnet": "resources/tiles/patch-0.png",
    "demo-nonlocal": "resources/tiles/pair-0.png",
    "demo-nonlocal-clip": "resources/clip-0.mp4",
}
ROOT = Path(__file__).resolve().parents[1]


# -- traces relviz writes pass ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_traces(tmp_path_factory) -> dict[str, Path]:
    from relviz import zoo

    folder = tmp_path_factory.mktemp("demo")
    out = {}
    for name, source in DEMOS.items():
        model = zoo.load_model(name, device="cpu")
        trace = zoo.run_model(model, ROOT / source, zoo.RunOptions(threshold=0.2))
        out[name] = trace.save(folder / f"{name}.npz")
    return out


@pytest.mark.parametrize("name", list(DEMOS))
def test_every_family_traced_by_relviz_reads_back(demo_traces, name):
    trace = Trace.load(demo_traces[name])
    with np.load(demo_traces[name], allow_pickle=False) as npz:
        stored = {f for f in npz.files if f != "meta"}
    held = set(trace.arrays) | {f"{n}::{p}" for n in trace.factored for p in ("q", "k", "key_mask")}
    assert stored <= held and trace.family == zoo_family(name)


def zoo_family(name: str) -> str:
    from relviz import zoo

    return zoo.models()[name].family


@pytest.mark.parametrize("family", list(BUILDERS))
def test_the_corpus_traces_and_the_app_synthetic_trace_read_back(tmp_path, family):
    for trace in (build(family), synthetic_trace()):
        back = Trace.load(trace.save(tmp_path / f"{family}.npz"))
        assert back.names() == trace.names()
        for name in trace.arrays:
            np.testing.assert_array_equal(back[name], trace[name])


# -- the metadata schema -----------------------------------------------------------------------------------
GOOD_META = {"family": "detr", "input": {"path": "x.png", "size": [40, 30]},
             "grid": {"shape": [2, 2], "stride": 32.0, "scale": [1.0, 1.0]}, "labels": ["a"]}


def _meta(**changes) -> dict:
    meta = json.loads(json.dumps(GOOD_META))
    for path, value in changes.items():
        *keys, last = path.split("__")
        node = meta
        for key in keys:
            node = node[key]
        if value is KeyError:
            node.pop(last)
        else:
            node[last] = value
    return meta


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"input__size": [-4, 30]}, r"meta\.input\.size\[0\] should be greater than 0 \(it is -4\)"),
        ({"input__size": ["40", "30"]}, r"meta\.input\.size\[0\] should be a valid integer"),
        ({"input__size": [40]}, r"meta\.input\.size: list should have at least 2 items"),
        ({"input__size": [True, 30]}, r"meta\.input\.size\[0\]"),
        ({"input": KeyError}, r"meta\.input is missing"),
        ({"input": [1, 2]}, r"meta\.input should be a JSON object"),
        ({"grid": KeyError}, r"a DETR trace needs meta\.grid"),
        ({"grid__stride": float("nan")}, r"meta\.grid\.stride should be a finite number"),
        ({"grid__shape": [2, 2, 2, 2]}, r"meta\.grid\.shape"),
        ({"labels": [1, 2]}, r"meta\.labels\[0\] should be a valid string"),
        ({"factored": {"a": {"kind": "softmax_qk", "scale": "big"}}}, r"meta\.factored\.a\.scale"),
        ({"lrnet": {"layers": {}, "order": ["x"]}}, r"order names layer 'x'"),
        ({"format_version": 2}, r"newer relviz"),
    ],
)
def test_schema_names_the_field_and_what_is_wrong(changes, message):
    with pytest.raises(BadInputError, match=message) as info:
        parse_meta(_meta(**changes), "t.npz")
    assert str(info.value).startswith("t.npz is not a usable relviz trace: ") and "\n" not in str(info.value)


@pytest.mark.parametrize("meta,kind", [(None, "null"), ([1], "list"), ("x", "str"), (3, "int")])
def test_schema_refuses_metadata_that_is_not_an_object(meta, kind):
    with pytest.raises(BadInputError, match=f"JSON {kind}, not an object"):
        parse_meta(meta, "t.npz")


def test_schema_keeps_keys_it_does_not_know_and_accepts_ints_for_floats():
    meta = _meta(grid__stride=32, input__camera="left")
    meta["future"] = {"anything": [1, "two"]}
    parsed = parse_meta(meta, "t.npz")
    assert parsed.grid.stride == 32.0 and parsed.input.model_extra == {"camera": "left"}
    assert parsed.model_extra["future"] == {"anything": [1, "two"]}


# -- the tensor contract: each rule fails on a crafted trace ------------------------------------------------
def _mutated(tmp_path: Path, family: str, edit) -> Path:
    arrays, meta = payload(build(family))
    edit(arrays, meta)
    return write_npz(tmp_path / "bad.npz", arrays, meta)


RULES = [
    ("detr", lambda a, m: a.__setitem__("detections/boxes", np.zeros((2, 3), np.float32)),
     r"detections/boxes is \(2, 3\), but the contract says \(N, 4\)"),
    ("detr", lambda a, m: a.__setitem__("detections/scores", np.ones(5, np.float32)),
     r"detections/scores \(5,\) has 5 detections, but detections/boxes has 2"),
    ("detr", lambda a, m: a.__setitem__("detections/scores", np.float32(1)), r"detections/scores is \(\) \(0-d\)"),
    ("detr", lambda a, m: a.__setitem__("detections/labels", np.array([0, 3])),
     r"detections/labels\[1\] is 3, outside 0\.\.2: meta\.labels has 3 class names"),
    ("detr", lambda a, m: a.__setitem__("detections/query", np.array([0, -1])), r"detections/query\[1\] is -1"),
    ("relation", lambda a, m: a.__setitem__("detections/proposal", np.array([-1, 0])),
     r"detections/proposal\[0\] is -1, outside 0\.\.5"),
    ("relation", lambda a, m: a.__setitem__("detections/nms_row", np.array([-1, 4])),
     r"detections/nms_row\[1\] is 4, outside -1\.\.3"),
    ("regionfeat", lambda a, m: a.__setitem__("detections/region_row", np.array([0, 7])),
     r"detections/region_row\[1\] is 7"),
    ("relation", lambda a, m: a["relation/fc1/boxes"].__setitem__((0, 1), np.nan), r"relation/fc1/boxes holds 1 "),
    ("relation", lambda a, m: a.__setitem__("relation/fc1/weight", np.ones((2, 6, 5), np.float32)),
     r"has 5 proposals along axis 2 but 6 along axis 1"),
    ("relation", lambda a, m: a.__setitem__("relation/fc1/geometry_weight", np.ones((2, 10), np.float32)),
     r"multiple of 8"),
    ("detr", lambda a, m: a.__setitem__("detections/labels", np.array([0.5, 1.0])), r"float64 where relviz "
     r"expects integers"),
    ("detr", lambda a, m: a.__setitem__("input/image", np.zeros((48, 64, 4), np.uint8)),
     r"input/image is \(48, 64, 4\), but the contract says \(IH, IW, 3\)"),
    ("detr", lambda a, m: a.__setitem__("detr/encoder/self_attn::k", a["detr/encoder/self_attn::k"][..., :2]),
     r"d = 4 but .*::k has d = 2"),
    ("detr", lambda a, m: a.__setitem__("detr/encoder/self_attn::key_mask", np.zeros(3, bool)),
     r"key_mask is \(3,\), but .* has 4 keys"),
    ("detr", lambda a, m: m["factored"].update(x={"kind": "softmax_qk", "scale": 1.0}), r"x::q is missing"),
    ("detr", lambda a, m: m["grid"].update(shape=[4, 4]), r"has 4 feature-grid cells, but meta\.grid"),
    ("lrnet", lambda a, m: a.pop("lrnet/res2.0/geometry"), r"lrnet/res2\.0/geometry is missing"),
    ("lrnet", lambda a, m: a.__setitem__("lrnet/stem/query", np.zeros((2, 16, 15), np.float32)),
     r"lrnet/stem/query \(2, 16, 15\) has 15 output columns"),
    ("nonlocal", lambda a, m: a.__setitem__("nonlocal/res4.0/pairwise", np.zeros((4, 3), np.float32)),
     r"nonlocal/res4\.0/pairwise \(4, 3\) has 3 key positions"),
    ("clip", lambda a, m: a.__setitem__("input/frames", np.zeros((4, 32, 32), np.uint8)), r"input/frames"),
    ("regionfeat", lambda a, m: a.__setitem__("region/positions", np.zeros((2, 8, 2), np.float32)),
     r"region/positions \(2, 8, 2\) has 8 sampled positions"),
]


@pytest.mark.parametrize("family,edit,message", RULES)
def test_each_contract_rule_refuses_a_crafted_trace(tmp_path, family, edit, message):
    Trace.load(build(family).save(tmp_path / "good.npz"))  # the same trace unbroken passes
    with pytest.raises(BadInputError, match=message) as info:
        Trace.load(_mutated(tmp_path, family, edit))
    assert str(info.value).startswith("bad.npz") and "\n" not in str(info.value)


def test_object_arrays_and_huge_declared_shapes_are_refused_from_their_headers(tmp_path):
    arrays, meta = payload(build("detr"))
    meta_member = ("meta.npy", *deflated(npy_bytes(np.array(json.dumps(meta)))))
    obj = npy_bytes(np.array([{"run": "code"}], dtype=object))
    with pytest.raises(BadInputError, match="holds Python objects"):
        Trace.load(write_zip(tmp_path / "obj.npz", [meta_member, ("x.npy", *deflated(obj))]))
    lie = npy_header((10**11, 10), "<f8") + bytes(80)
    with pytest.raises(BadInputError, match=r"declares a \(100000000000, 10\) float64 array .* holds 80 bytes"):
        Trace.load(write_zip(tmp_path / "lie.npz", [meta_member, ("x.npy", *deflated(lie))]))


def test_archive_sizes_are_checked_before_anything_is_decompressed(tmp_path, monkeypatch):
    arrays, meta = payload(build("detr"))
    meta["factored"] = {}
    meta_member = ("meta.npy", *deflated(npy_bytes(np.array(json.dumps(meta)))))
    bomb = write_zip(tmp_path / "bomb.npz", [meta_member, ("x.npy", *zeros_member(npy_header((8 << 20,), "|u1"), 8))])
    assert bomb.stat().st_size < 20_000
    Trace.load(bomb)  # 8 MiB of zeros is under the ratio-free allowance: it reads (as an unknown tensor)
    monkeypatch.setattr(limits, "ZIP_RATIO_FREE_BYTES", 1 << 20)
    with pytest.raises(BadInputError, match="trace bomb.npz would expand from .* a zip bomb"):
        Trace.load(bomb)
    monkeypatch.setattr(limits, "MAX_TRACE_BYTES", 4 << 20)
    with pytest.raises(BadInputError, match="trace bomb.npz declares 8.39 MB of uncompressed data"):
        Trace.load(bomb)


def test_a_factored_tensor_is_materialised_only_within_the_bound(monkeypatch):
    fa = FactoredAttention(np.ones((2, 50, 4), np.float32), np.ones((2, 60, 4), np.float32), 1.0)
    assert fa.full().shape == (2, 50, 60)
    monkeypatch.setattr(limits, "MAX_MATERIALISED_BYTES", 1000)
    with pytest.raises(BadInputError, match="a row at a time"):
        fa.full()
    assert fa.rows(3).shape == (2, 60)


def test_a_missing_tensor_is_a_sentence_and_still_a_key_error():
    trace = build("detr")
    with pytest.raises(MissingTensorError, match="the trace has no tensor 'relation/fc1/weight'") as info:
        trace["relation/fc1/weight"]
    assert isinstance(info.value, KeyError) and isinstance(info.value, BadInputError)
    assert str(info.value).startswith("the trace has no tensor")  # not quoted as a KeyError would be
    with pytest.raises(MissingTensorError):
        trace.rows("nonlocal/b/attn", 0)


# -- non-finite values are drawn masked -------------------------------------------------------------------
def _pixel(fig, ax, x: float, y: float) -> np.ndarray:
    """The RGB colour drawn at data point (x, y) of ``ax``."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    px, py = ax.transData.transform((x, y))
    return rgba[int(round(rgba.shape[0] - py)), int(round(px)), :3] / 255.0


def _notes(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")) if "non-finite" in t.get_text()]


def test_relation_matrix_draws_nan_in_the_no_value_colour_with_a_note():
    trace = build("relation")
    weight = trace["relation/fc2/weight"].copy()
    weight[:, 3, 1] = np.nan  # receiving proposal 3, contributing proposal 1, every head
    trace["relation/fc2/weight"] = weight
    fig = render_view(trace, "relation-matrix", ViewOptions(module="fc2", extra={"rows": "proposals"}, colorbar=False))
    ax = fig.axes[0]
    np.testing.assert_allclose(_pixel(fig, ax, 1, 3), to_rgb(NO_VALUE_COLOR), atol=0.02)
    assert not np.allclose(_pixel(fig, ax, 2, 3), to_rgb(NO_VALUE_COLOR), atol=0.02)
    assert _notes(fig) == ["1 non-finite value (NaN or ±inf) masked, drawn in grey"]


def test_nonlocal_map_masks_exactly_the_nan_cell_and_takes_its_range_from_finite_values():
    trace = build("nonlocal")
    attn = trace["nonlocal/res4.0/attn"].copy()
    attn[0, 3] = np.inf  # query cell 0 (top left), key cell 3 (bottom right of the 2×2 key grid)
    trace["nonlocal/res4.0/attn"] = attn
    fig = render_view(trace, "nonlocal", ViewOptions(point=(4.0, 4.0), layer="res4.0", colorbar=False, top_k=1))
    top = fig.axes[0]
    image = top.get_images()[-1]
    finite = attn[0, :3]
    assert image.norm.vmin == pytest.approx(finite.min()) and image.norm.vmax == pytest.approx(finite.max())
    assert image.get_array().mask[-1, -1] and not image.get_array().mask[0, 0]
    assert _notes(fig) == ["1 non-finite value (NaN or ±inf) masked, drawn in grey"]


def test_a_view_with_nothing_finite_says_so_in_a_message_figure():
    trace = build("detr")
    fa = trace.factored["detr/decoder/cross_attn"]
    trace["detr/decoder/cross_attn"] = FactoredAttention(np.full_like(fa.q, np.nan), fa.k, fa.scale, fa.key_mask)
    fig = render_view(trace, "decoder-attention", ViewOptions())
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any("NaN or infinite" in t for t in texts) and len(fig.axes) == 1


def test_grid_maps_keep_nan_cells_apart_and_stay_bounded():
    grid = Grid(2, 3, 10.0)
    values = np.arange(6, dtype=np.float32)
    values[4] = np.nan  # row 1, column 1: pixels x 10..19, y 10..19
    image = grid.to_image(values, (30, 20))
    assert np.isnan(image[10:20, 10:20]).all() and np.isfinite(image[:10]).all() and np.isfinite(image[10:, :10]).all()
    small = grid.to_image(values, (3000, 2000), max_pixels=60_000)
    assert small.size <= 60_000 and np.isnan(small).any()
    norms = shared_norm([image], True)
    assert (norms[0].vmin, norms[0].vmax) == (0.0, 5.0)


# -- options every view checks ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "view,family,options,message",
    [
        ("encoder-attention", "detr", dict(cmap="no-such"), "unknown colormap 'no-such'; valid ones include inferno"),
        ("nonlocal", "nonlocal", dict(top_k=0), r"--top-k 0 is out of range"),
        ("relations", "relation", dict(top_k=10**9), r"--top-k 1000000000 is out of range"),
        ("relations", "relation", dict(extra={"colour": "red"}), r"no setting 'colour'; its --set keys: direction="),
        ("geometry", "relation", dict(extra={"resolution": "fine"}), r"resolution takes an integer"),
        ("geometry", "relation", dict(extra={"resolution": 10**6}), r"resolution takes 4\.\.400"),
        ("region-parts", "regionfeat", dict(extra={"part": True}), r"part takes an integer"),
        ("nonlocal", "clip", dict(frame=4), r"frame 4 is not in this trace: give a clip position 0\.\.3"),
        ("decoder-attention", "detr", dict(width=1000.0), r"--width 1000(\.0)? is out of range"),
        ("encoder-attention", "detr", dict(point=(float("nan"), 2.0)), r"two finite numbers"),
    ],
)
def test_figure_options_are_checked_for_every_view(view, family, options, message):
    with pytest.raises(BadInputError, match=message):
        render_view(build(family), view, ViewOptions(**options))


def test_too_many_small_multiples_are_refused_with_what_to_do():
    trace = build("relation")
    for term in ("weight", "geometry", "appearance"):
        trace[f"relation/fc2/{term}"] = np.ones((300, 6, 6), np.float32)
    with pytest.raises(BadInputError, match="choose one head with --head H"):
        render_view(trace, "relations", ViewOptions(module="fc2"))
    assert render_view(trace, "relations", ViewOptions(module="fc2", head="7")) is not None
