"""DETR trained on its frozen body's stored features: the pool, the grouped-query trainee, batched matching."""

import itertools

import pytest
import torch

from relviz.train import scenes
from relviz.train.bodycache import build_pool, cached_pool, scene_targets
from relviz.train.detr import CachedBodyDETR, pool_batch
from relviz.train.setloss import hungarian_match

TINY = {
    "backbone_depth": 18,
    "hidden_dim": 32,
    "nheads": 4,
    "enc_layers": 1,
    "dec_layers": 2,
    "dim_feedforward": 48,
    "num_queries": 5,
    "num_classes": 4,
    "dropout": 0.0,
}
SIZE = 64


@pytest.fixture(scope="module")
def detr():
    from relviz.models.detr import DETR, DETRConfig

    torch.manual_seed(0)
    return DETR(DETRConfig(**TINY)).eval()


def test_the_pool_holds_the_body_features_and_targets_of_each_scene(detr, tmp_path):
    from relviz.zoo.detr import preprocess

    body = detr.backbone[0].body
    pool = build_pool(body, seed=5, n=3, shorter=SIZE)
    assert len(pool) == 3 and pool.features.dtype == torch.float16
    for i in range(3):
        scene = scenes.make_scene(5, i)
        with torch.no_grad():
            want = body(preprocess(scene.image, SIZE)[None])[0]
        torch.testing.assert_close(pool.features[i].float(), want, atol=2e-2, rtol=2e-3)
        features, (target,) = pool.batch(torch.tensor([i]))
        labels, boxes = scene_targets(scene)
        assert torch.equal(target["labels"], labels) and torch.equal(target["boxes"], boxes)
        assert features.dtype == torch.float32
    # stored once, then read back under the same key
    first = cached_pool(body, 5, 3, SIZE, tmp_path)
    (stored,) = tmp_path.glob("body-features-*-s5-r64-n3.pt")
    again = cached_pool(body, 5, 3, SIZE, tmp_path)
    assert torch.equal(first.features, again.features) and torch.equal(first.offsets, again.offsets)
    assert stored.stat().st_size > first.features.numel()


def test_a_step_batch_depends_only_on_seed_and_step(detr):
    pool = build_pool(detr.backbone[0].body, seed=5, n=4, shorter=SIZE)
    a, b = pool_batch(pool, 0, 7, 3), pool_batch(pool, 0, 7, 3)
    assert torch.equal(a[0], b[0])
    assert [len(t["labels"]) for t in a[1]] == [len(t["labels"]) for t in b[1]]
    # which scenes a step draws: read back from the number of objects of each drawn scene
    drawn = {tuple(len(t["labels"]) for t in pool_batch(pool, 0, step, 3)[1]) for step in range(20)}
    assert len(drawn) > 3


@pytest.mark.parametrize("groups", [1, 3])
def test_on_stored_features_the_first_query_group_is_plain_detr(detr, groups):
    torch.manual_seed(1)
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        want = detr(images)
        features = detr.backbone[0].body(images)
        got = CachedBodyDETR(detr, groups)(features)
    assert got["pred_logits"].shape == (2 * groups, TINY["num_queries"], TINY["num_classes"] + 1)
    torch.testing.assert_close(got["pred_logits"][:2], want["pred_logits"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got["pred_boxes"][:2], want["pred_boxes"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        got["aux_outputs"][0]["pred_boxes"][:2], want["aux_outputs"][0]["pred_boxes"], atol=1e-5, rtol=1e-5
    )
    if groups > 1:  # the other groups decode the same memory with their own queries
        assert not torch.allclose(got["pred_boxes"][2:4], want["pred_boxes"])


def test_batched_matching_is_each_images_own_minimum_and_skips_images_without_objects():
    from torchvision.ops import generalized_box_iou

    from relviz.train.setloss import cxcywh_to_xyxy

    torch.manual_seed(0)
    logits, boxes = torch.randn(3, 4, 5), torch.rand(3, 4, 4) * 0.5 + 0.25
    targets = [
        {"labels": torch.tensor([0, 2]), "boxes": torch.rand(2, 4) * 0.5 + 0.25},
        {"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)},
        {"labels": torch.tensor([3, 1, 1]), "boxes": torch.rand(3, 4) * 0.5 + 0.25},
    ]
    matches = hungarian_match(logits, boxes, targets)
    assert len(matches[1][0]) == 0
    for b in (0, 2):
        t = targets[b]
        cost = (
            -logits[b].softmax(-1)[:, t["labels"]]
            + 5 * torch.cdist(boxes[b], t["boxes"], p=1)
            - 2 * generalized_box_iou(cxcywh_to_xyxy(boxes[b]), cxcywh_to_xyxy(t["boxes"]))
        )
        n = len(t["labels"])
        best = min(sum(float(cost[q, k]) for k, q in enumerate(p)) for p in itertools.permutations(range(4), n))
        rows, cols = matches[b]
        assert sum(float(cost[r, c]) for r, c in zip(rows, cols)) == pytest.approx(best, abs=1e-5)
