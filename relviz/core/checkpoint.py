"""Checkpoint loading that never runs code, and never spends memory or time a file only declares.

``torch.load(..., weights_only=True)`` always: a pickle that would build anything but tensors and plain
containers is refused before any of it runs.  The one extra type allowed is ``argparse.Namespace``,
which training scripts such as DETR's ``main.py`` store under ``'args'``.  ``.safetensors`` files are
read with safetensors (no pickle at all).  The state dict is found under ``model``, ``state_dict`` or
``model_state_dict``, or at the top level, and a ``module.`` prefix (DataParallel) is stripped.

Before anything is read, what the file *declares* is checked against :mod:`relviz.core.limits`: a torch.save
zip archive's member sizes (:func:`relviz.core.archive.check_zip_members`: zip bombs) and the size of its
pickle; a legacy torch file's pickles and the storage bytes they declare; a safetensors header's length,
shapes, dtypes and offsets.  After reading, the state dict's names (count, length, printable), its tensors
(dense, no more values than their data holds) and their values (finite) are checked, so a checkpoint that
is refused is refused here, with one sentence, before any model is built from it.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import pickle
import pickletools
import re
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from relviz.core import limits, model_folder
from relviz.core.archive import check_zip_members, format_bytes
from relviz.core.errors import CheckpointError, UnsafeCheckpointError

STATE_DICT_KEYS = ("model", "state_dict", "model_state_dict")

#: bytes per element of each safetensors dtype
SAFETENSORS_DTYPES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}
#: bytes per element of the storage classes a legacy torch.save pickle names (``torch FloatStorage``)
_LEGACY_STORAGES = {
    "BoolStorage": 1, "ByteStorage": 1, "CharStorage": 1, "ShortStorage": 2, "HalfStorage": 2,
    "BFloat16Storage": 2, "IntStorage": 4, "FloatStorage": 4, "LongStorage": 8, "DoubleStorage": 8,
    "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16,
}
_FINITE_CHUNK = 1 << 24  # elements checked for NaN/Inf at a time (bounds the temporary mask)


@dataclass
class Checkpoint:
    """A state dict with what came with it."""

    state_dict: dict[str, torch.Tensor]
    path: Path | None = None
    sha256: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    #: a Hugging Face folder's ``config.json`` (read beside the weights file), else None
    model_config: dict[str, Any] | None = None


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _shown(key: Any, limit: int = 60) -> str:
    """A key as it can appear in a one-line message: printable, and shortened."""
    text = str(key)
    if not text.isprintable():
        text = repr(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- torch.save files: what they declare, checked before torch.load ---------------------------------


def _is_torch_zip(path: Path) -> bool:
    """torch.load's own test: a zip archive starts with a local file header."""
    with open(path, "rb") as fh:
        return fh.read(4) == b"PK\x03\x04"


def _check_torch_zip(path: Path) -> None:
    """Member sizes (zip bombs) and the size of ``data.pkl``, from the archive's directory alone."""
    what = f"checkpoint {path.name}"
    members = check_zip_members(path, limits.MAX_WEIGHT_BYTES, what, error=CheckpointError)
    # torch reads <folder>/data.pkl, the folder being the first member's
    first = members[0].filename if members else ""
    prefix = first.split("/")[0] + "/" if "/" in first else ""
    pickle_member = next((m for m in members if m.filename == f"{prefix}data.pkl"), None)
    if pickle_member is None:
        raise CheckpointError(f"{what} is a zip archive but not a PyTorch checkpoint (it has no {prefix}data.pkl)")
    if pickle_member.file_size > limits.MAX_PICKLE_BYTES:
        raise CheckpointError(
            f"{what} describes its tensors in a {format_bytes(pickle_member.file_size)} pickle (data.pkl); relviz "
            f"reads at most {format_bytes(limits.MAX_PICKLE_BYTES)} (real checkpoints need well under 1 MB)"
        )


def _scan_pickle(fh: io.BufferedReader, budget: int) -> tuple[list[Any], int]:
    """Walk one pickle's opcodes without running it: (its int arguments, the storage bytes it declares).

    A legacy torch.save pickle names each storage by a persistent id ``('storage', torch.<Type>Storage, key,
    location, numel, None)``; it declares numel × the storage type's element size (8 for a type not known).
    The storage type is the last class pushed, by GLOBAL or fetched from the memo.  Raises ValueError for bytes
    that are not a pickle, or a pickle longer than ``budget``.
    """
    ints: list[Any] = []
    memo: dict[int, Any] = {}
    top: Any = None  # what the last opcode pushed, as far as the scan cares: ("class", name) or None
    storage_class, numel, declared, start = "", 0, 0, fh.tell()
    for op, arg, _pos in pickletools.genops(fh):
        if fh.tell() - start > budget:
            raise ValueError("pickle over budget")
        name = op.name
        if name in ("GLOBAL", "STACK_GLOBAL"):
            top = ("class", str(arg or ""))
            storage_class = top[1]
        elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[int(arg)] = top
        elif name == "MEMOIZE":
            memo[len(memo)] = top
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            top = memo.get(int(arg))
            if top is not None:
                storage_class = top[1]
        elif name in ("BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG"):
            top, numel = None, int(arg) if isinstance(arg, int) else 0
            ints.append(arg)
        elif name in ("BINPERSID", "PERSID"):
            declared += max(numel, 0) * _LEGACY_STORAGES.get(storage_class.split(" ")[-1], 8)
            top = None
        else:
            top = None
    return ints, declared


def _check_legacy_torch(path: Path) -> None:
    """The pre-1.6 torch.save format: its magic number, the size of its pickles and the storage bytes they declare."""
    what = f"checkpoint {path.name}"
    size = path.stat().st_size
    if size > limits.MAX_WEIGHT_BYTES:
        raise CheckpointError(f"{what} is {format_bytes(size)}; relviz reads at most "
                              f"{format_bytes(limits.MAX_WEIGHT_BYTES)}")
    with open(path, "rb") as fh:
        try:
            magic, _ = _scan_pickle(fh, 64)
        except (ValueError, EOFError, struct.error):
            magic = []
        if magic != [torch.serialization.MAGIC_NUMBER]:
            raise CheckpointError(f"{what} is not a PyTorch checkpoint (neither a torch.save zip archive nor the "
                                  "legacy torch.save format)")
        declared = 0
        try:
            for _ in range(3):  # protocol version, system info, then the object with its storages
                _, storage_bytes = _scan_pickle(fh, limits.MAX_PICKLE_BYTES - fh.tell())
                declared += storage_bytes
        except ValueError as exc:
            if fh.tell() >= limits.MAX_PICKLE_BYTES:
                raise CheckpointError(f"{what} describes its tensors in a pickle of more than "
                                      f"{format_bytes(limits.MAX_PICKLE_BYTES)}; relviz reads at most that") from None
            raise CheckpointError(f"{what} is not a readable PyTorch checkpoint (truncated or corrupt?): "
                                  f"{str(exc)[:120]}") from None
        except (EOFError, struct.error):
            raise CheckpointError(f"{what} is not a readable PyTorch checkpoint (truncated or corrupt?)") from None
    if declared > size:
        raise CheckpointError(f"{what} declares {format_bytes(declared)} of tensor data, but the file holds only "
                              f"{format_bytes(size)} (corrupt or crafted)")


def _first_sentence(text: str) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line.split(". ")[0].rstrip(".")


def _load_failure(path: Path, exc: Exception) -> CheckpointError:
    """torch.load's exception as one sentence: a refused pickle says what it would have imported."""
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) and any(w in text for w in ("GLOBAL", "global", "reduce", "build")):
        named = re.search(r"GLOBAL ([\w.]+)", text)
        reason = f"it would import {named.group(1)}" if named else _first_sentence(text.split("error:")[-1])
        return UnsafeCheckpointError(
            f"{path.name} is not a plain weights file: loading it would run code, so it was refused "
            f"({_shown(reason, 120)})"
        )
    reason = _first_sentence(text) or type(exc).__name__
    if isinstance(exc, pickle.UnpicklingError):  # an opcode the weights-only reader does not know: not a pickle
        reason = next((ln.strip() for ln in text.splitlines() if "Unsupported operand" in ln), reason)
    return CheckpointError(f"{path.name} is not a readable PyTorch checkpoint (truncated or corrupt?): "
                           f"{_shown(reason, 160)}")


def _read_torch(path: Path) -> Any:
    if _is_torch_zip(path):
        _check_torch_zip(path)
    else:
        _check_legacy_torch(path)
    try:
        # torch's warnings (sparse invariants, deprecated storages) are not the user's concern: one sentence or none
        with torch.serialization.safe_globals([argparse.Namespace]), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 — any failure to read a hostile file is a sentence, never a traceback
        raise _load_failure(path, exc) from None


# -- safetensors: the header checked by hand before safe_open -------------------------------------


def _safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header, once its length, entries, dtypes, shapes and offsets agree with each other and the file."""
    what = f"safetensors file {path.name}"
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{what} is not a readable safetensors file (shorter than its 8-byte header length)")
        length = struct.unpack("<Q", head)[0]
        if length > limits.MAX_SAFETENSORS_HEADER_BYTES or length > size - 8:
            raise CheckpointError(
                f"{what} declares a {format_bytes(length)} header in a {format_bytes(size)} file; relviz reads "
                f"headers up to {format_bytes(limits.MAX_SAFETENSORS_HEADER_BYTES)} that fit in the file"
            )
        raw = fh.read(length)
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise CheckpointError(f"{what} is not a readable safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{what} is not a readable safetensors file (its header is not a JSON object)")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError(f"{what} has malformed metadata (__metadata__ must map names to strings)")
    _check_names(header, what)
    buffer = size - 8 - length
    total = 0
    for key, entry in header.items():
        total += _check_safetensors_entry(key, entry, buffer, what)
    if total > limits.MAX_WEIGHT_BYTES:
        raise CheckpointError(f"{what} declares {format_bytes(total)} of tensors; relviz reads at most "
                              f"{format_bytes(limits.MAX_WEIGHT_BYTES)}")
    return meta


def _check_safetensors_entry(key: str, entry: Any, buffer: int, what: str) -> int:
    """The bytes one header entry declares, once its dtype, shape and offsets are consistent and inside the file."""
    if not isinstance(entry, dict):
        raise CheckpointError(f"{what} describes tensor {_shown(key)} with a malformed header entry")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in SAFETENSORS_DTYPES:
        raise CheckpointError(f"{what} gives tensor {_shown(key)} the unknown dtype {_shown(dtype, 20)}")
    if not isinstance(shape, list) or len(shape) > 16 or not all(type(d) is int and d >= 0 for d in shape):
        raise CheckpointError(f"{what} gives tensor {_shown(key)} a malformed shape {_shown(shape, 40)}")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= buffer):
        raise CheckpointError(f"{what} places tensor {_shown(key)} at offsets {_shown(offsets, 40)}, outside its "
                              f"{format_bytes(buffer)} of data")
    numel = 1
    for d in shape:
        numel *= d
    nbytes = numel * SAFETENSORS_DTYPES[dtype]
    if nbytes != offsets[1] - offsets[0]:
        raise CheckpointError(f"{what} declares tensor {_shown(key)} as {dtype} {shape} ({format_bytes(nbytes)}) "
                              f"but gives it {format_bytes(offsets[1] - offsets[0])} of data")
    return nbytes


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    metadata = _safetensors_header(path)
    try:
        tensors: dict[str, torch.Tensor] = {}
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            for key in fh.keys():
                tensors[key] = fh.get_tensor(key)
        return tensors, metadata
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{path.name} is not a readable safetensors file: {_shown(exc, 160)}") from None


# -- the state dict: names, tensors, values -------------------------------------------------------


def _check_names(state: dict[Any, Any], what: str) -> None:
    """At most MAX_STATE_DICT_KEYS names, each printable text of at most MAX_KEY_LENGTH characters."""
    if len(state) > limits.MAX_STATE_DICT_KEYS:
        raise CheckpointError(f"{what} holds {len(state):,} tensors; relviz reads state dicts of at most "
                              f"{limits.MAX_STATE_DICT_KEYS:,}")
    for key in state:
        if not isinstance(key, str):
            raise CheckpointError(f"{what} names a tensor with {type(key).__name__} {_shown(key)} instead of text")
        if len(key) > limits.MAX_KEY_LENGTH:
            raise CheckpointError(f"{what} names a tensor with {len(key):,} characters ({_shown(key, 40)}); relviz "
                                  f"reads names of at most {limits.MAX_KEY_LENGTH}")
        if not key.isprintable():
            raise CheckpointError(f"{what} names a tensor {_shown(key)}, with characters that are not printable")


def _check_tensors(state: dict[str, torch.Tensor], what: str) -> None:
    """Dense tensors whose values their data holds, at most MAX_WEIGHT_BYTES in all."""
    total = 0
    for key, t in state.items():
        if t.layout != torch.strided or t.is_quantized or t.is_nested:
            raise CheckpointError(f"{what} holds {_shown(key)} as a sparse, quantized or nested tensor; relviz reads "
                                  "dense floating-point weights")
        nbytes = t.numel() * t.element_size()
        held = t.untyped_storage().nbytes()
        if nbytes > held:
            raise CheckpointError(f"{what} declares {_shown(key)} with shape {list(t.shape)} ({t.numel():,} values) "
                                  f"on {format_bytes(held)} of data (corrupt or crafted)")
        total += nbytes
    if total > limits.MAX_WEIGHT_BYTES:
        raise CheckpointError(f"{what} holds {format_bytes(total)} of tensors; relviz reads at most "
                              f"{format_bytes(limits.MAX_WEIGHT_BYTES)}")


def first_nonfinite(state: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor holding NaN or ±Inf, or None."""
    for key, t in state.items():
        if not (t.is_floating_point() or t.is_complex()) or t.numel() == 0:
            continue
        for chunk in t.reshape(-1).split(_FINITE_CHUNK):
            if chunk.element_size() == 1:  # float8 has no isfinite kernel; widened a chunk at a time
                chunk = chunk.float()
            if not bool(torch.isfinite(chunk).all()):
                return key
    return None


def check_state_dict(state: dict[Any, torch.Tensor], name: str) -> None:
    """Names, tensors and values of a state dict read from ``name``; raises CheckpointError with one sentence."""
    what = f"checkpoint {name}"
    _check_names(state, what)
    _check_tensors(state, what)
    bad = first_nonfinite(state)
    if bad is not None:
        raise CheckpointError(f"{what} holds NaN or infinite values in {_shown(bad)} (a diverged training run?); "
                              "relviz refuses weights that are not finite")


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _strip_module_prefix(state: dict[Any, torch.Tensor]) -> dict[Any, torch.Tensor]:
    if state and all(isinstance(k, str) and k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state


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
        if isinstance(obj, dict):
            keys = [_shown(k, 40) for k in list(obj)[:8]]
            found = ", ".join(keys) + (f", … ({len(obj) - 8:,} more)" if len(obj) > 8 else "")
        else:
            found = type(obj).__name__
        raise CheckpointError(
            f"{name} holds no state dict (looked under {', '.join(STATE_DICT_KEYS)} and the top level; "
            f"found: {found or 'nothing'})"
        )
    return dict(_strip_module_prefix(state)), args


def training_meta(meta: dict[Any, Any]) -> dict[str, Any]:
    """What relviz uses of an mmengine/mmcv checkpoint's ``meta``: the config text and the class names.

    mmengine stores the config as text under ``cfg`` (mmcv 1.x under ``config``) and the dataset's
    ``metainfo`` under ``dataset_meta`` (older files: ``CLASSES``).  The text is kept as text, never run;
    class names are kept only as a list of short strings.
    """
    out: dict[str, Any] = {}
    text = meta.get("cfg", meta.get("config"))
    if isinstance(text, str):
        out["config_text"] = text[: limits.MAX_CONFIG_TEXT_CHARS]
    dataset = meta.get("dataset_meta")
    classes = dataset.get("classes") if isinstance(dataset, dict) else meta.get("CLASSES")
    if (isinstance(classes, (list, tuple)) and 0 < len(classes) <= limits.MAX_CLASS_NAMES
            and all(isinstance(c, str) and len(c) <= limits.MAX_CLASS_NAME_CHARS for c in classes)):
        out["classes"] = list(classes)
    return out


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a ``.pth``/``.pt``/``.ckpt``/``.bin`` or ``.safetensors`` file without running any code.

    A Hugging Face model folder (:mod:`relviz.core.model_folder`) is read as its weights file, and its
    ``config.json`` — or one beside a weights file given directly — comes along as ``model_config``.
    Every bound of :mod:`relviz.core.limits` on checkpoints is checked on what the file declares before it is
    read, and the state dict is checked (:func:`check_state_dict`) before it is returned.
    """
    path = Path(path)
    if path.is_dir():
        path = model_folder.weights_in(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    model_config = model_folder.config_beside(path)  # before the weights: a broken config.json costs nothing
    metadata: dict[str, Any] = {}
    if path.suffix.lower() == ".safetensors":
        state, raw_meta = _read_safetensors(path)
        metadata = dict(raw_meta)
        args = {}
        if "args" in raw_meta:
            try:
                parsed = json.loads(raw_meta["args"])
            except (json.JSONDecodeError, RecursionError):
                parsed = {}
            args = parsed if isinstance(parsed, dict) else {}
        state = _strip_module_prefix(state)
    else:
        obj = _read_torch(path)
        state, args = extract_state_dict(obj, path.name)
        if isinstance(obj, dict) and "epoch" in obj and isinstance(obj["epoch"], int):
            metadata["epoch"] = obj["epoch"]
        if isinstance(obj, dict) and isinstance(obj.get("meta"), dict):
            metadata.update(training_meta(obj["meta"]))
    check_state_dict(state, path.name)
    return Checkpoint(state_dict=state, path=path, sha256=sha256_of(path), args=args, metadata=metadata,
                      model_config=model_config)


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
