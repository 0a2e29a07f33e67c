"""`relviz export` from an existing trace: seconds and peak memory per figure, each in a fresh process.

A trace of every bundled demo model is made once (``relviz trace``, threshold 0.5, on the bundled scene-2 or
clip; cached under ``$XDG_CACHE_HOME/relviz/bench-traces``); then every view of each trace's family is
exported to PNG at the default 300 DPI by ``python -m relviz export --trace …`` in a fresh process, timed
from launch to exit, with its peak resident memory (``wait4``'s ru_maxrss) and whether torch was imported.

    python benchmarks/export_figure.py [--repeats 3] [--format png] [--preset page|column]

Prints one line per figure (median seconds, median CPU seconds of the child — steadier than the wall time on a
shared machine —, median peak MB), then ``export_max_s <v>`` and, last,
``export_max_mb <v>`` (the worst figure's medians). Targets: ≤ 2 s and ≤ 400 MB per figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("demo-detr", "demo-relation", "demo-regionfeat", "demo-lrnet", "demo-nonlocal", "demo-nonlocal-clip")

#: the command in a child that reports, on exit, whether torch was imported and its peak resident memory
WRAP = ("import resource, sys\n"
        "from relviz.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "sys.stderr.write(f'\\nBENCH torch={\"torch\" in sys.modules} peak_kb={peak}\\n'); sys.exit(rc)")

def cache_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    folder = Path(base) / "relviz" / "bench-traces"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def make_trace(model: str) -> Path:
    out = cache_folder() / f"export-{model}.npz"
    if not out.is_file():
        source = ROOT / "resources" / ("clip-0.mp4" if model.endswith("-clip") else "scene-2.png")
        subprocess.run([sys.executable, "-m", "relviz", "trace", "--model", model, "--input", str(source),
                        "--out", str(out), "--device", "cpu", "--threshold", "0.5"], check=True, cwd=ROOT)
    return out


def views_of(trace: Path) -> tuple[list[str], tuple[float, float]]:
    code = ("import json, sys; from relviz.core.trace import Trace; from relviz.render.views import views\n"
            "t = Trace.load(sys.argv[1]); print(json.dumps([sorted(n for n, v in views().items() "
            "if t.family in v.families), t.meta['input']['size']]))")
    out = subprocess.run([sys.executable, "-c", code, str(trace)], capture_output=True, text=True, check=True)
    names, size = json.loads(out.stdout)
    return names, (size[0], size[1])


def export_once(trace: Path, view: str, size: tuple[float, float], fmt: str,
                folder: Path, preset: str = "page") -> tuple[float, float, bool, float]:
    out = folder / f"{trace.stem}-{view}.{fmt}"
    for stale in (out, out.with_suffix(".recipe.json")):
        stale.unlink(missing_ok=True)
    argv = ["export", "--trace", str(trace), "--view", view, "--out", str(out), "--object", "0",
            "--point", f"{size[0] / 2:g},{size[1] / 2:g}", "--preset", preset]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", WRAP, *argv], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    report = [line for line in proc.stderr.splitlines() if line.startswith("BENCH ")]
    if proc.returncode != 0 or not out.is_file() or not report:
        raise SystemExit(f"{trace.name} {view}: no figure written: {proc.stderr.strip()[-500:]}")
    fields = dict(item.split("=") for item in report[-1].split()[1:])
    return seconds, int(fields["peak_kb"]) / 1024, fields["torch"] == "True", cpu

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--format", default="png", choices=("png", "svg", "pdf"))
    p.add_argument("--preset", default="page", choices=("column", "page"))
    args = p.parse_args()
    worst_s, worst_mb = 0.0, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for model in MODELS:
            trace = make_trace(model)
            names, size = views_of(trace)
            for view in names:
                runs = [export_once(trace, view, size, args.format, Path(tmp), args.preset)
                        for _ in range(args.repeats)]
                s = statistics.median(r[0] for r in runs)
                mb = statistics.median(r[1] for r in runs)
                torch = any(r[2] for r in runs)
                cpu = statistics.median(r[3] for r in runs)
                worst_s, worst_mb = max(worst_s, s), max(worst_mb, mb)
                print(f"{model:<19} {view:<18} {s:5.2f} s  {cpu:5.2f} s CPU  {mb:6.0f} MB  torch imported: {torch}",
                      flush=True)
    print(f"export_max_s {worst_s:.2f}")
    print(f"export_max_mb {worst_mb:.0f}")


if __name__ == "__main__":
    main()
