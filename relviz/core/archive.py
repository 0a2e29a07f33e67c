"""Zip archives — torch.save files and ``.npz`` traces — checked from their directory before a member is read.

A zip archive declares every member's uncompressed size in its central directory.  A *zip bomb* declares
gigabytes in a file of a few megabytes (deflate expands up to about a thousand-fold), and a crafted directory may
claim millions of members.  :func:`check_zip_members` reads only the end record and the directory — no member is
decompressed — and refuses the archive before the memory or time is spent.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from relviz.core import limits
from relviz.core.errors import BadInputError, RelvizError


def format_bytes(n: float) -> str:
    """``1.5 GB``, ``20 MB``, ``4.1 kB``, ``12 bytes`` (decimal units, as the limits are written); TB beyond."""
    if n >= 1e12:
        return f"{n / 1e12:,.0f} TB"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} bytes"


def _declared_member_count(path: Path) -> int | None:
    """The member count the archive's end record declares (None when there is no end record)."""
    with open(path, "rb") as fh:
        # zipfile's own end-record reader (it handles zip64); reading it costs at most 64 kB of the file
        end = zipfile._EndRecData(fh)  # noqa: SLF001
    return None if end is None else int(end[zipfile._ECD_ENTRIES_TOTAL])  # noqa: SLF001


def check_zip_members(
    path: str | Path,
    limit: int,
    what: str,
    *,
    max_members: int = limits.MAX_ZIP_MEMBERS,
    max_ratio: float = limits.MAX_COMPRESSION_RATIO,
    ratio_free_bytes: int = limits.ZIP_RATIO_FREE_BYTES,
    error: type[RelvizError] = BadInputError,
) -> list[zipfile.ZipInfo]:
    """The members of the zip archive at ``path``, once what its directory declares is within bounds.

    ``what`` names the file in the sentence of the refusal, e.g. ``"checkpoint model.pth"`` or ``"trace
    t.npz"``; ``error`` is the exception raised (a :class:`~relviz.core.errors.RelvizError` subclass).
    Refused: a file that is not a readable zip archive (truncated or corrupt), one that lists more than
    ``max_members`` members, one whose members declare more than ``limit`` uncompressed bytes in all, and one
    whose declared bytes pass ``ratio_free_bytes`` and exceed ``max_ratio`` times the bytes stored for them
    (a zip bomb).  Nothing is decompressed; the cost is the directory's size.
    """
    path = Path(path)
    try:
        count = _declared_member_count(path)
    except OSError as exc:
        raise error(f"{what} cannot be read: {exc.strerror or exc}") from None
    if count is None:
        raise error(f"{what} is not a readable zip archive (truncated or corrupt?)")
    if count > max_members:
        raise error(f"{what} lists {count:,} members; relviz reads archives of at most {max_members:,}")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise error(f"{what} is not a readable zip archive (truncated or corrupt?): {str(exc)[:120]}") from None
    declared = sum(m.file_size for m in members)
    stored = sum(m.compress_size for m in members)
    if declared > limit:
        raise error(f"{what} declares {format_bytes(declared)} of uncompressed data; relviz reads at most "
                    f"{format_bytes(limit)}")
    if declared > ratio_free_bytes and declared > max_ratio * max(stored, 1):
        raise error(f"{what} would expand from {format_bytes(stored)} to {format_bytes(declared)} "
                    f"({declared / max(stored, 1):,.0f}-fold: a zip bomb?); relviz refuses archives that expand "
                    f"more than {max_ratio:g}-fold")
    return members
