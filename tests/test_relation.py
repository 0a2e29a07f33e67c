"""Relation Networks: the relation module against its formulas, invariances, duplicate removal, detector."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from relviz.core.capture import recording
from relviz.models.relation import (
    DuplicateRemoval,
    RelationModule,
    geometry_embedding,
    rank_embedding,
    relative_geometry,
)


@torch.no_grad()
def naive_relation(module: RelationModule, features: torch.Tensor, boxes: torch.Tensor):
    """The module evaluated pair by pair from the formulas of the issue: (out, ω, ω_G, ω_A)."""
    n_obj = features.shape[0]
    h_n, d_k = module.heads, module.d_k
    wg, bg = module.geometry_fc.weight, module.geometry_fc.bias
    omega_g = torch.zeros(h_n, n_obj, n_obj, dtype=features.dtype)
    omega_a = torch.zeros_like(omega_g)
    for n in range(n_obj):  # receiving
        xn1, yn1, xn2, yn2 = [float(v) for v in boxes[n]]
        wn, hn = xn2 - xn1, yn2 - yn1
        cxn, cyn = (xn1 + xn2) / 2, (yn1 + yn2) / 2
        q = module.query(features[n])
        for m in range(n_obj):  # contributing
            xm1, ym1, xm2, ym2 = [float(v) for v in boxes[m]]
            wm, hm = xm2 - xm1, ym2 - ym1
            cxm, cym = (xm1 + xm2) / 2, (ym1 + ym2) / 2
            geo = [
                math.log(max(abs(cxn - cxm) / wn, 1e-3)),
                math.log(max(abs(cyn - cym) / hn, 1e-3)),
                math.log(wn / wm),
                math.log(hn / hm),
            ]
            emb: list[float] = []
            for p in geo:
                ang = [100.0 * p / 1000.0 ** (8.0 * i / module.geo_dim) for i in range(module.geo_dim // 8)]
                emb += [math.sin(a) for a in ang] + [math.cos(a) for a in ang]
            emb_t = torch.tensor(emb, dtype=features.dtype)
            k = module.key(features[m])
            for h in range(h_n):
                omega_g[h, n, m] = max(float(wg[h] @ emb_t + bg[h]), 0.0)
                omega_a[h, n, m] = q[h * d_k : (h + 1) * d_k] @ k[h * d_k : (h + 1) * d_k] / math.sqrt(d_k)
    weight = torch.zeros_like(omega_g)
    for h in range(h_n):
        for n in range(n_obj):
            num = [max(float(omega_g[h, n, m]), 1e-6) * math.exp(float(omega_a[h, n, m])) for m in range(n_obj)]
            for m in range(n_obj):
                weight[h, n, m] = num[m] / sum(num)
    out = features.clone()
    per_head = module.out_dim // h_n
    conv_w = module.linear_out.weight.view(module.out_dim, module.feat_dim)
    conv_b = module.linear_out.bias
    for n in range(n_obj):
        for h in range(h_n):
            agg = sum(weight[h, n, m] * features[m] for m in range(n_obj))
            rows = slice(h * per_head, (h + 1) * per_head)
            out[n, rows] = out[n, rows] + conv_w[rows] @ agg + conv_b[rows]
    return out, weight, omega_g, omega_a


def _boxes(rng: np.random.Generator, n: int) -> torch.Tensor:
    xy = rng.uniform(0, 200, size=(n, 2))
    wh = rng.uniform(5, 80, size=(n, 2))
    return torch.tensor(np.concatenate([xy, xy + wh], 1), dtype=torch.float64)


def _module(seed: int = 0, **kw) -> RelationModule:
    torch.manual_seed(seed)
    module = RelationModule(**kw).double()
    # larger geometry weights so that many ω_G are positive and some are clamped at 1e-6
    with torch.no_grad():
        module.geometry_fc.weight.mul_(4.0)
    return module


@pytest.mark.parametrize(
    "dims",
    [
        dict(feat_dim=32, key_dim=32, heads=4, geo_dim=16),
        dict(feat_dim=1024, key_dim=1024, heads=16, geo_dim=64),
    ],
)
def test_relation_module_matches_naive_double_loop(rng, dims):
    module = _module(**dims)
    n = 6
    boxes = _boxes(rng, n)
    boxes[3] = boxes[1]  # identical boxes: both offsets clamp at 1e-3
    boxes[4, [0, 2]] = boxes[2, [0, 2]]  # same centre x: Δx clamps
    feats = torch.tensor(rng.normal(size=(n, dims["feat_dim"])), dtype=torch.float64)
    with torch.no_grad(), recording() as rec:
        out = module(feats[None], boxes[None])[0]
    trace = rec.finish()
    ref_out, ref_w, ref_g, ref_a = naive_relation(module, feats, boxes)
    assert (ref_g == 0).any() and (ref_g > 0).any()  # the ReLU and the 1e-6 clamp are exercised
    np.testing.assert_allclose(trace["relation/fc1/geometry"], ref_g.numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(trace["relation/fc1/appearance"], ref_a.numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(trace["relation/fc1/weight"], ref_w.numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(out.numpy(), ref_out.numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(trace["relation/fc1/boxes"], boxes.numpy())
    assert trace["relation/fc1/weight"].shape == (dims["heads"], n, n)


def test_weight_rows_sum_to_one(rng):
    module = _module(feat_dim=32, key_dim=32, heads=4, geo_dim=16)
    boxes = _boxes(rng, 9)[None]
    feats = torch.tensor(rng.normal(size=(1, 9, 32)))
    with torch.no_grad():
        weight, _, _ = module.terms(feats, boxes)
    np.testing.assert_allclose(weight.sum(-1).detach().numpy(), 1.0, atol=1e-12)


def test_geometry_invariant_to_common_translation_and_scale(rng):
    module = _module(feat_dim=32, key_dim=32, heads=4, geo_dim=16)
    boxes = _boxes(rng, 7)[None]
    feats = torch.tensor(rng.normal(size=(1, 7, 32)))
    _, g0, _ = module.terms(feats, boxes)
    shifted = boxes + torch.tensor([37.5, -12.25, 37.5, -12.25], dtype=torch.float64)
    _, g1, _ = module.terms(feats, shifted)
    _, g2, _ = module.terms(feats, boxes * 3.7)
    np.testing.assert_allclose(g1.detach().numpy(), g0.detach().numpy(), atol=1e-9)
    np.testing.assert_allclose(g2.detach().numpy(), g0.detach().numpy(), atol=1e-9)
    # but not invariant to moving one box
    moved = boxes.clone()
    moved[0, 0] += torch.tensor([30.0, 0.0, 30.0, 0.0], dtype=torch.float64)
    _, g3, _ = module.terms(feats, moved)
    assert not np.allclose(g3.detach().numpy(), g0.detach().numpy())


def test_geometry_only_module_weights_proportional_to_geometry(rng):
    module = _module(feat_dim=32, key_dim=32, heads=4, geo_dim=16)
    with torch.no_grad():
        module.key.weight.zero_()
        module.key.bias.zero_()
    boxes = _boxes(rng, 8)[None]
    feats = torch.tensor(rng.normal(size=(1, 8, 32)))
    weight, g, a = module.terms(feats, boxes)
    assert torch.count_nonzero(a) == 0
    g = g.detach().clamp_min(1e-6)
    np.testing.assert_allclose(weight.detach().numpy(), (g / g.sum(-1, keepdim=True)).numpy(), atol=1e-12)


def test_relative_geometry_uses_receiving_box():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 20.0], [25.0, 0.0, 65.0, 20.0]])
    geo = relative_geometry(boxes)
    # row 0 receives from 1: centre offset 45 − 5 = 40 divided by the receiving width 10
    assert math.isclose(float(geo[0, 1, 0]), math.log(4.0), rel_tol=1e-6)
    assert math.isclose(float(geo[1, 0, 0]), math.log(1.0), abs_tol=1e-6)  # 40 / 40
    assert math.isclose(float(geo[0, 1, 2]), math.log(10 / 40), rel_tol=1e-6)
    assert math.isclose(float(geo[0, 0, 0]), math.log(1e-3), rel_tol=1e-6)  # clamp on the diagonal
    emb = geometry_embedding(geo, 64)
    assert emb.shape == (2, 2, 64)
    # layout: for term t, [sin × 8, cos × 8]; frequency 0 divides by 1
    assert math.isclose(float(emb[0, 1, 0]), math.sin(100 * math.log(4.0)), abs_tol=1e-5)
    assert math.isclose(float(emb[0, 1, 8]), math.cos(100 * math.log(4.0)), abs_tol=1e-5)


def test_rank_embedding_layout():
    emb = rank_embedding(5, 16)
    for r in range(5):
        for i in range(8):
            assert math.isclose(float(emb[r, i]), math.sin(r / 1000 ** (2 * i / 16)), abs_tol=1e-6)
            assert math.isclose(float(emb[r, 8 + i]), math.cos(r / 1000 ** (2 * i / 16)), abs_tol=1e-6)


def _monotone_rank_module() -> DuplicateRemoval:
    """Hand-set: appearance ignored, relation output zero, logit = −(slowest rank sinusoid) · 1000."""
    torch.manual_seed(0)
    mod = DuplicateRemoval(feat_dim=16, embed_dim=16, rank_dim=32, key_dim=16, heads=4, geo_dim=16).double()
    with torch.no_grad():
        for p in mod.parameters():
            p.zero_()
        # the last sine frequency is sin(r / 1000^{30/32}) ≈ r / 650: increasing in r for r < 1000
        mod.rank_fc.weight[0, 15] = 1000.0
        mod.logit.weight[:, 0] = -torch.tensor([0.5, 1.0, 1.5, 2.0, 2.5], dtype=torch.float64)
        mod.logit.bias[:] = 3.0
    return mod


def test_duplicate_removal_keeps_rank_order_with_constant_appearance(rng):
    mod = _monotone_rank_module()
    n = 12
    boxes = _boxes(rng, n)[None]
    feats = torch.ones(1, n, 16, dtype=torch.float64)  # constant appearance
    scores = torch.tensor(rng.permutation(np.linspace(0.95, 0.3, n)))[None]
    with torch.no_grad():
        s1, order = mod.rescore(feats, boxes, scores)
    assert torch.equal(order[0], scores[0].argsort(descending=True))
    final = scores.gather(1, order)[..., None] * s1  # (1, n, T), rows by rank
    diffs = final[0, 1:] - final[0, :-1]
    assert (diffs < 0).all(), "final scores must fall with rank"
    assert (s1 > 0).all() and (s1 < 1).all()
    # shuffling the input changes nothing about the per-detection result
    perm = torch.tensor(rng.permutation(n))
    with torch.no_grad():
        s1b, order_b = mod.rescore(feats[:, perm], boxes[:, perm], scores[:, perm])
    np.testing.assert_allclose(s1b.numpy(), s1.numpy(), atol=1e-12)
    assert torch.equal(perm[order_b[0]], order[0])


def test_duplicate_removal_records_its_relation(rng):
    torch.manual_seed(1)
    mod = DuplicateRemoval(feat_dim=16, embed_dim=32, rank_dim=32, key_dim=32, heads=4, geo_dim=16).double()
    boxes = _boxes(rng, 5)[None].repeat(3, 1, 1)
    feats = torch.tensor(rng.normal(size=(3, 5, 16)))
    with torch.no_grad(), recording() as rec:
        s1 = mod(feats, boxes)
    assert s1.shape == (3, 5, 5)
    w = rec._single["relation/nms/weight"]
    assert w.shape == (3, 4, 5, 5)
    np.testing.assert_allclose(w.sum(-1).numpy(), 1.0, atol=1e-12)


# -- the detector ----------------------------------------------------------------------------------------
TINY = dict(
    backbone="resnet18",
    fpn_channels=32,
    min_size=96,
    max_size=128,
    proposals=24,
    rpn_pre_nms_top_n_test=100,
    representation=64,
    key_dim=64,
    heads=8,
    geo_dim=32,
    first_n=12,
    nms_rank_dim=32,
    nms_key_dim=32,
    nms_embed=16,
    num_classes=5,
    score_thresh=0.0,
    norm="batch",
)


def _image(rng) -> np.ndarray:
    img = np.full((96, 128, 3), 190, np.uint8)
    img[10:50, 15:60] = (220, 40, 40)
    img[55:90, 70:120] = (40, 40, 220)
    return img


def _run(family_name: str, config: dict, image: np.ndarray, threshold: float = 0.0, **extra):
    from relviz import zoo

    fam = zoo.get_family(family_name)
    torch.manual_seed(0)
    module = fam.build({**fam.default_config(), **config}).eval()
    loaded = zoo.LoadedModel(
        fam, "tiny", module, {**fam.default_config(), **config}, torch.device("cpu"), torch.float32
    )
    source = {"path": "memory", "kind": "image", "frame": 0, "size": [image.shape[1], image.shape[0]]}
    with torch.inference_mode():
        return fam.run(loaded, [image], source, zoo.RunOptions(threshold=threshold, extra=extra)), loaded


def test_torchvision_body_loads_strictly_into_the_relation_detector(tmp_path):
    import torchvision

    from relviz.core.errors import CheckpointError
    from relviz.models.rcnn import build_relation_rcnn, load_torchvision_body

    torch.manual_seed(1)
    tv = torchvision.models.detection.fasterrcnn_resnet50_fpn(
        weights=None,
        weights_backbone=None,
        min_size=128,
        max_size=160,
        box_score_thresh=0.0,
        rpn_pre_nms_top_n_test=200,
        rpn_post_nms_top_n_test=100,
    ).eval()
    state = tv.state_dict()
    model = build_relation_rcnn(
        {
            "min_size": 128,
            "max_size": 160,
            "score_thresh": 0.0,
            "rpn_pre_nms_top_n_test": 200,
            "proposals": 100,
            "nms": "nms",
        }
    ).eval()
    loaded = load_torchvision_body(model, state, head=True)
    assert any(k.startswith("backbone.body.layer4") for k in loaded) and any(k.startswith("rpn.") for k in loaded)
    own = model.state_dict()
    for key in loaded:
        assert torch.equal(own[key], state[key]), key
    # the relation modules are not in a torchvision file and keep their own initialisation
    assert not any("relations" in k for k in loaded)

    # with the relation modules' output projections at zero, eq. (6) is the identity and the detector is
    # torchvision's: same detections from the same weights
    with torch.no_grad():
        for rm in model.roi_heads.box_head.relations:
            rm.linear_out.weight.zero_()
            rm.linear_out.bias.zero_()
        image = torch.rand(3, 128, 160, generator=torch.Generator().manual_seed(0))
        ours = model([image])[0]
        theirs = tv([image])[0]
    assert len(theirs["boxes"]) > 0
    for key in ("boxes", "scores", "labels"):
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-4, atol=1e-4)

    broken = {k: v for k, v in state.items() if k != "rpn.head.cls_logits.bias"}
    with pytest.raises(CheckpointError, match="missing keys: rpn.head.cls_logits.bias"):
        load_torchvision_body(model, broken)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_torchvision_body(build_relation_rcnn({"backbone": "resnet18"}), state)


def test_torchvision_body_through_the_zoo(tmp_path):
    """``--weights none --config body=PATH`` with a small torchvision-format Faster R-CNN (ResNet-18 FPN)."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    from relviz import zoo
    from relviz.core.errors import CheckpointError

    torch.manual_seed(2)
    backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=3)
    tv = FasterRCNN(backbone, num_classes=5)
    state = tv.state_dict()
    path = tmp_path / "fasterrcnn_r18.pth"
    # the file leaves out fc6/fc7 (large); its predictor is 1024 wide, so only the body is asked for
    torch.save({k: v for k, v in state.items() if not k.startswith("roi_heads.box_head.")}, path)
    overrides = {**TINY, "fpn_channels": 256, "body": str(path), "body_head": False}
    lm = zoo.load_model("relation-rcnn-r50-fpn", "none", overrides=overrides)
    own = lm.module.state_dict()
    for key in (
        "backbone.body.layer3.1.conv2.weight",
        "backbone.fpn.layer_blocks.3.0.weight",
        "rpn.head.bbox_pred.weight",
    ):
        assert torch.equal(own[key], state[key]), key
    # the torchvision file itself is refused as a relation checkpoint, with the way to use it
    with pytest.raises(CheckpointError, match="plain Faster R-CNN checkpoint .*body=PATH"):
        zoo.load_model("relation-rcnn-r50-fpn", str(path))


def test_detections_map_to_their_proposal_rows(rng):
    from relviz.models.rcnn import build_relation_rcnn  # noqa: F401  (the family builds it)

    image = _image(rng)
    for nms in ("nms", "learned"):
        trace, loaded = _run("relation", {**TINY, "nms": nms}, image)
        n = len(trace["detections/scores"])
        assert n > 0
        boxes = trace["relation/fc1/boxes"]
        rows = trace["detections/proposal"]
        assert rows.min() >= 0 and rows.max() < len(boxes)
        assert trace["relation/fc1/weight"].shape == (8, len(boxes), len(boxes))
        if nms == "learned":
            nrow = trace["detections/nms_row"]
            assert (nrow >= 0).all()
            np.testing.assert_allclose(trace["relation/nms/boxes"][nrow], trace["detections/boxes"], atol=1e-4)
            assert np.array_equal(trace["relation/nms/proposal"][nrow], rows)
            assert np.array_equal(trace["relation/nms/labels"][nrow], trace["detections/labels"])
            final = trace["relation/nms/scores"][nrow] * trace["relation/nms/keep"][nrow].mean(-1)
            np.testing.assert_allclose(final, trace["detections/scores"], rtol=1e-5)
            w = trace["relation/nms/weight"]
            np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
            # block-diagonal: no relation across classes
            labels = trace["relation/nms/labels"]
            assert np.all(w[:, labels[:, None] != labels[None, :]] == 0)
        else:
            assert "relation/nms/weight" not in trace


def test_detection_boxes_are_their_proposals_when_regression_is_zero(rng):
    image = _image(rng)
    from relviz import zoo

    fam = zoo.get_family("relation")
    cfg = {**fam.default_config(), **TINY, "nms": "nms"}
    torch.manual_seed(0)
    module = fam.build(cfg).eval()
    with torch.no_grad():
        module.roi_heads.box_predictor.bbox_pred.weight.zero_()
        module.roi_heads.box_predictor.bbox_pred.bias.zero_()
    loaded = zoo.LoadedModel(fam, "tiny", module, cfg, torch.device("cpu"), torch.float32)
    source = {"path": "memory", "kind": "image", "frame": 0, "size": [128, 96]}
    with torch.inference_mode():
        trace = fam.run(loaded, [image], source, zoo.RunOptions(threshold=0.0))
    props = trace["relation/fc2/boxes"][trace["detections/proposal"]]
    np.testing.assert_allclose(trace["detections/boxes"], props, atol=1e-3)


def test_relation_checkpoint_round_trip_infers_the_architecture(tmp_path, rng):
    from safetensors.torch import save_file

    from relviz import zoo
    from relviz.core.errors import CheckpointError

    image = _image(rng)
    trace, loaded = _run("relation", TINY, image)
    path = tmp_path / "tiny.pth"
    torch.save(
        {
            "model": loaded.module.state_dict(),
            "args": {"min_size": 96, "max_size": 128, "proposals": 24, "score_thresh": 0.0, "first_n": 12},
        },
        path,
    )
    assert zoo.guess_family(torch.load(path)["model"])[0] == "relation"
    again = zoo.load_model(weights=str(path))
    assert again.family.name == "relation"
    for key in ("backbone", "fpn_channels", "heads", "key_dim", "geo_dim", "num_classes", "nms_embed"):
        assert again.config[key] == TINY[key], key
    source = {"path": "memory", "kind": "image", "frame": 0, "size": [128, 96]}
    with torch.inference_mode():
        t2 = again.family.run(again, [image], source, zoo.RunOptions(threshold=0.0))
    np.testing.assert_allclose(t2["detections/scores"], trace["detections/scores"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(t2["relation/fc1/weight"], trace["relation/fc1/weight"], rtol=1e-4, atol=1e-6)

    # a region-feature checkpoint given as a relation model: a sentence, not a traceback
    _, reg = _run(
        "regionfeat",
        {k: v for k, v in TINY.items() if k in zoo.get_family("regionfeat").default_config()} | {"samples": 8},
        image,
    )
    rpath = tmp_path / "region.safetensors"
    save_file({k: v.contiguous() for k, v in reg.module.state_dict().items()}, str(rpath))
    with pytest.raises(CheckpointError, match="region-feature detector"):
        zoo.load_model("relation-rcnn-r50-fpn", str(rpath))
    assert zoo.load_model(weights=str(rpath), overrides={"samples": 8}).family.name == "regionfeat"


def test_unknown_setting_is_refused():
    from relviz import zoo
    from relviz.core.errors import BadInputError

    with pytest.raises(BadInputError, match="unknown setting 'parts'"):
        zoo.load_model("relation-rcnn-r50-fpn", "none", overrides={"parts": 5})


@pytest.mark.parametrize("family", ["relation", "regionfeat"])
def test_training_step_gives_losses_and_gradients(family):
    from relviz import zoo

    fam = zoo.get_family(family)
    cfg = {
        **fam.default_config(),
        **{k: v for k, v in TINY.items() if k in fam.default_config()},
        "box_batch_size_per_image": 64,
        "rpn_post_nms_top_n_train": 100,
        "rpn_pre_nms_top_n_train": 200,
    }
    if family == "regionfeat":
        cfg["samples"] = 8
    torch.manual_seed(0)
    model = fam.build(cfg).train()
    images = [torch.rand(3, 96, 128)]
    targets = [
        {"boxes": torch.tensor([[10.0, 10.0, 50.0, 40.0], [60.0, 50.0, 120.0, 90.0]]), "labels": torch.tensor([1, 3])}
    ]
    losses = model(images, targets)
    expected = {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    if family == "relation":
        expected.add("loss_duplicate")
    assert expected <= set(losses)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    if family == "relation":
        grads = [
            model.roi_heads.box_head.relations[0].query.weight.grad,
            model.roi_heads.duplicate_removal.logit.weight.grad,
        ]
    else:
        grads = [
            model.roi_heads.box_roi_pool.geometry_fc.weight.grad,
            model.roi_heads.box_roi_pool.appearance_fc.weight.grad,
        ]
    for grad in grads:
        assert grad is not None and grad.abs().sum() > 0


def test_duplicate_targets_mark_the_first_match_per_ground_truth():
    from relviz.models.rcnn import duplicate_targets

    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0]])
    boxes = torch.tensor(
        [
            [1.0, 0.0, 11.0, 10.0],  # rank 0: IoU 9/11 ≈ 0.82 with gt 0
            [0.0, 0.0, 10.0, 10.0],  # rank 1: IoU 1.0 with gt 0 (a duplicate, ranked lower)
            [50.0, 50.0, 60.0, 64.0],  # rank 2: IoU 100/140 ≈ 0.71 with gt 1
            [30.0, 30.0, 40.0, 40.0],  # rank 3: matches nothing
        ]
    )
    thresholds = torch.tensor([0.5, 0.6, 0.7, 0.8, 0.9])
    goal = duplicate_targets(boxes, gt, thresholds)
    expected = torch.tensor([[1, 1, 1, 1, 0], [0, 0, 0, 0, 1], [1, 1, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=goal.dtype)
    assert torch.equal(goal, expected)
