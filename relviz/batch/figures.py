"""The statistics of ``stats.json`` as figures, one PDF per question a paper asks.

Drawn at the journal ``page`` preset of :mod:`relviz.render.style` (7.16 in wide, its one type scale, line
widths in points), the height following from the content (at most 9.5 in), like ``relviz export --preset
page``; drawn from the summary alone, so ``stats.json`` is enough to draw them again.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from relviz.render.figure import colorbar, figure_title
from relviz.render.style import Style, current, fit_height, use_style

#: the journal preset the statistics are drawn at (relviz.render.style.PRESETS)
PRESET = "page"
BAR_COLOR = "#4c72b0"


def _figure(height: float) -> Figure:
    """A figure at the current style's width, ``height`` inches tall (at most the preset's), drawn in that style."""
    style = current()
    fig = Figure(figsize=(style.width, min(height, style.max_height)), layout="constrained")
    fig.relviz_style = style  # saving and the layout checks draw it in the preset's settings
    return fig


def _fitted(fig: Figure) -> Figure:
    """``fig`` at the height its content needs (no empty bands around square cells or kernels)."""
    fit_height(fig, current().max_height)
    return fig


def _array(value: Any) -> np.ndarray:
    """Nested lists with None (JSON's NaN) as a float array."""
    return np.array(value if value is not None else np.nan, dtype=float)


def _heat(ax, values: np.ndarray, rows: list[str], cols: list[str], title: str, cmap: str = "viridis",
          annotate: bool = True, vmin=None, vmax=None, fmt: str = "{:.2f}", aspect: str = "auto"):
    """``values`` as a matrix of cells (blank where nothing was measured), annotated with their values; the
    text is white on the dark half of the colour range, black on the light half."""
    style = current()
    shown = np.ma.masked_invalid(values)
    im = ax.imshow(shown, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest", aspect=aspect)
    ax.set_title(title, fontsize=style.title)
    long = max((len(c) for c in cols), default=0) > 3
    ax.set_xticks(range(len(cols)), cols, rotation=90 if long else 0)
    ax.set_yticks(range(len(rows)), rows)
    if annotate and values.size <= 144:
        norm = im.norm
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=style.small,
                        color="white" if norm(v) < 0.5 else "black")
    return im


def _fits(fmt: str, cells: int, panel_width: float) -> bool:
    """Whether values printed as ``fmt`` fit ``cells`` cells across a panel ``panel_width`` inches wide."""
    from relviz.render.figure import text_width_pt

    return text_width_pt(fmt.format(0.999), current().small) + 3 <= panel_width * 72 / max(cells, 1)


def _grid(n: int, cols: int) -> tuple[int, int]:
    cols = max(1, min(cols, n))
    return math.ceil(n / cols), cols


def relation_figures(summary: dict[str, Any]) -> list[tuple[str, Figure]]:
    """Per module: ω by (receiving, contributing) class, head mean and each head; and ω by geometry."""
    style = current()
    section = summary["relation"]
    labels = list(summary.get("labels") or [])
    out = []
    for module, terms in section["modules"].items():
        term = terms.get("weight") or next(iter(terms.values()))
        pairs = _array(term["by_class_pair"]["pairs"])
        keep = [i for i in range(len(pairs)) if pairs[i].sum() + pairs[:, i].sum() > 0] or list(range(len(pairs)))
        names = [labels[i] if i < len(labels) else f"class {i}" for i in keep]
        mean = _array(term["by_class_pair"]["mean"])[np.ix_(keep, keep)]
        heads = _array(term["by_class_pair"]["per_head"])[:, keep][:, :, keep]
        panels = [(mean, "mean of heads")] + [(heads[h], f"head {h}") for h in range(len(heads))]
        rows, cols = _grid(len(panels), 3)
        fig = _figure(2.4 * rows + 0.6)
        finite = np.concatenate([p[np.isfinite(p)] for p, _ in panels])
        vmax = float(finite.max()) if finite.size else 1.0
        axes = []
        for k, (values, title) in enumerate(panels):
            ax = fig.add_subplot(rows, cols, k + 1)
            axes.append(ax)
            im = _heat(ax, values, names, names, title, vmin=0.0, vmax=vmax, fmt="{:.3f}", aspect="equal",
                       annotate=_fits("{:.3f}", len(names), (style.width - 1.2) / cols))
            if k % cols == 0:
                ax.set_ylabel("receiving class")
            else:
                ax.tick_params(labelleft=False)
            if k + cols >= len(panels):  # the lowest panel of its column
                ax.set_xlabel("contributing class")
            else:
                ax.tick_params(labelbottom=False)
        colorbar(fig, im, axes, "mean ω (one range for every panel)", shrink=0.7)
        figure_title(fig, f"Relation weight ω by class pair, module {module} ({summary.get('inputs', 0)} inputs; "
                          "blank: no such pair)")
        out.append((f"relation-{module}-class-pairs", _fitted(fig)))

        geo = term["by_geometry"]
        d_edges, s_edges = section["distance_edges"], section["scale_edges"]
        d_names = [_edge_name(d_edges[i], d_edges[i + 1]) for i in range(len(d_edges) - 1)]
        s_names = [_edge_name(s_edges[i], s_edges[i + 1]) for i in range(len(s_edges) - 1)]
        fig = _figure(3.0)
        ax = fig.add_subplot(1, 2, 1)
        im = _heat(ax, _array(geo["mean"]), d_names, s_names, "mean of heads (blank: no pairs)", vmin=0.0,
                   fmt="{:.3f}", annotate=_fits("{:.3f}", len(s_names), style.width / 2 - 1.2))
        ax.set_ylabel("centre distance / √(w·h)")
        ax.set_xlabel("log₂ √(contributing / receiving area)")
        colorbar(fig, im, ax, "mean ω")
        ax = fig.add_subplot(1, 2, 2)
        per_head = _array(geo["per_head"])
        pairs = _array(geo["pairs"])
        with np.errstate(invalid="ignore", divide="ignore"):
            weights = np.nan_to_num(pairs)
            for h, values in enumerate(per_head):
                by_distance = np.nansum(np.nan_to_num(values) * weights, axis=1) / np.maximum(weights.sum(axis=1), 1)
                by_distance[weights.sum(axis=1) == 0] = np.nan
                ax.plot(range(len(d_names)), by_distance, marker="o", ms=style.marker * 0.6, lw=style.line,
                        label=f"head {h}")
        ax.set_xticks(range(len(d_names)), d_names, rotation=90)
        ax.set_xlabel("centre distance / √(w·h)")
        ax.set_ylabel("mean ω")
        ax.set_ylim(bottom=0)
        ax.set_title("by distance, each head (all scales)")
        ax.legend(frameon=False, ncols=2)
        figure_title(fig, f"Relation weight ω by relative geometry, module {module}: distance between box centres "
                          "over the receiving box's size √(w·h)")
        out.append((f"relation-{module}-geometry", fig))
    return out


def _edge_name(lo: float | None, hi: float | None) -> str:
    lo = -math.inf if lo is None else lo
    hi = math.inf if hi is None else hi
    if math.isinf(lo):
        return f"< {hi:g}"
    if math.isinf(hi):
        return f"≥ {lo:g}"
    return f"{lo:g}–{hi:g}" if lo >= 0 else f"{lo:g} to {hi:g}"


def detr_figures(summary: dict[str, Any]) -> list[tuple[str, Figure]]:
    """Mean attention distance and entropy per layer and head: encoder, decoder cross- and query–query."""
    style = current()
    section = summary["detr"]
    parts = [(k, t) for k, t in (("encoder", "encoder self-attention"), ("cross", "decoder cross-attention"),
                                 ("self", "decoder query–query attention")) if k in section]
    if not parts:
        return []
    layer_count = len(_array(section[parts[0][0]]["distance"]))
    fig = _figure(len(parts) * (0.9 + 0.3 * layer_count) + 0.4)  # rows of cells about 0.3 in tall
    for row, (key, title) in enumerate(parts):
        data = section[key]
        dist, ent = _array(data["distance"]), _array(data["entropy_norm"])
        layers = [str(i) for i in range(dist.shape[0])]
        heads = [str(i) for i in range(dist.shape[1])]
        ax = fig.add_subplot(len(parts), 2, 2 * row + 1)
        annotate = _fits("{:.2f}", len(heads), style.width / 2 - 1.0)
        im = _heat(ax, dist, layers, heads, f"{title}: mean distance", fmt="{:.0f}", annotate=annotate)
        ax.set_ylabel("layer")
        colorbar(fig, im, ax, "model-input px")
        right = fig.add_subplot(len(parts), 2, 2 * row + 2)
        im = _heat(right, ent, layers, heads, f"{title}: entropy", cmap="magma", vmin=0.0, vmax=1.0,
                   annotate=annotate)
        colorbar(fig, im, right, "entropy / ln(keys)")
        if row == len(parts) - 1:
            ax.set_xlabel("head")
            right.set_xlabel("head")
    figure_title(fig, f"DETR attention per layer and head ({summary.get('inputs', 0)} inputs)")
    return [("detr-attention", fig)]


def nonlocal_figures(summary: dict[str, Any]) -> list[tuple[str, Figure]]:
    """Per block: attention distance in space (and in time, for clips) and normalised entropy."""
    style = current()
    blocks = summary["nonlocal"]["blocks"]
    names = list(blocks)
    if not names:
        return []
    measures = [("space", "distance in space", "model-input px", "{:.1f}"),
                ("time", "distance in time", "input frames", "{:.2f}"),
                ("entropy_norm", "entropy", "entropy / ln(keys)", "{:.2f}")]
    if not any(blocks[b]["time"] for b in names):  # an image model: there is no time to attend across
        measures = [m for m in measures if m[0] != "time"]
    fig = _figure(2.4)
    for k, (key, title, unit, fmt) in enumerate(measures):
        ax = fig.add_subplot(1, len(measures), k + 1)
        values = [blocks[b][key] if blocks[b][key] is not None else np.nan for b in names]
        bars = ax.bar(range(len(names)), values, color=BAR_COLOR)
        ax.bar_label(bars, [fmt.format(v) if np.isfinite(v) else "" for v in values], fontsize=style.small,
                     padding=1.5)
        ax.margins(y=0.15)
        if key == "entropy_norm":
            ax.set_ylim(0, 1.1)  # 1: attention spread evenly over every key
        ax.set_xticks(range(len(names)), names)
        ax.set_title(title)
        ax.set_ylabel(unit)
        ax.set_xlabel("block")
    figure_title(fig, f"Non-local attention per block ({summary.get('inputs', 0)} inputs)")
    return [("nonlocal-attention", fig)]


def lrnet_figures(summary: dict[str, Any]) -> list[tuple[str, Figure]]:
    """KL(ω ‖ prior) per layer, and each layer's mean final kernel ω above its mean geometry prior (one colour
    range per layer, so the two compare)."""
    style = current()
    layers = summary["lrnet"]["layers"]
    names = list(layers)
    n = len(names)
    if not n:
        return []
    fig = _figure(3.6)
    gs = fig.add_gridspec(2, n + 1, width_ratios=[2.2] + [1] * n)
    ax = fig.add_subplot(gs[:, 0])
    kl = [layers[k]["kl"] if layers[k]["kl"] is not None else np.nan for k in names]
    ax.bar(range(n), kl, color=BAR_COLOR)
    ax.set_xticks(range(n), names, rotation=90)
    ax.set_xlabel("layer")
    ax.set_ylabel("KL(ω ‖ prior), nats")
    ax.set_title("final kernel vs geometry prior")
    for i, name in enumerate(names):
        kernels = [_array(layers[name][key]) for key in ("mean_weight", "mean_prior")]
        finite = np.concatenate([k[np.isfinite(k)].ravel() for k in kernels])
        norm = Normalize(*(float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0))
        for r, (kernel, label) in enumerate(zip(kernels, ("mean ω", "mean prior"), strict=True)):
            a = fig.add_subplot(gs[r, i + 1])
            a.imshow(np.ma.masked_invalid(kernel), cmap="viridis", norm=norm, interpolation="nearest")
            a.set_xticks([])
            a.set_yticks([])
            a.set_title(f"{name}\n{label}" if r == 0 else label, fontsize=style.small)
    figure_title(fig, f"LR-Net: how far the kernels depart from the geometry prior ({summary.get('inputs', 0)} "
                      "inputs); each layer's two kernels on one colour range")
    return [("lrnet-kl", _fitted(fig))]


def region_figures(summary: dict[str, Any]) -> list[tuple[str, Figure]]:
    """Each part's mass over positions relative to the box (drawn white), for w_k and for softmax(G_k)."""
    style = current()
    section = summary["regionfeat"]
    extent = float(section["extent"])
    terms = [t for t in ("weight", "geometry") if t in section]
    if not terms:
        return []
    k = len(_array(section[terms[0]]["mass"]))
    cols = min(max(k, 1), 8)
    rows_per_term = math.ceil(k / cols) if k else 1
    rows = rows_per_term * len(terms)
    fig = _figure(1.0 * rows + 0.6)
    axes = fig.subplots(max(rows, 1), cols, squeeze=False)
    for a in axes.ravel():
        a.set_axis_off()
    for r, term in enumerate(terms):
        mass = _array(section[term]["mass"])
        centroid = _array(section[term]["centroid"])
        for part in range(k):
            ax = axes[r * rows_per_term + part // cols, part % cols]
            ax.set_axis_on()
            ax.imshow(np.ma.masked_invalid(mass[part]), cmap="inferno", origin="upper", interpolation="nearest",
                      extent=(-extent, extent, extent, -extent))
            ax.add_patch(matplotlib.patches.Rectangle((-0.5, -0.5), 1, 1, fill=False, ec="white", lw=style.thin))
            if np.isfinite(centroid[part]).all():
                ax.plot(*centroid[part], marker="+", color="cyan", ms=style.marker, mew=style.thin * 1.6)
            ax.set_title(f"part {part}", fontsize=style.small)
            if part % cols == 0:
                ax.set_ylabel("w_k" if term == "weight" else "softmax(G_k)", fontsize=style.small)
            ax.set_xticks([])
            ax.set_yticks([])
    figure_title(fig, f"Region features: where each part's weight sits around the box (white; + its centroid), "
                      f"{int(section['boxes'])} boxes; each map on its own range")
    return [("region-parts", _fitted(fig))]


def figures(summary: dict[str, Any], preset: str | Style = PRESET) -> list[tuple[str, Figure]]:
    """Every figure the summary's family has (none for a family without statistics), at ``preset``."""
    draw = {"relation": relation_figures, "detr": detr_figures, "nonlocal": nonlocal_figures,
            "lrnet": lrnet_figures, "regionfeat": region_figures}.get(summary.get("family", ""))
    if draw is None or summary.get("family") not in summary:
        return []
    with use_style(preset), np.errstate(all="ignore"):
        return draw(summary)


def write_figures(summary: dict[str, Any], folder: Path, fmt: str = "pdf") -> list[Path]:
    """Draw and write the figures (atomically); returns their paths."""
    from relviz.render.figure import save_figure

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="matplotlib")
        for name, fig in figures(summary):
            written.append(save_figure(fig, folder / f"{name}.{fmt}", dpi=300))
    return written
