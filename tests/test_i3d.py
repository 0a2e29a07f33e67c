"""mmaction2's I3D ResNet-50 + non-local checkpoints against mmaction2's own outputs.

``tests/data/i3d/`` was written by ``scripts/make_i3d_reference.py`` with mmaction2 1.2.0 (never imported
here): for each of the three Kinetics-400 configs (embedded Gaussian, dot product, Gaussian) an mmengine
checkpoint with the config text in ``meta.cfg`` — the full key layout, stages narrowed with mmaction2's
``base_channels`` — and mmaction2's float64 logits and every block's attention on ``clip.npz`` (16 frames of
112×144).  The Gaussian form (mmcv applies no scale) is near one-hot, so it is compared by row arg-max.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from relviz import pipeline
from relviz.core.checkpoint import load_checkpoint, training_meta
from relviz.core.errors import BadInputError
from relviz.core.trace import Trace
from relviz.models.i3d_nonlocal import I3DNonLocalResNet, min_frames, resolve_config, time_steps
from relviz.zoo import count_parameters, get_family, load_model
from relviz.zoo.i3d import config_fields, from_mmaction

DATA = Path(__file__).parent / "data" / "i3d"
BLOCKS = ("res3.1", "res3.3", "res4.1", "res4.3", "res4.5")
MODES = ("embedded_gaussian", "dot_product", "gaussian")


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return list(np.load(DATA / "clip.npz")["frames"])


def _reference(mode: str) -> dict[str, np.ndarray]:
    with np.load(DATA / f"reference_{mode}.npz") as data:
        return {k: data[k] for k in data.files}


def _run(weights: Path, frames: list[np.ndarray], **overrides) -> Trace:
    loaded = load_model(weights=weights, device="cpu", overrides=overrides or None)
    return pipeline.run_frames(loaded, frames, {"path": "clip", "kind": "video", "frame": 0},
                               pipeline.RunChoice(resize=0))


@pytest.mark.parametrize("mode", MODES)
def test_logits_and_every_blocks_attention_match_mmaction2(mode, frames):
    trace = _run(DATA / f"i3d_nl_{mode}.pth", frames)
    ref = _reference(mode)
    assert np.abs(trace["classification/logits"] - ref["logits"]).max() < 2e-4  # mmaction2's float64 run
    assert np.abs(trace["classification/logits"] - ref["logits32"]).max() < 2e-4  # and its float32 one
    assert ref["mmaction_f32_vs_f64"][0] < 2e-4  # (its own deviation, for scale)
    assert trace.meta["nonlocal"]["order"] == list(BLOCKS)
    for block in BLOCKS:
        attn = trace[f"nonlocal/{block}/attn"]
        if mode == "gaussian":
            agree = (attn.argmax(-1) == ref[f"argmax64/{block}"]).mean()
            assert agree >= 0.99, (block, agree)
            assert np.allclose(attn.sum(-1), 1, atol=1e-5)
        else:
            tol = 5e-4 if mode == "embedded_gaussian" else 5e-5
            assert attn.shape == ref[f"attn/{block}"].shape
            assert np.abs(attn - ref[f"attn/{block}"]).max() < tol, block
    # the mode, where it came from, and the grids (T, H, W) the panels map rows and columns with
    info = trace.meta["nonlocal"]
    assert (info["mode"], info["arch"], info["scale"]) == (mode, "i3d", False)
    assert info["mode_from"] == f"the config in i3d_nl_{mode}.pth"
    grid = info["blocks"]["res3.1"]
    assert grid["query_grid"]["shape"] == [2, 14, 18] and grid["key_grid"]["shape"] == [2, 7, 9]
    assert grid["query_grid"]["frame_stride"] == 8 and grid["query_grid"]["stride"] == 8
    assert info["blocks"]["res4.5"]["key_grid"]["shape"] == [2, 3, 4]


def test_class_names_come_from_dataset_meta_else_numbers(frames):
    named = _run(DATA / "i3d_nl_embedded_gaussian.pth", frames)
    assert named.meta["labels"] == [f"action {i}" for i in range(10)]
    unnamed = _run(DATA / "i3d_nl_dot_product.pth", frames)
    assert unnamed.meta["labels"] == [f"class {i}" for i in range(10)]


def test_mode_comes_from_the_user_when_the_file_has_no_config(tmp_path, frames):
    ckpt = torch.load(DATA / "i3d_nl_embedded_gaussian.pth", weights_only=True)
    bare = tmp_path / "bare.pth"
    torch.save({"state_dict": ckpt["state_dict"]}, bare)
    with pytest.raises(BadInputError, match="mode=embedded_gaussian or --config mode=dot_product"):
        load_model(weights=bare, device="cpu")
    trace = _run(bare, frames, mode="embedded_gaussian")
    assert np.abs(trace["classification/logits"] - _reference("embedded_gaussian")["logits"]).max() < 2e-4
    assert trace.meta["nonlocal"]["mode_from"] == "--config"


def test_config_mode_overrides_the_config_text(frames):
    trace = _run(DATA / "i3d_nl_embedded_gaussian.pth", frames, mode="dot_product")
    info = trace.meta["nonlocal"]
    assert (info["mode"], info["mode_from"]) == ("dot_product", "--config")
    net = load_model(weights=DATA / "i3d_nl_embedded_gaussian.pth", device="cpu", overrides={"mode": "dot_product"})
    block = net.module.nonlocal_blocks["res3_1"]
    # dot product: θ_i·φ_j over the number of keys after the 1×2×2 pooling, rows need not sum to 1
    attn = trace["nonlocal/res3.1/attn"]
    assert not np.allclose(attn.sum(-1), 1, atol=1e-3)
    assert block.instantiation == "dot"


def test_a_mode_that_does_not_fit_the_weights_or_mmaction2_is_refused():
    with pytest.raises(BadInputError, match="Gaussian"):
        load_model(weights=DATA / "i3d_nl_gaussian.pth", device="cpu", overrides={"mode": "dot_product"})
    with pytest.raises(BadInputError, match="its modes: embedded_gaussian, gaussian, dot_product"):
        load_model(weights=DATA / "i3d_nl_dot_product.pth", device="cpu", overrides={"mode": "concatenation"})


def test_key_mapping_covers_every_mmaction2_key():
    state = torch.load(DATA / "i3d_nl_embedded_gaussian.pth", weights_only=True)["state_dict"]
    mapped = from_mmaction(state)
    config = {"arch": "i3d", "widths": [4, 8, 16, 32], "stem_width": 4, "num_classes": 10}
    model = I3DNonLocalResNet(config)
    assert set(mapped) == set(model.state_dict())
    out = "backbone.layer3.5.non_local_block.conv_out"
    assert mapped["nonlocal_blocks.res4_5.w_z.weight"] is state[f"{out}.conv.weight"]
    assert mapped["nonlocal_blocks.res4_5.bn.running_mean"] is state[f"{out}.bn.running_mean"]
    assert mapped["nonlocal_blocks.res3_1.phi.bias"] is state["backbone.layer2.1.non_local_block.phi.0.conv.bias"]
    assert mapped["layer2.0.downsample.1.running_var"] is state["backbone.layer2.0.downsample.bn.running_var"]
    assert mapped["bn1.weight"] is state["backbone.conv1.bn.weight"]
    assert mapped["fc.bias"] is state["cls_head.fc_cls.bias"]


def test_architecture_matches_mmaction2s_r50():
    fam = get_family("nonlocal")
    # mmaction2 1.2.0's Recognizer3D for the embedded-Gaussian / dot-product config has 35,397,840 parameters;
    # the Gaussian has no θ/φ (2 × (c·c/2 + c/2) per block)
    assert count_parameters(fam, {"arch": "i3d"}) == 35_397_840
    thetas = sum(2 * (c * (c // 2) + c // 2) for c in (512, 512, 1024, 1024, 1024))
    assert count_parameters(fam, {"arch": "i3d", "mode": "gaussian"}) == 35_397_840 - thetas
    # 32 frames → 4 time steps in res3/res4; 16 → 2; at least 5 frames
    cfg = resolve_config({})
    assert (time_steps(cfg, 32), time_steps(cfg, 16), min_frames(cfg)) == (4, 2, 5)
    model = I3DNonLocalResNet({"arch": "i3d", "widths": [2, 4, 8, 16], "stem_width": 4, "num_classes": 3}).eval()
    for n in (5, 6, 9, 16):
        with torch.no_grad():
            assert model(torch.zeros(1, 3, n, 32, 32)).shape == (1, 3)


def test_a_clip_too_short_for_the_strides_is_refused(frames):
    loaded = load_model(weights=DATA / "i3d_nl_dot_product.pth", device="cpu")
    with pytest.raises(BadInputError, match="at least 5"):
        pipeline.run_frames(loaded, frames[:4], {"path": "clip", "kind": "video", "frame": 0},
                            pipeline.RunChoice(resize=0))


def test_config_text_is_read_with_patterns_never_run():
    meta = torch.load(DATA / "i3d_nl_dot_product.pth", weights_only=True)["meta"]
    fields = config_fields(meta["cfg"])
    assert fields["instantiation"] == "dot" and fields["scale"] is False
    assert (fields["conv1_stride_t"], fields["pool1_stride_t"], fields["pool2"]) == (2, 2, True)
    assert fields["mean"] == [123.675, 116.28, 103.53] and fields["std"] == [58.395, 57.12, 57.375]
    # a mode outside non_local_cfg is not the non-local mode; mmcv scales unless use_scale=False
    text = "model = dict(backbone=dict(type='ResNet3d', non_local_cfg=dict(mode='embedded_gaussian')))\nmode='x'"
    assert config_fields(text) == {"conv1_stride_t": 1, "pool1_stride_t": 1, "pool2": True,
                                   "instantiation": "embedded", "scale": True}
    # a config file that inherits (_base_) is read for what it says, never given defaults for what its bases set
    text = "_base_ = ['i3d.py']\nmodel = dict(backbone=dict(non_local_cfg=dict(mode='dot_product')))"
    assert config_fields(text) == {"instantiation": "dot"}
    assert config_fields("__import__('os').system('false')") == {}


def test_training_meta_of_mmengine_and_mmcv_files():
    assert training_meta({"cfg": "a=1", "dataset_meta": {"classes": ("x", "y")}}) == {
        "config_text": "a=1", "classes": ["x", "y"]}
    assert training_meta({"config": "b=2", "CLASSES": ["p"]}) == {"config_text": "b=2", "classes": ["p"]}
    assert training_meta({"cfg": 3, "dataset_meta": {"classes": [1, 2]}}) == {}
    ckpt = load_checkpoint(DATA / "i3d_nl_embedded_gaussian.pth")
    assert "non_local_cfg" in ckpt.metadata["config_text"] and len(ckpt.metadata["classes"]) == 10


def _write_video(path: Path, frames: list[np.ndarray]) -> None:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 8, (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def test_trace_command_on_a_video_and_the_fig3_export(tmp_path, frames, capsys):
    from relviz.cli import main
    from relviz.core.video import VideoReader

    video = tmp_path / "clip.mp4"
    _write_video(video, frames + frames[:4])
    out = tmp_path / "t.npz"
    assert main(["trace", "--weights", str(DATA / "i3d_nl_embedded_gaussian.pth"), "--input", str(video),
                 "--clip-length", "16", "--resize", "0", "--stride", "1", "--out", str(out), "--device", "cpu"]) == 0
    trace = Trace.load(out)
    with VideoReader(video) as reader:
        decoded = reader.clip(0, 16, 1)
    direct = _run(DATA / "i3d_nl_embedded_gaussian.pth", decoded)
    assert np.allclose(trace["classification/logits"], direct["classification/logits"], atol=1e-6)
    assert np.allclose(trace["nonlocal/res4.3/attn"], direct["nonlocal/res4.3/attn"], atol=1e-6)
    assert trace.meta["input"]["frame_indices"] == list(range(16))
    fig = tmp_path / "fig.png"
    assert main(["export", "--trace", str(out), "--view", "nonlocal", "--point", "60,50", "--frame", "3",
                 "--out", str(fig)]) == 0
    image = cv2.imread(str(fig))
    assert image is not None and image.shape[0] > 100 and image.std() > 1


def test_labels_file_names_the_classes_of_a_checkpoint_that_has_none(tmp_path, frames, capsys):
    from relviz.cli import main

    video = tmp_path / "clip.mp4"
    _write_video(video, frames[:8])
    labels = tmp_path / "names.txt"
    labels.write_text("".join(f"kinetics {i}\n" for i in range(10)), encoding="utf-8")
    out = tmp_path / "t.npz"
    args = ["trace", "--input", str(video), "--clip-length", "8", "--resize", "0", "--out", str(out),
            "--device", "cpu", "--labels", str(labels)]
    assert main([*args, "--weights", str(DATA / "i3d_nl_dot_product.pth")]) == 0
    assert Trace.load(out).meta["labels"] == [f"kinetics {i}" for i in range(10)]
    # the checkpoint's own names come first
    assert main([*args, "--weights", str(DATA / "i3d_nl_embedded_gaussian.pth")]) == 0
    assert Trace.load(out).meta["labels"][0] == "action 0"
    assert "was not used" in capsys.readouterr().err
    labels.write_text("a\nb\n", encoding="utf-8")
    assert main([*args, "--weights", str(DATA / "i3d_nl_dot_product.pth")]) == 2
    assert "names 2 classes but the model has 10" in capsys.readouterr().err


def test_the_configs_32_frame_clip_at_224_is_within_bounds_and_a_far_larger_one_is_not():
    from relviz.core import limits

    loaded = load_model(weights=DATA / "i3d_nl_dot_product.pth", device="cpu")
    frame = cv2.resize(np.load(DATA / "clip.npz")["frames"][0], (224, 224))
    source = {"path": "clip", "kind": "video", "frame": 0}
    trace = pipeline.run_frames(loaded, [frame] * 32, source, pipeline.RunChoice(resize=0))
    assert trace.meta["nonlocal"]["blocks"]["res3.1"]["query_grid"]["shape"] == [4, 28, 28]
    assert 32 * 224 * 224 > limits.MAX_DENSE_INPUT_PIXELS  # what a C2D clip may take: I3D strides time by 8
    with pytest.raises(BadInputError, match="model-input limit"):
        pipeline.run_frames(loaded, [frame] * 48, source, pipeline.RunChoice(resize=400))
