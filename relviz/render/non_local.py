"""Non-local figures: the attention from a reference point (and frame) over the image or over every frame
of a clip, with the strongest links drawn as arrows across frames (Wang et al. 2018, Fig. 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import ConnectionPatch

from relviz.core.errors import BadInputError
from relviz.core.grid import Grid, check_point
from relviz.core.limits import MAX_DRAWN_BOXES, MAX_HEATMAP_PIXELS
from relviz.core.trace import Trace
from relviz.render.figure import colorbar, count_nonfinite, heatmap, image_axes, mark_point, new_figure, shared_norm
from relviz.render.selection import Setting, check_frame, check_panels, named_layer
from relviz.render.views import ViewOptions, register_view


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


def attention_row(
    trace: Trace, block: str | int | None, x: float, y: float, frame: int | None = None, pairwise: bool = False
) -> AttentionRow:
    """The attention (or un-normalised pairwise term) of the query cell under pixel (x, y) of ``frame``."""
    name = resolve_block(trace, block)
    check_point((x, y), trace.image_size)
    t = clip_frame(trace, frame)
    info = trace.meta["nonlocal"]["blocks"][name]
    qgrid, kgrid = Grid.from_json(info["query_grid"]), Grid.from_json(info["key_grid"])
    q = qgrid.cell_of_point(x, y, t)
    tensor = f"nonlocal/{name}/pairwise" if pairwise else f"nonlocal/{name}/attn"
    if tensor not in trace:
        raise BadInputError(
            f"the trace has no {tensor}: the {info['instantiation']} instantiation records only "
            "the normalised attention"
        )
    row = np.asarray(trace.rows(tensor, q), dtype=np.float32)
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


@register_view(
    "nonlocal",
    ("nonlocal",),
    "Non-local: attention from --point (and --frame, a clip position or video frame) over the image "
    "or every frame of a clip, and the --top-k strongest links as arrows across frames (Fig. 3); "
    "--layer names the block",
    settings={"values": Setting(str, "attention or the un-normalised pairwise term", ("attn", "pairwise"))},
)
def nonlocal_view(trace: Trace, options: ViewOptions) -> Figure:
    w, h = trace.image_size
    point = options.point or (w / 2, h / 2)
    pairwise = str(options.extra.get("values", "attn")).lower() == "pairwise"
    row = attention_row(
        trace,
        options.layer if options.layer not in (None, "") else options.module,
        point[0],
        point[1],
        options.frame,
        pairwise,
    )
    frames = frames_of(trace)
    steps = row.key_grid.frames
    check_panels(2 * steps, "panels (two per time step of the clip)", "trace a shorter clip")
    fs = max(1, row.key_grid.frame_stride) if len(frames) > 1 else 1
    shown = [min(t * fs, len(frames) - 1) for t in range(steps)]  # first frame of each time step
    ref_step = min(row.frame // fs, steps - 1)
    maps = [_key_map(row, t, trace.image_size) for t in range(steps)]
    norms = shared_norm(maps, options.shared_range)
    panel = 2.6 if steps > 1 else 3.6
    width = options.width or min(panel * steps + 0.9, 16.0)
    height = options.height or 2 * (width - 0.9) / steps * h / w + 0.7
    fig = new_figure(width, height)
    count_nonfinite(fig, row.values)
    axes = fig.subplots(2, steps, squeeze=False)
    im = None
    for t in range(steps):
        title = f"frame {shown[t]}" if len(frames) > 1 else None
        ax = axes[0, t]
        image_axes(ax, frames[shown[t]], trace.image_size, title)
        im = heatmap(ax, maps[t], trace.image_size, norms[t], options.cmap)
        image_axes(axes[1, t], frames[shown[t]], trace.image_size)
        if t == ref_step:
            mark_point(ax, *point)
            mark_point(axes[1, t], *point)
    links = top_links(row, min(int(options.top_k), MAX_DRAWN_BOXES))
    if links:
        top = max(v for *_, v in links)
        low = min(v for *_, v in links)
        for x, y, t, v in reversed(links):  # weakest first, so the strongest arrows lie on top
            weight = 1.0 if top <= low else 0.15 + 0.85 * (v - low) / (top - low)
            con = ConnectionPatch(
                xyA=point,
                coordsA="data",
                axesA=axes[1, ref_step],
                xyB=(x, y),
                coordsB="data",
                axesB=axes[1, t],
                arrowstyle="-|>",
                mutation_scale=5 + 5 * weight,
                linewidth=0.3 + 1.7 * weight,
                color="#ffd700",
                alpha=0.3 + 0.7 * weight,
            )
            fig.add_artist(con)
    axes[1, 0].set_ylabel(f"top {len(links)} links", fontsize=7)
    axes[0, 0].set_ylabel("pairwise f" if pairwise else "attention", fontsize=7)
    if options.colorbar and im is not None:
        colorbar(fig, im, axes[0].tolist(), "f (un-normalised)" if pairwise else "attention")
    inst = trace.meta["nonlocal"]["blocks"][row.block]["instantiation"]
    where = f"frame {row.frame}, " if len(frames) > 1 else ""
    fig.suptitle(
        f"non-local block {row.block} ({inst}): from ({point[0]:.0f}, {point[1]:.0f}), {where}query cell {row.query}",
        fontsize=9,
    )
    return fig


def _key_map(row: AttentionRow, t: int, size: tuple[int, int]) -> np.ndarray:
    g = row.key_grid
    single = Grid(g.height, g.width, g.stride, g.scale_x, g.scale_y)
    return single.to_image(row.values[t], size, MAX_HEATMAP_PIXELS)
