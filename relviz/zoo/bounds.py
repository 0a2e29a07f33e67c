"""Sane bounds on every family's architecture config, one table per family, checked before a module is built.

A config reaches :func:`relviz.zoo.load_model` from three places — a zoo entry, a checkpoint's keys and shapes
(a 5 kB file of zero-size tensors can *declare* 20,001 layers or a width of 16,384), and the user's ``--config``
and ``--heads`` — and every one is checked here first: each setting's type and range, the settings that must
agree with each other (heads divide the width, the sine position embedding splits it in four, …) and the
settings whose product bounds the memory of one run (relation modules cost proposals² per head).  Each
refusal is one sentence naming the setting, its value, where it came from and what is valid.  The parameter
count is estimated afterwards, on the meta device (:func:`relviz.zoo.check_config`).

Bounds are generous — several times the published architectures — so that they refuse only what cannot be
meant: a model relviz could build but not hold, or a value of the wrong type that would fail deep inside.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from relviz.core import limits
from relviz.core.errors import BadInputError

#: where a setting came from, for the sentence: key → "from --config", "read from x.pth", …
Origin = Callable[[str], str]

MAX_LAYERS = 64  # transformer layers (DETR: 6 + 6)
MAX_BLOCKS = 64  # residual blocks per ResNet stage (ResNet-152: 36)
MAX_CHANNELS = 8192  # convolution widths (ResNet-50's widest: 2048)
MAX_CLASSES = 100_000  # classifier outputs (LVIS: 1,203)
MAX_LABEL_CHARS = 200


def _shown(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_int(value: Any) -> bool:
    return type(value) is int  # bool is an int to Python, not to a config


def _is_number(value: Any) -> bool:
    return type(value) is int or (type(value) is float and math.isfinite(value))


# -- one setting ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bound:
    """What one setting may hold; :meth:`problem` says what is wrong with a value, or None."""

    def valid(self) -> str:
        """What the setting takes, as it ends a sentence ('a whole number from 1 to 64')."""
        raise NotImplementedError

    def problem(self, value: Any) -> str | None:
        """None when ``value`` is valid, else 'is not valid' or 'is out of range'."""
        raise NotImplementedError


@dataclass(frozen=True)
class Int(Bound):
    low: int
    high: int

    def valid(self) -> str:
        return f"a whole number from {self.low:,} to {self.high:,}"

    def problem(self, value: Any) -> str | None:
        if not _is_int(value):
            return "is not valid"
        return None if self.low <= value <= self.high else "is out of range"


@dataclass(frozen=True)
class Size(Int):
    """An input size in pixels; 0 (the image's own size) allowed when ``zero`` is set."""

    zero: bool = False

    def valid(self) -> str:
        return ("0 (the image's own size) or " if self.zero else "") + super().valid()

    def problem(self, value: Any) -> str | None:
        return None if self.zero and _is_int(value) and value == 0 else super().problem(value)


@dataclass(frozen=True)
class Float(Bound):
    low: float
    high: float

    def valid(self) -> str:
        return f"a number from {self.low:g} to {self.high:g}"

    def problem(self, value: Any) -> str | None:
        if not _is_number(value):
            return "is not valid"
        return None if self.low <= value <= self.high else "is out of range"


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class Bool(Bound):
    """true or false; ``words`` also takes the strings and 0/1 that the family's code reads as such."""

    words: bool = False

    def valid(self) -> str:
        return "true or false"

    def problem(self, value: Any) -> str | None:
        if isinstance(value, bool):
            return None
        if self.words and str(value).lower() in _TRUE + _FALSE and type(value) in (str, int):
            return None
        return "is not valid"


@dataclass(frozen=True)
class OneOf(Bound):
    choices: tuple[Any, ...]

    def valid(self) -> str:
        shown = ["null" if c is None else str(c) for c in self.choices]
        return "one of " + ", ".join(shown)

    def problem(self, value: Any) -> str | None:
        ok = any(type(value) is type(c) and value == c for c in self.choices)
        return None if ok else "is not valid"


@dataclass(frozen=True)
class Numbers(Bound):
    """A list of ``count`` numbers (``count`` = (fewest, most)) from ``low`` to ``high``; whole ones if ``whole``."""

    low: float
    high: float
    count: tuple[int, int]
    whole: bool = True

    def valid(self) -> str:
        fewest, most = self.count
        n = str(fewest) if fewest == most else f"{fewest} to {most}"
        kind = "whole numbers" if self.whole else "numbers"
        return f"a list of {n} {kind} from {self.low:g} to {self.high:g}"

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, (list, tuple)) or not self.count[0] <= len(value) <= self.count[1]:
            return "is not valid"
        if not all((_is_int if self.whole else _is_number)(v) for v in value):
            return "is not valid"
        return None if all(self.low <= v <= self.high for v in value) else "is out of range"


@dataclass(frozen=True)
class OrNone(Bound):
    """null, or what ``bound`` takes."""

    bound: Bound

    def valid(self) -> str:
        return f"null or {self.bound.valid()}"

    def problem(self, value: Any) -> str | None:
        return None if value is None else self.bound.problem(value)


@dataclass(frozen=True)
class Text(Bound):
    """A string of at most ``length`` characters (a path, a name); ``or_none`` also takes null."""

    length: int = 4096
    or_none: bool = False

    def valid(self) -> str:
        return f"text of at most {self.length:,} characters"

    def problem(self, value: Any) -> str | None:
        if value is None and self.or_none:
            return None
        return None if isinstance(value, str) and len(value) <= self.length else "is not valid"


@dataclass(frozen=True)
class Labels(Bound):
    """Class names: a list of short strings, or (LR-Net and non-local cards) that list as a JSON string."""

    def valid(self) -> str:
        return f"a list of at most {MAX_CLASSES:,} names of at most {MAX_LABEL_CHARS} characters"

    def problem(self, value: Any) -> str | None:
        if isinstance(value, str):
            return None if len(value) <= MAX_CLASSES * MAX_LABEL_CHARS else "is not valid"
        if not isinstance(value, (list, tuple)) or len(value) > MAX_CLASSES:
            return "is not valid"
        return None if all(isinstance(v, str) and len(v) <= MAX_LABEL_CHARS for v in value) else "is not valid"


@dataclass(frozen=True)
class Placement(Bound):
    """Non-local block placement: '1', '5', 'none', a comma-separated string, or a list of block names."""

    def valid(self) -> str:
        return "'1', '5', 'none' or a list of at most 256 block names such as res4.4"

    def problem(self, value: Any) -> str | None:
        if _is_int(value) or (isinstance(value, str) and len(value) <= 4096):
            return None
        ok = isinstance(value, (list, tuple)) and len(value) <= 256
        return None if ok and all(isinstance(v, str) and len(v) <= 64 for v in value) else "is not valid"


@dataclass(frozen=True)
class MeanOrFraction(Bound):
    """Relation Networks' ``nms_score``: 'mean' or an IoU threshold in (0, 1)."""

    def valid(self) -> str:
        return "'mean' or a number between 0 and 1"

    def problem(self, value: Any) -> str | None:
        if value == "mean" or (_is_number(value) and 0 < value < 1):
            return None
        return "is not valid"


# -- a family's table -----------------------------------------------------------------------------

#: a rule over the resolved config: (config, show) → the sentence of a refusal, or None; ``show(key)`` gives
#: 'key=value (origin)'
Rule = Callable[[dict[str, Any], Callable[[str], str]], "str | None"]


@dataclass(frozen=True)
class FamilyBounds:
    """The settings a family takes and their bounds, the rules between them, and how its config is resolved.

    ``resolve`` gives the config as the family's builder sees it (defaults and presets filled in); ``aliases``
    renames a given key to the one the family uses (the relation detectors take ``--heads`` as ``heads``).
    """

    fields: Mapping[str, Bound]
    rules: tuple[Rule, ...] = ()
    resolve: Callable[[dict[str, Any]], dict[str, Any]] = dict
    aliases: Mapping[str, str] = field(default_factory=dict)

    def check(self, family: str, config: dict[str, Any], origin: Origin) -> dict[str, Any]:
        """The resolved config, once every setting and rule holds; else BadInputError with one sentence."""
        given = {self.aliases.get(k, k): k for k in config}  # key checked → key given
        current = {self.aliases.get(k, k): v for k, v in config.items()}

        def show(key: str) -> str:
            where = origin(given[key]) if key in given else "the default"
            return f"{key}={_shown(current.get(key))} ({where})"

        self._known(family, given, origin)
        for key, value in list(current.items()):
            self._field(family, key, value, show)
        raw = set(current)
        current = self.resolve(dict(current))
        for key, value in current.items():
            if key not in raw and key in self.fields:
                self._field(family, key, value, show)
        for rule in self.rules:
            complaint = rule(current, show)
            if complaint:
                raise BadInputError(complaint)
        return current

    def _known(self, family: str, given: dict[str, str], origin: Origin) -> None:
        for key, raw in given.items():
            if key in self.fields:
                continue
            where = origin(raw)
            flag = where.removeprefix("from ")
            if flag in ("--heads", "--dilation"):
                raise BadInputError(f"{flag} does not apply to {family} models; their settings: "
                                    f"{', '.join(self.fields)}")
            raise BadInputError(f"unknown setting {_shown(raw)} ({where}) for {family} models; their settings: "
                                f"{', '.join(self.fields)}")

    def _field(self, family: str, key: str, value: Any, show: Callable[[str], str]) -> None:
        bound = self.fields[key]
        issue = bound.problem(value)
        if issue:
            raise BadInputError(f"{show(key)} {issue}: {family} models take {key} as {bound.valid()}")


# -- rules ----------------------------------------------------------------------------------------


def divides(whole: str, part: str, why: str, when: Callable[[dict[str, Any]], bool] = lambda c: True) -> Rule:
    """``config[part]`` divides ``config[whole]`` (when ``when`` holds)."""

    def rule(cfg: dict[str, Any], show: Callable[[str], str]) -> str | None:
        if when(cfg) and cfg[whole] % cfg[part]:
            return f"{show(part)} does not divide {show(whole)}: {why}"
        return None

    return rule


def multiple_of(key: str, n: int, why: str, when: Callable[[dict[str, Any]], bool] = lambda c: True) -> Rule:
    def rule(cfg: dict[str, Any], show: Callable[[str], str]) -> str | None:
        if when(cfg) and cfg[key] % n:
            return f"{show(key)} is not a multiple of {n}: {why}"
        return None

    return rule


def odd(key: str, why: str) -> Rule:
    def rule(cfg: dict[str, Any], show: Callable[[str], str]) -> str | None:
        return None if cfg[key] % 2 else f"{show(key)} is even: {why}, so it must be odd"

    return rule


def at_most(keys: tuple[str, ...], product: Callable[[dict[str, Any]], int], limit: int, what: str) -> Rule:
    """``product(config)`` — the size of something one run holds — is at most ``limit``."""

    def rule(cfg: dict[str, Any], show: Callable[[str], str]) -> str | None:
        n = product(cfg)
        if n > limit:
            settings = ", ".join(show(k) for k in keys)
            return f"{settings} make {what} of {n:,} values, more than the {limit:,} relviz allows"
        return None

    return rule


# -- the tables -----------------------------------------------------------------------------------


def _size(zero: bool = False) -> Size:
    return Size(limits.MIN_RESIZE, limits.MAX_RESIZE, zero)


def _heads() -> Int:
    return Int(1, limits.MAX_HEADS)


def _detr_resolve(config: dict[str, Any]) -> dict[str, Any]:
    from relviz.models.detr import DETRConfig

    return {**asdict(DETRConfig()), **config}


def _detr_dilation(cfg: dict[str, Any], show: Callable[[str], str]) -> str | None:
    if cfg["dilation"] and cfg["backbone_depth"] < 50:
        return f"{show('dilation')} needs a bottleneck ResNet, not {show('backbone_depth')}: use 50, 101 or 152"
    return None


DETR = FamilyBounds(
    fields={
        "backbone_depth": OneOf((18, 34, 50, 101, 152)),
        "dilation": Bool(),
        "hidden_dim": Int(4, 4096),
        "nheads": _heads(),
        "enc_layers": Int(0, MAX_LAYERS),
        "dec_layers": Int(1, MAX_LAYERS),
        "dim_feedforward": Int(1, 65536),
        "num_queries": Int(1, 4096),
        "num_classes": Int(1, MAX_CLASSES),
        "pre_norm": Bool(),
        "position_embedding": OneOf(("sine", "learned")),
        "dropout": Float(0.0, 1.0),
        "resize": _size(zero=True),
        "labels": Labels(),
        "dec_nheads": Int(0, limits.MAX_HEADS),
        "activation": OneOf(("relu", "gelu", "silu")),
        "backbone_widths": OrNone(Numbers(1, MAX_CHANNELS, (5, 5))),
        "backbone_blocks": OrNone(Numbers(1, MAX_BLOCKS, (4, 4))),
        "backbone_bottleneck": Bool(),
    },
    rules=(
        divides("hidden_dim", "nheads", "each attention head takes an equal share of the width"),
        divides("hidden_dim", "dec_nheads", "each decoder attention head takes an equal share of the width",
                when=lambda c: c["dec_nheads"] > 0),
        multiple_of("hidden_dim", 4, "the sine position embedding gives x and y a quarter of it each as sines and "
                    "as cosines", when=lambda c: c["position_embedding"] == "sine"),
        multiple_of("hidden_dim", 2, "the learned position embedding gives rows and columns half of it each",
                    when=lambda c: c["position_embedding"] == "learned"),
        _detr_dilation,
    ),
    resolve=_detr_resolve,
)


def _rcnn_fields() -> dict[str, Bound]:
    return {
        "num_classes": Int(2, MAX_CLASSES),
        "backbone": OneOf(("resnet18", "resnet34", "resnet50", "resnet101")),
        "norm": OneOf(("frozen", "batch")),
        "trainable_layers": Int(0, 5),
        "fpn_channels": Int(1, 2048),
        "min_size": _size(),
        "max_size": _size(),
        "anchor_sizes": Numbers(1, 4096, (5, 5)),
        "rpn_pre_nms_top_n_test": Int(1, 20_000),
        "proposals": Int(1, 2000),
        "rpn_pre_nms_top_n_train": Int(1, 20_000),
        "rpn_post_nms_top_n_train": Int(1, 20_000),
        "box_batch_size_per_image": Int(1, 10_000),
        "score_thresh": Float(0.0, 1.0),
        "nms_thresh": Float(0.0, 1.0),
        "detections_per_img": Int(1, 1000),
        "representation": Int(1, 16384),
        "body": Text(),
        "body_head": Bool(),
        "labels": Labels(),
        "resize": _size(zero=True),
    }


def _rcnn_resolve(excluded: frozenset[str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def resolve(config: dict[str, Any]) -> dict[str, Any]:
        from relviz.models.rcnn import DEFAULTS

        return {**{k: v for k, v in DEFAULTS.items() if k not in excluded}, **config}

    return resolve


def _has_relations(cfg: dict[str, Any]) -> bool:
    return cfg["relation_modules"] > 0


def _has_duplicate_removal(cfg: dict[str, Any]) -> bool:
    return bool(cfg["duplicate_removal"])


RELATION = FamilyBounds(
    fields={
        **_rcnn_fields(),
        "pool_size": Int(1, 32),
        "relation_modules": OneOf((0, 1, 2)),
        "heads": _heads(),
        "key_dim": Int(1, 16384),
        "geo_dim": Int(8, 1024),
        "duplicate_removal": Bool(),
        "nms": OneOf(("learned", "nms")),
        "first_n": Int(1, 1000),
        "nms_embed": Int(1, 4096),
        "nms_rank_dim": Int(2, 4096),
        "nms_key_dim": Int(1, 16384),
        "iou_thresholds": Numbers(0.0, 1.0, (1, 16), whole=False),
        "nms_score": MeanOrFraction(),
        "nms_record_classes": Int(0, 1000),
    },
    rules=(
        divides("key_dim", "heads", "each relation head takes an equal share of W_K and W_Q", _has_relations),
        divides("representation", "heads", "each relation head adds an equal share of the fc width", _has_relations),
        divides("nms_key_dim", "heads", "each duplicate-removal head takes an equal share of its keys",
                _has_duplicate_removal),
        divides("nms_embed", "heads", "each duplicate-removal head adds an equal share of its embedding",
                _has_duplicate_removal),
        multiple_of("geo_dim", 8, "the geometry embedding has sines and cosines of four terms"),
        multiple_of("nms_rank_dim", 2, "the rank embedding has as many sines as cosines", _has_duplicate_removal),
        at_most(("proposals", "geo_dim", "heads"), lambda c: c["proposals"] ** 2 * (c["geo_dim"] + 3 * c["heads"]),
                128_000_000, "relation tensors (proposals² × (geo_dim + 3 × heads))"),
        at_most(("first_n", "nms_record_classes"), lambda c: c["first_n"] * c["nms_record_classes"], 1000,
                "a duplicate-removal record (first_n × nms_record_classes rows)"),
    ),
    resolve=_rcnn_resolve(frozenset({"parts", "samples", "enlarge", "region_geo_dim", "region_value"})),
    aliases={"nheads": "heads"},
)

REGIONFEAT = FamilyBounds(
    fields={
        **_rcnn_fields(),
        "parts": Int(1, 32),
        "samples": Int(1, 64),
        "enlarge": Float(0.1, 10.0),
        "region_geo_dim": Int(4, 1024),
        "region_value": OneOf(("per_part", "shared")),
    },
    rules=(
        multiple_of("region_geo_dim", 4, "the position embedding has sines and cosines of two coordinates"),
        at_most(("proposals", "parts", "samples"), lambda c: c["proposals"] * c["parts"] ** 2 * c["samples"] ** 2,
                32_000_000, "region weights (proposals × parts² × samples²)"),
    ),
    resolve=_rcnn_resolve(frozenset(RELATION.fields) - frozenset(_rcnn_fields())),
)


def _lrnet_resolve(config: dict[str, Any]) -> dict[str, Any]:
    from relviz.models.lrnet import resolve_config

    return resolve_config(config)


def _lrnet_presets() -> tuple[Any, ...]:
    from relviz.models.lrnet import PRESETS

    return (None, *PRESETS)


LRNET = FamilyBounds(
    fields={
        "preset": OneOf(_lrnet_presets()),
        "blocks": Numbers(1, MAX_BLOCKS, (4, 4)),
        "widths": Numbers(1, MAX_CHANNELS, (4, 4)),
        "outs": Numbers(1, 2 * MAX_CHANNELS, (4, 4)),
        "stem_width": Int(1, 4096),
        "kernel_size": Int(1, 15),
        "m": Int(1, MAX_CHANNELS),
        "composability": OneOf(("squared", "abs", "mul")),
        "num_classes": Int(1, MAX_CLASSES),
        "input_size": _size(),
        "full": Bool(words=True),
        "labels": Labels(),
    },
    rules=(odd("kernel_size", "the k×k window is centred on its pixel"),),
    resolve=_lrnet_resolve,
)


def _nonlocal_resolve(config: dict[str, Any]) -> dict[str, Any]:
    if config.get("arch") == "i3d":
        from relviz.models.i3d_nonlocal import resolve_config as resolve_i3d

        return resolve_i3d(config)
    from relviz.models.nonlocal_net import resolve_config

    return resolve_config(config)


def _nonlocal_presets() -> tuple[Any, ...]:
    from relviz.models.nonlocal_net import PRESETS

    return (None, *PRESETS)


NONLOCAL = FamilyBounds(
    fields={
        "preset": OneOf(_nonlocal_presets()),
        "blocks": Numbers(1, MAX_BLOCKS, (4, 4)),
        "widths": Numbers(1, MAX_CHANNELS, (4, 4)),
        "stem_width": Int(1, 4096),
        "nonlocal": Placement(),
        "expansion": Int(1, 16),
        "instantiation": Text(40),
        "scale": Bool(words=True),
        "subsample": Bool(words=True),
        "num_classes": Int(1, MAX_CLASSES),
        "input_size": _size(),
        "clip": Bool(words=True),
        "clip_length": Int(1, limits.MAX_CLIP_LENGTH),
        "temporal_pool": Bool(words=True),
        "labels": Labels(),
        # mmaction2's I3D (arch=i3d): the stem, the inflated blocks, mmcv's mode name and the preprocessor
        "arch": OneOf(("resnet", "i3d")),
        "mode": OneOf(("embedded_gaussian", "gaussian", "dot_product", "embedded", "dot")),
        "mode_from": Text(200),
        "conv1_kernel": Numbers(1, 15, (3, 3)),
        "conv1_stride_t": Int(1, 8),
        "pool1_stride_t": Int(1, 8),
        "pool2": Bool(words=True),
        "inflate": Numbers(0, 1, (1, 4 * MAX_BLOCKS)),
        "inflate_style": OneOf(("3x1x1", "3x3x3")),
        "mean": Numbers(-1000, 1000, (3, 3), whole=False),
        "std": Numbers(1e-3, 1000, (3, 3), whole=False),
    },
    resolve=_nonlocal_resolve,
)

#: family name → its table (a family without one is only held to the parameter estimate)
BOUNDS: dict[str, FamilyBounds] = {
    "detr": DETR,
    "relation": RELATION,
    "regionfeat": REGIONFEAT,
    "lrnet": LRNET,
    "nonlocal": NONLOCAL,
}
