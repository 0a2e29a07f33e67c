"""The ``relviz`` command: the application by default, and headless ``models``, ``trace``, ``export``,
``eval`` and ``batch`` commands (``batch``'s options and exit codes: :mod:`relviz.batch.command`).

Exit codes: 0 on success; 2 on bad input, with one sentence on stderr (never a traceback), argparse's
own refusals included; 1 on an internal error (a bug), with one line on stderr and the full report in
a file of the user's cache folder; 130 when interrupted.

Options are validated by the recipe schema of :mod:`relviz.export`: the command line builds a recipe
(or, for ``trace``, its source) from the parsed options and validates it once, and an error names the
option as it was typed (``--dpi 10000 is out of range (30..1200)``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

from relviz import __version__
from relviz.core.errors import BadInputError, RelvizError

COMMANDS = ("gui", "models", "trace", "export", "eval", "batch")
MAX_SETTING_TEXT = 256  # characters of one --config/--set value, before it is parsed as JSON


class ArgumentParser(argparse.ArgumentParser):
    """argparse's refusals as one line, ``relviz: error: ...``, exit code 2."""

    def error(self, message: str):
        text = _one_line(message)
        self.exit(2, f"relviz: error: {text} (see `{self.prog} --help`)\n")


# -- argument helpers -----------------------------------------------------------------------------


def _point(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y in image pixels, got {_shown(text)}") from None
    return x, y


def _key_value(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {_shown(text)}")
    key, value = text.split("=", 1)
    if len(value) > MAX_SETTING_TEXT:
        raise argparse.ArgumentTypeError(f"the value of {_shown(key.strip())} is longer than {MAX_SETTING_TEXT} "
                                         "characters")
    try:
        parsed: Any = json.loads(value)
    except ValueError:
        parsed = value
    return key.strip(), parsed


def _add_model_arguments(p: argparse.ArgumentParser, required_input: bool) -> None:
    g = p.add_argument_group("model and input")
    g.add_argument("--model", help="zoo name (see `relviz models`)")
    g.add_argument("--weights", help="checkpoint file (.pth/.pt/.safetensors), a Hugging Face model folder "
                   "(config.json + model.safetensors), or 'none' for seeded random weights of --model")
    g.add_argument("--family", help="model family of --weights when its keys are ambiguous")
    g.add_argument("--input", required=required_input, help="image or video file")
    g.add_argument("--device", default="auto", help="auto (cuda → mps → cpu), cpu, mps, cuda or cuda:N")
    g.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"))
    g.add_argument("--resize", type=int, help="shorter side in pixels (0 = no resize; default: the model's)")
    g.add_argument("--threshold", type=float, help="score threshold for detections (default: the model's, from "
                   "its card; 0.7 for a checkpoint)")
    g.add_argument("--heads", type=int, help="attention heads, when the checkpoint's args do not say")
    g.add_argument("--dilation", action="store_true", default=None, help="DC5 backbone (DETR)")
    g.add_argument("--frame", type=int, default=0, help="video frame (first frame of a clip)")
    g.add_argument("--clip-length", type=int, help="frames per clip for video models")
    g.add_argument("--stride", type=int, default=1, help="frame step within a clip")
    g.add_argument("--config", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="architecture setting the weights cannot tell (repeatable)")
    g.add_argument("--seed", type=int, default=0, help="seed for --weights none")


def _add_view_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("view")
    g.add_argument("--view", action="append", help="figure view (see --help-views); repeatable: one figure per view, "
                   "named FIG-VIEW.png after --out")
    g.add_argument("--object", type=int, action="append", metavar="K",
                   help="selected detection index (repeatable: the objects of decoder-objects and relation-pairs; "
                        "one figure per object for the other views)")
    g.add_argument("--point", type=_point, action="append", metavar="X,Y",
                   help="reference point in image pixels (repeatable)")
    g.add_argument("--layer", help="layer index or name (default: the last)")
    g.add_argument("--head", default="mean", help="head index or 'mean'")
    g.add_argument("--term", default="weight", choices=("weight", "geometry", "appearance"))
    g.add_argument("--module", help="relation module (fc1, fc2, nms) or block name")
    g.add_argument("--top-k", type=int, default=20)
    g.add_argument("--cmap", default="inferno")
    g.add_argument("--no-colorbar", action="store_true")
    g.add_argument("--no-shared-range", action="store_true", help="each panel its own colour range")
    g.add_argument("--preset", default="page", choices=("column", "page"),
                   help="journal size: column (3.5 in wide) or page (7.16 in; the default), height from the "
                        "content, every text 5–12 pt; --width/--height override the size")
    g.add_argument("--width", type=float, help="figure width in inches")
    g.add_argument("--height", type=float, help="figure height in inches")
    g.add_argument("--set", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="view-specific setting (repeatable)")


def _add_max_pixels(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-pixels", type=int, metavar="N",
                   help="largest image or video frame to read, in pixels (default 50,000,000); raise it on purpose "
                        "for very large inputs")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="relviz", description="Visual explorer for relation models.")
    parser.add_argument("--version", action="version", version=f"relviz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("gui", help="open the application (the default command)")
    p.add_argument("paths", nargs="*", help="images, videos, folders, checkpoints or traces to open")
    p.add_argument("--model", help="zoo model to load")
    p.add_argument("--device", help="auto, cpu, mps, cuda or cuda:N")
    p.add_argument("--screenshot", help="save a PNG of the window once the first result is drawn, then exit")
    _add_max_pixels(p)

    p = sub.add_parser("models", help="list the model zoo")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("trace", help="run a model on an input and save its trace (.npz)")
    _add_model_arguments(p, required_input=True)
    p.add_argument("--out", required=True, help="trace file to write (.npz)")
    p.add_argument("--labels", metavar="FILE", help="class names, one per line, for a classifier whose checkpoint "
                   "names none")
    _add_max_pixels(p)

    p = sub.add_parser("export", help="draw a figure (PNG/SVG/PDF) from a trace or a model run")
    p.add_argument("--trace", help="trace file (.npz) written by `relviz trace`")
    p.add_argument("--recipe", help="regenerate the figure described by this recipe JSON (in place, or at --out)")
    p.add_argument("--help-views", action="store_true", help="list the views and exit")
    _add_model_arguments(p, required_input=False)
    _add_view_arguments(p)
    p.add_argument("--out", help="figure file: .png, .svg or .pdf")
    p.add_argument("--dpi", type=int, default=300)
    _add_max_pixels(p)

    p = sub.add_parser("eval", help="evaluate a bundled demo model on fresh synthetic data")
    p.add_argument("--model", required=True)
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--n", type=int, default=200)

    from relviz.batch.command import add_parser as add_batch_parser

    add_batch_parser(sub, _add_max_pixels)
    return parser


# -- options as recipe fields ---------------------------------------------------------------------


def _shown(value: Any, limit: int = 60) -> str:
    """A value as the user typed it, on one line and short."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int | float) for v in value):
        text = ",".join(_shown(v) for v in value)
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, default=str)
    text = re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _say(text: str) -> None:
    """Print to stdout; a file name that is not valid text in its encoding is shown escaped."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    print(text.encode(encoding, "backslashreplace").decode(encoding, "replace"))


def _one_line(message: str) -> str:
    return re.sub(r"\s*[\r\n]+\s*", " ", str(message)).strip()


_OPTION_NAMES = {  # recipe field -> the option it comes from
    ("dpi",): "--dpi", ("view",): "--view", ("output",): "--out", ("trace",): "--trace",
    ("options", "object"): "--object", ("options", "point"): "--point", ("options", "points"): "--point",
    ("options", "objects"): "--object",
    ("options", "frame"): "--frame", ("options", "layer"): "--layer", ("options", "head"): "--head",
    ("options", "term"): "--term", ("options", "module"): "--module", ("options", "cmap"): "--cmap",
    ("options", "preset"): "--preset",
    ("options", "width"): "--width", ("options", "height"): "--height", ("options", "top_k"): "--top-k",
    ("options", "extra"): "--set", ("options", "colorbar"): "--no-colorbar",
    ("options", "shared_range"): "--no-shared-range",
    ("source", "model"): "--model", ("source", "weights"): "--weights", ("source", "family"): "--family",
    ("source", "input"): "--input", ("source", "device"): "--device", ("source", "precision"): "--precision",
    ("source", "resize"): "--resize", ("source", "threshold"): "--threshold", ("source", "frame"): "--frame",
    ("source", "clip_length"): "--clip-length", ("source", "stride"): "--stride",
    ("source", "overrides"): "--config", ("source", "seed"): "--seed",
}


def _field_names(args: argparse.Namespace | None = None):
    """How errors name recipe fields on the command line (the schema is imported when options are checked)."""
    from relviz.export import FieldNames

    heads_given = getattr(args, "heads", None) is not None

    class OptionNames(FieldNames):
        """Errors name the command-line option a recipe field came from, with the value typed."""

        def name(self, loc: tuple[Any, ...]) -> str:
            loc = tuple(loc)
            if loc[:2] == ("source", "overrides") and len(loc) > 2:
                key = loc[2]
                if key == "nheads" and heads_given:
                    return "--heads"
                return f"--config {key}"  # --dilation itself cannot be wrong
            if loc[:2] == ("options", "extra") and len(loc) > 2:
                return f"--set {loc[2]}"
            return _OPTION_NAMES.get(loc[:2]) or _OPTION_NAMES.get(loc[:1]) or super().name(loc)

        def subject(self, loc: tuple[Any, ...], value: Any) -> str:
            name = self.name(loc)
            if name.startswith(("--config ", "--set ")):
                return f"{name}={_shown(value)}"
            if name == "--point" and isinstance(value, list) and value and isinstance(value[0], list | tuple):
                return f"--point (given {len(value)} times)"
            if name in ("--no-colorbar", "--no-shared-range") or value is None:
                return name
            shown = _shown(value) if value != "" else '""'
            return f"{name} {shown}"

    return OptionNames()


def _source_data(args: argparse.Namespace) -> dict[str, Any]:
    """The model and input part of a recipe (also what `trace` runs), as typed."""
    overrides = dict(args.config)
    if args.heads is not None:
        overrides["nheads"] = args.heads
    if args.dilation:
        overrides["dilation"] = True
    return {
        "model": args.model, "weights": args.weights, "family": args.family, "input": args.input,
        "device": args.device, "precision": args.precision, "resize": args.resize,
        "threshold": args.threshold, "frame": args.frame, "clip_length": args.clip_length,
        "stride": args.stride, "overrides": overrides, "seed": args.seed,
    }


def _options_data(args: argparse.Namespace) -> dict[str, Any]:
    points = [list(p) for p in args.point or []]
    return {
        "object": args.object[0] if args.object else None, "objects": list(args.object or []),
        "point": points[0] if points else None, "points": points, "frame": args.frame,
        "layer": args.layer, "head": str(args.head), "term": args.term, "module": args.module,
        "colorbar": not args.no_colorbar, "shared_range": not args.no_shared_range, "cmap": args.cmap,
        "width": args.width, "height": args.height, "top_k": args.top_k, "extra": dict(args.set),
        "preset": args.preset,
    }


def _absolute(path: str | None) -> str | None:
    if path is None or path.lower() == "none":
        return path
    from relviz.core.atomic import absolute

    return str(absolute(path))


def _resolved_source(source):
    return source.model_copy(update={"input": _absolute(source.input), "weights": _absolute(source.weights)})


# -- commands -------------------------------------------------------------------------------------


def cmd_models(args: argparse.Namespace) -> int:
    from relviz.zoo.catalog import model_rows  # plain data: listing the zoo imports no torch

    rows = model_rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max((len(r["name"]) for r in rows), default=4)
    print(f"{'name':<{width}}  {'family':<10}  {'params':>8}  weights")
    for r in rows:
        weights = r["weights"] or "— (use --weights PATH or --weights none)"
        print(f"{r['name']:<{width}}  {r['family']:<10}  {r['params'] / 1e6:>7.1f}M  {weights}")
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    from relviz.core.atomic import check_writable, refuse_overwriting
    from relviz.export import check_text, make_source, run_source

    source = _resolved_source(make_source(_source_data(args), _field_names(args)))
    out = check_writable(check_text(args.out, "--out"))
    weights = source.weights if source.weights and source.weights.lower() != "none" else None
    refuse_overwriting({"--out": out}, {"the input": source.input, "the checkpoint": weights,
                                        "the label file": args.labels})
    labels = None
    if args.labels:
        from relviz.core.class_names import read_label_file

        labels = read_label_file(args.labels)  # a bad file is refused before the model runs
    trace = run_source(source)
    if labels is not None:
        from relviz.core.class_names import apply_labels
        from relviz.core.files import shown

        if not apply_labels(trace.meta, labels, shown(args.labels)):
            print(f"relviz: note: the checkpoint names its classes; {shown(args.labels)} was not used",
                  file=sys.stderr)
    trace.save(out)
    n = len(trace.arrays.get("detections/scores", ()))
    _say(f"wrote {out} ({trace.family}, {n} detections, {len(trace.names())} tensors)")
    return 0


def _recipe_from_options(args: argparse.Namespace):
    from relviz.export import make_recipe

    if not args.out:
        raise BadInputError("give --out FIGURE.png|svg|pdf")
    if not args.view:
        raise BadInputError("give --view VIEW (see `relviz export --help-views`)")
    data: dict[str, Any] = {"relviz": __version__, "view": args.view[0], "options": _options_data(args),
                            "dpi": args.dpi, "output": args.out}
    if args.trace:
        data["trace"] = args.trace
    else:
        data["source"] = _source_data(args)
    recipe = make_recipe(data, _field_names(args))
    update: dict[str, Any] = {"output": _absolute(recipe.output), "trace": _absolute(recipe.trace)}
    if recipe.source is not None:
        update["source"] = _resolved_source(recipe.source)
    return recipe.model_copy(update=update)


def cmd_export(args: argparse.Namespace) -> int:
    from relviz.export import export_figure, export_figures, make_recipe, replay_recipe

    if args.help_views:
        from relviz.render.views import views

        for name, view in sorted(views().items()):
            print(f"{name:<20} {'/'.join(view.families):<22} {view.help}")
        return 0
    if args.recipe:
        from relviz.export import check_text

        check_text(args.recipe, "--recipe")
        if args.out is not None:
            check_text(args.out, "--out")
        figure, recipe_file = replay_recipe(args.recipe, output=args.out)  # no --out: in place
    else:
        names = _field_names(args)
        recipe = _recipe_from_options(args)
        for view in args.view[1:]:  # every view's name checked as the first one was
            make_recipe({**recipe.model_dump(mode="json", exclude_none=True), "view": view}, names)
        if len(args.view) == 1 and len(recipe.options.objects) <= 1:
            figure, recipe_file = export_figure(recipe, names=names)
        else:
            for figure, recipe_file in export_figures(recipe, args.view, names=names):
                _say(f"wrote {figure} and {recipe_file.name}")
            return 0
    _say(f"wrote {figure} and {recipe_file.name}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from relviz.core.limits import MAX_SEED

    if not 1 <= args.n <= 100_000:
        raise BadInputError(f"--n {args.n} is out of range (1..100000)")
    if not 0 <= args.seed <= MAX_SEED:
        raise BadInputError(f"--seed {args.seed} is out of range (0..{MAX_SEED})")
    try:
        from relviz.train.evaluate import evaluate_model
    except ImportError:
        raise BadInputError("evaluation needs the demo training package (relviz.train), which is not "
                            "installed") from None
    metric, value = evaluate_model(args.model, seed=args.seed, n=args.n)
    print(f"{metric} {value:.4f}")
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from relviz.batch.command import run

    return run(args)


def cmd_gui(args: argparse.Namespace) -> int:
    try:
        from relviz.app.main import run_app
    except ImportError as exc:
        raise BadInputError(f"the application cannot start: {exc}") from None
    return run_app(list(args.paths), screenshot=args.screenshot, model=args.model, device=args.device)


# -- errors that are not the user's ---------------------------------------------------------------

def _apply_max_pixels(args: argparse.Namespace) -> None:
    """``--max-pixels N``: the image limit of relviz.core.limits, through its environment variable."""
    from relviz.core.limits import MAX_PIXELS_OPTION

    value = getattr(args, "max_pixels", None)
    if value is None:
        return
    if not 1 <= value <= MAX_PIXELS_OPTION:
        raise BadInputError(f"--max-pixels {value} is out of range (1..{MAX_PIXELS_OPTION})")
    os.environ["RELVIZ_MAX_PIXELS"] = str(value)


def _out_of_memory(exc: BaseException) -> str | None:
    """The sentence for memory exhaustion (host or GPU), else None."""
    if isinstance(exc, MemoryError):
        return ("ran out of memory: the input or the settings need more than this machine has; try a smaller "
                "input, --resize or figure size")
    torch = sys.modules.get("torch")
    oom = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)
    if (oom is not None and isinstance(exc, oom)) or (
            isinstance(exc, RuntimeError) and "CUDA out of memory" in str(exc)):
        return "the GPU ran out of memory; try --device cpu, a smaller --resize or --precision fp16"
    return None


def _internal_error(exc: BaseException, argv: list[str]) -> int:
    from relviz.core.reports import write_report

    lines = str(exc).strip().splitlines()
    first = _shown(lines[0], 200) if lines else "(no message)"
    try:
        where = f"the full report is in {write_report(exc, f'relviz {argv[0]}' if argv else '', argv)}"
    except Exception as report_exc:  # noqa: BLE001 — the report is a courtesy; the line must still come out
        where = f"no report could be written ({type(report_exc).__name__})"
    print(f"relviz: internal error ({type(exc).__name__}): {first}; {where}", file=sys.stderr)
    return 1


def _runs_models(args: argparse.Namespace) -> bool:
    """Whether the command may run a model (and so import torch): all but `models` and figures from a trace."""
    return args.command != "models" and not getattr(args, "trace", None) and not getattr(args, "help_views", False)


def _run(args: argparse.Namespace) -> int:
    handlers = {"gui": cmd_gui, "models": cmd_models, "trace": cmd_trace, "export": cmd_export,
                "eval": cmd_eval, "batch": cmd_batch}
    if _runs_models(args):
        # before torch is imported: big tensors stay in the heap between forwards instead of being
        # unmapped and page-faulted back each time (benchmarks/allocator.py)
        from relviz.core.allocator import keep_freed_memory

        keep_freed_memory()
    _apply_max_pixels(args)
    return handlers[args.command](args)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv = ["gui", *argv]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help, --version, or a refusal already printed as one line
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    saved_max_pixels = os.environ.get("RELVIZ_MAX_PIXELS")
    try:
        return _run(args)
    except RelvizError as exc:
        print(f"relviz: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("relviz: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 — a bug: one line here, the traceback in a report file
        sentence = _out_of_memory(exc)
        if sentence is not None:
            print(f"relviz: error: {sentence}", file=sys.stderr)
            return 2
        return _internal_error(exc, argv)
    finally:
        if saved_max_pixels is None:
            os.environ.pop("RELVIZ_MAX_PIXELS", None)
        else:
            os.environ["RELVIZ_MAX_PIXELS"] = saved_max_pixels


if __name__ == "__main__":
    sys.exit(main())
