"""Images per second of ``relviz batch`` with one process and with two (``torchrun``, gloo), on generated scenes.

    python benchmarks/batch_throughput.py [--n 200] [--model demo-relation] [--work /tmp/relviz-batch-bench]

Runs, on the same ``--n`` scenes (``batch_scenes.py``), each into a fresh folder, one after the other:

- ``1 process, 1 thread``   ``OMP_NUM_THREADS=1 relviz batch …`` (the single-thread rate)
- ``1 process, 2 threads``  ``OMP_NUM_THREADS=2 relviz batch …``
- ``2 processes``           ``torchrun --standalone --nproc_per_node 2 -m relviz batch …`` (1 thread each)

with traces written, as by default.  The rate is steady-state: items finished while every rank was working
(from the first item each rank finished to the last item the first rank to end finished), over that time, read
from the manifest's timestamps, so start-up (imports, loading the model) is left out; the wall time of the
whole command is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from batch_scenes import cached_scenes  # noqa: E402


def steady_rate(manifest: Path) -> float:
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    by_rank: dict[int, list[float]] = {}
    for r in records:
        by_rank.setdefault(r["rank"], []).append(r["time"])
    start = max(min(t) for t in by_rank.values())
    end = min(max(t) for t in by_rank.values())
    inside = sum(1 for r in records if start < r["time"] <= end)
    return inside / (end - start) if end > start else float("nan")


def run(name: str, cmd: list[str], threads: int, out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return {"run": name, "images_per_s": steady_rate(out / "manifest.jsonl"), "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--model", default="demo-relation")
    parser.add_argument("--work", default="/tmp/relviz-batch-bench")
    args = parser.parse_args()
    work = Path(args.work)
    scenes = cached_scenes(work / "scenes", args.n)
    batch = ["batch", "--model", args.model, "--device", "cpu", "--inputs", str(scenes)]
    py = [sys.executable]
    rows = [
        run("1 process, 1 thread", [*py, "-m", "relviz", *batch, "--out", str(work / "p1t1")], 1, work / "p1t1"),
        run("1 process, 2 threads", [*py, "-m", "relviz", *batch, "--out", str(work / "p1t2")], 2, work / "p1t2"),
        run("2 processes (torchrun, gloo)", [*py, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                                             "2", "-m", "relviz", *batch, "--out", str(work / "p2")], 1, work / "p2"),
    ]
    base = rows[0]["images_per_s"]
    print(f"{args.model}, {args.n} scenes 256×256, traces written; load average {os.getloadavg()[0]:.1f}")
    print(f"{'run':<30} {'images/s':>9} {'× 1 thread':>10} {'wall s':>7}")
    for r in rows:
        print(f"{r['run']:<30} {r['images_per_s']:>9.2f} {r['images_per_s'] / base:>10.2f} {r['wall_s']:>7.1f}")


if __name__ == "__main__":
    main()
