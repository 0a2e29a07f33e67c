"""DETR: official checkpoint layout, numerics against nn.MultiheadAttention, capture and padding."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from detr_reference import reference_transformer
from torch import nn

from relviz import zoo
from relviz.core.capture import recording
from relviz.core.errors import BadInputError
from relviz.models.attention import MultiheadAttention
from relviz.models.detr import nested_batch
from relviz.zoo.detr import preprocess, resized_size

OFFICIAL = json.loads((Path(__file__).parent / "data/detr_official_keys.json").read_text())
SMALL = {"backbone_depth": 18, "hidden_dim": 64, "nheads": 4, "enc_layers": 2, "dec_layers": 2,
         "dim_feedforward": 96, "num_queries": 10, "num_classes": 5}


def small_detr(seed=0, **extra):
    return zoo.load_model("detr-r50", weights="none", device="cpu", overrides={**SMALL, **extra}, seed=seed)


@pytest.mark.parametrize("variant,name", [("detr_resnet50", "detr-r50"), ("detr_resnet50_dc5", "detr-r50-dc5"),
                                          ("detr_resnet101", "detr-r101"), ("detr_resnet101_dc5", "detr-r101-dc5")])
def test_zoo_architectures_have_the_official_keys_and_shapes_in_order(variant, name):
    family = zoo.get_family("detr")
    with torch.device("meta"):
        module = family.build({**family.default_config(), **zoo.get_model(name).config})
    state = module.state_dict()
    assert list(state) == list(OFFICIAL[variant])
    assert {k: list(v.shape) for k, v in state.items()} == OFFICIAL[variant]


def official_state_dict(variant: str) -> dict[str, torch.Tensor]:
    """Random tensors with exactly the official keys and shapes (not built by relviz)."""
    g = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in OFFICIAL[variant].items():
        t = torch.randn(shape, generator=g) * 0.02
        if key.endswith("running_var"):
            t = t.abs() + 1.0
        state[key] = t
    return state


@pytest.fixture(scope="module")
def r50_state():
    return official_state_dict("detr_resnet50")


@pytest.mark.slow
@pytest.mark.parametrize("form", ["hub-zip", "hub-legacy", "training"])
def test_official_files_load_strictly(tmp_path, r50_state, form):
    path = tmp_path / "detr.pth"
    if form == "hub-zip":
        torch.save({"model": r50_state}, path)
    elif form == "hub-legacy":
        torch.save({"model": r50_state}, path, _use_new_zipfile_serialization=False)
    else:
        args = argparse.Namespace(lr=1e-4, backbone="resnet50", dilation=True, nheads=8, enc_layers=6,
                                  dec_layers=6, hidden_dim=256, num_queries=100, output_dir="out")
        torch.save({"model": r50_state, "optimizer": {"state": {}, "param_groups": []},
                    "lr_scheduler": {"step_size": 200}, "epoch": 299, "args": args}, path)
    loaded = zoo.load_model(weights=path, device="cpu")
    assert loaded.family.name == "detr"
    assert loaded.config["backbone_depth"] == 50
    assert loaded.config["num_queries"] == 100 and loaded.config["num_classes"] == 91
    assert loaded.config["dilation"] is (form == "training")
    loaded_state = loaded.module.state_dict()
    assert set(loaded_state) == set(r50_state)
    for key, value in r50_state.items():
        assert torch.equal(loaded_state[key], value), key


def test_training_args_conflicting_with_flags_are_refused(tmp_path):
    model = small_detr()
    path = tmp_path / "ckpt.pth"
    torch.save({"model": model.module.state_dict(), "args": argparse.Namespace(nheads=4, dilation=False)}, path)
    assert zoo.load_model(weights=path, device="cpu").config["nheads"] == 4
    with pytest.raises(BadInputError, match="nheads=4"):
        zoo.load_model(weights=path, device="cpu", overrides={"nheads": 8})


def test_heads_from_flag_when_no_args(tmp_path):
    model = small_detr()
    path = tmp_path / "hub.pth"
    torch.save({"model": model.module.state_dict()}, path)
    loaded = zoo.load_model(weights=path, device="cpu", overrides={"nheads": 4})
    assert loaded.config["nheads"] == 4 and loaded.config["backbone_depth"] == 18
    assert loaded.config["enc_layers"] == 2 and loaded.config["dim_feedforward"] == 96


def test_attention_module_matches_nn_multiheadattention():
    torch.manual_seed(0)
    ours = MultiheadAttention(32, 4, trace_name="t")
    ref = nn.MultiheadAttention(32, 4).eval()
    ref.load_state_dict(ours.state_dict())
    q, k = torch.randn(2, 5, 32), torch.randn(2, 7, 32)
    mask = torch.zeros(2, 7, dtype=torch.bool)
    mask[1, 5:] = True
    with recording() as rec:
        out = ours(q, k, k, mask)
    ref_out, ref_w = ref(q.transpose(0, 1), k.transpose(0, 1), k.transpose(0, 1), key_padding_mask=mask)
    torch.testing.assert_close(out, ref_out.transpose(0, 1), atol=1e-5, rtol=1e-5)
    for b in range(2):
        head_mean = rec.finish(b)["t"][0].mean(0)  # (H, Nq, Nk) of the only layer → mean over heads
        np.testing.assert_allclose(head_mean, ref_w[b].detach().numpy(), atol=1e-6)


@torch.no_grad()
def test_model_and_capture_match_reference_on_a_padded_batch():
    model = small_detr(seed=1).module
    images = [torch.randn(3, 96, 128), torch.randn(3, 64, 96)]
    batch, mask = nested_batch(images)
    with recording() as rec:
        out = model(batch, mask)
    features, fmask, pos = model.backbone(batch, mask)
    hs, weights = reference_transformer(model.state_dict(), model.input_proj(features), fmask, pos,
                                        heads=4, enc_layers=2, dec_layers=2)
    torch.testing.assert_close(out["pred_logits"], model.class_embed(hs), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out["pred_boxes"], model.bbox_embed(hs).sigmoid(), atol=1e-4, rtol=1e-4)
    names = {"encoder": "detr/encoder/self_attn", "decoder_self": "detr/decoder/self_attn",
             "decoder_cross": "detr/decoder/cross_attn"}
    for b in range(2):
        trace = rec.finish(b)
        for key, name in names.items():
            attn = trace[name]  # (L, H, Nq, Nk)
            assert attn.shape[:2] == (2, 4)
            for layer, w in enumerate(weights[key]):
                np.testing.assert_allclose(attn[layer].mean(0), w[b].numpy(), atol=1e-5)
            np.testing.assert_allclose(attn.sum(-1), 1.0, atol=1e-5)
        # the second image is padded: its padded feature cells get no attention at all
        padded = fmask[b].flatten().numpy()
        assert padded.any() == (b == 1)
        for name in ("detr/encoder/self_attn", "detr/decoder/cross_attn"):
            assert np.all(trace[name][..., padded] == 0)
            rows = trace.rows(name, 0)
            np.testing.assert_allclose(rows, trace[name][..., 0, :], atol=1e-6)


@torch.no_grad()
def test_capture_does_not_change_outputs_and_off_records_nothing():
    model = small_detr().module
    x = torch.randn(1, 3, 64, 80)
    plain = model(x)
    with recording() as rec:
        captured = model(x)
    torch.testing.assert_close(plain["pred_logits"], captured["pred_logits"])
    assert rec.names() == ["detr/decoder/cross_attn", "detr/decoder/self_attn", "detr/encoder/self_attn"]


def test_resize_follows_the_official_rule():
    assert resized_size(640, 480, 800, 1333) == (1066, 800)
    assert resized_size(480, 640, 800, 1333) == (800, 1066)
    w, h = resized_size(2000, 500, 800, 1333)  # the long side caps the scale
    assert h == round(1333 * 500 / 2000) and w <= 1333
    assert resized_size(1333, 800, 800, 1333) == (1333, 800)
    image = np.zeros((30, 40, 3), np.uint8)
    assert preprocess(image, 0).shape == (3, 30, 40)
    x = preprocess(image, 60)
    assert x.shape == (3, 60, 80)
    np.testing.assert_allclose(x[:, 0, 0].numpy(), [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225], atol=1e-6)


def test_run_model_fills_the_trace_contract(tmp_path):
    from PIL import Image

    rgb = (np.random.default_rng(0).random((90, 120, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "im.png")
    loaded = small_detr(resize=128)
    trace = zoo.run_model(loaded, tmp_path / "im.png", zoo.RunOptions(threshold=0.0))
    q, c = 10, 6
    assert trace["detr/pred_logits"].shape == (q, c)
    assert trace["detr/pred_boxes"].shape == (q, 4)
    grid = trace.meta["grid"]
    s = grid["shape"][0] * grid["shape"][1]
    assert trace.shape("detr/encoder/self_attn") == (2, 4, s, s)
    assert trace.shape("detr/decoder/cross_attn") == (2, 4, q, s)
    assert trace.shape("detr/decoder/self_attn") == (2, 4, q, q)
    # detections: every query (threshold 0), sorted by score, boxes in original pixels
    prob = torch.tensor(trace["detr/pred_logits"]).softmax(-1)[:, :-1]
    scores = trace["detections/scores"]
    assert len(scores) == q and np.all(np.diff(scores) <= 0)
    queries = trace["detections/query"]
    np.testing.assert_allclose(scores, prob.max(-1).values.numpy()[queries], atol=1e-6)
    cx, cy, w, h = trace["detr/pred_boxes"][queries].T
    expected = np.stack([(cx - w / 2) * 120, (cy - h / 2) * 90, (cx + w / 2) * 120, (cy + h / 2) * 90], 1)
    np.testing.assert_allclose(trace["detections/boxes"], expected, atol=1e-3)
    assert trace.meta["input"]["size"] == [120, 90]
    assert trace.meta["preprocess"]["model_input"] == [int(128 * 120 / 90), 128]  # the official rule truncates
