"""Checkpoints are bounded before they are read or built: archives, headers, declared architectures, values.

The hostile files are crafted by the helpers of the corpus category (``tests/corpus/checkpoints.py``); here
each refusal is also checked for *when* it happens — before torch.load, before safe_open, before any module
is built — and for what it costs.
"""

import json
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from relviz import zoo
from relviz.core import limits
from relviz.core.archive import check_zip_members, format_bytes
from relviz.core.checkpoint import first_nonfinite, load_checkpoint
from relviz.core.errors import BadInputError, CheckpointError, RelvizError

sys.path.insert(0, str(Path(__file__).parent))
from corpus import checkpoints as craft  # noqa: E402

SMALL_DETR = {"backbone_depth": 18, "hidden_dim": 64, "nheads": 4, "enc_layers": 2, "dec_layers": 2,
              "dim_feedforward": 96, "num_queries": 8, "num_classes": 5}


@pytest.fixture
def builds(monkeypatch):
    """Every family's build, recorded with the device it built on ('meta' for estimates)."""
    calls = []
    for fam in zoo.families().values():
        original = fam.build

        def build(config, _original=original, _name=fam.name):
            calls.append((_name, torch.get_default_device().type))
            return _original(config)

        monkeypatch.setattr(fam, "build", build)
    return calls


@pytest.fixture
def no_torch_load(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.load was reached")

    monkeypatch.setattr(torch, "load", refuse)


def _save(path, obj, **kwargs):
    torch.save(obj, path, **kwargs)
    return path


# -- declared architectures -----------------------------------------------------------------------


def test_a_declared_20001_layer_detr_is_refused_at_once_without_building(tmp_path, builds):
    path = _save(tmp_path / "deep.pth", {"model": craft.detr_declaring(enc=20001)})
    assert path.stat().st_size < 10_000
    start = time.perf_counter()
    with pytest.raises(BadInputError, match=r"enc_layers=20001 \(read from deep.pth\) is out of range.*0 to 64"):
        zoo.load_model(weights=path, device="cpu")
    assert time.perf_counter() - start < 0.5
    assert builds == []  # not even on the meta device


@pytest.mark.parametrize("family,state,setting", [
    ("detr", lambda: craft.detr_declaring(hidden=16384), "hidden_dim=16384"),
    ("detr", lambda: craft.detr_declaring(dec=20001), "dec_layers=20001"),
    ("lrnet", lambda: craft.lrnet_declaring(blocks=(1, 20001, 1, 1)), "blocks=[1, 20001, 1, 1]"),
    ("nonlocal", lambda: craft.nonlocal_declaring(width=16384), "widths=[16384, 16384, 16384, 16384]"),
    ("relation", lambda: craft.relation_declaring(key_dim=10**6), "key_dim=1000000"),
    ("regionfeat", lambda: craft.regionfeat_declaring(parts=500), "parts=500"),
])
def test_every_family_refuses_a_declared_giant_before_building(tmp_path, builds, family, state, setting):
    path = _save(tmp_path / "x.pth", {"model": state()})
    with pytest.raises(BadInputError, match=re.escape(setting) + r" \(read from x.pth\)"):
        zoo.load_model(weights=path, family=family, device="cpu")
    assert builds == []


def test_an_in_bounds_architecture_with_no_data_is_compared_on_the_meta_device_only(tmp_path, builds):
    path = _save(tmp_path / "empty.pth", {"model": craft.detr_declaring()})  # the official R18 shapes, no values
    with pytest.raises(CheckpointError, match="does not fit detr"):
        zoo.load_model(weights=path, device="cpu")
    assert builds == [("detr", "meta")]


def test_a_declared_architecture_over_the_parameter_limit_is_refused(tmp_path, builds):
    path = _save(tmp_path / "big.pth", {"model": craft.detr_declaring(hidden=4096, enc=20, ffn=65536)})
    with pytest.raises(BadInputError, match=r"has [\d,]+ parameters; relviz builds models of at most 400,000,000"):
        zoo.load_model(weights=path, device="cpu")
    assert builds == [("detr", "meta")]


@pytest.mark.parametrize("name,overrides", [
    ("detr-r50", SMALL_DETR),
    ("demo-lrnet", {}),
    ("demo-nonlocal-clip", {}),
    ("demo-relation", {"duplicate_removal": True, "nms": "learned", "nms_embed": 32, "nms_rank_dim": 32,
                       "nms_key_dim": 32}),
    ("demo-regionfeat", {}),
])
def test_the_parameter_estimate_is_the_real_count(name, overrides):
    entry = zoo.get_model(name)
    fam = zoo.get_family(entry.family)
    config = {**fam.default_config(), **entry.config, **overrides}
    estimate = sum(p.numel() for p in zoo.check_config(fam, config).parameters())
    real = sum(p.numel() for p in fam.build(config).parameters())
    assert estimate == real == zoo.count_parameters(fam, config)


def test_every_zoo_model_passes_its_own_bounds():
    for name, entry in zoo.models().items():
        fam = zoo.get_family(entry.family)
        zoo.check_config(fam, {**fam.default_config(), **entry.config}, what=f"model {name}")


@pytest.mark.parametrize("name,overrides,message", [
    ("detr-r50", {**SMALL_DETR, "nheads": 5}, "nheads=5 (from --heads) does not divide hidden_dim=64"),
    ("detr-r50", {**SMALL_DETR, "hidden_dim": 1e9}, "hidden_dim=1000000000.0 (from --config) is not valid"),
    ("detr-r50", {**SMALL_DETR, "hidden_dim": 66, "nheads": 2}, "is not a multiple of 4"),
    ("detr-r50", {**SMALL_DETR, "backbone_depth": 7}, "one of 18, 34, 50, 101, 152"),
    ("detr-r50", {**SMALL_DETR, "dilation": True}, "needs a bottleneck ResNet"),
    ("detr-r50", {**SMALL_DETR, "dec_layers": 0}, "dec_layers=0 (from --config) is out of range"),
    ("demo-relation", {"proposals": -5}, "proposals=-5 (from --config) is out of range"),
    ("demo-relation", {"nheads": 3}, "heads=3 (from --heads) does not divide"),
    ("demo-relation", {"anchor_sizes": [8, 16]}, "a list of 5 whole numbers"),
    ("demo-relation", {"geo_dim": 12}, "geo_dim=12 (from --config) is not a multiple of 8"),
    ("demo-regionfeat", {"samples": 64, "parts": 32}, "region weights"),
    ("demo-lrnet", {"nheads": 4}, "--heads does not apply to lrnet models"),
    ("demo-lrnet", {"m": "x"}, "m='x' (from --config) is not valid"),
    ("demo-lrnet", {"preset": [1]}, "preset=[1]"),
    ("demo-nonlocal", {"expansion": 0}, "expansion=0 (from --config) is out of range"),
    ("demo-nonlocal", {"dilation": True}, "--dilation does not apply to nonlocal models"),
    ("demo-nonlocal", {"foo": 1}, "unknown setting 'foo' (from --config) for nonlocal models"),
])
def test_settings_out_of_bounds_are_refused_with_one_sentence(name, overrides, message):
    weights = "none" if name == "detr-r50" else None
    with pytest.raises(BadInputError) as info:
        zoo.load_model(name, weights=weights, device="cpu", overrides=overrides)
    text = str(info.value)
    assert message in text and "\n" not in text, text


# -- precision ------------------------------------------------------------------------------------


def test_each_family_says_which_precisions_it_runs_in(monkeypatch):
    cpu = torch.device("cpu")
    for fam in zoo.families().values():
        assert "fp32" in fam.supported_precisions(cpu)
    assert zoo.get_family("relation").supported_precisions(cpu) == ["fp32"]
    assert zoo.get_family("regionfeat").supported_precisions(cpu) == ["fp32"]
    assert zoo.get_family("detr").supported_precisions(cpu) == ["fp32", "bf16"]
    monkeypatch.setattr("relviz.core.devices.supported_precisions", lambda device: ["fp32", "fp16", "bf16"])
    assert zoo.get_family("relation").supported_precisions(torch.device("cuda")) == ["fp32", "fp16"]
    assert zoo.get_family("lrnet").supported_precisions(torch.device("cuda")) == ["fp32", "fp16", "bf16"]


def test_an_unsupported_precision_is_refused_before_the_checkpoint_is_read(no_torch_load):
    with pytest.raises(BadInputError, match="relation models do not run in bf16 on cpu; precisions that work there: "
                                            "fp32$"):
        zoo.load_model("demo-relation", device="cpu", precision="bf16")
    loaded = zoo.load_model("demo-lrnet", weights="none", device="cpu", precision="bf16")
    assert loaded.dtype == torch.bfloat16


# -- archives -------------------------------------------------------------------------------------


def test_a_zip_bomb_is_refused_from_its_directory_without_decompressing(tmp_path, monkeypatch, no_torch_load):
    bomb = craft.zip_bomb(tmp_path / "bomb.pth", declared=300_000_000)
    assert bomb.stat().st_size < 1_000_000

    def refuse(*args, **kwargs):
        raise AssertionError("a member was opened")

    monkeypatch.setattr(zipfile.ZipFile, "open", refuse)
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"would expand from [\d.]+ kB to 30\d MB \([\d,]+-fold: a zip bomb\?\)"):
        load_checkpoint(bomb)
    assert time.perf_counter() - start < 0.5


def test_refusing_a_zip_bomb_costs_no_memory(tmp_path):
    """In a fresh process, so the peak resident memory it reports is this load's own."""
    bomb = craft.zip_bomb(tmp_path / "bomb.pth", declared=600_000_000)
    code = (
        "import resource, sys, time\n"
        "from relviz.core.checkpoint import load_checkpoint\n"
        "from relviz.core.errors import CheckpointError\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "start = time.perf_counter()\n"
        "try:\n"
        "    load_checkpoint(sys.argv[1])\n"
        "except CheckpointError:\n"
        "    pass\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024, time.perf_counter() - start)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(bomb)], capture_output=True, text=True, check=True)
    grown_mb, seconds = map(float, out.stdout.split())
    assert grown_mb < 50 and seconds < 1, out.stdout


def test_check_zip_members_bounds_what_the_directory_declares(tmp_path):
    path = tmp_path / "t.npz"
    np.savez_compressed(path, a=np.zeros((1000, 1000), np.float32), b=np.arange(10))
    members = check_zip_members(path, limits.MAX_WEIGHT_BYTES, "trace t.npz")
    assert sorted(m.filename for m in members) == ["a.npy", "b.npy"]  # 4 MB of zeros: under the ratio floor
    with pytest.raises(BadInputError, match=r"^trace t.npz declares 4 MB of uncompressed data; relviz reads at "
                                            r"most 1 MB$"):
        check_zip_members(path, 1_000_000, "trace t.npz")
    with pytest.raises(BadInputError, match="a zip bomb"):
        check_zip_members(path, limits.MAX_WEIGHT_BYTES, "trace t.npz", ratio_free_bytes=1_000_000)
    with pytest.raises(CheckpointError, match="lists 2 members; relviz reads archives of at most 1"):
        check_zip_members(path, limits.MAX_WEIGHT_BYTES, "x", max_members=1, error=CheckpointError)
    lying = craft.zip_declaring(tmp_path / "lying.pth", 3_000_000_000)
    with pytest.raises(BadInputError, match="declares 3 GB"):
        check_zip_members(lying, limits.MAX_WEIGHT_BYTES, "checkpoint lying.pth")
    (tmp_path / "cut.npz").write_bytes(path.read_bytes()[:2000])
    with pytest.raises(BadInputError, match="not a readable zip archive"):
        check_zip_members(tmp_path / "cut.npz", limits.MAX_WEIGHT_BYTES, "trace cut.npz")
    assert format_bytes(3e9) == "3 GB" and format_bytes(12) == "12 bytes"


def test_a_torch_zip_with_a_giant_pickle_is_refused_before_torch_load(tmp_path, no_torch_load):
    members = {"data.pkl": b"\x80\x02" + b"N" * (limits.MAX_PICKLE_BYTES + 1), "version": b"3\n"}
    path = craft.torch_zip(tmp_path / "p.pth", members, zipfile.ZIP_DEFLATED)
    with pytest.raises(CheckpointError, match=r"in a 16 MB pickle \(data.pkl\); relviz reads at most 16 MB"):
        load_checkpoint(path)


def test_a_legacy_file_declaring_more_than_it_holds_is_refused_before_torch_load(tmp_path, no_torch_load):
    path = craft.legacy_declaring(tmp_path / "lying.pt", 10**9)
    with pytest.raises(CheckpointError, match="declares 4 GB of tensor data, but the file holds only"):
        load_checkpoint(path)


def test_legacy_files_still_load(tmp_path):
    state = {"a": torch.randn(3, 4), "b": torch.arange(5), "c": torch.randn(2, dtype=torch.float64),
             "d": torch.randn(7).half()}
    path = _save(tmp_path / "old.pt", {"model": state, "epoch": 2}, _use_new_zipfile_serialization=False)
    ckpt = load_checkpoint(path)
    assert all(torch.equal(ckpt.state_dict[k], v) for k, v in state.items()) and ckpt.metadata == {"epoch": 2}


def test_code_running_pickles_are_refused_in_both_formats_and_never_run(tmp_path):
    for kwargs in ({}, {"_use_new_zipfile_serialization": False}):
        marker = tmp_path / "ran"
        path = _save(tmp_path / "evil.pth", {"model": {"w": torch.zeros(1)}, "x": craft.RunsCode(marker)}, **kwargs)
        with pytest.raises(RelvizError, match="would run code, so it was refused"):
            load_checkpoint(path)
        assert not marker.exists()


# -- safetensors ----------------------------------------------------------------------------------


def test_a_lying_safetensors_header_is_refused_before_safe_open(tmp_path, monkeypatch):
    import safetensors

    def refuse(*args, **kwargs):
        raise AssertionError("safe_open was reached")

    monkeypatch.setattr(safetensors, "safe_open", refuse)
    f32 = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}
    cases = {
        "big": ({"w": {"dtype": "F32", "shape": [65536, 65536], "data_offsets": [0, 2**34]}}, "outside its 16 bytes"),
        "overlong": ({"w": {**f32, "data_offsets": [0, 32]}}, "outside"),
        "short": ({"w": {**f32, "shape": [2]}}, "as F32 [2] (8 bytes) but gives it 16 bytes"),
        "dtype": ({"w": {**f32, "dtype": "F128"}}, "unknown dtype"),
        "shape": ({"w": {**f32, "shape": [-4]}}, "malformed shape"),
        "meta": ({"__metadata__": {"args": 5}, "w": f32}, "malformed metadata"),
        "key": ({"w\n": f32}, "not printable"),
    }
    for name, (header, message) in cases.items():
        path = craft.safetensors_file(tmp_path / f"{name}.safetensors", header, bytes(16))
        with pytest.raises(CheckpointError, match=re.escape(message)):
            load_checkpoint(path)


def test_a_valid_safetensors_file_still_loads(tmp_path):
    from safetensors.torch import save_file

    state = {"a": torch.randn(2, 3), "b": torch.zeros(0, 5), "c": torch.arange(4)}
    save_file(state, tmp_path / "ok.safetensors", metadata={"args": json.dumps({"nheads": 4})})
    ckpt = load_checkpoint(tmp_path / "ok.safetensors")
    assert all(torch.equal(ckpt.state_dict[k], v) for k, v in state.items()) and ckpt.args == {"nheads": 4}


# -- values and names -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_the_first_tensor_that_is_not_finite_is_named(dtype):
    state = {"a": torch.zeros(3, dtype=dtype), "b": torch.ones(5, dtype=dtype), "n": torch.arange(3),
             "c": torch.zeros(2, dtype=dtype)}
    assert first_nonfinite(state) is None
    state["b"][4] = float("-inf")
    state["c"][0] = float("nan")
    assert first_nonfinite(state) == "b"


def test_nan_weights_are_refused_at_load(tmp_path):
    state = craft.with_value(craft.demo_state("demo-lrnet"), float("nan"))
    path = _save(tmp_path / "nan.pth", {"model": state})
    bad = next(k for k, v in state.items() if v.is_floating_point())
    with pytest.raises(CheckpointError, match=f"holds NaN or infinite values in {re.escape(bad)} "):
        zoo.load_model("demo-lrnet", weights=path, device="cpu")


def test_float8_weights_are_checked_too():
    t = torch.tensor([1.0, float("nan")]).to(torch.float8_e4m3fn)
    assert first_nonfinite({"ok": t[:1], "bad": t}) == "bad"


def test_names_and_tensors_no_state_dict_holds_are_refused(tmp_path):
    base = torch.zeros(1)
    cases = {
        "count": ({f"k{i}": base[:0] for i in range(limits.MAX_STATE_DICT_KEYS + 1)}, "20,001 tensors"),
        "length": ({"x" * (limits.MAX_KEY_LENGTH + 1): base}, "names a tensor with 513 characters"),
        "expanded": ({"w": torch.zeros(2).expand(3, 2)}, "with shape [3, 2] (6 values) on 8 bytes"),
    }
    for name, (state, message) in cases.items():
        path = _save(tmp_path / f"{name}.pth", state)
        with pytest.raises(CheckpointError, match=re.escape(message)):
            load_checkpoint(path)
