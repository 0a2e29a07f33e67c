"""The model zoo: names → builders and bundled weights, and checkpoint → family detection.

Each family module (``relviz/zoo/<family>.py``) registers one :class:`Family` (how to build, load,
preprocess, run and post-process that family) and its named :class:`ModelEntry` items.  Everything
else — the command line, the application, the benchmarks — goes through :func:`load_model` and
:func:`run_model`, so a family added here appears everywhere.

Importing this package does not import torch: the family modules (which do) are imported the first time
the registry is asked for (:func:`families`, :func:`models`, :func:`get_family`, …), and the functions that
need torch import it themselves.  So ``relviz.zoo.catalog`` — the zoo as plain data, for ``relviz models``
and the application's model list — reads without torch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relviz.core import limits
from relviz.core.errors import BadInputError, CheckpointError, RelvizError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from relviz.core.checkpoint import Checkpoint
    from relviz.core.trace import Trace
    from relviz.zoo.bounds import FamilyBounds

WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"
#: score threshold for a model whose card names none (a checkpoint of the user's, seeded random weights)
DEFAULT_THRESHOLD = 0.7


@dataclass
class RunOptions:
    """What a user can set for one run; families read the fields that concern them."""

    threshold: float | None = None  # None: the model's default (:attr:`LoadedModel.default_threshold`)
    resize: int | None = None  # shorter side in pixels; 0 = no resize; None = the family's default
    capture: bool = True
    frame: int = 0  # first frame, for video inputs
    clip_length: int | None = None
    stride: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoadedModel:
    """A model ready to run, and where it came from."""

    family: Family
    name: str
    module: torch.nn.Module
    config: dict[str, Any]
    device: torch.device
    dtype: torch.dtype
    checkpoint: Checkpoint | None = None
    weights: str = "none"  # 'none' (seeded random), 'bundled' or a path
    #: the bundled model card's ``score_threshold`` (chosen on held-out scenes), or None where there is none
    default_threshold: float | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family.name,
            "config": self.config,
            "weights": self.weights,
            "checkpoint_sha256": self.checkpoint.sha256 if self.checkpoint else "",
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
        }


def with_default_threshold(model: LoadedModel, options: RunOptions) -> RunOptions:
    """``options`` with the threshold filled in where the user set none: the model card's, else
    :data:`DEFAULT_THRESHOLD`."""
    if options.threshold is not None:
        return options
    from dataclasses import replace

    default = getattr(model, "default_threshold", None)
    return replace(options, threshold=DEFAULT_THRESHOLD if default is None else default)


class Family:
    """One model family.  Subclasses implement the five methods below."""

    name: str = ""
    description: str = ""
    #: what the family takes: "image" or "clip"
    input_kind: str = "image"

    def build(self, config: dict[str, Any]) -> torch.nn.Module:
        """The architecture for ``config`` with freshly initialised weights."""
        raise NotImplementedError

    def config_from_checkpoint(self, ckpt: Checkpoint, overrides: dict[str, Any]) -> dict[str, Any]:
        """The architecture's config inferred from the state dict (and ``args``), then ``overrides``."""
        raise NotImplementedError

    def detect(self, state_dict: dict[str, torch.Tensor]) -> float:
        """How sure (0..1) this state dict belongs to the family, from its keys alone."""
        raise NotImplementedError

    def run(self, model: LoadedModel, inputs: list[np.ndarray], source: dict[str, Any],
            options: RunOptions) -> Trace:
        """Run on one image (``inputs`` of one) or one clip; return the trace with ``meta`` filled."""
        raise NotImplementedError

    def default_config(self) -> dict[str, Any]:
        return {}

    def prepare_checkpoint(self, ckpt: Checkpoint, name: str) -> Checkpoint:
        """The checkpoint in the layout :meth:`build` names its keys in (default: as it is).

        A family that reads other layouts (DETR: Hugging Face folders) converts them here, or refuses them with
        one sentence; ``name`` names the file in that sentence."""
        return ckpt

    def supported_precisions(self, device: torch.device) -> list[str]:
        """The precisions this family runs in on ``device`` (default: all the device offers)."""
        from relviz.core import devices

        return devices.supported_precisions(device)

    def config_bounds(self) -> FamilyBounds | None:
        """The family's table of setting bounds (:mod:`relviz.zoo.bounds`), or None for none."""
        from relviz.zoo.bounds import BOUNDS

        return BOUNDS.get(self.name)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    description: str
    config: dict[str, Any]
    #: bundled weights file name in ``weights/`` (safetensors), or None
    weights: str | None = None

    @property
    def weights_path(self) -> Path | None:
        return WEIGHTS_DIR / self.weights if self.weights else None

    @property
    def has_weights(self) -> bool:
        return self.weights_path is not None and self.weights_path.is_file()


_FAMILIES: dict[str, Family] = {}
_MODELS: dict[str, ModelEntry] = {}
_registering = False


def _ensure_registered() -> None:
    """Import the family modules (and torch with them) once, the first time the registry is read.

    Importing a family module registers its family and its models; the demo entries name those families,
    so they register last.
    """
    global _registering
    if _registering:
        return
    _registering = True
    import importlib

    try:
        for module in ("detr", "lrnet", "non_local", "relation", "demo"):  # demo last: it names the others
            importlib.import_module(f"relviz.zoo.{module}")
    except BaseException:
        _registering = False  # the next call tries again, and raises again (torch or torchvision missing)
        raise


def register_family(family: Family) -> Family:
    _FAMILIES[family.name] = family
    return family


def register_model(entry: ModelEntry) -> ModelEntry:
    _MODELS[entry.name] = entry
    return entry


def families() -> dict[str, Family]:
    _ensure_registered()
    return dict(_FAMILIES)


def models() -> dict[str, ModelEntry]:
    _ensure_registered()
    return dict(_MODELS)


def get_family(name: str) -> Family:
    _ensure_registered()
    if name not in _FAMILIES:
        raise BadInputError(f"unknown family {name!r}; valid families: {', '.join(sorted(_FAMILIES))}")
    return _FAMILIES[name]


def get_model(name: str) -> ModelEntry:
    _ensure_registered()
    if name not in _MODELS:
        raise BadInputError(f"unknown model {name!r}; valid models: {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def guess_family(state_dict: dict[str, torch.Tensor]) -> tuple[str, float]:
    """The family whose keys the state dict resembles most, and how sure (0..1)."""
    _ensure_registered()
    scores = {name: fam.detect(state_dict) for name, fam in _FAMILIES.items()}
    if not scores:
        return "", 0.0
    best = max(scores, key=scores.get)
    return best, scores[best]


def meta_module(family: Family, config: dict[str, Any]) -> torch.nn.Module:
    """The architecture built on the meta device: every shape, no memory, no initialisation cost."""
    import torch

    try:
        with torch.device("meta"):
            return family.build(config)
    except RelvizError:
        raise
    except (ValueError, TypeError, AssertionError, RuntimeError, KeyError, IndexError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise BadInputError(f"{family.name} models cannot be built with {_summary(config)}: {first}") from None


def count_parameters(family: Family, config: dict[str, Any]) -> int:
    """Parameter count of an architecture, built on the meta device (no memory, no init cost)."""
    return sum(p.numel() for p in meta_module(family, config).parameters())


def check_config(family: Family, config: dict[str, Any], origin: Callable[[str], str] | None = None,
                 what: str = "the architecture") -> torch.nn.Module:
    """Check ``config`` before anything is built; returns the architecture on the meta device.

    First every setting against the family's bounds (:mod:`relviz.zoo.bounds`; ``origin(key)`` says where a
    setting came from, for the sentence) — cheap, and it must come first: even on the meta device a declared
    20,001-layer DETR takes about a minute to build.  Then the parameter count, from the meta module, against
    :data:`relviz.core.limits.MAX_PARAMETERS`.  ``what`` names the architecture in that sentence.
    """
    bounds = family.config_bounds()
    if bounds is not None:
        bounds.check(family.name, config, origin or (lambda key: "given"))
    module = meta_module(family, config)
    n = sum(p.numel() for p in module.parameters())
    if n > limits.MAX_PARAMETERS:
        raise BadInputError(f"{what} ({family.name}: {_summary(config)}) has {n:,} parameters; relviz builds "
                            f"models of at most {limits.MAX_PARAMETERS:,}")
    return module


def check_precision(family: Family, precision: str, device: torch.device) -> torch.dtype:
    """The dtype of ``precision`` once ``family`` runs in it on ``device``; else one sentence listing those that do."""
    from relviz.core import devices

    name = (precision or "fp32").lower()
    working = family.supported_precisions(device)
    if name in devices.PRECISIONS and name not in working:
        raise BadInputError(f"{family.name} models do not run in {name} on {device}; precisions that work there: "
                            f"{', '.join(working)}")
    return devices.resolve_precision(name, device)


@contextlib.contextmanager
def _seeded(seed: int):
    import torch

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.random.set_rng_state(state)


def _check_fit(family: Family, config: dict[str, Any], ckpt: Checkpoint, meta: torch.nn.Module, what: str) -> None:
    """The state dict against the architecture's shapes, compared on the meta module: nothing is built yet."""
    from relviz.core.checkpoint import compare_state_dict

    report = compare_state_dict(meta, ckpt.state_dict)
    if not report.ok:
        guess, score = guess_family(ckpt.state_dict)
        hint = ""
        if guess and guess != family.name and score >= 0.5:
            hint = f" It looks like a {guess} checkpoint instead."
        elif score < 0.5:
            hint = " It does not look like any family relviz knows."
        raise CheckpointError(f"{what} does not fit {family.name} ({_summary(config)}): "
                              f"{report.describe()}.{hint}")


def _load_into(family: Family, config: dict[str, Any], ckpt: Checkpoint) -> torch.nn.Module:
    module = family.build(config)
    module.load_state_dict(ckpt.state_dict, strict=True)
    return module


def config_summary(config: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.items() if not isinstance(v, (dict, list)))


def _summary(config: dict[str, Any], limit: int = 240) -> str:
    """config_summary, shortened for a one-line message."""
    text = config_summary(config)
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _infer_config(family: Family, ckpt: Checkpoint, overrides: dict[str, Any], name: str) -> dict[str, Any]:
    """``family.config_from_checkpoint``, with a state dict that lacks what the family reads said in a sentence."""
    try:
        return family.config_from_checkpoint(ckpt, overrides)
    except RelvizError:
        raise
    except KeyError as exc:
        raise CheckpointError(f"{name} is not a complete {family.name} state dict (it lacks "
                              f"{str(exc.args[0] if exc.args else exc)[:120]})") from None
    except (IndexError, TypeError, ValueError, ZeroDivisionError, AttributeError, OverflowError) as exc:
        raise CheckpointError(f"{name} is not a {family.name} state dict relviz can read "
                              f"({(str(exc).splitlines() or [type(exc).__name__])[0][:160]})") from None


_FLAGS = {"nheads": "--heads", "dilation": "--dilation"}


def _origin(family: Family, overrides: dict[str, Any], inferred: dict[str, Any], source: str,
            entry: ModelEntry | None) -> Callable[[str], str]:
    """Where each setting came from: a command-line flag, the checkpoint, the zoo entry or the family's default."""
    bounds = family.config_bounds()
    given_as = {used: given for given, used in (bounds.aliases if bounds else {}).items() if given in overrides}

    def origin(key: str) -> str:
        key = given_as.get(key, key)  # the relation detectors take --heads (nheads) as heads
        if key in overrides:
            return f"from {_FLAGS.get(key, '--config')}"
        if key in inferred:
            return source
        if entry is not None and key in entry.config:
            return f"of model {entry.name}"
        return "the default"

    return origin


def load_model(
    name: str | None = None,
    weights: str | Path | None = None,
    family: str | None = None,
    device: str | torch.device = "auto",
    precision: str = "fp32",
    overrides: dict[str, Any] | None = None,
    seed: int = 0,
) -> LoadedModel:
    """Build a zoo model or load a checkpoint, ready to run on ``device``.

    - ``name`` alone: the zoo entry with its bundled weights (an error if it has none);
    - ``name`` and ``weights='none'``: that architecture with weights seeded by ``seed``;
    - ``weights=PATH``: a checkpoint; its family is ``family``, else ``name``'s, else detected from keys,
      and its config is inferred from the state dict (``overrides`` fill in what weights cannot tell).
    """
    import torch

    from relviz.core import devices
    from relviz.core.checkpoint import load_checkpoint

    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    dev = devices.resolve_device(device)
    entry = get_model(name) if name else None
    weights_str = None if weights is None else str(weights)

    if weights_str is not None and weights_str.lower() == "none":
        if entry is None:
            raise BadInputError("--weights none needs --model NAME to say which architecture to build")
        fam = get_family(entry.family)
        dtype = check_precision(fam, precision, dev)
        config = {**fam.default_config(), **entry.config, **overrides}
        check_config(fam, config, _origin(fam, overrides, {}, "", entry), f"model {entry.name}")
        with _seeded(seed):
            module = fam.build(config)
        loaded = LoadedModel(fam, entry.name, module, config, dev, dtype, None, "none")
    else:
        if weights_str is None:
            if entry is None:
                raise BadInputError("give --model NAME or --weights PATH")
            if not entry.has_weights:
                raise BadInputError(
                    f"model {entry.name} has no bundled weights; pass --weights PATH, or --weights none "
                    "for seeded random weights"
                )
            path = entry.weights_path
            threshold = _verify_bundled(entry, path)
            source = "bundled"
        else:
            path = Path(weights_str)
            source = str(path)
        named = family or (entry.family if entry is not None else None)
        fam = get_family(named) if named else None
        if fam is not None:  # refuse a precision the family cannot run in before the file is read
            check_precision(fam, precision, dev)
        ckpt = load_checkpoint(path)
        if fam is None:
            guess, score = guess_family(ckpt.state_dict)
            if score < 0.5:
                raise CheckpointError(
                    f"{path.name} does not look like a checkpoint of any family relviz knows "
                    f"({', '.join(sorted(_FAMILIES))}); pass --family if it is one"
                )
            fam = get_family(guess)
        dtype = check_precision(fam, precision, dev)
        ckpt = fam.prepare_checkpoint(ckpt, path.name)
        base = {**fam.default_config(), **(entry.config if entry is not None else {})}
        inferred = _infer_config(fam, ckpt, overrides, path.name)
        config = {**base, **inferred}
        origin = _origin(fam, overrides, inferred, f"read from {path.name}", entry)
        meta = check_config(fam, config, origin, f"the architecture {path.name} declares")
        _check_fit(fam, config, ckpt, meta, path.name)
        module = _load_into(fam, config, ckpt)
        loaded = LoadedModel(fam, entry.name if entry else path.stem, module, config, dev, dtype, ckpt, source)
        if source == "bundled":
            loaded.default_threshold = threshold
    loaded.module.eval()
    try:
        loaded.module.to(device=dev, dtype=dtype)
    except torch.cuda.OutOfMemoryError:
        raise BadInputError(f"the GPU ({dev}) ran out of memory loading {loaded.name}; try --device cpu") from None
    return loaded


def _verify_bundled(entry: ModelEntry, path: Path) -> float | None:
    """Bundled weights must match the sha256 in their model card, so a swapped file is refused.

    Returns the card's default score threshold (``score_threshold.value``), or None where it has none.
    """
    import json

    from relviz.core.checkpoint import sha256_of

    card_path = path.with_suffix(".json")
    if not card_path.is_file():
        return None
    card = json.loads(card_path.read_text())
    expected = card.get("sha256")
    if expected and expected != sha256_of(path):
        raise CheckpointError(
            f"bundled weights {path.name} do not match the sha256 in {card_path.name}; refusing them"
        )
    value = (card.get("score_threshold") or {}).get("value")
    return float(value) if isinstance(value, (int, float)) and 0.0 <= value <= 1.0 else None


def run_model(model: LoadedModel, input_path: str | Path, options: RunOptions | None = None) -> Trace:
    """Read ``input_path`` (image or video) and run ``model`` on it; the trace records everything."""
    import torch

    from relviz.zoo.inputs import read_inputs

    options = with_default_threshold(model, options or RunOptions())
    inputs, source = read_inputs(input_path, model.family.input_kind, options)
    try:
        with torch.inference_mode():
            trace = model.family.run(model, inputs, source, options)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        raise BadInputError(f"the GPU ({model.device}) ran out of memory on {Path(input_path).name}; "
                            "try --device cpu or a smaller --resize") from None
    trace.meta.setdefault("model", model.describe())
    return trace
