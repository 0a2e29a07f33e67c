"""The trace: what a model computed for one input, in a form every panel and figure reads.

A :class:`Trace` holds named numpy arrays (the public tensor contract of DESIGN §3, documented in the
README) and a JSON-able ``meta`` dict: the input's identity, the preprocessing (resize, padding, the
feature grid and its stride) and the model.  Large attention matrices are kept as their factors
(:class:`FactoredAttention`: queries, keys, scale and key mask) and computed when asked, so a hover
over a 1,000-token encoder costs one row per head, not a 1,000² matrix per head and layer.

On disk a trace is one ``.npz`` file, read with ``allow_pickle=False``; the metadata is a JSON string
under ``meta``; a factored tensor ``name`` is stored as ``name::q``, ``name::k`` and ``name::key_mask``.
"""

from __future__ import annotations

import json
import math
import stat
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from relviz.core import limits
from relviz.core.archive import check_zip_members
from relviz.core.atomic import atomic_path
from relviz.core.errors import BadInputError
from relviz.core.trace_contract import Tensor, check_factors, check_layout, check_values, shape_text
from relviz.core.trace_meta import FORMAT_VERSION, TraceMeta, parse_meta

__all__ = ["FORMAT_VERSION", "FactoredAttention", "MissingTensorError", "Trace", "softmax"]
_FACTOR_SEP = "::"


class MissingTensorError(BadInputError, KeyError):
    """A view asked for a tensor the trace does not hold (still a ``KeyError`` for code that asks first)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax; rows that are entirely ``-inf`` become zeros."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(x - m)
    s = e.sum(axis=axis, keepdims=True)
    return e / np.where(s > 0, s, 1.0)


@dataclass
class FactoredAttention:
    """``softmax(scale · q kᵀ)`` over the keys, with masked keys excluded, kept as factors.

    ``q`` is (..., Nq, d) and ``k`` is (..., Nk, d) with the same leading dims (e.g. layer, head);
    ``key_mask`` is (Nk,) and True where a key is padding.
    """

    q: np.ndarray
    k: np.ndarray
    scale: float
    key_mask: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return (*self.q.shape[:-1], self.k.shape[-2])

    def _logits(self, q: np.ndarray) -> np.ndarray:
        logits = np.matmul(q * np.float32(self.scale), np.swapaxes(self.k, -1, -2))
        if self.key_mask is not None and self.key_mask.any():
            logits = np.where(self.key_mask, -np.inf, logits)
        return logits

    def rows(self, query: int | np.ndarray) -> np.ndarray:
        """Attention of one query (or several) over all keys, for every leading index: (..., Nk)."""
        q = self.q[..., query : query + 1, :] if np.isscalar(query) else self.q[..., query, :]
        out = softmax(self._logits(q))
        return out[..., 0, :] if np.isscalar(query) else out

    def full(self) -> np.ndarray:
        """The whole matrix; refused when it would not fit the memory bound (use :meth:`rows`)."""
        nbytes = math.prod(self.shape) * 4
        if nbytes > limits.MAX_MATERIALISED_BYTES:
            raise BadInputError(
                f"the attention {shape_text(self.shape)} would take {nbytes / 1e9:.1f} GB in full; relviz draws "
                f"it a row at a time, and at most {limits.MAX_MATERIALISED_BYTES / 1e9:.1f} GB at once"
            )
        return softmax(self._logits(self.q)).astype(np.float32)


@dataclass
class Trace:
    """Relation tensors and metadata recorded for one input."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    factored: dict[str, FactoredAttention] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    # -- mapping interface -------------------------------------------------------------------------
    def __contains__(self, name: str) -> bool:
        return name in self.arrays or name in self.factored

    def __getitem__(self, name: str) -> np.ndarray:
        """The named tensor; factored attention is materialised (use :meth:`rows` for one query)."""
        if name in self.arrays:
            return self.arrays[name]
        if name in self.factored:
            return self.factored[name].full()
        raise self.missing(name)

    def __setitem__(self, name: str, value: np.ndarray | FactoredAttention) -> None:
        if _FACTOR_SEP in name or name == "meta":
            raise ValueError(f"invalid tensor name {name!r}")
        if isinstance(value, FactoredAttention):
            self.arrays.pop(name, None)
            self.factored[name] = value
        else:
            self.factored.pop(name, None)
            self.arrays[name] = np.asarray(value)

    def names(self) -> list[str]:
        return sorted([*self.arrays, *self.factored])

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def shape(self, name: str) -> tuple[int, ...]:
        if name in self.factored:
            return self.factored[name].shape
        return tuple(self[name].shape)

    def rows(self, name: str, query: int) -> np.ndarray:
        """Row ``query`` of an attention tensor for every leading index, without building the matrix."""
        if name in self.factored:
            return self.factored[name].rows(query)
        if name not in self.arrays:
            raise self.missing(name)
        return self.arrays[name][..., query, :]

    def missing(self, name: str) -> MissingTensorError:
        """The error for a tensor this trace lacks: one sentence with a few of the names it has."""
        names = self.names()
        held = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "") if names else "none"
        return MissingTensorError(f"the trace has no tensor {name!r}, which this needs (it holds: {held})")

    # -- metadata helpers --------------------------------------------------------------------------
    @property
    def family(self) -> str:
        return self.meta.get("family", "")

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the original input in pixels."""
        w, h = self.meta["input"]["size"]
        return int(w), int(h)

    @property
    def image(self) -> np.ndarray | None:
        """The input image (H, W, 3) uint8 when the trace embeds it."""
        return self.arrays.get("input/image")

    # -- file form ---------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the trace as one ``.npz`` file, atomically."""
        path = Path(path)
        payload: dict[str, np.ndarray] = dict(self.arrays)
        meta = dict(self.meta)
        meta["format_version"] = FORMAT_VERSION
        meta["factored"] = {}
        for name, fa in self.factored.items():
            payload[f"{name}{_FACTOR_SEP}q"] = fa.q
            payload[f"{name}{_FACTOR_SEP}k"] = fa.k
            if fa.key_mask is not None:
                payload[f"{name}{_FACTOR_SEP}key_mask"] = fa.key_mask
            meta["factored"][name] = {"kind": "softmax_qk", "scale": float(fa.scale)}
        payload["meta"] = np.array(json.dumps(meta))
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **payload)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        """Read a trace written by :meth:`save`, checked at the boundary; never unpickles anything.

        The archive's declared sizes are checked before anything is decompressed, every member's ``.npy``
        header before its data is read, the metadata against its schema (:mod:`relviz.core.trace_meta`)
        and the tensors against the contract (:mod:`relviz.core.trace_contract`); whatever is wrong
        becomes one :class:`BadInputError` sentence naming the file and the field or tensor.
        """
        path = Path(path)
        source = _shown_name(path)
        with _open_archive(path, source) as archive:
            members = _members(archive, source)
            headers = {name: _header(archive, info, name, source) for name, info in members.items()}
            if "meta" not in headers:
                raise BadInputError(f"{source} is an .npz file but not a relviz trace (no 'meta' entry)")
            raw = _read_meta(archive, members["meta"], headers.pop("meta"), source)
            meta = parse_meta(raw, source)
            tensors, factors = _layout(headers, meta, source)
            sizes = check_layout(tensors, factors, meta, source)
            data = {name: _read(archive, members[name], name, source) for name in headers}
        plain = {name: data[name] for name in tensors if name not in factors}
        check_values(plain, sizes, source)
        raw.pop("factored", None)
        trace = cls(meta=raw)
        for name in factors:
            mask = data.get(f"{name}{_FACTOR_SEP}key_mask")
            trace.factored[name] = FactoredAttention(data[f"{name}{_FACTOR_SEP}q"], data[f"{name}{_FACTOR_SEP}k"],
                                                     meta.factored[name].scale, mask)
        trace.arrays.update(plain)
        return trace


# -- reading a trace file: each step refuses with one sentence -------------------------------------------
_READ_ERRORS = (ValueError, TypeError, SyntaxError, OSError, EOFError, RuntimeError, NotImplementedError,
                RecursionError, zipfile.BadZipFile, zlib.error)


def _shown_name(path: Path) -> str:
    """The file's name for a one-line sentence (control characters escaped)."""
    name = path.name or str(path)
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in name)


def _open_archive(path: Path, source: str) -> zipfile.ZipFile:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise BadInputError(f"trace file {source} does not exist") from None
    except OSError as exc:
        raise BadInputError(f"trace file {source} cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise BadInputError(f"{source} is not a file, so not a relviz trace (.npz) file")
    try:
        is_zip = zipfile.is_zipfile(path)
    except OSError as exc:
        raise BadInputError(f"trace file {source} cannot be read: {exc.strerror or exc}") from None
    if not is_zip:
        raise BadInputError(f"{source} is not a relviz trace (.npz) file: it is not a zip archive (or it is cut short)")
    check_zip_members(path, limits.MAX_TRACE_BYTES, f"trace {source}", max_ratio=limits.MAX_COMPRESSION_RATIO,
                      ratio_free_bytes=limits.ZIP_RATIO_FREE_BYTES)
    try:
        return zipfile.ZipFile(path)
    except _READ_ERRORS as exc:
        raise BadInputError(f"trace {source} is not a readable zip archive: {_reason(exc)}") from None


def _members(archive: zipfile.ZipFile, source: str) -> dict[str, zipfile.ZipInfo]:
    """Tensor name → zip member (the archive's declared sizes were checked when it was opened)."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        if info.flag_bits & 0x1:
            raise BadInputError(f"{source} holds an encrypted entry ({info.filename!r}); relviz traces are not "
                                "encrypted")
        if not info.filename.endswith(".npy"):
            raise BadInputError(f"{source} holds {info.filename!r}, which is not a numpy array (.npy): not a "
                                "relviz trace")
        name = info.filename.removesuffix(".npy")
        if name in members:
            raise BadInputError(f"{source} holds the entry {name!r} twice; refusing to guess which one is meant")
        members[name] = info
    return members


def _header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, source: str) -> Tensor:
    """A member's declared shape and dtype, from its ``.npy`` header; the data must be exactly that big."""
    try:
        with archive.open(info) as fp:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
            offset = fp.tell()
    except _READ_ERRORS as exc:
        raise BadInputError(f"{source}: entry {name!r} is not a readable numpy array ({_reason(exc)})") from None
    if dtype.hasobject:
        raise BadInputError(f"{source}: {name} holds Python objects (dtype object); relviz never unpickles a "
                            "trace, so it cannot be read")
    nbytes = math.prod(int(v) for v in shape) * dtype.itemsize
    if offset + nbytes != info.file_size:
        raise BadInputError(f"{source}: {name} declares a {shape_text(shape)} {dtype} array ({nbytes:,} bytes) "
                            f"but holds {max(info.file_size - offset, 0):,} bytes: the file is damaged")
    return Tensor(tuple(int(v) for v in shape), dtype)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, source: str) -> np.ndarray:
    try:
        with archive.open(info) as fp:
            return np.lib.format.read_array(fp, allow_pickle=False)
    except _READ_ERRORS as exc:
        raise BadInputError(f"{source}: {name} cannot be read ({_reason(exc)}): the file is damaged") from None


def _read_meta(archive: zipfile.ZipFile, info: zipfile.ZipInfo, header: Tensor, source: str) -> Any:
    """The metadata: one JSON string (a 0-d text array), parsed."""
    if header.dtype.kind not in "US" or header.shape != ():
        raise BadInputError(f"{source} has a 'meta' entry that is a {shape_text(header.shape)} {header.dtype} "
                            "array, not the JSON string of a relviz trace")
    if info.file_size > limits.MAX_TRACE_META_BYTES:
        raise BadInputError(f"{source} has {info.file_size / 1e6:.0f} MB of metadata; a relviz trace has at most "
                            f"{limits.MAX_TRACE_META_BYTES / 1e6:.0f} MB")
    value = _read(archive, info, "meta", source).item()
    try:
        text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BadInputError(f"{source} has unreadable trace metadata ({_reason(exc)})") from None


def _layout(headers: dict[str, Tensor], meta: TraceMeta, source: str) -> tuple[dict[str, Tensor], set[str]]:
    """Plain tensors and the logical shape of each factored one (after its factors are checked)."""
    tensors = {name: t for name, t in headers.items() if _FACTOR_SEP not in name}
    for name in headers:
        if _FACTOR_SEP in name:
            base, _, part = name.partition(_FACTOR_SEP)
            if base not in meta.factored or part not in ("q", "k", "key_mask"):
                raise BadInputError(f"{source} is not a usable relviz trace: {name} looks like an attention factor, "
                                    f"but meta.factored does not describe {base!r} with a {part!r} part")
    for name in meta.factored:
        if name in tensors:
            raise BadInputError(f"{source} is not a usable relviz trace: {name} is both a plain array and named "
                                "in meta.factored")
        q, k = headers.get(f"{name}{_FACTOR_SEP}q"), headers.get(f"{name}{_FACTOR_SEP}k")
        if q is None or k is None:
            missing = f"{name}{_FACTOR_SEP}{'q' if q is None else 'k'}"
            raise BadInputError(f"{source} is not a usable relviz trace: meta.factored names {name!r}, but {missing} "
                                "is missing")
        tensors[name] = check_factors(name, q, k, headers.get(f"{name}{_FACTOR_SEP}key_mask"), source)
    return tensors, set(meta.factored)
