"""Internal errors: a full report on disk, one line in the window, and the application keeps running.

An exception that is not a :class:`~relviz.core.errors.RelvizError` is a bug in relviz.  Its traceback
is written to a report file in ``$XDG_CACHE_HOME/relviz/`` (else ``~/.cache/relviz/``, else the temp
folder) and the window says "internal error …" with the report's path, so the user can send it.  The
same exception raised again (a bug on every frame or every repaint) reuses its first report, and only
the newest :data:`MAX_REPORTS` reports are kept.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

MAX_REPORTS = 20
_written: dict[tuple, Path] = {}
_lock = threading.Lock()


def report_dir() -> Path:
    """Where reports go: ``$XDG_CACHE_HOME/relviz``, else ``~/.cache/relviz`` (not created here)."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "relviz"


def _signature(exc: BaseException) -> tuple:
    frames = traceback.extract_tb(exc.__traceback__)
    last = frames[-1] if frames else None
    where = (last.filename, last.lineno) if last else ("", 0)
    return type(exc).__name__, str(exc)[:200], *where


def _report_text(exc: BaseException, context: str) -> str:
    from relviz import __version__

    lines = [
        f"relviz {__version__} internal error report",
        f"time: {time.strftime('%Y-%m-%d %H:%M:%S')}",
        f"while: {context or 'running the application'}",
        f"python: {sys.version.split()[0]} on {platform.platform()}",
        f"thread: {threading.current_thread().name}",
        "",
        *traceback.format_exception(type(exc), exc, exc.__traceback__),
    ]
    return "\n".join(line.rstrip("\n") for line in lines) + "\n"


def _prune(folder: Path) -> None:
    reports = sorted(folder.glob("internal-error-*.txt"), key=lambda p: p.stat().st_mtime)
    for old in reports[:-MAX_REPORTS]:
        try:
            old.unlink()
        except OSError:
            pass


def write_report(exc: BaseException, context: str = "") -> Path | None:
    """Write ``exc``'s full report; its path, or None when no folder at all could be written."""
    key = _signature(exc)
    with _lock:
        if key in _written and _written[key].is_file():
            return _written[key]
        text = _report_text(exc, context)
        name = f"internal-error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{len(_written)}.txt"
        for folder in (report_dir(), Path(tempfile.gettempdir()) / "relviz"):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / name
                path.write_text(text, encoding="utf-8")
            except OSError:
                continue
            _prune(folder)
            _written[key] = path
            return path
    return None


def describe(exc: BaseException, context: str = "", report: Path | None = None) -> str:
    """The one line the window shows for an internal error."""
    first = str(exc).splitlines()[0] if str(exc) else ""
    what = f"internal error while {context}" if context else "internal error"
    where = f"the full report is in {report}" if report else "the report could not be written; see stderr"
    return f"{what}: {type(exc).__name__}: {first} (a bug in relviz; {where})"


def handle(exc: BaseException, context: str = "") -> str:
    """Print the traceback to stderr, write the report, return the window's line.  Never raises."""
    try:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    except Exception:  # noqa: BLE001 — stderr may be closed
        pass
    try:
        report = write_report(exc, context)
    except Exception:  # noqa: BLE001 — a report must never become a second error
        report = None
    return describe(exc, context, report)


def mark_reported(exc: BaseException) -> None:
    """``exc`` was shown and written already; the excepthook passes it over."""
    try:
        exc._relviz_reported = True  # type: ignore[attr-defined]
    except AttributeError:
        pass


def install_excepthook(post: Callable[[str], None]) -> Callable[[], None]:
    """Route uncaught exceptions of the UI thread (a bug in a Qt slot) to ``post(line)``.

    Returns a function that puts the previous hook back.  KeyboardInterrupt and SystemExit keep their
    usual meaning.
    """
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, (KeyboardInterrupt, SystemExit)):
            previous(kind, value, tb)
            return
        if getattr(value, "_relviz_reported", False):
            return
        if value.__traceback__ is None and tb is not None:
            value = value.with_traceback(tb)
        line = handle(value)
        try:
            post(line)
        except Exception:  # noqa: BLE001 — the window may already be gone
            pass

    sys.excepthook = hook

    def uninstall() -> None:
        if sys.excepthook is hook:
            sys.excepthook = previous

    return uninstall
