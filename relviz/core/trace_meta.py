"""The schema of a trace's metadata (the JSON string under ``meta``), checked when a trace is read.

Written once, here, with pydantic: every key relviz reads is type-checked strictly (a number is not a
string, a count is a positive integer, a float is finite), every other key is kept as it is, so a trace
from a newer relviz that writes more still opens.  What each family's ``run`` writes (relviz/zoo):

- all: ``family``, ``input`` {``path``, ``kind``, ``frame``, ``size`` [w, h], …}, ``labels``, ``preprocess``,
  ``model``, ``factored`` {name: {``kind``, ``scale``}} (added by :meth:`Trace.save`), ``format_version``;
- DETR: ``grid`` {``shape`` [h, w] or [t, h, w], ``stride``, ``scale`` [sx, sy], ``frame_stride``}, ``heads``;
- LR-Net: ``lrnet`` {``layers`` {name: {``kernel_size``, ``stride``, ``groups``, ``composability``, ``grid``,
  ``input_grid``, …}}, ``order``}, and ``grid`` (the last layer's);
- Non-local: ``nonlocal`` {``blocks`` {name: {``instantiation``, ``query_grid``, ``key_grid``, …}}, ``order``,
  ``clip``, ``frames``};
- Relation Networks: ``relation`` {``modules``, ``wavelength``, ``position_scale``, ``offset_clamp``,
  ``iou_thresholds``, …}; region features: ``region`` {``parts``, ``samples``, …}.

:func:`parse_meta` returns the validated :class:`TraceMeta` or raises a :class:`BadInputError` whose
sentence names the field as a path (``meta.input.size[0]``) and what is wrong with it.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from relviz.core import limits
from relviz.core.errors import BadInputError

#: the newest trace format this relviz reads
FORMAT_VERSION = 1
FAMILIES = ("detr", "relation", "regionfeat", "lrnet", "nonlocal")
COMPOSABILITY = ("squared", "abs", "mul")

Finite = Annotated[float, Field(allow_inf_nan=False)]
PositiveFinite = Annotated[float, Field(gt=0, allow_inf_nan=False)]
PositiveInt = Annotated[int, Field(gt=0)]
Count = Annotated[int, Field(ge=0)]


class _Section(BaseModel):
    """Strict about the keys it names, keeps the others (forward compatible)."""

    model_config = ConfigDict(strict=True, extra="allow", populate_by_name=True)


class InputMeta(_Section):
    path: str | None = None
    kind: str | None = None
    frame: Count | None = 0
    size: list[PositiveInt] = Field(min_length=2, max_length=2)
    frame_indices: list[Count] | None = None
    stride: int | None = None

    @field_validator("size")
    @classmethod
    def _plausible(cls, size: list[int]) -> list[int]:
        w, h = size
        if w * h > limits.max_image_pixels():
            raise ValueError(f"{w}×{h} is more pixels than relviz reads ({limits.max_image_pixels():,})")
        if max(w, h) / min(w, h) > limits.MAX_ASPECT_RATIO:
            raise ValueError(f"{w}×{h} has an aspect ratio beyond {limits.MAX_ASPECT_RATIO:g}:1")
        return size


class GridMeta(_Section):
    shape: list[PositiveInt] = Field(min_length=2, max_length=3)
    stride: PositiveFinite
    scale: list[PositiveFinite] = Field(default_factory=lambda: [1.0, 1.0], min_length=2, max_length=2)
    frame_stride: PositiveInt = 1

    @property
    def cells(self) -> int:
        return math.prod(self.shape)

    @property
    def height_width(self) -> tuple[int, int]:
        return self.shape[-2], self.shape[-1]


class FactorMeta(_Section):
    kind: Literal["softmax_qk"]
    scale: Finite


class LRNetLayerMeta(_Section):
    kernel_size: PositiveInt
    stride: PositiveInt
    composability: Literal[COMPOSABILITY]  # type: ignore[valid-type]
    groups: PositiveInt | None = None
    grid: GridMeta
    input_grid: GridMeta

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, k: int) -> int:
        if k % 2 == 0:
            raise ValueError(f"a kernel of {k}×{k} has no centre; LR-Net kernels are odd")
        return k


def _order_within(order: list[str] | None, described: dict[str, Any], what: str) -> None:
    for name in order or []:
        if name not in described:
            raise ValueError(f"order names {what} {name!r}, which the metadata does not describe")


class LRNetMeta(_Section):
    layers: dict[str, LRNetLayerMeta] = Field(default_factory=dict)
    order: list[str] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> LRNetMeta:
        _order_within(self.order, self.layers, "layer")
        return self


class NonLocalBlockMeta(_Section):
    instantiation: str
    query_grid: GridMeta
    key_grid: GridMeta


class NonLocalMeta(_Section):
    blocks: dict[str, NonLocalBlockMeta] = Field(default_factory=dict)
    order: list[str] | None = None
    clip: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> NonLocalMeta:
        _order_within(self.order, self.blocks, "block")
        return self


class RelationMeta(_Section):
    modules: list[str] | None = None
    wavelength: PositiveFinite = 1000.0
    position_scale: Finite = 100.0
    offset_clamp: PositiveFinite = 1e-3
    iou_thresholds: list[Finite] = Field(default_factory=list)


class RegionMeta(_Section):
    parts: PositiveInt | None = None
    samples: PositiveInt | None = None


class TraceMeta(_Section):
    family: str = ""
    format_version: PositiveInt = FORMAT_VERSION
    input: InputMeta
    grid: GridMeta | None = None
    labels: list[str] | None = None
    factored: dict[str, FactorMeta] = Field(default_factory=dict)
    threshold: Finite | None = None
    preprocess: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    lrnet: LRNetMeta | None = None
    nonlocal_: NonLocalMeta | None = Field(default=None, alias="nonlocal")
    relation: RelationMeta | None = None
    region: RegionMeta | None = None

    @field_validator("format_version")
    @classmethod
    def _readable(cls, version: int) -> int:
        if version > FORMAT_VERSION:
            raise ValueError(f"format {version} was written by a newer relviz (this one reads format {FORMAT_VERSION})")
        return version

    @model_validator(mode="after")
    def _family_sections(self) -> TraceMeta:
        """What a family's views cannot do without (a DETR map is drawn through ``grid``)."""
        if self.family == "detr" and self.grid is None:
            raise ValueError("a DETR trace needs meta.grid, the feature grid its attention maps are drawn on")
        return self


# -- sentences -----------------------------------------------------------------------------------------
def field_path(loc: tuple[Any, ...]) -> str:
    """pydantic's error location as the path a user finds in the JSON: ``meta.input.size[0]``."""
    out = "meta"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_error(error: dict[str, Any]) -> str:
    """One pydantic error as a clause: 'meta.input.size[0] should be greater than 0 (it is -3)'."""
    where = field_path(tuple(error.get("loc", ())))
    kind, msg = error.get("type", ""), str(error.get("msg", ""))
    if kind == "missing":
        return f"{where} is missing"
    if kind == "extra_forbidden":
        return f"{where} is not a field relviz knows"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{where} should be a JSON object (it is {_shown(error.get('input'))})"
    if kind == "value_error":
        text = msg.removeprefix("Value error, ")
        return f"{where}: {text}" if error.get("loc") else text
    if msg.startswith("Input should"):
        return f"{where} should{msg.removeprefix('Input should')} (it is {_shown(error.get('input'))})"
    return f"{where}: {msg[:1].lower()}{msg[1:]}"


def parse_meta(meta: Any, source: str) -> TraceMeta:
    """The validated metadata, or a :class:`BadInputError` naming ``source`` (the file) and the field."""
    if not isinstance(meta, dict):
        kind = "null" if meta is None else type(meta).__name__
        raise BadInputError(f"{source} is not a usable relviz trace: its metadata is a JSON {kind}, not an object")
    try:
        return TraceMeta.model_validate(meta)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise BadInputError(f"{source} is not a usable relviz trace: {describe_error(errors[0])}{more}") from None
    except RecursionError:
        raise BadInputError(f"{source} is not a usable relviz trace: its metadata is nested too deeply") from None
