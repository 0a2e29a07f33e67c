"""Non-local: the attention of one query position (and frame) over every key position and frame of a clip.

The window's canvas and small multiples and the ``nonlocal`` figure read the same row
(:func:`attention_row`): one row of ``nonlocal/<block>/attn`` (Tq·Hq·Wq, Tk·Hk·Wk), never the matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from relviz.core.errors import BadInputError
from relviz.core.grid import Grid, check_point
from relviz.core.trace import Trace
from relviz.views.grids import grid_for
from relviz.views.selection import check_frame, clip_position, named_layer


def block_names(trace: Trace) -> list[str]:
    info = trace.meta.get("nonlocal", {})
    return list(info.get("order") or info.get("blocks", {}))


def resolve_block(trace: Trace, block: str | int | None) -> str:
    """A block given by name (``res4.4``) or index in network order; None = the last."""
    names = block_names(trace)
    if not names:
        raise BadInputError("the trace holds no non-local blocks (was it recorded with capture off?)")
    return named_layer(block, names, "non-local block", "blocks")


def frames_of(trace: Trace) -> list[np.ndarray | None]:
    if "input/frames" in trace:
        return list(trace["input/frames"])
    return [trace.image]


def clip_frame(trace: Trace, frame: int | None) -> int:
    """The clip position (0..T−1) of ``frame``: a video frame number the clip holds, else a clip index."""
    return check_frame(trace, frame, len(frames_of(trace)))


@dataclass
class AttentionRow:
    """One query's attention over all key positions, with the grids that place it on frames."""

    block: str
    values: np.ndarray  # (Tk, Hk, Wk)
    query: int  # flat query index
    query_grid: Grid
    key_grid: Grid
    frame: int  # clip position of the reference point

    def key_rect(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1): the image rectangle the key grid's cells cover."""
        g = self.key_grid
        return 0.0, 0.0, g.width * g.stride / g.scale_x, g.height * g.stride / g.scale_y

    def step_of(self, position: int) -> int:
        """The key time step holding clip position ``position``."""
        return min(max(position // max(self.key_grid.frame_stride, 1), 0), self.key_grid.frames - 1)


def grids(trace: Trace, name: str, sq: int, sk: int) -> tuple[Grid, Grid]:
    """The query and key grids of block tensor ``name`` (from ``meta``, else inferred over the image)."""
    return grid_for(trace, name, sq, role="query"), grid_for(trace, name, sk, role="key")


def attention_row(
    trace: Trace,
    block: str | int | None,
    x: float,
    y: float,
    frame: int | None = None,
    pairwise: bool = False,
    strict: bool = True,
) -> AttentionRow:
    """The attention (or un-normalised pairwise term) of the query cell under pixel (x, y) of ``frame``.

    ``strict`` (figures) refuses a point, frame or block that does not exist; the window (``strict=False``)
    clamps the point and frame and takes ``block`` as a name the trace holds.
    """
    if strict:
        name = resolve_block(trace, block)
        check_point((x, y), trace.image_size)
        t = clip_frame(trace, frame)
    else:
        name = str(block)
        t = clip_position(trace, int(frame or 0), len(frames_of(trace)))
    tensor = f"nonlocal/{name}/pairwise" if pairwise else f"nonlocal/{name}/attn"
    if tensor not in trace:
        inst = trace.meta.get("nonlocal", {}).get("blocks", {}).get(name, {}).get("instantiation", "this")
        raise BadInputError(f"the trace has no {tensor}: the {inst} instantiation records only the normalised "
                            "attention")
    sq, sk = trace.shape(tensor)[-2:]
    qgrid, kgrid = grids(trace, tensor, sq, sk)
    q = qgrid.cell_of_point(x, y, t)
    row = np.asarray(trace.rows(tensor, q), dtype=np.float32).reshape(-1)[: kgrid.size]
    return AttentionRow(name, row.reshape(kgrid.frames, kgrid.height, kgrid.width), q, qgrid, kgrid, t)


def top_links(row: AttentionRow, k: int) -> list[tuple[float, float, int, float]]:
    """The ``k`` strongest keys as (x, y, time step, value), strongest first (non-finite ones left out)."""
    flat = row.values.ravel()
    finite = np.isfinite(flat)
    order = np.argsort(np.where(finite, -flat, np.inf), kind="stable")[: max(0, min(k, int(finite.sum())))]
    out = []
    for idx in order:
        x, y, t = row.key_grid.point_of_cell(int(idx))
        out.append((x, y, t, float(flat[idx])))
    return out
