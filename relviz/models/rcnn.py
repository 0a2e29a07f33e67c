"""Faster R-CNN R50-FPN detectors with a relation box head (Relation Networks) or learned region
features (Learning Region Features), on torchvision's detection machinery.

Both keep torchvision's ``GeneralizedRCNNTransform``, backbone-with-FPN and ``RegionProposalNetwork``
under the same state-dict names as ``torchvision.models.detection.fasterrcnn_resnet50_fpn``, so the
body (``backbone.*``, ``rpn.*``) of a torchvision checkpoint loads strictly
(:func:`load_torchvision_body`), and so do the 2fc head and predictor, whose names relviz keeps
(``roi_heads.box_head.fc6/fc7``, ``roi_heads.box_predictor.*``).

- **Relation detector** (Hu et al. 2018, §4.2, "2fc + RM"): RoIAlign 7×7 → fc6 → relation module →
  ReLU → fc7 → relation module → ReLU → classifier / box regressor, the relations running over the
  test proposals of one image (300 by default, ``proposals``).  The official code adds the relation
  output to fc's output *before* the ReLU (fc_all = fc_new + attention; relu(fc_all)); so does relviz.
  In training the official code uses only the non-ground-truth RoIs as keys (``nongt_dim``); relviz
  relates all sampled RoIs of an image, ground truth included (a simplification for the demo recipes).
  Optional duplicate removal (§4.3): per foreground class, the top ``first_n`` detections by score go
  through :class:`~relviz.models.relation.DuplicateRemoval`; the final score is s0 · s1, with s1 the
  mean over the IoU thresholds (``nms_score='mean'``, relviz's choice) or one threshold's
  (``nms_score=0.5`` …); ``nms='nms'`` uses classic per-class NMS instead.
- **Region-feature detector** (Gu et al. 2018): torchvision's 2fc head, with RoIAlign replaced by
  :class:`~relviz.models.region_features.RegionFeatureExtractor`.

Training (``model.train(); model(images, targets)``) returns torchvision's four losses, plus
``loss_duplicate`` for the duplicate-removal module (:meth:`RelationRoIHeads.duplicate_loss`).

The eval-mode output of both adds ``proposal`` (N,): for each detection, the row of the proposal it
came from (its row in ``relation/fc1`` …), and for the learned duplicate removal ``nms_row``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FasterRCNN, FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops import boxes as box_ops
from torchvision.ops import misc as misc_ops
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from relviz.core.capture import active_recorder
from relviz.core.checkpoint import FitReport
from relviz.core.errors import CheckpointError
from relviz.models.region_features import RegionFeatureExtractor
from relviz.models.relation import DuplicateRemoval, RelationModule, geometry_embedding, relative_geometry

#: defaults follow the papers (and torchvision's fasterrcnn_resnet50_fpn where the papers are silent)
DEFAULTS: dict[str, Any] = {
    "num_classes": 91,  # torchvision's COCO ids, background = 0
    "backbone": "resnet50",  # resnet18 | resnet34 | resnet50 | resnet101
    "norm": "frozen",  # frozen (as torchvision's trained body) | batch (training from scratch)
    "trainable_layers": 3,
    "fpn_channels": 256,
    "min_size": 800,
    "max_size": 1333,
    "anchor_sizes": [32, 64, 128, 256, 512],
    "rpn_pre_nms_top_n_test": 1000,
    "proposals": 300,  # rpn_post_nms_top_n_test: the objects the relations run over (paper: 300)
    "rpn_pre_nms_top_n_train": 2000,
    "rpn_post_nms_top_n_train": 2000,
    "box_batch_size_per_image": 512,
    "pool_size": 7,
    "representation": 1024,  # fc6/fc7 width = appearance feature d_f
    "score_thresh": 0.05,
    "nms_thresh": 0.5,
    "detections_per_img": 100,
    # relation modules
    "relation_modules": 2,  # 2fc + RM: one after fc6, one after fc7 (0 = the plain 2fc head)
    "heads": 16,  # N_r
    "key_dim": 1024,  # N_r · d_k with d_k = 64
    "geo_dim": 64,  # d_g
    # duplicate removal
    "duplicate_removal": True,
    "nms": "learned",  # learned | nms
    "first_n": 100,
    "nms_embed": 128,
    "nms_rank_dim": 1024,
    "nms_key_dim": 1024,
    "iou_thresholds": [0.5, 0.6, 0.7, 0.8, 0.9],
    "nms_score": "mean",  # mean | one of iou_thresholds
    "nms_record_classes": 4,  # classes whose duplicate-removal relations a trace keeps (memory: M² per head)
    # learned region features
    "parts": 7,
    "samples": 28,
    "enlarge": 2.0,
    "region_geo_dim": 64,
    "region_value": "per_part",
}

#: settings only one of the two detectors has
RELATION_ONLY = frozenset(
    {
        "pool_size",
        "relation_modules",
        "heads",
        "key_dim",
        "geo_dim",
        "duplicate_removal",
        "nms",
        "first_n",
        "nms_embed",
        "nms_rank_dim",
        "nms_key_dim",
        "iou_thresholds",
        "nms_score",
        "nms_record_classes",
    }
)
REGION_ONLY = frozenset({"parts", "samples", "enlarge", "region_geo_dim", "region_value"})

_RESNETS = {
    "resnet18": resnet.resnet18,
    "resnet34": resnet.resnet34,
    "resnet50": resnet.resnet50,
    "resnet101": resnet.resnet101,
}


def build_backbone(cfg: dict[str, Any]) -> BackboneWithFPN:
    """ResNet + FPN with torchvision's names (``backbone.body.*``, ``backbone.fpn.*``), no weights."""
    if cfg["backbone"] not in _RESNETS:
        raise ValueError(f"backbone must be one of {', '.join(_RESNETS)}, got {cfg['backbone']!r}")
    norm = misc_ops.FrozenBatchNorm2d if cfg["norm"] == "frozen" else nn.BatchNorm2d
    body = _RESNETS[cfg["backbone"]](weights=None, norm_layer=norm)
    trainable = int(cfg["trainable_layers"])
    layers = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable]
    if trainable == 5:
        layers.append("bn1")
    for name, parameter in body.named_parameters():
        if all(not name.startswith(layer) for layer in layers):
            parameter.requires_grad_(False)
    in_channels = body.inplanes // 8  # layer1's output width
    return BackboneWithFPN(
        body,
        {f"layer{k}": str(v) for v, k in enumerate((1, 2, 3, 4))},
        [in_channels * 2**i for i in range(4)],
        int(cfg["fpn_channels"]),
        extra_blocks=LastLevelMaxPool(),
    )


def duplicate_targets(boxes: torch.Tensor, gt: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """(N, T) 0/1: for rank-ordered ``boxes`` (N, 4) of one class and its ground truth ``gt`` (G, 4),
    the highest-ranked box with IoU ≥ t to each ground-truth box is 1 for threshold t, the rest 0."""
    n = len(boxes)
    goal = torch.zeros(n, len(thresholds), device=boxes.device)
    if len(gt) == 0 or n == 0:
        return goal
    iou = box_ops.box_iou(boxes, gt)  # (N, G)
    hit = iou[None] >= thresholds[:, None, None]  # (T, N, G)
    ranks = torch.arange(n, device=boxes.device)[None, :, None].expand_as(hit)
    best = torch.where(hit, ranks, n).amin(dim=1)  # (T, G): highest-ranked match of each ground truth
    for t in range(len(thresholds)):
        goal[best[t][best[t] < n], t] = 1.0
    return goal


class RelationBoxHead(nn.Module):
    """fc6 → RM → ReLU → fc7 → RM → ReLU over the proposals of each image (paper Fig. 2 left, 2fc+RM)."""

    def __init__(
        self,
        in_features: int,
        representation: int = 1024,
        relation_modules: int = 2,
        heads: int = 16,
        key_dim: int = 1024,
        geo_dim: int = 64,
    ) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_features, representation)
        self.fc7 = nn.Linear(representation, representation)
        self.geo_dim = geo_dim
        #: in training, keep each image's ω of the first relation module (H, N, N) in ``kept_weights``
        self.keep_weights = False
        self.kept_weights: list[torch.Tensor] = []
        self.relations = nn.ModuleList(
            RelationModule(representation, key_dim, representation, heads, geo_dim, name=f"relation/fc{i + 1}")
            for i in range(relation_modules)
        )

    def forward(self, x: torch.Tensor, proposals: list[torch.Tensor]) -> torch.Tensor:
        x = x.flatten(start_dim=1)
        sizes = [len(p) for p in proposals]
        outs = []
        self.kept_weights = []
        for feats, boxes in zip(x.split(sizes), proposals, strict=True):
            boxes = boxes.to(feats.dtype)[None]
            # the geometry embedding is shared by both modules, as in the official code
            emb = geometry_embedding(relative_geometry(boxes), self.geo_dim) if len(self.relations) else None
            h = self.fc6(feats)[None]
            if len(self.relations) > 0:
                h = self.relations[0](h, boxes, emb, keep=self.kept_weights if self.keep_weights else None)
            h = self.fc7(F.relu(h))
            if len(self.relations) > 1:
                h = self.relations[1](h, boxes, emb)
            outs.append(F.relu(h)[0])
        return torch.cat(outs) if outs else x.new_zeros(0, self.fc7.out_features)


class RelationRoIHeads(RoIHeads):
    """torchvision's RoIHeads with a box head that sees the proposals' boxes, the proposal index of
    every detection, and the learned duplicate removal."""

    def __init__(
        self,
        *args,
        duplicate_removal: DuplicateRemoval | None = None,
        nms: str = "learned",
        first_n: int = 100,
        nms_score: str | float = "mean",
        nms_record_classes: int = 8,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.duplicate_removal = duplicate_removal
        self.nms_mode = nms
        self.first_n = first_n
        self.nms_score = nms_score
        self.nms_record_classes = nms_record_classes
        #: per-class weights of the classifier's cross entropy in training (None: unweighted, as torchvision)
        self.class_weight: torch.Tensor | None = None
        #: weight of :meth:`grouping_loss` in training (0: off); targets then carry a ``groups`` id per object
        self.grouping_weight = 0.0

    def _box_features(self, features, proposals, image_shapes):
        x = self.box_roi_pool(features, proposals, image_shapes)
        if isinstance(self.box_head, RelationBoxHead):
            return self.box_head(x, proposals)
        return self.box_head(x)

    def forward(self, features, proposals, image_shapes, targets=None):  # noqa: D401
        grouping = self.training and self.grouping_weight > 0 and len(getattr(self.box_head, "relations", ())) > 0
        if self.training:
            proposals, matched, labels, regression_targets = self.select_training_samples(proposals, targets)
        if grouping:
            self.box_head.keep_weights = True
        box_features = self._box_features(features, proposals, image_shapes)
        class_logits, box_regression = self.box_predictor(box_features)
        if self.training:
            loss_classifier, loss_box_reg = fastrcnn_loss(class_logits, box_regression, labels, regression_targets)
            if self.class_weight is not None:
                loss_classifier = F.cross_entropy(class_logits, torch.cat(labels), weight=self.class_weight)
            losses = {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}
            if grouping:
                # hand the weights over and drop them: the model must stay deep-copyable between steps
                kept, self.box_head.kept_weights = self.box_head.kept_weights, []
                self.box_head.keep_weights = False
                losses["loss_grouping"] = self.grouping_weight * self.grouping_loss(kept, matched, labels, targets)
            if self.duplicate_removal is not None:
                losses["loss_duplicate"] = self.duplicate_loss(
                    box_features, class_logits, box_regression, proposals, image_shapes, targets
                )
            return [], losses
        return self.postprocess(box_features, class_logits, box_regression, proposals, image_shapes), {}

    @staticmethod
    def grouping_loss(
        weights: list[torch.Tensor], matched: list[torch.Tensor], labels: list[torch.Tensor], targets: list[dict]
    ) -> torch.Tensor:
        """Cross entropy between head 0 of the first relation module and "the other objects of my group".

        For each sampled RoI on an object whose group (``targets[i]['groups']``, e.g. its colour) holds
        other objects, the target row is uniform over the RoIs on those *other* objects (not on itself:
        its own overlapping proposals share its group too).  An auxiliary loss on the relation weights
        ω: it teaches one head what a comparison between objects looks at, and leaves the other heads
        free.  Rows without such objects (a group of one) have no target.
        """
        losses = []
        for w, gt, lab, target in zip(weights, matched, labels, targets, strict=True):
            positive = lab > 0
            obj = torch.where(positive, gt, -1 - torch.arange(len(gt), device=gt.device))  # background: unique
            group = torch.where(positive, target["groups"][gt], -1)
            same = (group[:, None] == group[None, :]) & positive[:, None] & (obj[:, None] != obj[None, :])
            rows = same.any(1)
            if not rows.any():
                continue
            goal = same[rows].float()
            goal = goal / goal.sum(1, keepdim=True)
            losses.append(-(goal * torch.log(w[0, rows].clamp_min(1e-9))).sum(1).mean())
        if not losses:
            return weights[0].sum() * 0.0 if weights else torch.zeros(())
        return torch.stack(losses).mean()

    def duplicate_loss(self, box_features, class_logits, box_regression, proposals, image_shapes, targets):
        """Binary cross-entropy of the final scores s0 · s1 against duplicate-removal targets (paper §4.3).

        For each ground-truth class of an image, its top ``first_n`` detections by s0 (over the sampled
        RoIs); for IoU threshold t, the highest-ranked detection with IoU ≥ t to a ground-truth box is its
        one positive, every other detection a negative (the official ``nms_multi_target``).  s0 and the
        boxes carry no gradient (they are inputs to the module); the appearance features do.
        """
        dr = self.duplicate_removal
        sizes = [len(p) for p in proposals]
        pred_boxes = self.box_coder.decode(box_regression.detach(), proposals).split(sizes)
        pred_scores = F.softmax(class_logits.detach(), -1).split(sizes)
        thresholds = torch.tensor(dr.iou_thresholds, device=class_logits.device)
        losses = []
        for boxes, scores, feats, shape, target in zip(
            pred_boxes, pred_scores, box_features.split(sizes), image_shapes, targets, strict=True
        ):
            boxes = box_ops.clip_boxes_to_image(boxes, shape)
            classes = target["labels"].unique()
            classes = classes[classes > 0]
            if len(classes) == 0 or len(scores) == 0:
                continue
            first = min(self.first_n, len(scores))
            s0, rows = scores[:, classes].t().topk(first, dim=1)  # (G, first)
            cls_boxes = boxes[rows, classes[:, None]]  # (G, first, 4)
            s1 = dr(feats[rows], cls_boxes, record=False)  # (G, first, T)
            goal = torch.stack(
                [
                    duplicate_targets(cls_boxes[g], target["boxes"][target["labels"] == c], thresholds)
                    for g, c in enumerate(classes.tolist())
                ]
            ).to(s1.dtype)
            final = (s0.unsqueeze(-1) * s1).clamp(1e-6, 1 - 1e-6)
            losses.append(F.binary_cross_entropy(final, goal))
        if not losses:
            return box_features.sum() * 0.0
        return torch.stack(losses).mean()

    def _final_scores(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        if self.nms_score == "mean":
            return s0 * s1.mean(-1)
        thresholds = self.duplicate_removal.iou_thresholds
        best = min(range(len(thresholds)), key=lambda i: abs(thresholds[i] - float(self.nms_score)))
        return s0 * s1[..., best]

    def postprocess(self, box_features, class_logits, box_regression, proposals, image_shapes):
        sizes = [len(p) for p in proposals]
        pred_boxes = self.box_coder.decode(box_regression, proposals).split(sizes)
        pred_scores = F.softmax(class_logits, -1).split(sizes)
        feats = box_features.split(sizes)
        results = []
        for boxes, scores, feat, shape in zip(pred_boxes, pred_scores, feats, image_shapes, strict=True):
            boxes = box_ops.clip_boxes_to_image(boxes, shape)[:, 1:]  # (N, C−1, 4), background dropped
            scores = scores[:, 1:]
            n, c = scores.shape
            labels = torch.arange(1, c + 1, device=scores.device).expand(n, c)
            rows = torch.arange(n, device=scores.device)[:, None].expand(n, c)
            if self.duplicate_removal is not None and self.nms_mode == "learned" and n > 0:
                results.append(self._learned(boxes, scores, feat))
                continue
            boxes, scores = boxes.reshape(-1, 4), scores.reshape(-1)
            labels, rows = labels.reshape(-1), rows.reshape(-1)
            keep = torch.where(scores > self.score_thresh)[0]
            keep = keep[box_ops.remove_small_boxes(boxes[keep], min_size=1e-2)]
            keep = keep[box_ops.batched_nms(boxes[keep], scores[keep], labels[keep], self.nms_thresh)]
            keep = keep[: self.detections_per_img]
            results.append(
                {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep], "proposal": rows[keep]}
            )
        return results

    def _learned(self, boxes: torch.Tensor, scores: torch.Tensor, feat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Duplicate removal per class over its top ``first_n`` (paper §4.3)."""
        dr = self.duplicate_removal
        n, c = scores.shape
        first = min(self.first_n, n)
        s0, rows = scores.t().topk(first, dim=1)  # (C−1, first), sorted by descending score
        cls_boxes = boxes.permute(1, 0, 2).gather(1, rows[..., None].expand(-1, -1, 4))
        cls_feats = feat[rows]  # (C−1, first, d)
        s1 = dr(cls_feats, cls_boxes, record=False)  # rows already in rank order; recorded below
        final = self._final_scores(s0, s1)  # (C−1, first)
        labels = torch.arange(1, c + 1, device=scores.device)[:, None].expand(c, first)
        flat = final.reshape(-1)
        keep = torch.where(flat > self.score_thresh)[0]
        keep = keep[box_ops.remove_small_boxes(cls_boxes.reshape(-1, 4)[keep], min_size=1e-2)]
        keep = keep[flat[keep].argsort(descending=True)][: self.detections_per_img]
        cls_of, rank_of = keep // first, keep % first
        out = {
            "boxes": cls_boxes[cls_of, rank_of],
            "scores": flat[keep],
            "labels": labels[cls_of, rank_of],
            "proposal": rows[cls_of, rank_of],
        }
        rec = active_recorder()
        if rec is not None:
            out["nms_row"] = self._record_nms(rec, cls_of, rank_of, cls_feats, cls_boxes, s0, s1, rows, first)
        return out

    def _record_nms(self, rec, cls_of, rank_of, cls_feats, cls_boxes, s0, s1, rows, first) -> torch.Tensor:
        """Record the duplicate-removal relations of the classes with detections, as one block-diagonal
        (H, M, M) matrix over their candidates (M = classes × first_n; no relation crosses classes)."""
        dr = self.duplicate_removal
        order: list[int] = []
        for k in cls_of.tolist():  # classes by their best detection
            if k not in order:
                order.append(k)
        order = order[: self.nms_record_classes]
        nms_row = torch.full_like(cls_of, -1)
        if not order:
            return nms_row
        sel = torch.tensor(order, device=cls_of.device)
        g = len(order)
        x = dr.embed(cls_feats[sel])
        weight, geo, app = dr.relation.terms(x, cls_boxes[sel])  # (g, H, first, first)
        h = weight.shape[1]
        m = g * first

        def block(t: torch.Tensor) -> torch.Tensor:
            full = t.new_zeros(h, m, m)
            for i in range(g):
                full[:, i * first : (i + 1) * first, i * first : (i + 1) * first] = t[i]
            return full[None]

        rec.set("relation/nms/weight", block(weight))
        rec.set("relation/nms/geometry", block(geo))
        rec.set("relation/nms/appearance", block(app))
        rec.set("relation/nms/boxes", cls_boxes[sel].reshape(1, m, 4))
        rec.set("relation/nms/labels", (sel + 1)[:, None].expand(g, first).reshape(1, m))
        rec.set("relation/nms/rank", torch.arange(first, device=sel.device).repeat(g)[None])
        rec.set("relation/nms/scores", s0[sel].reshape(1, m))
        rec.set("relation/nms/keep", s1[sel].reshape(1, m, -1))
        rec.set("relation/nms/proposal", rows[sel].reshape(1, m))
        position = {k: i for i, k in enumerate(order)}
        for j, (k, r) in enumerate(zip(cls_of.tolist(), rank_of.tolist(), strict=True)):
            if k in position:
                nms_row[j] = position[k] * first + r
        return nms_row


def _faster_rcnn(cfg: dict[str, Any]) -> FasterRCNN:
    backbone = build_backbone(cfg)
    sizes = tuple((int(s),) for s in cfg["anchor_sizes"])
    anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
    return FasterRCNN(
        backbone,
        num_classes=int(cfg["num_classes"]),
        min_size=int(cfg["min_size"]),
        max_size=int(cfg["max_size"]),
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=int(cfg["rpn_pre_nms_top_n_train"]),
        rpn_post_nms_top_n_train=int(cfg["rpn_post_nms_top_n_train"]),
        rpn_pre_nms_top_n_test=int(cfg["rpn_pre_nms_top_n_test"]),
        rpn_post_nms_top_n_test=int(cfg["proposals"]),
        box_score_thresh=float(cfg["score_thresh"]),
        box_nms_thresh=float(cfg["nms_thresh"]),
        box_detections_per_img=int(cfg["detections_per_img"]),
        box_batch_size_per_image=int(cfg["box_batch_size_per_image"]),
    )


def _swap_roi_heads(
    model: FasterRCNN,
    box_roi_pool: nn.Module,
    box_head: nn.Module,
    representation: int,
    cfg: dict[str, Any],
    duplicate_removal: DuplicateRemoval | None,
) -> None:
    old = model.roi_heads
    model.roi_heads = RelationRoIHeads(
        box_roi_pool,
        box_head,
        FastRCNNPredictor(representation, int(cfg["num_classes"])),
        0.5,
        0.5,
        int(cfg["box_batch_size_per_image"]),
        0.25,
        None,
        old.score_thresh,
        old.nms_thresh,
        old.detections_per_img,
        duplicate_removal=duplicate_removal,
        nms=str(cfg["nms"]),
        first_n=int(cfg["first_n"]),
        nms_score=cfg["nms_score"],
        nms_record_classes=int(cfg["nms_record_classes"]),
    )


def _check(cfg: dict[str, Any]) -> None:
    if cfg["nms"] not in ("learned", "nms"):
        raise ValueError(f"nms must be 'learned' or 'nms', got {cfg['nms']!r}")
    if cfg["nms_score"] != "mean":
        float(cfg["nms_score"])


def build_relation_rcnn(config: dict[str, Any] | None = None) -> FasterRCNN:
    """Faster R-CNN R50-FPN with the 2fc+RM head and (optionally) duplicate removal; no weights."""
    cfg = {**DEFAULTS, **(config or {})}
    _check(cfg)
    model = _faster_rcnn(cfg)
    rep = int(cfg["representation"])
    pool = MultiScaleRoIAlign(["0", "1", "2", "3"], int(cfg["pool_size"]), sampling_ratio=2)
    head = RelationBoxHead(
        int(cfg["fpn_channels"]) * int(cfg["pool_size"]) ** 2,
        rep,
        int(cfg["relation_modules"]),
        int(cfg["heads"]),
        int(cfg["key_dim"]),
        int(cfg["geo_dim"]),
    )
    dr = None
    if cfg["duplicate_removal"]:
        dr = DuplicateRemoval(
            rep,
            int(cfg["nms_embed"]),
            int(cfg["nms_rank_dim"]),
            int(cfg["nms_key_dim"]),
            int(cfg["heads"]),
            int(cfg["geo_dim"]),
            tuple(cfg["iou_thresholds"]),
        )
    _swap_roi_heads(model, pool, head, rep, cfg, dr)
    return model


def build_regionfeat_rcnn(config: dict[str, Any] | None = None) -> FasterRCNN:
    """Faster R-CNN R50-FPN whose RoIAlign is replaced by learned region features; no weights."""
    cfg = {**DEFAULTS, **(config or {})}
    _check(cfg)
    cfg["nms"] = "nms"
    model = _faster_rcnn(cfg)
    parts, ch = int(cfg["parts"]), int(cfg["fpn_channels"])
    pool = RegionFeatureExtractor(
        ch, ch, parts, int(cfg["samples"]), float(cfg["enlarge"]), int(cfg["region_geo_dim"]), str(cfg["region_value"])
    )
    rep = int(cfg["representation"])
    head = TwoMLPHead(ch * parts * parts, rep)
    _swap_roi_heads(model, pool, head, rep, cfg, None)
    return model


def _drop_counters(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


def load_torchvision_body(model: nn.Module, state_dict: dict[str, torch.Tensor], head: bool = False) -> list[str]:
    """Load the ``backbone.*`` and ``rpn.*`` tensors of a torchvision Faster R-CNN state dict strictly.

    Every body key of the model must be in the state dict with its shape and vice versa (BatchNorm's
    ``num_batches_tracked`` counters aside: torchvision's trained body uses frozen batch norm, which has
    none).  With ``head=True`` the 2fc head and predictor (``roi_heads.box_head.fc6/fc7``,
    ``roi_heads.box_predictor.*``) load too, where present.  Returns the keys loaded.
    """
    prefixes = ("backbone.", "rpn.")
    if head:
        prefixes += ("roi_heads.box_head.fc6.", "roi_heads.box_head.fc7.", "roi_heads.box_predictor.")
    own = {k: v for k, v in _drop_counters(model.state_dict()).items() if k.startswith(prefixes)}
    given = {k: v for k, v in _drop_counters(state_dict).items() if k.startswith(prefixes)}
    if head:  # the head is optional in the file, the body is not
        own = {k: v for k, v in own.items() if k.startswith(("backbone.", "rpn.")) or k in given}
    missing = sorted(k for k in own if k not in given)
    unexpected = sorted(k for k in given if k not in own)
    mismatched = [
        (k, tuple(given[k].shape), tuple(v.shape))
        for k, v in own.items()
        if k in given and tuple(given[k].shape) != tuple(v.shape)
    ]
    report = FitReport(missing, unexpected, mismatched)
    if not report.ok:
        raise CheckpointError(f"the torchvision Faster R-CNN body does not fit: {report.describe()}")
    model.load_state_dict(OrderedDict(given), strict=False)
    return sorted(given)


def run_detector(
    model: FasterRCNN, image: torch.Tensor, min_size: int | None = None, max_size: int | None = None
) -> tuple[dict[str, torch.Tensor], tuple[int, int]]:
    """Detections of one (3, H, W) image in [0, 1] (boxes in its pixels), and the model input's (h, w).

    ``min_size``/``max_size`` override the transform's resize for this call (shorter / longer side).
    """
    transform = model.transform
    saved = transform.min_size, transform.max_size
    try:
        if min_size is not None:
            transform.min_size = (int(min_size),)
        if max_size is not None:
            transform.max_size = int(max_size)
        images, _ = transform([image])
    finally:
        transform.min_size, transform.max_size = saved
    features = model.backbone(images.tensors)
    proposals, _ = model.rpn(images, features)
    detections, _ = model.roi_heads(features, proposals, images.image_sizes)
    detections = transform.postprocess(detections, images.image_sizes, [tuple(image.shape[-2:])])
    return detections[0], tuple(images.image_sizes[0])
