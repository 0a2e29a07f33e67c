"""Time from launching ``relviz`` to its window, its model list and its first result on screen.

Runs the real command (``python -m relviz --screenshot``) in a fresh process, offscreen, several
times; the application records (``RELVIZ_TIMING``) when its window was shown, when the model list was
filled, when torch and the zoo had been imported behind it, and when the demo's first result (a trace
of the bundled scene) was drawn — all measured here from the moment the process was launched.  The
window must not wait for torch, and the model list should not either.

    python benchmarks/startup.py [--runs 5]

Prints the runs, then medians; last lines ``window_shown_s <v>`` and ``first_result_s <v>``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _since(at: float | None, launched: float) -> float:
    return at - launched if at else math.nan


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
            "window_shown_s": _since(data["window_shown_at"], launched),
            "models_listed_s": _since(data.get("models_listed_at"), launched),
            "zoo_ready_s": _since(data["zoo_ready_at"], launched),
            "first_result_s": _since(data.get("first_result_at"), launched),
            "torch_before_window": data["torch_before_window"],
        }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    results = []
    for i in range(args.runs):
        r = one_run()
        results.append(r)
        print(
            f"run {i}: window shown {r['window_shown_s']:.2f} s, model list {r['models_listed_s']:.2f} s, "
            f"zoo ready {r['zoo_ready_s']:.2f} s, first result {r['first_result_s']:.2f} s, "
            f"torch imported before the window: {r['torch_before_window']}"
        )

    def median(key: str) -> float:
        return statistics.median(r[key] for r in results)

    print(f"models_listed_s median {median('models_listed_s'):.2f}")
    print(f"zoo_ready_s median {median('zoo_ready_s'):.2f}")
    print(f"window_shown_s {median('window_shown_s'):.2f}")
    print(f"first_result_s {median('first_result_s'):.2f}")


if __name__ == "__main__":
    main()
