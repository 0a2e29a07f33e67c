"""What a view computes once per trace (a layer's grids, a module's row mapping) and reuses on every hover.

Entries live as long as their trace: a trace that is dropped takes its entries with it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")
_CACHE: dict[int, tuple[weakref.ref, dict[Hashable, Any]]] = {}


def per_trace(trace: Any, key: Hashable, build: Callable[[], T]) -> T:
    """``build()`` the first time ``key`` is asked of ``trace``, the same value afterwards."""
    ident = id(trace)
    entry = _CACHE.get(ident)
    if entry is None or entry[0]() is not trace:
        ref = weakref.ref(trace, lambda _ref, i=ident: _CACHE.pop(i, None))
        entry = (ref, {})
        _CACHE[ident] = entry
    values = entry[1]
    if key not in values:
        values[key] = build()
    return values[key]


def forget(trace: Any) -> None:
    """Drop what was computed for ``trace`` (after its tensors were replaced in place)."""
    _CACHE.pop(id(trace), None)
