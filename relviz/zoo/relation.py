"""The Relation Networks and Learning Region Features families: Faster R-CNN R50-FPN detectors.

Trace contract (README, DESIGN §3), all boxes and positions in the original image's pixels:

- ``detections/boxes`` (N, 4) xyxy, ``detections/scores`` (N,), ``detections/labels`` (N,) (class ids
  into ``meta['labels']``), sorted by score; ``detections/proposal`` (N,) the proposal each came from.
- relation family: ``relation/fc1|fc2/{weight,geometry,appearance}`` (H, P, P) over the P test
  proposals (rows receiving, columns contributing) with ``relation/fc1|fc2/boxes`` (P, 4) — row
  ``detections/proposal[i]`` is detection i; with learned duplicate removal ``relation/nms/…``
  (H, M, M) block-diagonal over the top-``first_n`` candidates of the classes with detections, with
  ``boxes``, ``labels``, ``rank``, ``scores`` (s0), ``keep`` (s1 per IoU threshold), ``proposal``, and
  ``detections/nms_row`` (N,) (−1 where a class was not recorded).  ``relation/<module>/geometry_weight``
  (H, d_g) and ``geometry_bias`` (H,) hold W_G, from which the ``geometry`` view draws ω_G anywhere.
- regionfeat family: ``region/{weight,geometry,appearance}`` (R, K, P) and ``region/positions``
  (R, P, 2), ``region/boxes`` (R, 4) and ``region/proposal`` (R,) for the R proposals that became
  detections; ``detections/region_row`` (N,) maps detection i to its row.

``--weights none --config body=PATH`` puts a torchvision ``fasterrcnn_resnet50_fpn`` checkpoint's body
(``backbone.*``, ``rpn.*``, strictly) and its 2fc head and predictor under relviz's heads.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import cv2
import numpy as np
import torch

from relviz.core.capture import Recorder, recording
from relviz.core.checkpoint import Checkpoint, load_checkpoint
from relviz.core.errors import BadInputError, CheckpointError
from relviz.core.trace import Trace
from relviz.models.coco import COCO_CLASSES
from relviz.models.rcnn import (
    DEFAULTS,
    REGION_ONLY,
    RELATION_ONLY,
    build_regionfeat_rcnn,
    build_relation_rcnn,
    load_torchvision_body,
    run_detector,
)
from relviz.models.relation import GEOMETRY_CLAMP, OFFSET_CLAMP, POSITION_SCALE, WAVELENGTH
from relviz.zoo import Family, LoadedModel, ModelEntry, RunOptions, register_family, register_model
from relviz.zoo.inputs import IMAGENET_MEAN, IMAGENET_STD, check_model_input, detector_input_size, resize_uint8

_RELATION_KEY = "roi_heads.box_head.relations.0.geometry_fc.weight"
_DR_KEY = "roi_heads.duplicate_removal.logit.weight"
_REGION_KEY = "roi_heads.box_roi_pool.geometry_fc.weight"
_BODY_KEYS = (
    "backbone.body.conv1.weight",
    "backbone.fpn.inner_blocks.0.0.weight",
    "rpn.head.cls_logits.weight",
    "roi_heads.box_predictor.cls_score.weight",
)
_RESNET_BLOCKS = {(2, 2, 2, 2): "resnet18", (3, 4, 6, 3): "resnet34", (3, 4, 23, 3): "resnet101"}


def _count(state: dict[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    found = {int(m.group(1)) for k in state if (m := pattern.match(k))}
    return max(found) + 1 if found else 0


def _body_config(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    blocks = tuple(_count(state, f"backbone.body.layer{i}") for i in range(1, 5))
    bottleneck = "backbone.body.layer1.0.conv3.weight" in state
    if bottleneck:
        name = "resnet101" if blocks == (3, 4, 23, 3) else "resnet50"
    else:
        name = _RESNET_BLOCKS.get(blocks, "resnet18")
    return {
        "backbone": name,
        "norm": "batch" if "backbone.body.bn1.num_batches_tracked" in state else "frozen",
        "fpn_channels": int(state["backbone.fpn.inner_blocks.0.0.weight"].shape[0]),
        "num_classes": int(state["roi_heads.box_predictor.cls_score.weight"].shape[0]),
        "representation": int(state["roi_heads.box_head.fc6.weight"].shape[0]),
    }


class _RCNNFamily(Family):
    input_kind = "image"
    builder = staticmethod(build_relation_rcnn)
    signature = _RELATION_KEY
    excluded: frozenset[str] = REGION_ONLY

    def default_config(self) -> dict[str, Any]:
        return {k: v for k, v in DEFAULTS.items() if k not in self.excluded}

    def supported_precisions(self, device: torch.device) -> list[str]:
        """fp32 on the CPU and MPS; fp32 and fp16 on CUDA: torchvision's NMS and RoIAlign kernels have no bf16
        (nor, on the CPU, fp16) version, so the detector would fail halfway through a run."""
        if device.type == "cuda":
            return [p for p in super().supported_precisions(device) if p in ("fp32", "fp16")]
        return ["fp32"]

    def build(self, config: dict[str, Any]) -> torch.nn.Module:
        config = self._normalise(config)
        try:
            model = self.builder(config)
        except (ValueError, TypeError) as exc:
            raise BadInputError(f"{self.name} configuration: {exc}") from None
        body = config.get("body")
        if body and not next(model.parameters()).is_meta:
            ckpt = load_checkpoint(body)
            load_torchvision_body(model, ckpt.state_dict, head=bool(config.get("body_head", True)))
        return model

    def _normalise(self, config: dict[str, Any]) -> dict[str, Any]:
        config = dict(config)
        if "nheads" in config:  # --heads
            config["heads"] = config.pop("nheads")
        known = set(self.default_config()) | {"body", "body_head", "labels", "resize"}
        unknown = sorted(set(config) - known)
        if unknown:
            raise BadInputError(
                f"unknown setting {unknown[0]!r} for {self.name} models; settings: {', '.join(sorted(known))}"
            )
        return config

    def detect(self, state_dict: dict[str, torch.Tensor]) -> float:
        if self.signature in state_dict:
            return 1.0
        if all(k in state_dict for k in _BODY_KEYS):
            return 0.3  # a Faster R-CNN, but not this head
        return 0.0

    def _head_config(self, state: dict[str, torch.Tensor], args: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def config_from_checkpoint(self, ckpt: Checkpoint, overrides: dict[str, Any]) -> dict[str, Any]:
        state = ckpt.state_dict
        if not all(k in state for k in _BODY_KEYS):
            raise CheckpointError(
                "not a Faster R-CNN state dict (it lacks backbone.body, backbone.fpn, rpn.head "
                "or roi_heads.box_predictor)"
            )
        other = _REGION_KEY if self.signature == _RELATION_KEY else _RELATION_KEY
        if self.signature not in state:
            if other in state:
                kind = "region-feature" if other == _REGION_KEY else "relation"
                raise CheckpointError(
                    f"this checkpoint is a {kind} detector, not a {self.name} one; load it with "
                    f"--model {'regionfeat' if other == _REGION_KEY else 'relation'}-rcnn-r50-fpn or without --model"
                )
            raise CheckpointError(
                f"this is a plain Faster R-CNN checkpoint without {self.name} layers; to use its "
                "body, run --weights none --config body=PATH"
            )
        known = set(self.default_config()) | {"labels"}
        config = {k: v for k, v in (ckpt.args or {}).items() if k in known}
        config.update(_body_config(state))
        config.update(self._head_config(state, ckpt.args or {}))
        return self._normalise({**config, **overrides})

    def labels(self, config: dict[str, Any]) -> list[str]:
        n = int(config.get("num_classes", 91))
        given = config.get("labels")
        if given and len(given) >= n:
            return [str(v) for v in given[:n]]
        if n == 91:
            return list(COCO_CLASSES)
        return ["background"] + [f"class {i}" for i in range(1, n)]

    # -- running -------------------------------------------------------------------------------------
    def run(self, model: LoadedModel, inputs: list[np.ndarray], source: dict[str, Any], options: RunOptions) -> Trace:
        image = inputs[0]
        height, width = image.shape[:2]
        cfg = model.config
        min_size, max_size = int(cfg.get("min_size", 800)), int(cfg.get("max_size", 1333))
        if options.resize is not None:
            if options.resize == 0:  # the image at its own size
                min_size, max_size = min(height, width), max(height, width)
            else:
                max_size = max(int(round(options.resize * max_size / min_size)), 1)
                min_size = int(options.resize)
        # torchvision's transform would resize a float copy of the whole image: resize the uint8 image to
        # the size it would pick (checked first), and let the transform find nothing left to resize
        target = detector_input_size(width, height, min_size, max_size)
        check_model_input((width, height), target, resize=options.resize)
        resized = resize_uint8(image, target, shrink=cv2.INTER_LINEAR)
        x = torch.from_numpy(np.array(resized, copy=True)).permute(2, 0, 1).to(model.device, model.dtype) / 255.0
        recorder = Recorder() if options.capture else None
        module = model.module
        extra = options.extra or {}
        saved = _apply_runtime(module, extra)
        try:
            with recording(recorder) if recorder is not None else contextlib.nullcontext():
                det, (in_h, in_w) = run_detector(module, x, min(target), max(target))
        finally:
            _restore_runtime(module, saved)
        keep = torch.nonzero(det["scores"] > options.threshold).flatten()
        keep = keep[det["scores"][keep].argsort(descending=True)]
        trace = recorder.finish(0) if recorder is not None else Trace()
        sx, sy = width / in_w, height / in_h
        _rescale(trace, sx, sy)
        trace["detections/boxes"] = det["boxes"][keep].float().cpu().numpy() * np.array([sx, sy, sx, sy], np.float32)
        trace["detections/scores"] = det["scores"][keep].float().cpu().numpy()
        trace["detections/labels"] = det["labels"][keep].cpu().numpy().astype(np.int64)
        trace["detections/proposal"] = det["proposal"][keep].cpu().numpy().astype(np.int64)
        if "nms_row" in det:
            trace["detections/nms_row"] = det["nms_row"][keep].cpu().numpy().astype(np.int64)
        trace["input/image"] = image
        self._finish(module, trace)
        trace.meta.update(
            family=self.name,
            input=source,
            preprocess={
                "min_size": min_size,
                "max_size": max_size,
                "model_input": [int(in_w), int(in_h)],
                "scale": [in_w / width, in_h / height],
                "mean": IMAGENET_MEAN,
                "std": IMAGENET_STD,
            },
            labels=self.labels(cfg),
            threshold=float(options.threshold),
            captured=options.capture,
        )
        return trace

    def _finish(self, module: torch.nn.Module, trace: Trace) -> None:
        pass


def _apply_runtime(module: torch.nn.Module, extra: dict[str, Any]) -> dict[str, Any]:
    """Inference-time switches that need no rebuild (``nms``, ``score_thresh``): set, return the old."""
    heads = module.roi_heads
    saved = {"nms_mode": getattr(heads, "nms_mode", None), "score_thresh": heads.score_thresh}
    if "nms" in extra:
        if extra["nms"] not in ("learned", "nms"):
            raise BadInputError(f"nms must be 'learned' or 'nms', got {extra['nms']!r}")
        heads.nms_mode = extra["nms"]
    return saved


def _restore_runtime(module: torch.nn.Module, saved: dict[str, Any]) -> None:
    heads = module.roi_heads
    if saved["nms_mode"] is not None:
        heads.nms_mode = saved["nms_mode"]
    heads.score_thresh = saved["score_thresh"]


def _rescale(trace: Trace, sx: float, sy: float) -> None:
    """Recorded boxes and positions from the model input's pixels to the original image's."""
    box_scale = np.array([sx, sy, sx, sy], np.float32)
    for name in list(trace.arrays):
        if name.endswith("/boxes") and name.startswith(("relation/", "region/")):
            trace[name] = trace[name] * box_scale
    if "region/positions" in trace:
        trace["region/positions"] = trace["region/positions"] * np.array([sx, sy], np.float32)


class RelationFamily(_RCNNFamily):
    name = "relation"
    description = (
        "Relation Networks (Hu et al. 2018): Faster R-CNN R50-FPN with 2fc+RM head and duplicate "
        "removal; per-head ω, ω_G, ω_A between objects"
    )
    builder = staticmethod(build_relation_rcnn)
    signature = _RELATION_KEY
    excluded = REGION_ONLY

    def _head_config(self, state: dict[str, torch.Tensor], args: dict[str, Any]) -> dict[str, Any]:
        pre = "roi_heads.box_head.relations.0."
        cfg: dict[str, Any] = {
            "relation_modules": _count(state, "roi_heads.box_head.relations"),
            "heads": int(state[pre + "geometry_fc.weight"].shape[0]),
            "geo_dim": int(state[pre + "geometry_fc.weight"].shape[1]),
            "key_dim": int(state[pre + "query.weight"].shape[0]),
            "duplicate_removal": _DR_KEY in state,
        }
        in_features = int(state["roi_heads.box_head.fc6.weight"].shape[1])
        fpn = int(state["backbone.fpn.inner_blocks.0.0.weight"].shape[0])
        cfg["pool_size"] = int(round((in_features / fpn) ** 0.5))
        if cfg["duplicate_removal"]:
            dr = "roi_heads.duplicate_removal."
            cfg["nms_embed"] = int(state[dr + "rank_fc.weight"].shape[0])
            cfg["nms_rank_dim"] = int(state[dr + "rank_fc.weight"].shape[1])
            cfg["nms_key_dim"] = int(state[dr + "relation.query.weight"].shape[0])
            t = int(state[_DR_KEY].shape[0])
            thresholds = args.get("iou_thresholds") or DEFAULTS["iou_thresholds"]
            if len(thresholds) != t:
                raise CheckpointError(
                    f"the duplicate-removal module has {t} IoU thresholds; pass them with --config iou_thresholds=[...]"
                )
            cfg["iou_thresholds"] = list(thresholds)
        else:
            cfg["nms"] = "nms"
        return cfg

    def _finish(self, module: torch.nn.Module, trace: Trace) -> None:
        heads = module.roi_heads
        modules = {f"relation/fc{i + 1}": rm for i, rm in enumerate(heads.box_head.relations)}
        if heads.duplicate_removal is not None:
            modules["relation/nms"] = heads.duplicate_removal.relation
        for name, rm in modules.items():
            trace[f"{name}/geometry_weight"] = rm.geometry_fc.weight.detach().float().cpu().numpy()
            trace[f"{name}/geometry_bias"] = rm.geometry_fc.bias.detach().float().cpu().numpy()
        trace.meta["relation"] = {
            "modules": [n.split("/")[1] for n in modules if f"{n}/weight" in trace],
            "heads": int(heads.box_head.relations[0].heads) if len(heads.box_head.relations) else 0,
            "geo_dim": int(next(iter(modules.values())).geo_dim) if modules else 0,
            "wavelength": WAVELENGTH,
            "position_scale": POSITION_SCALE,
            "offset_clamp": OFFSET_CLAMP,
            "geometry_clamp": GEOMETRY_CLAMP,
            "nms": getattr(heads, "nms_mode", "nms") if heads.duplicate_removal is not None else "nms",
            "first_n": int(heads.first_n),
            "iou_thresholds": list(heads.duplicate_removal.iou_thresholds) if heads.duplicate_removal else [],
        }


class RegionFeatureFamily(_RCNNFamily):
    name = "regionfeat"
    description = (
        "Learning Region Features (Gu et al. 2018): Faster R-CNN R50-FPN whose RoIAlign is learned; "
        "part weights w_k = softmax(G_k + A_k) per box"
    )
    builder = staticmethod(build_regionfeat_rcnn)
    signature = _REGION_KEY
    excluded = RELATION_ONLY

    def _head_config(self, state: dict[str, torch.Tensor], args: dict[str, Any]) -> dict[str, Any]:
        g = state[_REGION_KEY]
        parts = int(round(g.shape[0] ** 0.5))
        return {
            "parts": parts,
            "region_geo_dim": int(g.shape[1]),
            "region_value": "shared" if state["roi_heads.box_roi_pool.value_weight"].shape[0] == 1 else "per_part",
        }

    def _finish(self, module: torch.nn.Module, trace: Trace) -> None:
        ext = module.roi_heads.box_roi_pool
        proposal = trace["detections/proposal"]
        rows, row_of = np.unique(proposal, return_inverse=True) if len(proposal) else (proposal, proposal)
        if "region/weight" in trace:
            for name in ("weight", "geometry", "appearance", "positions", "boxes"):
                trace[f"region/{name}"] = np.ascontiguousarray(trace[f"region/{name}"][rows])
            trace["region/proposal"] = rows.astype(np.int64)
        trace["detections/region_row"] = np.asarray(row_of, dtype=np.int64).reshape(-1)
        trace.meta["region"] = {
            "parts": int(ext.parts),
            "samples": int(ext.samples),
            "enlarge": float(ext.enlarge),
            "value": ext.value,
        }


register_family(RelationFamily())
register_family(RegionFeatureFamily())
register_model(
    ModelEntry(
        "relation-rcnn-r50-fpn",
        "relation",
        "Relation Networks: Faster R-CNN R50-FPN, 2fc+RM head, learned duplicate removal",
        {},
    )
)
register_model(
    ModelEntry(
        "regionfeat-rcnn-r50-fpn",
        "regionfeat",
        "Learning Region Features: Faster R-CNN R50-FPN with learned region features",
        {},
    )
)
