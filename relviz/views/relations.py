"""Object-to-object relations: one matrix, its labels, its rankings and its arrows, for every panel and figure.

A relation module relates its own rows — the proposals (fc1, fc2), the duplicate-removal candidates
(``nms``) or DETR's object queries — of which only some became detections.  A :class:`RelationView` is
taken **over the detections** by default (entry *i* is detection d*i*, drawn on the canvas with that
name), or **over the module's rows** on request (``over='proposals'``: every proposal, named by its
detection when it became one, else ``p17``; candidates ``r5`` by rank; queries ``q42``).  Every entry is
something real: clicking cell (i, j) selects entry j's detection (or, in proposal mode, that proposal).

Rows are the receiving object n, columns the contributing object m (paper ω^{mn}).  The bars and the
arrows come from :meth:`RelationView.ranking`, so they rank the same objects in the same order.
DETR's decoder self-attention is *query–query attention*, not a relation weight ω.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from relviz.core.trace import Trace
from relviz.views.selection import (
    NMS_MODULE,
    clamp_layer,
    default_module,
    detection_count,
    detection_labels,
    relation_modules,
    select_head,
)

DETR_DECODER_MODULE = "detr-decoder"
QUERY_QUERY = "query–query attention"
TERMS = ("weight", "geometry", "appearance")
TERM_SYMBOLS = {"weight": "ω", "geometry": "ω_G", "appearance": "ω_A"}
TERM_NAMES = {"weight": "ω (relation weight)", "geometry": "ω_G (geometry)", "appearance": "ω_A (appearance)"}
OVER = ("detections", "proposals")
#: the selected object's strongest relations the window shows: as arrows on the canvas and as bars
TOP_RELATIONS = 8


def modules(trace: Trace | None) -> list[str]:
    """Relation modules in network order, then DETR's decoder self-attention as module ``detr-decoder``."""
    if trace is None:
        return []
    mods = relation_modules(trace)
    if "detr/decoder/self_attn" in trace and "detections/query" in trace:
        mods.append(DETR_DECODER_MODULE)
    return mods


def module_default(trace: Trace | None) -> str | None:
    return default_module(modules(trace))


def terms(trace: Trace, module: str) -> list[str]:
    if module == DETR_DECODER_MODULE:
        return ["weight"]
    return [t for t in TERMS if f"relation/{module}/{t}" in trace]


def term_name(module: str | None, term: str, short: bool = False) -> str:
    """What the matrix holds: 'ω (relation weight)' (or 'ω' short), and for DETR 'query–query attention'."""
    if module == DETR_DECODER_MODULE:
        return "query–query attn" if short else QUERY_QUERY
    return TERM_SYMBOLS.get(term, term) if short else TERM_NAMES.get(term, term)


def box_centres(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], axis=1)


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


@dataclass
class RelationView:
    """A module's relations for one term and head (or the mean), over detections or the module's rows."""

    module: str
    term: str
    head: int | None
    over: str  # 'detections' | 'proposals'
    per_head: np.ndarray  # (H, n, n)
    matrix: np.ndarray  # (n, n) the head, or the mean over heads
    labels: list[str]  # entry names: 'd3 circle', 'p17', 'r5', 'q42'
    detection: np.ndarray  # (n,) the detection each entry is, −1 for none
    rows: np.ndarray  # (n,) each entry's row in the module's tensors
    boxes: np.ndarray  # (n, 4) each entry's box (the detection's box over detections)
    name: str = ""  # 'ω (relation weight)', 'query–query attention'
    note: str = field(default="")  # what the matrix leaves out (detections without a row)
    entry_of_detection: np.ndarray | None = None  # (D,) each detection's entry, −1 for none


    def __len__(self) -> int:
        return len(self.labels)

    def index_of(self, detection: int | None) -> int | None:
        """The entry of detection ``detection``, None when it has none."""
        if detection is None:
            return None
        if self.entry_of_detection is not None:
            d = int(detection)
            ok = 0 <= d < len(self.entry_of_detection) and self.entry_of_detection[d] >= 0
            return int(self.entry_of_detection[d]) if ok else None
        hits = np.flatnonzero(self.detection == int(detection))
        return int(hits[0]) if len(hits) else None

    def ranking(self, index: int, k: int, direction: str = "in") -> np.ndarray:
        """The ``k`` entries relating most to entry ``index``, strongest first: what it receives from them
        (``in``: its row) or gives them (``out``: its column); itself (and entries on its own module row)
        and non-finite values left out."""
        line = self.line(index, direction)
        keep = np.isfinite(line) & (self.rows != self.rows[index])
        order = np.argsort(np.where(keep, -line, np.inf), kind="stable")
        return order[: min(max(int(k), 0), int(keep.sum()))]

    def line(self, index: int, direction: str = "in") -> np.ndarray:
        return np.asarray(self.matrix[index] if direction == "in" else self.matrix[:, index], np.float64)

    def arrows(self, index: int, k: int, direction: str = "in") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(entries, segments (k, 4) as x0, y0, x1, y1 from giver to receiver, strengths 0..1) of the top ``k``
        of :meth:`ranking`; the strength is the value over the largest (min–max when values go negative)."""
        top = self.ranking(index, k, direction)
        centres = box_centres(self.boxes)
        here = np.repeat(centres[index][None], len(top), 0)
        segments = np.concatenate([centres[top], here] if direction == "in" else [here, centres[top]], axis=1)
        values = self.line(index, direction)[top]
        if len(values) == 0:
            return top, segments.reshape(0, 4), values
        lo, hi = float(values.min()), float(values.max())
        if lo >= 0:
            strength = values / hi if hi > 0 else np.ones_like(values)
        else:
            strength = (values - lo) / (hi - lo) if hi > lo else np.ones_like(values)
        return top, segments, strength


def _module_rows(trace: Trace, module: str, n_rows: int, boxes: np.ndarray) -> np.ndarray:
    """Each detection's row in ``module`` (−1: none): from the trace (``detections/proposal``, ``nms_row``,
    ``query``), else the row whose box overlaps it most (IoU ≥ 0.7)."""
    key = {NMS_MODULE: "detections/nms_row", DETR_DECODER_MODULE: "detections/query"}.get(module, "detections/proposal")
    n_det = detection_count(trace)
    if key in trace:
        rows = np.asarray(trace[key]).reshape(-1).astype(np.int64)[:n_det]
        return np.where((rows >= 0) & (rows < n_rows), rows, -1)
    det_boxes = np.asarray(trace.arrays.get("detections/boxes", np.zeros((0, 4))), np.float64).reshape(-1, 4)
    if not n_rows or not len(det_boxes):
        return np.full(len(det_boxes), -1, np.int64)
    iou = box_iou(det_boxes, boxes)
    best = iou.argmax(axis=1)
    return np.where(iou[np.arange(len(det_boxes)), best] >= 0.7, best, -1)


def _module_tensor(trace: Trace, module: str, term: str, layer: int) -> np.ndarray | None:
    if module == DETR_DECODER_MODULE:
        if "detr/decoder/self_attn" not in trace:
            return None
        full = trace["detr/decoder/self_attn"]  # (L, H, Q, Q)
        return np.asarray(full[clamp_layer(full.shape[0], layer)], np.float32)
    name = f"relation/{module}/{term}"
    if name not in trace:
        return None
    per_head = np.asarray(trace[name], np.float32)
    return per_head[None] if per_head.ndim == 2 else per_head


def _module_boxes(trace: Trace, module: str, n_rows: int) -> np.ndarray:
    if module == DETR_DECODER_MODULE and "detr/pred_boxes" in trace:
        w, h = trace.image_size
        cx, cy, bw, bh = np.asarray(trace["detr/pred_boxes"], np.float64).reshape(-1, 4).T
        return np.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], 1)[:n_rows]
    name = f"relation/{module}/boxes"
    if name in trace:
        return np.asarray(trace[name], np.float64).reshape(-1, 4)[:n_rows]
    det = np.asarray(trace.arrays.get("detections/boxes", np.zeros((0, 4))), np.float64).reshape(-1, 4)
    out = np.zeros((n_rows, 4))
    out[: min(n_rows, len(det))] = det[:n_rows]
    return out


def _row_label(trace: Trace, module: str, row: int) -> str:
    if module == DETR_DECODER_MODULE:
        return f"q{row}"
    if module == NMS_MODULE and "relation/nms/rank" in trace:
        return f"r{int(trace['relation/nms/rank'][row])}"
    return f"p{row}"


def relation_view(
    trace: Trace | None,
    module: str | None,
    term: str = "weight",
    head: int | None = None,
    layer: int = -1,
    over: str = "detections",
) -> RelationView | None:
    """The relations of ``module`` for ``term`` and ``head`` (None: the mean over heads) over the detections
    or the module's rows; None when the trace does not hold that module and term."""
    if trace is None or module is None:
        return None
    per_head = _module_tensor(trace, module, term, layer)
    if per_head is None:
        return None
    n_rows = per_head.shape[-1]
    boxes = _module_boxes(trace, module, n_rows)
    det_rows = _module_rows(trace, module, n_rows, boxes)
    det_labels = detection_labels(trace)
    if over == "detections":
        keep = np.flatnonzero(det_rows >= 0)
        rows = det_rows[keep]
        detection = keep.astype(np.int64)
        labels = [det_labels[i] if i < len(det_labels) else f"d{i}" for i in keep]
        det_boxes = np.asarray(trace.arrays.get("detections/boxes", np.zeros((0, 4))), np.float64).reshape(-1, 4)
        entry_boxes = det_boxes[keep] if len(det_boxes) >= len(det_rows) else boxes[rows]
        dropped = len(det_rows) - len(keep)
        note = f"{dropped} detection{'s' if dropped != 1 else ''} without a row in {module} left out" if dropped else ""
        entries = np.full(len(det_rows), -1, np.int64)
        entries[keep] = np.arange(len(keep))
    else:
        rows = np.arange(n_rows)
        detection = np.full(n_rows, -1, np.int64)
        for d, r in enumerate(det_rows):
            if r >= 0 and detection[r] < 0:
                detection[r] = d
        labels = [det_labels[d] if 0 <= d < len(det_labels) else _row_label(trace, module, r)
                  for r, d in enumerate(detection)]
        entry_boxes = boxes
        note = ""
        entries = det_rows
    sub = per_head[:, rows][:, :, rows] if over == "detections" else per_head
    return RelationView(
        module, term, head, over, sub, select_head(sub, head), labels, detection, np.asarray(rows, np.int64),
        np.asarray(entry_boxes, np.float64).reshape(-1, 4), term_name(module, term), note, entries,
    )
