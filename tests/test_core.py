"""Core: trace files, image reading, the reader registry, devices, and loading checkpoints safely."""

import argparse
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from relviz.core.capture import Recorder
from relviz.core.checkpoint import load_checkpoint
from relviz.core.devices import resolve_device, resolve_precision
from relviz.core.errors import BadInputError, CheckpointError, UnsafeCheckpointError
from relviz.core.grid import Grid
from relviz.core.images import read_image
from relviz.core.readers import InputKind, classify, folder_items
from relviz.core.trace import FactoredAttention, Trace, softmax


def test_trace_round_trip_without_pickle(tmp_path, rng):
    trace = Trace(meta={"family": "detr", "input": {"path": "x.png", "size": [40, 30]},
                        "grid": Grid(3, 4, 32.0, 1.0, 1.0).to_json()})
    trace["detections/boxes"] = rng.random((3, 4)).astype(np.float32)
    trace["detections/labels"] = np.array([1, 2, 3])
    q, k = rng.standard_normal((2, 4, 12, 8)), rng.standard_normal((2, 4, 12, 8))
    mask = np.zeros(12, bool)
    mask[10:] = True
    trace["detr/encoder/self_attn"] = FactoredAttention(q.astype(np.float32), k.astype(np.float32), 0.35, mask)
    path = trace.save(tmp_path / "t.npz")
    with np.load(path, allow_pickle=False) as npz:  # every entry is a plain array
        assert "meta" in npz.files and all(npz[f].dtype != object for f in npz.files)
    back = Trace.load(path)
    assert back.meta["grid"] == trace.meta["grid"] and back.family == "detr"
    np.testing.assert_array_equal(back["detections/labels"], [1, 2, 3])
    full = back["detr/encoder/self_attn"]
    expected = softmax(np.where(mask, -np.inf, np.einsum("lhqd,lhkd->lhqk", q, k) * 0.35))
    np.testing.assert_allclose(full, expected, atol=1e-5)
    np.testing.assert_allclose(back.rows("detr/encoder/self_attn", 5), expected[:, :, 5], atol=1e-5)
    assert np.all(full[..., 10:] == 0)


def test_trace_load_refuses_other_files(tmp_path):
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(BadInputError, match="not a relviz trace"):
        Trace.load(bad)
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(BadInputError, match="no 'meta'"):
        Trace.load(tmp_path / "plain.npz")


def test_recorder_stacks_layers_per_batch_element():
    rec = Recorder()
    for layer in range(3):
        rec.append("x/attn", torch.full((2, 4), float(layer)) + torch.arange(2)[:, None] * 10)
    trace = rec.finish(1)
    np.testing.assert_array_equal(trace["x/attn"][:, 0], [10, 11, 12])


@pytest.mark.parametrize("suffix,mode", [(".jpg", "RGB"), (".png", "RGBA"), (".bmp", "RGB"), (".tif", "RGB"),
                                         (".webp", "RGB"), (".png", "L")])
def test_read_image_formats(tmp_path, suffix, mode):
    image = Image.new(mode, (20, 10), color=200 if mode == "L" else (200, 100, 50, 128)[: len(mode)])
    path = tmp_path / f"im{suffix}"
    image.save(path)
    rgb = read_image(path)
    assert rgb.shape == (10, 20, 3) and rgb.dtype == np.uint8
    if mode == "L":
        assert np.all(rgb == 200)
    elif suffix in (".png", ".bmp", ".tif"):
        assert tuple(rgb[0, 0]) == (200, 100, 50)


def test_read_16_bit_and_exif_orientation(tmp_path):
    gray16 = np.full((6, 8), 65535, np.uint16)
    gray16[:, :4] = 257 * 10
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    rgb = read_image(tmp_path / "g16.png")
    assert rgb.shape == (6, 8, 3) and rgb[0, 0, 0] == 10 and rgb[0, 7, 0] == 255
    image = Image.new("RGB", (30, 10), (255, 0, 0))
    exif = image.getexif()
    exif[0x0112] = 6  # rotated: shown turned by 90°
    image.save(tmp_path / "rot.jpg", exif=exif)
    assert read_image(tmp_path / "rot.jpg").shape == (30, 10, 3)


@pytest.mark.parametrize("content,reason", [(b"", "empty"), (b"hello, not an image", "not an image"),
                                            (None, "corrupt or truncated")])
def test_read_image_refuses_bad_files(tmp_path, content, reason):
    path = tmp_path / "bad.jpg"
    if content is None:
        Image.new("RGB", (64, 64), (1, 2, 3)).save(path, quality=95)
        path.write_bytes(path.read_bytes()[: 200])
    else:
        path.write_bytes(content)
    with pytest.raises(BadInputError, match=reason):
        read_image(path)


def test_reader_registry(tmp_path):
    for name, kind in [("a.JPG", InputKind.IMAGE), ("b.mp4", InputKind.VIDEO), ("c.pth", InputKind.CHECKPOINT),
                       ("d.safetensors", InputKind.CHECKPOINT), ("e.npz", InputKind.TRACE)]:
        (tmp_path / name).write_bytes(b"x")
        assert classify(tmp_path / name) == kind
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(BadInputError, match="cannot open notes.txt"):
        classify(tmp_path / "notes.txt")
    assert classify(tmp_path) == InputKind.FOLDER
    assert [p.name for p in folder_items(tmp_path)] == ["a.JPG", "b.mp4"]


def test_devices_and_precision():
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(BadInputError, match="does not exist|no CUDA"):
        resolve_device("cuda:17")
    with pytest.raises(BadInputError, match="unknown device"):
        resolve_device("tpu:0")
    assert resolve_precision("fp32", torch.device("cpu")) == torch.float32
    assert resolve_precision("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(BadInputError, match="not supported on cpu"):
        resolve_precision("fp16", torch.device("cpu"))


class _Payload:
    """Unpickling this would create a file: a checkpoint must never run it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(2)}, "extra": _Payload(str(marker))}, path)
    with pytest.raises(UnsafeCheckpointError, match="would run code"):
        load_checkpoint(path)
    assert not marker.exists()


def test_checkpoint_forms(tmp_path):
    from safetensors.torch import save_file

    state = {"a.weight": torch.randn(2, 3), "b.bias": torch.randn(2)}
    for key in ("model", "state_dict", "model_state_dict"):
        torch.save({key: state, "epoch": 3}, tmp_path / f"{key}.pth")
        assert set(load_checkpoint(tmp_path / f"{key}.pth").state_dict) == set(state)
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "dp.pt")
    assert set(load_checkpoint(tmp_path / "dp.pt").state_dict) == set(state)
    torch.save({"model": state, "args": argparse.Namespace(nheads=4)}, tmp_path / "train.pth")
    assert load_checkpoint(tmp_path / "train.pth").args == {"nheads": 4}
    save_file(state, tmp_path / "w.safetensors")
    ck = load_checkpoint(tmp_path / "w.safetensors")
    assert torch.equal(ck.state_dict["a.weight"], state["a.weight"]) and len(ck.sha256) == 64


def test_broken_checkpoints_get_a_sentence(tmp_path):
    torch.save({"model": {"w": torch.randn(1000)}}, tmp_path / "ok.pth")
    data = (tmp_path / "ok.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "cut.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(tmp_path / "empty.pth")
    (tmp_path / "x.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(CheckpointError, match="safetensors"):
        load_checkpoint(tmp_path / "x.safetensors")
    torch.save({"hello": "world"}, tmp_path / "nostate.pth")
    with pytest.raises(CheckpointError, match="no state dict"):
        load_checkpoint(tmp_path / "nostate.pth")
    assert zipfile.is_zipfile(tmp_path / "ok.pth")


def test_grid_maps_points_to_cells_and_back():
    grid = Grid(height=4, width=5, stride=32, scale_x=2.0, scale_y=2.0)
    # original pixel (20, 40) → model pixel (40, 80) → cell (row 2, col 1)
    assert grid.cell_of_point(20, 40) == 2 * 5 + 1
    x, y, t = grid.point_of_cell(2 * 5 + 1)
    assert (x, y, t) == (24.0, 40.0, 0)
    m = grid.to_image(np.arange(20, dtype=np.float32), (80, 64))
    assert m.shape == (64, 80)


def test_core_models_render_and_cli_import_without_qt():
    code = (
        "import sys\n"
        "for name in ('PySide6', 'pyqtgraph', 'shiboken6'):\n"
        "    sys.modules[name] = None  # any import of them now fails\n"
        "import relviz.core.trace, relviz.core.capture, relviz.core.checkpoint, relviz.core.images\n"
        "import relviz.core.readers, relviz.core.video, relviz.core.devices, relviz.core.grid\n"
        "import relviz.zoo, relviz.cli, relviz.render.views, relviz.render.figure\n"
        "relviz.render.views.views()\n"
        "import pkgutil, importlib, relviz.models\n"
        "for m in pkgutil.iter_modules(relviz.models.__path__):\n"
        "    importlib.import_module('relviz.models.' + m.name)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
