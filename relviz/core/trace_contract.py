"""The tensor contract of a trace (README "The trace"), checked when a trace file is read.

Each known tensor name has a :class:`Rule`: its axes as symbols shared with other tensors and with the
metadata (``N`` detections, ``Q`` queries, ``S`` grid cells, ``P@`` the proposals of one relation module,
…), the kind of numbers it holds, whether it may be stored as attention factors, and — for index arrays —
which axis its values index.  :func:`check_layout` checks shapes and dtypes from the ``.npy`` headers,
before any tensor's data is read; :func:`check_values` then checks what only the data shows (indices in
range, boxes and positions finite).  A broken rule is one :class:`BadInputError` sentence naming the
file, the tensor and what is wrong.  Names the contract does not know are kept (a newer relviz may
write more) as long as they hold plain numbers.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from relviz.core.errors import BadInputError
from relviz.core.trace_meta import TraceMeta

KINDS = {
    "number": ("iuf", "numbers"),
    "int": ("iu", "integers"),
    "uint8": ("u", "uint8 pixel values"),
    "bool": ("b", "booleans"),
    "any": ("biuf", "numbers or booleans"),
}
_DTYPE_WORDS = {"U": "text", "S": "bytes", "O": "Python objects", "c": "complex numbers", "V": "raw records",
                "M": "dates", "m": "time spans"}


@dataclass(frozen=True)
class Tensor:
    """What a tensor's ``.npy`` header declares."""

    shape: tuple[int, ...]
    dtype: np.dtype


@dataclass(frozen=True)
class Rule:
    """The layout of the tensors whose names match ``pattern`` (``*`` is one name segment)."""

    pattern: str
    dims: tuple[str | int, ...]
    kind: str = "number"
    factored: bool = False  # may be stored as NAME::q, NAME::k (rows computed on demand)
    finite: bool = False  # geometry: every value must be finite
    lowest: int | None = None  # index arrays: the smallest valid value (-1 means "no row")
    targets: tuple[str, ...] = ()  # index arrays: symbols (fnmatch patterns) whose size bounds the values
    exclude: tuple[str, ...] = ()  # … except these

    def match(self, name: str) -> str | None:
        """The segment ``*`` stood for ('' when the pattern has none), or None when ``name`` does not match."""
        head, star, tail = self.pattern.partition("*")
        if not star:
            return "" if name == self.pattern else None
        if not (name.startswith(head) and name.endswith(tail)) or len(name) <= len(head) + len(tail):
            return None
        middle = name[len(head) : len(name) - len(tail)]
        return middle if "/" not in middle else None


RULES: tuple[Rule, ...] = (
    Rule("input/image", ("IH", "IW", 3), "uint8"),
    Rule("input/frames", ("T", "IH", "IW", 3), "uint8"),
    Rule("detections/boxes", ("N", 4), finite=True),
    Rule("detections/scores", ("N",)),
    Rule("detections/labels", ("N",), "int", lowest=0, targets=("LABELS",)),
    Rule("detections/query", ("N",), "int", lowest=0, targets=("Q",)),
    Rule("detections/proposal", ("N",), "int", lowest=0, targets=("P@*",), exclude=("P@nms",)),
    Rule("detections/nms_row", ("N",), "int", lowest=-1, targets=("P@nms",)),
    Rule("detections/region_row", ("N",), "int", lowest=-1, targets=("R",)),
    Rule("detr/pred_logits", ("Q", "C1")),
    Rule("detr/pred_boxes", ("Q", 4)),
    Rule("detr/encoder/self_attn", ("LE", "H", "S", "S"), factored=True),
    Rule("detr/decoder/self_attn", ("LD", "H", "Q", "Q"), factored=True),
    Rule("detr/decoder/cross_attn", ("LD", "H", "Q", "S"), factored=True),
    *(Rule(f"relation/*/{term}", ("H@", "P@", "P@")) for term in ("weight", "geometry", "appearance")),
    Rule("relation/*/boxes", ("P@", 4), finite=True),
    Rule("relation/*/geometry_weight", ("H@", "DG@")),
    Rule("relation/*/geometry_bias", ("H@",)),
    Rule("relation/*/labels", ("P@",), "int", lowest=0),
    Rule("relation/*/rank", ("P@",), "int", lowest=0),
    Rule("relation/*/scores", ("P@",)),
    Rule("relation/*/keep", ("P@", "IOU@")),
    Rule("relation/*/proposal", ("P@",), "int", lowest=0),
    *(Rule(f"region/{term}", ("R", "K", "RP")) for term in ("weight", "geometry", "appearance")),
    Rule("region/positions", ("R", "RP", 2), finite=True),
    Rule("region/boxes", ("R", 4), finite=True),
    Rule("region/proposal", ("R",), "int", lowest=0),
    Rule("lrnet/*/geometry", ("G@", "k@", "k@")),
    Rule("lrnet/*/key", ("G@", "HI@", "WI@")),
    Rule("lrnet/*/query", ("G@", "HO@", "WO@")),
    Rule("lrnet/*/appearance", ("G@", "KK@", "HO@", "WO@")),
    Rule("lrnet/*/weight", ("G@", "KK@", "HO@", "WO@")),
    Rule("nonlocal/*/attn", ("NQ@", "NK@"), factored=True),
    Rule("nonlocal/*/pairwise", ("NQ@", "NK@"), factored=True),
    Rule("classification/logits", ("C",)),
)

#: what each axis symbol counts, for sentences
SYMBOLS = {
    "IH": "image rows", "IW": "image columns", "T": "frames", "N": "detections", "Q": "object queries",
    "C1": "classes (+ no object)", "LE": "encoder layers", "LD": "decoder layers", "H": "heads",
    "S": "feature-grid cells", "H@": "heads", "P@": "proposals", "DG@": "geometry features",
    "IOU@": "IoU thresholds", "R": "region rows", "K": "parts", "RP": "sampled positions", "G@": "groups",
    "k@": "kernel cells per side", "KK@": "kernel cells", "HI@": "input rows", "WI@": "input columns",
    "HO@": "output rows", "WO@": "output columns", "NQ@": "query positions", "NK@": "key positions",
    "C": "classes", "LABELS": "class names",
}  # fmt: skip
#: axes that may be empty (a trace with no detections, a module with no proposals)
MAY_BE_EMPTY = {"N", "P@", "R", "IOU@"}

#: tensors that come together: when the first is there, so must the others be ("*" is the same segment)
REQUIRES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("detections/scores", ("detections/boxes",)),
    ("relation/*/weight", ("relation/*/boxes",)),
    ("relation/*/geometry_weight", ("relation/*/geometry_bias",)),
    ("region/weight", ("region/positions",)),
    ("lrnet/*/appearance", ("lrnet/*/weight",)),
    ("lrnet/*/weight", ("lrnet/*/appearance",)),
    ("lrnet/*/key", ("lrnet/*/query",)),
    ("lrnet/*/query", ("lrnet/*/key",)),
)


def shape_text(shape: Iterable[int]) -> str:
    shape = tuple(int(v) for v in shape)
    return f"({shape[0]},)" if len(shape) == 1 else f"({', '.join(map(str, shape))})"


def _dims_text(dims: tuple[str | int, ...]) -> str:
    return f"({', '.join(str(d).removesuffix('@') for d in dims)}{',' if len(dims) == 1 else ''})"


class Sizes:
    """Axis symbols bound to sizes, each with where its size came from (for sentences)."""

    def __init__(self, fail) -> None:
        self._fail = fail
        self.values: dict[str, int] = {}
        self.origin: dict[str, str] = {}
        self.axis: dict[str, int | None] = {}

    def bind(self, symbol: str, value: int, origin: str, what: str | None = None, axis: int | None = None) -> None:
        """``symbol`` has ``value`` according to ``origin`` (a tensor's ``axis``, or a metadata field)."""
        if symbol in self.values and self.values[symbol] != value:
            words = symbol_words(symbol)
            bound, first = self.values[symbol], self.origin[symbol]
            if first == origin:  # two axes of one tensor
                self._fail(f"{what or origin} has {value} {words} along axis {axis} but {bound} along axis "
                           f"{self.axis[symbol]}; they must agree")
            self._fail(f"{what or origin} has {value} {words}, but {first} has {bound}")
        if symbol not in self.values:
            self.values[symbol], self.origin[symbol], self.axis[symbol] = value, origin, axis

    def matching(self, patterns: tuple[str, ...], exclude: tuple[str, ...]) -> list[str]:
        return [s for s in self.values if any(fnmatch.fnmatchcase(s, p) for p in patterns) and s not in exclude]


def symbol_words(symbol: str) -> str:
    """What an axis symbol counts ('P@fc1' → 'proposals')."""
    return SYMBOLS.get(symbol.split("@")[0] + ("@" if "@" in symbol else ""), symbol)


def rule_for(name: str) -> tuple[Rule, str] | None:
    for rule in RULES:
        scope = rule.match(name)
        if scope is not None:
            return rule, scope
    return None


def _symbol(dim: str, scope: str) -> str:
    return f"{dim}{scope}" if dim.endswith("@") else dim


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source
        self.sizes = Sizes(self.fail)

    def fail(self, text: str):
        raise BadInputError(f"{self.source} is not a usable relviz trace: {text}")

    # -- dtypes ------------------------------------------------------------------------------------
    def dtype(self, name: str, dtype: np.dtype, kind: str) -> None:
        letters, words = KINDS[kind]
        if dtype.kind in letters and (kind != "uint8" or dtype == np.uint8):
            return
        found = f"holds {_DTYPE_WORDS[dtype.kind]} ({dtype})" if dtype.kind in _DTYPE_WORDS else f"has dtype {dtype}"
        self.fail(f"{name} {found} where relviz expects {words}")

    # -- metadata sizes ----------------------------------------------------------------------------
    def bind_meta(self, meta: TraceMeta) -> None:
        bind = self.sizes.bind
        w, h = meta.input.size
        bind("IH", h, "meta.input.size")
        bind("IW", w, "meta.input.size")
        if meta.grid is not None:
            bind("S", meta.grid.cells, f"meta.grid ({'×'.join(map(str, meta.grid.shape))} cells)")
        if meta.labels:
            bind("LABELS", len(meta.labels), "meta.labels")
        if meta.lrnet is not None:
            for name, info in meta.lrnet.layers.items():
                where = f"meta.lrnet.layers.{name}"
                bind(f"k@{name}", info.kernel_size, f"{where}.kernel_size")
                bind(f"KK@{name}", info.kernel_size**2, f"{where}.kernel_size (squared)")
                if info.groups is not None:
                    bind(f"G@{name}", info.groups, f"{where}.groups")
                for prefix, grid, key in (("HO", info.grid, "grid"), ("HI", info.input_grid, "input_grid")):
                    gh, gw = grid.height_width
                    bind(f"{prefix}@{name}", gh, f"{where}.{key}")
                    bind(f"W{prefix[1]}@{name}", gw, f"{where}.{key}")
        if meta.nonlocal_ is not None:
            for name, info in meta.nonlocal_.blocks.items():
                where = f"meta.nonlocal.blocks.{name}"
                bind(f"NQ@{name}", info.query_grid.cells, f"{where}.query_grid")
                bind(f"NK@{name}", info.key_grid.cells, f"{where}.key_grid")
        if meta.region is not None:
            if meta.region.parts is not None:
                bind("K", meta.region.parts**2, "meta.region.parts (squared)")
            if meta.region.samples is not None:
                bind("RP", meta.region.samples**2, "meta.region.samples (squared)")

    # -- one tensor against its rule -----------------------------------------------------------------
    def tensor(self, name: str, tensor: Tensor, is_factored: bool) -> None:
        found = rule_for(name)
        if found is None:
            self.dtype(name, tensor.dtype, "any")
            return
        rule, scope = found
        self.dtype(name, tensor.dtype, rule.kind)
        if is_factored and not rule.factored:
            self.fail(f"{name} is stored as attention factors (in meta.factored), but it must be a plain array")
        shape = tensor.shape
        if len(shape) != len(rule.dims):
            self.fail(f"{name} is {shape_text(shape)} ({len(shape)}-d), but the contract says {_dims_text(rule.dims)}")
        for axis, (dim, size) in enumerate(zip(rule.dims, shape, strict=True)):
            if isinstance(dim, int):
                if size != dim:
                    self.fail(f"{name} is {shape_text(shape)}, but the contract says {_dims_text(rule.dims)}")
                continue
            if size == 0 and dim not in MAY_BE_EMPTY:
                self.fail(f"{name} is {shape_text(shape)}: it has no {SYMBOLS.get(dim, dim)} (axis {axis} is empty)")
            what = f"{name} {shape_text(shape)}"
            self.sizes.bind(_symbol(dim, scope), int(size), name, what, axis)

    def requirements(self, names: set[str], meta: TraceMeta) -> None:
        for pattern, needed in REQUIRES:
            rule = Rule(pattern, ())
            for name in sorted(names):
                scope = rule.match(name)
                if scope is None:
                    continue
                for other in needed:
                    other_name = other.replace("*", scope)
                    if other_name not in names:
                        self.fail(f"it has {name} but not {other_name}, which comes with it")
        if meta.lrnet is not None:
            for layer in meta.lrnet.layers:
                prefix = f"lrnet/{layer}"
                if f"{prefix}/geometry" not in names:
                    self.fail(f"meta.lrnet describes layer {layer!r}, but {prefix}/geometry is missing")
                if f"{prefix}/weight" not in names and f"{prefix}/key" not in names:
                    self.fail(f"meta.lrnet describes layer {layer!r}, but neither {prefix}/weight nor {prefix}/key "
                              "is there to compute its kernels from")
        if meta.nonlocal_ is not None:
            for block in meta.nonlocal_.blocks:
                if f"nonlocal/{block}/attn" not in names:
                    self.fail(f"meta.nonlocal describes block {block!r}, but nonlocal/{block}/attn is missing")

    def derived(self) -> None:
        for symbol, value in self.sizes.values.items():
            if symbol.startswith("DG@") and value % 8:
                module = symbol.removeprefix("DG@")
                self.fail(f"relation/{module}/geometry_weight has {value} geometry features; the sinusoidal "
                          "box-geometry embedding needs a multiple of 8")


def check_factors(name: str, q: Tensor, k: Tensor, mask: Tensor | None, source: str) -> Tensor:
    """``NAME::q`` (..., Nq, d) and ``NAME::k`` (..., Nk, d) agree; returns the attention's (..., Nq, Nk)."""
    checker = _Checker(source)
    for part, t in (("q", q), ("k", k)):
        checker.dtype(f"{name}::{part}", t.dtype, "number")
        if len(t.shape) < 2:
            checker.fail(f"{name}::{part} is {shape_text(t.shape)}; attention factors are (..., positions, d)")
    if len(q.shape) != len(k.shape) or q.shape[:-2] != k.shape[:-2]:
        checker.fail(f"{name}::q {shape_text(q.shape)} and {name}::k {shape_text(k.shape)} differ in their "
                     "leading axes (layers, heads)")
    if q.shape[-1] != k.shape[-1]:
        checker.fail(f"{name}::q has d = {q.shape[-1]} but {name}::k has d = {k.shape[-1]}; their product needs "
                     "the same width")
    if mask is not None:
        checker.dtype(f"{name}::key_mask", mask.dtype, "bool")
        if mask.shape != (k.shape[-2],):
            checker.fail(f"{name}::key_mask is {shape_text(mask.shape)}, but {name}::k has {k.shape[-2]} keys")
    return Tensor((*q.shape[:-1], k.shape[-2]), q.dtype)


def check_layout(tensors: Mapping[str, Tensor], factored: Iterable[str], meta: TraceMeta, source: str) -> Sizes:
    """Shapes and dtypes of every tensor against the contract and the metadata; returns the bound sizes.

    ``tensors`` holds plain arrays and, for factored attention, the attention's logical shape (see
    :func:`check_factors`); ``factored`` names the latter.
    """
    checker = _Checker(source)
    checker.bind_meta(meta)
    factored = set(factored)
    for rule in RULES:  # in contract order, so a sentence names the defining tensor first
        for name in sorted(tensors):
            if rule.match(name) is not None:
                checker.tensor(name, tensors[name], name in factored)
    for name in sorted(tensors):
        if rule_for(name) is None:
            checker.tensor(name, tensors[name], name in factored)
    checker.requirements(set(tensors), meta)
    checker.derived()
    return checker.sizes


def check_values(arrays: Mapping[str, np.ndarray], sizes: Sizes, source: str) -> None:
    """What only the data shows: index arrays within their targets, geometry finite."""
    checker = _Checker(source)
    checker.sizes = sizes
    for name in sorted(arrays):
        found = rule_for(name)
        if found is None:
            continue
        rule, _ = found
        values = arrays[name]
        if rule.finite and values.size and not np.isfinite(values).all():
            bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
            checker.fail(f"{name} holds {bad} non-finite value{'s' if bad != 1 else ''} (NaN or infinity); boxes and "
                         "positions must be finite")
        if rule.lowest is not None and values.size:
            _check_indices(checker, name, values, rule, sizes)


def _check_indices(checker: _Checker, name: str, values: np.ndarray, rule: Rule, sizes: Sizes) -> None:
    bounds = [(s, sizes.values[s]) for s in sizes.matching(rule.targets, rule.exclude)]
    high = min((v for _, v in bounds), default=None)
    low = rule.lowest
    flat = values.reshape(-1)
    bad = flat < low if high is None else (flat < low) | (flat >= high)
    if not bad.any():
        return
    i = int(np.argmax(bad))
    value = int(flat[i])
    none = " (-1 means none)" if low == -1 else ""
    if high is None:
        checker.fail(f"{name}[{i}] is {value}, but its values are indices of at least {low}{none}")
    symbol = min(bounds, key=lambda b: b[1])[0]
    words = symbol_words(symbol)
    origin = sizes.origin.get(symbol, "the trace")
    if high == 0:
        checker.fail(f"{name}[{i}] is {value}, but there are no {words} to index ({origin} has none)")
    checker.fail(f"{name}[{i}] is {value}, outside {low}..{high - 1}{none}: {origin} has {high} {words}")


def materialised_bytes(shape: tuple[int, ...], itemsize: int = 4) -> int:
    return math.prod(int(v) for v in shape) * itemsize
