"""glibc's default allocator against relviz's start-up setting (relviz.core.allocator), side by side.

Each measurement is a fresh process that builds DETR-R50 (seeded weights), runs the full trace path on an
800×1066 image ``--runs`` times and reports the median seconds per run and the minor page faults per run
after the first; processes with and without ``keep_freed_memory`` are interleaved.

    python benchmarks/allocator.py [--repeats 3] [--runs 3] [--model detr-r50] [--size 1066x800]

Last line: ``allocator_speedup <default median / relviz median>``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import json, os, resource, sys, time
import numpy as np
from PIL import Image
from relviz.core.allocator import keep_freed_memory
configured = keep_freed_memory() if sys.argv[1] == "relviz" else False
import torch
torch.set_num_threads(int(sys.argv[5]))
from relviz import zoo
model = zoo.load_model(sys.argv[2], weights="none", device="cpu")
w, h = map(int, sys.argv[3].split("x"))
path = os.path.join(sys.argv[4], "input.png")
Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
options = zoo.RunOptions(threshold=0.0)
zoo.run_model(model, path, options)  # warm-up
times, faults = [], []
for _ in range(int(sys.argv[6])):
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    zoo.run_model(model, path, options)
    times.append(time.perf_counter() - t0)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
print(json.dumps({"configured": configured, "times": times, "faults": faults}))
"""


def measure(mode: str, args: argparse.Namespace, folder: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", CHILD, mode, args.model, args.size, folder, str(args.threads),
                          str(args.runs)], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="detr-r50")
    p.add_argument("--size", default="1066x800", help="input WxH")
    p.add_argument("--repeats", type=int, default=3, help="processes per setting (interleaved)")
    p.add_argument("--runs", type=int, default=3, help="timed runs per process")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    results: dict[str, list[dict]] = {"default": [], "relviz": []}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.repeats):
            for mode in ("default", "relviz"):
                results[mode].append(measure(mode, args, folder))
    summary = {}
    for mode, runs in results.items():
        times = [t for r in runs for t in r["times"]]
        faults = [f for r in runs for f in r["faults"]]
        summary[mode] = (statistics.median(times), statistics.median(faults))
        configured = all(r["configured"] for r in runs) if mode == "relviz" else False
        print(f"{mode:8s} median {summary[mode][0]:.3f} s per trace, {summary[mode][1]:,.0f} minor faults per run"
              f"{' (mallopt applied)' if configured else ''}  [{', '.join(f'{t:.2f}' for t in times)}]")
    print(f"allocator_speedup {summary['default'][0] / summary['relviz'][0]:.3f}")


if __name__ == "__main__":
    main()
