"""Feature grids of a trace's tensors: from ``meta`` where it says, else inferred over the image."""

from __future__ import annotations

import math

from relviz.core.grid import Grid
from relviz.core.trace import Trace


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
    w, h = image_size(trace)
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


def image_size(trace: Trace) -> tuple[int, int]:
    try:
        return trace.image_size
    except (KeyError, TypeError, ValueError):
        if trace.image is not None:
            return trace.image.shape[1], trace.image.shape[0]
        return 1, 1




def grid_rect(grid: Grid) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1): the original-image rectangle a grid's cells cover (cell (i, j) is 1/width, 1/height
    of it); it may reach past the image where the model padded its input."""
    return 0.0, 0.0, grid.width * grid.stride / grid.scale_x, grid.height * grid.stride / grid.scale_y
