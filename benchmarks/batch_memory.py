"""Memory of ``relviz batch --stats`` as the inputs grow: the statistics' sums and the process's resident memory.

    python benchmarks/batch_memory.py [--n 1000] [--model demo-relation] [--work /tmp/relviz-batch-mem]

Runs ``relviz batch --stats --no-traces`` in this process over ``--n`` generated scenes (``batch_scenes.py``)
and records, after item 10, 100, 1,000 (and every power of ten up to ``--n``): the bytes the statistics hold
(the accumulator's sums) and the process's resident set (``VmRSS``) and its peak (``VmHWM``) from
``/proc/self/status``.  The statistics are streaming: their size is set by the model (heads, classes, bins)
and must be the same at 100 and 1,000 inputs; the resident set must not climb with the inputs either.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from batch_scenes import cached_scenes  # noqa: E402

from relviz.batch.runner import BatchOptions, run_batch  # noqa: E402


def status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--model", default="demo-relation")
    parser.add_argument("--work", default="/tmp/relviz-batch-mem")
    args = parser.parse_args()
    work = Path(args.work)
    scenes = cached_scenes(work / "scenes", args.n)
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    marks = {10**k for k in range(1, 8) if 10**k <= args.n} | {args.n}
    rows = []

    def on_item(done: int, acc) -> None:
        if done in marks:
            rows.append((done, acc.nbytes, status_kb("VmRSS") / 1024, status_kb("VmHWM") / 1024))

    options = BatchOptions(inputs=str(scenes), out=out, model=args.model, device="cpu", stats=True, traces=False)
    result = run_batch(options, stream=io.StringIO(), on_item=on_item)
    print(f"{args.model}, {result.done} of {result.total} scenes, --stats --no-traces, {os.cpu_count()} CPUs, "
          f"{result.seconds:.0f} s")
    print(f"{'inputs':>7} {'stats bytes':>12} {'RSS MB':>8} {'peak RSS MB':>12}")
    for done, nbytes, rss, peak in rows:
        print(f"{done:>7} {nbytes:>12,} {rss:>8.0f} {peak:>12.0f}")


if __name__ == "__main__":
    main()
