"""LR-Net: one pixel's k×k aggregation kernels, per channel group (Hu et al. 2019).

:func:`pixel_kernels` reads the kernels at one output cell from the stored ``/weight`` and ``/appearance``
when the trace has them, else recomputes them from the layer's factors (keys, queries and the geometry
prior), so a large input never needs the full (G, k·k, H, W) tensors and a hover costs one window.
What does not change with the point (the layer's grids, its prior) is read once per trace and layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from relviz.core.errors import BadInputError
from relviz.core.grid import Grid, check_point
from relviz.core.trace import Trace, softmax
from relviz.views.cache import per_trace
from relviz.views.selection import named_layer

#: how many groups the window shows large at a hovered pixel when none is picked
STRONGEST_GROUPS = 4


@dataclass
class PixelKernels:
    """The k×k kernels of every group at one output cell of one layer."""

    layer: str
    geometry: np.ndarray  # (G, k, k) logits of the geometry prior f_θg(p − p′)
    appearance: np.ndarray  # (G, k, k) Φ(q_p′, k_p); NaN where the window leaves the image
    weight: np.ndarray  # (G, k, k) ω = softmax(appearance + geometry) over the window; 0 outside
    valid: np.ndarray  # (k, k) True where the window cell lies inside the layer's input
    cell: tuple[int, int]  # (row, column) of the output cell p′
    centre: tuple[int, int]  # (row, column) of p′ on the layer's input grid
    input_grid: Grid  # the layer's input grid (window cells live on it)

    def window_extent(self) -> tuple[float, float, float, float]:
        """(x0, x1, y0, y1) in original-image pixels of the k×k window."""
        k = self.geometry.shape[-1]
        c = k // 2
        g = self.input_grid
        cw, ch = g.stride / g.scale_x, g.stride / g.scale_y
        i, j = self.centre
        return ((j - c) * cw, (j + c + 1) * cw, (i - c) * ch, (i + c + 1) * ch)

    def rect(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1): the window's image rectangle, each kernel cell 1/k of it."""
        x0, x1, y0, y1 = self.window_extent()
        return x0, y0, x1, y1

    def term(self, name: str) -> np.ndarray:
        """(G, k, k) of ``weight``, ``geometry`` or ``appearance``."""
        return {"weight": self.weight, "geometry": self.geometry, "appearance": self.appearance}[name]


def layer_names(trace: Trace) -> list[str]:
    info = trace.meta.get("lrnet", {})
    return list(info.get("order") or info.get("layers", {}))


def resolve_layer(trace: Trace, layer: str | int | None) -> str:
    """A layer given by name (``stem``, ``res3.0``) or index into the network order; None = the last."""
    names = layer_names(trace)
    if not names:
        raise BadInputError("the trace holds no local relation layers (was it recorded with capture off?)")
    return named_layer(layer, names, "layer")


def _compose(q: np.ndarray, k: np.ndarray, kind: str) -> np.ndarray:
    if kind == "squared":
        return -((q - k) ** 2)
    if kind == "abs":
        return -np.abs(q - k)
    return q * k


@dataclass(frozen=True)
class _Layer:
    """What a layer's kernels need that no point changes: grids, kernel size, stride, prior, tensors."""

    grid: Grid
    input_grid: Grid
    k: int
    stride: int
    composability: str
    geometry: np.ndarray
    weight: np.ndarray | None
    appearance: np.ndarray | None
    key: np.ndarray | None
    query: np.ndarray | None


def _layer(trace: Trace, name: str) -> _Layer:
    return per_trace(trace, ("lrnet-layer", name), lambda: _read_layer(trace, name))


def _read_layer(trace: Trace, name: str) -> _Layer:
    info = trace.meta["lrnet"]["layers"][name]
    prefix = f"lrnet/{name}"
    full = f"{prefix}/weight" in trace
    return _Layer(
        Grid.from_json(info["grid"]),
        Grid.from_json(info["input_grid"]),
        int(info["kernel_size"]),
        int(info["stride"]),
        str(info.get("composability", "product")),
        np.asarray(trace[f"{prefix}/geometry"], dtype=np.float32),
        trace[f"{prefix}/weight"] if full else None,
        trace[f"{prefix}/appearance"] if full else None,
        None if full else trace[f"{prefix}/key"],
        None if full else trace[f"{prefix}/query"],
    )


def pixel_kernels(trace: Trace, layer: str | int | None, x: float, y: float, clamp: bool = False) -> PixelKernels:
    """The kernels at original-image pixel (x, y): the output cell holding it, every group.

    A point outside the image is refused with a sentence, or moved onto its edge with ``clamp`` (a hover).
    """
    name = resolve_layer(trace, layer)
    if clamp:
        w, h = trace.image_size
        x, y = min(max(x, 0.0), w - 1e-3), min(max(y, 0.0), h - 1e-3)
    check_point((x, y), trace.image_size)
    lay = _layer(trace, name)
    k, c = lay.k, lay.k // 2
    i, j = divmod(lay.grid.cell_of_point(x, y), lay.grid.width)
    geometry = lay.geometry
    g = geometry.shape[0]
    ci, cj = i * lay.stride, j * lay.stride
    rows = np.arange(ci - c, ci + c + 1)
    cols = np.arange(cj - c, cj + c + 1)
    in_grid = lay.input_grid
    valid = ((rows >= 0) & (rows < in_grid.height))[:, None] & ((cols >= 0) & (cols < in_grid.width))[None, :]
    if lay.weight is not None:
        weight = lay.weight[:, :, i, j].reshape(g, k, k).astype(np.float32)
        appearance = lay.appearance[:, :, i, j].reshape(g, k, k).astype(np.float32)
        appearance = np.where(valid, appearance, np.nan)
    else:
        query = lay.query[:, i, j]  # (G,)
        rr = np.clip(rows, 0, in_grid.height - 1)
        cc = np.clip(cols, 0, in_grid.width - 1)
        window = lay.key[:, rr][:, :, cc]  # (G, k, k)
        appearance = _compose(query[:, None, None], window, lay.composability).astype(np.float32)
        appearance = np.where(valid, appearance, np.nan)
        logits = np.where(valid, appearance + geometry, -np.inf).reshape(g, k * k)
        weight = softmax(logits, axis=1).reshape(g, k, k).astype(np.float32)
    return PixelKernels(name, geometry, appearance, weight, valid, (int(i), int(j)), (int(ci), int(cj)), in_grid)


def strongest_groups(kernels: PixelKernels, count: int = STRONGEST_GROUPS) -> list[int]:
    """The ``count`` groups whose kernel here is most concentrated (largest ω in the window), strongest
    first: the groups that gather most from one neighbour rather than averaging the window."""
    peak = np.nanmax(np.where(np.isfinite(kernels.weight), kernels.weight, -np.inf).reshape(len(kernels.weight), -1),
                     axis=1)
    return [int(g) for g in np.argsort(-peak, kind="stable")[: max(count, 0)]]


def prior_weight(geometry: np.ndarray) -> np.ndarray:
    """The softmax of the geometry prior over the window (G, k, k): the fixed kernel without appearance."""
    g, k, _ = geometry.shape
    return softmax(np.asarray(geometry, np.float64).reshape(g, k * k), axis=1).reshape(g, k, k)


def top_classes(trace: Trace | None, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` most probable classes of ``classification/logits`` (softmax), best first."""
    from relviz.views.selection import label_text

    if trace is None or "classification/logits" not in trace:
        return []
    logits = np.asarray(trace["classification/logits"], dtype=np.float64).reshape(-1)
    probs = softmax(logits)
    order = np.argsort(-probs)[:k]
    return [(label_text(trace, int(i)), float(probs[i])) for i in order]


def kernel_side(kk: int) -> int:
    return int(round(math.sqrt(kk)))
