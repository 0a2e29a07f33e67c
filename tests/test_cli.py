"""The relviz command: trace, export (PNG/SVG/PDF, recipes), models, and bad input → exit code 2."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from PIL import Image

from relviz.cli import main

SMALL = ["--model", "detr-r50", "--weights", "none", "--config", "backbone_depth=18", "--config", "hidden_dim=64",
         "--heads", "4", "--config", "enc_layers=2", "--config", "dec_layers=2", "--config", "dim_feedforward=96",
         "--config", "num_queries=8", "--config", "num_classes=5", "--resize", "96", "--device", "cpu"]


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scene")
    rgb = np.zeros((72, 96, 3), np.uint8)
    rgb[10:40, 10:50] = (220, 40, 40)
    rgb[40:70, 55:90] = (40, 40, 220)
    Image.fromarray(rgb).save(folder / "scene.png")
    trace = folder / "scene.npz"
    assert main(["trace", *SMALL, "--threshold", "0", "--input", str(folder / "scene.png"), "--out", str(trace)]) == 0
    return folder


def check_figure(path, fmt):
    data = path.read_bytes()
    if fmt == "png":
        with Image.open(path) as im:
            im.load()
            return im.size
    if fmt == "pdf":
        assert data.startswith(b"%PDF-") and b"/Type /Page" in data and data.rstrip().endswith(b"%%EOF")
        return None
    root = ET.fromstring(data)  # parses as XML
    assert root.tag.endswith("svg")
    texts = [t for t in root.iter() if t.tag.endswith("text")]
    assert texts, "text must stay text in SVG"
    return None


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
@pytest.mark.parametrize("view,extra", [("detections", ["--object", "1"]),
                                        ("encoder-attention", ["--point", "30,25", "--point", "70,50"]),
                                        ("decoder-attention", ["--object", "0", "--head", "mean"]),
                                        ("decoder-attention", ["--layer", "0"])])
def test_export_views(scene, tmp_path, view, extra, fmt):
    out = tmp_path / f"fig.{fmt}"
    assert main(["export", "--trace", str(scene / "scene.npz"), "--view", view, *extra, "--out", str(out),
                 "--dpi", "100", "--width", "4", "--height", "3"]) == 0
    size = check_figure(out, fmt)
    if fmt == "png":
        assert size == (400, 300)
    recipe = json.loads((tmp_path / "fig.recipe.json").read_text())
    assert recipe["view"] == view and recipe["trace_sha256"]


def test_recipe_regenerates_identical_files(scene, tmp_path):
    for fmt in ("png", "svg", "pdf"):
        first = tmp_path / f"a.{fmt}"
        assert main(["export", "--trace", str(scene / "scene.npz"), "--view", "decoder-attention", "--head", "1",
                     "--out", str(first), "--dpi", "120"]) == 0
        second = tmp_path / f"b.{fmt}"
        assert main(["export", "--recipe", str(tmp_path / "a.recipe.json"), "--out", str(second)]) == 0
        assert first.read_bytes() == second.read_bytes(), fmt


def test_export_straight_from_a_model_run_and_its_recipe(scene, tmp_path):
    out = tmp_path / "enc.png"
    args = ["export", *SMALL, "--input", str(scene / "scene.png"), "--view", "encoder-attention",
            "--point", "20,20", "--out", str(out), "--dpi", "80"]
    assert main(args) == 0
    again = tmp_path / "again.png"
    assert main(["export", "--recipe", str(tmp_path / "enc.recipe.json"), "--out", str(again)]) == 0
    assert out.read_bytes() == again.read_bytes()


def test_models_json_lists_the_zoo(capsys):
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert {"detr-r50", "detr-r50-dc5", "detr-r101", "detr-r101-dc5"} <= set(rows)
    assert rows["detr-r50"]["family"] == "detr"
    assert rows["detr-r50"]["params"] == 41_524_768  # sum of the official R50 parameter shapes
    assert set(rows["detr-r50"]) >= {"name", "family", "params", "weights"}


def _expect_error(capsys, argv, pattern):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("relviz: error:") and pattern in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("content,pattern", [(b"", "empty"), (b"GIF89a garbage", "not an image"),
                                             (b"\xff\xd8\xff\xe0 truncated", "corrupt or truncated")])
def test_bad_images_exit_2(scene, tmp_path, capsys, content, pattern):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(content)
    out = tmp_path / "t.npz"
    _expect_error(capsys, ["trace", *SMALL, "--input", str(bad), "--out", str(out)], pattern)
    assert not out.exists()


def test_bad_checkpoints_exit_2(scene, tmp_path, capsys):
    image = str(scene / "scene.png")
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"model": Payload()}, tmp_path / "evil.pth")
    _expect_error(capsys, ["trace", "--weights", str(tmp_path / "evil.pth"), "--input", image,
                           "--out", str(tmp_path / "t.npz")], "would run code")
    assert not marker.exists()

    torch.save({"model": {"w": torch.randn(4096)}}, tmp_path / "ok.pth")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "ok.pth").read_bytes()[:3000])
    _expect_error(capsys, ["trace", "--weights", str(tmp_path / "cut.pth"), "--input", image,
                           "--out", str(tmp_path / "t.npz")], "truncated or corrupt")

    import torchvision

    resnet = torchvision.models.resnet18(weights=None)
    torch.save(resnet.state_dict(), tmp_path / "resnet.pth")
    _expect_error(capsys, ["trace", "--weights", str(tmp_path / "resnet.pth"), "--input", image,
                           "--out", str(tmp_path / "t.npz")], "does not look like")
    err = _expect_error(capsys, ["trace", "--weights", str(tmp_path / "resnet.pth"), "--family", "detr",
                                 "--input", image, "--out", str(tmp_path / "t.npz")], "not a DETR state dict")
    assert "query_embed.weight" in err


def test_checkpoint_that_does_not_fit_lists_the_differences(scene, tmp_path, capsys):
    from relviz import zoo

    state = zoo.load_model("detr-r50", weights="none", device="cpu",
                           overrides={"backbone_depth": 18, "hidden_dim": 64, "nheads": 4, "enc_layers": 1,
                                      "dec_layers": 1, "dim_feedforward": 32, "num_queries": 4,
                                      "num_classes": 3}).module.state_dict()
    state.pop("class_embed.bias")
    state["extra.weight"] = torch.zeros(1)
    state["bbox_embed.layers.2.weight"] = torch.zeros(5, 64)
    torch.save({"model": state}, tmp_path / "odd.pth")
    err = _expect_error(capsys, ["trace", "--weights", str(tmp_path / "odd.pth"), "--heads", "4",
                                 "--input", str(scene / "scene.png"), "--out", str(tmp_path / "t.npz")],
                        "does not fit detr")
    assert "missing keys: class_embed.bias" in err and "unexpected keys: extra.weight" in err
    assert "bbox_embed.layers.2.weight (checkpoint [5, 64] vs model [4, 64])" in err


def test_bad_outputs_and_selections_exit_2(scene, tmp_path, capsys):
    trace = str(scene / "scene.npz")
    _expect_error(capsys, ["export", "--trace", trace, "--view", "detections", "--out",
                           str(tmp_path / "missing" / "f.png")], "does not exist")
    if sys.platform.startswith("linux"):
        _expect_error(capsys, ["export", "--trace", trace, "--view", "detections", "--out", "/proc/f.png"],
                      "cannot write")
    _expect_error(capsys, ["export", "--trace", trace, "--view", "detections", "--object", "99",
                           "--out", str(tmp_path / "f.png")], "--object 99 is out of range")
    _expect_error(capsys, ["export", "--trace", trace, "--view", "encoder-attention", "--point", "500,10",
                           "--out", str(tmp_path / "f.png")], "outside the image")
    _expect_error(capsys, ["export", "--trace", trace, "--view", "encoder-attention", "--layer", "7",
                           "--out", str(tmp_path / "f.png")], "layer 7 does not exist")
    _expect_error(capsys, ["export", "--trace", trace, "--view", "nope", "--out", str(tmp_path / "f.png")],
                  "unknown view")
    _expect_error(capsys, ["export", "--trace", trace, "--view", "detections", "--out", str(tmp_path / "f.gif")],
                  ".png, .svg or .pdf")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing half-written


def test_command_line_process_reports_bad_input(tmp_path):
    bad = tmp_path / "x.png"
    bad.write_text("not an image")
    result = subprocess.run([sys.executable, "-m", "relviz", "trace", "--model", "detr-r50", "--weights", "none",
                             "--input", str(bad), "--out", str(tmp_path / "t.npz")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("relviz: error:") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
