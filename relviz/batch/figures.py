"""The statistics of ``stats.json`` as figures, one PDF per question a paper asks.

Plain matplotlib at the ``page`` width of a two-column journal (7.16 in) with every text between 5 and
12 pt at print size; drawn from the summary alone, so ``stats.json`` is enough to draw them again.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

PAGE_WIDTH = 7.16  # inches
_RC = {"font.size": 7, "axes.titlesize": 7, "axes.labelsize": 7, "xtick.labelsize": 6, "ytick.labelsize": 6,
       "legend.fontsize": 6, "figure.titlesize": 8, "axes.linewidth": 0.5, "xtick.major.width": 0.5,
       "ytick.major.width": 0.5, "pdf.fonttype": 42}
ANNOTATION_PT = 5


def _array(value: Any) -> np.ndarray:
    """Nested lists with None (JSON's NaN) as a float array."""
    return np.array(value if value is not None else np.nan, dtype=float)


def _heat(ax, values: np.ndarray, rows: list[str], cols: list[str], title: str, cmap: str = "viridis",
          annotate: bool = True, vmin=None, vmax=None, fmt: str = "{:.2f}"):
    shown = np.ma.masked_invalid(values)
    im = ax.imshow(shown, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest", aspect="auto")
    ax.set_title(title)
    ax.set_xticks(range(len(cols)), cols, rotation=45 if max((len(c) for c in cols), default=0) > 3 else 0,
                  ha="right" if max((len(c) for c in cols), default=0) > 3 else "center")
    ax.set_yticks(range(len(rows)), rows)
    if annotate and values.size <= 144:
        finite = values[np.isfinite(values)]
        mid = (float(finite.min()) + float(finite.max())) / 2 if finite.size else 0.0
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=ANNOTATION_PT,
                        color="white" if v < mid else "black")
    return im


def _grid(n: int, cols: int) -> tuple[int, int]:
    cols = max(1, min(cols, n))
    return math.ceil(n / cols), cols


def relation_figures(summary: dict[str, Any]) -> list[tuple[str, Figure]]:
    """Per module: ω by (receiving, contributing) class, head mean and each head; and ω by geometry."""
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
        rows, cols = _grid(len(panels), 5)
        fig = Figure(figsize=(PAGE_WIDTH, 1.9 * rows + 0.4), layout="constrained")
        finite = np.concatenate([p[np.isfinite(p)] for p, _ in panels]) if panels else np.zeros(1)
        vmax = float(finite.max()) if finite.size else 1.0
        for k, (values, title) in enumerate(panels):
            ax = fig.add_subplot(rows, cols, k + 1)
            im = _heat(ax, values, names, names, title, vmin=0.0, vmax=vmax, annotate=k == 0, fmt="{:.3f}")
            if k % cols == 0:
                ax.set_ylabel("receiving class")
            else:
                ax.tick_params(labelleft=False)
            if k >= len(panels) - cols:
                ax.set_xlabel("contributing class")
        fig.colorbar(im, ax=fig.axes, shrink=0.8, label="mean ω")
        fig.suptitle(f"Relation weight ω by class pair, module {module} ({summary.get('inputs', 0)} inputs)")
        out.append((f"relation-{module}-class-pairs", fig))

        geo = term["by_geometry"]
        d_edges, s_edges = section["distance_edges"], section["scale_edges"]
        d_names = [_edge_name(d_edges[i], d_edges[i + 1]) for i in range(len(d_edges) - 1)]
        s_names = [_edge_name(s_edges[i], s_edges[i + 1]) for i in range(len(s_edges) - 1)]
        fig = Figure(figsize=(PAGE_WIDTH, 2.6))
        ax = fig.add_subplot(1, 2, 1)
        im = _heat(ax, _array(geo["mean"]), d_names, s_names, "mean of heads", vmin=0.0)
        ax.set_ylabel("centre distance / √(w·h) of the receiving box")
        ax.set_xlabel("scale ratio log₂ √(area_m / area_n)")
        fig.colorbar(im, ax=ax, shrink=0.8, label="mean ω")
        ax = fig.add_subplot(1, 2, 2)
        per_head = _array(geo["per_head"])
        pairs = _array(geo["pairs"])
        with np.errstate(invalid="ignore", divide="ignore"):
            weights = np.nan_to_num(pairs)
            for h, values in enumerate(per_head):
                by_distance = np.nansum(np.nan_to_num(values) * weights, axis=1) / np.maximum(weights.sum(axis=1), 1)
                by_distance[weights.sum(axis=1) == 0] = np.nan
                ax.plot(range(len(d_names)), by_distance, marker="o", ms=2, lw=0.8, label=f"head {h}")
        ax.set_xticks(range(len(d_names)), d_names, rotation=45, ha="right")
        ax.set_xlabel("centre distance / √(w·h) of the receiving box")
        ax.set_ylabel("mean ω")
        ax.set_title("by distance, each head")
        ax.legend(frameon=False, ncols=2)
        fig.suptitle(f"Relation weight ω by relative geometry, module {module}")
        fig.tight_layout()
        out.append((f"relation-{module}-geometry", fig))
    return out


def _edge_name(lo: float | None, hi: float | None) -> str:
    lo = -math.inf if lo is None else lo
    hi = math.inf if hi is None else hi
    if math.isinf(lo):
        return f"< {hi:g}"
    if math.isinf(hi):
        return f"≥ {lo:g}"
    return f"{lo:g}–{hi:g}"


def detr_figures(summary: dict[str, Any]) -> list[tuple[str, Figure]]:
    """Mean attention distance and entropy per layer and head: encoder, decoder cross- and query–query."""
    section = summary["detr"]
    parts = [(k, t) for k, t in (("encoder", "encoder self-attention"), ("cross", "decoder cross-attention"),
                                 ("self", "decoder query–query attention")) if k in section]
    if not parts:
        return []
    fig = Figure(figsize=(PAGE_WIDTH, 1.9 * len(parts) + 0.4))
    for row, (key, title) in enumerate(parts):
        data = section[key]
        dist, ent = _array(data["distance"]), _array(data["entropy_norm"])
        layers = [str(i) for i in range(dist.shape[0])]
        heads = [str(i) for i in range(dist.shape[1])]
        ax = fig.add_subplot(len(parts), 2, 2 * row + 1)
        im = _heat(ax, dist, layers, heads, f"{title}: mean distance (px)", fmt="{:.0f}")
        ax.set_ylabel("layer")
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax = fig.add_subplot(len(parts), 2, 2 * row + 2)
        im = _heat(ax, ent, layers, heads, f"{title}: entropy / ln(keys)", cmap="magma", vmin=0.0, vmax=1.0)
        fig.colorbar(im, ax=ax, shrink=0.8)
        if row == len(parts) - 1:
            for a in fig.axes[-4:]:
                if a.get_label() != "<colorbar>":
                    a.set_xlabel("head")
    fig.suptitle(f"DETR attention per layer and head ({summary.get('inputs', 0)} inputs)")
    fig.tight_layout()
    return [("detr-attention", fig)]


def nonlocal_figures(summary: dict[str, Any]) -> list[tuple[str, Figure]]:
    blocks = summary["nonlocal"]["blocks"]
    names = list(blocks)
    if not names:
        return []
    fig = Figure(figsize=(PAGE_WIDTH, 2.2))
    for k, (key, title) in enumerate((("space", "distance in space (px)"), ("time", "distance in time (frames)"),
                                      ("entropy_norm", "entropy / ln(keys)"))):
        ax = fig.add_subplot(1, 3, k + 1)
        values = [blocks[b][key] if blocks[b][key] is not None else np.nan for b in names]
        ax.bar(range(len(names)), values, color="#4c72b0")
        ax.set_xticks(range(len(names)), names)
        ax.set_title(title)
        ax.set_xlabel("block")
    fig.suptitle(f"Non-local attention per block ({summary.get('inputs', 0)} inputs)")
    fig.tight_layout()
    return [("nonlocal-attention", fig)]


def lrnet_figures(summary: dict[str, Any]) -> list[tuple[str, Figure]]:
    layers = summary["lrnet"]["layers"]
    names = list(layers)
    n = len(names)
    if not n:
        return []
    fig = Figure(figsize=(PAGE_WIDTH, 3.4))
    gs = fig.add_gridspec(2, max(n, 1) + 1, width_ratios=[2.2] + [1] * max(n, 1))
    ax = fig.add_subplot(gs[:, 0])
    ax.bar(range(n), [layers[k]["kl"] or 0 for k in names], color="#4c72b0")
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_ylabel("KL(ω ‖ prior), nats")
    ax.set_title("final kernel vs geometry prior")
    for i, name in enumerate(names):
        for r, (key, label) in enumerate((("mean_weight", "mean ω"), ("mean_prior", "mean prior"))):
            a = fig.add_subplot(gs[r, i + 1])
            a.imshow(_array(layers[name][key]), cmap="viridis", interpolation="nearest")
            a.set_xticks([])
            a.set_yticks([])
            a.set_title(f"{name}\n{label}" if r == 0 else label, fontsize=6)
    fig.suptitle(f"LR-Net: how far the kernels depart from the geometry prior ({summary.get('inputs', 0)} inputs)")
    fig.tight_layout()
    return [("lrnet-kl", fig)]


def region_figures(summary: dict[str, Any]) -> list[tuple[str, Figure]]:
    """Each part's mass over positions relative to the box (drawn white), for w_k and for softmax(G_k)."""
    section = summary["regionfeat"]
    extent = float(section["extent"])
    terms = [t for t in ("weight", "geometry") if t in section]
    if not terms:
        return []
    k = len(_array(section[terms[0]]["mass"]))
    cols = min(max(k, 1), 8)
    rows_per_term = math.ceil(k / cols) if k else 1
    rows = rows_per_term * len(terms)
    fig = Figure(figsize=(PAGE_WIDTH, 0.95 * rows + 0.5), layout="constrained")
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
            ax.add_patch(matplotlib.patches.Rectangle((-0.5, -0.5), 1, 1, fill=False, ec="white", lw=0.6))
            if np.isfinite(centroid[part]).all():
                ax.plot(*centroid[part], marker="+", color="cyan", ms=5, mew=0.8)
            name = "w_k" if term == "weight" else "softmax(G_k)"
            ax.set_title(f"{name}, part {part}" if part == 0 else f"part {part}", fontsize=6)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"Region features: where each part's weight sits around the box (white; + its centroid), "
                 f"{int(section['boxes'])} boxes")
    return [("region-parts", fig)]


def figures(summary: dict[str, Any]) -> list[tuple[str, Figure]]:
    """Every figure the summary's family has (none for a family without statistics)."""
    draw = {"relation": relation_figures, "detr": detr_figures, "nonlocal": nonlocal_figures,
            "lrnet": lrnet_figures, "regionfeat": region_figures}.get(summary.get("family", ""))
    if draw is None or summary.get("family") not in summary:
        return []
    with matplotlib.rc_context(_RC):
        return draw(summary)


def write_figures(summary: dict[str, Any], folder: Path, fmt: str = "pdf") -> list[Path]:
    """Draw and write the figures (atomically); returns their paths."""
    from relviz.render.figure import save_figure

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    import warnings

    with matplotlib.rc_context(_RC), warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="matplotlib")
        for name, fig in figures(summary):
            written.append(save_figure(fig, folder / f"{name}.{fmt}", dpi=300))
    return written
