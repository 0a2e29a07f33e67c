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
  (H, N, N) and ``detr/decoder/self_attn`` (L, H, Q, Q): see :mod:`relviz.views.relations`.

Rows are read with :meth:`Trace.rows`, so a hover never builds an S×S matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from relviz.core.grid import Grid
from relviz.core.trace import FactoredAttention, Trace
from relviz.views import relations as rel_views
from relviz.views.cache import per_trace
from relviz.views.geometry import relative_offsets
from relviz.views.grids import grid_for, grid_rect, image_size
from relviz.views.lrnet import PixelKernels, layer_names, pixel_kernels
from relviz.views.lrnet import top_classes as top_classes  # noqa: PLC0414 - re-exported for the panels
from relviz.views.non_local import AttentionRow, attention_row
from relviz.views.palette import HEAT_CMAP, ColorScale, color_scale
from relviz.views.relations import (
    DETR_DECODER_MODULE,
    TERM_SYMBOLS,
    TERMS,
    RelationView,
    box_iou,
    relation_view,
)
from relviz.views.selection import clamp_layer, class_names, label_text

__all__ = ["DETR_DECODER_MODULE", "TERMS", "TERM_SYMBOLS", "Map", "Source", "box_iou", "class_names", "grid_for",
           "label_text", "top_classes"]
_image_size = image_size  # the window's older name


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
    """Values to draw as cells: (H, rows, cols), one map per head (part, group or key frame), over ``rect``.

    ``rect`` = (x0, y0, x1, y1) is the original-image rectangle the cells cover (cell (i, j) is the
    (i, j)-th of rows × cols equal cells in it): the feature grid's cover, an LR-Net kernel's k×k window, a
    region's support lattice.  Values at scattered image points (``points``, no lattice) are (H, P).
    """

    values: np.ndarray
    rect: tuple[float, float, float, float] | None = None
    grid: Grid | None = None
    points: np.ndarray | None = None  # (P, 2) image pixels, for point maps
    title: str = ""
    head_titles: list[str] = field(default_factory=list)
    axis: str = "head"  # what the first axis is: 'head' (or part, group) or 'frame' (space-time keys)
    unit: str = "attention"  # what the values are, for the colour scale
    symmetric: bool = False  # signed values (logits): a scale centred on 0
    kernels: PixelKernels | None = None  # LR-Net: the pixel's kernels (every term), for the kernel view
    row: AttentionRow | None = None  # Non-local: the attention row (its grids, for links and frames)

    @property
    def cells(self) -> tuple[int, int]:
        """(rows, cols) of one map."""
        return tuple(self.values.shape[-2:]) if self.values.ndim == 3 else (1, self.values.shape[-1])

    def cell_rect(self, i: int, j: int) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) in image pixels of cell (i, j)."""
        x0, y0, x1, y1 = self.rect
        rows, cols = self.cells
        cw, ch = (x1 - x0) / cols, (y1 - y0) / rows
        return x0 + j * cw, y0 + i * ch, x0 + (j + 1) * cw, y0 + (i + 1) * ch

    def head(self, head: int | None, frame: int = 0) -> np.ndarray:
        """One head's map, or the mean over heads for ``None``; for space-time maps, time step ``frame``."""
        if self.axis == "frame":
            return self.values[min(max(frame, 0), self.values.shape[0] - 1)]
        if head is None or self.values.shape[0] == 1:
            return self.values.mean(axis=0) if head is None else self.values[0]
        return self.values[min(max(int(head), 0), self.values.shape[0] - 1)]

    def multiples(self) -> tuple[list[np.ndarray], list[str]]:
        """The small multiples: every head (part, group, key frame) and, for several heads, their mean."""
        tiles = list(self.values)
        titles = [self.head_titles[i] if i < len(self.head_titles) else str(i) for i in range(len(tiles))]
        if len(tiles) > 1 and self.axis == "head":
            tiles.append(self.values.mean(axis=0))
            titles.append("mean")
        return tiles, titles

    def scale(self, shared: bool = True, head: int | None = None, frame: int = 0, cmap: str = HEAT_CMAP) -> ColorScale:
        """The colour scale of the shown map: over every small multiple when ``shared`` (the canvas and the
        tiles then say the same), else over the shown map alone."""
        arrays = self.multiples()[0] if shared else [self.head(head, frame)]
        return color_scale(arrays, cmap, shared, self.symmetric, self.unit)


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
    """Every map source present in ``trace``, object-driven ones first.

    Worked out once per trace (and again when tensors are added): the panels ask several times per hover.
    """
    if trace is None:
        return []
    count = len(trace.arrays) + len(trace.factored)
    return list(per_trace(trace, ("sources", count), lambda: _sources(trace)))


def _sources(trace: Trace) -> list[Source]:
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
    """Relation modules in network order; ``detr/decoder/self_attn`` appears as the module 'detr-decoder'."""
    return rel_views.modules(trace)


def relation_terms(trace: Trace, module: str) -> list[str]:
    return rel_views.terms(trace, module)


def layer_index(layers: int, layer: int) -> int:
    """``layer`` (negative counts from the end) clamped into range (:func:`relviz.views.selection.clamp_layer`)."""
    return clamp_layer(layers, layer)


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
    """The maps (one per head) from image point ``point`` for a point source; ``frame`` is a video frame."""
    x, y = point
    li = clamp_layer(len(src.layers), layer)
    if src.key == "detr/encoder/self_attn":
        S = trace.shape(src.key)[-1]
        grid = grid_for(trace, src.key, S)
        cell = grid.cell_of_point(x, y)
        values = layer_rows(trace, src.key, li, cell).reshape(-1, grid.height, grid.width)
        return Map(
            values,
            grid_rect(grid),
            grid,
            title=f"encoder layer {li}, from ({x:.0f}, {y:.0f})",
            head_titles=[f"head {h}" for h in range(values.shape[0])],
        )
    if src.key == "nonlocal":
        row = attention_row(trace, src.layers[li], x, y, frame, strict=False)
        gk = row.key_grid
        flat_grid = Grid(gk.height, gk.width, gk.stride, gk.scale_x, gk.scale_y)
        # one small multiple per key frame (space-time models), one map for images
        titles = [f"t={t}" for t in range(gk.frames)] if gk.frames > 1 else [src.layers[li]]
        return Map(
            row.values,
            row.key_rect(),
            flat_grid,
            title=f"non-local {src.layers[li]}, from ({x:.0f}, {y:.0f})",
            head_titles=titles,
            axis="frame",
            row=row,
        )
    if src.key == "lrnet":
        return lrnet_map(trace, src.layers[li], point, term if term in src.terms else "weight")
    return None


def lrnet_map(trace: Trace, layer: str, point: tuple[float, float], term: str = "weight") -> Map:
    """The k×k kernel of every group at ``point`` (one term), over the window's image rectangle."""
    x, y = point
    title = f"LR-Net {layer} {TERM_SYMBOLS.get(term, term)} at ({x:.0f}, {y:.0f})"
    if layer in layer_names(trace):
        pk = pixel_kernels(trace, layer, x, y, clamp=True)
        window = pk.term(term)  # (G, k, k); appearance outside the image: NaN
        rect = pk.rect()
    else:  # traces without layer metadata (synthetic): weights on the layer's own grid
        window = lrnet_window(trace, layer, (x, y), term)
        h, w = trace.shape(f"lrnet/{layer}/{'weight' if term == 'geometry' else term}")[-2:]
        grid = grid_for(trace, f"lrnet/{layer}", h * w, shape=(h, w))
        ci, cj = divmod(grid.cell_of_point(x, y), grid.width)
        r = window.shape[-1] // 2
        cw, ch = grid.stride / grid.scale_x, grid.stride / grid.scale_y
        rect = ((cj - r) * cw, (ci - r) * ch, (cj + r + 1) * cw, (ci + r + 1) * ch)
        pk = None
    titles = [f"group {g}" for g in range(window.shape[0])]
    unit = {"weight": "ω", "geometry": "geometry logit", "appearance": "appearance Φ"}.get(term, term)
    return Map(np.asarray(window, np.float32), rect, None, title=title, head_titles=titles, unit=unit,
               symmetric=term != "weight", kernels=pk)


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
    li = clamp_layer(len(src.layers), layer)
    if src.key == "detr/decoder/cross_attn":
        q = int(np.asarray(trace["detections/query"]).reshape(-1)[index])
        rows = layer_rows(trace, src.key, li, q)  # (H, S)
        grid = grid_for(trace, src.key, rows.shape[-1])
        values = rows.reshape(-1, grid.height, grid.width)
        return Map(
            values,
            grid_rect(grid),
            grid,
            title=f"decoder layer {li}, d{index} (query {q})",
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
        square = square_points(values, pos)
        rect = lattice_rect(pos) if square is not None else None
        return Map(
            square if square is not None else values,
            rect,
            None,
            points=pos,
            title=f"region {TERM_SYMBOLS[term]}, d{index}",
            head_titles=[f"part {k}" for k in range(values.shape[0])],
            unit={"weight": "w (part weight)", "geometry": "G (geometric prior)",
                  "appearance": "A (appearance)"}[term],
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


def lattice_rect(points: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) covering a lattice of sample positions with cells centred on them (a pixel around
    a lattice that spans no area)."""
    xs = np.unique(np.round(points[:, 0], 3))
    ys = np.unique(np.round(points[:, 1], 3))
    dx = (xs[-1] - xs[0]) / max(len(xs) - 1, 1) if len(xs) > 1 else 1.0
    dy = (ys[-1] - ys[0]) / max(len(ys) - 1, 1) if len(ys) > 1 else 1.0
    return (float(xs[0] - dx / 2), float(ys[0] - dy / 2), float(xs[-1] + dx / 2), float(ys[-1] + dy / 2))


def region_row(trace: Trace, index: int) -> int | None:
    """The row of ``region/*`` that detection ``index`` is (``detections/region_row``, else the index)."""
    if "detections/region_row" in trace:
        rows = np.asarray(trace["detections/region_row"]).reshape(-1)
        if not 0 <= index < len(rows) or rows[index] < 0:
            return None
        return int(rows[index])
    return index


# -- relations (see relviz.views.relations) ----------------------------------------------------------

Relations = RelationView


def relations(
    trace: Trace, module: str, term: str, head: int | None, layer: int = -1, over: str = "detections"
) -> RelationView | None:
    """The relations of ``module`` over the detections (or ``over='proposals'``): :func:`relation_view`."""
    return relation_view(trace, module, term, head, layer, over)


def row_of_detection(rel: RelationView, index: int | None) -> int | None:
    """The matrix entry of detection ``index`` (None: it has none)."""
    return rel.index_of(index)


def relative_geometry(boxes: np.ndarray, index: int) -> np.ndarray:
    """(N, 2) signed centre offsets (Δx / w, Δy / h) of every box from box ``index``, normalised by the
    receiving box as the official code does (Hu et al. 2018, Eq. 5)."""
    return relative_offsets(boxes, index)


def strongest(values: np.ndarray, exclude: int | None, top_k: int) -> np.ndarray:
    """Indices of the ``top_k`` largest ``values``, largest first, leaving out ``exclude``."""
    order = np.argsort(-np.asarray(values), kind="stable")
    if exclude is not None:
        order = order[order != exclude]
    return order[:top_k]


def time_step(m: Map, trace: Trace, frame: int) -> int:
    """The key time step of a space-time map that video frame ``frame`` falls in (0 for other maps)."""
    if m.axis != "frame" or m.row is None:
        return 0
    from relviz.views.non_local import frames_of
    from relviz.views.selection import clip_position

    return m.row.step_of(clip_position(trace, frame, len(frames_of(trace))))
