"""Hover → updated heatmap latency in the real window (offscreen), at ~1,000 encoder tokens.

A synthetic DETR-shaped trace (6 layers × 8 heads, factored q/k of width 32, a 25×40 = 1,000-cell
grid over an 800×1280 image) is shown in the window; the mouse is moved over the canvas to random
positions, 12 ms apart (pyqtgraph drops moves faster than its 100 Hz rate limit).  Each sample is the
time from the mouse-move event entering Qt to the canvas heatmap being recomputed and repainted
(``QWidget.repaint`` forces the paint synchronously).  The attention panel's small multiples are
refreshed right after, coalesced, and timed apart.  Maps come from the trace's factors (one row per
head of the shown layer), never from an S×S matrix.

Prints per-step medians and, last, ``hover_p95_ms <value>``.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PySide6.QtCore import QEvent, QPointF, QSettings, Qt  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


def main(samples: int = 300) -> None:
    app = QApplication.instance() or QApplication([])
    from relviz.app.settings import Settings
    from relviz.app.synthetic import synthetic_trace
    from relviz.app.window import MainWindow

    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / "relviz-bench.ini"
    window = MainWindow(Settings(settings=QSettings(str(tmp), QSettings.Format.IniFormat)))
    window.resize(1440, 900)
    window.show()
    trace = synthetic_trace(width=1280, height=800, stride=32, layers=6, heads=8, queries=100, dim=32)
    S = trace.shape("detr/encoder/self_attn")[-1]
    window.state.set_image(trace.image, Path("bench.png"), "trace")
    window.state.set_trace(trace)
    window.state.select(source="detr/encoder/self_attn", point=(10.0, 10.0))
    for _ in range(5):
        app.processEvents()
    canvas = window.canvas
    viewport = canvas.view.viewport()
    rng = np.random.default_rng(0)
    times, compute, panel = [], [], []
    for i in range(samples + 10):
        x, y = rng.uniform(0, 1280), rng.uniform(0, 800)
        pos = canvas.view.mapFromScene(canvas.vb.mapViewToScene(QPointF(x, y)))
        ev = QMouseEvent(
            QEvent.Type.MouseMove,
            QPointF(pos),
            viewport.mapToGlobal(QPointF(pos)),
            Qt.MouseButton.NoButton,
            Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier,
        )
        time.sleep(0.012)  # pyqtgraph drops moves closer than its mouse rate limit (100 Hz)
        t0 = time.perf_counter()
        QApplication.sendEvent(viewport, ev)
        canvas.view.repaint()
        t1 = time.perf_counter()
        t2 = time.perf_counter()
        app.processEvents()  # the coalesced small-multiple refresh runs here, between mouse moves
        panel.append((time.perf_counter() - t2) * 1000)
        if i >= 10:  # warm-up
            if window.state.sel.point is None or abs(window.state.sel.point[0] - x) > 2:
                raise SystemExit(f"the hover did not reach the state (point {window.state.sel.point}, want {x:.0f})")
            times.append((t1 - t0) * 1000)
            compute.append(canvas.last_update_s * 1000)
    times.sort()
    p95 = times[int(0.95 * (len(times) - 1))]
    print(f"tokens {S}, layers 6, heads 8, image 1280x800, samples {len(times)}")
    print(f"state update + canvas/panels recompute median_ms {statistics.median(compute):.2f}")
    print(f"hover to repainted heatmap median_ms {statistics.median(times):.2f}")
    print(f"attention small multiples (deferred, after the repaint) median_ms {statistics.median(panel):.2f}")
    print(f"hover_p95_ms {p95:.2f}")
    window.close()


if __name__ == "__main__":
    main()
