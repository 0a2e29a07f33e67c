"""DESIGN §2's import contracts (pyproject.toml [tool.importlinter]) hold: parts form layers with no cycles,
function-level imports included; views and figures never import torch; only the application imports Qt."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(exe).exists():
        pytest.fail("lint-imports is not installed; it is part of the [test] extra")
    proc = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    report = proc.stdout[proc.stdout.find("Contracts"):]
    assert proc.returncode == 0, report or proc.stderr
    assert "BROKEN" not in report and "KEPT" in report
