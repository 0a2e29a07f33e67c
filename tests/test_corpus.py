"""Hostile and edge-case inputs against the command line (tests/corpus): the README's promises hold.

Each category runs in its own process (so its peak memory is its own): every case exits as expected,
a refusal is one sentence on stderr that says why (never a traceback), within 60 s and 2 GB, and no
file the case names as an input changes.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from corpus import CATEGORIES  # noqa: E402

RUNNER = Path(__file__).parent / "corpus" / "run.py"
MAX_SECONDS = 60
MAX_RSS_MB = 2048


def run_category(category: str, folder: Path) -> list[dict]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "OMP_NUM_THREADS": "2"}
    proc = subprocess.run([sys.executable, str(RUNNER), category, str(folder)], capture_output=True, text=True,
                          env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


@pytest.mark.slow
@pytest.mark.parametrize("category", CATEGORIES)
def test_corpus_category(category, tmp_path):
    results = run_category(category, tmp_path)
    assert results, f"category {category} produced no cases"
    problems = []
    for r in results:
        stderr = r["stderr"].strip()
        lines = stderr.splitlines()
        what = f"{r['name']}: rc={r['rc']} stderr={stderr[:300]!r}"
        if r["rc"] != r["expect"]:
            problems.append(f"{what} (expected exit {r['expect']})")
        if "Traceback" in stderr:
            problems.append(f"{what} (a traceback reached the user)")
        if r["expect"] == 2:
            if len(lines) != 1 or not lines[0].startswith("relviz: error: "):
                problems.append(f"{what} (not one sentence)")
            elif r["message"] and r["message"].lower() not in stderr.lower():
                problems.append(f"{what} (the sentence does not say {r['message']!r})")
        if r["seconds"] > MAX_SECONDS:
            problems.append(f"{what} (took {r['seconds']} s)")
        if r["maxrss_mb"] > MAX_RSS_MB:
            problems.append(f"{what} (peak memory {r['maxrss_mb']} MB)")
        if r["unchanged_before"] != r["unchanged_after"]:
            problems.append(f"{what} (an input file changed)")
    assert not problems, "\n".join(problems)
