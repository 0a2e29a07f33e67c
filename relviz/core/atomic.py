"""Atomic file writes: temporary files in the destination folder, renamed into place on success.

Temporary names have one distinctive form, ``.relviz-tmp-<hash>-<random>.part<.suffix>``: short
whatever the target's name (a 255-byte file name stays writable), keeping the target's suffix (the
figure writers read the format from it), and recognisable, so that a run killed mid-write leaves
nothing behind for long: the next write into that folder removes relviz's own temporary files
older than :data:`STALE_SECONDS`, and never any other file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from relviz.core.errors import BadInputError

TEMP_PREFIX = ".relviz-tmp-"
#: the whole name of a relviz temporary file (what :func:`remove_stale_temps` may delete)
TEMP_PATTERN = re.compile(r"\.relviz-tmp-[0-9a-f]{10}-[a-z0-9_]{8}\.part(\.[A-Za-z0-9]{1,10})?")
STALE_SECONDS = 3600
MAX_NAME_BYTES = 255  # a file name (not a path) on the common file systems
_SWEPT: set[str] = set()


def check_writable(path: str | Path) -> Path:
    """Refuse an output path whose folder does not exist or cannot be written, before any work."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if len(os.fsencode(path.name)) > MAX_NAME_BYTES:
        raise BadInputError(f"cannot write {path}: its file name is longer than {MAX_NAME_BYTES} bytes")
    try:
        if not folder.is_dir():
            raise BadInputError(f"cannot write {path}: folder {folder} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise BadInputError(f"cannot write {path}: folder {folder} is not writable")
        if path.is_dir():
            raise BadInputError(f"cannot write {path}: it is a folder")
    except OSError as exc:  # a folder name too long, a loop of links
        raise BadInputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def absolute(path: str | Path) -> Path:
    """``path`` made absolute with symlinks resolved; as written (made absolute) when they loop."""
    path = Path(path).expanduser()
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a loop of symlinks: Python 3.11 raises RuntimeError
        return Path(os.path.abspath(path))


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file: after resolving symlinks and ``..``, or as hard links."""
    a, b = Path(a), Path(b)
    try:
        if a.resolve() == b.resolve():
            return True
    except (OSError, RuntimeError):  # a symlink loop: compare what can be compared
        pass
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def refuse_overwriting(outputs: dict[str, str | Path], inputs: dict[str, str | Path | None],
                       hint: str = "choose another output file name") -> None:
    """Refuse, before any work, an output that is one of the inputs (``{what: path}`` on both sides).

    ``what`` is how the user named the file (``"--out"``, ``"its recipe"``, ``"the input image"``).
    """
    for out_name, out in outputs.items():
        for in_name, source in inputs.items():
            if source is not None and str(source) and same_file(out, source):
                raise BadInputError(f"{out_name} {out} is {in_name}; relviz never overwrites an input: {hint}")


def temp_name(target: str | Path) -> tuple[str, str]:
    """The ``(prefix, suffix)`` of a temporary file for ``target``; under 60 bytes for any name."""
    name = Path(target).name
    digest = hashlib.sha1(name.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    suffix = Path(name).suffix
    if not re.fullmatch(r"\.[A-Za-z0-9]{1,10}", suffix):
        suffix = ""
    return f"{TEMP_PREFIX}{digest}-", f".part{suffix}"


def _new_temp(target: Path) -> Path:
    prefix, suffix = temp_name(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=target.parent)
    except OSError as exc:
        raise BadInputError(f"cannot write {target}: {exc.strerror}") from None
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; an exported file is an ordinary file
    return Path(tmp)


def remove_stale_temps(folder: str | Path, older_than: float = STALE_SECONDS) -> list[Path]:
    """Remove relviz's own temporary files in ``folder`` older than ``older_than`` seconds.

    Only regular files whose whole name matches :data:`TEMP_PATTERN`, owned by this user, are
    removed; anything else is left alone.  Returns what was removed.
    """
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(TEMP_PREFIX) or not TEMP_PATTERN.fullmatch(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or now - st.st_mtime < older_than:
                continue
            if hasattr(os, "getuid") and st.st_uid != os.getuid():
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def sweep_once(folder: str | Path) -> None:
    """:func:`remove_stale_temps` for ``folder``, once per process."""
    key = os.path.abspath(folder)
    if key not in _SWEPT:
        _SWEPT.add(key)
        remove_stale_temps(folder)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds."""
    with atomic_paths([path]) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_paths(paths: Sequence[str | Path]) -> Iterator[list[Path]]:
    """Yield one temporary path per target; when the block succeeds, all are renamed into place.

    The files land together or not at all: if a rename fails, the targets already renamed are
    removed again and the error is raised (as a sentence when it is the file system's).
    """
    targets = [check_writable(p) for p in paths]
    for target in targets:
        sweep_once(target.parent if str(target.parent) else ".")
    temps: list[Path] = []
    try:
        for target in targets:
            temps.append(_new_temp(target))
        yield temps
        _rename_all(temps, targets)
    finally:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _rename_all(temps: list[Path], targets: list[Path]) -> None:
    done: list[Path] = []
    try:
        for tmp, target in zip(temps, targets, strict=True):
            os.replace(tmp, target)
            done.append(target)
    except OSError as exc:
        for target in done:
            with contextlib.suppress(OSError):
                target.unlink()
        failed = targets[len(done)]
        raise BadInputError(f"cannot write {failed}: {exc.strerror or exc}") from None
