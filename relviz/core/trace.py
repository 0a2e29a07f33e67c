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
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from relviz.core.atomic import atomic_path
from relviz.core.errors import BadInputError

FORMAT_VERSION = 1
_FACTOR_SEP = "::"


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
        raise KeyError(f"the trace has no tensor {name!r}; it has: {', '.join(self.names()) or 'none'}")

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
        return self.arrays[name][..., query, :]

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
        """Read a trace written by :meth:`save`; never unpickles anything."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as npz:
                data = {k: npz[k] for k in npz.files}
        except FileNotFoundError:
            raise BadInputError(f"trace file {path} does not exist") from None
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
            raise BadInputError(f"{path} is not a relviz trace (.npz) file: {exc}") from None
        if "meta" not in data:
            raise BadInputError(f"{path} is an .npz file but not a relviz trace (no 'meta' entry)")
        try:
            meta = json.loads(str(data.pop("meta")))
        except json.JSONDecodeError as exc:
            raise BadInputError(f"{path} has unreadable trace metadata: {exc}") from None
        trace = cls(meta=meta)
        factored = meta.pop("factored", {})
        for name, info in factored.items():
            q = data.pop(f"{name}{_FACTOR_SEP}q")
            k = data.pop(f"{name}{_FACTOR_SEP}k")
            mask = data.pop(f"{name}{_FACTOR_SEP}key_mask", None)
            trace.factored[name] = FactoredAttention(q, k, info["scale"], mask)
        trace.arrays.update(data)
        return trace
