"""The batch loop: list, shard, decode ahead, run, write, record, aggregate, merge.

Folder layout of ``--out DIR``::

    DIR/run.json                      the model and settings the run was started with (a re-run must match)
    DIR/manifest.jsonl                one line per input (rank 0 writes it from the parts at the end)
    DIR/traces/<input>.npz            one trace per input (not with --no-traces)
    DIR/figures/<input>.<view>.png    figures per input (--view), each with its .recipe.json
    DIR/stats.json, DIR/stats/*.pdf   the statistics (--stats)
    DIR/parts/                        each rank's manifest part and statistics part

**Resuming.**  An item is done when a manifest part says so; a re-run (after a kill, or to add inputs) runs
the others.  The statistics part records how far into its manifest part it reaches; done items past that
point are added again from their traces (or run again without traces), so every done item is counted once.

**Decoding ahead.**  A pool of threads (``--workers``) decodes the next items while the model runs (OpenCV and
PIL release the GIL), so on a GPU the model does not wait for JPEG decoding.
"""

from __future__ import annotations

import collections
import json
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from relviz import __version__
from relviz.batch import distributed, manifest
from relviz.batch.inputs import Item, check_categories, expand, list_inputs, video_frames
from relviz.batch.progress import Progress
from relviz.batch.stats import Accumulator, write_summary
from relviz.core.errors import BadInputError, RelvizError
from relviz.core.files import shown

#: how often (seconds) a rank saves its statistics part during a run (and always at its end)
STATE_EVERY = 30.0
FIGURE_FORMATS = ("png", "pdf", "svg")


@dataclass
class BatchOptions:
    """What ``relviz batch`` was asked (the command line's options, checked)."""

    inputs: str
    out: Path
    model: str | None = None
    weights: str | None = None
    family: str | None = None
    device: str = "auto"
    precision: str = "fp32"
    threshold: float = 0.7
    resize: int | None = None
    clip_length: int | None = None
    frame_step: int | None = None
    views: list[str] = field(default_factory=list)
    figure_format: str = "png"
    dpi: int = 150
    stats: bool = False
    traces: bool = True
    workers: int = 2
    image_root: str | None = None


@dataclass
class BatchResult:
    total: int
    done: int
    failed: int
    not_run: int
    ran: int  # items this process ran now
    seconds: float


# -- checks before any work -------------------------------------------------------------------------------


def _check_out(out: Path) -> Path:
    """``--out``: a folder, or a name in a folder that exists (it is created once every check has passed)."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {shown(out)} is a file; give a folder (it is created if missing)")
    parent = out.parent if str(out.parent) else Path(".")
    if not out.exists() and not parent.is_dir():
        raise BadInputError(f"--out {shown(out)}: folder {shown(parent)} does not exist")
    return out


def _make_out(out: Path) -> None:
    try:
        out.mkdir(exist_ok=True)
        for sub in ("traces", "figures", "stats", manifest.PARTS):
            (out / sub).mkdir(exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"cannot write into --out {shown(out)}: {exc.strerror or exc}") from None


def _check_views(options: BatchOptions, family: str | None = None) -> None:
    from relviz.render.views import views, views_for

    known = views()
    for name in options.views:
        if name not in known:
            raise BadInputError(f"unknown view {name!r}; valid views: {', '.join(sorted(known))}")
        if family is not None and family not in known[name].families:
            fits = ", ".join(views_for(family)) or "none"
            raise BadInputError(f"--view {name} draws {'/'.join(known[name].families)} traces, but the model is "
                                f"{family}; views for it: {fits}")
    if options.figure_format not in FIGURE_FORMATS:
        raise BadInputError(f"--format {options.figure_format} must be one of {', '.join(FIGURE_FORMATS)}")


def _identity(loaded, options: BatchOptions) -> dict[str, Any]:
    """What makes two runs the same run: the model, its weights, and the settings that change a trace."""
    return {"model": loaded.name, "family": loaded.family.name,
            "checkpoint_sha256": loaded.checkpoint.sha256 if loaded.checkpoint else "", "weights": loaded.weights,
            "threshold": options.threshold, "resize": options.resize, "clip_length": options.clip_length,
            "frame_step": options.frame_step}


def _check_identity(out: Path, identity: dict[str, Any]) -> None:
    """A folder holds one run: a re-run with another model or other settings is refused."""
    path = out / "run.json"
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8")).get("identity", {})
        except (OSError, ValueError, AttributeError):
            old = None
        if old is None:
            raise BadInputError(f"{shown(path)} is not readable; give another --out, or delete it to start over")
        differ = [k for k in identity if old.get(k) != identity[k]]
        if differ:
            k = differ[0]
            raise BadInputError(f"--out {shown(out)} holds a run with {k} {old.get(k)!r}, not {identity[k]!r}; "
                                "give another --out to start a new run")
        return
    from relviz.core.atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"relviz": __version__, "identity": identity}, indent=1) + "\n", encoding="utf-8")


def _labels(loaded) -> list[str]:
    labels = loaded.config.get("labels") or []
    return [str(v) for v in labels]


# -- decoding (in the pool) -------------------------------------------------------------------------------


def decode(item: Item, clip_model: bool) -> tuple[list, dict[str, Any]]:
    """The frames an item runs on and the source identity its trace records."""
    if item.kind == "image":
        from relviz.core.images import read_image

        image = read_image(item.path)
        frames = [image] * (item.clip_length or 1) if clip_model else [image]
        return frames, {"path": str(item.path), "kind": "image", "frame": 0, "size": [image.shape[1], image.shape[0]]}
    from relviz.core.video import VideoReader

    with VideoReader(item.path) as video:
        start = int(item.frame or 0)
        if clip_model:
            n = len(video)
            length = max(1, min(int(item.clip_length or 1), n))
            start = max(0, min(start, n - length))
            frames = video.clip(start, length, 1)
        else:
            frames = [video.frame(start)]
        fps = video.fps
    source = {"path": str(item.path), "kind": "video", "frame": start, "shown_frame": start,
              "size": [frames[0].shape[1], frames[0].shape[0]], "fps": fps, "stride": 1}
    return frames, source


# -- one item ------------------------------------------------------------------------------------------


class _Worker:
    """Runs items with one loaded model and writes what each asks for."""

    def __init__(self, loaded, options: BatchOptions, out: Path, acc: Accumulator | None):
        from relviz import pipeline

        self.loaded, self.options, self.out, self.acc = loaded, options, out, acc
        self.run = pipeline.RunChoice(options.threshold, options.resize)

    def trace(self, frames, source):
        from relviz import pipeline

        try:
            return pipeline.run_frames(self.loaded, frames, source, self.run)
        except Exception as exc:  # noqa: BLE001 — only a GPU's memory exhaustion is retried, on the CPU
            if not pipeline.is_oom(exc) or self.loaded.device.type == "cpu":
                raise
            pipeline.move_to_cpu(self.loaded)
            print("relviz: warning: the GPU ran out of memory; the batch goes on on the CPU", file=sys.stderr)
            return pipeline.run_frames(self.loaded, frames, source, self.run)

    def outputs(self, item: Item, trace) -> list[str]:
        written: list[str] = []
        trace_path = None
        if self.options.traces:
            trace_path = self.out / "traces" / f"{item.stem}.npz"
            trace_path.parent.mkdir(parents=True, exist_ok=True)
            trace.save(trace_path)
            written.append(trace_path.relative_to(self.out).as_posix())
        for view in self.options.views:
            figure = self.out / "figures" / f"{item.stem}.{view}.{self.options.figure_format}"
            figure.parent.mkdir(parents=True, exist_ok=True)
            self._figure(item, view, figure, trace, trace_path)
            written.append(figure.relative_to(self.out).as_posix())
        return written

    def _figure(self, item: Item, view: str, figure: Path, trace, trace_path: Path | None) -> None:
        from relviz.export import export_figure, make_recipe

        data: dict[str, Any] = {"relviz": __version__, "view": view, "dpi": self.options.dpi, "output": str(figure)}
        if trace_path is not None:
            data["trace"] = str(trace_path.resolve())
        else:
            o = self.options
            data["source"] = {"model": o.model, "weights": o.weights, "family": o.family, "input": str(item.path),
                              "device": o.device, "precision": o.precision, "resize": o.resize,
                              "threshold": o.threshold, "frame": int(item.frame or 0), "clip_length": item.clip_length}
        export_figure(make_recipe(data), trace=trace)


# -- the run -----------------------------------------------------------------------------------------------


def _state_path(out: Path, rank: int) -> Path:
    return out / manifest.PARTS / f"stats-rank{rank:05d}.npz"


def _catch_up(out: Path, part: int, acc: Accumulator, offset: int, rerun: set[str]) -> None:
    """Add to ``acc`` the done items of manifest part ``part`` past ``offset`` (killed before the statistics
    were saved): from their traces, or into ``rerun`` when they have none."""
    from relviz.core.trace import Trace

    for rec in manifest.read_records(manifest.part_path(out, part), offset):
        if rec.get("status") != "done":
            continue
        traces = [o for o in rec.get("outputs", []) if isinstance(o, str) and o.startswith("traces/")]
        try:
            if not traces:
                raise BadInputError("no trace")
            acc.add(Trace.load(out / traces[0]))
        except RelvizError:
            rerun.add(rec["key"])


def _load_state(out: Path, part: int, family: str, labels: list[str]) -> tuple[Accumulator, int]:
    path = _state_path(out, part)
    if not path.is_file():
        return Accumulator(family, labels), 0
    acc, header = Accumulator.load(path)
    return acc, int(header.get("manifest_bytes", 0))


def run_batch(options: BatchOptions, stream: TextIO | None = None, on_item=None) -> BatchResult:
    """Run ``options``: everything is checked before the first item runs; per-item failures are recorded.

    ``on_item(done_now, accumulator)`` is called after each item (benchmarks measure memory with it).
    """
    stream = stream if stream is not None else sys.stderr
    started = time.perf_counter()
    ranks = distributed.from_environment()
    inputs = list_inputs(options.inputs, options.image_root)
    _check_views(options)
    out = _check_out(options.out)
    if options.frame_step is not None and options.frame_step < 1:
        raise BadInputError(f"--frame-step {options.frame_step} must be at least 1")
    if not 0 <= options.workers <= 64:
        raise BadInputError(f"--workers {options.workers} is out of range (0..64)")

    from relviz import pipeline
    from relviz.export import StderrNotes

    distributed.start(ranks)
    choice = {"name": options.model, "weights": options.weights or "bundled", "family": options.family,
              "device": distributed.device_for(options.device, ranks), "precision": options.precision}
    loaded = pipeline.load_model(StderrNotes(), choice)
    family = loaded.family.name
    _check_views(options, family)
    if inputs.categories is not None:
        if family not in ("relation", "regionfeat", "detr"):
            raise BadInputError(f"--inputs {shown(inputs.spec)} is a COCO json of detection images, but "
                                f"{loaded.name} is a {family} classifier; give a folder or a list of images")
        check_categories(inputs.categories, _labels(loaded), loaded.name)
    clip_model = loaded.family.input_kind == "clip"
    clip_length = pipeline.clip_length_of(loaded, options.clip_length) if clip_model else 1
    counts = {f.path: video_frames(f.path) for f in inputs.files if f.kind == "video"}
    items = expand(inputs.files, loaded.family.input_kind, clip_length, options.frame_step, counts)
    _make_out(out)
    _check_identity(out, _identity(loaded, options))

    # what is done already, and the statistics of it
    done = {k for k, r in manifest.latest(out).items() if r.get("status") == "done"}
    acc = None
    rerun: set[str] = set()
    if options.stats:
        for part in manifest.part_ranks(out):
            if part != ranks.rank and part % ranks.world == ranks.rank and part >= ranks.world:
                other, offset = _load_state(out, part, family, _labels(loaded))
                _catch_up(out, part, other, offset, rerun)
                other.save(_state_path(out, part), {"manifest_bytes": manifest.part_path(out, part).stat().st_size})
        acc, offset = _load_state(out, ranks.rank, family, _labels(loaded))
        _catch_up(out, ranks.rank, acc, offset, rerun)
    done -= rerun
    todo = [it for it in distributed.shard(items, ranks) if it.key not in done]

    part = manifest.ManifestPart(manifest.part_path(out, ranks.rank))
    ran = 0
    try:
        if acc is not None:
            acc.save(_state_path(out, ranks.rank), {"manifest_bytes": part.size})
        worker = _Worker(loaded, options, out, acc)
        progress = Progress(len(todo), stream, ranks, skipped=len(distributed.shard(items, ranks)) - len(todo))
        last_save = time.monotonic()
        for item, decoded, error in _decoded(todo, clip_model, options.workers):
            t0 = time.perf_counter()
            outputs: list[str] = []
            if error is None:
                try:
                    trace = worker.trace(*decoded)
                    outputs = worker.outputs(item, trace)
                    if acc is not None:
                        acc.add(trace)
                except RelvizError as exc:
                    error = _sentence(exc)
                except Exception as exc:  # noqa: BLE001 — one item's bug must not end a run of thousands
                    error = f"internal error ({type(exc).__name__}): {_sentence(exc)}"
            status = "done" if error is None else "failed"
            part.append(manifest.record(item.key, item.path, status, outputs, time.perf_counter() - t0, error,
                                        ranks.rank, item.frame))
            ran += 1
            progress.tick(error is None)
            if acc is not None and time.monotonic() - last_save > STATE_EVERY:
                acc.save(_state_path(out, ranks.rank), {"manifest_bytes": part.size})
                last_save = time.monotonic()
            if on_item is not None:
                on_item(ran, acc)
        progress.finish()
    finally:
        if acc is not None:
            acc.save(_state_path(out, ranks.rank), {"manifest_bytes": part.size})
        part.close()

    distributed.barrier(ranks)
    order = [it.key for it in items]
    if ranks.rank == 0:
        manifest.merge(out, order)
        if options.stats:
            merge_stats(out, family, _labels(loaded), loaded.describe())
    distributed.barrier(ranks)
    best = manifest.latest(out)
    n_done = sum(1 for k in order if best.get(k, {}).get("status") == "done")
    n_failed = sum(1 for k in order if best.get(k, {}).get("status") == "failed")
    distributed.stop(ranks)
    return BatchResult(len(order), n_done, n_failed, len(order) - n_done - n_failed, ran,
                       time.perf_counter() - started)


def _decoded(todo: list[Item], clip_model: bool, workers: int):
    """(item, (frames, source), None) or (item, None, sentence) in order, decoded ``2 × workers`` items ahead."""
    if workers == 0:
        for item in todo:
            try:
                yield item, decode(item, clip_model), None
            except RelvizError as exc:
                yield item, None, _sentence(exc)
        return
    ahead: collections.deque[tuple[Item, Future]] = collections.deque()
    queue = iter(todo)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="relviz-decode") as pool:
        def fill() -> None:
            while len(ahead) < 2 * workers:
                item = next(queue, None)
                if item is None:
                    return
                ahead.append((item, pool.submit(decode, item, clip_model)))

        fill()
        while ahead:
            item, future = ahead.popleft()
            fill()
            try:
                yield item, future.result(), None
            except RelvizError as exc:
                yield item, None, _sentence(exc)
            except Exception as exc:  # noqa: BLE001 — a decoder's bug fails the item, not the run
                yield item, None, f"internal error ({type(exc).__name__}): {_sentence(exc)}"


def _sentence(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:500] or type(exc).__name__


def merge_stats(out: Path, family: str, labels: list[str], model: dict[str, Any]) -> dict[str, Any]:
    """Sum every rank's statistics part into ``stats.json`` and draw ``stats/*.pdf``; returns the summary."""
    from relviz.batch.figures import write_figures

    total = Accumulator(family, labels)
    for part in manifest.part_ranks(out):
        path = _state_path(out, part)
        if path.is_file():
            total.merge(Accumulator.load(path)[0])
    summary = {"relviz": __version__, "model": model, **total.summary()}
    write_summary(out / "stats.json", summary)
    write_figures(summary, out / "stats")
    return summary
