"""mmaction2's I3D non-local checkpoints: their key layout, the few config fields relviz reads, the config.

An mmaction2 (mmengine) checkpoint is ``{'meta': {..., 'cfg': <the config as Python text>, 'dataset_meta':
{...}}, 'state_dict': {'backbone.…', 'cls_head.fc_cls.…'}}`` (mmaction2 0.x wrote the text under
``meta['config']``).  relviz reads it with ``torch.load(weights_only=True)`` and never runs the config text:
:func:`config_fields` reads the few fields the weights cannot tell with strict patterns — the non-local
``mode`` (embedded Gaussian and dot product have the same weights), ``use_scale``, and the stem's temporal
strides — and ``--config`` overrides each of them.

Key mapping (mmaction2 → relviz, :func:`from_mmaction`): the ``backbone.`` prefix goes; ConvModule's
``X.conv``/``X.bn`` become ``X``/``bnK`` (stem ``conv1.conv``/``conv1.bn`` → ``conv1``/``bn1``, a block's
``convK.conv``/``convK.bn`` → ``convK``/``bnK``, ``downsample.conv``/``.bn`` → ``downsample.0``/``.1``);
``layerI.J.non_local_block`` → ``nonlocal_blocks.res{I+1}_J`` with ``g.0.conv`` → ``g``, ``theta.conv`` →
``theta``, ``phi.0.conv`` → ``phi`` (``g.conv``/``phi.conv`` without sub-sampling), ``conv_out.conv`` →
``w_z`` and ``conv_out.bn`` → ``bn``; ``cls_head.fc_cls`` → ``fc``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch

from relviz.core import limits
from relviz.core.checkpoint import Checkpoint
from relviz.core.errors import BadInputError
from relviz.models.i3d_nonlocal import DEFAULT_CONFIG, MMCV_MODES

_CONV_MODULE = re.compile(r"^(layer\d+\.\d+\.)(conv\d)\.(conv|bn)\.(.+)$")
_DOWNSAMPLE = re.compile(r"^(layer\d+\.\d+\.)downsample\.(conv|bn)\.(.+)$")
_NON_LOCAL = re.compile(r"^layer(\d+)\.(\d+)\.non_local_block\.(.+)$")
_NL_PARTS = (
    (re.compile(r"^g\.(?:0\.)?conv\.(.+)$"), "g"),
    (re.compile(r"^theta\.conv\.(.+)$"), "theta"),
    (re.compile(r"^phi\.(?:0\.)?conv\.(.+)$"), "phi"),
    (re.compile(r"^conv_out\.conv\.(.+)$"), "w_z"),
    (re.compile(r"^conv_out\.bn\.(.+)$"), "bn"),
)


def is_mmaction_i3d(state: dict[str, torch.Tensor]) -> bool:
    """Whether the keys are an mmaction2 ``Recognizer3D`` with a 3-D ResNet backbone and a linear head."""
    stem = state.get("backbone.conv1.conv.weight")
    return stem is not None and stem.dim() == 5 and "cls_head.fc_cls.weight" in state


def is_relviz_i3d(state: dict[str, torch.Tensor]) -> bool:
    """Whether the keys are relviz's I3D names (a checkpoint already mapped, or saved by relviz)."""
    stem = state.get("conv1.weight")
    return stem is not None and stem.dim() == 5 and "layer1.0.conv1.weight" in state and "fc.weight" in state


def _map_key(key: str) -> str:
    """One mmaction2 key in relviz's names; a key relviz does not know comes back as it is (then refused)."""
    if key.startswith("cls_head.fc_cls."):
        return "fc." + key[len("cls_head.fc_cls."):]
    if not key.startswith("backbone."):
        return key
    rest = key[len("backbone."):]
    if rest.startswith("conv1.conv."):
        return "conv1." + rest[len("conv1.conv."):]
    if rest.startswith("conv1.bn."):
        return "bn1." + rest[len("conv1.bn."):]
    if m := _CONV_MODULE.match(rest):
        prefix, conv, part, tail = m.groups()
        return f"{prefix}{conv}.{tail}" if part == "conv" else f"{prefix}bn{conv[-1]}.{tail}"
    if m := _DOWNSAMPLE.match(rest):
        prefix, part, tail = m.groups()
        return f"{prefix}downsample.{'0' if part == 'conv' else '1'}.{tail}"
    if m := _NON_LOCAL.match(rest):
        stage, block, tail = m.groups()
        for pattern, name in _NL_PARTS:
            if p := pattern.match(tail):
                return f"nonlocal_blocks.res{int(stage) + 1}_{block}.{name}.{p.group(1)}"
    return key


def from_mmaction(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """mmaction2's state dict in relviz's module names (see the module docstring for the mapping)."""
    return {_map_key(k): v for k, v in state.items()}


# -- the config text: a few fields, read with strict patterns, never executed --------------------------------


def _region(text: str, name: str) -> str | None:
    """The bracketed value of ``name=dict(...)`` or ``'name': {...}`` in ``text`` (brackets balanced), or None."""
    m = re.search(rf"""(?:\b{name}\s*=\s*dict\s*|['"]{name}['"]\s*:\s*)([({{])""", text)
    if m is None:
        return None
    depth, start = 0, m.start(1)
    for i in range(start, min(len(text), start + 100_000)):
        c = text[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return text[start:i + 1]
    return None


def _value(region: str, key: str, pattern: str) -> str | None:
    """The value of ``key=VALUE`` or ``'key': VALUE`` in ``region`` when it matches ``pattern``, else None."""
    m = re.search(rf"""(?:\b{key}\s*=\s*|['"]{key}['"]\s*:\s*)({pattern})(?=\s*[,)}}\n])""", region)
    return m.group(1) if m else None


def _numbers(region: str | None, key: str) -> list[float] | None:
    if region is None:
        return None
    raw = _value(region, key, r"\[[\d.,\s]+\]|\([\d.,\s]+\)")
    if raw is None:
        return None
    try:
        values = [float(v) for v in raw.strip("[]()").split(",") if v.strip()]
    except ValueError:
        return None
    return values if len(values) == 3 else None


def config_fields(text: str) -> dict[str, Any]:
    """What relviz reads of an mmaction2 config text: the non-local ``mode`` (as ``instantiation``),
    ``use_scale`` (``scale``), the stem's ``conv1_stride_t`` and ``pool1_stride_t``, ``with_pool2`` (``pool2``)
    and the data preprocessor's ``mean``/``std``.  Only literal values in the ``backbone``/``non_local_cfg``/
    ``data_preprocessor`` dicts are read; the text is never executed.  A ResNet3d backbone that leaves a
    field out gets mmaction2's (and mmcv's) default for it.
    """
    text = text[: limits.MAX_CONFIG_TEXT_CHARS]
    fields: dict[str, Any] = {}
    backbone = _region(text, "backbone")
    # an expanded config (mmengine's pretty_text) names the backbone's type: a field it leaves out has the
    # class's default; a config file that inherits (``_base_``) leaves out what its bases set: not read then
    expanded = backbone is not None and _value(backbone, "type", r"""['"]ResNet3d['"]""") is not None
    if backbone is not None:
        for key, default in (("conv1_stride_t", 1), ("pool1_stride_t", 1)):
            raw = _value(backbone, key, r"\d+")
            if raw is not None or expanded:
                fields[key] = int(raw) if raw is not None else default
        raw = _value(backbone, "with_pool2", r"True|False")
        if raw is not None or expanded:
            fields["pool2"] = raw != "False"
    nl = _region(backbone or text, "non_local_cfg")
    if nl is not None:
        mode = _value(nl, "mode", r"""['"]\w+['"]""")
        if mode is not None:
            mode = mode.strip("'\"")
            fields["instantiation"] = MMCV_MODES.get(mode, mode)
        raw = _value(nl, "use_scale", r"True|False")
        if raw is not None or expanded:
            fields["scale"] = raw != "False"  # mmcv's NonLocal3d scales unless told not to
    preprocessor = _region(text, "data_preprocessor") or _region(text, "img_norm_cfg")
    mean, std = _numbers(preprocessor, "mean"), _numbers(preprocessor, "std")
    if mean is not None and std is not None and all(s > 0 for s in std):
        fields["mean"], fields["std"] = mean, std
    return fields


# -- the config of an I3D checkpoint ---------------------------------------------------------------------------


def _count(state: dict[str, torch.Tensor], stage: str) -> int:
    indices = {int(k.split(".")[1]) for k in state if k.startswith(f"{stage}.") and k.split(".")[1].isdigit()}
    return max(indices) + 1 if indices else 0


def config_from_checkpoint(ckpt: Checkpoint, overrides: dict[str, Any], name: str) -> dict[str, Any]:
    """The I3D config of ``ckpt`` (whose state dict this turns into relviz's names when it is mmaction2's).

    The architecture comes from the keys and shapes; the non-local mode from ``--config mode=…`` (or
    ``instantiation``), else the checkpoint's config text, else — for the Gaussian, whose blocks have no θ/φ —
    the keys; embedded Gaussian and dot product cannot be told apart from the weights alone.
    """
    raw = ckpt.state_dict
    mmaction = is_mmaction_i3d(raw)
    subsample = any(".non_local_block.g.0.conv." in k for k in raw) if mmaction else None
    if mmaction:
        ckpt.state_dict = from_mmaction(raw)  # from here on the checkpoint speaks relviz's names
    state = ckpt.state_dict
    blocks = [_count(state, f"layer{i}") for i in range(1, 5)]
    widths = [int(state[f"layer{i}.0.conv1.weight"].shape[0]) for i in range(1, 5)]
    inflate, style = [], "3x1x1"
    for stage, n in enumerate(blocks, start=1):
        for b in range(n):
            t1 = int(state[f"layer{stage}.{b}.conv1.weight"].shape[2])
            t2 = int(state[f"layer{stage}.{b}.conv2.weight"].shape[2])
            inflate.append(1 if max(t1, t2) > 1 else 0)
            style = "3x3x3" if t2 > 1 else style
    stems = sorted({k.split(".")[1] for k in state if k.startswith("nonlocal_blocks.")},
                   key=lambda s: [int(v) for v in re.findall(r"\d+", s)])
    config: dict[str, Any] = {
        "arch": "i3d",
        "blocks": blocks,
        "widths": widths,
        "expansion": int(state["layer1.0.conv3.weight"].shape[0]) // widths[0],
        "stem_width": int(state["conv1.weight"].shape[0]),
        "conv1_kernel": [int(v) for v in state["conv1.weight"].shape[2:]],
        "inflate": inflate,
        "inflate_style": style,
        "nonlocal": [s.replace("_", ".") for s in stems],
        "num_classes": int(state["fc.weight"].shape[0]),
    }
    text = ckpt.metadata.get("config_text")
    read = config_fields(text) if isinstance(text, str) else {}
    config.update({k: v for k, v in read.items() if k != "instantiation"})
    if subsample is not None:
        config["subsample"] = subsample
    elif stems:
        config["subsample"] = read.get("subsample", DEFAULT_CONFIG["subsample"])
    gaussian = bool(stems) and not any(k.startswith(f"nonlocal_blocks.{stems[0]}.theta.") for k in state)
    given = overrides.get("mode", overrides.get("instantiation"))
    if given is not None:
        mode, source = MMCV_MODES.get(str(given).lower(), str(given).lower()), "--config"
        if mode not in ("embedded", "gaussian", "dot"):
            raise BadInputError(f"--config mode={given} is not a non-local mode of mmaction2's I3D; its modes: "
                                "embedded_gaussian, gaussian, dot_product")
    elif "instantiation" in read:
        mode, source = read["instantiation"], f"the config in {name}"
    elif gaussian or not stems:
        mode, source = "gaussian" if gaussian else DEFAULT_CONFIG["instantiation"], f"the keys of {name}"
    else:
        raise BadInputError(
            f"{name} has non-local blocks whose weights fit both the embedded Gaussian and the dot product, and no "
            "config text that says which; pass --config mode=embedded_gaussian or --config mode=dot_product"
        )
    if stems and (mode == "gaussian") != gaussian:
        kind = "the Gaussian (no θ/φ)" if gaussian else "a form with θ and φ"
        raise BadInputError(f"the non-local blocks of {name} are {kind}; mode {given or mode} ({source}) does not "
                            "fit them")
    config["instantiation"] = mode
    config["mode_from"] = source
    labels = ckpt.metadata.get("classes")
    if isinstance(labels, list) and len(labels) == config["num_classes"]:
        config["labels"] = labels
    config.update({k: v for k, v in overrides.items() if k not in ("mode", "instantiation")})
    return config


def normalise_255(image: np.ndarray, mean: list[float], std: list[float]) -> torch.Tensor:
    """(H, W, 3) uint8 RGB → (3, H, W) float32 ``(x − mean) / std`` on 0–255 values, as mmaction2's
    ``ActionDataPreprocessor`` computes it."""
    x = torch.from_numpy(np.require(image, np.uint8, ["C", "W"])).permute(2, 0, 1).float()
    mean_t = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (x - mean_t) / std_t


def mode_name(instantiation: str) -> str:
    """mmcv's name of a relviz instantiation ('embedded' → 'embedded_gaussian')."""
    return {v: k for k, v in MMCV_MODES.items()}.get(instantiation, instantiation)
