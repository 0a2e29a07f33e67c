"""Export for papers: the recipe, its one schema, and figure export, shared by the command line and the app.

A *recipe* is the small JSON file written beside every figure (view, options, DPI, the trace or the model
and input it came from, the output), from which ``relviz export --recipe`` redraws the same figure.  One
pydantic schema, :class:`Recipe`, states the rules of every field (types, ranges from
:mod:`relviz.core.limits`, finite numbers, known colormaps); the command line builds a recipe from its
options and validates it with the same schema, so an option and its recipe field obey the same rules.
An error names the field as the user wrote it: :class:`FieldNames` says ``recipe field options.width``;
the command line passes its own names (``--width 1e+06``).

Drawing from a saved trace never imports torch: the zoo is imported only when a model is run.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from relviz import __version__
from relviz.core import atomic, limits
from relviz.core.atomic import atomic_paths, check_writable, refuse_overwriting
from relviz.core.errors import BadInputError

Progress = Callable[[int, str], None]
RECIPE_SUFFIX = ".recipe.json"


# -- field rules ----------------------------------------------------------------------------------


class FieldError(ValueError):
    """A broken rule: ``fragment`` ends the sentence (``is out of range (30..1200)``); ``key`` names the
    entry of a settings dict it is about, with its ``value``."""

    def __init__(self, fragment: str, key: str | None = None, value: Any = None):
        super().__init__(fragment)
        self.fragment, self.key, self.value = fragment, key, value


def _fail(fragment: str, key: str | None = None, value: Any = None) -> FieldError:
    return FieldError(fragment, key, value)


def _in_range(lo: float, hi: float, shown: str | None = None) -> AfterValidator:
    def check(value):
        if not lo <= value <= hi:
            raise _fail(f"is out of range ({shown or f'{lo}..{hi}'})")
        return value

    return AfterValidator(check)


def _text(value: str, max_chars: int, path: bool = False) -> str:
    """Non-empty text of at most ``max_chars``; a ``path`` may hold the bytes of a non-UTF-8 file name."""
    if not value:
        raise _fail("must not be empty")
    if len(value) > max_chars:
        raise _fail(f"is too long (at most {max_chars} characters)")
    if "\x00" in value:
        raise _fail("contains a NUL character")
    try:
        os.fsencode(value) if path else value.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail("is not valid text (it holds a lone surrogate)") from None
    return value


def check_text(value: str, subject: str) -> str:
    """A path or name given outside the schema (``trace --out``), checked by the same rule."""
    try:
        return _text(value, 4096, path=True)
    except FieldError as exc:
        raise BadInputError(f"{subject} {exc.fragment}") from None


def _name(value: str) -> str:
    _text(value, 100)
    if any(ord(c) < 32 for c in value):
        raise _fail("contains a control character")
    return value


def _index_or_name(value: Any) -> Any:
    """Layers and heads may be given as an integer; they are kept as text, as the renderer reads them."""
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > limits.MAX_INDEX:
            raise _fail(f"is out of range (at most {limits.MAX_INDEX})")
        return str(value)
    return value


def _head(value: str) -> str:
    if value.strip().lower() in ("mean", "avg", "m"):
        return value
    try:
        index = int(value)
    except ValueError:
        raise _fail(f"must be 'mean' or a head index 0..{limits.MAX_HEADS - 1}") from None
    if not 0 <= index < limits.MAX_HEADS:
        raise _fail(f"is out of range (0..{limits.MAX_HEADS - 1}, or mean)")
    return value


def _point(value: Any) -> list[float]:
    ok = isinstance(value, list | tuple) and len(value) == 2
    if not ok or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise _fail("must be two numbers X,Y in image pixels")
    x, y = (float(v) for v in value)
    if not (math.isfinite(x) and math.isfinite(y)):
        raise _fail("must be two finite numbers X,Y in image pixels")
    if not (0 <= x <= limits.MAX_COORDINATE and 0 <= y <= limits.MAX_COORDINATE):
        raise _fail(f"is outside any image (X and Y are pixels, 0..{limits.MAX_COORDINATE:.0f})")
    return [x, y]


def _cmap(value: str) -> str:
    from matplotlib import colormaps

    if value not in colormaps:
        raise _fail("is not a matplotlib colormap (e.g. inferno, viridis, magma, cividis, gray)")
    return value


def _device(value: str) -> str:
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d{1,2})?", value):
        raise _fail("must be auto, cpu, mps, cuda or cuda:N")
    return value


def _resize(value: int) -> int:
    if value != 0 and not limits.MIN_RESIZE <= value <= limits.MAX_RESIZE:
        raise _fail(f"is out of range (0 keeps the size, else {limits.MIN_RESIZE}..{limits.MAX_RESIZE})")
    return value


def _version(value: str) -> str:
    ours = __version__.split(".")[:2]
    match = re.fullmatch(r"(\d+)\.(\d+)(\.\d+)?([.+-]?[A-Za-z0-9.+-]*)?", value)
    if match is None:
        raise _fail("must be the relviz version that wrote the recipe, such as " + repr(__version__))
    if [match.group(1), match.group(2)] != ours:
        raise _fail(f"says {value!r}, but this is relviz {__version__}, which reads recipes of "
                    f"{'.'.join(ours)}.x")
    return value


_SETTING_RULE = (f"must be a number, a string, true/false or a flat list of at most {limits.MAX_SETTING_ITEMS} "
                 "of them")


def _scalar_ok(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return abs(value) <= 2**31 - 1
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str) and len(value) <= 256 and "\x00" not in value


def _setting(value: Any) -> Any:
    """A ``--config``/``--set`` value: the families and views check its meaning, this only its form."""
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail("must be a finite number")
    if isinstance(value, list):
        if len(value) > limits.MAX_SETTING_ITEMS or not all(
            _scalar_ok(v) and not isinstance(v, list) for v in value
        ):
            raise _fail(_SETTING_RULE)
        return value
    if not _scalar_ok(value):
        raise _fail(_SETTING_RULE)
    return value


def _settings(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > limits.MAX_SETTINGS:
        raise _fail(f"has too many entries (at most {limits.MAX_SETTINGS})")
    for key in value:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}", key):
            raise _fail("must use names of letters, digits and _ (at most 64 characters)", key=key, value=value[key])
    return value


def _overrides(value: dict[str, Any]) -> dict[str, Any]:
    """Architecture settings; ``nheads`` (``--heads``) and ``dilation`` have known forms."""
    heads = value.get("nheads")
    if heads is not None:
        if not isinstance(heads, int) or isinstance(heads, bool):
            raise _fail("must be an integer", key="nheads", value=heads)
        if not 1 <= heads <= limits.MAX_HEADS:
            raise _fail(f"is out of range (1..{limits.MAX_HEADS})", key="nheads", value=heads)
    if value.get("dilation") is not None and not isinstance(value["dilation"], bool):
        raise _fail("must be true or false", key="dilation", value=value["dilation"])
    return value


Name = Annotated[str, AfterValidator(_name)]
PathText = Annotated[str, AfterValidator(lambda v: _text(v, 4096, path=True))]
Index = Annotated[int, _in_range(0, limits.MAX_INDEX)]
Point = Annotated[list[float], BeforeValidator(_point)]
Inches = Annotated[float, _in_range(limits.MIN_INCHES, limits.MAX_INCHES)]
Setting = Annotated[Any, AfterValidator(_setting)]
Settings = Annotated[dict[str, Setting], AfterValidator(_settings)]


class Options(BaseModel):
    """What a figure shows and how: the selection and styling (``relviz.render.views.ViewOptions``)."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

    object: Index | None = None
    objects: list[Index] = Field(default_factory=list, max_length=limits.MAX_EXPORT_FIGURES)
    point: Point | None = None
    points: list[Point] = Field(default_factory=list, max_length=limits.MAX_POINTS)
    frame: Index | None = None
    layer: Annotated[Name, BeforeValidator(_index_or_name)] | None = None
    head: Annotated[Name, BeforeValidator(_index_or_name), AfterValidator(_head)] = "mean"
    term: Literal["weight", "geometry", "appearance"] = "weight"
    module: Name | None = None
    colorbar: bool = True
    shared_range: bool = True
    cmap: Annotated[Name, AfterValidator(_cmap)] = "inferno"
    width: Inches | None = None
    height: Inches | None = None
    top_k: Annotated[int, _in_range(1, limits.MAX_TOP_K)] = 20
    extra: Settings = Field(default_factory=dict)
    preset: Literal["column", "page"] = "page"  # journal size and type scale (relviz.render.style.PRESETS)


class Source(BaseModel):
    """A model and the input it runs on (what ``relviz trace`` runs; a recipe without a trace)."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

    model: Name | None = None
    weights: PathText | None = None
    family: Name | None = None
    input: PathText | None = None
    device: Annotated[Name, AfterValidator(_device)] = "auto"
    precision: Literal["fp32", "fp16", "bf16"] = "fp32"
    resize: Annotated[int, AfterValidator(_resize)] | None = None
    threshold: Annotated[float, _in_range(0.0, 1.0, "0..1")] | None = None  # None: the model's default
    frame: Index = 0
    clip_length: Annotated[int, _in_range(1, limits.MAX_CLIP_LENGTH)] | None = None
    stride: Annotated[int, _in_range(1, limits.MAX_CLIP_STRIDE)] = 1
    overrides: Annotated[Settings, AfterValidator(_overrides)] = Field(default_factory=dict)
    seed: Annotated[int, _in_range(0, limits.MAX_SEED)] = 0


class Recipe(BaseModel):
    """Everything ``relviz export --recipe`` needs to draw a figure again, and what it was drawn from."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

    relviz: Annotated[str, AfterValidator(_version)]
    view: Name
    options: Options = Field(default_factory=Options)
    dpi: Annotated[int, _in_range(limits.MIN_DPI, limits.MAX_DPI)] = 300
    trace: PathText | None = None
    trace_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    source: Source | None = None
    output: PathText | None = None
    # written for the reader: the model that ran and the input's identity (not used to redraw)
    model: dict[str, Any] | None = None
    input: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_origin(self) -> Recipe:
        if self.trace is not None and self.source is not None:
            raise _fail("names both a trace and a source (model and input); keep one")
        if self.trace is None and self.source is None:
            raise _fail("names neither a trace nor a source (model and input)")
        return self

    def to_json(self) -> dict[str, Any]:
        """The recipe file's content: the fields that are set (``None`` at the top level left out)."""
        data = self.model_dump(mode="json")
        return {k: v for k, v in data.items() if v is not None}


# -- error sentences ------------------------------------------------------------------------------

_TYPE_FRAGMENTS = {
    "missing": "is missing",
    "extra_forbidden": "is not a field relviz knows (check its spelling)",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "list_type": "must be a list",
    "string_pattern_mismatch": "is not in the expected form",
}


class FieldNames:
    """How an error names a field: ``recipe field options.width`` (the command line overrides this)."""

    def name(self, loc: tuple[Any, ...]) -> str:
        if not loc:
            return "the recipe"
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        return f"recipe field {path}"

    def subject(self, loc: tuple[Any, ...], value: Any) -> str:
        """The start of the sentence: the field and, where the user typed it, the value."""
        return self.name(loc)


def _fragment(error: dict[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if isinstance(ctx.get("error"), FieldError):
        return ctx["error"].fragment
    if kind == "literal_error":
        return f"must be {ctx.get('expected', 'one of the listed values')}"
    if kind == "too_long":
        return f"has too many items (at most {ctx.get('max_length')})"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} items"
    return _TYPE_FRAGMENTS.get(kind, f"is not valid ({error.get('msg', kind)})")


def error_sentence(exc: ValidationError, names: FieldNames | None = None, prefix: tuple[Any, ...] = ()) -> str:
    """One sentence for the first problem a validation found."""
    names = names or FieldNames()
    error = exc.errors()[0]
    loc = (*prefix, *(p for p in error["loc"] if p not in ("function-after", "function-before")))
    value = error.get("input")
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, FieldError) and cause.key is not None:  # one entry of a settings dict
        loc = (*loc, cause.key)
        value = cause.value if cause.value is not None else (value.get(cause.key) if isinstance(value, dict) else None)
    return f"{names.subject(loc, value)} {_fragment(error)}"


def _depth_problem(data: Any) -> tuple[Any, ...] | None:
    """Where ``data`` nests more than ``MAX_RECIPE_DEPTH`` levels of lists/objects, if anywhere."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
    while stack:
        item, loc = stack.pop()
        if len(loc) > limits.MAX_RECIPE_DEPTH:
            return tuple(p for p in loc[:3] if not isinstance(p, int)) or loc[:1]
        if isinstance(item, dict):
            stack.extend((v, (*loc, str(k))) for k, v in item.items())
        elif isinstance(item, list | tuple):
            stack.extend((v, (*loc, i)) for i, v in enumerate(item))
    return None


def _plain(data: Any) -> Any:
    """JSON's own types (tuples become lists, numpy scalars Python numbers), as a recipe file holds."""

    def default(obj: Any) -> Any:
        if hasattr(obj, "item"):
            return obj.item()
        if isinstance(obj, Path):
            return str(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON")

    try:
        return json.loads(json.dumps(data, default=default))
    except RecursionError:
        raise BadInputError("the recipe is nested too deeply") from None


def _check_depth(data: Any, names: FieldNames | None, prefix: tuple[Any, ...] = ()) -> None:
    where = _depth_problem(data)
    if where is not None:
        raise BadInputError(f"{(names or FieldNames()).name((*prefix, *where))} is nested too deeply "
                            f"(more than {limits.MAX_RECIPE_DEPTH} levels of lists and objects)")


def make_recipe(data: dict[str, Any], names: FieldNames | None = None) -> Recipe:
    """Validate a recipe (from a file, the command line's options or the app's choices)."""
    data = _plain(data)
    _check_depth(data, names)
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise BadInputError(error_sentence(exc, names)) from None


def make_source(data: dict[str, Any], names: FieldNames | None = None) -> Source:
    """Validate a model-and-input source alone (``relviz trace``); errors name it as in a recipe."""
    data = _plain(data)
    _check_depth(data, names, ("source",))
    try:
        return Source.model_validate(data)
    except ValidationError as exc:
        raise BadInputError(error_sentence(exc, names, prefix=("source",))) from None


def recipe_path(figure: str | Path) -> Path:
    """Where the recipe of ``figure`` goes: ``FIG.recipe.json`` beside ``FIG.png``.

    A figure name too long for that (file names have at most 255 bytes) gets its stem shortened and
    a hash of the whole name: ``FI~1a2b3c4d.recipe.json``.
    """
    figure = Path(figure)
    name = figure.stem + RECIPE_SUFFIX
    if len(os.fsencode(name)) > atomic.MAX_NAME_BYTES:
        digest = hashlib.sha1(os.fsencode(figure.name)).hexdigest()[:8]
        room = atomic.MAX_NAME_BYTES - len(RECIPE_SUFFIX) - len(digest) - 1
        stem = os.fsencode(figure.stem)[:room].decode("utf-8", "ignore")
        name = f"{stem}~{digest}{RECIPE_SUFFIX}"
    return figure.with_name(name)


# -- recipe files ---------------------------------------------------------------------------------


class _NonFinite(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NonFinite(name)


def load_recipe_json(path: str | Path) -> dict[str, Any]:
    """The JSON object of a recipe file; size, encoding and form checked before and while parsing."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise BadInputError(f"recipe {path} does not exist") from None
    except OSError as exc:
        raise BadInputError(f"cannot read recipe {path}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise BadInputError(f"recipe {path} is a folder, not a JSON file")
    if not stat.S_ISREG(st.st_mode):
        raise BadInputError(f"recipe {path} is not a regular file")
    too_big = f"recipe {path} is larger than {limits.MAX_RECIPE_BYTES:,} bytes; a relviz recipe is a few kB"
    if st.st_size > limits.MAX_RECIPE_BYTES:
        raise BadInputError(too_big)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(limits.MAX_RECIPE_BYTES + 1)
    except OSError as exc:
        raise BadInputError(f"cannot read recipe {path}: {exc.strerror}") from None
    if len(raw) > limits.MAX_RECIPE_BYTES:
        raise BadInputError(too_big)
    if not raw.strip():
        raise BadInputError(f"recipe {path} is empty")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInputError(f"recipe {path} is not a JSON text file (it is not UTF-8)") from None
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except _NonFinite as exc:
        raise BadInputError(f"recipe {path} holds {exc}, which a recipe does not allow (numbers are finite)") from None
    except RecursionError:
        raise BadInputError(f"recipe {path} is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise BadInputError(f"recipe {path} is not valid JSON ({exc.msg} at line {exc.lineno}, "
                            f"column {exc.colno})") from None
    except ValueError:  # e.g. an integer of thousands of digits
        raise BadInputError(f"recipe {path} is not valid JSON (a number is too long)") from None
    if not isinstance(data, dict):
        kind = {list: "a list", str: "a string"}.get(type(data), "a single value")
        raise BadInputError(f"recipe {path} must hold a JSON object {{...}}, not {kind}")
    return data


def _resolved(path: str | None, base: Path) -> str | None:
    if path is None or path.lower() == "none":
        return path
    p = Path(path).expanduser()
    return str(atomic.absolute(p if p.is_absolute() else base / p))


def with_paths_resolved(recipe: Recipe, path: str | Path) -> Recipe:
    """``recipe``, read from the file ``path``, with its relative paths made relative to that file's folder."""
    base = atomic.absolute(Path(path)).parent
    update: dict[str, Any] = {"trace": _resolved(recipe.trace, base), "output": _resolved(recipe.output, base)}
    if recipe.source is not None:
        update["source"] = recipe.source.model_copy(update={
            "input": _resolved(recipe.source.input, base), "weights": _resolved(recipe.source.weights, base)})
    return recipe.model_copy(update=update)


# -- running a model and drawing ------------------------------------------------------------------


class StderrNotes:
    """A :class:`relviz.pipeline.Reporter` for the command line: notes (a GPU that ran out of memory and the
    CPU that took over) as one line each on stderr, ``relviz: warning: …``."""

    def note(self, text: str, level: str = "warning") -> None:
        import sys

        print(f"relviz: {level}: {text}", file=sys.stderr)


def run_source(source: Source | dict[str, Any], report=None):
    """Load the model a source names and run it on its input; returns the trace (imports torch).

    It runs through :mod:`relviz.pipeline`, as the window does: a GPU that runs out of memory while loading
    or running falls back to the CPU (``report``, by default :class:`StderrNotes`, says so), and a trace of
    a 1000-class classifier names its classes.
    """
    from relviz import pipeline

    if not isinstance(source, Source):
        source = make_source(source)
    if not source.model and not source.weights:
        raise BadInputError("give --model NAME or --weights PATH (or --trace TRACE.npz)")
    if not source.input:
        raise BadInputError("give --input IMAGE|VIDEO")
    report = StderrNotes() if report is None else report
    loaded = _load_source_model(source, report)
    run = pipeline.RunChoice(source.threshold, source.resize)
    if (source.frame, source.clip_length, source.stride) == (0, None, 1):
        return pipeline.run_image(report, loaded, source.input, run)
    return _run_video_part(source, loaded, report)


def _load_source_model(source: Source, report):
    """``pipeline.load_model`` for the source's model; architecture settings (``--config``, ``--heads``,
    ``--dilation``) and the seed of random weights, which its choice does not carry, load through the zoo
    with the same fallback to the CPU."""
    from relviz import pipeline

    choice = {"name": source.model, "weights": source.weights or "bundled", "family": source.family,
              "device": source.device, "precision": source.precision}
    if not source.overrides and source.seed == 0:
        return pipeline.load_model(report, choice)
    from relviz import zoo

    kwargs = dict(name=source.model, weights=source.weights, family=source.family, device=source.device,
                  precision=source.precision, overrides=dict(source.overrides), seed=source.seed)
    try:
        return zoo.load_model(**kwargs)
    except Exception as exc:  # noqa: BLE001 — only a GPU's memory exhaustion is retried, on the CPU
        if not pipeline.is_oom(exc) or source.device == "cpu":
            raise
        report.note(f"the GPU ran out of memory loading the model; fell back to the CPU ({exc})")
        return zoo.load_model(**{**kwargs, "device": "cpu", "precision": "fp32"})


def _run_video_part(source: Source, loaded, report):
    """A video from ``--frame`` with ``--clip-length``/``--stride`` (what ``pipeline.run_image`` does not take),
    with the pipeline's fallback to the CPU and class names."""
    from relviz import pipeline, zoo

    options = zoo.RunOptions(threshold=source.threshold, resize=source.resize, frame=source.frame,
                             clip_length=source.clip_length, stride=source.stride)
    try:
        trace = zoo.run_model(loaded, source.input, options)
    except Exception as exc:  # noqa: BLE001
        if not pipeline.is_oom(exc) or loaded.device.type == "cpu":
            raise
        report.note(f"the GPU ran out of memory; fell back to the CPU for {loaded.name}")
        pipeline.move_to_cpu(loaded)
        trace = zoo.run_model(loaded, source.input, options)
    return pipeline.name_classes(trace)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_figure_pixels(width: float, height: float, dpi: int, names: FieldNames | None = None) -> None:
    """Refuse a figure of more than ``MAX_FIGURE_PIXELS`` at its DPI before it is drawn.

    Every format: PDF and SVG embed each heatmap as a raster resampled at the DPI, which costs as much
    memory as the PNG would (a 40 × 40 in PDF at 1200 DPI took 11 GB and five minutes).
    """
    pixels = round(width * dpi) * round(height * dpi)
    if pixels > limits.MAX_FIGURE_PIXELS:
        dpi_name = (names or FieldNames()).name(("dpi",))
        raise BadInputError(f"a {width:g} × {height:g} in figure at {dpi} DPI has {pixels:,} pixels, over the "
                            f"limit of {limits.MAX_FIGURE_PIXELS:,}; lower {dpi_name} or the figure size")


def replay_recipe(path: str | Path, output: str | Path | None = None, *, progress: Progress | None = None
                  ) -> tuple[Path, Path]:
    """``relviz export --recipe``: draw the figure a recipe file describes again.

    Without ``output`` the figure is regenerated in place: drawn to the recipe's own output, and the figure
    and its recipe (this file, when it sits beside the figure) are rewritten together, atomically.  Nothing
    is lost: the recipe was read in full before anything is written and is written back with the same
    fields.  With ``output`` the figure goes there; its recipe must then not land on the recipe being
    replayed (unless ``output`` is the recipe's own output, which is the same regeneration in place).
    """
    as_written = make_recipe(load_recipe_json(path))
    own = with_paths_resolved(as_written, path)
    recipe = own
    if output is not None:
        recipe = own.model_copy(update={"output": str(atomic.absolute(output))})
    in_place = bool(own.output) and bool(recipe.output) and atomic.same_file(recipe.output, own.output)
    if in_place:
        return export_figure(recipe, progress=progress, recorded=as_written)
    return export_figure(recipe, recipe_file=path, progress=progress)


def _inputs_of(recipe: Recipe, recipe_file: str | Path | None) -> dict[str, str | Path | None]:
    source = recipe.source or Source()
    weights = source.weights if source.weights and source.weights.lower() != "none" else None
    return {"the trace it draws": recipe.trace, "the input": source.input, "the checkpoint": weights,
            "the recipe being replayed": recipe_file}


def _clean_info(value: Any) -> Any:
    """Trace metadata copied into the recipe, with non-finite numbers left out (JSON has none)."""
    if isinstance(value, dict):
        return {str(k): _clean_info(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_info(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def export_figure(recipe: Recipe, *, recipe_file: str | Path | None = None, trace=None,
                  names: FieldNames | None = None, progress: Progress | None = None,
                  recorded: Recipe | None = None) -> tuple[Path, Path]:
    """Draw the figure ``recipe`` describes into ``recipe.output`` and write the recipe beside it.

    Everything that can be refused is refused before the trace is read or the model runs: the output's
    format and folder, an output that is one of the inputs, an unknown view, a figure over the pixel limit.
    ``trace`` is the trace when the caller holds it (the app); else it is read or the model is run.
    ``recorded`` is the recipe to write beside the figure when it differs from the one drawn (a recipe
    regenerated in place keeps its paths as its file wrote them).
    The figure and its recipe land together or not at all.
    """
    from relviz.render.views import ViewOptions, render_view

    report = progress or (lambda percent, text: None)
    out = _check_output(recipe, recipe_file, names)

    update: dict[str, Any] = {"output": str(atomic.absolute(out))}
    if recipe.trace is not None:
        if trace is None:
            from relviz.core.trace import Trace

            report(5, "reading the trace…")
            trace = Trace.load(recipe.trace)
        if Path(recipe.trace).is_file():
            update["trace_sha256"] = file_sha256(recipe.trace)
    else:
        if trace is None:
            report(5, "running the model…")
            trace = run_source(recipe.source)
        update["model"] = _clean_info(trace.meta.get("model", {}))
    update["input"] = _clean_info(trace.meta.get("input", {}))

    report(20, "drawing the figure…")
    fig = render_view(trace, recipe.view, ViewOptions.from_json(recipe.options.model_dump()))
    width, height = (float(v) for v in fig.get_size_inches())
    check_figure_pixels(width, height, recipe.dpi, names)
    if recorded is not None:  # a recipe regenerated in place keeps its paths as written (relative ones too)
        update.pop("output")
        update = {k: v for k, v in update.items() if getattr(recorded, k, None) is None or k == "trace_sha256"}
    final = (recorded or recipe).model_copy(update=update)
    report(60, f"writing {out.name}…")
    return save_figure_and_recipe(fig, out, final, recipe.dpi)


def _check_output(recipe: Recipe, recipe_file: str | Path | None = None, names: FieldNames | None = None) -> Path:
    """The figure file ``recipe`` writes, after every check that needs no drawing (format, folder, an output
    that is an input, the view's name, the pixel bound when the size is given)."""
    from relviz.render.figure import figure_format
    from relviz.render.views import views

    if not recipe.output:
        raise BadInputError("the recipe names no output; give --out FIGURE.png|svg|pdf")
    out = Path(recipe.output)
    figure_format(out)
    recipe_out = recipe_path(out)
    check_writable(out)
    check_writable(recipe_out)
    refuse_overwriting({"the figure": out, "its recipe": recipe_out}, _inputs_of(recipe, recipe_file),
                       hint="give --out with another figure file name")
    known = views()
    if recipe.view not in known:
        raise BadInputError(f"unknown view {recipe.view!r}; valid views: {', '.join(sorted(known))}")
    if recipe.options.width and recipe.options.height:
        check_figure_pixels(recipe.options.width, recipe.options.height, recipe.dpi, names)
    return out


def figure_recipes(recipe: Recipe, views: list[str] | None = None) -> list[Recipe]:
    """The figures one export writes: one per view of ``views`` (default: the recipe's), and for a view that
    shows one object, one per object of ``options.objects`` when several are given; a view that shows several
    objects together (DETR's decoder-objects, relation-pairs) takes them all in one figure.

    With more than one figure, each is named after ``recipe.output``: ``FIG-VIEW.png``, ``FIG-VIEW-o3.png``
    (``FIG-o3.png`` for one view).  Each figure gets a recipe of its own, which redraws it alone.
    """
    from relviz.render.views import views as known

    registry = known()
    names = list(dict.fromkeys(views or [recipe.view]))
    if not names:
        raise BadInputError("give --view VIEW (see `relviz export --help-views`)")
    for name in names:
        if name not in registry:
            raise BadInputError(f"unknown view {name!r}; valid views: {', '.join(sorted(registry))}")
    objects = list(dict.fromkeys(recipe.options.objects))
    plans: list[tuple[str, list[int] | None]] = []
    for name in names:
        if len(objects) > 1 and registry[name].takes_object and not registry[name].several_objects:
            plans.extend((name, [k]) for k in objects)
        else:
            plans.append((name, None))
    if len(plans) > limits.MAX_EXPORT_FIGURES:
        raise BadInputError(f"this export would write {len(plans)} figures, more than the {limits.MAX_EXPORT_FIGURES} "
                            "relviz writes at once; give fewer --view or --object")
    if len(plans) == 1 and plans[0][0] == recipe.view:
        return [recipe]
    out = Path(recipe.output) if recipe.output else None
    recipes = []
    for name, chosen in plans:
        options = recipe.options
        tag = name if len(names) > 1 else ""
        if chosen is not None:
            options = options.model_copy(update={"object": chosen[0], "objects": chosen})
            tag = f"{tag}-o{chosen[0]}" if tag else f"o{chosen[0]}"
        output = str(out.with_name(f"{out.stem}-{tag}{out.suffix}")) if out is not None and tag else recipe.output
        recipes.append(recipe.model_copy(update={"view": name, "options": options, "output": output}))
    return recipes


def export_figures(recipe: Recipe, views: list[str] | None = None, *, trace=None, names: FieldNames | None = None,
                   progress: Progress | None = None) -> list[tuple[Path, Path]]:
    """Every figure of :func:`figure_recipes` in one process: all outputs are checked before anything is drawn,
    the trace is read (or the model run) once, and each figure lands with its recipe.  Returns the
    (figure, recipe) paths in order."""
    recipes = figure_recipes(recipe, views)
    outs = [_check_output(r, names=names) for r in recipes]
    if len({atomic.absolute(o) for o in outs}) != len(outs):
        raise BadInputError("two of the figures would have the same file name; give --out with another name")
    if trace is None and recipe.trace is None:
        report = progress or (lambda percent, text: None)
        report(5, "running the model…")
        trace = run_source(recipe.source)
    elif trace is None:
        from relviz.core.trace import Trace

        trace = Trace.load(recipe.trace)
    return [export_figure(r, trace=trace, names=names, progress=progress) for r in recipes]


def save_figure_and_recipe(fig, out: Path, recipe: Recipe, dpi: int) -> tuple[Path, Path]:
    """Write the figure and its recipe to temporary files, then rename both into place."""
    from relviz.render.figure import save_figure

    recipe_out = recipe_path(out)
    text = json.dumps(recipe.to_json(), indent=2, sort_keys=True, allow_nan=False) + "\n"
    with atomic_paths([out, recipe_out]) as (fig_tmp, recipe_tmp):
        save_figure(fig, fig_tmp, dpi=dpi)
        recipe_tmp.write_text(text, encoding="utf-8")
    return out, recipe_out
