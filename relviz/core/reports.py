"""Internal-error reports: the one writer behind ``relviz``'s "internal error … the full report is in PATH".

An exception that is not a :class:`~relviz.core.errors.RelvizError` is a bug in relviz.  The command line
(:mod:`relviz.cli`) and the window (:mod:`relviz.app.crash`) both write its report here: the traceback, what
relviz was doing, the command, the versions of relviz, Python and the main libraries.  One folder,
``$XDG_CACHE_HOME/relviz`` (an absolute path), else ``~/.cache/relviz``, else ``<temp>/relviz`` when neither
can be written; one naming, ``internal-error-YYYYmmdd-HHMMSS-<pid>-<n>.txt``, never replacing a report; and
only the newest :data:`MAX_REPORTS` reports are kept in a folder.  No Qt, no torch.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shlex
import tempfile
import threading
import time
import traceback
from pathlib import Path

MAX_REPORTS = 20
PREFIX = "internal-error-"
_PACKAGES = ("numpy", "torch", "torchvision", "matplotlib", "pydantic", "PySide6", "pyqtgraph", "pillow")
_lock = threading.Lock()


def report_dir() -> Path:
    """Where reports go: ``$XDG_CACHE_HOME/relviz`` when it is an absolute path, else ``~/.cache/relviz``
    (not created here).  Raises RuntimeError when there is no home folder to speak of."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "relviz"


def folders() -> list[Path]:
    """The folders tried in order: :func:`report_dir`, then the temp folder's ``relviz``."""
    found = []
    with contextlib.suppress(RuntimeError):  # no home folder
        found.append(report_dir())
    found.append(Path(tempfile.gettempdir()) / "relviz")
    return found


def versions() -> str:
    """relviz, Python, the platform and the installed versions of the libraries relviz uses."""
    from importlib import metadata

    from relviz import __version__

    found = [f"relviz {__version__}", f"Python {platform.python_version()}", platform.platform()]
    for package in _PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found.append(f"{package} {metadata.version(package)}")
    return ", ".join(found)


def report_text(exc: BaseException, context: str = "", command: list[str] | None = None) -> str:
    """The report of ``exc``: what relviz was doing (``context``), the command line (``command``, the
    arguments after ``relviz``), the versions, the thread and the full traceback."""
    lines = [
        "relviz internal error report",
        f"time: {time.strftime('%Y-%m-%d %H:%M:%S')}",
        f"while: {context or 'running relviz'}",
    ]
    if command is not None:
        lines.append(f"command: relviz {shlex.join(command)}")
    lines += [
        f"versions: {versions()}",
        f"thread: {threading.current_thread().name}",
        "",
        *traceback.format_exception(type(exc), exc, exc.__traceback__),
    ]
    return "\n".join(line.rstrip("\n") for line in lines) + "\n"


def prune(folder: Path, keep: int = MAX_REPORTS) -> list[Path]:
    """Remove all but the newest ``keep`` reports in ``folder``; returns what was removed."""
    removed = []
    try:
        reports = sorted(folder.glob(f"{PREFIX}*.txt"), key=lambda p: (p.stat().st_mtime, p.name))
    except OSError:
        return removed
    for old in reports[: max(len(reports) - keep, 0)]:
        with contextlib.suppress(OSError):
            old.unlink()
            removed.append(old)
    return removed


def _create(folder: Path, stamp: str, text: str) -> Path:
    """A new report file in ``folder`` (created exclusively: an existing report is never replaced)."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(1000):
        path = folder / f"{PREFIX}{stamp}-{os.getpid()}-{n}.txt"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(text)
        return path
    raise OSError(f"no free report name in {folder}")


def write_report(exc: BaseException, context: str = "", command: list[str] | None = None) -> Path:
    """Write ``exc``'s report (:func:`report_text`) to a new file in the first folder that takes it, prune
    that folder, and return the file's path; OSError when no folder could be written."""
    text = report_text(exc, context, command)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    problem: OSError | None = None
    with _lock:
        for folder in folders():
            try:
                path = _create(folder, stamp, text)
            except OSError as exc_:
                problem = exc_
                continue
            prune(folder)
            return path
    raise OSError(f"no folder to write the report to ({problem})")
