"""Run one corpus category in this process: ``python tests/corpus/run.py CATEGORY FOLDER [CASE…]``.

Prints one JSON object per case: name, rc, stderr, seconds, maxrss_mb (the process's peak resident
memory after the case; it only grows, so a case that spent too much shows in its own line and after;
read from /proc/self/status where there is one, because on Linux ``ru_maxrss`` carries over the peak of
the process that forked this one — a large pytest process would be counted as this runner's),
and the sha256 of every file the case said must stay unchanged, before and after.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, so `corpus` imports


def _sha(path: str) -> str | None:
    p = Path(path)
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None


def peak_rss_mb() -> float:
    """This process's own peak resident memory in MB (VmHWM, reset by exec; ru_maxrss elsewhere)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    from corpus import make
    from relviz.cli import main as relviz_main

    category, folder = sys.argv[1], Path(sys.argv[2])
    only = set(sys.argv[3:])
    for case in make(category, folder):
        if only and case.name not in only:
            continue
        before = {p: _sha(p) for p in case.unchanged}
        err, out = io.StringIO(), io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                rc = relviz_main(list(case.argv))
            except SystemExit as exc:  # argparse refusals
                rc = exc.code if isinstance(exc.code, int) else 2
        seconds = time.perf_counter() - start
        maxrss_mb = peak_rss_mb()
        after = {p: _sha(p) for p in case.unchanged}
        print(json.dumps({"name": case.name, "rc": rc, "expect": case.expect, "message": case.message,
                          "stderr": err.getvalue(), "seconds": round(seconds, 3),
                          "maxrss_mb": round(maxrss_mb, 1), "unchanged_before": before,
                          "unchanged_after": after}), flush=True)


if __name__ == "__main__":
    main()
