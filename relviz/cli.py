"""The ``relviz`` command: the application by default, and headless ``models``, ``trace``, ``export``
and ``eval`` commands.

Exit codes: 0 on success; 2 on bad input, with one sentence on stderr (never a traceback); 130 when
interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from relviz import __version__
from relviz.core.errors import BadInputError, RelvizError

COMMANDS = ("gui", "models", "trace", "export", "eval")


# -- argument helpers -----------------------------------------------------------------------------


def _point(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y in image pixels, got {text!r}") from None
    return x, y


def _key_value(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        parsed: Any = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip(), parsed


def _add_model_arguments(p: argparse.ArgumentParser, required_input: bool) -> None:
    g = p.add_argument_group("model and input")
    g.add_argument("--model", help="zoo name (see `relviz models`)")
    g.add_argument("--weights", help="checkpoint file (.pth/.pt/.safetensors), or 'none' for seeded random "
                   "weights of --model")
    g.add_argument("--family", help="model family of --weights when its keys are ambiguous")
    g.add_argument("--input", required=required_input, help="image or video file")
    g.add_argument("--device", default="auto", help="auto (cuda → mps → cpu), cpu, mps, cuda or cuda:N")
    g.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"))
    g.add_argument("--resize", type=int, help="shorter side in pixels (0 = no resize; default: the model's)")
    g.add_argument("--threshold", type=float, default=0.7, help="score threshold for detections")
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
    g.add_argument("--view", help="figure view (see --help-views)")
    g.add_argument("--object", type=int, help="selected detection index")
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
    g.add_argument("--width", type=float, help="figure width in inches")
    g.add_argument("--height", type=float, help="figure height in inches")
    g.add_argument("--set", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="view-specific setting (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relviz", description="Visual explorer for relation models.")
    parser.add_argument("--version", action="version", version=f"relviz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("gui", help="open the application (the default command)")
    p.add_argument("paths", nargs="*", help="images, videos, folders, checkpoints or traces to open")
    p.add_argument("--model", help="zoo model to load")
    p.add_argument("--device", help="auto, cpu, mps, cuda or cuda:N")
    p.add_argument("--screenshot", help="save a PNG of the window once the first result is drawn, then exit")

    p = sub.add_parser("models", help="list the model zoo")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("trace", help="run a model on an input and save its trace (.npz)")
    _add_model_arguments(p, required_input=True)
    p.add_argument("--out", required=True, help="trace file to write (.npz)")

    p = sub.add_parser("export", help="draw a figure (PNG/SVG/PDF) from a trace or a model run")
    p.add_argument("--trace", help="trace file (.npz) written by `relviz trace`")
    p.add_argument("--recipe", help="regenerate the figure described by this recipe JSON")
    p.add_argument("--help-views", action="store_true", help="list the views and exit")
    _add_model_arguments(p, required_input=False)
    _add_view_arguments(p)
    p.add_argument("--out", help="figure file: .png, .svg or .pdf")
    p.add_argument("--dpi", type=int, default=300)

    p = sub.add_parser("eval", help="evaluate a bundled demo model on fresh synthetic data")
    p.add_argument("--model", required=True)
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--n", type=int, default=200)
    return parser


# -- commands -------------------------------------------------------------------------------------


def cmd_models(args: argparse.Namespace) -> int:
    from relviz import zoo

    rows = []
    for name, entry in sorted(zoo.models().items()):
        family = zoo.get_family(entry.family)
        config = {**family.default_config(), **entry.config}
        rows.append({
            "name": name,
            "family": entry.family,
            "params": zoo.count_parameters(family, config),
            "weights": entry.weights if entry.has_weights else None,
            "ready": entry.has_weights,
            "description": entry.description,
        })
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max((len(r["name"]) for r in rows), default=4)
    print(f"{'name':<{width}}  {'family':<10}  {'params':>8}  weights")
    for r in rows:
        weights = r["weights"] or "— (use --weights PATH or --weights none)"
        print(f"{r['name']:<{width}}  {r['family']:<10}  {r['params'] / 1e6:>7.1f}M  {weights}")
    return 0


def _model_source(args: argparse.Namespace) -> dict[str, Any]:
    """The model and input part of a recipe (also what `trace` runs)."""
    overrides = dict(args.config)
    if args.heads is not None:
        overrides["nheads"] = args.heads
    if args.dilation:
        overrides["dilation"] = True
    weights = args.weights
    if weights and weights.lower() != "none":
        weights = str(Path(weights).resolve())
    return {
        "model": args.model, "weights": weights, "family": args.family,
        "input": str(Path(args.input).resolve()) if args.input else None,
        "device": args.device, "precision": args.precision, "resize": args.resize,
        "threshold": args.threshold, "frame": args.frame, "clip_length": args.clip_length,
        "stride": args.stride, "overrides": overrides, "seed": args.seed,
    }


def run_source(source: dict[str, Any]):
    """Load the model a source names and run it on its input; returns the trace."""
    from relviz import zoo

    if not source.get("model") and not source.get("weights"):
        raise BadInputError("give --model NAME or --weights PATH (or --trace TRACE.npz)")
    if not source.get("input"):
        raise BadInputError("give --input IMAGE|VIDEO")
    loaded = zoo.load_model(source.get("model"), source.get("weights"), source.get("family"),
                            source.get("device", "auto"), source.get("precision", "fp32"),
                            source.get("overrides"), seed=source.get("seed", 0))
    options = zoo.RunOptions(threshold=source.get("threshold", 0.7), resize=source.get("resize"),
                             frame=source.get("frame", 0), clip_length=source.get("clip_length"),
                             stride=source.get("stride", 1))
    return zoo.run_model(loaded, source["input"], options)


def cmd_trace(args: argparse.Namespace) -> int:
    from relviz.core.atomic import check_writable

    out = check_writable(args.out)
    trace = run_source(_model_source(args))
    trace.save(out)
    n = len(trace.arrays.get("detections/scores", ()))
    print(f"wrote {out} ({trace.family}, {n} detections, {len(trace.names())} tensors)")
    return 0


def _view_options(args: argparse.Namespace):
    from relviz.render.views import ViewOptions

    points = list(args.point or [])
    return ViewOptions(
        object=args.object, point=points[0] if points else None, points=points, frame=args.frame,
        layer=args.layer, head=str(args.head), term=args.term, module=args.module,
        colorbar=not args.no_colorbar, shared_range=not args.no_shared_range, cmap=args.cmap,
        width=args.width, height=args.height, top_k=args.top_k, extra=dict(args.set),
    )


def recipe_path(figure: str | Path) -> Path:
    figure = Path(figure)
    return figure.with_name(figure.stem + ".recipe.json")


def export_figure(recipe: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    """Draw the figure a recipe describes into ``out`` and write the recipe beside it."""
    from relviz.core.atomic import check_writable
    from relviz.core.checkpoint import sha256_of
    from relviz.core.trace import Trace
    from relviz.render.figure import figure_format, save_figure, write_json
    from relviz.render.views import ViewOptions, render_view

    figure_format(out)
    check_writable(out)
    if not recipe.get("view"):
        raise BadInputError("give --view (see `relviz export --help-views`)")
    if recipe.get("trace"):
        trace = Trace.load(recipe["trace"])
        recipe["trace_sha256"] = sha256_of(recipe["trace"])
    else:
        trace = run_source(recipe["source"])
        recipe["model"] = trace.meta.get("model", {})
    fig = render_view(trace, recipe["view"], ViewOptions.from_json(recipe["options"]))
    path = save_figure(fig, out, dpi=int(recipe.get("dpi", 300)))
    recipe["output"] = str(Path(out).resolve())
    recipe["input"] = trace.meta.get("input", {})
    return path, write_json(recipe_path(out), recipe)


def cmd_export(args: argparse.Namespace) -> int:
    from relviz.render.views import views

    if args.help_views:
        for name, view in sorted(views().items()):
            print(f"{name:<20} {'/'.join(view.families):<22} {view.help}")
        return 0
    if args.recipe:
        try:
            recipe = json.loads(Path(args.recipe).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise BadInputError(f"cannot read recipe {args.recipe}: {exc}") from None
        out = args.out or recipe.get("output")
        if not out:
            raise BadInputError("the recipe names no output; give --out")
    else:
        if not args.out:
            raise BadInputError("give --out FIGURE.png|svg|pdf")
        out = args.out
        recipe = {"relviz": __version__, "view": args.view, "options": _view_options(args).to_json(),
                  "dpi": args.dpi}
        if args.trace:
            recipe["trace"] = str(Path(args.trace).resolve())
        else:
            recipe["source"] = _model_source(args)
    figure, recipe_file = export_figure(recipe, out)
    print(f"wrote {figure} and {recipe_file.name}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    try:
        from relviz.train.evaluate import evaluate_model
    except ImportError:
        raise BadInputError("evaluation needs the demo training package (relviz.train), which is not "
                            "installed") from None
    metric, value = evaluate_model(args.model, seed=args.seed, n=args.n)
    print(f"{metric} {value:.4f}")
    return 0


def cmd_gui(args: argparse.Namespace) -> int:
    try:
        from relviz.app.main import run_app
    except ImportError as exc:
        raise BadInputError(f"the application cannot start: {exc}") from None
    return run_app(list(args.paths), screenshot=args.screenshot, model=args.model, device=args.device)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv = ["gui", *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {"gui": cmd_gui, "models": cmd_models, "trace": cmd_trace, "export": cmd_export,
                "eval": cmd_eval}
    try:
        return handlers[args.command](args)
    except RelvizError as exc:
        print(f"relviz: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("relviz: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
