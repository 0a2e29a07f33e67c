"""Relation Networks and Learning Region Features figures.

- ``relations``: the selected object's relation to the others on the image (arrows from each of the
  top-k contributing objects to it, width and opacity by value) and its top-k bars for each head;
  ``--set direction=out`` shows what it contributes to the others instead (its column); the objects
  ranked are the detections (``d3 circle``, as on the canvas), or every proposal with ``--set among=all``;
- ``relation-matrix``: the N×N matrix of a module, head (or mean) and term among the detections
  (or all proposals with ``--set rows=proposals``), labelled as on the canvas;
- ``geometry``: ω_G of each head as a landscape, computed from W_G alone: the value the selected
  object would give a box of its size (× ``--set scale=S``) centred at each pixel; with one
  ``--head`` also the landscape over relative scale (log w ratio × log h ratio) at an offset;
- ``region-parts``: the K part maps of the selected box (w, G or A) over its support region
  (``--set part=K``: one part, large, over the whole image).

Every number drawn comes from :mod:`relviz.views` (:func:`~relviz.views.relations.relation_view`,
:func:`~relviz.views.geometry.landscape`), the computations the window's panels show.
Rows of a relation matrix are the receiving object n, columns the contributing object m (paper ω^{mn}).
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from relviz.core.errors import BadInputError
from relviz.core.limits import MAX_DRAWN_BARS, MAX_DRAWN_BOXES
from relviz.core.trace import Trace
from relviz.render.figure import (
    NoFiniteValues,
    colorbar,
    count_nonfinite,
    draw_arrow,
    draw_boxes,
    figure_title,
    finite_range,
    grid_columns,
    heatmap,
    image_axes,
    message_figure,
    new_figure,
    overlay,
    photo,
    range_norm,
    shared_norm,
    value_image,
    wrap_text,
)
from relviz.render.labels import placer
from relviz.render.selection import (
    Setting,
    captions,
    check_object,
    check_panels,
    detection_count,
    head_selection,
)
from relviz.render.style import current
from relviz.render.tiles import Tiles
from relviz.render.views import ViewOptions, register_view
from relviz.views.geometry import (  # noqa: F401 - omega_g re-exported: ω_G is computed in the views layer
    FIGURE_RESOLUTION,
    boxes_at,
    landscape,
    omega_g,
)
from relviz.views.relations import TERM_NAMES, TERM_SYMBOLS, RelationView, relation_view
from relviz.views.selection import NMS_MODULE, default_module
from relviz.views.selection import relation_modules as _modules

TERMS = TERM_NAMES
REGION_TERMS = {"weight": "w (part weight)", "geometry": "G (geometric prior)", "appearance": "A (appearance)"}
CONTRIB_COLOR = "#ffd700"


# -- selection helpers ----------------------------------------------------------------------------------
def _check_family(trace: Trace, family: str, view: str) -> None:
    if trace.family != family:
        raise BadInputError(
            f"view {view!r} needs a {family} trace, but this trace is from {trace.family or 'an unknown family'}"
        )


def relation_modules(trace: Trace) -> list[str]:
    """The relation modules the trace holds, in network order (fc1, fc2, nms)."""
    return _modules(trace)


def check_module(trace: Trace, module: str | None) -> str:
    """``module`` if the trace has it; None means the default module (fc1, as in the window)."""
    found = relation_modules(trace)
    if not found:
        raise BadInputError("this relation trace holds no relation tensors (it was traced without capture)")
    if module is None or module == "":
        return default_module(found)
    module = str(module).removeprefix("relation/")
    if module not in found:
        why = " (the model ran with classic NMS, not the learned duplicate removal)" if module == NMS_MODULE else ""
        raise BadInputError(f"the trace has no relation module {module!r}{why}; modules in it: {', '.join(found)}")
    return module


def check_term(term: str | None) -> str:
    term = term or "weight"
    if term not in TERMS:
        raise BadInputError(f"term {term!r} is not one of {', '.join(TERMS)}")
    return term


def _entry(view: RelationView, obj: int, module: str) -> int:
    """The entry of detection ``obj`` in ``view``, or a sentence saying why it has none."""
    index = view.index_of(obj)
    if index is None:
        if module == NMS_MODULE:
            raise BadInputError(
                f"detection {obj}'s class was not among the classes whose duplicate-removal "
                "relations were recorded (raise --config nms_record_classes)"
            )
        raise BadInputError(f"detection {obj} has no row in relation module {module}")
    return index


def _centre(box: np.ndarray) -> tuple[float, float]:
    return float((box[0] + box[2]) / 2), float((box[1] + box[3]) / 2)


def _image_size_fig(trace: Trace, options: ViewOptions, width: float) -> tuple[float, float]:
    w, h = trace.image_size
    width = options.width or width
    return width, options.height or max(3.0, min(width * 0.55, width * h / w * 0.6 + 0.8))


def _no_detections(title: str) -> Figure:
    return message_figure("no detections above the score threshold:\nnothing to select", title)


# -- relations --------------------------------------------------------------------------------------
@register_view(
    "relations",
    ("relation",),
    "the selected object's relations to the other detections (--set among=all: every proposal): arrows on "
    "the image and top-k bars per head (--module fc1|fc2|nms, --term, --head)",
    settings={
        "direction": Setting(str, "what the object receives (in) or contributes (out)", ("in", "out")),
        "among": Setting(str, "rank the detections or every proposal", ("detections", "all")),
    },
)
def relations_view(trace: Trace, options: ViewOptions) -> Figure:
    _check_family(trace, "relation", "relations")
    module = check_module(trace, options.module)
    term = check_term(options.term)
    obj = check_object(trace, options.object)
    if detection_count(trace) == 0:
        return _no_detections(f"relations ({module})")
    obj = 0 if obj is None else obj
    heads = trace.shape(f"relation/{module}/{term}")[0]
    head = head_selection(options.head, heads)
    panels = [head] if head is not None else [*range(heads), None]
    check_panels(len(panels), "bar panels (one per head and their mean)", "choose one head with --head H")
    over = "proposals" if (options.extra or {}).get("among", "detections") == "all" else "detections"
    direction = (options.extra or {}).get("direction", "in")
    views = {h: relation_view(trace, module, term, h, over=over) for h in panels}
    view = views[head]
    index = _entry(view, obj, module)
    raw = np.stack([views[h].line(index, direction) for h in panels])
    if finite_range([raw]) is None:
        raise NoFiniteValues
    k = min(int(options.top_k), MAX_DRAWN_BOXES)  # arrows, each with its box and value
    top, segments, strength = view.arrows(index, k, direction)
    line = view.line(index, direction)

    style = current()
    width = options.width or style.width
    fig = new_figure(width, style.max_height)
    count_nonfinite(fig, raw)
    if width >= 5.0:  # page: the image beside the bars
        sub = fig.subfigures(1, 2, width_ratios=[1.25, 1.0], wspace=0.0)
    else:  # column: the image above the bars
        sub = fig.subfigures(2, 1, height_ratios=[1.15, 1.0], hspace=0.0)
    ax = sub[0].subplots()
    head_name = "head mean" if head is None else f"head {head}"
    title = (f"{TERMS[term]} {'into' if direction == 'in' else 'from'} {view.labels[index]} ({module}, {head_name}): "
             f"arrows from its top {len(top)} {'detections' if over == 'detections' else 'proposals'}")
    row = int(view.rows[index])
    if module == NMS_MODULE and "relation/nms/keep" in trace:
        # the duplicate-removal outcome for this candidate: classifier score s0, s1 per IoU threshold
        thresholds = trace.meta.get("relation", {}).get("iou_thresholds", [])
        keep = trace["relation/nms/keep"][row]
        s1 = ", ".join(f"{t:g}: {v:.2f}" for t, v in zip(thresholds, keep, strict=False))
        title += (
            f"; rank {int(trace['relation/nms/rank'][row])} in its class, s0 {trace['relation/nms/scores'][row]:.3f}, "
            f"s1 {{{s1}}}"
        )
    image_axes(ax, trace.image, trace.image_size)
    figure_title(fig, title if len(top) else title + " (no finite value to rank)")
    place = placer(ax)
    caps = captions(trace)
    draw_boxes(ax, trace["detections/boxes"][obj : obj + 1], [caps[obj]], highlight=0,
               labels=trace["detections/labels"][obj : obj + 1])
    for m, seg, st in list(zip(top, segments, strength, strict=True))[::-1]:
        bx = view.boxes[m]
        ax.add_patch(
            Rectangle(
                (bx[0], bx[1]),
                bx[2] - bx[0],
                bx[3] - bx[1],
                fill=False,
                linestyle="--",
                edgecolor=CONTRIB_COLOR,
                linewidth=style.thin + style.line * float(st),
                alpha=0.4 + 0.6 * float(st),
            )
        )
        draw_arrow(ax, (seg[0], seg[1]), (seg[2], seg[3]), float(st), color=CONTRIB_COLOR)
    for m in top:  # the strongest first: they get the best spots
        bx = view.boxes[m]
        label = ax.text(bx[0], bx[3], f"{view.labels[m].split(' ')[0]} {line[m]:.2g}", fontsize=style.small,
                        color="black", bbox={"facecolor": CONTRIB_COLOR, "alpha": 0.8, "pad": 0.5, "edgecolor": "none"})
        place.add_box_caption(label, bx)
    if module != NMS_MODULE and over == "proposals":
        bx = view.boxes[index]
        ax.add_patch(Rectangle((bx[0], bx[1]), bx[2] - bx[0], bx[3] - bx[1], fill=False, linestyle=":",
                               edgecolor="white", linewidth=style.thin))

    # bars: one panel per head (or just the chosen one), the top-k of the same ranking as the arrows
    cols = int(np.ceil(np.sqrt(len(panels))))
    rows = int(np.ceil(len(panels) / cols))
    axes = sub[1].subplots(rows, cols, squeeze=False)
    kb = min(int(options.top_k), (5 if width < 5.0 else 6) if head is None else MAX_DRAWN_BARS // 2)
    xmin, xmax = finite_range(list(raw))
    xmin = min(0.0, xmin)
    names = {m: v.labels[m] for v in views.values() for m in range(len(v.labels))}
    for i, a in enumerate(axes.ravel()):
        if i >= len(panels):
            a.axis("off")
            continue
        v = views[panels[i]]
        order = v.ranking(index, kb, direction)
        values = v.line(index, direction)[order]
        a.barh(range(len(order))[::-1], values, color="#4e79a7" if panels[i] is not None else "#e15759")
        short = head is None
        a.set_yticks(range(len(order))[::-1], [names[m].split(" ")[0] if short else names[m] for m in order],
                     fontsize=style.small)
        a.tick_params(axis="both", labelsize=style.small, length=2, pad=1)
        a.xaxis.set_major_locator(MaxNLocator(2 if short else 4))
        if options.shared_range:
            a.set_xlim(xmin, xmax * 1.05 if xmax > 0 else 1.0)
        a.set_title("mean" if panels[i] is None else f"head {panels[i]}", fontsize=style.small, pad=2)
    bars_title = f"top {kb} {TERM_SYMBOLS.get(term, term)} per head"
    sub[1].suptitle(wrap_text(bars_title, style.base, width * (0.4 if width >= 5.0 else 0.9)), fontsize=style.base)
    return fig


# -- relation pairs ---------------------------------------------------------------------------------
PARTNER_COLOR = "#ffd700"


@register_view(
    "relation-pairs",
    ("relation",),
    "object pairs with high relation weights (Relation Networks' figure): for each of a few objects "
    "(--object, repeatable; default the strongest), the 1–3 detections it relates to most, boxes joined by lines",
    settings={"partners": Setting(int, "how many related objects per object", low=1, high=3)},
    several_objects=True,
)
def relation_pairs_view(trace: Trace, options: ViewOptions) -> Figure:
    _check_family(trace, "relation", "relation-pairs")
    module = check_module(trace, options.module)
    term = check_term(options.term)
    if detection_count(trace) == 0:
        return _no_detections(f"relation pairs ({module})")
    heads = trace.shape(f"relation/{module}/{term}")[0]
    head = head_selection(options.head, heads)
    view = relation_view(trace, module, term, head, over="detections")
    style = current()
    chosen = [check_object(trace, k) for k in options.objects] or (
        [check_object(trace, options.object)] if options.object is not None else [])
    objects = [k for k in dict.fromkeys(chosen) if view.index_of(k) is not None]
    if not objects:
        objects = [int(view.detection[i]) for i in range(min(len(view), 4 if style.name == "page" else 2))]
    if not chosen and not objects:
        return _no_detections(f"relation pairs ({module})")
    for k in chosen:
        _entry(view, k, module)  # a sentence for an object without a row
    check_panels(len(objects), "panels (one per object)", "give fewer --object")
    partners = int((options.extra or {}).get("partners", 2))
    width = options.width or style.width
    cols = grid_columns(len(objects), width, 1.6)
    rows = math.ceil(len(objects) / cols)
    fig = new_figure(width, style.max_height)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(objects):]:
        ax.set_visible(False)
    labels = trace["detections/labels"]
    ranked = []
    for ax, k in zip(axes, objects, strict=False):
        index = view.index_of(k)
        line = view.line(index)
        top = view.ranking(index, partners)
        ranked.append(line[top])
        image_axes(ax, trace.image, trace.image_size, view.labels[index])
        place = placer(ax)
        cx, cy = _centre(view.boxes[index])
        strongest = float(np.nanmax(np.abs(line[top]))) if len(top) else 1.0
        for m in top:
            bx = view.boxes[m]
            mx, my = _centre(bx)
            strength = abs(float(line[m])) / strongest if strongest > 0 else 1.0
            ax.plot([cx, mx], [cy, my], color=PARTNER_COLOR, linewidth=style.thin + style.arrow * strength,
                    solid_capstyle="round")
            ax.add_patch(Rectangle((bx[0], bx[1]), bx[2] - bx[0], bx[3] - bx[1], fill=False,
                                   edgecolor=PARTNER_COLOR, linewidth=style.line))
            tag = ax.text(bx[0], bx[3], f"{view.labels[m].split(' ')[0]} {line[m]:.2g}", fontsize=style.small,
                          color="black", bbox={"facecolor": PARTNER_COLOR, "alpha": 0.85, "pad": 0.5,
                                               "edgecolor": "none"})
            place.add_box_caption(tag, bx)
        draw_boxes(ax, view.boxes[index][None], [view.labels[index].split(" ")[0]], highlight=0,
                   labels=labels[k : k + 1])
    count_nonfinite(fig, *ranked)
    head_name = "head mean" if head is None else f"head {head}"
    figure_title(fig, f"the {partners} objects each object relates to most: {TERMS[term]} ({module}, {head_name}); "
                      "line width by weight")
    return fig


# -- relation matrix --------------------------------------------------------------------------------
@register_view(
    "relation-matrix",
    ("relation",),
    "N×N relation matrix among the detections (or all proposals: --set rows=proposals) for a module, head and term",
    settings={"rows": Setting(str, "the detections or every proposal", ("detections", "proposals"))},
)
def relation_matrix_view(trace: Trace, options: ViewOptions) -> Figure:
    _check_family(trace, "relation", "relation-matrix")
    module = check_module(trace, options.module)
    term = check_term(options.term)
    selected = check_object(trace, options.object)
    heads = trace.shape(f"relation/{module}/{term}")[0]
    head = head_selection(options.head, heads)
    scope = (options.extra or {}).get("rows", "detections")
    n_det = detection_count(trace)
    view = relation_view(trace, module, term, head, over=scope)
    if scope == "detections":
        if n_det == 0:
            return message_figure(
                "no detections above the score threshold:\nno relation matrix among them "
                "(--set rows=proposals shows all proposals)",
                f"relation matrix ({module})",
            )
        k = min(n_det, max(1, int(options.top_k)))
        if selected is not None and selected >= k:
            k = selected + 1
        keep = np.flatnonzero(view.detection < k)
        if not len(keep):
            return message_figure(f"none of the top {k} detections has a row in module {module}",
                                  f"relation matrix ({module})")
        sub = view.matrix[np.ix_(keep, keep)]
        labels = [view.labels[i] for i in keep]
        sel_pos = int(np.flatnonzero(view.detection[keep] == selected)[0]) if (
            selected is not None and selected in view.detection[keep]) else None
        what = f"among the top {len(keep)} detections (rows do not sum to 1: the other proposals take the rest)"
    else:
        sub = view.matrix
        labels = [lab if view.detection[i] >= 0 else "" for i, lab in enumerate(view.labels)]
        sel_pos = view.index_of(selected) if selected is not None else None
        what = f"over all {len(sub)} {'candidates' if module == NMS_MODULE else 'proposals'}"
    if finite_range([sub]) is None:
        raise NoFiniteValues
    style = current()
    side = options.width or style.width
    fig = new_figure(side, style.max_height)
    count_nonfinite(fig, sub)
    ax = fig.add_subplot()
    im = value_image(ax, sub, options.cmap, range_norm(*finite_range([sub])), aspect="equal")
    n = len(sub)
    room = max(1, int((side - 1.6) * 72 / (style.small * 1.4)))  # labels that fit along the matrix's side
    gap = max(1, math.ceil(n / room))  # rows between two labels, at least
    ticks: list[int] = []
    for i in range(n):  # named rows (detections), thinned so no two labels are closer than ``gap`` rows
        if labels[i] and (not ticks or i - ticks[-1] >= gap):
            ticks.append(i)
    longest = max((len(labels[i]) for i in ticks), default=0)
    short = longest * style.small * 0.55 > 0.28 * side * 72  # long names take too much of the figure: dN only
    shown = [labels[i].split(" ")[0] if short else labels[i] for i in ticks]
    ax.set_xticks(ticks, shown, fontsize=style.small, rotation=90)
    ax.set_yticks(ticks, shown, fontsize=style.small)
    ax.tick_params(length=2, pad=1)
    ax.set_xlabel("contributing object m", fontsize=style.base)
    ax.set_ylabel("receiving object n", fontsize=style.base)
    if sel_pos is not None:
        ax.add_patch(Rectangle((-0.5, sel_pos - 0.5), n, 1, fill=False, edgecolor="#00ff7f", linewidth=style.line))
    head_name = "head mean" if head is None else f"head {head}"
    figure_title(fig, f"{TERMS[term]}, module {module}, {head_name}, {what}", style.title)
    if options.colorbar:
        colorbar(fig, im, ax, TERMS[term])
    return fig


# -- geometry landscape ------------------------------------------------------------------------------
@register_view(
    "geometry",
    ("relation",),
    "ω_G of each head as a landscape over relative position (and, for one "
    "--head, relative scale) around the selected object, from W_G alone",
    settings={
        "scale": Setting(float, "the size of the box whose ω_G is drawn, × the object's", low=1e-3, high=1e3),
        "resolution": Setting(int, "landscape cells across the image", low=4, high=400),
        "dx": Setting(float, "the scale panel's offset in box widths", low=-1e3, high=1e3),
        "dy": Setting(float, "the scale panel's offset in box heights", low=-1e3, high=1e3),
        "interpolation": Setting(str, "draw the cells (nearest) or smooth them (bilinear)", ("nearest", "bilinear")),
    },
)
def geometry_view(trace: Trace, options: ViewOptions) -> Figure:
    _check_family(trace, "relation", "geometry")
    module = check_module(trace, options.module)
    obj = check_object(trace, options.object)
    if detection_count(trace) == 0:
        return _no_detections(f"geometry ({module})")
    obj = 0 if obj is None else obj
    extra = options.extra or {}
    s = float(extra.get("scale", 1.0))
    res = int(extra.get("resolution", FIGURE_RESOLUTION))
    heads = trace[f"relation/{module}/geometry_weight"].shape[0]
    head = head_selection(options.head, heads)
    if head is None:
        check_panels(heads + 1, "landscapes (one per head and their mean)", "choose one head with --head H")
    view = relation_view(trace, module, "weight" if f"relation/{module}/weight" in trace else "geometry")
    box = trace[f"relation/{module}/boxes"][int(view.rows[_entry(view, obj, module)])]
    width, height = trace.image_size
    whole = landscape(trace, module, box, (width, height), res, s)
    land = whole.values
    caps = captions(trace)

    style = current()
    fw = options.width or style.width
    if head is None:
        panels = [*range(heads), None]
        maps = [land[h] for h in range(heads)] + [land.mean(0)]
        cols = grid_columns(len(panels), fw - 0.7, 1.0)
        rows = int(np.ceil(len(panels) / cols))
        fig = new_figure(fw, style.max_height)
        axes = fig.subplots(rows, cols, squeeze=False)
        titles = ["mean" if p is None else f"head {p}" for p in panels]
    else:
        scales = [0.5, 1.0, 2.0]
        maps = [
            landscape(trace, module, box, (width, height), res, sc, [head]).values[0]
            for sc in scales
        ]
        fig = new_figure(fw, style.max_height)
        cols = 4 if fw >= 5.0 else 2
        axes = fig.subplots(4 // cols, cols, squeeze=False)
        titles = [f"size × {sc:g}" for sc in scales]
    norms = shared_norm(maps, options.shared_range)
    count_nonfinite(fig, *maps)
    im = None
    for i, a in enumerate(axes.ravel()):
        if i >= len(maps):
            a.axis("off")
            continue
        image_axes(a, trace.image, trace.image_size, titles[i])
        im = heatmap(a, maps[i], (0, 0, width, height), norms[i], options.cmap,
                     interpolation=extra.get("interpolation", "nearest"))
        draw_boxes(a, box[None], [caps[obj].split(" ")[0]] if i == 0 else None, linewidth=style.thin,
                   labels=trace["detections/labels"][obj : obj + 1])
    if head is not None:
        a = axes.flat[3]
        a.set_visible(True)
        ratios = np.linspace(-2.0, 2.0, 81)  # log(w_n / w_m), log(h_n / h_m)
        off = (float(extra.get("dx", 1.0)), float(extra.get("dy", 0.0)))
        bw, bh = box[2] - box[0], box[3] - box[1]
        cx, cy = _centre(box)
        ow, oh = np.meshgrid(bw / np.exp(ratios), bh / np.exp(ratios))
        ocx, ocy = cx + off[0] * bw, cy + off[1] * bh
        others = np.stack([ocx - ow / 2, ocy - oh / 2, ocx + ow / 2, ocy + oh / 2], -1).reshape(-1, 4)
        sc_map = omega_g(trace, module, box, others, [head])[0].reshape(len(ratios), len(ratios))
        count_nonfinite(fig, sc_map)
        sc_norm = range_norm(*(finite_range([sc_map]) or (0.0, 1.0)))
        im2 = value_image(a, sc_map, options.cmap, sc_norm, extent=(-2, 2, 2, -2), aspect="equal")
        a.set_xlabel("log(w_n / w_m)", fontsize=style.small)
        a.set_ylabel("log(h_n / h_m)", fontsize=style.small)
        a.tick_params(labelsize=style.small, length=2, pad=1)
        a.set_title(f"scale at ({off[0]:g}w, {off[1]:g}h)", fontsize=style.title)
        if options.colorbar:
            colorbar(fig, im2, a, "ω_G")
        map_axes = list(axes.flat[:3]) if cols == 4 else list(axes[0])  # 2×2: the scale panel's bar sits below
    else:
        map_axes = axes.ravel().tolist()
    if options.colorbar and im is not None:
        colorbar(fig, im, map_axes, "ω_G")
    figure_title(
        fig,
        f"geometry term ω_G into d{obj} ({module}) of a box of its size × {s:g} centred at each pixel"
        if head is None
        else f"geometry term ω_G into d{obj} ({module}), head {head}: box sizes × 0.5, 1, 2 and relative scale",
    )
    return fig


# -- region parts ------------------------------------------------------------------------------------
@register_view(
    "region-parts",
    ("regionfeat",),
    "the K part maps of the selected box over its support region (--term weight|geometry|appearance; "
    "--set part=K: one part over the image)",
    settings={"part": Setting(int, "one part drawn large over the image", low=0, high=1e9)},
)
def region_parts_view(trace: Trace, options: ViewOptions) -> Figure:
    _check_family(trace, "regionfeat", "region-parts")
    term = options.term or "weight"
    if term not in REGION_TERMS:
        raise BadInputError(f"term {term!r} is not one of {', '.join(REGION_TERMS)}")
    obj = check_object(trace, options.object)
    if detection_count(trace) == 0:
        return _no_detections("region parts")
    if "region/weight" not in trace:
        raise BadInputError("this region-feature trace holds no region tensors (it was traced without capture)")
    obj = 0 if obj is None else obj
    row = int(trace["detections/region_row"][obj])
    if row < 0:
        raise BadInputError(f"detection {obj} has no region row: its part maps were not recorded")
    values = trace[f"region/{term}"][row]  # (K, P)
    pos = trace["region/positions"][row]  # (P, 2)
    box = trace["region/boxes"][row]
    k, p = values.shape
    parts, samples = math.isqrt(k), math.isqrt(p)
    if parts * parts != k or samples * samples != p:
        raise BadInputError(
            f"region/{term} holds {k} parts over {p} positions; region-parts draws a square lattice "
            "(parts × parts over samples × samples), so both must be squares"
        )
    extent = _support_extent(pos.reshape(samples, samples, 2), box)
    maps = [values[i].reshape(samples, samples) for i in range(k)]
    aspect = min(max((extent[2] - extent[3]) / (extent[1] - extent[0]), 1 / 30), 30.0)
    bw, bh = (box[2] - box[0]) / parts, (box[3] - box[1]) / parts
    part = (options.extra or {}).get("part")
    if part is not None:
        if not 0 <= part < k:
            raise BadInputError(f"part {part} does not exist; valid parts: 0..{k - 1}")
        return _one_part(trace, options, obj, term, maps[part], part, parts, extent, box)
    check_panels(k, "part maps", "draw one part with --set part=K")
    norms = shared_norm(maps, options.shared_range)
    style = current()
    fw = options.width or style.width
    fig = new_figure(fw, style.max_height)
    count_nonfinite(fig, *maps)
    ax = fig.add_subplot()
    tile_pt = (fw - 1.0) * 72 / parts  # a tile's width in points, about
    tiles = Tiles(ax, parts, parts, aspect=aspect, gap=max(0.12, (style.small + 4) / tile_pt))  # room for titles
    w, h = trace.image_size
    im = None
    for i in range(k):
        r, c = divmod(i, parts)
        clip = tiles.clip(r, c)
        if trace.image is not None:
            photo(ax, trace.image, tiles.extent(r, c, extent, (0, w, h, 0))).set_clip_path(clip)
        else:
            tiles.background(r, c, "#d0d0d0")
        im = overlay(ax, maps[i], tiles.extent(r, c, extent), norms[i], options.cmap)
        for (x0, y0), (x1, y1), color, lw in (
            ((box[0], box[1]), (box[2], box[3]), "white", style.thin),
            ((box[0] + c * bw, box[1] + r * bh), (box[0] + (c + 1) * bw, box[1] + (r + 1) * bh), "#00ff7f",
             style.thin),
        ):
            (tx0, ty0), (tx1, ty1) = tiles.point(r, c, extent, x0, y0), tiles.point(r, c, extent, x1, y1)
            ax.add_patch(Rectangle((tx0, ty0), tx1 - tx0, ty1 - ty0, fill=False, edgecolor=color, linewidth=lw,
                                   clip_path=clip))
        tiles.frame(r, c, linewidth=style.thin)
        tiles.title(r, c, f"part {i}", fontsize=style.small)
    if options.colorbar and im is not None:
        colorbar(fig, im, ax, REGION_TERMS[term])
    caps = captions(trace)
    figure_title(
        fig,
        f"{REGION_TERMS[term]} of each part for {caps[obj]} over its support region "
        f"({samples}×{samples} samples; white: the box, green: the part's bin)",
    )
    return fig


def _support_extent(lattice: np.ndarray, box: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, x1, y1, y0) covering the samples × samples lattice of positions (cells centred on them); the
    box when the lattice spans no area (one sample, or positions that coincide)."""
    xs, ys = lattice[..., 0], lattice[..., 1]
    n = lattice.shape[0]
    dx = (xs[0, -1] - xs[0, 0]) / max(n - 1, 1)
    dy = (ys[-1, 0] - ys[0, 0]) / max(n - 1, 1)
    extent = (xs[0, 0] - dx / 2, xs[0, -1] + dx / 2, ys[-1, 0] + dy / 2, ys[0, 0] - dy / 2)
    if abs(extent[1] - extent[0]) > 1e-6 and abs(extent[2] - extent[3]) > 1e-6:
        return tuple(float(v) for v in extent)
    x0, y0, x1, y1 = (float(v) for v in box)
    return (min(x0, x1) - 0.5, max(x0, x1) + 0.5, max(y0, y1) + 0.5, min(y0, y1) - 0.5)


def _one_part(
    trace: Trace,
    options: ViewOptions,
    obj: int,
    term: str,
    values: np.ndarray,
    part: int,
    parts: int,
    extent: tuple[float, float, float, float],
    box: np.ndarray,
) -> Figure:
    """One part's map over the whole image (``--set part=K``)."""
    style = current()
    fig = new_figure(options.width or style.width, style.max_height)
    ax = fig.add_subplot()
    caps = captions(trace)
    image_axes(ax, trace.image, trace.image_size)
    # the support region and a quarter of its size around it, not the whole image: the map fills the figure
    left, right, bottom, top = extent
    w, h = trace.image_size
    pad_x, pad_y = 0.25 * (right - left), 0.25 * (bottom - top)
    ax.set_xlim(max(0.0, left - pad_x), min(float(w), right + pad_x))
    ax.set_ylim(min(float(h), bottom + pad_y), max(0.0, top - pad_y))
    figure_title(fig, f"{REGION_TERMS[term]} of part {part} for {caps[obj]} over its support region")
    norm = shared_norm([values], True)[0]
    count_nonfinite(fig, values)
    im = overlay(ax, values, extent, norm, options.cmap)
    draw_boxes(ax, box[None], labels=trace["detections/labels"][obj : obj + 1])
    bw, bh = (box[2] - box[0]) / parts, (box[3] - box[1]) / parts
    r, c = divmod(part, parts)
    ax.add_patch(Rectangle((box[0] + c * bw, box[1] + r * bh), bw, bh, fill=False, edgecolor="#00ff7f",
                           linewidth=style.line))
    if options.colorbar:
        colorbar(fig, im, ax, REGION_TERMS[term])
    return fig
