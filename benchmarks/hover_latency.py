"""Hover → repainted window latency, per model family, at each family's real size (offscreen Qt).

    python benchmarks/hover_latency.py --family detr|relation|regionfeat|lrnet|nonlocal [--samples 200]
    python benchmarks/hover_latency.py --family detr --canvas-only

A real trace of the family is made once (``relviz trace`` in a subprocess, cached under
``$XDG_CACHE_HOME/relviz/bench-traces``) and opened in the real window (1440×900):

- detr: DETR-R50 (seeded random weights) on an 1066×800 image (800×1066 model input, 25×34 = 850 tokens,
  6 encoder layers × 8 heads, factored q/k);
- lrnet: LR-Net-26 (seeded random weights) at 224² (its kernels at a pixel come from the factors);
- nonlocal: ResNet-50 + 5 non-local blocks (seeded random weights) at 224²;
- relation, regionfeat: the bundled demo detectors on the bundled scene-2, at the default threshold (0.7):
  10 and 9 detections.

For families whose maps follow a point (detr's encoder, lrnet, nonlocal) a sample is a mouse move to a
random image position, 12 ms after the last (pyqtgraph drops moves faster than its 100 Hz limit).  The
detectors' views follow the selected object, and hovering moves nothing there, so a sample is a click on a
detection (a different one each time).  Timed: the event entering Qt → the state updated → every panel's
coalesced refresh → everything Qt repaints (canvas and docks) done.  Which docks repainted is counted from
their paint events and printed.  ``--canvas-only`` (detr) times the move → the canvas repainted
(``QWidget.repaint``), the docks' refresh running after the timer stops.

Prints medians, the docks that followed, and last ``hover_p95_ms <value>``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6.QtCore import QEvent, QObject, QPointF, QSettings, Qt, qInstallMessageHandler  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402
from PySide6.QtWidgets import QApplication, QDockWidget  # noqa: E402

#: family → (model, weights, input (w, h) made from the bundled scene, extra `relviz trace` options, label)
CASES = {
    "detr": ("detr-r50", "none", (1066, 800), [], "DETR-R50 (random weights), 1066×800 → 800×1066 input"),
    "relation": ("demo-relation", None, None, [], "demo-relation (bundled), bundled scene-2 (256²)"),
    "regionfeat": ("demo-regionfeat", None, None, [], "demo-regionfeat (bundled), bundled scene-2 (256²)"),
    "lrnet": ("lrnet-26", "none", (224, 224), ["--resize", "224"], "LR-Net-26 (random weights), 224²"),
    "nonlocal": ("nonlocal-r50", "none", (224, 224), ["--resize", "224"],
                 "ResNet-50 + 5 NL (random weights), 224²"),
}
SCENE = ROOT / "resources" / "scene-2.png"  # the bundled scene with the most objects (about 10 detections)


def cache_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    folder = Path(base) / "relviz" / "bench-traces"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _quiet_qt(kind, context, message: str) -> None:
    """The offscreen platform warns about every dock resize; other messages still show."""
    if "propagateSizeHints" not in message:
        print(message, file=sys.stderr)


def make_trace(family: str) -> Path:
    model, weights, size, extra, _ = CASES[family]
    folder = cache_folder()
    out = folder / f"{family}-{model}-{SCENE.stem}.npz"
    if out.is_file():
        return out
    source = SCENE
    if size is not None:
        source = folder / f"scene-{size[0]}x{size[1]}.png"
        Image.open(SCENE).convert("RGB").resize(size, Image.Resampling.BILINEAR).save(source)
    cmd = [sys.executable, "-m", "relviz", "trace", "--model", model, "--input", str(source), "--out", str(out),
           "--device", "cpu", *extra]
    if weights:
        cmd += ["--weights", weights]
    print("making the trace:", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    return out


class PaintLog(QObject):
    """Which docks (or the canvas) received paint events since the last ``take``."""

    def __init__(self, window) -> None:
        super().__init__()
        self.window = window
        self.names: dict[int, str] = {}
        self.seen: set[str] = set()

    def _name(self, widget) -> str:
        key = id(widget)
        if key not in self.names:
            name, w = f"window ({type(widget).__name__})", widget
            while w is not None:
                if isinstance(w, QDockWidget):
                    name = w.windowTitle() or w.objectName()
                    break
                if w is self.window.canvas:
                    name = "canvas"
                    break
                w = w.parentWidget()
            self.names[key] = name
        return self.names[key]

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 — Qt's name
        if event.type() == QEvent.Type.Paint and obj.isWidgetType():
            self.seen.add(self._name(obj))
        return False

    def take(self) -> set[str]:
        seen, self.seen = self.seen, set()
        return seen


def _mouse(kind, pos, viewport, button=Qt.MouseButton.NoButton) -> QMouseEvent:
    buttons = button if kind == QEvent.Type.MouseButtonPress else Qt.MouseButton.NoButton
    return QMouseEvent(kind, QPointF(pos), viewport.mapToGlobal(QPointF(pos)), button, buttons,
                       Qt.KeyboardModifier.NoModifier)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", choices=sorted(CASES), default="detr")
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--canvas-only", action="store_true", help="time the move → canvas repaint only (detr)")
    args = p.parse_args()
    path = make_trace(args.family)

    qInstallMessageHandler(_quiet_qt)
    app = QApplication.instance() or QApplication([])
    from relviz.app.settings import Settings
    from relviz.app.window import MainWindow
    from relviz.core.trace import Trace
    from relviz.views import maps

    settings = QSettings(str(cache_folder() / "bench.ini"), QSettings.Format.IniFormat)
    settings.clear()
    window = MainWindow(Settings(settings=settings))
    window.resize(1440, 900)
    window.show()
    trace = Trace.load(path)
    w, h = trace.meta["input"]["size"]
    image = np.asarray(Image.open(trace.meta["input"]["path"]).convert("RGB"))
    window.state.set_image(image, Path(trace.meta["input"]["path"]), "image")
    window.state.set_trace(trace)
    point_source = maps.default_source(trace, "point")
    if args.family == "detr":
        point_source = "detr/encoder/self_attn"
    if point_source is not None:
        window.state.select(source=point_source, point=(w / 2, h / 2))
    for _ in range(10):
        app.processEvents()
    boxes = maps.detections(trace)[0]
    clicks = point_source is None
    if clicks and len(boxes) < 2:
        raise SystemExit(f"{args.family}: the trace has {len(boxes)} detection(s); clicking needs two")

    canvas = window.canvas
    viewport = canvas.view.viewport()
    canvas_log = PaintLog(window)  # on the canvas's viewport only: a filter on every widget costs time itself
    viewport.installEventFilter(canvas_log)
    census = PaintLog(window)
    rng = np.random.default_rng(0)
    times, compute, panels_seen = [], [], {}
    last_object = None
    n_census = 20
    for i in range(10 + args.samples + n_census):
        counting = i >= 10 + args.samples
        if counting and i == 10 + args.samples:  # after the timed samples: which docks follow, from paint events
            app.installEventFilter(census)
        if clicks:
            choices = [k for k in range(len(boxes)) if k != last_object]
            k = int(rng.choice(choices))
            x, y = (boxes[k, 0] + boxes[k, 2]) / 2, (boxes[k, 1] + boxes[k, 3]) / 2
        else:
            x, y = rng.uniform(0, w), rng.uniform(0, h)
        pos = canvas.view.mapFromScene(canvas.vb.mapViewToScene(QPointF(x, y)))
        time.sleep(0.012)  # pyqtgraph drops moves closer than its mouse rate limit (100 Hz)
        app.processEvents()
        canvas_log.take()
        census.take()
        t0 = time.perf_counter()
        if clicks:
            QApplication.sendEvent(viewport, _mouse(QEvent.Type.MouseButtonPress, pos, viewport,
                                                    Qt.MouseButton.LeftButton))
            QApplication.sendEvent(viewport, _mouse(QEvent.Type.MouseButtonRelease, pos, viewport,
                                                    Qt.MouseButton.LeftButton))
        else:
            QApplication.sendEvent(viewport, _mouse(QEvent.Type.MouseMove, pos, viewport))
        if args.canvas_only:
            canvas.view.repaint()
            t1 = time.perf_counter()
            for _ in range(3):
                app.processEvents()
        else:
            for _ in range(3):  # the panels' coalesced refreshes (singleShot 0), then the repaints they asked for
                app.processEvents()
            t1 = time.perf_counter()
        sel = window.state.sel
        if clicks:
            if sel.object is None:
                raise SystemExit(f"the click at ({x:.0f}, {y:.0f}) selected nothing")
            last_object = sel.object
        elif sel.point is None or abs(sel.point[0] - x) > 2 or abs(sel.point[1] - y) > 2:
            raise SystemExit(f"the hover did not reach the state (point {sel.point}, want ({x:.0f}, {y:.0f}))")
        if not canvas_log.take():
            raise SystemExit("the canvas was not repainted")
        if counting:
            for name in census.take():
                panels_seen[name] = panels_seen.get(name, 0) + 1
        elif i >= 10:  # after the warm-up
            times.append((t1 - t0) * 1000)
            compute.append(getattr(canvas, "last_update_s", float("nan")) * 1000)
    app.removeEventFilter(census)
    times.sort()
    p95 = times[int(0.95 * (len(times) - 1))]
    what = "click on a detection" if clicks else "hover"
    timed = "canvas repainted" if args.canvas_only else "canvas and every dock that follows repainted"
    print(f"family {args.family}: {CASES[args.family][4]}; {what} → {timed}; samples {len(times)}")
    if point_source:
        print(f"view {point_source}, layers {window.state.layer_count()}")
    else:
        print(f"detections {len(boxes)}")
    follows = ", ".join(f"{name} {n / n_census:.0%}" for name, n in sorted(panels_seen.items()))
    print(f"repainted (share of {n_census} more samples, counted from paint events): {follows}")
    print(f"canvas recompute (state → canvas items) median_ms {statistics.median(compute):.2f}")
    print(f"{what} median_ms {statistics.median(times):.2f}")
    print(f"hover_p95_ms {p95:.2f}")
    window.close()


if __name__ == "__main__":
    main()
