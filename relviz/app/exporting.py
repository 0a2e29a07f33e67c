"""Exports run in workers: figures through the Qt-free renderer (the same as ``relviz export``), traces
as ``.npz``, videos with overlays (mp4v).  Every file is written to a temporary name in the target
folder and renamed into place only when complete, so a failed or cancelled export leaves nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from relviz.core.atomic import atomic_path, check_writable
from relviz.core.errors import BadInputError
from relviz.core.trace import Trace
from relviz.views import maps
from relviz.views.overlay import blend_cells
from relviz.views.palette import box_color, rgb
from relviz.views.selection import captions

FORMATS = ("png", "svg", "pdf")


def view_options(trace: Trace, sel, options: dict[str, Any]):
    """The renderer's :class:`ViewOptions` for what the window shows (selection + dialog choices)."""
    from relviz.render.style import DEFAULT_PRESET
    from relviz.render.views import ViewOptions

    src = maps.source(trace, sel.source)
    layer = None
    if src is not None:
        li = maps.layer_index(len(src.layers), sel.layer)
        layer = src.layers[li]
    return ViewOptions(
        object=sel.object,
        point=tuple(sel.point) if sel.point is not None else None,
        points=[tuple(sel.point)] if sel.point is not None else [],
        frame=sel.frame,
        layer=layer,
        head="mean" if sel.head is None else str(sel.head),
        term=sel.term,
        module=sel.module if sel.module != maps.DETR_DECODER_MODULE else None,
        colorbar=bool(options.get("colorbar", True)),
        shared_range=bool(options.get("shared_range", True)),
        cmap=str(options.get("cmap", "inferno")),
        width=options.get("width"),
        height=options.get("height"),
        preset=str(options.get("preset") or DEFAULT_PRESET),
    )


def recipe(trace: Trace, view: str, vo, dpi: int, origin: dict[str, Any], output: str | Path | None = None):
    """The recipe ``relviz export --recipe`` redraws the figure from, validated by the command line's schema.

    ``origin`` says where the trace came from: ``{"trace": PATH}`` for an opened ``.npz`` file, else
    the model and input (``model``, ``weights``, ``family``, ``input``, ``device``, ``precision``,
    ``resize``, ``threshold``, ``frame``) as the command line's options would: the input size the window
    ran at is kept, so the figure replays from the same model input.
    """
    from relviz import __version__
    from relviz.core.atomic import absolute
    from relviz.export import make_recipe

    data: dict[str, Any] = {"relviz": __version__, "view": view, "options": vo.to_json(), "dpi": int(dpi)}
    if origin.get("trace"):
        data["trace"] = str(absolute(origin["trace"]))
    else:
        data["source"] = {
            "model": origin.get("model"),
            "weights": origin.get("weights"),
            "family": origin.get("family"),
            "input": origin.get("input"),
            "device": origin.get("device") or "auto",
            "precision": origin.get("precision") or "fp32",
            "resize": origin.get("resize"),
            "threshold": float(origin["threshold"] if origin.get("threshold") is not None else 0.7),
            "frame": int(origin.get("frame") or 0),
            "clip_length": origin.get("clip_length"),
            "stride": int(origin.get("stride") or 1),
            "overrides": dict(origin.get("overrides") or {}),
            "seed": int(origin.get("seed") or 0),
        }
    if output is not None:
        data["output"] = str(absolute(output))
    return make_recipe(data)


def recipe_path(figure: str | Path) -> Path:
    """Where the recipe of ``figure`` goes (``FIG.recipe.json``), as for ``relviz export``."""
    from relviz.export import recipe_path as export_recipe_path

    return export_recipe_path(figure)


def export_figure(ctx, trace: Trace, options: dict[str, Any], sel, origin: dict[str, Any]) -> str:
    """Draw view ``options['view']`` of ``trace`` for selection ``sel`` with the Qt-free renderer (the
    same as ``relviz export``) and write the figure and its recipe together."""
    from relviz import export

    path = Path(options["path"])
    fmt = (options.get("format") or path.suffix.lstrip(".") or "png").lower()
    if fmt not in FORMATS:
        raise BadInputError(f"cannot export a figure as {fmt!r}; choose one of {', '.join(FORMATS)}")
    if path.suffix.lower() != f".{fmt}":
        path = path.with_name(path.name + f".{fmt}") if not path.suffix else path.with_suffix(f".{fmt}")
    check_writable(path)
    ctx.progress(10, "drawing the figure…")
    vo = view_options(trace, sel, options)
    rec = recipe(trace, options["view"], vo, int(options.get("dpi", 300)), origin, output=path)
    figure, _ = export.export_figure(rec, trace=trace, progress=ctx.progress)
    ctx.progress(100, "done")
    return str(figure)


def export_trace(ctx, trace: Trace, path: str) -> str:
    ctx.progress(20, "writing the trace…")
    return str(trace.save(path))


# -- video with overlays -----------------------------------------------------------------------------


def _overlay(image: np.ndarray, trace: Trace | None, sel, obj: int | None) -> np.ndarray:
    """The frame with the map of ``obj`` (or the point) blended in as its cells and boxes drawn (RGB), from the
    same views as the canvas: the map, its shared colour scale, the box palette and the ``d0 circle`` names."""
    out = image.copy()
    if trace is None:
        return out
    src = maps.source(trace, sel.source)
    m = None
    if src is not None:
        if src.driver == "object" and obj is not None:
            m = maps.object_map(trace, src, obj, sel.layer, sel.term)
        elif src.driver == "point" and sel.point is not None:
            m = maps.point_map(trace, src, sel.point, sel.layer, sel.term, sel.frame)
    if m is not None and m.rect is not None:
        values = m.head(sel.head, maps.time_step(m, trace, sel.frame))
        out = blend_cells(out, values, m.rect, m.scale(shared=True))
    boxes, _, labels = maps.detections(trace)
    for i, (box, text) in enumerate(zip(boxes, captions(trace), strict=False)):
        color = (255, 255, 255) if i == obj else rgb(box_color(int(labels[i])))
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x0, y0), (x1, y1), color, 3 if i == obj else 2)
        cv2.putText(out, text, (x0 + 2, max(y0 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1, cv2.LINE_AA)
    return out


def export_video(ctx, video_path: str, path: str, loaded, run, sel, options: dict[str, Any]) -> str:
    from relviz.pipeline import VideoSource as _VideoSource
    from relviz.pipeline import video_step as _video_step

    out_path = Path(path)
    if out_path.suffix.lower() != ".mp4":
        out_path = out_path.with_suffix(".mp4")
    check_writable(out_path)
    video = _VideoSource(Path(video_path))
    try:
        n = len(video.reader)
        start = int(options.get("start", 0))
        stop = min(int(options.get("stop", n)), n)
        if stop <= start:
            raise BadInputError(f"no frames to export: frames {start} to {stop - 1} of {Path(video_path).name}")
        # a temporary name of relviz.core.atomic: short for any name, renamed into place only when the block
        # ends without an error or a cancellation, and swept from the folder when a killed run left it
        with atomic_path(out_path) as tmp:
            writer = None
            prev: Trace | None = None
            obj = sel.object
            try:
                for index in range(start, stop):
                    ctx.progress(100 * (index - start) / max(stop - start, 1), f"frame {index} of {stop - 1}")
                    _, image, trace, _, _ = _video_step(ctx, video, index, loaded, run, None)
                    if image is None:
                        if index == start:
                            raise BadInputError(f"frame {index} of {Path(video_path).name} cannot be decoded")
                        ctx.note(f"the video ends early: frame {index} cannot be decoded; the export stops there")
                        break
                    if prev is not None and trace is not None:
                        obj = maps.follow_object(prev, trace, obj)
                    prev = trace if trace is not None else prev
                    frame = _overlay(image, trace, sel, obj)
                    if writer is None:
                        writer = cv2.VideoWriter(
                            str(tmp),
                            cv2.VideoWriter_fourcc(*"mp4v"),
                            video.reader.fps,
                            (frame.shape[1], frame.shape[0]),
                        )
                        if not writer.isOpened():
                            raise BadInputError(
                                f"cannot write video {out_path}: OpenCV could not open an mp4v writer"
                            )
                    writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            finally:
                if writer is not None:
                    writer.release()
            ctx.check()  # cancelled: the temporary file goes, nothing is renamed
    finally:
        video.close()
    return str(out_path)
