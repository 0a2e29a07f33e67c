"""Trace files a user may drop on relviz: one small valid trace per family, and mutations of them.

The valid traces are built in Python with the layout each family's ``run`` writes (README "The trace";
relviz/zoo), plus one written by ``relviz trace``'s own code (the small seeded DETR of tests/test_cli.py).
The mutations break one rule each: malformed metadata, tensors whose shapes or dtypes break the
contract, index arrays out of range, attention factors that do not fit together, non-finite geometry, a
zip bomb, a header that declares a huge array, object and text arrays, and figure options out of range.
Valid edge inputs (NaN/Inf in attention or relation weights, unknown extra keys, no detections) must draw.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from corpus import Case
from relviz.core.grid import Grid
from relviz.core.trace import FactoredAttention, Trace, softmax

PNG = "--dpi", "50"


# -- valid traces, one per family -----------------------------------------------------------------------
def _image(width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((height, width, 3), 180, np.uint8)
    img[height // 4 : height // 2, width // 4 : width // 2] = rng.integers(0, 255, 3, dtype=np.uint8)
    return img


def _meta(family: str, width: int, height: int, **more) -> dict:
    return {"family": family, "input": {"path": f"{family}.png", "kind": "image", "frame": 0, "size": [width, height]},
            "labels": ["background", "circle", "square"], "captured": True, **more}


def detr_trace(rng: np.random.Generator) -> Trace:
    w, h, layers, heads, queries, d = 64, 48, 2, 2, 4, 4
    grid = Grid(2, 2, 32.0, 1.0, 1.0)
    t = Trace(meta=_meta("detr", w, h, grid=grid.to_json(), heads=heads, threshold=0.5))
    t.meta["labels"] = ["circle", "square", "triangle"]
    t["input/image"] = _image(w, h)
    t["detections/boxes"] = np.array([[4, 4, 30, 30], [34, 10, 60, 44]], np.float32)
    t["detections/scores"] = np.array([0.9, 0.7], np.float32)
    t["detections/labels"] = np.array([0, 2], np.int64)
    t["detections/query"] = np.array([1, 3], np.int64)
    t["detr/pred_logits"] = rng.normal(size=(queries, 4)).astype(np.float32)
    t["detr/pred_boxes"] = rng.random((queries, 4)).astype(np.float32)
    mask = np.zeros(grid.size, bool)

    def factors(nq: int, nk: int, key_mask=None) -> FactoredAttention:
        q = rng.normal(size=(layers, heads, nq, d)).astype(np.float32)
        k = rng.normal(size=(layers, heads, nk, d)).astype(np.float32)
        return FactoredAttention(q, k, 0.5, key_mask)

    t["detr/encoder/self_attn"] = factors(grid.size, grid.size, mask)
    t["detr/decoder/self_attn"] = factors(queries, queries)
    t["detr/decoder/cross_attn"] = factors(queries, grid.size, mask)
    return t


def _relation_terms(rng, heads: int, n: int) -> dict[str, np.ndarray]:
    geometry = np.maximum(rng.normal(size=(heads, n, n)), 0).astype(np.float32)
    appearance = rng.normal(size=(heads, n, n)).astype(np.float32)
    weight = softmax(np.log(np.maximum(geometry, 1e-6)) + appearance).astype(np.float32)
    return {"weight": weight, "geometry": geometry, "appearance": appearance}


def _boxes(rng, n: int, w: int, h: int) -> np.ndarray:
    xy = rng.random((n, 2)) * [w * 0.6, h * 0.6]
    wh = 6 + rng.random((n, 2)) * [w * 0.3, h * 0.3]
    return np.concatenate([xy, xy + wh], 1).astype(np.float32)


def relation_trace(rng: np.random.Generator) -> Trace:
    w, h, heads, p, m, d_g = 64, 48, 2, 6, 4, 16
    t = Trace(meta=_meta("relation", w, h, threshold=0.5))
    t.meta["relation"] = {"modules": ["fc1", "fc2", "nms"], "heads": heads, "geo_dim": d_g, "wavelength": 1000.0,
                          "position_scale": 100.0, "offset_clamp": 0.001, "nms": "learned", "first_n": 2,
                          "iou_thresholds": [0.5, 0.6, 0.7, 0.8, 0.9]}
    t["input/image"] = _image(w, h, 1)
    proposals = _boxes(rng, p, w, h)
    for module, n, boxes in (("fc1", p, proposals), ("fc2", p, proposals), ("nms", m, proposals[:m])):
        for term, value in _relation_terms(rng, heads, n).items():
            t[f"relation/{module}/{term}"] = value
        t[f"relation/{module}/boxes"] = boxes
        t[f"relation/{module}/geometry_weight"] = rng.normal(size=(heads, d_g)).astype(np.float32)
        t[f"relation/{module}/geometry_bias"] = rng.normal(size=heads).astype(np.float32)
    t["relation/nms/labels"] = np.array([1, 1, 2, 2], np.int64)
    t["relation/nms/rank"] = np.array([0, 1, 0, 1], np.int64)
    t["relation/nms/scores"] = np.array([0.9, 0.4, 0.8, 0.3], np.float32)
    t["relation/nms/keep"] = rng.random((m, 5)).astype(np.float32)
    t["relation/nms/proposal"] = np.array([0, 1, 2, 3], np.int64)
    t["detections/boxes"] = proposals[[0, 2]]
    t["detections/scores"] = np.array([0.9, 0.8], np.float32)
    t["detections/labels"] = np.array([1, 2], np.int64)
    t["detections/proposal"] = np.array([0, 2], np.int64)
    t["detections/nms_row"] = np.array([0, 2], np.int64)
    return t


def region_trace(rng: np.random.Generator) -> Trace:
    w, h, parts, samples = 64, 48, 2, 3
    t = Trace(meta=_meta("regionfeat", w, h, threshold=0.5))
    t.meta["region"] = {"parts": parts, "samples": samples, "enlarge": 2.0, "value": "shared"}
    t["input/image"] = _image(w, h, 2)
    boxes = np.array([[4, 4, 30, 30], [34, 10, 60, 44]], np.float32)
    positions = np.zeros((2, samples * samples, 2), np.float32)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        gx, gy = np.meshgrid(np.linspace(x0, x1, samples), np.linspace(y0, y1, samples))
        positions[i] = np.stack([gx.ravel(), gy.ravel()], 1)
    g = rng.normal(size=(2, parts * parts, samples * samples)).astype(np.float32)
    a = rng.normal(size=(2, parts * parts, samples * samples)).astype(np.float32)
    t["region/geometry"], t["region/appearance"] = g, a
    t["region/weight"] = softmax(g + a).astype(np.float32)
    t["region/positions"], t["region/boxes"] = positions, boxes
    t["region/proposal"] = np.array([4, 1], np.int64)
    t["detections/boxes"] = boxes
    t["detections/scores"] = np.array([0.9, 0.8], np.float32)
    t["detections/labels"] = np.array([1, 2], np.int64)
    t["detections/proposal"] = np.array([4, 1], np.int64)
    t["detections/region_row"] = np.array([0, 1], np.int64)
    return t


def lrnet_trace(rng: np.random.Generator) -> Trace:
    w = h = 32
    groups, k = 2, 3
    layers = {"stem": ((32, 32, 1), (16, 16, 2), 2), "res2.0": ((16, 16, 2), (16, 16, 2), 1)}
    meta_layers = {}
    t = Trace(meta=_meta("lrnet", w, h))
    t.meta["labels"] = ["solid", "striped", "dotted"]
    t["input/image"] = _image(w, h, 3)
    for name, ((ih, iw, istride), (oh, ow, ostride), stride) in layers.items():
        grid, in_grid = Grid(oh, ow, float(ostride)), Grid(ih, iw, float(istride))
        meta_layers[name] = {"kernel_size": k, "stride": stride, "m": 1, "groups": groups, "channels": groups,
                             "composability": "squared", "input_shape": [ih, iw], "output_shape": [oh, ow],
                             "grid": grid.to_json(), "input_grid": in_grid.to_json(), "full": True}
        t[f"lrnet/{name}/geometry"] = rng.normal(size=(groups, k, k)).astype(np.float32)
        t[f"lrnet/{name}/key"] = rng.normal(size=(groups, ih, iw)).astype(np.float32)
        t[f"lrnet/{name}/query"] = rng.normal(size=(groups, oh, ow)).astype(np.float32)
        app = rng.normal(size=(groups, k * k, oh, ow)).astype(np.float32)
        t[f"lrnet/{name}/appearance"] = app
        t[f"lrnet/{name}/weight"] = softmax(app, axis=1).astype(np.float32)
    t.meta["lrnet"] = {"layers": meta_layers, "order": list(layers), "kernel_size": k, "m": 1,
                       "composability": "squared"}
    t.meta["grid"] = meta_layers["res2.0"]["grid"]
    t["classification/logits"] = rng.normal(size=3).astype(np.float32)
    return t


def nonlocal_trace(rng: np.random.Generator, clip: bool = False) -> Trace:
    w = h = 32
    t = Trace(meta=_meta("nonlocal", w, h))
    t.meta["labels"] = ["different", "same"]
    frames, fs = (4, 2) if clip else (1, 1)
    steps = frames // fs
    qgrid, kgrid = Grid(4, 4, 8.0, 1.0, 1.0, steps, fs), Grid(2, 2, 16.0, 1.0, 1.0, steps, fs)
    blocks = {
        "res3.0": {"instantiation": "embedded", "query_grid": qgrid.to_json(), "key_grid": kgrid.to_json(),
                   "frame_stride": fs},
        "res4.0": {"instantiation": "dot", "query_grid": kgrid.to_json(), "key_grid": kgrid.to_json(),
                   "frame_stride": fs},
    }
    t["nonlocal/res3.0/attn"] = FactoredAttention(rng.normal(size=(qgrid.size, 4)).astype(np.float32),
                                                  rng.normal(size=(kgrid.size, 4)).astype(np.float32), 0.5)
    pairwise = rng.normal(size=(kgrid.size, kgrid.size)).astype(np.float32)
    t["nonlocal/res4.0/pairwise"] = pairwise
    t["nonlocal/res4.0/attn"] = pairwise / kgrid.size
    t.meta["nonlocal"] = {"blocks": blocks, "order": list(blocks), "instantiation": "embedded", "clip": clip,
                          "frames": frames}
    t.meta["grid"] = blocks["res4.0"]["query_grid"]
    t["input/image"] = _image(w, h, 4)
    if clip:
        t["input/frames"] = np.stack([_image(w, h, 4 + i) for i in range(frames)])
        t.meta["input"].update(kind="video", path="clip.mp4", frame_indices=[5, 6, 7, 8], frame=5)
    t["classification/logits"] = rng.normal(size=2).astype(np.float32)
    return t


BUILDERS: dict[str, Callable[[np.random.Generator], Trace]] = {
    "detr": detr_trace,
    "relation": relation_trace,
    "regionfeat": region_trace,
    "lrnet": lrnet_trace,
    "nonlocal": nonlocal_trace,
    "clip": lambda rng: nonlocal_trace(rng, clip=True),
}
#: every view on the family it serves, with the options that select something in the small traces
VIEWS: dict[str, list[tuple[str, list[str]]]] = {
    "detr": [("detections", []), ("encoder-attention", ["--point", "20,20"]), ("decoder-attention", ["--object", "1"])],
    "relation": [("detections", []), ("relations", ["--object", "1"]), ("relations", ["--module", "nms"]),
                 ("relation-matrix", ["--set", "rows=proposals"]), ("geometry", ["--head", "1"])],
    "regionfeat": [("detections", []), ("region-parts", ["--object", "1"]), ("region-parts", ["--set", "part=3"])],
    "lrnet": [("local-relation", ["--point", "10,12"]), ("geometry-priors", [])],
    "nonlocal": [("nonlocal", ["--point", "12,20"]), ("nonlocal", ["--layer", "res4.0", "--set", "values=pairwise"])],
    "clip": [("nonlocal", ["--point", "12,20", "--frame", "7"])],
}


def build(family: str, seed: int = 0) -> Trace:
    return BUILDERS[family](np.random.default_rng(seed))


# -- writing .npz files by hand (to break what Trace.save never would) ----------------------------------
def payload(trace: Trace) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and metadata :meth:`Trace.save` would write, for mutating before writing."""
    arrays = dict(trace.arrays)
    meta = json.loads(json.dumps(trace.meta))
    meta["format_version"] = 1
    meta["factored"] = {}
    for name, fa in trace.factored.items():
        arrays[f"{name}::q"], arrays[f"{name}::k"] = fa.q, fa.k
        if fa.key_mask is not None:
            arrays[f"{name}::key_mask"] = fa.key_mask
        meta["factored"][name] = {"kind": "softmax_qk", "scale": float(fa.scale)}
    return arrays, meta


def write_npz(path: Path, arrays: dict[str, np.ndarray], meta=None, meta_text: str | None = None) -> Path:
    out = dict(arrays)
    if meta_text is not None or meta is not None:
        out["meta"] = np.array(meta_text if meta_text is not None else json.dumps(meta))
    np.savez_compressed(path, **out)
    return path


def npy_header(shape: tuple[int, ...], dtype: str) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(array), allow_pickle=True)
    return buf.getvalue()


def write_zip(path: Path, members: list[tuple[str, list[bytes], int, int]]) -> Path:
    """A zip of raw-deflated members: (name, compressed segments, crc32, uncompressed size)."""
    local, central, offset = [], [], 0
    for name, segments, crc, size in members:
        raw = name.encode()
        comp = sum(len(s) for s in segments)
        header = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, comp, size, len(raw), 0) + raw
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, comp, size,
                                   len(raw), 0, 0, 0, 0, 0, offset) + raw)
        local.append((header, segments))
        offset += len(header) + comp
    with open(path, "wb") as fh:
        for header, segments in local:
            fh.write(header)
            for s in segments:
                fh.write(s)
        cd = b"".join(central)
        fh.write(cd)
        fh.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(cd), offset, 0))
    return path


def deflated(data: bytes) -> tuple[list[bytes], int, int]:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return [c.compress(data) + c.flush()], zlib.crc32(data), len(data)


def zeros_member(header: bytes, megabytes: int) -> tuple[list[bytes], int, int]:
    """``header`` followed by ``megabytes`` MiB of zeros, deflated without ever holding them: one compressed
    MiB of zeros repeated (a full flush makes each segment independent)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    first = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH)
    seg = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(header)
    for _ in range(megabytes):
        crc = zlib.crc32(chunk, crc)
    return [first, *([seg] * megabytes), c.flush()], crc, len(header) + megabytes * len(chunk)


# -- the cases --------------------------------------------------------------------------------------------
def _export(trace: Path, view: str, out: Path, *more: str) -> list[str]:
    return ["export", "--trace", str(trace), "--view", view, "--out", str(out), *PNG, *more]


class _Maker:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.cases: list[Case] = []
        self.good: dict[str, Path] = {}

    def file(self, name: str) -> Path:
        return self.folder / name

    def refuse(self, name: str, path: Path, view: str, message: str, *more: str) -> None:
        """A trace (or option) relviz must refuse with a sentence that says ``message``."""
        self.cases.append(Case(name, _export(path, view, self.file(f"{name}.png"), *more), 2, message, [str(path)]))

    def draw(self, name: str, path: Path, view: str, *more: str) -> None:
        """A trace and view that must draw."""
        self.cases.append(Case(name, _export(path, view, self.file(f"{name}.png"), *more), 0, "", [str(path)]))

    def mutated(self, name: str, family: str, change: Callable[[dict, dict], object]) -> Path:
        """Family's good trace with ``change(arrays, meta)`` applied, written with numpy."""
        arrays, meta = payload(build(family))
        change(arrays, meta)
        return write_npz(self.file(f"{name}.npz"), arrays, meta)


def make(folder: Path) -> list[Case]:
    mk = _Maker(folder)
    for family in BUILDERS:
        mk.good[family] = build(family).save(mk.file(f"good-{family}.npz"))
    mk.good["detr-real"] = _real_detr_trace(folder)
    _valid_cases(mk)
    _metadata_cases(mk)
    _tensor_cases(mk)
    _factor_cases(mk)
    _archive_cases(mk)
    _option_cases(mk)
    return mk.cases


def _real_detr_trace(folder: Path) -> Path:
    """A trace written by relviz's own DETR code (the small seeded model of tests/test_cli.py)."""
    from PIL import Image

    from relviz import zoo

    rgb = np.zeros((72, 96, 3), np.uint8)
    rgb[10:40, 10:50] = (220, 40, 40)
    rgb[40:70, 55:90] = (40, 40, 220)
    Image.fromarray(rgb).save(folder / "scene.png")
    config = {"backbone_depth": 18, "hidden_dim": 64, "nheads": 4, "enc_layers": 2, "dec_layers": 2,
              "dim_feedforward": 96, "num_queries": 8, "num_classes": 5}
    model = zoo.load_model("detr-r50", "none", device="cpu", overrides=config)
    trace = zoo.run_model(model, folder / "scene.png", zoo.RunOptions(threshold=0.0, resize=96))
    return trace.save(folder / "good-detr-real.npz")


def _valid_cases(mk: _Maker) -> None:
    for family, views in VIEWS.items():
        for i, (view, more) in enumerate(views):
            mk.draw(f"ok_{family}_{view}_{i}", mk.good[family], view, *more)
    mk.draw("ok_real_detr_decoder", mk.good["detr-real"], "decoder-attention", "--object", "0", "--head", "1")
    mk.draw("ok_real_detr_encoder", mk.good["detr-real"], "encoder-attention", "--layer", "0")

    def nan_encoder(arrays, meta):
        arrays["detr/encoder/self_attn::q"][:, :, 2] = np.nan  # the rows of cell 2: every key NaN

    mk.draw("ok_nan_in_encoder_attention", mk.mutated("nan_encoder", "detr", nan_encoder), "encoder-attention",
            "--point", "10,40", "--point", "40,10")

    def inf_cross(arrays, meta):
        arrays["detr/decoder/cross_attn::k"][1, 1, 3, 0] = np.inf

    mk.draw("ok_inf_in_cross_attention", mk.mutated("inf_cross", "detr", inf_cross), "decoder-attention")

    def all_nan_cross(arrays, meta):
        arrays["detr/decoder/cross_attn::q"][:] = np.nan

    mk.draw("ok_all_nan_cross_attention", mk.mutated("all_nan_cross", "detr", all_nan_cross), "decoder-attention")

    def nan_relation(arrays, meta):
        for term in ("weight", "geometry", "appearance"):
            arrays[f"relation/fc2/{term}"][0, :, 1] = np.nan
            arrays[f"relation/fc2/{term}"][1, 0, 3] = -np.inf

    nan_rel = mk.mutated("nan_relation", "relation", nan_relation)
    mk.draw("ok_nan_in_relations", nan_rel, "relations", "--object", "0")
    mk.draw("ok_nan_in_relation_matrix", nan_rel, "relation-matrix", "--set", "rows=proposals")

    def nan_geometry_weight(arrays, meta):
        arrays["relation/fc2/geometry_weight"][:] = np.nan

    mk.draw("ok_all_nan_geometry_weight", mk.mutated("nan_wg", "relation", nan_geometry_weight), "geometry")

    def nan_region(arrays, meta):
        arrays["region/weight"][1, 2] = np.nan

    mk.draw("ok_nan_in_region_parts", mk.mutated("nan_region", "regionfeat", nan_region), "region-parts",
            "--object", "1")

    def inf_lrnet(arrays, meta):
        arrays["lrnet/res2.0/weight"][0, 4] = np.inf
        arrays["lrnet/res2.0/geometry"][1, 1, 1] = np.nan

    mk.draw("ok_inf_in_lrnet_kernels", mk.mutated("inf_lrnet", "lrnet", inf_lrnet), "local-relation",
            "--point", "16,16", "--layer", "res2.0")

    def nan_nonlocal(arrays, meta):
        arrays["nonlocal/res4.0/attn"][:, 1] = np.nan

    mk.draw("ok_nan_in_nonlocal", mk.mutated("nan_nonlocal", "nonlocal", nan_nonlocal), "nonlocal",
            "--layer", "res4.0", "--point", "5,5")

    def forward_compatible(arrays, meta):
        meta["written_by"] = {"relviz": "9.9", "notes": [1, 2, 3]}
        meta["input"]["camera"] = "left"
        meta["grid"]["origin"] = [0, 0]
        arrays["future/extra_tensor"] = np.arange(6, dtype=np.float32).reshape(2, 3)

    mk.draw("ok_unknown_keys_and_tensors", mk.mutated("forward", "detr", forward_compatible), "decoder-attention")

    def no_detections(arrays, meta):
        for name in ("boxes", "scores", "labels", "query"):
            arrays[f"detections/{name}"] = arrays[f"detections/{name}"][:0]

    empty = mk.mutated("no_detections", "detr", no_detections)
    mk.draw("ok_no_detections_decoder", empty, "decoder-attention")
    mk.draw("ok_no_detections_encoder", empty, "encoder-attention")

    def no_image(arrays, meta):
        del arrays["input/image"]

    mk.draw("ok_without_embedded_image", mk.mutated("no_image", "detr", no_image), "encoder-attention")


def _metadata_cases(mk: _Maker) -> None:
    detr = mk.good["detr"]
    arrays, meta = payload(build("detr"))
    for name, text, message in (
        ("meta_null", "null", "JSON null"),
        ("meta_list", "[1, 2, 3]", "JSON list"),
        ("meta_string", '"hello"', "JSON str"),
        ("meta_not_json", "{'family': detr", "unreadable trace metadata"),
        ("meta_deeply_nested", '{"input": ' + "[" * 100_000 + "]" * 100_000 + "}", "metadata"),
    ):
        mk.refuse(name, write_npz(mk.file(f"{name}.npz"), arrays, meta_text=text), "detections", message)
    mk.refuse("meta_absent", write_npz(mk.file("meta_absent.npz"), arrays), "detections", "no 'meta' entry")
    numeric = {**arrays, "meta": np.float32(3.0)}
    mk.refuse("meta_is_a_number", write_npz(mk.file("meta_number.npz"), numeric), "detections", "not the JSON string")

    def change(name: str, family: str, edit: Callable[[dict, dict], object], view: str, message: str, *more) -> None:
        mk.refuse(name, mk.mutated(name, family, edit), view, message, *more)

    change("meta_no_input", "detr", lambda a, m: m.pop("input"), "detections", "meta.input is missing")
    change("meta_no_grid", "detr", lambda a, m: m.pop("grid"), "encoder-attention", "meta.grid")
    change("meta_input_null", "detr", lambda a, m: m.update(input=None), "detections", "meta.input")
    change("meta_size_negative", "detr", lambda a, m: m["input"].update(size=[-64, 48]), "detections",
           "meta.input.size[0]")
    change("meta_size_strings", "relation", lambda a, m: m["input"].update(size=["64", "48"]), "detections",
           "meta.input.size[0]")
    change("meta_size_three", "lrnet", lambda a, m: m["input"].update(size=[32, 32, 3]), "geometry-priors",
           "meta.input.size")
    change("meta_size_float", "nonlocal", lambda a, m: m["input"].update(size=[32.5, 32]), "nonlocal",
           "meta.input.size[0]")
    change("meta_size_huge", "detr", lambda a, m: m["input"].update(size=[200_000, 100_000]), "detections",
           "more pixels")
    change("meta_grid_stride_zero", "detr", lambda a, m: m["grid"].update(stride=0), "encoder-attention",
           "meta.grid.stride")
    change("meta_grid_shape_words", "detr", lambda a, m: m["grid"].update(shape=["2", "2"]), "encoder-attention",
           "meta.grid.shape[0]")
    change("meta_grid_scale_nan", "detr", lambda a, m: m["grid"].update(scale=[float("nan"), 1.0]),
           "encoder-attention", "meta.grid.scale[0]")
    change("meta_grid_not_matching", "detr", lambda a, m: m["grid"].update(shape=[3, 3]), "encoder-attention",
           "meta.grid")
    change("meta_labels_string", "detr", lambda a, m: m.update(labels="circle, square"), "detections",
           "meta.labels")
    change("meta_family_number", "detr", lambda a, m: m.update(family=7), "detections", "meta.family")
    change("meta_scale_string", "detr", lambda a, m: m["factored"]["detr/encoder/self_attn"].update(scale="0.5"),
           "encoder-attention", "scale")
    change("meta_scale_infinite", "nonlocal", lambda a, m: m["factored"]["nonlocal/res3.0/attn"].update(
        scale=float("inf")), "nonlocal", "scale")
    change("meta_factored_kind", "detr", lambda a, m: m["factored"]["detr/decoder/self_attn"].update(kind="linear"),
           "decoder-attention", "kind")
    change("meta_factored_list", "detr", lambda a, m: m.update(factored=["detr/encoder/self_attn"]),
           "encoder-attention", "meta.factored")
    change("meta_factored_names_absent", "detr", lambda a, m: m["factored"].update(
        {"detr/other": {"kind": "softmax_qk", "scale": 1.0}}), "detections", "detr/other")
    change("meta_lrnet_order_unknown", "lrnet", lambda a, m: m["lrnet"]["order"].append("res9.9"), "geometry-priors",
           "res9.9")
    change("meta_lrnet_even_kernel", "lrnet", lambda a, m: m["lrnet"]["layers"]["stem"].update(kernel_size=4),
           "local-relation", "kernel")
    change("meta_lrnet_composability", "lrnet", lambda a, m: m["lrnet"]["layers"]["stem"].update(composability=3),
           "local-relation", "composability")
    change("meta_nonlocal_no_key_grid", "nonlocal", lambda a, m: m["nonlocal"]["blocks"]["res3.0"].pop("key_grid"),
           "nonlocal", "key_grid")
    change("meta_nonlocal_blocks_list", "clip", lambda a, m: m["nonlocal"].update(blocks=[1, 2]), "nonlocal",
           "meta.nonlocal.blocks")
    change("meta_relation_wavelength", "relation", lambda a, m: m["relation"].update(wavelength=-5), "geometry",
           "wavelength")
    change("meta_region_parts_mismatch", "regionfeat", lambda a, m: m["region"].update(parts=3), "region-parts",
           "parts")
    change("meta_format_newer", "detr", lambda a, m: m.update(format_version=7), "detections", "newer relviz")
    assert detr.is_file()


def _tensor_cases(mk: _Maker) -> None:
    def change(name: str, family: str, edit: Callable[[dict, dict], object], view: str, message: str, *more) -> None:
        mk.refuse(name, mk.mutated(name, family, edit), view, message, *more)

    def put(key: str, value) -> Callable[[dict, dict], None]:
        return lambda a, m: a.__setitem__(key, value)

    change("boxes_n_by_3", "detr", put("detections/boxes", np.zeros((2, 3), np.float32)), "detections",
           "detections/boxes")
    change("boxes_nan", "relation", lambda a, m: a["detections/boxes"].__setitem__((0, 0), np.nan), "detections",
           "non-finite")
    change("scores_length", "detr", put("detections/scores", np.ones(3, np.float32)), "detections",
           "detections/scores")
    change("scores_0d", "regionfeat", put("detections/scores", np.float32(0.5)), "detections", "detections/scores")
    change("labels_out_of_range", "detr", put("detections/labels", np.array([0, 9])), "detections",
           "detections/labels")
    change("labels_negative", "relation", put("detections/labels", np.array([-1, 1])), "detections",
           "detections/labels")
    change("labels_float", "detr", put("detections/labels", np.array([0.0, 1.0], np.float32)), "detections",
           "integers")
    change("labels_text", "detr", put("detections/labels", np.array(["circle", "square"])), "detections", "text")
    change("query_out_of_range", "detr", put("detections/query", np.array([1, 4])), "decoder-attention",
           "detections/query")
    change("proposal_negative", "relation", put("detections/proposal", np.array([0, -2])), "relations",
           "detections/proposal", "--object", "1")
    change("proposal_too_large", "relation", put("detections/proposal", np.array([0, 6])), "relation-matrix",
           "detections/proposal")
    change("nms_row_out_of_range", "relation", put("detections/nms_row", np.array([0, 4])), "relations",
           "detections/nms_row", "--module", "nms")
    change("nms_row_minus_two", "relation", put("detections/nms_row", np.array([-2, 0])), "relations",
           "detections/nms_row", "--module", "nms")
    change("region_row_out_of_range", "regionfeat", put("detections/region_row", np.array([0, 2])), "region-parts",
           "detections/region_row")
    change("relation_weight_not_square", "relation", put("relation/fc1/weight", np.zeros((2, 6, 5), np.float32)),
           "relations", "relation/fc1/weight")
    change("relation_heads_differ", "relation", put("relation/fc2/geometry", np.zeros((3, 6, 6), np.float32)),
           "relations", "heads")
    change("relation_boxes_inf", "relation", lambda a, m: a["relation/fc2/boxes"].__setitem__((1, 2), np.inf),
           "geometry", "non-finite")
    change("relation_no_boxes", "relation", lambda a, m: a.pop("relation/fc2/boxes"), "relations",
           "relation/fc2/boxes")
    change("geometry_weight_width", "relation", put("relation/fc1/geometry_weight", np.ones((2, 12), np.float32)),
           "geometry", "multiple of 8", "--module", "fc1")
    change("region_positions_shape", "regionfeat", put("region/positions", np.zeros((2, 9, 3), np.float32)),
           "region-parts", "region/positions")
    change("region_weight_not_square_parts", "regionfeat", lambda a, m: (
        m.pop("region"), [a.__setitem__(f"region/{t}", np.zeros((2, 3, 9), np.float32))
                          for t in ("weight", "geometry", "appearance")]), "region-parts", "square")
    change("lrnet_kernel_mismatch", "lrnet", put("lrnet/stem/geometry", np.zeros((2, 5, 5), np.float32)),
           "local-relation", "lrnet/stem/geometry")
    change("lrnet_key_grid_mismatch", "lrnet", put("lrnet/res2.0/key", np.zeros((2, 8, 8), np.float32)),
           "local-relation", "lrnet/res2.0/key")
    change("lrnet_missing_geometry", "lrnet", lambda a, m: a.pop("lrnet/stem/geometry"), "geometry-priors",
           "lrnet/stem/geometry")
    change("nonlocal_attn_shape", "nonlocal", put("nonlocal/res4.0/attn", np.zeros((4, 5), np.float32)), "nonlocal",
           "nonlocal/res4.0/attn")
    change("nonlocal_attn_missing", "clip", lambda a, m: a.pop("nonlocal/res4.0/attn"), "nonlocal",
           "nonlocal/res4.0/attn")
    change("image_size_mismatch", "detr", put("input/image", np.zeros((40, 64, 3), np.uint8)), "detections",
           "input/image")
    change("image_float", "detr", put("input/image", np.zeros((48, 64, 3), np.float32)), "detections", "input/image")
    change("frames_size_mismatch", "clip", put("input/frames", np.zeros((4, 32, 30, 3), np.uint8)), "nonlocal",
           "input/frames")
    change("complex_tensor", "detr", put("extra/complex", np.ones(3, np.complex64)), "detections", "complex")
    change("logits_2d", "lrnet", put("classification/logits", np.zeros((1, 3), np.float32)), "geometry-priors",
           "classification/logits")
    change("heads_empty", "detr", lambda a, m: (
        a.__setitem__("detr/decoder/cross_attn::q", np.zeros((2, 0, 4, 4), np.float32)),
        a.__setitem__("detr/decoder/cross_attn::k", np.zeros((2, 0, 4, 4), np.float32))),
        "decoder-attention", "heads")


def _factor_cases(mk: _Maker) -> None:
    def change(name: str, family: str, edit: Callable[[dict, dict], object], view: str, message: str, *more) -> None:
        mk.refuse(name, mk.mutated(name, family, edit), view, message, *more)

    enc = "detr/encoder/self_attn"
    change("factor_leading_dims", "detr", lambda a, m: a.__setitem__(f"{enc}::k", a[f"{enc}::k"][:, :1]),
           "encoder-attention", "leading axes")
    change("factor_width_differs", "detr", lambda a, m: a.__setitem__(f"{enc}::k", a[f"{enc}::k"][..., :3]),
           "encoder-attention", "same width")
    change("factor_k_missing", "detr", lambda a, m: a.pop("detr/decoder/cross_attn::k"), "decoder-attention",
           "cross_attn::k")
    change("factor_mask_length", "detr", lambda a, m: a.__setitem__(f"{enc}::key_mask", np.zeros(5, bool)),
           "encoder-attention", "key_mask")
    change("factor_mask_int", "detr", lambda a, m: a.__setitem__(f"{enc}::key_mask", np.zeros(4, np.int64)),
           "encoder-attention", "key_mask")
    change("factor_q_1d", "nonlocal", lambda a, m: a.__setitem__("nonlocal/res3.0/attn::q", np.zeros(16, np.float32)),
           "nonlocal", "nonlocal/res3.0/attn::q")
    change("factor_not_in_meta", "detr", lambda a, m: a.__setitem__("detr/x::q", np.zeros((2, 2), np.float32)),
           "detections", "meta.factored")
    change("factor_grid_cells", "detr", lambda a, m: (
        [a.__setitem__(f"{enc}::{p}", np.zeros((2, 2, 9, 4), np.float32)) for p in ("q", "k")],
        a.pop(f"{enc}::key_mask")), "encoder-attention", "feature-grid cells")
    change("factor_of_plain_tensor", "relation", lambda a, m: (
        a.__setitem__("relation/fc1/weight::q", np.zeros((2, 6, 2), np.float32)),
        a.__setitem__("relation/fc1/weight::k", np.zeros((2, 6, 2), np.float32)),
        a.pop("relation/fc1/weight"),
        m["factored"].update({"relation/fc1/weight": {"kind": "softmax_qk", "scale": 1.0}})),
        "relations", "plain array", "--module", "fc1")


def _archive_cases(mk: _Maker) -> None:
    arrays, meta = payload(build("detr"))
    meta_member = ("meta.npy", *deflated(npy_bytes(np.array(json.dumps(meta)))))

    # a zip bomb: 1.36 GiB of zeros declared as one tensor, in a file of about 1.4 MB
    mib = 1390
    bomb = write_zip(mk.file("zip_bomb.npz"), [meta_member, ("future/zeros.npy", *zeros_member(
        npy_header((mib * 1024, 1024), "|u1"), mib))])
    mk.refuse("zip_bomb", bomb, "detections", "zip bomb")
    # over the byte bound outright (declared, in the central directory)
    big = write_zip(mk.file("declares_too_much.npz"), [meta_member, ("future/zeros.npy", *zeros_member(
        npy_header((1600 * 1024, 1024), "|u1"), 1600))])
    mk.refuse("declares_too_much", big, "detections", "GB")
    # a header declaring 10¹² floats over 16 bytes of data
    lie = npy_header((10**12,), "<f4") + bytes(16)
    huge = write_zip(mk.file("huge_declared_shape.npz"), [meta_member, ("detections/scores.npy", *deflated(lie))])
    mk.refuse("huge_declared_shape", huge, "detections", "damaged")
    # an object array (a pickle inside the .npy)
    obj = write_zip(mk.file("object_array.npz"), [meta_member, ("detections/labels.npy", *deflated(npy_bytes(
        np.array([{"a": 1}, None], dtype=object))))])
    mk.refuse("object_array", obj, "detections", "Python objects")
    # a member that is not an .npy file, a corrupt member, an encrypted-looking archive, a plain .npy, a text file
    txt = write_zip(mk.file("not_npy_member.npz"), [meta_member, ("notes.txt", *deflated(b"hello"))])
    mk.refuse("member_not_npy", txt, "detections", "notes.txt")
    garbage = write_zip(mk.file("garbage_member.npz"), [meta_member, ("detections/boxes.npy",
                                                                     *deflated(b"\x93NUMPY garbage" * 10))])
    mk.refuse("member_garbage", garbage, "detections", "detections/boxes")
    path = mk.file("truncated.npz")
    path.write_bytes(mk.good["detr"].read_bytes()[:-200])
    mk.refuse("truncated_archive", path, "detections", "not a relviz trace")
    plain = mk.file("plain.npz")
    np.save(plain.with_suffix(".npy"), np.zeros(3))
    plain.write_bytes(plain.with_suffix(".npy").read_bytes())
    mk.refuse("plain_npy_named_npz", plain, "detections", "not a relviz trace")
    text = mk.file("text.npz")
    text.write_text("this is not a trace\n")
    mk.refuse("text_file", text, "detections", "not a relviz trace")
    twice = write_zip(mk.file("twice.npz"), [meta_member, meta_member])
    mk.refuse("member_twice", twice, "detections", "twice")


def _option_cases(mk: _Maker) -> None:
    detr, rel, region = mk.good["detr"], mk.good["relation"], mk.good["regionfeat"]
    lrnet, clip, nl = mk.good["lrnet"], mk.good["clip"], mk.good["nonlocal"]
    mk.refuse("cmap_unknown", detr, "encoder-attention", "colormap", "--cmap", "not-a-colormap")
    mk.refuse("top_k_zero", nl, "nonlocal", "top-k", "--top-k", "0")
    mk.refuse("top_k_negative", rel, "relations", "top-k", "--top-k", "-3")
    mk.refuse("top_k_huge", rel, "relation-matrix", "top-k", "--top-k", "1000000000")
    mk.refuse("object_out_of_range", detr, "decoder-attention", "--object", "--object", "2")
    mk.refuse("object_negative", rel, "relations", "--object", "--object", "-1")
    mk.refuse("point_outside", detr, "encoder-attention", "outside the image", "--point", "64,10")
    mk.refuse("point_nan", lrnet, "local-relation", "point", "--point", "nan,3")
    mk.refuse("layer_out_of_range", detr, "encoder-attention", "layer", "--layer", "2")
    mk.refuse("layer_unknown_name", lrnet, "local-relation", "layer", "--layer", "res7.0")
    mk.refuse("head_out_of_range", rel, "relations", "head", "--head", "2")
    mk.refuse("head_word", detr, "decoder-attention", "head", "--head", "all-of-them")
    mk.refuse("group_out_of_range", lrnet, "local-relation", "group", "--head", "5")
    mk.refuse("frame_out_of_range", clip, "nonlocal", "frame", "--frame", "4")
    mk.refuse("frame_negative", clip, "nonlocal", "frame", "--frame", "-1")
    mk.refuse("block_unknown", nl, "nonlocal", "res9.0", "--layer", "res9.0")
    mk.refuse("set_unknown_key", rel, "relations", "has no setting", "--set", "colour=red")
    mk.refuse("set_key_for_other_view", detr, "encoder-attention", "has no setting", "--set", "part=1")
    mk.refuse("set_wrong_type", region, "region-parts", "part", "--set", "part=first")
    mk.refuse("set_fraction_for_integer", region, "region-parts", "part", "--set", "part=1.5")
    mk.refuse("set_part_out_of_range", region, "region-parts", "part", "--set", "part=4")
    mk.refuse("set_choice_unknown", rel, "relations", "direction", "--set", "direction=sideways")
    mk.refuse("set_resolution_huge", rel, "geometry", "resolution", "--set", "resolution=100000")
    mk.refuse("set_scale_negative", rel, "geometry", "scale", "--set", "scale=-1")
    mk.refuse("set_max_groups_zero", lrnet, "geometry-priors", "max_groups", "--set", "max_groups=0")
    mk.refuse("module_absent", region, "relations", "relation traces", "--module", "nms")
    mk.refuse("view_wrong_family", lrnet, "encoder-attention", "for detr traces")
    mk.refuse("term_for_priors", lrnet, "geometry-priors", "--term appearance", "--term", "appearance")
