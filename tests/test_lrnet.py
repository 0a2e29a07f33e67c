"""LR-Net: the local relation layer against its formula, parameter counts, capture and the zoo entry."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from relviz.core.capture import recording
from relviz.core.errors import BadInputError, RelvizError
from relviz.core.trace import Trace
from relviz.models.lrnet import LocalRelation2d, LRNet
from relviz.zoo import count_parameters, get_family, load_model, models, run_model


def naive_local_relation(layer: LocalRelation2d, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """y_p′ = Σ_p softmax_p(Φ(q_p′, k_p) + f_θg(p − p′)) x_p written out pixel by pixel (before the 1×1).

    Returns the aggregation (B, C, H′, W′) and the weights (B, G, k, k, H′, W′) with zeros outside the image.
    """
    b, c, h, w = x.shape
    k, s, m = layer.kernel_size, layer.stride, layer.m
    r = k // 2
    g = math.ceil(c / m)
    key, query = layer.key(x), layer.query(x)
    # f_θg written out: two 1×1 transforms with a ReLU on (Δx, Δy) / ⌊k/2⌋
    w1, b1 = layer.geometry[0].weight[:, :, 0, 0], layer.geometry[0].bias
    w2, b2 = layer.geometry[2].weight[:, :, 0, 0], layer.geometry[2].bias
    ho, wo = (h - 1) // s + 1, (w - 1) // s + 1
    y = torch.zeros(b, c, ho, wo, dtype=x.dtype)
    weights = torch.zeros(b, g, k, k, ho, wo, dtype=x.dtype)
    for bi in range(b):
        for i in range(ho):
            for j in range(wo):
                ci, cj = i * s, j * s
                for gi in range(g):
                    cells, logits = [], []
                    q = query[bi, gi, ci, cj]
                    for di in range(-r, r + 1):
                        for dj in range(-r, r + 1):
                            pi, pj = ci + di, cj + dj
                            if not (0 <= pi < h and 0 <= pj < w):
                                continue  # neighbours outside the image are excluded
                            kk = key[bi, gi, pi, pj]
                            if layer.composability == "squared":
                                phi = -((q - kk) ** 2)
                            elif layer.composability == "abs":
                                phi = -(q - kk).abs()
                            else:
                                phi = q * kk
                            pos = torch.tensor([dj / max(r, 1), di / max(r, 1)], dtype=x.dtype)
                            geom = w2 @ torch.relu(w1 @ pos + b1) + b2
                            cells.append((pi, pj, di, dj))
                            logits.append(phi + geom[gi])
                    omega = torch.softmax(torch.stack(logits), 0)
                    for (pi, pj, di, dj), om in zip(cells, omega, strict=True):
                        weights[bi, gi, di + r, dj + r, i, j] = om
                        for ch in range(gi * m, min(c, (gi + 1) * m)):
                            y[bi, ch, i, j] += om * x[bi, ch, pi, pj]
    return y, weights


@pytest.mark.parametrize(
    ("channels", "m", "k", "stride", "comp", "size"),
    [
        (6, 4, 3, 1, "squared", (5, 6)),
        (8, 4, 5, 2, "squared", (7, 6)),
        (6, 2, 3, 2, "abs", (5, 5)),
        (4, 4, 3, 1, "mul", (4, 5)),
    ],
)
def test_local_relation_matches_naive_loop(channels, m, k, stride, comp, size):
    torch.manual_seed(0)
    layer = LocalRelation2d(channels, k, m, stride, comp).double().eval()
    with torch.no_grad():  # a geometry prior and keys far from zero, so every term matters
        for p in layer.parameters():
            p.normal_(0, 0.7)
    x = torch.randn(2, channels, *size, dtype=torch.float64)
    with torch.no_grad():
        expected, expected_w = naive_local_relation(layer, x)
        got = layer.aggregate(x)
        assert torch.allclose(got, expected, atol=1e-5)
        assert torch.allclose(layer(x), layer.out(expected), atol=1e-5)
        with recording() as rec:
            layer(x)
    g = math.ceil(channels / m)
    trace = rec.finish(1)
    ho, wo = (size[0] - 1) // stride + 1, (size[1] - 1) // stride + 1
    weight = trace["lrnet/lr/weight"]
    assert weight.shape == (g, k * k, ho, wo)
    ref = expected_w[1].reshape(g, k * k, ho, wo).numpy()
    np.testing.assert_allclose(weight, ref, atol=1e-5)
    np.testing.assert_allclose(weight.sum(axis=1), 1.0, atol=1e-5)  # ω sums to 1 over the window
    assert (weight[:, 0, 0, 0] == 0).all()  # the top-left neighbour of the corner lies outside the image


def test_chunked_rows_equal_one_pass():
    torch.manual_seed(1)
    layer = LocalRelation2d(8, 5, 4, 1).eval()
    x = torch.randn(1, 8, 13, 11)
    with torch.no_grad():
        whole = layer(x)
        layer.max_chunk_elements = 1  # one output row per band
        banded = layer(x)
    assert torch.allclose(whole, banded, atol=1e-6)


def test_zero_appearance_is_a_fixed_kernel():
    """With keys and queries zeroed, Φ = 0 and ω = softmax of the geometry prior: a fixed, normalised kernel."""
    torch.manual_seed(2)
    layer = LocalRelation2d(6, 5, 3, 1).double().eval()
    with torch.no_grad():
        layer.key.weight.zero_()
        layer.query.weight.zero_()
        for p in layer.geometry.parameters():
            p.normal_(0, 1.0)
    x = torch.randn(1, 6, 9, 8, dtype=torch.float64)
    with torch.no_grad():
        got = layer.aggregate(x)
        kernel = torch.exp(layer.geometry_prior())  # (G, k, k)
        per_channel = kernel[torch.arange(6) // 3][:, None]  # (C, 1, k, k)
        num = F.conv2d(x, per_channel, padding=2, groups=6)
        den = F.conv2d(torch.ones_like(x), per_channel, padding=2, groups=6)  # renormalised at the border
        fixed = num / den
    assert torch.allclose(got, fixed, atol=1e-10)
    soft = torch.softmax(layer.geometry_prior().reshape(2, -1), 1)
    interior = torch.einsum("ck,ck->c", F.unfold(x[:, :, 2:7, 2:7], 5)[0].view(6, 25), soft[torch.arange(6) // 3])
    assert torch.allclose(got[0, :, 4, 4], interior, atol=1e-10)


@pytest.mark.parametrize(("name", "paper"), [("lrnet-26", 14.7e6), ("lrnet-50", 23.3e6)])
def test_parameter_count_matches_paper(name, paper):
    entry = models()[name]
    n = count_parameters(get_family("lrnet"), entry.config)
    assert abs(n / paper - 1) < 0.03, f"{name}: {n / 1e6:.2f} M parameters, paper {paper / 1e6:.1f} M"


def test_no_recorder_no_capture_same_output():
    torch.manual_seed(3)
    net = LRNet({"preset": "tiny"}).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        plain = net(x)
        with recording() as rec:
            recorded = net(x)
    assert torch.equal(plain, recorded)
    names = rec.names()
    assert "classification/logits" in names
    layers = list(net.relation_layers())
    assert layers == ["stem", "res2.0", "res3.0", "res4.0", "res5.0"]
    for layer in layers:
        for part in ("geometry", "key", "query", "appearance", "weight"):
            assert f"lrnet/{layer}/{part}" in names


def test_tiny_config_keys_override_preset():
    net = LRNet({"preset": "tiny", "blocks": [2, 1, 1, 1], "kernel_size": 3, "num_classes": 6})
    assert len(net.layer1) == 2 and net.stem_lr.kernel_size == 3 and net.fc.out_features == 6


@pytest.fixture
def shapes_image(tmp_path):
    img = np.zeros((48, 64, 3), np.uint8)
    cv2.circle(img, (20, 24), 10, (255, 0, 0), -1)
    cv2.rectangle(img, (40, 10), (58, 30), (0, 255, 0), -1)
    path = tmp_path / "shapes.png"
    cv2.imwrite(str(path), img[..., ::-1])
    return path


def test_zoo_run_trace_and_kernels_on_demand(shapes_image, tmp_path):
    from relviz.render.lrnet import pixel_kernels

    model = load_model("lrnet-26", weights="none", overrides={"preset": "tiny", "input_size": 48})
    trace = run_model(model, shapes_image)
    assert trace.meta["family"] == "lrnet"
    assert trace.meta["input"]["size"] == [64, 48]
    assert trace["classification/logits"].shape == (10,)
    layers = trace.meta["lrnet"]["layers"]
    assert set(layers) == {"stem", "res2.0", "res3.0", "res4.0", "res5.0"}
    assert layers["res3.0"]["grid"]["stride"] == 8.0 and layers["res3.0"]["stride"] == 2
    path = trace.save(tmp_path / "t.npz")
    loaded = Trace.load(path)
    w = loaded["lrnet/res2.0/weight"]
    g = layers["res2.0"]["groups"]
    assert w.shape == (g, 25, *layers["res2.0"]["output_shape"])
    # the factors alone give the same kernels as the stored full tensors, at the border and inside
    factors = Trace(
        {n: v for n, v in loaded.arrays.items() if not n.endswith(("/weight", "/appearance"))}, meta=loaded.meta
    )
    for layer in ("stem", "res3.0"):
        for x, y in ((0.0, 0.0), (30.0, 20.0), (63.0, 47.0)):
            full = pixel_kernels(loaded, layer, x, y)
            lazy = pixel_kernels(factors, layer, x, y)
            np.testing.assert_allclose(lazy.weight, full.weight, atol=1e-5)
            np.testing.assert_allclose(lazy.appearance, full.appearance, atol=1e-4)
            np.testing.assert_allclose(full.weight.sum(axis=(1, 2)), 1.0, atol=1e-5)
            assert (full.weight[:, ~full.valid] == 0).all()


def test_large_input_keeps_factors_only(shapes_image):
    model = load_model("lrnet-26", weights="none", overrides={"preset": "tiny", "full": False})
    trace = run_model(model, shapes_image)
    assert "lrnet/res2.0/key" in trace and "lrnet/res2.0/weight" not in trace
    assert trace.meta["lrnet"]["layers"]["res2.0"]["full"] is False


def test_bad_inputs(shapes_image):
    from relviz.render.lrnet import pixel_kernels

    model = load_model("lrnet-26", weights="none", overrides={"preset": "tiny"})
    trace = run_model(model, shapes_image)
    with pytest.raises(BadInputError, match="outside the image"):
        pixel_kernels(trace, "res2.0", 64, 10)
    with pytest.raises(BadInputError, match="valid layers: stem, res2.0"):
        pixel_kernels(trace, "res9.9", 10, 10)
    with pytest.raises(BadInputError, match="preset"):
        load_model("lrnet-26", weights="none", overrides={"preset": "huge"})


def test_checkpoint_roundtrip_and_wrong_family(tmp_path, shapes_image):
    from safetensors.torch import save_file

    torch.manual_seed(4)
    net = LRNet({"preset": "tiny", "num_classes": 7, "kernel_size": 3})
    path = tmp_path / "lrnet_tiny.safetensors"
    save_file(
        net.state_dict(), str(path), metadata={"args": '{"kernel_size": 3, "labels": ["a","b","c","d","e","f","g"]}'}
    )
    model = load_model(weights=path)  # the family is detected from the keys
    assert model.family.name == "lrnet" and model.module.config["kernel_size"] == 3
    trace = run_model(model, shapes_image)
    assert trace.meta["labels"][:2] == ["a", "b"] and trace["classification/logits"].shape == (7,)

    from relviz.models.nonlocal_net import NonLocalResNet

    other = tmp_path / "nl.safetensors"
    save_file(NonLocalResNet({"preset": "tiny"}).state_dict(), str(other))
    with pytest.raises(RelvizError, match="looks like a nonlocal checkpoint"):
        load_model("lrnet-26", weights=other)


def test_banded_layer_gradients():
    """The demo models train through the banded forward: its gradients match finite differences."""
    torch.manual_seed(5)
    layer = LocalRelation2d(6, 3, 4, 2).double()
    layer.max_chunk_elements = 1
    x = torch.randn(1, 6, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))
