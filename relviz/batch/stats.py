"""Relation statistics over a whole set of inputs, aggregated as the traces come: memory does not grow.

Each trace contributes a few fixed-size arrays (:func:`measure`): sums over its queries, pairs or cells,
and how many it had.  An :class:`Accumulator` adds them up (float64), so its memory is set by the model
(layers, heads, classes), never by the number of inputs; two accumulators merge by addition, so the
statistics of a run split over processes are those of one process (to float rounding).
:meth:`Accumulator.summary` turns the sums into the means of ``stats.json``.

What is measured, per family (all from the views layer's numbers, :mod:`relviz.views`):

- **Relation Networks** (per module and term ω, ω_G, ω_A, per head): the mean relation between detections
  by (receiving class, contributing class), and by relative geometry — centre distance over the receiving
  box's size √(w·h) and scale ratio log₂ √(area_m / area_n), in bins;
- **DETR**: mean attention distance (Σ_k a_qk ‖p_q − p_k‖, in model-input pixels) and entropy
  (−Σ_k a_qk ln a_qk; also over ln of the keys attended, 0..1) per layer and head — the encoder over its
  grid cells, the decoder's cross-attention from each detection's box centre, the decoder's query–query
  attention between the detected queries' boxes;
- **Non-local** (per block): attention distance in space (model-input pixels) and in time (input frames),
  and entropy, per query position;
- **LR-Net** (per layer and group): KL(ω ‖ prior) of the final k×k kernels from the geometry prior's own
  softmax, both over the window cells inside the layer's input, and the mean kernel beside the mean prior;
- **Learning Region Features** (per part): where the part weights sit relative to the box, as mass over
  (Δx / w, Δy / h) from the box centre, and its centroid; for w_k and for the geometric prior softmax(G_k);
- every family: how often each class was detected (or predicted top-1).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from relviz.core.atomic import atomic_path
from relviz.core.errors import BadInputError
from relviz.core.trace import FactoredAttention, Trace
from relviz.views import relations as rel
from relviz.views.grids import grid_for
from relviz.views.lrnet import layer_names, pixel_kernels
from relviz.views.non_local import block_names, grids
from relviz.views.selection import class_names

#: relation statistics by geometry: centre distance over √(w·h) of the receiving box, and log₂ of the scale ratio
DISTANCE_EDGES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, math.inf)
SCALE_EDGES = (-math.inf, -1.5, -0.5, 0.5, 1.5, math.inf)
#: region features: the part-mass histogram's cells over (Δx / w, Δy / h) ∈ [−REGION_EXTENT, REGION_EXTENT]²;
#: cells of a quarter box, so the 8 × 8 lattice sampled over a box enlarged twice lands one sample per cell
REGION_BINS = 10
REGION_EXTENT = 1.25
#: LR-Net: output cells measured per layer and input (a regular subsample beyond this)
LRNET_MAX_CELLS = 1024
#: queries per block of distances computed at once (bounds the temporary (rows, keys) arrays)
QUERY_CHUNK = 512
STATE_VERSION = 1


# -- small helpers ------------------------------------------------------------------------------


def entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """−Σ p ln p along ``axis`` (0 ln 0 = 0)."""
    p = np.asarray(p, np.float64)
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=axis)


def _attention_layers(trace: Trace, name: str) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """(per-layer attention (H, Nq, Nk) as float64, key padding mask or None) of an (L, H, Nq, Nk) tensor."""
    if name in trace.factored:
        fa = trace.factored[name]
        return [(FactoredAttention(fa.q[i], fa.k[i], fa.scale, fa.key_mask).full().astype(np.float64), fa.key_mask)
                for i in range(fa.q.shape[0])]
    full = np.asarray(trace[name], np.float64)
    return [(full[i], None) for i in range(full.shape[0])]


def _cell_centres(grid) -> np.ndarray:
    """(t·h·w, 3) centre of every cell as (x, y) in model-input pixels and the time in input frames."""
    t, i, j = np.meshgrid(np.arange(grid.frames), np.arange(grid.height), np.arange(grid.width), indexing="ij")
    fs = max(grid.frame_stride, 1)
    return np.stack([(j.ravel() + 0.5) * grid.stride, (i.ravel() + 0.5) * grid.stride,
                     t.ravel() * fs + (fs - 1) / 2.0], axis=1)


def _distance_and_entropy(attn: np.ndarray, queries: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, ...]:
    """Sums over queries of the attention distance in space and in time and of the entropy (plain and over
    ln of the keys): ``attn`` (..., Nq, Nk), ``queries`` (Nq, 3), ``keys`` (Nk, 3) as (x, y, t)."""
    lead = attn.shape[:-2]
    space = np.zeros(lead)
    time = np.zeros(lead)
    ent = np.zeros(lead)
    nq, nk = attn.shape[-2:]
    for start in range(0, nq, QUERY_CHUNK):
        a = attn[..., start : start + QUERY_CHUNK, :]
        q = queries[start : start + QUERY_CHUNK]
        d_space = np.hypot(q[:, None, 0] - keys[None, :, 0], q[:, None, 1] - keys[None, :, 1])
        d_time = np.abs(q[:, None, 2] - keys[None, :, 2])
        space += np.einsum("...qk,qk->...", a, d_space)
        time += np.einsum("...qk,qk->...", a, d_time)
        ent += entropy(a).sum(axis=-1)
    norm = ent / math.log(nk) if nk > 1 else np.zeros(lead)
    return space, time, ent, norm


# -- what one trace contributes, per family -------------------------------------------------------


def _class_counts(trace: Trace, classes: int) -> np.ndarray:
    if "detections/labels" in trace:
        labels = np.asarray(trace["detections/labels"], np.int64).reshape(-1)
    elif "classification/logits" in trace:
        labels = np.asarray([int(np.argmax(trace["classification/logits"]))])
    else:
        labels = np.zeros(0, np.int64)
    labels = labels[(labels >= 0) & (labels < classes)]
    return np.bincount(labels, minlength=classes).astype(np.float64)


def _bins(values: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    return np.clip(np.searchsorted(np.asarray(edges[1:-1]), values, side="right"), 0, len(edges) - 2)


def relation_measures(trace: Trace, classes: int) -> dict[str, np.ndarray]:
    """Per module and term: sums of the relation between detections by class pair and by geometry bin."""
    out: dict[str, np.ndarray] = {}
    labels_all = np.asarray(trace.arrays.get("detections/labels", np.zeros(0)), np.int64).reshape(-1)
    nd, ns = len(DISTANCE_EDGES) - 1, len(SCALE_EDGES) - 1
    for module in rel.modules(trace):
        if module == rel.DETR_DECODER_MODULE:
            continue
        for term in rel.terms(trace, module):
            view = rel.relation_view(trace, module, term, head=None, over="detections")
            per_head = np.asarray(view.per_head, np.float64)  # (H, n, n): rows receive, columns contribute
            heads, n = per_head.shape[0], len(view)
            pair_sum = np.zeros((heads, classes, classes))
            geo_sum = np.zeros((heads, nd, ns))
            pair_n = np.zeros((classes, classes))
            geo_n = np.zeros((nd, ns))
            if n > 1:
                recv, give = np.nonzero(view.rows[:, None] != view.rows[None, :])  # other objects only
                lab = labels_all[view.detection]
                ok = (lab[recv] >= 0) & (lab[recv] < classes) & (lab[give] >= 0) & (lab[give] < classes)
                recv, give = recv[ok], give[ok]
                values = per_head[:, recv, give]  # (H, pairs)
                finite = np.isfinite(values).all(axis=0)
                recv, give, values = recv[finite], give[finite], values[:, finite]
                pair = lab[recv] * classes + lab[give]
                pair_n += np.bincount(pair, minlength=classes * classes).reshape(classes, classes)
                for h in range(heads):
                    pair_sum[h] += np.bincount(pair, values[h], classes * classes).reshape(classes, classes)
                b = view.boxes
                w = np.maximum(b[:, 2] - b[:, 0], 1e-6)
                hgt = np.maximum(b[:, 3] - b[:, 1], 1e-6)
                cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
                size = np.sqrt(w * hgt)
                dist = np.hypot(cx[give] - cx[recv], cy[give] - cy[recv]) / size[recv]
                ratio = np.log2(size[give] / size[recv])
                cell = _bins(dist, DISTANCE_EDGES) * ns + _bins(ratio, SCALE_EDGES)
                geo_n += np.bincount(cell, minlength=nd * ns).reshape(nd, ns)
                for h in range(heads):
                    geo_sum[h] += np.bincount(cell, values[h], nd * ns).reshape(nd, ns)
            prefix = f"relation/{module}/{term}"
            out.update({f"{prefix}/pair_sum": pair_sum, f"{prefix}/pair_n": pair_n,
                        f"{prefix}/geo_sum": geo_sum, f"{prefix}/geo_n": geo_n})
    return out


def _model_input_centres(trace: Trace, boxes: np.ndarray, grid) -> np.ndarray:
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.stack([(b[:, 0] + b[:, 2]) / 2 * grid.scale_x, (b[:, 1] + b[:, 3]) / 2 * grid.scale_y,
                     np.zeros(len(b))], axis=1)


def detr_measures(trace: Trace) -> dict[str, np.ndarray]:
    """Encoder, decoder cross- and query–query attention: distance and entropy sums per layer and head."""
    out: dict[str, np.ndarray] = {}
    name = "detr/encoder/self_attn"
    if name not in trace:
        return out
    s = trace.shape(name)[-1]
    grid = grid_for(trace, name, s)
    cells = _cell_centres(grid)[:s]
    dist, ent, norm, count = [], [], [], 0
    for attn, mask in _attention_layers(trace, name):
        valid = np.ones(s, bool) if mask is None else ~np.asarray(mask, bool).reshape(-1)
        keys = cells[valid]
        a = attn[:, valid][:, :, valid]
        d, _, e, _ = _distance_and_entropy(a, keys, keys)
        dist.append(d)
        ent.append(e)
        norm.append(e / math.log(len(keys)) if len(keys) > 1 else 0 * e)
        count = int(valid.sum())
    out.update({"detr/encoder/distance": np.stack(dist), "detr/encoder/entropy": np.stack(ent),
                "detr/encoder/entropy_norm": np.stack(norm), "detr/encoder/queries": np.array(float(count))})

    queries = np.asarray(trace.arrays.get("detections/query", np.zeros(0)), np.int64).reshape(-1)
    boxes = np.asarray(trace.arrays.get("detections/boxes", np.zeros((0, 4))), np.float64).reshape(-1, 4)
    queries, boxes = queries[: len(boxes)], boxes[: len(queries)]
    name = "detr/decoder/cross_attn"
    if name in trace:
        L, H = trace.shape(name)[:2]
        dist = np.zeros((L, H))
        ent = np.zeros((L, H))
        norm = np.zeros((L, H))
        if len(queries):
            centres = _model_input_centres(trace, boxes, grid)
            for i, (attn, mask) in enumerate(_attention_layers(trace, name)):
                valid = np.ones(s, bool) if mask is None else ~np.asarray(mask, bool).reshape(-1)
                d, _, e, _ = _distance_and_entropy(attn[:, queries][:, :, valid], centres, cells[valid])
                dist[i], ent[i] = d, e
                norm[i] = e / math.log(int(valid.sum())) if valid.sum() > 1 else 0
        out.update({"detr/cross/distance": dist, "detr/cross/entropy": ent, "detr/cross/entropy_norm": norm,
                    "detr/cross/queries": np.array(float(len(queries)))})
    name = "detr/decoder/self_attn"
    if name in trace and "detr/pred_boxes" in trace:
        L, H, Q = trace.shape(name)[:3]
        dist = np.zeros((L, H))
        ent = np.zeros((L, H))
        if len(queries):
            w, h = trace.image_size
            cx, cy, _, _ = np.asarray(trace["detr/pred_boxes"], np.float64).reshape(-1, 4).T
            centres = np.stack([cx * w * grid.scale_x, cy * h * grid.scale_y, np.zeros_like(cx)], axis=1)
            for i, (attn, _) in enumerate(_attention_layers(trace, name)):
                d, _, e, _ = _distance_and_entropy(attn[:, queries], centres[queries], centres)
                dist[i], ent[i] = d, e
        out.update({"detr/self/distance": dist, "detr/self/entropy": ent,
                    "detr/self/entropy_norm": ent / math.log(Q) if Q > 1 else ent * 0,
                    "detr/self/queries": np.array(float(len(queries)))})
    return out


def nonlocal_measures(trace: Trace) -> dict[str, np.ndarray]:
    """Per block: sums over query positions of attention distance in space and time, and entropy."""
    out: dict[str, np.ndarray] = {}
    for block in block_names(trace):
        name = f"nonlocal/{block}/attn"
        if name not in trace:
            continue
        attn = np.asarray(trace[name], np.float64)
        sq, sk = attn.shape[-2:]
        qgrid, kgrid = grids(trace, name, sq, sk)
        space, time, ent, norm = _distance_and_entropy(attn, _cell_centres(qgrid)[:sq], _cell_centres(kgrid)[:sk])
        out.update({f"nonlocal/{block}/space": space, f"nonlocal/{block}/time": time,
                    f"nonlocal/{block}/entropy": ent, f"nonlocal/{block}/entropy_norm": norm,
                    f"nonlocal/{block}/queries": np.array(float(sq))})
    return out


def lrnet_measures(trace: Trace) -> dict[str, np.ndarray]:
    """Per layer: KL(ω ‖ prior) summed over output cells for each group, and the kernels' sums."""
    out: dict[str, np.ndarray] = {}
    for layer in layer_names(trace):
        grid = grid_for(trace, f"lrnet/{layer}/weight")
        n = grid.height * grid.width
        cells = np.arange(n)[:: max(1, math.ceil(n / LRNET_MAX_CELLS))]
        kl = None
        weight_sum = prior_sum = None
        for cell in cells:
            x, y, _ = grid.point_of_cell(int(cell))
            k = pixel_kernels(trace, layer, x, y, clamp=True)
            valid = k.valid[None]
            logits = np.where(valid, np.asarray(k.geometry, np.float64), -np.inf)
            g = logits.shape[0]
            flat = logits.reshape(g, -1)
            prior = np.exp(flat - flat.max(axis=1, keepdims=True))
            prior = (prior / prior.sum(axis=1, keepdims=True)).reshape(logits.shape)
            omega = np.where(valid, np.asarray(k.weight, np.float64), 0.0)
            mass = omega.reshape(g, -1).sum(axis=1)[:, None, None]
            omega = omega / np.where(mass > 0, mass, 1.0)  # both over the cells inside the layer's input
            term = np.where(omega > 0, omega * (np.log(np.where(omega > 0, omega, 1.0)) -
                                                np.log(np.where(prior > 0, prior, 1.0))), 0.0)
            cell_kl = term.reshape(g, -1).sum(axis=1)
            kl = cell_kl if kl is None else kl + cell_kl
            weight_sum = omega.sum(axis=0) if weight_sum is None else weight_sum + omega.sum(axis=0)
            prior_sum = prior.sum(axis=0) if prior_sum is None else prior_sum + prior.sum(axis=0)
        if kl is None:
            continue
        out.update({f"lrnet/{layer}/kl": kl, f"lrnet/{layer}/cells": np.array(float(len(cells))),
                    f"lrnet/{layer}/weight_sum": weight_sum, f"lrnet/{layer}/prior_sum": prior_sum})
    return out


def region_measures(trace: Trace) -> dict[str, np.ndarray]:
    """Per part: where w_k (and the prior softmax(G_k)) put their mass relative to each box."""
    out: dict[str, np.ndarray] = {}
    if "region/weight" not in trace or "region/positions" not in trace:
        return out
    weight = np.asarray(trace["region/weight"], np.float64)  # (R, K, P)
    positions = np.asarray(trace["region/positions"], np.float64)  # (R, P, 2)
    boxes_name = "region/boxes" if "region/boxes" in trace else "detections/boxes"
    boxes = np.asarray(trace.arrays.get(boxes_name, np.zeros((0, 4))), np.float64).reshape(-1, 4)
    r, k, _ = weight.shape
    r = min(r, len(boxes))
    edges = np.linspace(-REGION_EXTENT, REGION_EXTENT, REGION_BINS + 1)
    terms = {"weight": weight}
    if "region/geometry" in trace:
        g = np.asarray(trace["region/geometry"], np.float64)
        g = np.exp(g - g.max(axis=-1, keepdims=True))
        terms["geometry"] = g / g.sum(axis=-1, keepdims=True)
    for term, values in terms.items():
        mass = np.zeros((k, REGION_BINS, REGION_BINS))
        centroid = np.zeros((k, 2))
        for i in range(r):
            b = boxes[i]
            w, h = max(b[2] - b[0], 1e-6), max(b[3] - b[1], 1e-6)
            u = (positions[i, :, 0] - (b[0] + b[2]) / 2) / w
            v = (positions[i, :, 1] - (b[1] + b[3]) / 2) / h
            iu = np.clip(np.searchsorted(edges, u, side="right") - 1, 0, REGION_BINS - 1)
            iv = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, REGION_BINS - 1)
            cell = iv * REGION_BINS + iu
            for part in range(k):
                p = values[i, part]
                p = p / p.sum() if p.sum() > 0 else p
                mass[part] += np.bincount(cell, p, REGION_BINS * REGION_BINS).reshape(REGION_BINS, REGION_BINS)
                centroid[part] += (p @ u, p @ v)
        out.update({f"region/{term}/mass": mass, f"region/{term}/centroid": centroid})
    out["region/boxes"] = np.array(float(r))
    return out


def measure(trace: Trace, classes: int) -> dict[str, np.ndarray]:
    """What one trace adds to the statistics of its family (sums and counts, float64)."""
    family = trace.family
    parts = {"relation": lambda: relation_measures(trace, classes), "detr": lambda: detr_measures(trace),
             "nonlocal": lambda: nonlocal_measures(trace), "lrnet": lambda: lrnet_measures(trace),
             "regionfeat": lambda: region_measures(trace)}
    out = dict(parts[family]()) if family in parts else {}
    out["classes"] = _class_counts(trace, classes)
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


# -- the accumulator --------------------------------------------------------------------------------


class Accumulator:
    """Sums of :func:`measure` over every trace added; fixed size, merged by addition, saved as one .npz."""

    def __init__(self, family: str = "", labels: list[str] | None = None, order: list[str] | None = None):
        self.family = family
        self.labels = list(labels or [])
        self.order = list(order or [])  # layers or blocks in network order, for the summary
        self.items = 0
        self.sums: dict[str, np.ndarray] = {}

    def add(self, trace: Trace) -> None:
        """Add one trace (all its measures, or nothing when they do not fit the sums so far)."""
        if not self.labels:
            self.labels = class_names(trace)
        if not self.family:
            self.family = trace.family
        if not self.order:
            self.order = block_names(trace) or layer_names(trace)
        values = measure(trace, max(len(self.labels), 1))
        self._add(values, "the trace")
        self.items += 1

    def _add(self, values: dict[str, np.ndarray], what: str) -> None:
        for key, value in values.items():
            old = self.sums.get(key)
            if old is not None and old.shape != value.shape:
                raise BadInputError(f"{what} does not fit the statistics gathered so far ({key} is "
                                    f"{value.shape}, not {old.shape}): one run takes one model")
        for key, value in values.items():
            self.sums[key] = self.sums[key] + value if key in self.sums else value.copy()

    def merge(self, other: Accumulator) -> None:
        if other.family and self.family and other.family != self.family:
            raise BadInputError(f"cannot merge {other.family} statistics into {self.family} statistics")
        self.family = self.family or other.family
        self.labels = self.labels or other.labels
        self.order = self.order or other.order
        self._add(other.sums, "a part's statistics")
        self.items += other.items

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in self.sums.values())

    # -- file form: one .npz with the sums and a JSON header ---------------------------------------
    def save(self, path: Path, extra: dict[str, Any] | None = None) -> None:
        header = {"version": STATE_VERSION, "family": self.family, "labels": self.labels, "order": self.order,
                  "items": self.items, **(extra or {})}
        payload = {f"sum/{k}": v for k, v in self.sums.items()}
        payload["header"] = np.array(json.dumps(header))
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **payload)

    @classmethod
    def load(cls, path: Path) -> tuple[Accumulator, dict[str, Any]]:
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                sums = {k[4:]: np.asarray(data[k], np.float64) for k in data.files if k.startswith("sum/")}
        except (OSError, ValueError, KeyError) as exc:
            raise BadInputError(f"the statistics part {path} cannot be read ({exc}); delete it to gather the "
                                "statistics again from the traces") from None
        if header.get("version") != STATE_VERSION:
            raise BadInputError(f"the statistics part {path} was written by another relviz version; delete it")
        acc = cls(header.get("family", ""), header.get("labels"), header.get("order"))
        acc.items = int(header.get("items", 0))
        acc.sums = sums
        return acc, header

    # -- the means ------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """The statistics as plain JSON: means (None where nothing was measured) and the counts behind them."""
        out: dict[str, Any] = {"family": self.family, "inputs": self.items, "labels": self.labels}
        if "classes" in self.sums:
            out["class_counts"] = _plain(self.sums["classes"])
        section = {"relation": self._relation, "detr": self._detr, "nonlocal": self._nonlocal,
                   "lrnet": self._lrnet, "regionfeat": self._region}.get(self.family)
        if section is not None:
            out[self.family] = section()
        return out

    def _mean(self, total: str, count: str | np.ndarray) -> np.ndarray:
        n = self.sums.get(count) if isinstance(count, str) else count
        s = self.sums[total]
        if n is None:
            return np.full(s.shape, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, s / np.where(n > 0, n, 1), np.nan)

    def _relation(self) -> dict[str, Any]:
        modules: dict[str, Any] = {}
        for key in sorted(self.sums):
            if not key.startswith("relation/") or not key.endswith("/pair_sum"):
                continue
            _, module, term, _ = key.split("/")
            p = f"relation/{module}/{term}"
            per_head = self._mean(f"{p}/pair_sum", f"{p}/pair_n")
            geo = self._mean(f"{p}/geo_sum", f"{p}/geo_n")
            modules.setdefault(module, {})[term] = {
                "by_class_pair": {"mean": _plain(np.mean(per_head, axis=0)), "per_head": _plain(per_head),
                                  "pairs": _plain(self.sums[f"{p}/pair_n"])},
                "by_geometry": {"mean": _plain(np.mean(geo, axis=0)), "per_head": _plain(geo),
                                "pairs": _plain(self.sums[f"{p}/geo_n"])},
            }
        return {"rows": "receiving class (or distance bin)", "columns": "contributing class (or scale bin)",
                "distance_edges": _plain(np.array(DISTANCE_EDGES)), "scale_edges": _plain(np.array(SCALE_EDGES)),
                "distance": "centre distance / sqrt(w*h) of the receiving box",
                "scale": "log2 sqrt(area contributing / area receiving)", "modules": modules}

    def _detr(self) -> dict[str, Any]:
        out: dict[str, Any] = {"unit": "model-input pixels; entropy in nats, entropy_norm over ln(keys)"}
        for part in ("encoder", "cross", "self"):
            count = f"detr/{part}/queries"
            if count not in self.sums:
                continue
            out[part] = {"queries": float(self.sums[count]),
                         **{m: _plain(self._mean(f"detr/{part}/{m}", count))
                            for m in ("distance", "entropy", "entropy_norm")}}
        return out

    def _nonlocal(self) -> dict[str, Any]:
        blocks = {}
        for block in self.order:
            count = f"nonlocal/{block}/queries"
            if count in self.sums:
                blocks[block] = {m: _plain(self._mean(f"nonlocal/{block}/{m}", count))
                                 for m in ("space", "time", "entropy", "entropy_norm")}
        return {"unit": "space in model-input pixels, time in input frames, entropy in nats", "blocks": blocks}

    def _lrnet(self) -> dict[str, Any]:
        layers = {}
        for layer in self.order:
            count = f"lrnet/{layer}/cells"
            if count not in self.sums:
                continue
            kl = self._mean(f"lrnet/{layer}/kl", count)
            groups = len(kl)
            layers[layer] = {"kl": _plain(np.mean(kl)), "kl_per_group": _plain(kl),
                             "mean_weight": _plain(self._mean(f"lrnet/{layer}/weight_sum", self.sums[count] * groups)),
                             "mean_prior": _plain(self._mean(f"lrnet/{layer}/prior_sum", self.sums[count] * groups))}
        return {"unit": "KL(final kernel || geometry prior) in nats, per output cell", "layers": layers}

    def _region(self) -> dict[str, Any]:
        out: dict[str, Any] = {"boxes": float(self.sums.get("region/boxes", 0)),
                               "extent": REGION_EXTENT, "bins": REGION_BINS,
                               "axes": "(dx / box width, dy / box height) from the box centre"}
        for term in ("weight", "geometry"):
            if f"region/{term}/mass" in self.sums:
                n = self.sums["region/boxes"]
                out[term] = {"mass": _plain(self._mean(f"region/{term}/mass", n)),
                             "centroid": _plain(self._mean(f"region/{term}/centroid", n))}
        return out


def _plain(value: np.ndarray) -> Any:
    """An array as nested lists with None for NaN (JSON has no NaN)."""
    arr = np.asarray(value, np.float64)
    if arr.ndim == 0:
        return float(arr) if np.isfinite(arr) else None
    return [_plain(v) for v in arr]


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n", encoding="utf-8")
