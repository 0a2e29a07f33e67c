"""The training harness: set loss, matching, batch-norm export, cards, evaluation, command line."""

import itertools
import json

import numpy as np
import pytest
import torch

from relviz.train import scenes
from relviz.train.common import freeze_batchnorm, unfreeze_batchnorm
from relviz.train.setloss import SetCriterion, cxcywh_to_xyxy, hungarian_match


def test_hungarian_match_is_the_brute_force_minimum():
    torch.manual_seed(0)
    logits, boxes = torch.randn(1, 5, 4), torch.rand(1, 5, 4) * 0.5 + 0.25
    targets = [{"labels": torch.tensor([0, 2, 1]), "boxes": torch.rand(3, 4) * 0.5 + 0.25}]
    ((rows, cols),) = hungarian_match(logits, boxes, targets)
    from torchvision.ops import generalized_box_iou

    prob = logits[0].softmax(-1)
    cost = (
        -prob[:, targets[0]["labels"]]
        + 5 * torch.cdist(boxes[0], targets[0]["boxes"], p=1)
        - 2 * generalized_box_iou(cxcywh_to_xyxy(boxes[0]), cxcywh_to_xyxy(targets[0]["boxes"]))
    )
    best = min(sum(float(cost[q, t]) for t, q in enumerate(perm)) for perm in itertools.permutations(range(5), 3))
    assert sum(float(cost[r, c]) for r, c in zip(rows, cols)) == pytest.approx(best, abs=1e-5)


def test_set_loss_is_zero_box_loss_for_perfect_boxes_and_order_invariant():
    boxes = torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.1, 0.3]])
    logits = torch.full((1, 4, 5), -10.0)
    logits[0, 0, 1] = logits[0, 1, 3] = 10.0
    logits[0, 2:, 4] = 10.0
    pred = torch.cat([boxes, torch.rand(2, 4) * 0.1 + 0.1])[None]
    crit = SetCriterion(4)
    t1 = [{"labels": torch.tensor([1, 3]), "boxes": boxes}]
    t2 = [{"labels": torch.tensor([3, 1]), "boxes": boxes.flip(0)}]
    loss1, parts1 = crit({"pred_logits": logits, "pred_boxes": pred}, t1)
    loss2, _ = crit({"pred_logits": logits, "pred_boxes": pred}, t2)
    assert parts1["bbox"] == pytest.approx(0, abs=1e-6) and parts1["giou"] == pytest.approx(0, abs=1e-6)
    assert parts1["ce"] < 1e-3 and float(loss1) == pytest.approx(float(loss2))


def test_batchnorm_swap_round_trip_keeps_eval_outputs():
    import torchvision
    from torchvision.ops import FrozenBatchNorm2d

    net = torchvision.models.resnet18(weights=None, norm_layer=FrozenBatchNorm2d)
    unfreeze_batchnorm(net)
    net.train()
    with torch.no_grad():
        net(torch.randn(4, 3, 64, 64))  # moves the running statistics
    net.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = net(x)
        frozen = freeze_batchnorm(net)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in frozen.modules())
        assert torch.allclose(frozen(x), expected, atol=1e-4)
    assert "layer1.0.bn1.num_batches_tracked" not in frozen.state_dict()


def test_ap50_is_one_for_ground_truth_and_drops_for_wrong_labels_or_boxes():
    from relviz.train.evaluate import coco_ap50

    sc = scenes.make_scenes(3, 6)
    perfect = [{"boxes": s.boxes, "scores": np.ones(len(s.objects)), "labels": s.labels} for s in sc]
    assert coco_ap50(sc, perfect)["AP50"] == pytest.approx(1.0)
    shifted = [{**d, "boxes": d["boxes"] + np.array([40, 40, 40, 40], np.float32)} for d in perfect]
    assert coco_ap50(sc, shifted)["AP50"] < 0.2
    relabelled = [{**d, "labels": (d["labels"] + 1) % len(scenes.CLASSES)} for d in perfect]
    assert coco_ap50(sc, relabelled)["AP50"] < 0.05


def test_card_records_sha256_of_weights(tmp_path):
    from relviz.core.checkpoint import sha256_of
    from relviz.train.cards import write_card
    from relviz.train.compact import export_safetensors

    path = export_safetensors(torch.nn.Linear(3, 2), tmp_path / "m.safetensors")
    card = write_card(
        path,
        name="m",
        family="x",
        config={},
        data={},
        recipe={},
        training={},
        metrics={"top1": 0.5},
        targets={"top1": 0.9},
        notes=["missed"],
    )
    data = json.loads(card.read_text())
    assert data["sha256"] == sha256_of(path) and data["targets_met"] == {"top1": False}


def test_train_command_lists_valid_names_for_unknown(capsys):
    from relviz.train.__main__ import main

    assert main(["no-such-model"]) == 2
    err = capsys.readouterr().err
    assert "demo-detr" in err and "no-such-model" in err


def test_a_few_detr_steps_lower_the_loss():
    from relviz.models.detr import DETR, DETRConfig
    from relviz.train.detr import scene_batch

    torch.manual_seed(0)
    cfg = DETRConfig(
        backbone_depth=18,
        hidden_dim=32,
        nheads=4,
        enc_layers=1,
        dec_layers=1,
        dim_feedforward=64,
        num_queries=12,
        num_classes=4,
        dropout=0.0,
    )
    model = unfreeze_batchnorm(DETR(cfg)).train()
    crit = SetCriterion(4)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, targets = scene_batch(5, 0, 2, 32)
    losses = []
    for _ in range(15):  # fit one small batch: the loss must fall
        loss, _ = crit(model(x), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.9 * losses[0], losses


def _conv_bn(seed: int, weight: float | None = None) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = torch.nn.Sequential()
    net.add_module("layer", torch.nn.Module())
    net.layer.conv1 = torch.nn.Conv2d(3, 4, 3, bias=False)
    net.layer.bn1 = torch.nn.BatchNorm2d(4)
    if weight is not None:
        torch.nn.init.constant_(net.layer.conv1.weight, weight)
    with torch.no_grad():
        net.layer.bn1.running_mean.normal_(0, 0.5)
        net.layer.bn1.running_var.uniform_(0.01, 2.0)
        net.layer.bn1.weight.uniform_(0.5, 1.5)
        net.layer.bn1.bias.normal_(0, 0.2)
    net.forward = lambda x: net.layer.bn1(net.layer.conv1(x))
    return net.eval()


def test_compact_state_compensates_batchnorm_exactly(monkeypatch):
    from relviz.train import compact
    from relviz.train.compact import compact_state

    small = compact_state(_conv_bn(0).state_dict())
    assert small["layer.conv1.weight"].dtype == torch.float16  # small kernels are not worth float8
    monkeypatch.setattr(compact, "FP8_MIN_NUMEL", 0)

    # weights whose rescaled value is exact in float8: only the compensation can change the output
    net = _conv_bn(0, weight=0.25)
    state = compact_state(net.state_dict())
    assert state["layer.conv1.weight"].dtype == torch.float8_e4m3fn
    assert state["layer.bn1.running_var"].dtype == torch.float32
    other = _conv_bn(1)
    other.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        assert torch.allclose(other(x), net(x), atol=1e-4, rtol=1e-4)
    # random weights: float8 rounding only (3 mantissa bits), a few percent at most
    net = _conv_bn(2)
    other = _conv_bn(3)
    other.load_state_dict(compact_state(net.state_dict()), strict=True)
    with torch.no_grad():
        a, b = net(x), other(x)
    assert 0 < float((a - b).norm() / a.norm()) < 0.05


def test_compacting_a_compact_state_again_changes_nothing(monkeypatch):
    from relviz.train import compact

    monkeypatch.setattr(compact, "FP8_MIN_NUMEL", 0)
    net = _conv_bn(4)
    once = compact.compact_state(net.state_dict())
    again_net = _conv_bn(5)
    again_net.load_state_dict(once)
    monkeypatch.setattr(compact, "FP8_MIN_NUMEL", 10**9)  # now the kernel counts as small
    twice = compact.compact_state(again_net.state_dict())
    assert all(torch.isfinite(v.float()).all() for v in twice.values())
    other = _conv_bn(6)
    other.load_state_dict(twice)
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        assert torch.allclose(other(x), again_net(x), rtol=1e-3, atol=1e-3)


def test_weighted_classifier_loss_is_the_weighted_cross_entropy_of_the_sampled_rois():
    import torch.nn.functional as F

    from relviz.models.rcnn import build_relation_rcnn
    from relviz.train.rcnn import DEMO_RELATION, class_weight, rcnn_batch

    torch.manual_seed(0)
    model = build_relation_rcnn({**DEMO_RELATION, "fpn_channels": 16, "representation": 32, "key_dim": 32})
    model.train()
    seen = {}
    heads = model.roi_heads
    select, predict = heads.select_training_samples, heads.box_predictor.forward

    def record_select(proposals, targets):
        out = select(proposals, targets)
        seen["labels"] = torch.cat(out[2])
        return out

    def record_predict(x):
        out = predict(x)
        seen["logits"] = out[0]
        return out

    heads.select_training_samples = record_select
    heads.box_predictor.forward = record_predict
    images, targets = rcnn_batch(7, 0, 2)
    weight = class_weight(3.0)
    assert weight.tolist() == [1.0, 1.0, 1.0, 1.0, 3.0]
    heads.class_weight = weight
    loss = model(images, targets)["loss_classifier"]
    expected = F.cross_entropy(seen["logits"], seen["labels"], weight=weight)
    unweighted = F.cross_entropy(seen["logits"], seen["labels"])
    assert torch.allclose(loss, expected)
    # the scenes hold odd objects, so the weighting changes the number
    assert (seen["labels"] == 4).any() and not torch.allclose(loss, unweighted)


def test_baseline_record_is_merged_into_the_bundled_card(tmp_path, monkeypatch):
    import relviz.zoo
    from relviz.train import cards

    monkeypatch.setenv("RELVIZ_TRAIN_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(relviz.zoo, "WEIGHTS_DIR", tmp_path)
    card = {
        "name": "demo-relation",
        "metrics": {"AP50": 0.8, "AP50_odd": 0.5},
        "targets": {"AP50": 0.9},
        "recipe": {},
    }
    (tmp_path / "demo-relation.json").write_text(json.dumps(card))
    with pytest.raises(FileNotFoundError):
        cards.attach_baseline("demo-relation")
    run = tmp_path / "runs" / "demo-relation"
    run.mkdir(parents=True, exist_ok=True)
    record = {"metrics": {"AP50": 0.7, "AP50_odd": 0.2}, "steps": 10, "protocol": "relation-free head"}
    (run / "baseline.json").write_text(json.dumps(record))
    merged = cards.attach_baseline("demo-relation")
    on_disk = json.loads((tmp_path / "demo-relation.json").read_text())
    assert on_disk == merged
    assert merged["metrics"]["baseline_AP50_odd"] == 0.2 and merged["metrics"]["AP50"] == 0.8
    assert merged["recipe"]["baseline"] == {"steps": 10, "protocol": "relation-free head"}
    assert merged["targets_met"] == {"AP50": False, "odd_above_baseline": True}


def test_grouping_loss_targets_the_other_objects_of_the_same_group():
    from relviz.models.rcnn import RelationRoIHeads

    torch.manual_seed(0)
    n = 7
    weight = torch.softmax(torch.randn(2, n, n), -1)
    # RoIs 0-5 lie on objects 0, 0, 1, 2, 3, 1; RoI 6 is background (label 0, matched index clamped to 0)
    matched = torch.tensor([0, 0, 1, 2, 3, 1, 0])
    labels = torch.tensor([1, 1, 2, 3, 1, 2, 0])
    groups = torch.tensor([5, 5, 6, 9])  # objects 0 and 1 share a colour; 2 and 3 are alone in theirs
    loss = RelationRoIHeads.grouping_loss([weight], [matched], [labels], [{"groups": groups}])
    expected = []
    for row in range(n):
        if labels[row] == 0:
            continue
        others = [
            col
            for col in range(n)
            if labels[col] > 0 and groups[matched[col]] == groups[matched[row]] and matched[col] != matched[row]
        ]
        if others:
            expected.append(-sum(torch.log(weight[0, row, col]) for col in others) / len(others))
    assert len(expected) == 4  # the RoIs on objects 0 and 1; objects 2, 3 and the background have no target
    assert torch.allclose(loss, torch.stack(expected).mean())


def test_restarted_relation_modules_are_the_identity():
    import torch.nn.functional as F

    from relviz.models.rcnn import build_relation_rcnn
    from relviz.train.rcnn import DEMO_RELATION, restart_relations

    torch.manual_seed(0)
    model = build_relation_rcnn({**DEMO_RELATION, "fpn_channels": 16, "representation": 32, "key_dim": 32})
    head = model.roi_heads.box_head
    assert restart_relations(model) == 2
    x = torch.randn(5, 16, 7, 7) * 30
    boxes = torch.rand(5, 4) * 50
    boxes[:, 2:] += boxes[:, :2] + 5
    expected = F.relu(head.fc7(F.relu(head.fc6(x.flatten(1)))))
    assert torch.allclose(head(x, [boxes]), expected, atol=1e-5)
    # no row of ω saturates at the start, even on features with norms in the hundreds
    weight, omega_g, _ = head.relations[0].terms(head.fc6(x.flatten(1))[None] * 10, boxes[None])
    assert (omega_g > 0.5).all() and weight.max() < 0.9


def test_a_step_with_the_grouping_loss_trains_relation_head_0_and_leaves_the_model_copyable():
    import copy

    from relviz.models.rcnn import build_relation_rcnn
    from relviz.train.rcnn import DEMO_RELATION, rcnn_batch

    torch.manual_seed(0)
    model = build_relation_rcnn({**DEMO_RELATION, "fpn_channels": 16, "representation": 32, "key_dim": 32}).train()
    model.roi_heads.grouping_weight = 1.0
    images, targets = rcnn_batch(3, 0, 2)
    losses = model(images, targets)
    assert losses["loss_grouping"] > 0
    losses["loss_grouping"].backward()
    assert model.roi_heads.box_head.relations[0].query.weight.grad.abs().sum() > 0
    copy.deepcopy(model).eval()  # what the recipe's export does between steps
