"""Recording what relation layers compute, at no cost when nobody asks.

Relation layers call :func:`active_recorder` and record only when it returns a recorder, which is the
case inside ``with recording() as rec:``.  Tensors are kept as detached torch tensors until
:meth:`Recorder.finish`, so recording adds no device synchronisation to the forward pass.

Names follow the trace contract (README, DESIGN §3).  Every recorded tensor has the batch as its first
dimension; :meth:`Recorder.append` collects one tensor per layer and :meth:`Recorder.finish` stacks
them, so ``detr/encoder/self_attn`` recorded once per encoder layer becomes (L, H, S, S).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np
import torch

from relviz.core.trace import FactoredAttention, Trace

_ACTIVE: ContextVar[Recorder | None] = ContextVar("relviz_recorder", default=None)


@dataclass
class _Factors:
    q: torch.Tensor  # (B, ..., Nq, d)
    k: torch.Tensor  # (B, ..., Nk, d)
    scale: float
    key_padding_mask: torch.Tensor | None  # (B, Nk), True = padding


def _numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach()
    if t.is_floating_point():
        t = t.float()
    return t.cpu().numpy()


class Recorder:
    """Collects relation tensors during one forward pass."""

    def __init__(self) -> None:
        self._stacked: dict[str, list[torch.Tensor]] = defaultdict(list)
        self._single: dict[str, torch.Tensor] = {}
        self._factors: dict[str, list[_Factors]] = defaultdict(list)
        self.meta: dict = {}

    def append(self, name: str, tensor: torch.Tensor) -> None:
        """One layer's tensor (batch first); layers recorded under one name are stacked in order."""
        self._stacked[name].append(tensor.detach())

    def set(self, name: str, tensor: torch.Tensor) -> None:
        """A tensor recorded once per forward pass (batch first)."""
        self._single[name] = tensor.detach()

    def append_attention(
        self,
        name: str,
        q: torch.Tensor,
        k: torch.Tensor,
        scale: float,
        key_padding_mask: torch.Tensor | None = None,
    ) -> None:
        """One layer's softmax attention as factors: q (B, H, Nq, d), k (B, H, Nk, d)."""
        mask = None if key_padding_mask is None else key_padding_mask.detach()
        self._factors[name].append(_Factors(q.detach(), k.detach(), float(scale), mask))

    def names(self) -> list[str]:
        return sorted({*self._stacked, *self._single, *self._factors})

    def finish(self, index: int = 0, trace: Trace | None = None) -> Trace:
        """The recorded tensors of batch element ``index`` as a :class:`Trace` (numpy, float32)."""
        trace = trace if trace is not None else Trace()
        for name, tensors in self._stacked.items():
            trace[name] = np.stack([_numpy(t[index]) for t in tensors])
        for name, tensor in self._single.items():
            trace[name] = _numpy(tensor[index])
        for name, layers in self._factors.items():
            q = np.stack([_numpy(f.q[index]) for f in layers])
            k = np.stack([_numpy(f.k[index]) for f in layers])
            mask = layers[0].key_padding_mask
            mask = None if mask is None else _numpy(mask[index]).astype(bool)
            trace[name] = FactoredAttention(q, k, layers[0].scale, mask)
        trace.meta.update(self.meta)
        return trace


def active_recorder() -> Recorder | None:
    """The recorder of the enclosing :func:`recording` block, or None (the fast path)."""
    return _ACTIVE.get()


@contextlib.contextmanager
def recording(recorder: Recorder | None = None) -> Iterator[Recorder]:
    """Record every relation layer run inside the block."""
    recorder = recorder if recorder is not None else Recorder()
    token = _ACTIVE.set(recorder)
    try:
        yield recorder
    finally:
        _ACTIVE.reset(token)
