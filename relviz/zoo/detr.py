"""The DETR family: official checkpoints in, traces out.

Preprocessing is the official evaluation transform: the shorter side resized to 800 (PIL bilinear)
with the longer side at most 1333, then ImageNet mean/std.  ``--resize N`` sets the shorter side (the
cap scales with it); ``--resize 0`` feeds the image at its own size.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import asdict, fields
from typing import Any

import numpy as np
import torch
from PIL import Image

from relviz.core.capture import Recorder, recording
from relviz.core.checkpoint import Checkpoint
from relviz.core.errors import BadInputError, CheckpointError
from relviz.core.grid import Grid
from relviz.core.trace import Trace
from relviz.models.coco import COCO_CLASSES
from relviz.models.detr import DETR, RESNET_BLOCKS, DETRConfig, postprocess
from relviz.zoo import (
    Family,
    LoadedModel,
    ModelEntry,
    RunOptions,
    check_config,
    hf_detr,
    register_family,
    register_model,
)
from relviz.zoo.inputs import IMAGENET_MEAN, IMAGENET_STD, check_model_input, normalise

DEFAULT_SHORTER, DEFAULT_LONGER = 800, 1333
_SIGNATURE = (
    "query_embed.weight",
    "class_embed.weight",
    "bbox_embed.layers.0.weight",
    "input_proj.weight",
    "transformer.decoder.layers.0.multihead_attn.in_proj_weight",
    "backbone.0.body.conv1.weight",
)


def resized_size(width: int, height: int, shorter: int, longer: int | None) -> tuple[int, int]:
    """(width, height) after the official ``RandomResize([shorter], max_size=longer)``."""
    if longer is not None:
        lo, hi = float(min(width, height)), float(max(width, height))
        if hi / lo * shorter > longer:
            shorter = int(round(longer * lo / hi))
    if (width <= height and width == shorter) or (height <= width and height == shorter):
        return width, height
    if width < height:
        return shorter, int(shorter * height / width)
    return int(shorter * width / height), shorter


def preprocess(image: np.ndarray, shorter: int = DEFAULT_SHORTER) -> torch.Tensor:
    """(H, W, 3) uint8 RGB → normalised (3, h, w) float tensor; ``shorter=0`` keeps the size.

    The target size is checked before anything is resized, and the uint8 image is resized before the
    float conversion, so a large input never exists as floats.
    """
    height, width = image.shape[:2]
    w, h = width, height
    if shorter and min(width, height) > 0:
        longer = round(shorter * DEFAULT_LONGER / DEFAULT_SHORTER)
        w, h = resized_size(width, height, shorter, longer)
    check_model_input((width, height), (w, h), resize=shorter)
    if (w, h) != (width, height):
        image = np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))
    return normalise(image)


def _count_layers(state: dict[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    found = {int(m.group(1)) for k in state if (m := pattern.match(k))}
    return max(found) + 1 if found else 0


def infer_config(state: dict[str, torch.Tensor], args: dict[str, Any]) -> dict[str, Any]:
    """The architecture of a DETR state dict; heads and dilation from ``args`` when it has them."""
    missing = [k for k in _SIGNATURE if k not in state]
    if missing:
        raise CheckpointError(f"not a DETR state dict: missing {', '.join(missing)}")
    blocks = tuple(_count_layers(state, f"backbone.0.body.layer{i}") for i in range(1, 5))
    bottleneck = "backbone.0.body.layer1.0.conv3.weight" in state
    depths = [d for d, b in RESNET_BLOCKS.items() if b == blocks and (d >= 50) == bottleneck]
    if not depths:
        raise CheckpointError(f"DETR backbone with {blocks} blocks per stage is not a ResNet-18/34/50/101/152")
    config: dict[str, Any] = {
        "backbone_depth": depths[0],
        "hidden_dim": int(state["input_proj.weight"].shape[0]),
        "enc_layers": _count_layers(state, "transformer.encoder.layers"),
        "dec_layers": _count_layers(state, "transformer.decoder.layers"),
        "dim_feedforward": int(state["transformer.decoder.layers.0.linear1.weight"].shape[0]),
        "num_queries": int(state["query_embed.weight"].shape[0]),
        "num_classes": int(state["class_embed.weight"].shape[0]) - 1,
        "pre_norm": "transformer.encoder.norm.weight" in state,
        "position_embedding": "learned" if "backbone.1.row_embed.weight" in state else "sine",
    }
    for key in ("nheads", "dilation"):
        if key in args and args[key] is not None:
            config[key] = args[key]  # as given: the zoo checks every setting's type and range (relviz.zoo.bounds)
    return config


class DETRFamily(Family):
    name = "detr"
    description = "DETR (Carion et al. 2020): encoder self-attention, decoder self- and cross-attention"
    input_kind = "image"

    def default_config(self) -> dict[str, Any]:
        return {**asdict(DETRConfig()), "resize": DEFAULT_SHORTER}

    def build(self, config: dict[str, Any]) -> torch.nn.Module:
        names = {f.name for f in fields(DETRConfig)}
        return DETR(DETRConfig(**{k: v for k, v in config.items() if k in names}))

    def detect(self, state_dict: dict[str, torch.Tensor]) -> float:
        official = sum(k in state_dict for k in _SIGNATURE) / len(_SIGNATURE)
        return max(official, hf_detr.detect(state_dict))

    def prepare_checkpoint(self, ckpt: Checkpoint, name: str) -> Checkpoint:
        """A Hugging Face DETR (its keys, its config.json) in the official layout; an official one unchanged."""
        if not hf_detr.looks_like_hf(ckpt.state_dict):
            return ckpt

        def official_shapes(config: dict[str, Any], source: str) -> dict[str, tuple[int, ...]]:
            config = {**self.default_config(), **config}
            if "num_classes" not in config or "labels" not in config:
                classifier = ckpt.state_dict.get("class_labels_classifier.weight")
                if classifier is not None and classifier.dim() == 2:
                    config["num_classes"] = int(classifier.shape[0]) - 1
            meta = check_config(self, config, lambda key: f"read from {source}", f"the architecture {source} declares")
            return {k: tuple(v.shape) for k, v in meta.state_dict().items()}

        return hf_detr.convert_checkpoint(ckpt, official_shapes, name)

    def config_from_checkpoint(self, ckpt: Checkpoint, overrides: dict[str, Any]) -> dict[str, Any]:
        hf = ckpt.metadata.get("hf_detr")
        if hf is not None:  # the architecture config.json declares, checked and fitted already
            config = {**hf["config"], "num_classes": int(ckpt.state_dict["class_embed.weight"].shape[0]) - 1}
            where = f"{hf['source']} says"
        else:
            config = infer_config(ckpt.state_dict, ckpt.args)
            where = "the checkpoint's args say"
        for key in ("nheads", "dilation"):
            if key in overrides and key in config and overrides[key] != config[key]:
                raise BadInputError(f"{where} {key}={config[key]}, but {key}={overrides[key]} was asked for")
        return {**config, **overrides}  # heads that do not divide the width are refused by relviz.zoo.bounds

    def labels(self, config: dict[str, Any]) -> list[str]:
        n = int(config.get("num_classes", 91))
        given = config.get("labels")
        if given and len(given) >= n:
            return list(given[:n])
        if n == 91:
            return list(COCO_CLASSES)
        return [f"class {i}" for i in range(n)]

    def run(self, model: LoadedModel, inputs: list[np.ndarray], source: dict[str, Any],
            options: RunOptions) -> Trace:
        image = inputs[0]
        height, width = image.shape[:2]
        shorter = options.resize if options.resize is not None else model.config.get("resize", DEFAULT_SHORTER)
        x = preprocess(image, shorter)[None].to(model.device, model.dtype)
        recorder = Recorder() if options.capture else None
        with recording(recorder) if recorder is not None else contextlib.nullcontext():
            out = model.module(x)
        logits, boxes = out["pred_logits"][0], out["pred_boxes"][0]
        scores, labels, xyxy = postprocess(logits, boxes, width, height)
        keep = torch.nonzero(scores > options.threshold).flatten()
        keep = keep[scores[keep].argsort(descending=True)]

        trace = recorder.finish(0) if recorder is not None else Trace()
        trace["detr/pred_logits"] = logits.float().cpu().numpy()
        trace["detr/pred_boxes"] = boxes.float().cpu().numpy()
        trace["detections/boxes"] = xyxy[keep].cpu().numpy().astype(np.float32)
        trace["detections/scores"] = scores[keep].cpu().numpy().astype(np.float32)
        trace["detections/labels"] = labels[keep].cpu().numpy().astype(np.int64)
        trace["detections/query"] = keep.cpu().numpy().astype(np.int64)
        trace["input/image"] = image
        fh, fw = out["mask"].shape[-2:]
        stride = 16 if model.config.get("dilation") else 32
        grid = Grid(int(fh), int(fw), float(stride), x.shape[-1] / width, x.shape[-2] / height)
        trace.meta.update(
            family=self.name,
            input=source,
            preprocess={"resize": int(shorter or 0), "model_input": [int(x.shape[-1]), int(x.shape[-2])],
                        "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
            grid=grid.to_json(),
            labels=self.labels(model.config),
            threshold=float(options.threshold),
            heads=int(model.config["nheads"]),
            captured=options.capture,
        )
        return trace


register_family(DETRFamily())
for _name, _depth, _dc5, _what in (
    ("detr-r50", 50, False, "DETR ResNet-50 (official architecture)"),
    ("detr-r50-dc5", 50, True, "DETR ResNet-50 DC5 (official architecture)"),
    ("detr-r101", 101, False, "DETR ResNet-101 (official architecture)"),
    ("detr-r101-dc5", 101, True, "DETR ResNet-101 DC5 (official architecture)"),
):
    register_model(ModelEntry(_name, "detr", _what, {"backbone_depth": _depth, "dilation": _dc5}))
