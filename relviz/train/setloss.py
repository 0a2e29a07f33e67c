"""DETR's set prediction loss: Hungarian matching, then class, L1 and GIoU losses (DETR §3.1, eq. 1-2).

Follows the official ``HungarianMatcher`` and ``SetCriterion``: matching cost
``-p̂(c) + λ_L1 ‖b - b̂‖₁ - λ_giou GIoU(b, b̂)`` (eq. 1 with the box loss of eq. 2), cross entropy over
all queries with the "no object" class down-weighted by ``eos_coef``, box losses normalised by the
number of target boxes, and the same losses on every decoder layer's output (auxiliary losses, §3.2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn
from torchvision.ops import generalized_box_iou


def cxcywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


@torch.no_grad()
def hungarian_match(
    logits: torch.Tensor,
    boxes: torch.Tensor,
    targets: list[dict[str, torch.Tensor]],
    cost_class: float = 1.0,
    cost_bbox: float = 5.0,
    cost_giou: float = 2.0,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per image, (query indices, target indices) of the minimum-cost one-to-one assignment.

    As in the official matcher, the costs of every query against every target of the batch are computed
    at once and cut into per-image blocks (a few large operations instead of a few small ones per image).
    """
    b, q = logits.shape[:2]
    sizes = [len(t["labels"]) for t in targets]
    empty = (torch.empty(0, dtype=torch.int64), torch.empty(0, dtype=torch.int64))
    if sum(sizes) == 0:
        return [empty for _ in targets]
    prob = logits.flatten(0, 1).softmax(-1)
    out_boxes = boxes.flatten(0, 1)
    tgt_labels = torch.cat([t["labels"] for t in targets])
    tgt_boxes = torch.cat([t["boxes"] for t in targets])
    c = (
        -cost_class * prob[:, tgt_labels]
        + cost_bbox * torch.cdist(out_boxes, tgt_boxes, p=1)
        - cost_giou * generalized_box_iou(cxcywh_to_xyxy(out_boxes), cxcywh_to_xyxy(tgt_boxes))
    )
    c = c.view(b, q, -1).cpu()
    out = []
    for i, block in enumerate(c.split(sizes, -1)):
        if sizes[i] == 0:
            out.append(empty)
            continue
        rows, cols = linear_sum_assignment(block[i].numpy())
        out.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
    return out


class SetCriterion(nn.Module):
    """Hungarian set loss of DETR; ``targets`` hold ``labels`` (N,) and normalised cxcywh ``boxes`` (N, 4)."""

    def __init__(
        self, num_classes: int, eos_coef: float = 0.1, w_ce: float = 1.0, w_bbox: float = 5.0, w_giou: float = 2.0
    ):
        super().__init__()
        self.num_classes = num_classes
        self.w_ce, self.w_bbox, self.w_giou = w_ce, w_bbox, w_giou
        weight = torch.ones(num_classes + 1)
        weight[-1] = eos_coef
        self.register_buffer("empty_weight", weight)

    def single(
        self, logits: torch.Tensor, boxes: torch.Tensor, targets: list[dict[str, torch.Tensor]], num_boxes: float
    ) -> dict[str, torch.Tensor]:
        idx = hungarian_match(logits.detach(), boxes.detach(), targets)
        batch = torch.cat([torch.full_like(q, i) for i, (q, _) in enumerate(idx)])
        query = torch.cat([q for q, _ in idx])
        target_classes = torch.full(logits.shape[:2], self.num_classes, dtype=torch.int64, device=logits.device)
        target_classes[batch, query] = torch.cat([t["labels"][j] for t, (_, j) in zip(targets, idx)])
        loss_ce = F.cross_entropy(logits.transpose(1, 2), target_classes, self.empty_weight)
        src = boxes[batch, query]
        tgt = torch.cat([t["boxes"][j] for t, (_, j) in zip(targets, idx)])
        loss_bbox = F.l1_loss(src, tgt, reduction="none").sum() / num_boxes
        giou = torch.diag(generalized_box_iou(cxcywh_to_xyxy(src), cxcywh_to_xyxy(tgt)))
        loss_giou = (1 - giou).sum() / num_boxes
        return {"ce": loss_ce, "bbox": loss_bbox, "giou": loss_giou}

    def forward(self, outputs: dict, targets: list[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, dict]:
        num_boxes = max(1.0, float(sum(len(t["labels"]) for t in targets)))
        parts = [self.single(outputs["pred_logits"], outputs["pred_boxes"], targets, num_boxes)]
        for aux in outputs.get("aux_outputs", []):
            parts.append(self.single(aux["pred_logits"], aux["pred_boxes"], targets, num_boxes))
        total = sum(self.w_ce * p["ce"] + self.w_bbox * p["bbox"] + self.w_giou * p["giou"] for p in parts)
        return total, {k: float(v.detach()) for k, v in parts[0].items()}
