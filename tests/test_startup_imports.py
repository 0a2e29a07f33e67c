"""What start-up and figure export must not wait for: torch.

The model list (``relviz models``, the application's list before torch arrives) comes from the zoo's
catalog, plain data checked here against the registry; drawing figures from saved traces of every family
never imports torch.  Each of those is checked in a fresh interpreter, where ``sys.modules`` tells.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from relviz.zoo import catalog

ROOT = Path(__file__).resolve().parents[1]
RESOURCES = ROOT / "resources"


def _fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=ROOT)


# -- the catalog --------------------------------------------------------------------------------------


def test_the_catalog_is_what_the_registry_says():
    families, entries = catalog.from_registry()
    assert families == catalog.FAMILIES, "run `python -m relviz.zoo.catalog` and paste the tables"
    assert entries == catalog.ENTRIES, "run `python -m relviz.zoo.catalog` and paste the tables"


def test_the_catalog_finds_the_bundled_weights_where_the_zoo_loads_them():
    from relviz import zoo

    assert catalog.WEIGHTS_DIR == zoo.WEIGHTS_DIR
    live = zoo.models()
    for entry in catalog.ENTRIES:
        assert entry.has_weights == live[entry.name].has_weights, entry.name
        assert entry.weights_path == live[entry.name].weights_path, entry.name
    assert {e.name for e in catalog.ENTRIES if e.has_weights} >= {"demo-relation", "demo-detr"}


def test_cpu_listing_offers_what_each_family_runs_on_the_cpu():
    import torch

    from relviz import zoo

    listing = catalog.cpu_listing()
    assert [e["name"] for e in listing["zoo"]] == list(zoo.models())  # the registry's order: demo-relation first
    assert listing["devices"] == ["auto", "cpu"] and listing["provisional"] is True
    cpu = torch.device("cpu")
    assert listing["precisions"]["cpu"] == zoo.families()["detr"].supported_precisions(cpu) == ["fp32", "bf16"]
    for name, family in zoo.families().items():
        assert listing["family_precisions"][name]["cpu"] == family.supported_precisions(cpu), name
    assert listing["family_precisions"]["relation"]["cpu"] == ["fp32"]  # torchvision's NMS: fp32 only on the CPU
    shown = {e["name"]: e for e in listing["zoo"]}
    assert shown["demo-relation"] == {
        "name": "demo-relation", "family": "relation", "has_weights": True,
        "description": "demo Relation Networks detector (R18-FPN, 2fc+RM, 128 px) on shapes scenes"}
    assert shown["detr-r50"]["has_weights"] is False


# -- no torch --------------------------------------------------------------------------------------


def test_relviz_models_imports_no_torch():
    result = _fresh("import io, json, sys, contextlib\n"
                    "from relviz.cli import main\n"
                    "out = io.StringIO()\n"
                    "with contextlib.redirect_stdout(out):\n"
                    "    rc = main(['models', '--json'])\n"
                    "rows = json.loads(out.getvalue())\n"
                    "print(json.dumps({'rc': rc, 'torch': 'torch' in sys.modules, 'rows': rows}))")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["rc"] == 0 and data["torch"] is False
    rows = {r["name"]: r for r in data["rows"]}
    assert rows["detr-r50"]["params"] == 41_524_768  # sum of the official R50 parameter shapes
    assert rows["demo-relation"]["ready"] is True and rows["demo-relation"]["weights"] == "demo-relation.safetensors"
    assert rows["lrnet-26"] == {"name": "lrnet-26", "family": "lrnet", "params": 14_607_654, "weights": None,
                                "ready": False,
                                "description": "LR-Net-26 (7×7, m=8; paper: 14.7 M parameters, 2.6 GFLOPs)"}
    assert list(rows) == sorted(rows)


def test_the_apps_model_list_needs_no_torch():
    result = _fresh("import json, sys\n"
                    "import relviz.zoo\n"
                    "from relviz.zoo.catalog import cpu_listing\n"
                    "names = [e['name'] for e in cpu_listing()['zoo']]\n"
                    "print(json.dumps({'torch': 'torch' in sys.modules, 'names': names}))")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["torch"] is False
    assert data["names"] == [e.name for e in catalog.ENTRIES] and "demo-relation" in data["names"]


@pytest.fixture(scope="module")
def demo_traces(tmp_path_factory):
    """A trace of every bundled demo model on the bundled scene or clip (threshold 0: every family has boxes)."""
    from relviz import zoo

    folder = tmp_path_factory.mktemp("traces")
    paths = {}
    for entry in catalog.ENTRIES:
        if not entry.has_weights:
            continue
        loaded = zoo.load_model(entry.name, device="cpu")
        source = RESOURCES / ("clip-0.mp4" if entry.name.endswith("-clip") else "scene-0.png")
        trace = zoo.run_model(loaded, source, zoo.RunOptions(threshold=0.0))
        paths[entry.name] = folder / f"{entry.name}.npz"
        trace.save(paths[entry.name])
    return paths


CHILD = r"""
import json, sys
from pathlib import Path
from relviz.cli import main
from relviz.core.trace import Trace
from relviz.render.views import views

done = []
traces = json.loads(sys.argv[1])
out = Path(sys.argv[2])
for name, path in traces.items():
    trace = Trace.load(path)
    w, h = trace.meta["input"]["size"]
    for view, spec in sorted(views().items()):
        if trace.family not in spec.families:
            continue
        figure = out / f"{name}-{view}.png"
        rc = main(["export", "--trace", path, "--view", view, "--out", str(figure), "--dpi", "60",
                   "--object", "0", "--point", f"{w / 2:g},{h / 2:g}"])
        done.append([name, view, rc, figure.is_file()])
print(json.dumps({"torch": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")), "done": done}))
"""


def test_figures_of_every_family_from_traces_import_no_torch(demo_traces, tmp_path):
    argv = [json.dumps({k: str(v) for k, v in demo_traces.items()}), str(tmp_path)]
    result = _fresh(f"import sys; sys.argv[1:] = {argv!r}\n" + CHILD)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["torch"] == []
    failed = [(name, view) for name, view, rc, written in data["done"] if rc != 0 or not written]
    assert not failed, (failed, result.stderr[-2000:])
    drawn = {view for _, view, _, _ in data["done"]}
    assert drawn >= {"detections", "encoder-attention", "decoder-attention", "relations", "relation-matrix",
                     "geometry", "region-parts", "local-relation", "geometry-priors", "nonlocal"}
