"""Work off the UI thread: a task runs a plain function in a thread pool and reports back by signals.

A task never touches a widget.  Its function receives a :class:`TaskContext` to report progress and
to check for cancellation; its return value, its progress and any exception arrive on the UI thread
as queued signals (the signal object lives in the UI thread).  A :class:`~relviz.core.errors.RelvizError`
becomes its one-sentence message; any other exception becomes "internal error …" with the path of a
full report (:mod:`relviz.app.crash`) and the traceback printed to stderr — shown, never swallowed,
never fatal.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from relviz.app import crash
from relviz.core.errors import RelvizError


def use_python_import() -> bool:
    """Take PySide6's ``from __feature__ import …`` hook out of every import; True when it was there.

    PySide6 puts that hook in front of ``builtins.__import__``: it runs Python code of its own around each
    import of every thread (it reads the source of each newly imported module).  Workers import the model and
    figure modules on first use while the UI thread is busy, and imports through this hook from worker threads
    are known to stall or crash a process.  relviz uses no ``__feature__``, so the import the hook saved
    (``__orig_import__``: Python's, behind PySide6's C-level wrapper for star imports) is put back.  Any other
    replacement of ``__import__`` is left alone.
    """
    original = getattr(builtins, "__orig_import__", None)
    if original is None or getattr(builtins.__import__, "__name__", "") != "__feature_import__":
        return False
    builtins.__import__ = original
    return True


class Cancelled(Exception):
    """Raised inside a task function when the user cancelled it."""


class TaskContext:
    def __init__(self, task: Task):
        self._task = task

    @property
    def cancelled(self) -> bool:
        return self._task._cancel.is_set()

    def check(self) -> None:
        """Stop here (raise :class:`Cancelled`) if the user cancelled."""
        if self._task._cancel.is_set():
            raise Cancelled()

    def progress(self, percent: float, text: str = "") -> None:
        self.check()
        self._task.signals.progress.emit(int(percent), text)

    def note(self, text: str, level: str = "warning") -> None:
        """A message for the window (e.g. 'the GPU ran out of memory; fell back to CPU')."""
        self._task.signals.note.emit(text, level)

    def partial(self, value: Any) -> None:
        """An intermediate result (e.g. one decoded frame)."""
        self._task.signals.partial.emit(value)


class TaskSignals(QObject):
    progress = Signal(int, str)
    note = Signal(str, str)
    partial = Signal(object)
    done = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    finished = Signal()


class Task(QRunnable):
    """``fn(ctx, *args)`` in a pool thread; ``signals`` report back on the UI thread."""

    def __init__(self, name: str, fn: Callable[..., Any], *args: Any):
        super().__init__()
        self.name = name
        self.fn = fn
        self.args = args
        self.signals = TaskSignals()
        self._cancel = threading.Event()
        self.relay: QObject | None = None
        self.pool = "model"
        self.setAutoDelete(False)  # the controller keeps a reference until `finished`

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self) -> None:  # pool thread
        ctx = TaskContext(self)
        try:
            result = self.fn(ctx, *self.args)
        except Cancelled:
            self.signals.cancelled.emit()
        except RelvizError as exc:
            self.signals.failed.emit(str(exc))
        except MemoryError:
            self.signals.failed.emit(f"{self.name}: the computer ran out of memory")
        except Exception as exc:  # a bug: show it, keep the app alive
            self.signals.failed.emit(crash.handle(exc, self.name))
        else:
            if self._cancel.is_set():
                self.signals.cancelled.emit()
            else:
                self.signals.done.emit(result)
        finally:
            self.signals.finished.emit()


class _Relay(QObject):
    """Receives a task's signals on the UI thread and calls plain Python callbacks there.

    Signals connected to bound methods of a QObject living in the UI thread are queued to it, which
    is what makes the callbacks (lambdas included) run on the UI thread.
    """

    def __init__(self, task: Task, callbacks: dict[str, Callable[..., Any] | None], forget: Callable):
        super().__init__()
        self.task = task
        self.cb = callbacks
        self._forget = forget
        s = task.signals
        s.progress.connect(self.on_progress)
        s.note.connect(self.on_note)
        s.partial.connect(self.on_partial)
        s.done.connect(self.on_done)
        s.failed.connect(self.on_failed)
        s.cancelled.connect(self.on_cancelled)
        s.finished.connect(self.on_finished)

    def _call(self, key: str, *args: Any) -> None:
        fn = self.cb.get(key)
        if fn is not None:
            fn(*args)

    @Slot(int, str)
    def on_progress(self, p: int, text: str) -> None:
        self._call("progress", p, text)

    @Slot(str, str)
    def on_note(self, text: str, level: str) -> None:
        self._call("note", text, level)

    @Slot(object)
    def on_partial(self, value: Any) -> None:
        self._call("partial", value)

    @Slot(object)
    def on_done(self, value: Any) -> None:
        try:
            self._call("done", value)
        except Exception as exc:
            # a bug in the callback: the task still ends as failed (the controller's bookkeeping runs),
            # then the exception goes on to sys.excepthook, which knows it was reported already
            self._call("failed", crash.handle(exc, f"showing the result of {self.task.name}"))
            crash.mark_reported(exc)
            raise

    @Slot(str)
    def on_failed(self, text: str) -> None:
        self._call("failed", text)

    @Slot()
    def on_cancelled(self) -> None:
        self._call("cancelled")

    @Slot()
    def on_finished(self) -> None:
        self._forget(self.task)
        self._call("finished")


class Runner(QObject):
    """Two pools: ``model`` runs one task at a time (model code is not re-entrant), ``io`` runs exports."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        use_python_import()
        self.model_pool = QThreadPool(self)
        self.model_pool.setMaxThreadCount(1)
        self.io_pool = QThreadPool(self)
        self.io_pool.setMaxThreadCount(2)
        self.active: list[Task] = []

    def start(self, task: Task, pool: str = "model", **callbacks: Callable[..., Any] | None) -> Task:
        """Run ``task``; callbacks (progress, note, partial, done, failed, cancelled, finished) run on
        the UI thread."""
        task.pool = pool
        task.relay = _Relay(task, callbacks, self._forget)
        self.active.append(task)
        (self.model_pool if pool == "model" else self.io_pool).start(task)
        return task

    def _forget(self, task: Task) -> None:
        if task in self.active:
            self.active.remove(task)

    def busy(self, pool: str = "model") -> bool:
        return any(t.pool == pool for t in self.active)

    def cancel_all(self) -> None:
        for task in list(self.active):
            task.cancel()

    def wait(self, ms: int = 30000) -> bool:
        self.cancel_all()
        ok = self.model_pool.waitForDone(ms)
        return self.io_pool.waitForDone(ms) and ok
