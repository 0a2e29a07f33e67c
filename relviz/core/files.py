"""Opening a user's file safely: one sentence for every way a path can fail to be a readable file.

A path can name nothing, a dangling or looping symbolic link, a folder, a named pipe (whose plain
``open`` would block until a writer appears), a device, a file the user may not read, or a name too
long for the file system.  :func:`stat_path` and :func:`open_regular` turn each into a
:class:`BadInputError`; :func:`shown` writes a path into a sentence on one line, whatever its
characters (newlines, control characters, bytes that are not UTF-8).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

from relviz.core.errors import BadInputError

#: a path longer than this is shown shortened in sentences (its start and its end)
_SHOWN_CHARACTERS = 160


def shown(path: str | os.PathLike) -> str:
    """``path`` for a one-line sentence: control characters and undecodable bytes escaped, long ones cut."""
    text = os.fsdecode(os.fspath(path))
    text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    if len(text) > _SHOWN_CHARACTERS:
        text = f"{text[:100]}…{text[-50:]}"
    return text


def _dangling(path: Path) -> str:
    try:
        target = os.readlink(path)
    except OSError:
        return f"{shown(path)} does not exist"
    return f"{shown(path)} is a symbolic link to {shown(target)}, which does not exist"


def _stat_failure(path: Path, exc: OSError) -> str:
    """The sentence for a failed ``stat``."""
    if exc.errno == errno.ENOENT:
        return _dangling(path) if os.path.islink(path) else f"{shown(path)} does not exist"
    if exc.errno == errno.ELOOP:
        return f"{shown(path)} is a loop of symbolic links that never reaches a file"
    if exc.errno == errno.ENAMETOOLONG:
        return (f"the path {shown(path)} is too long for the file system ({len(os.fsencode(path))} bytes; "
                "a name may hold at most 255)")
    if exc.errno == errno.ENOTDIR:
        return f"{shown(path)} does not exist (a part of the path is a file, not a folder)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"{shown(path)} cannot be reached: permission denied"
    return f"{shown(path)} cannot be read: {exc.strerror or exc}"


def stat_path(path: str | os.PathLike) -> os.stat_result:
    """``os.stat`` of ``path`` (links followed), or a :class:`BadInputError` saying why there is none."""
    path = Path(path)
    try:
        return path.stat()
    except ValueError:  # an embedded NUL
        raise BadInputError(f"{shown(path)} is not a valid path (it contains a NUL character)") from None
    except OSError as exc:
        raise BadInputError(_stat_failure(path, exc)) from None


def file_type(mode: int) -> str:
    """What a non-regular file is, in words (for 'X is a …, not …')."""
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def check_regular(path: str | os.PathLike, what: str = "a file") -> os.stat_result:
    """The stat of ``path`` if it is a regular file (links followed); else a sentence saying what it is."""
    st = stat_path(path)
    if not stat.S_ISREG(st.st_mode):
        raise BadInputError(f"{shown(path)} is a {file_type(st.st_mode)}, not {what}")
    return st


def open_regular(path: str | os.PathLike, what: str = "a file", noun: str = "file") -> BinaryIO:
    """Open a regular, non-empty file for reading without ever blocking (a FIFO is refused, not waited on).

    ``what`` completes 'X is a folder, not …' ('an image'); ``noun`` starts 'image X is empty'.  A
    ``PermissionError`` is caught when the file is really opened: ``os.access`` says yes to root and
    cannot see every refusal (ACLs, network file systems), so it is not asked.
    """
    check_regular(path, what)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except PermissionError:
        raise BadInputError(f"{shown(path)} cannot be read: permission denied") from None
    except OSError as exc:
        raise BadInputError(_stat_failure(Path(path), exc)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # replaced between the stat and the open
            raise BadInputError(f"{shown(path)} is a {file_type(st.st_mode)}, not {what}")
        if st.st_size == 0:
            raise BadInputError(f"{noun} {shown(path)} is empty (0 bytes)")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_head(path: str | os.PathLike, size: int = 4096, what: str = "a file", noun: str = "file") -> bytes:
    """The first ``size`` bytes of a regular, non-empty file (for telling formats apart by content)."""
    with open_regular(path, what, noun) as fh:
        try:
            return fh.read(size)
        except OSError as exc:
            raise BadInputError(f"{shown(path)} cannot be read: {exc.strerror or exc}") from None


#: (magic test, what the content is) for telling a file's content from its name
_SIGNATURES: tuple[tuple[str, str], ...] = (
    ("png", "a PNG image"),
    ("jpeg", "a JPEG image"),
    ("gif", "a GIF image"),
    ("tiff", "a TIFF image"),
    ("webp", "a WebP image"),
    ("bmp", "a BMP image"),
    ("avi", "an AVI video"),
    ("mp4", "an MP4/QuickTime video"),
    ("mkv", "a Matroska/WebM video"),
    ("mpeg", "an MPEG video"),
    ("zip", "a zip archive (a .pth checkpoint or .npz trace?)"),
    ("pickle", "a Python pickle"),
    ("text", "a text file"),
)


def _matches(kind: str, head: bytes) -> bool:
    if kind == "png":
        return head.startswith(b"\x89PNG\r\n\x1a\n")
    if kind == "jpeg":
        return head.startswith(b"\xff\xd8\xff")
    if kind == "gif":
        return head[:6] in (b"GIF87a", b"GIF89a")
    if kind == "tiff":
        return head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
    if kind == "webp":
        return head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    if kind == "bmp":
        return head[:2] == b"BM" and len(head) >= 18 and head[14] in (12, 16, 40, 52, 56, 64, 108, 124)
    if kind == "avi":
        return head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX")
    if kind == "mp4":
        return head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")
    if kind == "mkv":
        return head.startswith(b"\x1a\x45\xdf\xa3")
    if kind == "mpeg":
        return head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3") or (
            len(head) > 376 and head[0] == head[188] == head[376] == 0x47)
    if kind == "zip":
        return head.startswith(b"PK\x03\x04")
    if kind == "pickle":
        return len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5
    if kind == "text":
        return _looks_like_text(head)
    return False


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the sample
            return False
        text = head[: exc.start].decode("utf-8")
    printable = sum(ch.isprintable() or ch in "\t\r\n\f" for ch in text)
    return printable >= 0.95 * max(1, len(text))


def sniff(head: bytes) -> str | None:
    """What the first bytes of a file say it is ('a PNG image', 'an MP4/QuickTime video', 'a text file'), or None."""
    for kind, what in _SIGNATURES:
        if _matches(kind, head):
            return what
    return None
