"""Internal errors: a full report on disk, one line in the window, and the application keeps running.

An exception that is not a :class:`~relviz.core.errors.RelvizError` is a bug in relviz.  Its traceback
is written to a report file by :mod:`relviz.core.reports` (the command line's writer too: same folder,
naming and pruning) and the window says "internal error …" with the report's path, so the user can send
it.  The same exception raised again (a bug on every frame or every repaint) reuses its first report.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from relviz.core import reports

_written: dict[tuple, Path] = {}
_lock = threading.Lock()


def _signature(exc: BaseException) -> tuple:
    frames = traceback.extract_tb(exc.__traceback__)
    last = frames[-1] if frames else None
    where = (last.filename, last.lineno) if last else ("", 0)
    return type(exc).__name__, str(exc)[:200], *where


def write_report(exc: BaseException, context: str = "") -> Path | None:
    """Write ``exc``'s full report (:mod:`relviz.core.reports`); its path, or None when no folder at all
    could be written.  The same bug raised again reuses its first report."""
    key = _signature(exc)
    with _lock:
        if key in _written and _written[key].is_file():
            return _written[key]
        try:
            path = reports.write_report(exc, context or "running the application")
        except OSError:
            return None
        _written[key] = path
        return path


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
