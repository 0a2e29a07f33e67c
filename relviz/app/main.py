"""``relviz`` with no subcommand: the desktop application (and ``--screenshot`` for docs and smoke tests)."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path


def _platform_ok(screenshot: str | None) -> str | None:
    """Pick a Qt platform that works here, or say why none does (Qt would abort the process)."""
    if os.environ.get("QT_QPA_PLATFORM"):
        return None
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        if screenshot:
            os.environ["QT_QPA_PLATFORM"] = "offscreen"  # a screenshot needs no screen
            return None
        return (
            "no display: set DISPLAY (or run under xvfb-run), or use --screenshot OUT.png, which renders "
            "the window offscreen"
        )
    return None


def run_app(
    paths: list[str], screenshot: str | None = None, model: str | None = None, device: str | None = None
) -> int:
    """Open the window on ``paths``; with ``screenshot``, save a PNG of it once the first result is drawn
    and return 0.  Returns the process exit code."""
    from relviz.core.allocator import keep_freed_memory

    keep_freed_memory()  # before torch: big tensors stay in the heap between forwards (benchmarks/allocator.py)
    os.environ.setdefault("MPLBACKEND", "Agg")  # figures are drawn off-screen, never in a Qt canvas
    problem = _platform_ok(screenshot)
    if problem:
        print(f"relviz: {problem}", file=sys.stderr)
        return 2
    if screenshot:
        from relviz.core.atomic import check_writable
        from relviz.core.errors import RelvizError

        try:
            check_writable(screenshot)
        except RelvizError as exc:
            print(f"relviz: {exc}", file=sys.stderr)
            return 2

    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from relviz.app.settings import Settings
    from relviz.app.window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "relviz"])
    app.setApplicationName("relviz")
    app.setOrganizationName("relviz")
    tmpdir = None
    if screenshot:
        # a screenshot shows the default layout, never the user's saved one, and leaves settings alone
        tmpdir = tempfile.TemporaryDirectory(prefix="relviz-settings-")
        settings = Settings(settings=QSettings(str(Path(tmpdir.name) / "relviz.ini"), QSettings.Format.IniFormat))
    else:
        settings = Settings()
    window = MainWindow(settings)
    _route_exceptions(window)
    window.show()
    app.processEvents()  # the first paint: the window is on screen from here
    window.shown_at = time.time()
    window.torch_before_window = "torch" in sys.modules
    _watch_first_result(window)
    QTimer.singleShot(0, lambda: window.controller.startup(list(paths), model, device))
    result = {"rc": 0}
    if screenshot:
        _arm_screenshot(app, window, screenshot, result)
    rc = app.exec()
    _write_timing(window)
    if tmpdir is not None:
        tmpdir.cleanup()
    return result["rc"] if screenshot else int(rc)


def _route_exceptions(window) -> None:
    """A bug in a slot (UI thread) writes a report, shows one line in the window; the app lives."""
    from relviz.app.crash import install_excepthook

    install_excepthook(lambda line: window.state.info(line, "error"))


def _watch_first_result(window) -> None:
    """Note when the model list is filled and when the first trace is on screen (``benchmarks/startup.py``)."""
    window.models_listed_at = None
    window.first_result_at = None
    state = window.state

    def listed() -> None:
        if window.models_listed_at is None and state.zoo:
            window.models_listed_at = time.time()

    def drawn() -> None:
        window.repaint()  # the panels paint what the trace changed, now
        window.first_result_at = time.time()

    def result() -> None:
        if window.first_result_at is None and state.trace is not None:
            from PySide6.QtCore import QTimer

            window.first_result_at = 0.0
            QTimer.singleShot(0, drawn)  # after the panels' own reactions to the trace

    state.zooChanged.connect(listed)
    state.traceChanged.connect(result)


def _write_timing(window) -> None:
    """For ``benchmarks/startup.py``: when the window was shown, the model list filled, torch imported and
    the first result drawn (epoch seconds)."""
    target = os.environ.get("RELVIZ_TIMING")
    if not target:
        return
    import json

    data = {
        "window_shown_at": window.shown_at,
        "zoo_ready_at": window.controller.zoo_ready_at,
        "models_listed_at": window.models_listed_at,
        "first_result_at": window.first_result_at,
        "torch_before_window": window.torch_before_window,
    }
    Path(target).write_text(json.dumps(data))


def _arm_screenshot(app, window, path: str, result: dict, timeout_s: float = 600.0) -> None:
    """Poll until the controller has been idle for a moment after start-up, then grab and quit."""
    from PySide6.QtCore import QTimer

    t0 = time.perf_counter()
    idle_ticks = {"n": 0}
    timer = QTimer(window)

    def tick() -> None:
        ctrl = window.controller
        idle = ctrl.started and ctrl.idle()
        idle_ticks["n"] = idle_ticks["n"] + 1 if idle else 0
        timed_out = time.perf_counter() - t0 > timeout_s
        if idle_ticks["n"] >= 3 or timed_out:
            timer.stop()
            app.processEvents()
            image = window.grab()
            if not image.save(path, "PNG"):
                print(f"relviz: could not write the screenshot {path}", file=sys.stderr)
                result["rc"] = 1
            elif timed_out:
                print(
                    f"relviz: gave up waiting for a result after {timeout_s:.0f} s; saved {path} anyway",
                    file=sys.stderr,
                )
                result["rc"] = 1
            for problem in window.state.messages.problems:  # what the screenshot shows on its message bar
                print(f"relviz: {problem.level}: {problem.text}", file=sys.stderr)
            window.close()
            app.quit()

    timer.timeout.connect(tick)
    timer.start(100)
