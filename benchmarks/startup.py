"""Time from launching ``relviz`` to its window on screen, and to the model zoo being ready.

Runs the real command (``python -m relviz --screenshot``) in a fresh process, offscreen, several
times; the application records when its window was shown (``window_shown_s``, measured from the
start of the interpreter) and when torch and the zoo had been imported behind it.  The window must
not wait for torch: torch and relviz.zoo are imported in a worker after it is shown.

Prints the runs, then medians; last line ``window_shown_s <value>``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "shot.png"
        report = Path(tmp) / "timing.json"
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "RELVIZ_TIMING": str(report)}
        launched = time.time()
        proc = subprocess.run(
            [sys.executable, "-m", "relviz", "--screenshot", str(out)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if proc.returncode != 0 or not report.is_file():
            raise SystemExit(f"relviz failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
        data = json.loads(report.read_text())
        return {
            "window_shown_s": data["window_shown_at"] - launched,
            "zoo_ready_s": (data["zoo_ready_at"] or float("nan")) - launched,
            "torch_before_window": data["torch_before_window"],
        }


def main(runs: int = 5) -> None:
    results = []
    for i in range(runs):
        r = one_run()
        results.append(r)
        print(
            f"run {i}: window shown {r['window_shown_s']:.2f} s, zoo ready {r['zoo_ready_s']:.2f} s, "
            f"torch imported before the window: {r['torch_before_window']}"
        )
    print(f"zoo_ready_s median {statistics.median(r['zoo_ready_s'] for r in results):.2f}")
    print(f"window_shown_s {statistics.median(r['window_shown_s'] for r in results):.2f}")


if __name__ == "__main__":
    main()
