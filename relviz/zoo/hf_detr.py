"""Hugging Face ``transformers`` DETR checkpoints, read without transformers.

A ``DetrForObjectDetection`` folder holds ``config.json`` and ``model.safetensors`` (or ``pytorch_model.bin``).
The architecture comes from ``config.json`` — the heads cannot be read from the weights — in either style:

- transformers 5: ``backbone_config`` with ``model_type`` ``timm_backbone`` (a timm ``backbone`` name and its
  ``output_stride``: 16 is DC5) or ``resnet`` (transformers' own ResNet: ``depths``, ``hidden_sizes``,
  ``layer_type``, ``embedding_size``);
- transformers 4: ``use_timm_backbone`` with ``backbone``, optional ``backbone_kwargs`` and ``dilation``.

The weights are renamed into relviz's (official facebookresearch/detr) layout by one table, applied to each
official key; q/k/v, three Linear layers in transformers, become one ``in_proj`` as in ``nn.MultiheadAttention``:

=============================================  ===========================================================
official (relviz)                              transformers (Hub files; transformers 5 in memory)
=============================================  ===========================================================
``backbone.0.body.*``                          ``model.backbone.conv_encoder.model.*`` (``model.backbone.model.*``)
  timm ResNet                                  the same names (conv1, bn1, layerS.B.convI, downsample.0/1)
  transformers' ResNet ``conv1``, ``bn1``      ``embedder.embedder.convolution``, ``….normalization``
  ``layerS.B.convI``, ``bnI``                  ``encoder.stages.S-1.layers.B.layer.I-1.convolution``, ``normalization``
  ``layerS.B.downsample.0``, ``.1``            ``encoder.stages.S-1.layers.B.shortcut.convolution``, ``normalization``
``backbone.1.row_embed``, ``col_embed``        ``model.backbone.position_embedding.row_embeddings``, ``column_…``
                                               (transformers 5: ``model.position_embedding.*``)
``input_proj``                                 ``model.input_projection``
``query_embed``                                ``model.query_position_embeddings``
``transformer.encoder.layers.N.``              ``model.encoder.layers.N.``
  ``self_attn.in_proj_{weight,bias}``          ``self_attn.{q,k,v}_proj.{weight,bias}`` (concatenated)
  ``self_attn.out_proj``                       ``self_attn.out_proj`` (``o_proj``)
  ``norm1``, ``norm2``                         ``self_attn_layer_norm``, ``final_layer_norm``
  ``linear1``, ``linear2``                     ``fc1``, ``fc2`` (``mlp.fc1``, ``mlp.fc2``)
``transformer.decoder.layers.N.``              ``model.decoder.layers.N.``
  ``multihead_attn``                           ``encoder_attn``
  ``norm1``, ``norm2``, ``norm3``              ``self_attn_layer_norm``, ``encoder_attn_layer_norm``,
                                               ``final_layer_norm``
``transformer.decoder.norm``                   ``model.decoder.layernorm``
``class_embed``                                ``class_labels_classifier``
``bbox_embed.layers.I``                        ``bbox_predictor.layers.I``
=============================================  ===========================================================

The numerics are the same model's: transformers' eager attention scales q·kᵀ after the product and the official
code scales q before it (a rounding difference); its ``pixel_mask`` (1 = real pixel) is the official padding
mask inverted, and the position embeddings and the mask's downsampling are the official ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch

from relviz.core.checkpoint import Checkpoint, FitReport
from relviz.core.errors import CheckpointError
from relviz.models.detr import RESNET_BLOCKS

#: torchvision ResNet widths ([stem, stage 1..4]) of each depth, to recognise a standard transformers ResNet
_STANDARD_WIDTHS = {18: [64, 64, 128, 256, 512], 34: [64, 64, 128, 256, 512], 50: [64, 256, 512, 1024, 2048],
                    101: [64, 256, 512, 1024, 2048], 152: [64, 256, 512, 1024, 2048]}
_TIMM_RESNETS = {f"resnet{d}": d for d in RESNET_BLOCKS}
_ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "silu": "silu", "swish": "silu"}
_SIGNATURE = ("model.query_position_embeddings.weight", "model.input_projection.weight",
              "class_labels_classifier.weight", "bbox_predictor.layers.0.weight")


@dataclass(frozen=True)
class Layout:
    """Where a transformers DETR keeps its tensors: Hub files (transformers 4 names) or transformers 5 in memory."""

    memory: bool  # transformers 5's in-memory names: backbone.conv_encoder → backbone, o_proj, mlp.fc1/fc2
    position_in_model: bool  # learned position embedding under model.position_embedding (transformers 5)
    timm: bool  # a timm ResNet (else transformers' own ResNet: embedder/encoder.stages)

    def describe(self) -> str:
        names = "transformers 5 in-memory names" if self.memory else "Hugging Face Hub file names"
        backbone = "timm ResNet" if self.timm else "transformers ResNet"
        return f"{names}, {backbone} backbone"


def looks_like_hf(state: dict[str, Any]) -> bool:
    return detect(state) >= 0.5


def detect(state: dict[str, Any]) -> float:
    """How sure (0..1) a state dict is a transformers DetrForObjectDetection, from its keys."""
    return sum(k in state for k in _SIGNATURE) / len(_SIGNATURE)


# -- config.json → relviz's DETR config -------------------------------------------------------------


def _field(cfg: dict[str, Any], key: str, kind: type, what: str, default: Any = None) -> Any:
    value = cfg.get(key, default)
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise CheckpointError(f"{what} gives {key} as {str(value)[:40]!r}; a DETR config.json gives it as "
                              f"{'a whole number' if kind is int else kind.__name__}")
    return value


def _timm_backbone(name: Any, output_stride: Any, out_indices: Any, what: str) -> dict[str, Any]:
    base = name.split(".")[0] if isinstance(name, str) else name  # a pretrained tag (resnet50.a1_in1k) is no concern
    if base not in _TIMM_RESNETS:
        raise CheckpointError(f"{what} asks for the timm backbone {str(name)[:40]!r}; relviz builds DETRs on timm's "
                              f"{', '.join(_TIMM_RESNETS)}")
    if output_stride not in (None, 16, 32):
        raise CheckpointError(f"{what} asks for output_stride {str(output_stride)[:20]}; relviz builds DETRs with "
                              "stride 32, or 16 (DC5)")
    _check_last_stage(out_indices, 4, what, "out_indices")
    return {"backbone_depth": _TIMM_RESNETS[base], "dilation": output_stride == 16}


def _check_last_stage(value: Any, last: Any, what: str, key: str) -> None:
    if value is None:
        return
    if not isinstance(value, (list, tuple)) or not value or value[-1] != last:
        raise CheckpointError(f"{what} gives {key} {str(value)[:40]}; DETR reads the last ResNet stage, so it must "
                              f"end with {last!r}")


def _hf_resnet_backbone(bc: dict[str, Any], what: str) -> dict[str, Any]:
    """transformers' ResNetConfig: its widths and depths, checked to be a plain ResNet that relviz builds."""
    depths = bc.get("depths", [3, 4, 6, 3])
    widths = bc.get("hidden_sizes", [256, 512, 1024, 2048])
    stem = bc.get("embedding_size", 64)
    layer_type = bc.get("layer_type", "bottleneck")
    lists_ok = all(isinstance(v, list) and len(v) == 4 and all(type(x) is int and x > 0 for x in v)
                   for v in (depths, widths))
    if not lists_ok or type(stem) is not int or stem <= 0:
        raise CheckpointError(f"{what} describes a ResNet backbone relviz cannot read: depths and hidden_sizes must "
                              "be four positive whole numbers and embedding_size one")
    if layer_type not in ("bottleneck", "basic"):
        raise CheckpointError(f"{what} gives layer_type {str(layer_type)[:30]!r}; ResNets have bottleneck or basic "
                              "layers")
    for key, default in (("downsample_in_first_stage", False), ("downsample_in_bottleneck", False)):
        if bc.get(key, default):
            raise CheckpointError(f"{what} sets {key}; relviz builds the ResNet of the DETR paper, which does not")
    if bc.get("hidden_act", "relu") != "relu" or bc.get("num_channels", 3) != 3:
        raise CheckpointError(f"{what} describes a ResNet with hidden_act {bc.get('hidden_act')!r} on "
                              f"{bc.get('num_channels')} channels; relviz builds ReLU ResNets on RGB images")
    _check_last_stage(bc.get("out_features"), "stage4", what, "out_features")
    _check_last_stage(bc.get("out_indices"), 4, what, "out_indices")
    bottleneck = layer_type == "bottleneck"
    full = [stem, *widths]
    for depth, blocks in RESNET_BLOCKS.items():
        if list(blocks) == depths and _STANDARD_WIDTHS[depth] == full and (depth >= 50) == bottleneck:
            return {"backbone_depth": depth, "dilation": False}
    return {"backbone_depth": 50 if bottleneck else 18, "dilation": False, "backbone_widths": full,
            "backbone_blocks": list(depths), "backbone_bottleneck": bottleneck}


def _backbone(cfg: dict[str, Any], what: str) -> tuple[dict[str, Any], bool]:
    """The backbone settings and whether it is timm's, from either config style."""
    dilation = bool(cfg.get("dilation") or False)
    bc = cfg.get("backbone_config")
    if isinstance(bc, dict):  # transformers 5 always; transformers 4 for its own ResNet
        kind = bc.get("model_type")
        if kind == "timm_backbone":
            stride = bc.get("output_stride", 16 if dilation else None)
            return _timm_backbone(bc.get("backbone"), stride, bc.get("out_indices"), what), True
        if kind == "resnet":  # transformers runs its own ResNet without dilation, whatever `dilation` says
            return _hf_resnet_backbone(bc, what), False
        raise CheckpointError(f"{what} describes a {str(kind)[:30]!r} backbone; relviz reads DETRs on a ResNet "
                              "(timm's or transformers')")
    if bc is not None:
        raise CheckpointError(f"{what} gives backbone_config as {type(bc).__name__}, not an object")
    if not cfg.get("use_timm_backbone", True):
        if cfg.get("backbone") not in (None, "resnet50"):
            raise CheckpointError(f"{what} names the backbone {str(cfg.get('backbone'))[:40]!r} without its config; "
                                  "relviz needs backbone_config to build it")
        return _hf_resnet_backbone({}, what), False  # transformers 4's default: its ResNet-50
    kwargs = cfg.get("backbone_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise CheckpointError(f"{what} gives backbone_kwargs as {type(kwargs).__name__}, not an object")
    if kwargs.get("in_chans", cfg.get("num_channels", 3)) != 3:
        raise CheckpointError(f"{what} asks for a backbone on {kwargs.get('in_chans')} channels; relviz runs RGB")
    stride = kwargs.get("output_stride", 16 if dilation else None)
    return _timm_backbone(cfg.get("backbone") or "resnet50", stride, kwargs.get("out_indices"), what), True


def _labels(cfg: dict[str, Any], what: str) -> list[str] | None:
    id2label = cfg.get("id2label")
    if id2label is None:
        return None
    if not isinstance(id2label, dict):
        raise CheckpointError(f"{what} gives id2label as {type(id2label).__name__}; it maps class ids to names")
    names: dict[int, str] = {}
    for key, name in id2label.items():
        if not (isinstance(key, str) and re.fullmatch(r"\d{1,6}", key)) or not isinstance(name, str):
            raise CheckpointError(f"{what} maps {str(key)[:20]!r} to {str(name)[:20]!r} in id2label; it maps class "
                                  "ids (0, 1, …) to names")
        names[int(key)] = name
    return [names.get(i, f"class {i}") for i in range(len(names))] if names else None


def architecture(cfg: dict[str, Any], what: str = "config.json") -> tuple[dict[str, Any], bool]:
    """relviz's DETR config from a transformers ``config.json``, and whether its backbone is timm's."""
    kind = cfg.get("model_type")
    if kind != "detr":
        raise CheckpointError(f"{what} describes a {str(kind)[:30]!r} model; relviz reads transformers DETRs "
                              "(model_type 'detr')")
    encoder_ffn = _field(cfg, "encoder_ffn_dim", int, what, 2048)
    decoder_ffn = _field(cfg, "decoder_ffn_dim", int, what, 2048)
    if encoder_ffn != decoder_ffn:
        raise CheckpointError(f"{what} gives encoder_ffn_dim {encoder_ffn} and decoder_ffn_dim {decoder_ffn}; relviz "
                              "builds DETRs with one feed-forward width")
    activation = cfg.get("activation_function", "relu")
    if activation not in _ACTIVATIONS:
        raise CheckpointError(f"{what} gives activation_function {str(activation)[:30]!r}; relviz runs "
                              f"{', '.join(_ACTIVATIONS)}")
    position = cfg.get("position_embedding_type", "sine")
    if position not in ("sine", "learned"):
        raise CheckpointError(f"{what} gives position_embedding_type {str(position)[:30]!r}; DETR's are sine and "
                              "learned")
    backbone, timm = _backbone(cfg, what)
    heads = _field(cfg, "encoder_attention_heads", int, what, 8)
    dec_heads = _field(cfg, "decoder_attention_heads", int, what, 8)
    config: dict[str, Any] = {
        **backbone,
        "hidden_dim": _field(cfg, "d_model", int, what, 256),
        "nheads": heads,
        "dec_nheads": 0 if dec_heads == heads else dec_heads,
        "enc_layers": _field(cfg, "encoder_layers", int, what, 6),
        "dec_layers": _field(cfg, "decoder_layers", int, what, 6),
        "dim_feedforward": encoder_ffn,
        "num_queries": _field(cfg, "num_queries", int, what, 100),
        "pre_norm": False,
        "position_embedding": position,
        "activation": _ACTIVATIONS[activation],
    }
    labels = _labels(cfg, what)
    if labels is not None:
        config["num_classes"] = len(labels)
        config["labels"] = labels
    return config, timm


# -- the key table ---------------------------------------------------------------------------------

_ENCODER = {"norm1": "self_attn_layer_norm", "norm2": "final_layer_norm"}
_DECODER = {"norm1": "self_attn_layer_norm", "norm2": "encoder_attn_layer_norm", "norm3": "final_layer_norm",
            "multihead_attn": "encoder_attn"}
_BODY = re.compile(r"layer(\d)\.(\d+)\.(?:(conv|bn)(\d)|downsample\.([01]))\.(\w+)$")


def _resnet_key(rest: str) -> str:
    """A torchvision/timm ResNet key (``layer1.0.conv1.weight``) as transformers' ResNetBackbone names it."""
    if rest.startswith(("conv1.", "bn1.")):
        part = "convolution" if rest.startswith("conv1.") else "normalization"
        return f"embedder.embedder.{part}.{rest.split('.', 1)[1]}"
    m = _BODY.match(rest)
    if m is None:
        return rest
    stage, block, kind, index, down, leaf = m.groups()
    prefix = f"encoder.stages.{int(stage) - 1}.layers.{block}"
    if down is not None:
        return f"{prefix}.shortcut.{'convolution' if down == '0' else 'normalization'}.{leaf}"
    return f"{prefix}.layer.{int(index) - 1}.{'convolution' if kind == 'conv' else 'normalization'}.{leaf}"


def hf_keys(key: str, layout: Layout) -> list[str]:
    """The transformers name(s) of one official key: three (q, k, v) for an ``in_proj``, else one."""
    if key.startswith("backbone.0.body."):
        rest = key[len("backbone.0.body."):]
        prefix = "model.backbone.model." if layout.memory else "model.backbone.conv_encoder.model."
        return [prefix + (rest if layout.timm else _resnet_key(rest))]
    if key.startswith("backbone.1."):
        table = {"row_embed": "row_embeddings", "col_embed": "column_embeddings"}
        name, leaf = key[len("backbone.1."):].split(".", 1)
        place = "model.position_embedding." if layout.position_in_model else "model.backbone.position_embedding."
        return [f"{place}{table.get(name, name)}.{leaf}"]
    fixed = {"input_proj.": "model.input_projection.", "query_embed.": "model.query_position_embeddings.",
             "class_embed.": "class_labels_classifier.", "bbox_embed.": "bbox_predictor.",
             "transformer.decoder.norm.": "model.decoder.layernorm."}
    for old, new in fixed.items():
        if key.startswith(old):
            return [new + key[len(old):]]
    m = re.match(r"transformer\.(encoder|decoder)\.layers\.(\d+)\.(\w+)\.(.+)$", key)
    if m is None:
        return [key]
    side, n, module, rest = m.groups()
    prefix = f"model.{side}.layers.{n}."
    if module in ("linear1", "linear2"):
        fc = "fc1" if module == "linear1" else "fc2"
        return [prefix + (f"mlp.{fc}." if layout.memory else f"{fc}.") + rest]
    module = (_ENCODER if side == "encoder" else _DECODER).get(module, module)
    if rest.startswith("in_proj_"):
        leaf = rest[len("in_proj_"):]
        return [f"{prefix}{module}.{p}_proj.{leaf}" for p in "qkv"]
    if rest.startswith("out_proj."):
        return [f"{prefix}{module}.{'o_proj' if layout.memory else 'out_proj'}.{rest[len('out_proj.'):]}"]
    return [f"{prefix}{module}.{rest}"]


def expected_shapes(official: dict[str, tuple[int, ...]], layout: Layout) -> dict[str, tuple[int, ...]]:
    """The transformers keys and shapes that hold a model whose official keys and shapes are ``official``."""
    expected: dict[str, tuple[int, ...]] = {}
    for key, shape in official.items():
        names = hf_keys(key, layout)
        part = (shape[0] // len(names), *shape[1:])
        for name in names:
            expected[name] = part
    return expected


def _layouts(timm: bool) -> list[Layout]:
    return [Layout(memory, in_model, timm) for memory in (False, True) for in_model in (False, True)]


def _best_layout(keys: set[str], official: dict[str, tuple[int, ...]], timm: bool) -> Layout:
    return max(_layouts(timm), key=lambda lay: len(keys & set(expected_shapes(official, lay))))


def fit_report(state: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]]) -> FitReport:
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [(k, tuple(state[k].shape), v) for k, v in expected.items()
                  if k in state and tuple(state[k].shape) != v]
    return FitReport(missing, unexpected, mismatched)


def to_official(state: dict[str, torch.Tensor], official: dict[str, tuple[int, ...]], timm: bool,
                what: str) -> tuple[dict[str, torch.Tensor], Layout]:
    """The state dict in relviz's layout, once every key and shape fits; else the fit report as one sentence.

    ``official`` holds the keys and shapes of the architecture config.json describes (built on the meta device).
    ``num_batches_tracked`` counters, which transformers drops on load as well, are passed over.
    """
    state = {k: v for k, v in state.items() if not k.endswith(".num_batches_tracked")}
    layout = _best_layout(set(state), official, timm)
    report = fit_report(state, expected_shapes(official, layout))
    if not report.ok:
        raise CheckpointError(f"{what} does not fit the DETR its config.json describes (it looks like "
                              f"{layout.describe()}): {report.describe()}")
    converted = {}
    for key in official:
        parts = [state[name] for name in hf_keys(key, layout)]
        converted[key] = parts[0] if len(parts) == 1 else torch.cat(parts)
    return converted, layout


def convert_checkpoint(ckpt: Checkpoint, official_of: Any, what: str) -> Checkpoint:
    """A transformers DETR checkpoint as an official one, its config.json's architecture in ``metadata``.

    ``official_of(config)`` checks an architecture and returns its official keys and shapes (the zoo's bounds
    and parameter estimate run there, before anything is built).
    """
    if ckpt.model_config is None:
        raise CheckpointError(f"{what} holds a Hugging Face DETR, but no config.json sits beside it; relviz reads "
                              "its heads, layers and classes from config.json: give the model's folder")
    folder = ckpt.path.parent.name if ckpt.path is not None else ""
    config_name = f"{folder}/config.json" if folder else "config.json"
    config, timm = architecture(ckpt.model_config, config_name)
    official = official_of(config, config_name)
    state, layout = to_official(ckpt.state_dict, official, timm, what)
    metadata = {**ckpt.metadata, "hf_detr": {"config": config, "layout": layout.describe(), "source": config_name}}
    return Checkpoint(state_dict=state, path=ckpt.path, sha256=ckpt.sha256, args={}, metadata=metadata,
                      model_config=ckpt.model_config)
