"""LR-Net in the zoo: ``lrnet-26`` and ``lrnet-50`` (no public checkpoint exists; relviz trains its own).

Trace (public contract):
- ``classification/logits`` (C,);
- per local relation layer (``stem``, ``res2.0`` … ``res5.2``): ``lrnet/<layer>/geometry`` (G,k,k),
  ``lrnet/<layer>/key`` (G,H,W) and ``lrnet/<layer>/query`` (G,H′,W′), the factors from which
  :func:`relviz.render.lrnet.pixel_kernels` computes one pixel's kernels; for small inputs (or
  ``--config full=true``) also ``lrnet/<layer>/appearance`` and ``lrnet/<layer>/weight`` (G,k·k,H′,W′);
  G = ⌈C/m⌉ is the number of aggregation groups;
- ``meta['lrnet']['layers'][<layer>]``: kernel size, stride, groups, composability and the layer's output
  ``grid`` (:class:`relviz.core.grid.Grid`); ``meta['grid']`` is the last layer's grid.
"""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import cv2
import numpy as np
import torch

from relviz.core import limits
from relviz.core.capture import Recorder, recording
from relviz.core.checkpoint import Checkpoint
from relviz.core.class_names import default_labels
from relviz.core.errors import BadInputError
from relviz.core.grid import Grid
from relviz.core.trace import Trace
from relviz.models.lrnet import LRNet, resolve_config
from relviz.zoo import Family, LoadedModel, ModelEntry, RunOptions, register_family, register_model
from relviz.zoo.inputs import IMAGENET_MEAN, IMAGENET_STD, check_model_input, normalise, shorter_side_size

#: traces of inputs up to this many model-input pixels keep every layer's full /appearance and /weight
FULL_CAPTURE_PIXELS = 160 * 160

_SIGNATURE = (
    "conv1.weight",
    "stem_lr.key.weight",
    "stem_lr.query.weight",
    "stem_lr.geometry.0.weight",
    "stem_lr.out.weight",
    "layer1.0.lr.key.weight",
    "layer1.0.lr.geometry.2.weight",
    "fc.weight",
)


def resize_shorter(image: np.ndarray, shorter: int | None) -> np.ndarray:
    """Resize the uint8 image so the shorter side is ``shorter`` pixels (aspect kept; 0 or None = as is).

    The target size is checked (:func:`relviz.zoo.inputs.check_model_input`) before anything is resized.
    """
    h, w = image.shape[:2]
    size = shorter_side_size(w, h, shorter)
    check_model_input((w, h), size, resize=shorter, base_limit=limits.MAX_DENSE_INPUT_PIXELS)
    if size == (w, h):
        return image
    interp = cv2.INTER_AREA if shorter < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interp)


def labels_for(config: dict[str, Any]) -> list[str]:
    n = int(config.get("num_classes", 0))
    given = config.get("labels")
    if isinstance(given, str):
        with contextlib.suppress(json.JSONDecodeError):
            given = json.loads(given)
    if isinstance(given, list) and len(given) >= n:
        return [str(v) for v in given[:n]]
    return default_labels(n)  # ImageNet-1k's names for a 1000-class model, else 'class i'


def config_from_args(args: dict[str, Any], known: set[str]) -> dict[str, Any]:
    """Config keys a training recipe stored beside the weights (safetensors metadata 'args')."""
    out = {}
    for key, value in (args or {}).items():
        if key in known or key == "labels":
            out[key] = value
    return out


def count_blocks(state: dict[str, torch.Tensor], stage: str) -> int:
    indices = {int(k.split(".")[1]) for k in state if k.startswith(f"{stage}.") and k.split(".")[1].isdigit()}
    return max(indices) + 1 if indices else 0


class LRNetFamily(Family):
    name = "lrnet"
    description = (
        "LR-Net (Hu et al. 2019): per-pixel k×k aggregation weights of each channel group, "
        "split into the geometry prior and the key/query appearance term"
    )
    input_kind = "image"

    def default_config(self) -> dict[str, Any]:
        return {}

    def build(self, config: dict[str, Any]) -> torch.nn.Module:
        return LRNet(config)

    def detect(self, state_dict: dict[str, torch.Tensor]) -> float:
        return sum(k in state_dict for k in _SIGNATURE) / len(_SIGNATURE)

    def config_from_checkpoint(self, ckpt: Checkpoint, overrides: dict[str, Any]) -> dict[str, Any]:
        state = ckpt.state_dict
        if "stem_lr.key.weight" not in state:
            raise BadInputError(
                f"{_name(ckpt)} is not an LR-Net checkpoint (it has no local relation stem, "
                f"stem_lr.*){_looks_like(state, self.name)}"
            )
        blocks = [count_blocks(state, f"layer{i}") for i in range(1, 5)]
        if not all(blocks):
            raise BadInputError(f"the checkpoint's LR-Net stages hold {blocks} blocks; each needs at least one")
        widths = [int(state[f"layer{i}.0.conv1.weight"].shape[0]) for i in range(1, 5)]
        outs = [int(state[f"layer{i}.0.conv3.weight"].shape[0]) for i in range(1, 5)]
        stem = int(state["conv1.weight"].shape[0])
        groups = int(state["stem_lr.key.weight"].shape[0])
        config: dict[str, Any] = {
            "blocks": blocks,
            "widths": widths,
            "outs": outs,
            "stem_width": stem,
            "m": math.ceil(stem / groups),
            "num_classes": int(state["fc.weight"].shape[0]),
        }
        known = set(resolve_config({}))
        config.update(config_from_args(ckpt.args, known - set(config)))
        config.update(overrides)
        return config

    def run(self, model: LoadedModel, inputs: list[np.ndarray], source: dict[str, Any], options: RunOptions) -> Trace:
        net: LRNet = model.module
        cfg = net.config
        image = inputs[0]
        height, width = image.shape[:2]
        shorter = options.resize if options.resize is not None else int(cfg.get("input_size", 224))
        resized = resize_shorter(image, shorter)
        x = normalise(resized)[None].to(model.device, model.dtype)
        full = options.extra.get("full", cfg.get("full"))
        if full is None:
            full = x.shape[-1] * x.shape[-2] <= FULL_CAPTURE_PIXELS
        net.set_capture_full(_truthy(full))
        recorder = Recorder() if options.capture else None
        with recording(recorder) if recorder is not None else contextlib.nullcontext():
            logits = net(x)
        if recorder is not None:
            trace = recorder.finish(0)
            layer_meta = trace.meta.pop("lrnet_layers", {})
        else:
            trace, layer_meta = Trace(), {}
        trace["classification/logits"] = logits[0].float().cpu().numpy()
        trace["input/image"] = image
        sx, sy = x.shape[-1] / width, x.shape[-2] / height
        for info in layer_meta.values():
            oh, ow = info["output_shape"]
            ih, iw = info["input_shape"]
            info["grid"] = Grid(int(oh), int(ow), float(info["output_stride"]), sx, sy).to_json()
            info["input_grid"] = Grid(int(ih), int(iw), float(info["input_stride"]), sx, sy).to_json()
        order = list(layer_meta)
        last = layer_meta[order[-1]]["grid"] if order else None
        trace.meta.update(
            family=self.name,
            input=source,
            preprocess={
                "resize": int(shorter or 0),
                "model_input": [int(x.shape[-1]), int(x.shape[-2])],
                "mean": IMAGENET_MEAN,
                "std": IMAGENET_STD,
            },
            lrnet={
                "layers": layer_meta,
                "order": order,
                "kernel_size": int(cfg["kernel_size"]),
                "m": int(cfg["m"]),
                "composability": cfg["composability"],
            },
            labels=labels_for(cfg),
            captured=options.capture,
        )
        if last is not None:
            trace.meta["grid"] = last
        return trace


def _name(ckpt: Checkpoint) -> str:
    return ckpt.path.name if ckpt.path is not None else "the checkpoint"


def _looks_like(state: dict[str, torch.Tensor], family: str) -> str:
    """' ; it looks like a X checkpoint' when another family recognises the keys."""
    from relviz.zoo import guess_family

    guess, score = guess_family(state)
    if guess and guess != family and score >= 0.5:
        return f"; it looks like a {guess} checkpoint (use --model with a {guess} model)"
    return ""


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes", "on")
    return bool(value)


register_family(LRNetFamily())
register_model(
    ModelEntry(
        "lrnet-26",
        "lrnet",
        "LR-Net-26 (7×7, m=8; paper: 14.7 M parameters, 2.6 GFLOPs)",
        {"preset": "lrnet-26"},
    )
)
register_model(
    ModelEntry(
        "lrnet-50",
        "lrnet",
        "LR-Net-50 (7×7, m=8; paper: 23.3 M parameters, 4.3 GFLOPs)",
        {"preset": "lrnet-50"},
    )
)
