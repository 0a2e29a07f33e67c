"""Non-local networks in the zoo: ``nonlocal-r50`` (images), ``nonlocal-c2d-r50`` and ``nonlocal-i3d-r50`` (clips).

``nonlocal-i3d-r50`` is mmaction2's I3D ResNet-50 + non-local (``arch=i3d``, :mod:`relviz.models.i3d_nonlocal`);
its checkpoints, key layout and config text are read by :mod:`relviz.zoo.i3d`, and its trace also says which
of mmcv's modes ran and where that came from (``meta['nonlocal']['mode']``, ``['mode_from']``).

Trace (public contract):
- ``classification/logits`` (C,);
- per non-local block (named after the residual block it follows, e.g. ``res4.4``):
  ``nonlocal/<block>/attn`` (Tq·Hq·Wq, Tk·Hk·Wk), row i = query position i, normalised f/C(x) over the
  keys (kept as θ/φ factors for the two softmax forms, materialised on demand); for dot product and
  concatenation also ``nonlocal/<block>/pairwise``, the un-normalised f;
- ``meta['nonlocal']['blocks'][<block>]``: ``query_grid`` and ``key_grid`` (:class:`relviz.core.grid.Grid`,
  with frames and frame stride for clips), so a pixel of clip frame t maps to its query row and every key
  column maps back to frame pixels;
- ``input/image`` (the first frame) and, for clips, ``input/frames`` (T,H,W,3).
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch

from relviz.core import limits
from relviz.core.capture import Recorder, recording
from relviz.core.checkpoint import Checkpoint
from relviz.core.errors import BadInputError
from relviz.core.grid import Grid
from relviz.core.trace import FactoredAttention, Trace
from relviz.models.i3d_nonlocal import I3DNonLocalResNet, min_frames
from relviz.models.nonlocal_net import NonLocalResNet, resolve_config
from relviz.zoo import Family, LoadedModel, ModelEntry, RunOptions, i3d, register_family, register_model
from relviz.zoo.inputs import IMAGENET_MEAN, IMAGENET_STD, check_model_input, normalise, shorter_side_size
from relviz.zoo.lrnet import (
    _looks_like,
    _name,
    config_from_args,
    count_blocks,
    labels_for,
    resize_shorter,
)

_SIGNATURE_SUFFIXES = (".g.weight", ".w_z.weight", ".bn.weight")


class NonLocalFamily(Family):
    name = "nonlocal"
    description = (
        "Non-local networks (Wang et al. 2018): attention from a reference point over all positions "
        "(and frames), four instantiations"
    )
    # the family takes clips; an image model uses the first frame, a clip model repeats a still image
    input_kind = "clip"

    def default_config(self) -> dict[str, Any]:
        return {}

    def build(self, config: dict[str, Any]) -> torch.nn.Module:
        if config.get("arch") == "i3d":
            return I3DNonLocalResNet(config)
        return NonLocalResNet(config)

    def detect(self, state_dict: dict[str, torch.Tensor]) -> float:
        if i3d.is_mmaction_i3d(state_dict) or i3d.is_relviz_i3d(state_dict):
            return 1.0
        nl = [k for k in state_dict if k.startswith("nonlocal_blocks.")]
        if not nl:
            return 0.0
        score = 0.5 + 0.1 * sum(any(k.endswith(s) for k in nl) for s in _SIGNATURE_SUFFIXES)
        base = ("conv1.weight", "layer1.0.conv2.weight", "fc.weight")
        return min(1.0, score + 0.2 * sum(k in state_dict for k in base) / len(base))

    def config_from_checkpoint(self, ckpt: Checkpoint, overrides: dict[str, Any]) -> dict[str, Any]:
        state = ckpt.state_dict
        if i3d.is_mmaction_i3d(state) or i3d.is_relviz_i3d(state):
            return i3d.config_from_checkpoint(ckpt, overrides, _name(ckpt))
        if "layer1.0.conv2.weight" not in state or "conv1.weight" not in state:
            raise BadInputError(
                f"{_name(ckpt)} is not a non-local ResNet checkpoint (no layer1.0.conv2, "
                f"conv1){_looks_like(state, self.name)}"
            )
        blocks = [count_blocks(state, f"layer{i}") for i in range(1, 5)]
        widths = [int(state[f"layer{i}.0.conv1.weight"].shape[0]) for i in range(1, 5)]
        expansion = int(state["layer1.0.conv3.weight"].shape[0]) // widths[0]
        names = sorted({k.split(".")[1] for k in state if k.startswith("nonlocal_blocks.")})
        placement = [n.replace("_", ".") for n in names]
        config: dict[str, Any] = {
            "blocks": blocks,
            "widths": widths,
            "expansion": expansion,
            "stem_width": int(state["conv1.weight"].shape[0]),
            "nonlocal": placement,
            "num_classes": int(state["fc.weight"].shape[0]),
        }
        if names:
            first = f"nonlocal_blocks.{names[0]}"
            config["clip"] = state[f"{first}.g.weight"].dim() == 5
            if f"{first}.concat_theta" in state:
                config["instantiation"] = "concat"
            elif f"{first}.theta.weight" not in state:
                config["instantiation"] = "gaussian"
        # dot product and embedded Gaussian have the same weights: the recipe's args tell them apart
        args = config_from_args(ckpt.args, set(resolve_config({})))
        config.update({k: v for k, v in args.items() if k not in config})
        if (
            "instantiation" in overrides
            and "instantiation" in config
            and config["instantiation"] in ("gaussian", "concat")
            and overrides["instantiation"] != config["instantiation"]
        ):
            raise BadInputError(
                f"the checkpoint's weights are for the {config['instantiation']} instantiation; "
                f"instantiation={overrides['instantiation']} does not fit them"
            )
        config.update(overrides)
        return config

    def run(self, model: LoadedModel, inputs: list[np.ndarray], source: dict[str, Any], options: RunOptions) -> Trace:
        net: NonLocalResNet | I3DNonLocalResNet = model.module
        cfg = net.config
        is_i3d = isinstance(net, I3DNonLocalResNet)
        shorter = options.resize if options.resize is not None else int(cfg.get("input_size", 224))
        frames = list(inputs) if net.clip else inputs[:1]
        if net.clip and len(frames) == 1:
            frames = frames * int(options.clip_length or cfg.get("clip_length", 8))  # a still image as a clip
        if is_i3d and len(frames) < min_frames(cfg):
            raise BadInputError(f"the clip has {len(frames)} frames; this I3D model needs at least {min_frames(cfg)} "
                                "(its stem and the pool after res2 halve time three times): raise --clip-length")
        height, width = frames[0].shape[:2]
        if any(f.shape[:2] != (height, width) for f in frames):
            raise BadInputError("the clip's frames differ in size; relviz needs frames of one size")
        # the whole clip's model input is checked before any frame is resized
        check_model_input((width, height), shorter_side_size(width, height, shorter), len(frames), resize=shorter,
                          base_limit=limits.MAX_I3D_INPUT_PIXELS if is_i3d else limits.MAX_DENSE_INPUT_PIXELS)
        if is_i3d:
            tensors = [i3d.normalise_255(resize_shorter(f, shorter), cfg["mean"], cfg["std"]) for f in frames]
        else:
            tensors = [normalise(resize_shorter(f, shorter)) for f in frames]
        x = torch.stack(tensors, dim=1)[None] if net.clip else tensors[0][None]  # (1,3,T,H,W) or (1,3,H,W)
        x = x.to(model.device, model.dtype)
        recorder = Recorder() if options.capture else None
        with recording(recorder) if recorder is not None else contextlib.nullcontext():
            logits = net(x)
        if recorder is not None:
            trace = recorder.finish(0)
            block_meta = trace.meta.pop("nonlocal_blocks", {})
        else:
            trace, block_meta = Trace(), {}
        for name in list(trace.factored):  # (1 layer, 1 head, N, d) → (N, d): the tensor is (Nq, Nk)
            fa = trace.factored[name]
            trace[name] = FactoredAttention(fa.q[0, 0], fa.k[0, 0], fa.scale, None)
        trace["classification/logits"] = logits[0].float().cpu().numpy()
        trace["input/image"] = frames[0]
        if net.clip:
            trace["input/frames"] = np.stack(frames)
        sx, sy = x.shape[-1] / width, x.shape[-2] / height
        for info in block_meta.values():
            tq, hq, wq = info["query_shape"]
            tk, hk, wk = info["key_shape"]
            fs = int(info["frame_stride"])
            info["query_grid"] = Grid(hq, wq, float(info["query_stride"]), sx, sy, tq, fs).to_json()
            info["key_grid"] = Grid(hk, wk, float(info["key_stride"]), sx, sy, tk, fs).to_json()
        order = [n for n in net.nonlocal_after if n in block_meta]
        source = dict(source)
        if net.clip:
            start, step = int(source.get("frame", 0)), int(source.get("stride", 1) or 1)
            source["clip_length"] = len(frames)
            moving = source.get("kind") == "video" and not source.get("still")
            source["frame_indices"] = [start + i * step if moving else 0 for i in range(len(frames))]
        trace.meta.update(
            family=self.name,
            input=source,
            preprocess={
                "resize": int(shorter or 0),
                "model_input": [int(x.shape[-1]), int(x.shape[-2])],
                "mean": [v / 255 for v in cfg["mean"]] if is_i3d else IMAGENET_MEAN,
                "std": [v / 255 for v in cfg["std"]] if is_i3d else IMAGENET_STD,
            },
            labels=labels_for(cfg),
            captured=options.capture,
        )
        trace.meta["nonlocal"] = {
            "blocks": block_meta,
            "order": order,
            "instantiation": cfg["instantiation"],
            "clip": bool(net.clip),
            "frames": len(frames) if net.clip else 1,
        }
        if is_i3d:  # which of mmcv's forms ran, and who said so (embedded and dot product share their weights)
            trace.meta["nonlocal"].update(arch="i3d", mode=i3d.mode_name(cfg["instantiation"]),
                                          mode_from=cfg.get("mode_from", "the default"), scale=bool(cfg["scale"]))
        if order:
            trace.meta["grid"] = block_meta[order[-1]]["query_grid"]
        return trace


register_family(NonLocalFamily())
register_model(
    ModelEntry(
        "nonlocal-r50",
        "nonlocal",
        "ResNet-50 + 5 non-local blocks (res3: 2, res4: 3), images; embedded Gaussian",
        {"preset": "r50", "clip": False},
    )
)
register_model(
    ModelEntry(
        "nonlocal-c2d-r50",
        "nonlocal",
        "C2D ResNet-50 + 5 space-time non-local blocks, 8-frame clips; embedded Gaussian",
        {"preset": "r50", "clip": True},
    )
)
register_model(
    ModelEntry(
        "nonlocal-i3d-r50",
        "nonlocal",
        "mmaction2 I3D ResNet-50 + 5 space-time non-local blocks (Kinetics-400 configs), 32-frame clips",
        {"arch": "i3d"},
    )
)
