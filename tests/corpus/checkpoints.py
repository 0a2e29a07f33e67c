"""Checkpoints a user may drop on relviz, run through ``relviz trace --weights FILE``.

Generated here, all small (the whole category writes a few MB): state dicts of zero-size tensors whose
keys and shapes *declare* absurd architectures (20,001 layers, a width of 16,384) for every family; zip
bombs and zip archives with lying or missing members; legacy torch files; safetensors files with lying
headers; pickles that would run code (their payload would create a file, which must never appear);
NaN and Inf in real small models; names and tensors no state dict holds; precisions, devices and
``--config`` / ``--heads`` values that cannot work.  Valid edge inputs (training-checkpoint and legacy
forms, DataParallel prefixes, bf16 where it runs) must still work.

The helpers that craft the files are also used by ``tests/test_checkpoint_bounds.py``.
"""

from __future__ import annotations

import argparse
import io
import json
import pickle
import struct
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from corpus import Case

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = REPO / "weights"

SMALL_DETR = ["--model", "detr-r50", "--weights", "none", "--config", "backbone_depth=18", "--config",
              "hidden_dim=64", "--heads", "4", "--config", "enc_layers=2", "--config", "dec_layers=2", "--config",
              "dim_feedforward=96", "--config", "num_queries=8", "--config", "num_classes=5", "--resize", "96",
              "--device", "cpu"]


def empty(*shape: int) -> torch.Tensor:
    """A zero-size tensor that declares ``shape`` in its leading dimensions (legal in torch.save: no data)."""
    return torch.empty(*shape, 0)


# -- state dicts that declare an architecture with no data behind it ------------------------------


def detr_declaring(hidden: int = 256, enc: int = 6, dec: int = 6, ffn: int = 2048, queries: int = 100,
                   classes: int = 91) -> dict[str, torch.Tensor]:
    """DETR keys (ResNet-18 body) whose shapes declare the given architecture; only the last layer of the
    encoder and decoder is listed, which is all that layer counting reads."""
    state = {
        "backbone.0.body.conv1.weight": empty(64),
        "input_proj.weight": empty(hidden),
        "query_embed.weight": empty(queries),
        "class_embed.weight": empty(classes + 1),
        "bbox_embed.layers.0.weight": empty(hidden),
        "transformer.decoder.layers.0.multihead_attn.in_proj_weight": empty(3 * hidden),
        "transformer.decoder.layers.0.linear1.weight": empty(ffn),
        f"transformer.decoder.layers.{dec - 1}.norm1.weight": empty(hidden),
    }
    if enc:
        state[f"transformer.encoder.layers.{enc - 1}.norm1.weight"] = empty(hidden)
    for stage in range(1, 5):
        for block in range(2):
            state[f"backbone.0.body.layer{stage}.{block}.conv1.weight"] = empty(64)
    return state


def lrnet_declaring(blocks: tuple[int, ...] = (1, 1, 1, 1), stem: int = 16, width: int = 16,
                    classes: int = 10) -> dict[str, torch.Tensor]:
    state = {
        "conv1.weight": empty(stem),
        "stem_lr.key.weight": empty(stem),
        "stem_lr.query.weight": empty(stem),
        "stem_lr.geometry.0.weight": empty(8),
        "stem_lr.out.weight": empty(stem),
        "layer1.0.lr.key.weight": empty(width),
        "layer1.0.lr.geometry.2.weight": empty(width),
        "fc.weight": empty(classes),
    }
    for stage, n in enumerate(blocks, start=1):
        state[f"layer{stage}.0.conv1.weight"] = empty(width)
        state[f"layer{stage}.0.conv3.weight"] = empty(2 * width)
        state[f"layer{stage}.{n - 1}.bn1.weight"] = empty(width)
    return state


def nonlocal_declaring(blocks: tuple[int, ...] = (1, 1, 1, 1), width: int = 16,
                       classes: int = 10) -> dict[str, torch.Tensor]:
    state = {
        "conv1.weight": empty(16),
        "layer1.0.conv2.weight": empty(width),
        "layer1.0.conv3.weight": empty(4 * width),
        "fc.weight": empty(classes),
        "nonlocal_blocks.res4_0.g.weight": empty(width, 1, 1),
        "nonlocal_blocks.res4_0.theta.weight": empty(width, 1, 1),
        "nonlocal_blocks.res4_0.w_z.weight": empty(width, 1, 1),
        "nonlocal_blocks.res4_0.bn.weight": empty(width),
    }
    for stage, n in enumerate(blocks, start=1):
        state[f"layer{stage}.0.conv1.weight"] = empty(width)
        state[f"layer{stage}.{n - 1}.bn1.weight"] = empty(width)
    return state


def _rcnn_body(fpn: int = 64, classes: int = 5) -> dict[str, torch.Tensor]:
    state = {
        "backbone.body.conv1.weight": empty(64),
        "backbone.fpn.inner_blocks.0.0.weight": empty(fpn),
        "rpn.head.cls_logits.weight": empty(3),
        "roi_heads.box_predictor.cls_score.weight": empty(classes),
    }
    for stage in range(1, 5):
        state[f"backbone.body.layer{stage}.1.conv1.weight"] = empty(64)
    return state


def relation_declaring(heads: int = 4, representation: int = 256, key_dim: int = 128,
                       fpn: int = 64) -> dict[str, torch.Tensor]:
    pre = "roi_heads.box_head.relations.0."
    return {
        **_rcnn_body(fpn),
        "roi_heads.box_head.fc6.weight": empty(representation, fpn * 49),
        pre + "geometry_fc.weight": empty(heads, 32),
        pre + "query.weight": empty(key_dim),
    }


def regionfeat_declaring(parts: int = 4, fpn: int = 48) -> dict[str, torch.Tensor]:
    return {
        **_rcnn_body(fpn),
        "roi_heads.box_head.fc6.weight": empty(128),
        "roi_heads.box_roi_pool.geometry_fc.weight": empty(parts * parts, 32),
        "roi_heads.box_roi_pool.value_weight": empty(1),
    }


# -- archives and pickles -------------------------------------------------------------------------


def torch_zip(path: Path, members: dict[str, bytes], compress: int = zipfile.ZIP_STORED) -> Path:
    """A zip archive laid out as torch.save writes one (``archive/data.pkl``, ``archive/data/0`` …)."""
    with zipfile.ZipFile(path, "w", compress) as z:
        for name, data in members.items():
            z.writestr(f"archive/{name}", data)
    return path


def torch_members(obj: object) -> dict[str, bytes]:
    """The members of a real torch.save file of ``obj``, by name within the archive."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    with zipfile.ZipFile(buf) as z:
        return {info.filename.split("/", 1)[1]: z.read(info) for info in z.infolist()}


def zip_bomb(path: Path, declared: int = 600_000_000, members: int = 1) -> Path:
    """A torch-style archive whose data members expand from about a thousandth of ``declared`` to ``declared``;
    its pickle names every member as a float32 storage of that size, so torch.load would inflate them all."""
    chunks = -(-declared // members // (1 << 20))  # 1 MiB chunks of zeros per member
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", _storage_pickle(members, chunks * (1 << 18)))
        z.writestr("archive/version", b"3\n")
        for m in range(members):
            with z.open(f"archive/data/{m}", "w", force_zip64=True) as fh:
                for _ in range(chunks):
                    fh.write(bytes(1 << 20))
    return path


def _storage_pickle(count: int, numel: int) -> bytes:
    """data.pkl of ``{'w0': …, 'w1': …}``, one-value tensors whose storages '0', '1', … declare ``numel`` floats."""
    tensors = {f"w{i}": torch.zeros(1) for i in range(count)}
    keys = {t.untyped_storage().data_ptr(): str(i) for i, t in enumerate(tensors.values())}

    class StoragePickler(pickle.Pickler):
        def persistent_id(self, obj: object):
            if isinstance(obj, torch.storage.TypedStorage):
                return ("storage", torch.FloatStorage, keys[obj._untyped_storage.data_ptr()], "cpu", numel)
            return None

    buf = io.BytesIO()
    StoragePickler(buf, protocol=2).dump(tensors)
    return buf.getvalue()


def zip_declaring(path: Path, declared: int) -> Path:
    """A tiny torch-style archive whose directory claims one member of ``declared`` (< 4 GB) bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"w": 0}, protocol=2))
        z.writestr("archive/data/0", b"\0" * 4)
    data = bytearray(buf.getvalue())
    central = data.rfind(b"PK\x01\x02")  # the last member's directory entry
    struct.pack_into("<I", data, central + 24, declared)  # its uncompressed size
    path.write_bytes(bytes(data))
    return path


class RunsCode:
    """Unpickling this would open (create) ``marker``: a checkpoint must never run it."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class _LyingPickler(pickle.Pickler):
    """Pickles tensors as legacy torch.save does, but declares ``numel`` elements for every storage."""

    def __init__(self, fh: io.BufferedWriter, numel: int) -> None:
        super().__init__(fh, protocol=2)
        self.numel = numel

    def persistent_id(self, obj: object):
        if isinstance(obj, torch.storage.TypedStorage):
            return ("storage", torch.FloatStorage, "0", "cpu", self.numel, None)
        return None


def legacy_declaring(path: Path, numel: int) -> Path:
    """A legacy-format torch file of a 3-element tensor whose pickle declares ``numel`` elements."""
    from torch.serialization import MAGIC_NUMBER, PROTOCOL_VERSION

    with open(path, "wb") as fh:
        pickle.dump(MAGIC_NUMBER, fh, protocol=2)
        pickle.dump(PROTOCOL_VERSION, fh, protocol=2)
        pickle.dump({"protocol_version": PROTOCOL_VERSION, "little_endian": True,
                     "type_sizes": {"short": 2, "int": 4, "long": 4}}, fh, protocol=2)
        _LyingPickler(fh, numel).dump({"w": torch.zeros(3)})
        pickle.dump(["0"], fh, protocol=2)
        fh.write(struct.pack("<q", 3) + bytes(12))
    return path


def safetensors_file(path: Path, header: dict, data: bytes = b"") -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def _sparse(n: int) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's note on sparse invariant checks
        return torch.sparse_coo_tensor(torch.tensor([[0]]), torch.tensor([1.0]), (n,))


def demo_state(name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(WEIGHTS / f"{name}.safetensors"))


def with_value(state: dict[str, torch.Tensor], value: float) -> dict[str, torch.Tensor]:
    """A copy of ``state`` whose first floating-point tensor holds ``value`` at its first element."""
    state = {k: v.clone() for k, v in state.items()}
    key = next(k for k, v in state.items() if v.is_floating_point() and v.numel())
    state[key].view(-1)[0] = value
    return state


# -- the cases ------------------------------------------------------------------------------------


def _trace(folder: Path, name: str, *argv: str) -> list[str]:
    return ["trace", *argv, "--input", str(folder / "scene.png"), "--out", str(folder / f"out-{name}.npz")]


def _save(folder: Path, name: str, obj: object, **kwargs) -> str:
    path = folder / name
    torch.save(obj, path, **kwargs)
    return str(path)


def _declared_cases(folder: Path) -> list[Case]:
    """Zero-size tensors declaring architectures no checkpoint of a few kB can hold."""
    from safetensors.torch import save_file

    def case(name: str, state: dict, message: str, *extra: str, args: dict | None = None) -> Case:
        obj = {"model": state, **({"args": argparse.Namespace(**args)} if args else {})}
        return Case(name, _trace(folder, name, "--weights", _save(folder, f"{name}.pth", obj), *extra), 2, message)

    save_file(detr_declaring(dec=20001), folder / "detr-deep.safetensors")
    return [
        case("detr-20001-encoder-layers", detr_declaring(enc=20001), "enc_layers"),
        Case("detr-20001-decoder-layers-safetensors",
             _trace(folder, "dd", "--weights", str(folder / "detr-deep.safetensors")), 2, "dec_layers"),
        case("detr-16384-wide", detr_declaring(hidden=16384), "hidden_dim"),
        case("detr-million-queries", detr_declaring(queries=1_000_000), "num_queries"),
        case("detr-ten-million-classes", detr_declaring(classes=10_000_000), "num_classes"),
        case("detr-over-parameter-limit", detr_declaring(hidden=4096, enc=20, ffn=65536), "parameters"),
        case("detr-in-bounds-but-empty", detr_declaring(), "does not fit"),
        case("detr-args-heads-not-a-number", detr_declaring(), "nheads", args={"nheads": "x"}),
        case("detr-args-heads-not-dividing", detr_declaring(), "does not divide", args={"nheads": 7}),
        case("lrnet-20001-blocks", lrnet_declaring(blocks=(1, 1, 20001, 1)), "blocks"),
        case("lrnet-wide-stem", lrnet_declaring(stem=100_000), "stem_width"),
        case("lrnet-no-groups", lrnet_declaring(stem=0), "lrnet"),
        case("nonlocal-deep", nonlocal_declaring(blocks=(3, 4, 5000, 3)), "blocks"),
        case("nonlocal-wide", nonlocal_declaring(width=1_000_000), "widths"),
        case("relation-wide", relation_declaring(representation=1_000_000), "representation"),
        case("relation-many-heads", relation_declaring(heads=100_000), "heads"),
        case("regionfeat-many-parts", regionfeat_declaring(parts=1000), "parts"),
    ]


def _archive_cases(folder: Path) -> list[Case]:
    """Zip bombs, lying and broken archives, legacy files, big pickles."""
    lrnet = {"model": demo_state("demo-lrnet")}
    members = torch_members(lrnet)
    good = _save(folder, "good.pth", lrnet)
    Path(folder / "truncated.pth").write_bytes(Path(good).read_bytes()[:30_000])
    torch_zip(folder / "no-pickle.pth", {k: v for k, v in members.items() if k != "data.pkl"})
    torch_zip(folder / "bad-pickle.pth", {**members, "data.pkl": b"\x80\x02garbage that is no pickle"})
    torch_zip(folder / "no-storage.pth", {k: v for k, v in members.items() if k != "data/0"})
    torch_zip(folder / "big-pickle.pth", {"data.pkl": pickle.dumps({"model": {}, "junk": [0] * 9_000_000}, 2),
                                          "version": b"3\n"}, zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(folder / "empty-zip.pth", "w"):
        pass
    (folder / "text.pth").write_text("this is a text file, not a checkpoint\n")
    legacy_declaring(folder / "legacy-lying.pt", 500_000_000)
    zip_bomb(folder / "bomb.pth")
    zip_bomb(folder / "bomb-many.npz", declared=100 << 20, members=100)
    zip_declaring(folder / "lying-3gb.pth", 3_000_000_000)

    def case(name: str, file: str, message: str) -> Case:
        return Case(name, _trace(folder, name, "--model", "demo-lrnet", "--weights", str(folder / file)), 2, message)

    return [
        case("truncated-zip", "truncated.pth", "truncated or corrupt"),
        case("zip-without-data-pkl", "no-pickle.pth", "data.pkl"),
        case("zip-with-corrupt-data-pkl", "bad-pickle.pth", "corrupt"),
        case("zip-without-storage", "no-storage.pth", "data/0"),
        case("pickle-of-a-big-list", "big-pickle.pth", "pickle"),
        case("empty-zip", "empty-zip.pth", "not a pytorch checkpoint"),
        case("text-file", "text.pth", "not a pytorch checkpoint"),
        case("legacy-declaring-2gb", "legacy-lying.pt", "declares"),
        case("zip-bomb", "bomb.pth", "zip bomb"),
        case("zip-bomb-many-members-npz", "bomb-many.npz", "zip bomb"),
        case("zip-directory-claims-3gb", "lying-3gb.pth", "declares 3 GB"),
        Case("junk-without-state-dict",
             _trace(folder, "junk", "--weights", _save(folder, "junk.pth", {"junk": list(range(50_000))})), 2,
             "no state dict"),
    ]


def _code_cases(folder: Path) -> list[Case]:
    """Pickles that would run code: refused, and their payload (creating a file) never runs."""
    cases = []
    for fmt, kwargs in (("zip", {}), ("legacy", {"_use_new_zipfile_serialization": False})):
        marker = folder / f"payload-ran-{fmt}"
        path = _save(folder, f"evil-{fmt}.pth", {"model": {"w": torch.zeros(2)}, "extra": RunsCode(marker)}, **kwargs)
        cases.append(Case(f"code-running-pickle-{fmt}", _trace(folder, f"evil-{fmt}", "--weights", path), 2,
                          "would run code", unchanged=[str(marker)]))
    return cases


def _safetensors_cases(folder: Path) -> list[Case]:
    f32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    safetensors_file(folder / "header-length.safetensors", {"w": f32}, bytes(8))
    data = folder / "header-length.safetensors"
    data.write_bytes(struct.pack("<Q", 2**62) + data.read_bytes()[8:])
    huge = {"dtype": "F32", "shape": [100_000, 100_000], "data_offsets": [0, 40_000_000_000]}
    safetensors_file(folder / "huge-shape.safetensors", {"w": huge}, bytes(16))
    safetensors_file(folder / "inconsistent.safetensors",
                     {"w": {"dtype": "F32", "shape": [10], "data_offsets": [0, 8]}}, bytes(8))
    safetensors_file(folder / "bad-dtype.safetensors", {"w": {**f32, "dtype": "Q7"}}, bytes(8))
    (folder / "not-json.safetensors").write_bytes(struct.pack("<Q", 12) + b"{not json at")
    safetensors_file(folder / "many.safetensors",
                     {f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(30_000)})

    def case(name: str, file: str, message: str) -> Case:
        return Case(name, _trace(folder, name, "--weights", str(folder / file)), 2, message)

    return [
        case("safetensors-header-length-2-62", "header-length.safetensors", "header"),
        case("safetensors-declares-40gb-tensor", "huge-shape.safetensors", "outside"),
        case("safetensors-shape-offsets-disagree", "inconsistent.safetensors", "declares tensor w"),
        case("safetensors-unknown-dtype", "bad-dtype.safetensors", "dtype"),
        case("safetensors-header-not-json", "not-json.safetensors", "not json"),
        case("safetensors-30000-tensors", "many.safetensors", "30,000 tensors"),
    ]


def _state_cases(folder: Path) -> list[Case]:
    """Values and names no state dict holds: NaN, Inf, expanded and sparse tensors, absurd keys."""
    from safetensors.torch import save_file

    save_file(with_value(demo_state("demo-nonlocal"), float("inf")), folder / "inf.safetensors")
    base = torch.zeros(1)
    files = {
        "nan": {"model": with_value(demo_state("demo-lrnet"), float("nan"))},
        "expanded": {"w": torch.zeros(1).expand(1_000_000_000)},
        "sparse": {"w": _sparse(1_000_000_000)},
        "many-keys": {f"k{i}": base[:0] for i in range(30_000)},
        "long-key": {"conv1." + "x" * 100_000: torch.zeros(1)},
        "newline-key": {"conv1.weight\nrelviz: error: a second line": torch.zeros(1)},
        "int-key": {7: torch.zeros(1)},
    }
    messages = {"nan": "NaN", "expanded": "1,000,000,000 values", "sparse": "sparse", "many-keys": "30,000 tensors",
                "long-key": "characters", "newline-key": "not printable", "int-key": "instead of text"}
    cases = [Case("inf-in-safetensors", _trace(folder, "inf", "--model", "demo-nonlocal", "--weights",
                                               str(folder / "inf.safetensors")), 2, "infinite")]
    for name, obj in files.items():
        path = _save(folder, f"{name}.pth", obj)
        cases.append(Case(f"state-{name}", _trace(folder, name, "--model", "demo-lrnet", "--weights", path), 2,
                          messages[name]))
    return cases


def _option_cases(folder: Path) -> list[Case]:
    """Precisions, devices, --heads and --config values that cannot work."""

    def case(name: str, message: str, *argv: str) -> Case:
        return Case(name, _trace(folder, name, *argv), 2, message)

    detr = [a for a in SMALL_DETR if a not in ("--heads", "4")]
    return [
        case("bf16-relation-on-cpu", "bf16", "--model", "demo-relation", "--precision", "bf16", "--device", "cpu"),
        case("fp16-regionfeat-on-cpu", "fp16", "--model", "demo-regionfeat", "--precision", "fp16", "--device", "cpu"),
        case("fp16-detr-on-cpu", "fp16", "--model", "demo-detr", "--precision", "fp16", "--device", "cpu"),
        case("device-cuda-99", "cuda:99", "--model", "demo-lrnet", "--device", "cuda:99"),
        case("heads-not-dividing-width", "does not divide", *detr, "--heads", "5"),
        case("heads-string-config", "nheads", *detr, "--config", "nheads=x"),
        case("config-proposals-negative", "proposals", "--model", "demo-relation", "--config", "proposals=-5"),
        case("config-backbone-depth-7", "backbone_depth", *SMALL_DETR, "--config", "backbone_depth=7"),
        case("config-hidden-dim-1e9", "hidden_dim", *SMALL_DETR, "--config", "hidden_dim=1e9"),
        case("config-unknown-key", "unknown setting", "--model", "demo-lrnet", "--config", "foo=1"),
        case("heads-on-lrnet", "--heads", "--model", "demo-lrnet", "--heads", "4"),
        case("config-bool-not-bool", "pre_norm", *SMALL_DETR, "--config", "pre_norm=maybe"),
        case("config-even-kernel", "kernel_size", "--model", "demo-lrnet", "--config", "kernel_size=4"),
        case("config-clip-length", "clip_length", "--model", "demo-nonlocal-clip", "--config", "clip_length=100000"),
        case("config-labels-not-a-list", "labels", "--model", "demo-lrnet", "--config", "labels=5"),
        case("config-resize-negative", "resize", *SMALL_DETR, "--config", "resize=-1"),
        case("config-relation-memory", "relation tensors", "--model", "demo-relation", "--config", "proposals=2000"),
        case("config-over-parameter-limit", "parameters", *SMALL_DETR, "--config", "hidden_dim=4096",
             "--config", "enc_layers=64", "--config", "dim_feedforward=65536"),
    ]


def _valid_cases(folder: Path) -> list[Case]:
    """Edge inputs that must keep working (exit 0)."""
    state = demo_state("demo-lrnet")
    training = _save(folder, "lrnet-training.pth", {"model": state, "epoch": 3, "optimizer": {"state": {}},
                                                     "args": argparse.Namespace(m=1, kernel_size=5)})
    parallel = _save(folder, "lrnet-dp.pth", {"state_dict": {f"module.{k}": v for k, v in state.items()}})
    legacy = _save(folder, "nonlocal-legacy.pt", demo_state("demo-nonlocal"), _use_new_zipfile_serialization=False)

    def case(name: str, *argv: str) -> Case:
        return Case(name, _trace(folder, name, *argv), 0)

    return [
        case("valid-demo-lrnet", "--model", "demo-lrnet"),
        case("valid-training-checkpoint", "--model", "demo-lrnet", "--weights", training),
        case("valid-dataparallel-prefix", "--model", "demo-lrnet", "--weights", parallel),
        case("valid-legacy-format", "--model", "demo-nonlocal", "--weights", legacy),
        case("valid-detr-safetensors-detected", "--weights", str(WEIGHTS / "demo-detr.safetensors"), "--resize", "96",
             "--device", "cpu"),
        case("valid-small-detr", *SMALL_DETR),
        case("valid-relation-fp32", "--model", "demo-relation", "--precision", "fp32", "--device", "cpu"),
        case("valid-nonlocal-bf16-on-cpu", "--model", "demo-nonlocal", "--precision", "bf16", "--device", "cpu"),
        case("valid-lrnet-config-words", "--model", "demo-lrnet", "--config", "full=true"),
    ]


def make(folder: Path) -> list[Case]:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(folder / "scene.png")
    return [
        *_valid_cases(folder),
        *_declared_cases(folder),
        *_archive_cases(folder),
        *_code_cases(folder),
        *_safetensors_cases(folder),
        *_state_cases(folder),
        *_option_cases(folder),
    ]
