"""Keep glibc's allocator from handing big tensors back to the OS after every forward.

With glibc's default settings every allocation above the mmap threshold is its own ``mmap``; a CPU
forward of a detector allocates and frees hundreds of such tensors, and each one is page-faulted in
again on the next forward (≈400k minor faults per DETR-R50 forward at 800×1066, about a second of
kernel time).  Serving them from the heap and never trimming it removes that cost; the price is that
the process keeps its peak heap, which it would touch again on the next run anyway.

:func:`keep_freed_memory` does what ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=…`` does, through
``mallopt``, so users get it without environment variables.  It must run before the first big
allocation (relviz calls it at start-up).  It is a no-op where the C library is not glibc, and a user's
own ``MALLOC_*`` environment variables win.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

# glibc <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_NEVER_TRIM = 2**31 - 1  # mallopt takes an int

_done = False


def is_glibc() -> bool:
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def keep_freed_memory() -> bool:
    """Serve big allocations from the heap and never trim it; True when the settings took effect."""
    global _done
    if _done:
        return True
    if not is_glibc() or os.environ.get("RELVIZ_DEFAULT_MALLOC"):
        return False
    if any(k in os.environ for k in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_")):
        return False  # the user chose
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    _done = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM))
    return _done
