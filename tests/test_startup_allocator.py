"""relviz.core.allocator: big buffers stay in the heap after they are freed, so the next forward does not
page-fault them back; the command line and the application set it up before torch is imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from relviz.core import allocator

CHILD = r"""
import json, resource, sys
import numpy as np
from relviz.core.allocator import keep_freed_memory
configured = keep_freed_memory()
faults = []
for _ in range(3):
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.ones(64 << 20, np.uint8)  # 64 MiB: above glibc's largest dynamic mmap threshold (32 MiB)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    del a
print(json.dumps({"configured": configured, "faults": faults}))
"""

glibc_only = pytest.mark.skipif(not allocator.is_glibc(), reason="mallopt is glibc's")


def _child(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "RELVIZ_DEFAULT_MALLOC"}
    result = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120,
                            env={**clean, **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@glibc_only
def test_freed_buffers_are_reused_without_page_faults():
    kept = _child()
    default = _child(RELVIZ_DEFAULT_MALLOC="1")
    assert kept["configured"] is True and default["configured"] is False
    # numpy backs big arrays with huge pages where it can, so a 64 MiB buffer costs from 32 faults (2 MiB pages)
    # to 16,384 (4 KiB pages); the first buffer is faulted in either way
    first = default["faults"][0]
    assert first >= 32 and kept["faults"][0] >= 32, (default, kept)
    # glibc's default: every 64 MiB buffer is a fresh mmap, faulted in again each time
    assert all(f >= 0.5 * first for f in default["faults"][1:]), default
    # kept in the heap: the next ones reuse the first one's pages
    assert all(f <= 0.05 * kept["faults"][0] for f in kept["faults"][1:]), kept


@glibc_only
def test_the_users_malloc_settings_win():
    assert _child(MALLOC_MMAP_MAX_="65536")["configured"] is False
    assert _child(MALLOC_TRIM_THRESHOLD_="131072")["configured"] is False


@pytest.mark.parametrize("argv,expected", [
    (["trace", "--model", "no-such-model", "--input", "x.png", "--out", "t.npz"], True),
    (["export", "--model", "no-such-model", "--input", "x.png", "--view", "detections", "--out", "f.png"], True),
    (["export", "--trace", "missing.npz", "--view", "detections", "--out", "f.png"], False),
    (["models", "--json"], False),
])
def test_commands_that_run_models_keep_freed_memory(monkeypatch, tmp_path, capsys, argv, expected):
    from relviz import cli

    calls = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: calls.append(1) or True)
    monkeypatch.chdir(tmp_path)
    cli.main(argv)
    capsys.readouterr()
    assert bool(calls) is expected
