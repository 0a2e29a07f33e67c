"""What the panels show, computed from a trace and a selection: numpy only, no Qt, no torch.

The trace contract (DESIGN §3) names every relation tensor; this module turns those names into
*sources* a panel can present generically, so a family that lands later lights up without panel code:

- **point sources** answer "what does this image position attend to": ``detr/encoder/self_attn``
  (L, H, S, S), ``nonlocal/<block>/attn`` (Sq, Sk) and ``lrnet/<layer>/weight|appearance``
  (m, k·k, h, w);
- **object sources** answer "what does this object attend to": ``detr/decoder/cross_attn``
  (L, H, Q, S) through ``detections/query``, and ``region/weight|geometry|appearance`` (N, K, P) at
  ``region/positions``;
- **pair sources** relate objects to objects: ``relation/<module>/weight|geometry|appearance``
  (H, N, N) and ``detr/decoder/self_attn`` (L, H, Q, Q).

Rows are read with :meth:`Trace.rows`, so a hover never builds an S×S matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from relviz.core.grid import Grid
from relviz.core.trace import FactoredAttention, Trace

TERMS = ("weight", "geometry", "appearance")
TERM_SYMBOLS = {"weight": "ω", "geometry": "ω_G", "appearance": "ω_A"}


@dataclass(frozen=True)
class Source:
    """One family of maps the panels can show, with its layer and head axes."""

    key: str  # 'detr/encoder/self_attn', 'nonlocal', 'lrnet', 'region', 'detr/decoder/cross_attn'
    label: str
    driver: str  # 'point' or 'object'
    layers: tuple[str, ...] = ("0",)
    heads: int = 1
    terms: tuple[str, ...] = ("weight",)
    head_label: str = "head"


@dataclass
class Map:
    """Values to draw: on a feature grid (``grid``), at image points (``points``), or a 1-D row."""

    values: np.ndarray  # (H, ...) one map per head; grid maps are (H, h, w)
    grid: Grid | None = None
    points: np.ndarray | None = None  # (P, 2) image pixels, for point maps
    title: str = ""
    head_titles: list[str] = field(default_factory=list)
    axis: str = "head"  # what the first axis is: 'head' (or part, group) or 'frame' (space-time keys)
    crop: tuple[int, int, int, int] | None = None  # (row0, row1, col0, col1): where small multiples zoom

    def head(self, head: int | None, frame: int = 0) -> np.ndarray:
        """One head's map, or the mean over heads for ``None``; for space-time maps, time step ``frame``."""
        if self.axis == "frame":
            return self.values[min(max(frame, 0), self.values.shape[0] - 1)]
        if head is None or self.values.shape[0] == 1:
            return self.values.mean(axis=0) if head is None else self.values[0]
        return self.values[min(max(int(head), 0), self.values.shape[0] - 1)]


# -- grids -------------------------------------------------------------------------------------------


def _grid_dict(trace: Trace, name: str, role: str | None = None) -> dict | None:
    parts = name.split("/")
    if parts[0] == "nonlocal" and len(parts) > 1:  # meta['nonlocal']['blocks'][<block>]['query_grid']
        block = trace.meta.get("nonlocal", {}).get("blocks", {}).get(parts[1], {})
        entry = block.get(f"{role or 'query'}_grid")
        if isinstance(entry, dict):
            return entry
    if parts[0] == "lrnet" and len(parts) > 1:  # meta['lrnet']['layers'][<layer>]['grid']
        layer = trace.meta.get("lrnet", {}).get("layers", {}).get(parts[1], {})
        entry = layer.get("input_grid" if role == "input" else "grid")
        if isinstance(entry, dict):
            return entry
    grids = trace.meta.get("grids")
    if isinstance(grids, dict):
        parts = name.split("/")
        for i in range(len(parts), 0, -1):  # 'nonlocal/b1/attn' → 'nonlocal/b1' → 'nonlocal'
            entry = grids.get("/".join(parts[:i]))
            if isinstance(entry, dict):
                if role and isinstance(entry.get(role), dict):
                    return entry[role]
                if "shape" in entry:
                    return entry
    grid = trace.meta.get("grid")
    if isinstance(grid, dict) and "shape" in grid:
        return grid
    return None


def grid_for(
    trace: Trace,
    name: str,
    size: int | None = None,
    role: str | None = None,
    shape: tuple[int, int] | None = None,
) -> Grid:
    """The feature grid of tensor ``name`` from ``meta`` (``grids[name]`` or ``grid``), else inferred.

    Inference (for traces without grid metadata) assumes the grid covers the whole image: a given
    ``shape`` (h, w), or the h·w = ``size`` factorisation closest to the image's aspect ratio.
    """
    data = _grid_dict(trace, name, role)
    if data is not None:
        grid = Grid.from_json(data)
        if size is None or grid.size == size or grid.height * grid.width == size:
            return grid
    w, h = _image_size(trace)
    if shape is None:
        n = int(size or 1)
        best = (1, n)
        for gh in range(1, int(math.isqrt(n)) + 1):
            if n % gh == 0:
                for cand in ((gh, n // gh), (n // gh, gh)):
                    if abs(math.log(cand[1] / cand[0]) - math.log(w / h)) < abs(
                        math.log(best[1] / best[0]) - math.log(w / h)
                    ):
                        best = cand
        shape = best
    gh, gw = shape
    return Grid(int(gh), int(gw), stride=1.0, scale_x=gw / w, scale_y=gh / h)


def _image_size(trace: Trace) -> tuple[int, int]:
    try:
        return trace.image_size
    except (KeyError, TypeError, ValueError):
        if trace.image is not None:
            return trace.image.shape[1], trace.image.shape[0]
        return 1, 1


# -- sources -----------------------------------------------------------------------------------------


def _named(trace: Trace, prefix: str, suffix: str) -> list[str]:
    """The <name> parts of tensors called ``prefix/<name>/suffix``, in the trace's order."""
    out = []
    for n in trace.names():
        if n.startswith(prefix + "/") and n.endswith("/" + suffix):
            middle = n[len(prefix) + 1 : -len(suffix) - 1]
            if middle and middle not in out:
                out.append(middle)
    return _natural_sorted(out)


def _natural_sorted(names: list[str]) -> list[str]:
    import re

    def key(s: str):
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]

    return sorted(names, key=key)


def sources(trace: Trace | None) -> list[Source]:
    """Every map source present in ``trace``, object-driven ones first."""
    if trace is None:
        return []
    out: list[Source] = []
    name = "detr/decoder/cross_attn"
    if name in trace and "detections/query" in trace:
        L, H = trace.shape(name)[:2]
        out.append(Source(name, "DETR decoder cross-attention", "object", tuple(map(str, range(L))), H))
    if "region/weight" in trace:
        K = trace.shape("region/weight")[1]
        terms = tuple(t for t in TERMS if f"region/{t}" in trace)
        out.append(Source("region", "Region features w_k", "object", ("0",), K, terms, "part"))
    name = "detr/encoder/self_attn"
    if name in trace:
        L, H = trace.shape(name)[:2]
        out.append(Source(name, "DETR encoder self-attention", "point", tuple(map(str, range(L))), H))
    blocks = _ordered(_named(trace, "nonlocal", "attn"), trace.meta.get("nonlocal", {}).get("order"))
    if blocks:
        out.append(Source("nonlocal", "Non-local attention", "point", tuple(blocks), 1))
    layers = _ordered(_lrnet_layers(trace), trace.meta.get("lrnet", {}).get("order"))
    if layers:
        m = max(
            trace.shape(f"lrnet/{n}/geometry" if f"lrnet/{n}/geometry" in trace else f"lrnet/{n}/weight")[0]
            for n in layers
        )  # groups per layer differ; the most any layer has
        terms = ("weight", "appearance", "geometry")
        out.append(Source("lrnet", "LR-Net aggregation weights", "point", tuple(layers), m, terms, "group"))
    return out


def _lrnet_layers(trace: Trace) -> list[str]:
    """Layers with what a pixel's kernels need: weight/appearance maps, or key/query factors + prior."""
    full = _named(trace, "lrnet", "weight")
    factored = [
        n for n in _named(trace, "lrnet", "query") if f"lrnet/{n}/key" in trace and f"lrnet/{n}/geometry" in trace
    ]
    return full + [n for n in factored if n not in full]


def _ordered(names: list[str], order: list[str] | None) -> list[str]:
    """``names`` in the network's order when the trace gives one."""
    if not order:
        return names
    known = [n for n in order if n in names]
    return known + [n for n in names if n not in known]


def source(trace: Trace | None, key: str | None) -> Source | None:
    for s in sources(trace):
        if s.key == key:
            return s
    return None


def default_source(trace: Trace | None, driver: str) -> str | None:
    for s in sources(trace):
        if s.driver == driver:
            return s.key
    return None


def relation_modules(trace: Trace | None) -> list[str]:
    """Relation modules in the trace; ``detr/decoder/self_attn`` appears as the module 'detr-decoder'."""
    if trace is None:
        return []
    mods = _named(trace, "relation", "weight")
    if "detr/decoder/self_attn" in trace and "detections/query" in trace:
        mods.append(DETR_DECODER_MODULE)
    return mods


DETR_DECODER_MODULE = "detr-decoder"


def relation_terms(trace: Trace, module: str) -> list[str]:
    if module == DETR_DECODER_MODULE:
        return ["weight"]
    return [t for t in TERMS if f"relation/{module}/{t}" in trace]


def layer_index(layers: int, layer: int) -> int:
    """``layer`` (negative counts from the end) clamped into range."""
    if layers <= 0:
        return 0
    if layer < 0:
        layer = layers + layer
    return min(max(layer, 0), layers - 1)


# -- object geometry ---------------------------------------------------------------------------------


def detections(trace: Trace | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes (N,4) xyxy, scores (N,), labels (N,)) — empty arrays when the trace has none."""
    if trace is None or "detections/boxes" not in trace:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    boxes = np.asarray(trace["detections/boxes"], np.float32).reshape(-1, 4)
    n = len(boxes)
    scores = np.asarray(trace["detections/scores"], np.float32) if "detections/scores" in trace else np.ones(n)
    labels = np.asarray(trace["detections/labels"]) if "detections/labels" in trace else np.zeros(n, int)
    return boxes, scores.reshape(-1)[:n], labels.reshape(-1)[:n]


def class_names(trace: Trace | None) -> list[str]:
    if trace is None:
        return []
    for key in ("class_names", "classes", "labels"):
        value = trace.meta.get(key)
        if isinstance(value, list):
            return [str(v) for v in value]
    model = trace.meta.get("model")
    if isinstance(model, dict) and isinstance(model.get("class_names"), list):
        return [str(v) for v in model["class_names"]]
    return []


def label_text(trace: Trace | None, label: int) -> str:
    names = class_names(trace)
    return names[label] if 0 <= label < len(names) else str(int(label))


def top_classes(trace: Trace | None, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` most probable classes of ``classification/logits`` (softmax), best first."""
    if trace is None or "classification/logits" not in trace:
        return []
    logits = np.asarray(trace["classification/logits"], np.float64).reshape(-1)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    order = np.argsort(-p)[:k]
    return [(label_text(trace, int(i)), float(p[i])) for i in order]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N,4) with every box in ``b`` (M,4), xyxy."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def best_match(box: np.ndarray, boxes: np.ndarray, min_iou: float = 0.3) -> int | None:
    """Index of the box in ``boxes`` overlapping ``box`` most, if its IoU reaches ``min_iou``."""
    if len(boxes) == 0:
        return None
    iou = box_iou(box, boxes)[0]
    i = int(np.argmax(iou))
    return i if iou[i] >= min_iou else None


def follow_object(old: Trace | None, new: Trace | None, index: int | None) -> int | None:
    """The detection in ``new`` that is object ``index`` of ``old``: same DETR query, else best overlap."""
    if index is None or old is None or new is None:
        return None
    old_boxes = detections(old)[0]
    new_boxes = detections(new)[0]
    if not 0 <= index < len(old_boxes) or len(new_boxes) == 0:
        return None
    if "detections/query" in old and "detections/query" in new:
        q = int(np.asarray(old["detections/query"])[index])
        hits = np.flatnonzero(np.asarray(new["detections/query"]) == q)
        if len(hits):
            return int(hits[0])
    return best_match(old_boxes[index], new_boxes)


# -- maps --------------------------------------------------------------------------------------------


def layer_rows(trace: Trace, name: str, layer: int, query: int) -> np.ndarray:
    """Row ``query`` of every head of one layer of an (L, H, Nq, Nk) tensor: (H, Nk), float32.

    For factored attention only that layer's factors are multiplied (one row per head), which keeps
    a hover at 1,000 tokens well under a millisecond instead of computing every layer.
    """
    if name in trace.factored:
        fa = trace.factored[name]
        one = FactoredAttention(fa.q[layer], fa.k[layer], fa.scale, fa.key_mask)
        return np.asarray(one.rows(query), np.float32)
    return np.asarray(trace.arrays[name][layer, ..., query, :], np.float32)


def point_map(
    trace: Trace, src: Source, point: tuple[float, float], layer: int, term: str = "weight", frame: int = 0
) -> Map | None:
    """The maps (one per head) from image point ``point`` for a point source."""
    x, y = point
    li = layer_index(len(src.layers), layer)
    if src.key == "detr/encoder/self_attn":
        S = trace.shape(src.key)[-1]
        grid = grid_for(trace, src.key, S)
        cell = grid.cell_of_point(x, y)
        values = layer_rows(trace, src.key, li, cell).reshape(-1, grid.height, grid.width)
        return Map(
            values,
            grid,
            title=f"encoder layer {li}, from ({x:.0f}, {y:.0f})",
            head_titles=[f"head {h}" for h in range(values.shape[0])],
        )
    if src.key == "nonlocal":
        name = f"nonlocal/{src.layers[li]}/attn"
        Sq, Sk = trace.shape(name)[-2:]
        gq = grid_for(trace, name, Sq, role="query")
        gk = grid_for(trace, name, Sk, role="key")
        start = int(trace.meta.get("input", {}).get("frame", 0) or 0)
        cell = gq.cell_of_point(x, y, max(frame - start, 0))
        row = np.asarray(trace.rows(name, cell), np.float32).reshape(-1)[:Sk]
        # one small multiple per key frame (space-time models), one map for images
        values = row.reshape(gk.frames, gk.height, gk.width)
        flat_grid = Grid(gk.height, gk.width, gk.stride, gk.scale_x, gk.scale_y)
        titles = [f"t={t}" for t in range(gk.frames)] if gk.frames > 1 else [src.layers[li]]
        return Map(
            values,
            flat_grid,
            title=f"non-local {src.layers[li]}, from ({x:.0f}, {y:.0f})",
            head_titles=titles,
            axis="frame",
        )
    if src.key == "lrnet":
        lname = src.layers[li]
        term = term if term in src.terms else "weight"
        title = f"LR-Net {lname} {TERM_SYMBOLS.get(term, term)} at ({x:.0f}, {y:.0f})"
        if lname in trace.meta.get("lrnet", {}).get("layers", {}):
            from relviz.render.lrnet import pixel_kernels

            x = min(max(x, 0.0), _image_size(trace)[0] - 1e-3)
            y = min(max(y, 0.0), _image_size(trace)[1] - 1e-3)
            pk = pixel_kernels(trace, lname, x, y)
            window = np.nan_to_num(getattr(pk, term), nan=0.0)  # (G, k, k), outside the image: 0
            grid, (ci, cj) = pk.input_grid, pk.centre
        else:  # traces without layer metadata (synthetic): weights on the layer's own grid
            window = lrnet_window(trace, lname, (x, y), term)
            h, w = trace.shape(f"lrnet/{lname}/{'weight' if term == 'geometry' else term}")[-2:]
            grid = grid_for(trace, f"lrnet/{lname}", h * w, shape=(h, w))
            ci, cj = divmod(grid.cell_of_point(x, y), grid.width)
        titles = [f"group {g}" for g in range(window.shape[0])]
        k = window.shape[-1]
        pad = k // 2 + 1  # the k×k window and one cell around it
        crop = (max(ci - pad, 0), min(ci + pad + 1, grid.height), max(cj - pad, 0), min(cj + pad + 1, grid.width))
        return Map(_place(window, grid, ci, cj), grid, title=title, head_titles=titles, crop=crop)
    return None


def _place(window: np.ndarray, grid: Grid, ci: int, cj: int) -> np.ndarray:
    """(G, k, k) windows centred on cell (ci, cj), written into (G, h, w) maps of ``grid`` (0 elsewhere)."""
    g, k, _ = window.shape
    out = np.zeros((g, grid.height, grid.width), np.float32)
    r = k // 2
    for di in range(k):
        for dj in range(k):
            ii, jj = ci + di - r, cj + dj - r
            if 0 <= ii < grid.height and 0 <= jj < grid.width:
                out[:, ii, jj] = window[:, di, dj]
    return out


def lrnet_window(trace: Trace, layer_name: str, point: tuple[float, float], term: str = "weight") -> np.ndarray:
    """The (m, k, k) weights of ``layer_name`` at image point ``point``, from full (m, k·k, h, w) maps."""
    if term == "geometry":
        return np.asarray(trace[f"lrnet/{layer_name}/geometry"], np.float32)
    arr = trace[f"lrnet/{layer_name}/{term}"]
    m, kk, h, w = arr.shape
    k = int(round(math.sqrt(kk)))
    grid = grid_for(trace, f"lrnet/{layer_name}", h * w, shape=(h, w))
    i, j = divmod(grid.cell_of_point(*point), grid.width)
    return np.asarray(arr[:, :, i, j], np.float32).reshape(m, k, k)


def object_map(trace: Trace, src: Source, index: int, layer: int, term: str = "weight") -> Map | None:
    """The maps (one per head or part) of detection ``index`` for an object source."""
    n = len(detections(trace)[0])
    if not 0 <= index < max(n, 1):
        return None
    li = layer_index(len(src.layers), layer)
    if src.key == "detr/decoder/cross_attn":
        q = int(np.asarray(trace["detections/query"]).reshape(-1)[index])
        rows = layer_rows(trace, src.key, li, q)  # (H, S)
        grid = grid_for(trace, src.key, rows.shape[-1])
        values = rows.reshape(-1, grid.height, grid.width)
        return Map(
            values,
            grid,
            title=f"decoder layer {li}, object {index} (query {q})",
            head_titles=[f"head {h}" for h in range(values.shape[0])],
        )
    if src.key == "region":
        term = term if term in src.terms else src.terms[0]
        arr = trace[f"region/{term}"]
        row = region_row(trace, index)
        if row is None or row >= arr.shape[0]:
            return None
        values = np.asarray(arr[row], np.float32)  # (K, P)
        pos = np.asarray(trace["region/positions"][row], np.float32).reshape(-1, 2)
        return Map(
            values,
            None,
            points=pos,
            title=f"region {TERM_SYMBOLS[term]}, object {index}",
            head_titles=[f"part {k}" for k in range(values.shape[0])],
        )
    return None


def square_points(values: np.ndarray, points: np.ndarray) -> np.ndarray | None:
    """Point values (..., P) rearranged as (..., r, c) when the points form a regular r×c lattice."""
    P = points.shape[0]
    xs = np.unique(np.round(points[:, 0], 3))
    ys = np.unique(np.round(points[:, 1], 3))
    if len(xs) * len(ys) != P:
        return None
    order = np.lexsort((points[:, 0], points[:, 1]))  # row-major: y then x
    return values[..., order].reshape(*values.shape[:-1], len(ys), len(xs))


@dataclass
class Relations:
    """Object-to-object weights for one module, head (or mean) and term."""

    matrix: np.ndarray  # (N, N) rows = receiving object
    boxes: np.ndarray  # (N, 4) the module's objects
    per_head: np.ndarray  # (H, N, N)
    detection_of_row: np.ndarray  # (N,) detection index of each row, -1 if none
    row_of_det: np.ndarray | None = None  # (D,) row of each detection, -1 if none (several may share a row)


def relations(trace: Trace, module: str, term: str, head: int | None, layer: int = -1) -> Relations | None:
    det_boxes = detections(trace)[0]
    if module == DETR_DECODER_MODULE:
        if "detr/decoder/self_attn" not in trace:
            return None
        queries = np.asarray(trace["detections/query"]).reshape(-1).astype(int)
        full = trace["detr/decoder/self_attn"]  # (L, H, Q, Q)
        li = layer_index(full.shape[0], layer)
        per_head = np.asarray(full[li][:, queries][:, :, queries], np.float32)
        boxes = det_boxes
        mapping = np.arange(len(queries))
        row_of_det = mapping
    else:
        name = f"relation/{module}/{term}"
        if name not in trace:
            return None
        per_head = np.asarray(trace[name], np.float32)
        if per_head.ndim == 2:
            per_head = per_head[None]
        bname = f"relation/{module}/boxes"
        boxes = np.asarray(trace[bname], np.float32) if bname in trace else det_boxes[: per_head.shape[-1]]
        mapping = _rows_to_detections(trace, module, boxes, det_boxes)
        row_of_det = _detection_rows(trace, module, len(boxes))
    if head is None:
        matrix = per_head.mean(axis=0)
    else:
        matrix = per_head[min(max(int(head), 0), per_head.shape[0] - 1)]
    return Relations(matrix, boxes, per_head, np.asarray(mapping, int), row_of_det)


def _rows_to_detections(trace: Trace, module: str, boxes: np.ndarray, det_boxes: np.ndarray) -> np.ndarray:
    """Which detection each row of a relation module is (-1: none).

    The trace says it where it can: ``detections/nms_row`` for the duplicate-removal module,
    ``detections/proposal`` for modules over the proposals (fc1, fc2); otherwise boxes that overlap
    a detection with IoU ≥ 0.7 are taken to be it.
    """
    n_rows = len(boxes)
    mapping = np.full(n_rows, -1, int)
    key = "detections/nms_row" if module == "nms" else "detections/proposal"
    if key in trace:
        for det, row in enumerate(np.asarray(trace[key]).reshape(-1).astype(int)):
            if 0 <= row < n_rows and mapping[row] < 0:
                mapping[row] = det
        return mapping
    if n_rows and len(det_boxes):
        iou = box_iou(boxes, det_boxes)
        best = iou.argmax(axis=1)
        mapping = np.where(iou[np.arange(n_rows), best] >= 0.7, best, -1)
    return mapping


def _detection_rows(trace: Trace, module: str, n_rows: int) -> np.ndarray | None:
    """Each detection's row when the trace records it (``nms_row`` / ``proposal``), else None."""
    key = "detections/nms_row" if module == "nms" else "detections/proposal"
    if key not in trace:
        return None
    rows = np.asarray(trace[key]).reshape(-1).astype(int)
    return np.where((rows >= 0) & (rows < n_rows), rows, -1)


def region_row(trace: Trace, index: int) -> int | None:
    """The row of ``region/*`` that detection ``index`` is (``detections/region_row``, else the index)."""
    if "detections/region_row" in trace:
        rows = np.asarray(trace["detections/region_row"]).reshape(-1)
        if not 0 <= index < len(rows) or rows[index] < 0:
            return None
        return int(rows[index])
    return index


def row_of_detection(rel: Relations, index: int | None) -> int | None:
    if index is None:
        return None
    if rel.row_of_det is not None:
        if not 0 <= index < len(rel.row_of_det) or rel.row_of_det[index] < 0:
            return None
        return int(rel.row_of_det[index])
    hits = np.flatnonzero(rel.detection_of_row == index)
    return int(hits[0]) if len(hits) else None


def relative_geometry(boxes: np.ndarray, index: int) -> np.ndarray:
    """(N, 2) log-space offsets (log(|Δx|/w), log(|Δy|/h)) of every box centre from box ``index``,
    signed, the quantity the relation geometry term encodes (Hu et al. 2018, Eq. 5), normalised by
    the receiving box as the official code does."""
    b = np.asarray(boxes, np.float64)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    w = np.maximum(b[index, 2] - b[index, 0], 1e-3)
    h = np.maximum(b[index, 3] - b[index, 1], 1e-3)
    return np.stack([(cx - cx[index]) / w, (cy - cy[index]) / h], axis=1)


def strongest(values: np.ndarray, exclude: int | None, top_k: int) -> np.ndarray:
    """Indices of the ``top_k`` largest ``values``, largest first, leaving out ``exclude``."""
    order = np.argsort(-np.asarray(values), kind="stable")
    if exclude is not None:
        order = order[order != exclude]
    return order[:top_k]
