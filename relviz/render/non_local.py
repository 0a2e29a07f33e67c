"""Non-local figures: the attention from a reference point (and frame) over the image or over every frame
of a clip, with the strongest links drawn as arrows across frames (Wang et al. 2018, Fig. 3).
"""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.patches import ConnectionPatch

from relviz.core.limits import MAX_DRAWN_BOXES
from relviz.core.trace import Trace
from relviz.render.figure import (
    colorbar,
    count_nonfinite,
    figure_title,
    heatmap,
    image_axes,
    mark_point,
    new_figure,
    shared_norm,
)
from relviz.render.selection import Setting, check_panels
from relviz.render.style import current
from relviz.render.views import ViewOptions, register_view
from relviz.views.non_local import (  # noqa: F401 - the figure's computations live in the views layer
    AttentionRow,
    attention_row,
    block_names,
    clip_frame,
    frames_of,
    resolve_block,
    top_links,
)


@register_view(
    "nonlocal",
    ("nonlocal",),
    "Non-local: attention from --point (and --frame, a clip position or video frame) over the image "
    "or every frame of a clip, and the --top-k strongest links as arrows across frames (Fig. 3); "
    "--layer names the block",
    settings={
        "values": Setting(str, "attention or the un-normalised pairwise term", ("attn", "pairwise")),
        "interpolation": Setting(str, "draw the cells (nearest) or smooth them (bilinear)", ("nearest", "bilinear")),
    },
    takes_object=False,
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
    maps = [row.values[t] for t in range(steps)]
    rect = row.key_rect()
    interpolation = options.extra.get("interpolation", "nearest")
    norms = shared_norm(maps, options.shared_range)
    style = current()
    width = options.width or style.width
    fig = new_figure(width, style.max_height)
    count_nonfinite(fig, row.values)
    if steps == 1:  # one image: the attention beside its links
        axes = fig.subplots(1, 2, squeeze=False).T
    else:  # a clip: attention over every time step above the links across them
        axes = fig.subplots(2, steps, squeeze=False)
    im = None
    for t in range(steps):
        title = f"frame {shown[t]}" if len(frames) > 1 else None
        ax = axes[0, t]
        image_axes(ax, frames[shown[t]], trace.image_size, title)
        im = heatmap(ax, maps[t], rect, norms[t], options.cmap, interpolation=interpolation)
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
                linewidth=0.3 + style.arrow * weight,
                color="#ffd700",
                alpha=0.3 + 0.7 * weight,
            )
            fig.add_artist(con)
    if steps == 1:
        axes[0, 0].set_title("pairwise f" if pairwise else "attention", fontsize=style.title)
        axes[1, 0].set_title(f"top {len(links)} links", fontsize=style.title)
    else:
        axes[1, 0].set_ylabel(f"top {len(links)} links", fontsize=style.small)
        axes[0, 0].set_ylabel("pairwise f" if pairwise else "attention", fontsize=style.small)
    if options.colorbar and im is not None:
        colorbar(fig, im, axes[0].tolist(), "f (un-normalised)" if pairwise else "attention")
    inst = trace.meta["nonlocal"]["blocks"][row.block]["instantiation"]
    where = f"frame {row.frame}, " if len(frames) > 1 else ""
    figure_title(fig, f"non-local block {row.block} ({inst}) from ({point[0]:.0f}, {point[1]:.0f}), {where}"
                      f"query cell {row.query}")
    return fig
