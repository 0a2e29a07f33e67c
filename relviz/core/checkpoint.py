"""Checkpoint loading that never runs code.

``torch.load(..., weights_only=True)`` always: a pickle that would build anything but tensors and plain
containers is refused before any of it runs.  The one extra type allowed is ``argparse.Namespace``,
which training scripts such as DETR's ``main.py`` store under ``'args'``.  ``.safetensors`` files are
read with safetensors (no pickle at all).  The state dict is found under ``model``, ``state_dict`` or
``model_state_dict``, or at the top level, and a ``module.`` prefix (DataParallel) is stripped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from relviz.core.errors import CheckpointError, UnsafeCheckpointError

STATE_DICT_KEYS = ("model", "state_dict", "model_state_dict")


@dataclass
class Checkpoint:
    """A state dict with what came with it."""

    state_dict: dict[str, torch.Tensor]
    path: Path | None = None
    sha256: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_torch(path: Path) -> Any:
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).split("\n")[0]
        raise UnsafeCheckpointError(
            f"{path.name} is not a plain weights file: loading it would run code, so it was refused "
            f"({reason})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path.name} is not a readable PyTorch checkpoint (truncated or corrupt?): "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        tensors: dict[str, torch.Tensor] = {}
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            metadata = dict(fh.metadata() or {})
            for key in fh.keys():
                tensors[key] = fh.get_tensor(key)
        return tensors, metadata
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path.name} is not a readable safetensors file: {exc}") from None


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def extract_state_dict(obj: Any, name: str = "checkpoint") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict inside a loaded checkpoint, and its ``args`` as a dict (empty when absent)."""
    args: dict[str, Any] = {}
    if isinstance(obj, dict):
        raw_args = obj.get("args")
        if isinstance(raw_args, argparse.Namespace):
            args = dict(vars(raw_args))
        elif isinstance(raw_args, dict):
            args = dict(raw_args)
    state = None
    if isinstance(obj, dict):
        for key in STATE_DICT_KEYS:
            if _is_state_dict(obj.get(key)):
                state = obj[key]
                break
        if state is None and _is_state_dict(obj):
            state = obj
        if state is None:
            # tolerate non-tensor entries at the top level (e.g. an 'epoch' beside the weights)
            tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
            if len(tensors) > 0 and len(tensors) >= len(obj) - 4:
                state = tensors
    if state is None:
        found = ", ".join(map(str, obj.keys())) if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(
            f"{name} holds no state dict (looked under {', '.join(STATE_DICT_KEYS)} and the top level; "
            f"found: {found})"
        )
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state), args


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a ``.pth``/``.pt``/``.ckpt``/``.bin`` or ``.safetensors`` file without running any code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    metadata: dict[str, Any] = {}
    if path.suffix.lower() == ".safetensors":
        state, raw_meta = _read_safetensors(path)
        metadata = dict(raw_meta)
        args = {}
        if "args" in raw_meta:
            try:
                args = json.loads(raw_meta["args"])
            except json.JSONDecodeError:
                args = {}
        if all(k.startswith("module.") for k in state):
            state = {k[len("module."):]: v for k, v in state.items()}
    else:
        obj = _read_torch(path)
        state, args = extract_state_dict(obj, path.name)
        if isinstance(obj, dict) and "epoch" in obj and isinstance(obj["epoch"], int):
            metadata["epoch"] = obj["epoch"]
    return Checkpoint(state_dict=state, path=path, sha256=sha256_of(path), args=args, metadata=metadata)


@dataclass
class FitReport:
    """How a state dict differs from a model's: the three lists a user needs to see."""

    missing: list[str]
    unexpected: list[str]
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # key, checkpoint shape, model shape

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self, limit: int = 8) -> str:
        def listing(keys: list[str]) -> str:
            more = f", … ({len(keys) - limit} more)" if len(keys) > limit else ""
            return ", ".join(keys[:limit]) + more

        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing keys: {listing(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected keys: {listing(self.unexpected)}")
        if self.mismatched:
            shown = [f"{k} (checkpoint {list(a)} vs model {list(b)})" for k, a, b in self.mismatched]
            parts.append(f"{len(self.mismatched)} shape mismatches: {listing(shown)}")
        return "; ".join(parts) if parts else "the checkpoint fits"


def compare_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> FitReport:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        (k, tuple(state[k].shape), tuple(v.shape))
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    return FitReport(missing, unexpected, mismatched)


def load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str = "checkpoint") -> None:
    """Load ``state`` into ``model`` strictly, or raise one readable report of every difference."""
    report = compare_state_dict(model, state)
    if not report.ok:
        raise CheckpointError(f"{what} does not fit the model: {report.describe()}")
    model.load_state_dict(state, strict=True)
