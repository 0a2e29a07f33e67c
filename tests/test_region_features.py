"""Learned region features: normalisation, sample positions, the average-pooling special case."""

from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import roi_align

from relviz.core.capture import recording
from relviz.models.region_features import RegionFeatureExtractor


def _boxes() -> torch.Tensor:
    return torch.tensor([[20.0, 24.0, 76.0, 52.0], [40.5, 10.25, 61.5, 90.0], [8.0, 8.0, 36.0, 36.0]])


def test_weights_sum_to_one_over_positions():
    torch.manual_seed(0)
    ext = RegionFeatureExtractor(in_channels=8, out_channels=6, parts=3, samples=6, geo_dim=16, featmap_names=("0",))
    feats = {"0": torch.randn(1, 8, 32, 32)}
    with torch.no_grad(), recording() as rec:
        y = ext(feats, [_boxes()], [(128, 128)])
    tr = rec.finish()
    assert y.shape == (3, 6, 3, 3)
    w = tr["region/weight"]
    assert w.shape == (3, 9, 36)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
    # w = softmax(G + A) over p, with G shared by all boxes
    g, a = tr["region/geometry"], tr["region/appearance"]
    np.testing.assert_allclose(g[0], g[2])
    logits = g + a
    ref = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(w, ref / ref.sum(-1, keepdims=True), atol=1e-6)
    assert tr["region/positions"].shape == (3, 36, 2)


def test_sample_positions_are_image_pixels():
    """On a feature map that holds its own pixel coordinates, each sample reads its recorded position."""
    ext = RegionFeatureExtractor(in_channels=2, parts=2, samples=5, enlarge=1.5, geo_dim=8, featmap_names=("0",))
    size = 128
    coords = torch.arange(size, dtype=torch.float32) + 0.5  # pixel i covers [i, i+1)
    fmap = torch.stack([coords.view(1, -1).expand(size, size), coords.view(-1, 1).expand(size, size)])[None]
    boxes = _boxes()
    samples = ext.sample({"0": fmap}, [boxes], [(size, size)])  # (N, 2, S, S)
    pos = ext.sample_positions(boxes)  # (N, P, 2)
    np.testing.assert_allclose(samples.flatten(2).transpose(1, 2).numpy(), pos.numpy(), atol=1e-4)
    # the support region is the box enlarged 1.5× about its centre
    b = boxes[0]
    w = float(b[2] - b[0])
    assert np.isclose(float(pos[0, 0, 0]), float(b[0] + b[2]) / 2 - 0.75 * w + 1.5 * w / 10, atol=1e-4)


class _HandSetGeometry(RegionFeatureExtractor):
    """G_k = 0 inside bin k of the box and −∞ outside."""

    def geometry_logits(self) -> torch.Tensor:
        rel = self.relative_grid  # box widths from the centre
        u = rel + 0.5  # 0..1 across the box
        bins = self.parts
        col = torch.floor(u[:, 0] * bins)
        row = torch.floor(u[:, 1] * bins)
        k = torch.arange(bins * bins)
        inside = (row[None] == (k // bins)[:, None]) & (col[None] == (k % bins)[:, None])
        return torch.where(inside, 0.0, float("-inf"))


def test_hand_set_geometry_reduces_to_average_pooling_per_bin():
    torch.manual_seed(0)
    c, bins = 5, 7
    # enlarge 2 over 28 samples: 14 samples across the box, 2 × 2 per bin
    ext = _HandSetGeometry(in_channels=c, parts=bins, samples=28, enlarge=2.0, geo_dim=16, featmap_names=("0",))
    with torch.no_grad():
        ext.appearance_fc.weight.zero_()
        ext.appearance_fc.bias.zero_()
        ext.value_weight.copy_(torch.eye(c).expand(bins * bins, c, c))
        ext.value_bias.zero_()
    fmap = torch.randn(1, c, 32, 32)  # stride 4 for a 128-pixel image
    boxes = _boxes()
    with torch.no_grad():
        y = ext({"0": fmap}, [boxes], [(128, 128)])
    rois = torch.cat([torch.zeros(len(boxes), 1), boxes], 1)
    ref = roi_align(fmap, rois, (bins, bins), spatial_scale=0.25, sampling_ratio=2, aligned=True)
    np.testing.assert_allclose(y.numpy(), ref.numpy(), atol=1e-5)


def test_fpn_level_follows_box_size():
    torch.manual_seed(0)
    ext = RegionFeatureExtractor(in_channels=3, parts=2, samples=4, geo_dim=8, featmap_names=("0", "1"))
    small = torch.zeros(1, 3, 64, 64)  # stride 4 of a 256 image
    large = torch.ones(1, 3, 32, 32)  # stride 8
    boxes = torch.tensor([[10.0, 10.0, 40.0, 40.0], [0.0, 0.0, 250.0, 250.0]])
    x = ext.sample({"0": small, "1": large}, [boxes], [(256, 256)])
    assert float(x[0].abs().max()) == 0.0  # small box from level 0
    assert float(x[1].max()) == 1.0  # large box (sqrt area 250 ≥ 224) from level 1 (outside the map: 0)


def _tiny_regionfeat(extra: dict | None = None):
    from relviz import zoo

    fam = zoo.get_family("regionfeat")
    cfg = {
        **fam.default_config(),
        "backbone": "resnet18",
        "fpn_channels": 32,
        "min_size": 192,
        "max_size": 256,
        "proposals": 16,
        "rpn_pre_nms_top_n_test": 100,
        "representation": 64,
        "num_classes": 4,
        "score_thresh": 0.0,
        "samples": 8,
        "parts": 3,
        "region_geo_dim": 16,
        "norm": "batch",
        **(extra or {}),
    }
    torch.manual_seed(0)
    return zoo.LoadedModel(fam, "tiny", fam.build(cfg).eval(), cfg, torch.device("cpu"), torch.float32)


def _image() -> np.ndarray:
    img = np.full((96, 128, 3), 200, np.uint8)
    img[20:60, 10:70] = (30, 160, 30)
    return img


def test_region_trace_is_in_original_image_pixels():
    """The model sees the image at twice its size; the trace maps everything back."""
    from relviz import zoo

    loaded = _tiny_regionfeat()
    with torch.no_grad():
        loaded.module.roi_heads.box_predictor.bbox_pred.weight.zero_()
        loaded.module.roi_heads.box_predictor.bbox_pred.bias.zero_()
    source = {"path": "memory", "kind": "image", "frame": 0, "size": [128, 96]}
    with torch.inference_mode():
        trace = loaded.family.run(loaded, [_image()], source, zoo.RunOptions(threshold=0.0))
    assert trace.meta["preprocess"]["model_input"] == [256, 192]
    rows = trace["detections/region_row"]
    assert len(rows) > 0
    # with no box regression each detection is its proposal: the region rows' boxes, in image pixels
    np.testing.assert_allclose(trace["region/boxes"][rows], trace["detections/boxes"], atol=1e-3)
    assert np.array_equal(trace["region/proposal"][rows], trace["detections/proposal"])
    box = trace["region/boxes"][0]
    pos = trace["region/positions"][0]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    w, h = box[2] - box[0], box[3] - box[1]
    np.testing.assert_allclose(pos.mean(0), [cx, cy], atol=1e-3)  # a grid centred on the box
    assert np.isclose(pos[:, 0].max() - pos[:, 0].min(), 2.0 * w * 7 / 8, atol=1e-3)  # box enlarged 2×
    assert np.isclose(pos[:, 1].max() - pos[:, 1].min(), 2.0 * h * 7 / 8, atol=1e-3)
    assert trace["region/weight"].shape == (len(trace["region/boxes"]), 9, 64)
    assert trace.meta["region"] == {"parts": 3, "samples": 8, "enlarge": 2.0, "value": "per_part"}


def test_regionfeat_checkpoint_is_recognised_and_its_config_inferred(tmp_path):
    from relviz import zoo

    loaded = _tiny_regionfeat({"region_value": "shared"})
    path = tmp_path / "regionfeat.pth"
    torch.save({"model": loaded.module.state_dict(), "args": {"samples": 8, "min_size": 192}}, path)
    state = torch.load(path)["model"]
    assert zoo.get_family("regionfeat").detect(state) == 1.0
    assert zoo.get_family("relation").detect(state) < 0.5
    again = zoo.load_model(weights=str(path))
    assert again.family.name == "regionfeat"
    assert (again.config["parts"], again.config["region_geo_dim"], again.config["region_value"]) == (3, 16, "shared")
    assert (again.config["backbone"], again.config["fpn_channels"], again.config["num_classes"]) == ("resnet18", 32, 4)
