"""A synthetic trace holding every tensor family of the contract (DESIGN §3), with known numbers.

Used by the application's tests and by ``benchmarks/hover_latency.py``: the panels are built against
the tensor names, so a trace that has them all exercises every panel without running a model.
"""

from __future__ import annotations

import numpy as np

from relviz.core.grid import Grid
from relviz.core.trace import FactoredAttention, Trace, softmax


def synthetic_trace(
    width: int = 128,
    height: int = 96,
    stride: int = 16,
    layers: int = 2,
    heads: int = 3,
    queries: int = 5,
    dim: int = 8,
    seed: int = 0,
    family: str = "detr",
    model: str | None = None,
    only: tuple[str, ...] | None = None,
) -> Trace:
    """A trace of every tensor family on a ``width`` × ``height`` gradient image (see the module docstring).

    ``model`` names the model in ``meta.model`` (the window tells models apart by it); ``only`` keeps the
    tensors whose names start with one of these prefixes (plus ``input/``), to mimic one family's trace.
    """
    rng = np.random.default_rng(seed)
    gh, gw = int(np.ceil(height / stride)), int(np.ceil(width / stride))
    S = gh * gw
    grid = Grid(gh, gw, float(stride))
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack(
        [xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1), np.full_like(xx, 90)], axis=-1
    ).astype(np.uint8)
    trace = Trace(
        meta={
            "family": family,
            "input": {"path": "synthetic.png", "kind": "image", "frame": 0, "size": [width, height]},
            "grid": grid.to_json(),
            "labels": ["circle", "square", "triangle", "star"],
            "threshold": 0.5,
        }
    )
    trace["input/image"] = image
    # detections: three boxes, fed by queries 4, 1, 2
    boxes = np.array([[8, 8, 40, 40], [60, 20, 100, 70], [20, 50, 60, 90]], np.float32)
    boxes[:, [0, 2]] *= width / 128
    boxes[:, [1, 3]] *= height / 96
    n = len(boxes)
    trace["detections/boxes"] = boxes
    trace["detections/scores"] = np.array([0.95, 0.8, 0.6], np.float32)
    trace["detections/labels"] = np.array([0, 1, 2], np.int64)
    trace["detections/query"] = np.array([4, 1, 2], np.int64)[:n] % queries
    # DETR encoder (factored), decoder cross- and self-attention
    q = rng.normal(size=(layers, heads, S, dim)).astype(np.float32)
    k = rng.normal(size=(layers, heads, S, dim)).astype(np.float32)
    trace["detr/encoder/self_attn"] = FactoredAttention(q, k, 1 / np.sqrt(dim))
    trace["detr/decoder/cross_attn"] = softmax(rng.normal(size=(layers, heads, queries, S)) * 2).astype(np.float32)
    trace["detr/decoder/self_attn"] = softmax(rng.normal(size=(layers, heads, queries, queries))).astype(np.float32)
    # relation module: ω = softmax over contributors of log(ω_G) + ω_A, per head (Hu et al. 2018, Eq. 2)
    H = 4
    geometry = np.maximum(rng.normal(size=(H, n, n)), 0).astype(np.float32)
    appearance = rng.normal(size=(H, n, n)).astype(np.float32)
    weight = softmax(np.log(np.maximum(geometry, 1e-6)) + appearance, axis=-1).astype(np.float32)
    for name, value in (("weight", weight), ("geometry", geometry), ("appearance", appearance)):
        trace[f"relation/fc1/{name}"] = value
    trace["relation/fc1/boxes"] = boxes.copy()
    # region features: K parts over a 3×3 lattice of positions in each box
    K, side = 2, 3
    pos = np.zeros((n, side * side, 2), np.float32)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        gx, gy = np.meshgrid(np.linspace(x0, x1, side), np.linspace(y0, y1, side))
        pos[i] = np.stack([gx.ravel(), gy.ravel()], axis=1)
    rg = rng.normal(size=(n, K, side * side)).astype(np.float32)
    ra = rng.normal(size=(n, K, side * side)).astype(np.float32)
    trace["region/geometry"] = rg
    trace["region/appearance"] = ra
    trace["region/weight"] = softmax(rg + ra, axis=-1).astype(np.float32)
    trace["region/positions"] = pos
    # LR-Net: m groups, k×k window on the same grid
    m, kk = 2, 3
    lg = rng.normal(size=(m, kk, kk)).astype(np.float32)
    la = rng.normal(size=(m, kk * kk, gh, gw)).astype(np.float32)
    trace["lrnet/stage1/geometry"] = lg
    trace["lrnet/stage1/appearance"] = la
    trace["lrnet/stage1/weight"] = softmax(la + lg.reshape(m, kk * kk, 1, 1), axis=1).astype(np.float32)
    # non-local: (S, S) over the same grid
    trace["nonlocal/block1/attn"] = softmax(rng.normal(size=(S, S))).astype(np.float32)
    trace["classification/logits"] = rng.normal(size=4).astype(np.float32)
    if model is not None:
        trace.meta["model"] = {"name": model, "family": family}
    if only is not None:
        keep = ("input/", *only)
        for name in list(trace.names()):
            if not name.startswith(keep):
                trace.arrays.pop(name, None)
                trace.factored.pop(name, None)
    return trace
