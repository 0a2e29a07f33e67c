"""I3D ResNet with space-time non-local blocks, as mmaction2 builds it (``ResNet3d`` + ``I3DHead``).

This is the video model of Wang et al. 2018 (Table 2/3: "I3D + 5 non-local blocks") in the form people
train and publish it today: mmaction2's configs
``i3d_imagenet-pretrained-r50-nl-{embedded-gaussian,gaussian,dot-product}_8xb8-32x2x1-100e_kinetics400-rgb``.
The numerics follow mmaction2's ``ResNet3d`` and mmcv's ``NonLocal3d`` where they differ from the paper:

- stem: conv 5×7×7, stride (2, 2, 2), padding (2, 3, 3), BN, ReLU; then a max-pool of kernel **1**×3×3,
  stride (2, 2, 2), padding (0, 1, 1) (the temporal stride comes from the pool's stride, not its kernel);
- bottlenecks in the 'pytorch' style (the spatial stride on the 1×3×3 conv); an *inflated* block's first conv
  is 3×1×1 (padding 1×0×0, style ``3x1x1``) — or, style ``3x3x3``, its second conv is 3×3×3; the I3D-R50
  configs inflate blocks (1,1,1), (1,0,1,0), (1,0,1,0,1,0), (0,1,0);
- after res2 a temporal max-pool of kernel **2**×1×1, stride 2×1×1 (the paper says 3×1×1);
- global 3-D average pooling, then ``fc_cls`` (the head's dropout is off at test time);
- the non-local block follows the block's final ReLU; θ, φ and g are 1×1×1 convs *with* bias, W_z
  (``conv_out``) has no bias and is followed by BN; ``sub_sample`` max-pools φ and g 1×2×2;
  the embedded Gaussian is *not* scaled by 1/√d (``use_scale=False`` in the configs); the Gaussian form
  is the raw features' softmax(x_iᵀ x_j) with no scale at all (near one-hot for real features); dot
  product divides by the number of keys after pooling.

Frames per time step: the stem conv and the stem pool each halve time and the pool after res2 halves it
again, so a 32-frame clip has 4 time steps in res3/res4 (each covering 8 input frames), a 16-frame clip 2.

Module names follow relviz's (torchvision-like) ResNets: ``conv1``/``bn1``, ``layerI.J.convK``/``bnK``,
``downsample.0``/``.1``, ``nonlocal_blocks.res3_1`` (θ ``theta``, φ ``phi``, ``g``, W_z ``w_z``, ``bn``) and
``fc``; :func:`relviz.zoo.i3d.from_mmaction` maps mmaction2's keys onto them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from relviz.core.capture import active_recorder
from relviz.core.errors import BadInputError
from relviz.models.nonlocal_block import NonLocalBlock, canonical_instantiation

#: mmaction2's names of the non-local instantiations (``non_local_cfg.mode``) → relviz's
MMCV_MODES = {
    "embedded_gaussian": "embedded",
    "gaussian": "gaussian",
    "dot_product": "dot",
    "concatenation": "concat",
}

#: I3D ResNet-50 of mmaction2's ``i3d_r50.py``: which blocks are inflated, per stage
I3D_R50_INFLATE = ((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0))

DEFAULT_CONFIG: dict[str, Any] = {
    "arch": "i3d",
    "blocks": [3, 4, 6, 3],
    "widths": [64, 128, 256, 512],
    "stem_width": 64,
    "expansion": 4,
    "conv1_kernel": [5, 7, 7],
    "conv1_stride_t": 2,
    "pool1_stride_t": 2,
    "pool2": True,
    "inflate": [v for stage in I3D_R50_INFLATE for v in stage],
    "inflate_style": "3x1x1",
    "nonlocal": ["res3.1", "res3.3", "res4.1", "res4.3", "res4.5"],
    "instantiation": "embedded",
    "scale": False,
    "subsample": True,
    "num_classes": 400,
    "input_size": 224,
    "clip_length": 32,
    # mmaction2's data preprocessor, on 0–255 RGB values
    "mean": [123.675, 116.28, 103.53],
    "std": [58.395, 57.12, 57.375],
}


def resolve_config(config: dict[str, Any]) -> dict[str, Any]:
    """mmaction2's I3D-R50 NL defaults, then every given key; ``mode`` (mmcv's name) sets the instantiation."""
    from relviz.models.nonlocal_net import _as_bool, placement

    cfg = {**DEFAULT_CONFIG, **{k: v for k, v in config.items() if v is not None and k != "preset"}}
    mode = cfg.pop("mode", None)
    if mode is not None:
        cfg["instantiation"] = MMCV_MODES.get(str(mode).lower(), mode)
    cfg["instantiation"] = canonical_instantiation(cfg["instantiation"])
    for key in ("scale", "subsample", "pool2"):
        cfg[key] = _as_bool(cfg[key], key)
    cfg["blocks"] = [int(n) for n in cfg["blocks"]]
    if len(cfg["blocks"]) != 4 or len(cfg["widths"]) != 4:
        raise BadInputError("the I3D ResNet has four stages (res2–res5): blocks and widths take four numbers")
    if len(cfg["inflate"]) != sum(cfg["blocks"]):
        raise BadInputError(f"inflate takes one 0/1 per residual block ({sum(cfg['blocks'])} for blocks "
                            f"{cfg['blocks']}), not {len(cfg['inflate'])}")
    if cfg["inflate_style"] not in ("3x1x1", "3x3x3"):
        raise BadInputError(f"inflate_style must be 3x1x1 or 3x3x3, not {cfg['inflate_style']!r}")
    if len(cfg["conv1_kernel"]) != 3:
        raise BadInputError("conv1_kernel takes three numbers (time, height, width)")
    cfg["nonlocal"] = placement(cfg)
    return cfg


def min_frames(config: dict[str, Any]) -> int:
    """The fewest input frames that leave at least one time step after the stem and the pool after res2."""
    n = 1
    while time_steps(config, n) < 1:
        n += 1
    return n


def time_steps(config: dict[str, Any], frames: int) -> int:
    """Time steps in res3–res5 for a clip of ``frames`` frames (mmaction2's pooling arithmetic)."""
    kt = int(config["conv1_kernel"][0])
    t = (frames + 2 * ((kt - 1) // 2) - kt) // int(config["conv1_stride_t"]) + 1
    t = (t - 1) // int(config["pool1_stride_t"]) + 1 if t >= 1 else 0
    return t // 2 if config["pool2"] else t


class I3DBottleneck(nn.Module):
    """mmaction2's ``Bottleneck3d`` ('pytorch' style): 1×1×1 (3×1×1 inflated) → 1×3×3 (stride) → 1×1×1."""

    expansion = 4

    def __init__(self, cin: int, mid: int, cout: int, stride: int, inflate: bool, style: str = "3x1x1") -> None:
        super().__init__()
        k1, p1, k2, p2 = (1, 1, 1), (0, 0, 0), (1, 3, 3), (0, 1, 1)
        if inflate and style == "3x1x1":
            k1, p1 = (3, 1, 1), (1, 0, 0)
        elif inflate:
            k2, p2 = (3, 3, 3), (1, 1, 1)
        self.conv1 = nn.Conv3d(cin, mid, k1, padding=p1, bias=False)
        self.bn1 = nn.BatchNorm3d(mid)
        self.conv2 = nn.Conv3d(mid, mid, k2, stride=(1, stride, stride), padding=p2, bias=False)
        self.bn2 = nn.BatchNorm3d(mid)
        self.conv3 = nn.Conv3d(mid, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv3d(cin, cout, 1, stride=(1, stride, stride), bias=False),
                                            nn.BatchNorm3d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + identity)


class MMNonLocalBlock(NonLocalBlock):
    """mmcv's ``NonLocal3d``: relviz's block with W_z (``conv_out.conv``) bias-free, as mmcv builds it.

    Everything else — θ/φ/g with biases, the 1×2×2 sub-sampling of φ and g, the four pairwise functions —
    is :class:`relviz.models.nonlocal_block.NonLocalBlock` as it is (mmcv's Gaussian uses x itself, pooled
    for the keys, with no scale; the dot product divides by the number of keys).
    """

    def __init__(self, channels: int, instantiation: str, subsample: bool, scale: bool, name: str) -> None:
        super().__init__(channels, 3, instantiation, subsample=subsample, scale=scale, name=name)
        self.w_z = nn.Conv3d(self.inner, channels, 1, bias=False)
        if self.w_z.weight.device.type != "meta":
            nn.init.normal_(self.w_z.weight, std=0.01)


class I3DNonLocalResNet(nn.Module):
    """I3D ResNet (+ non-local blocks) on (B, 3, T, H, W) clips; returns the class logits (B, classes)."""

    clip = True

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        cfg = resolve_config(config or {})
        self.config = cfg
        stem = int(cfg["stem_width"])
        kt, kh, kw = (int(k) for k in cfg["conv1_kernel"])
        self.conv1 = nn.Conv3d(3, stem, (kt, kh, kw), stride=(int(cfg["conv1_stride_t"]), 2, 2),
                               padding=((kt - 1) // 2, (kh - 1) // 2, (kw - 1) // 2), bias=False)
        self.bn1 = nn.BatchNorm3d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d((1, 3, 3), stride=(int(cfg["pool1_stride_t"]), 2, 2), padding=(0, 1, 1))
        self.nonlocal_after = list(cfg["nonlocal"])
        self.nonlocal_blocks = nn.ModuleDict()
        inflate = iter(int(v) for v in cfg["inflate"])
        cin, stride_so_far = stem, 4
        frame_stride = int(cfg["conv1_stride_t"]) * int(cfg["pool1_stride_t"])
        stages = []
        for si, (n, mid) in enumerate(zip(cfg["blocks"], cfg["widths"], strict=True)):
            cout = int(mid) * int(cfg["expansion"])
            if si == 1 and cfg["pool2"]:
                frame_stride *= 2
            blocks = []
            for bi in range(int(n)):
                stride = 2 if (bi == 0 and si > 0) else 1
                blocks.append(I3DBottleneck(cin, int(mid), cout, stride, next(inflate) == 1, cfg["inflate_style"]))
                stride_so_far *= stride
                cin = cout
                name = f"res{si + 2}.{bi}"
                if name in self.nonlocal_after:
                    block = MMNonLocalBlock(cout, cfg["instantiation"], cfg["subsample"], cfg["scale"], name)
                    block.input_stride = stride_so_far
                    block.frame_stride = frame_stride
                    self.nonlocal_blocks[name.replace(".", "_")] = block
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(cin, int(cfg["num_classes"]))
        for name, mod in self.named_modules():
            if isinstance(mod, nn.Conv3d) and mod.weight.device.type != "meta" and not name.startswith("nonlocal"):
                nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")

    def blocks(self) -> dict[str, NonLocalBlock]:
        return {b.name: b for b in self.nonlocal_blocks.values()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError("the I3D model takes (B, 3, T, H, W) clips")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for si, stage in enumerate((self.layer1, self.layer2, self.layer3, self.layer4)):
            for bi, block in enumerate(stage):
                x = block(x)
                key = f"res{si + 2}_{bi}"
                if key in self.nonlocal_blocks:
                    x = self.nonlocal_blocks[key](x)
            if si == 0 and self.config["pool2"]:
                x = F.max_pool3d(x, (2, 1, 1), (2, 1, 1))
        logits = self.fc(x.mean(dim=(2, 3, 4)))
        rec = active_recorder()
        if rec is not None:
            rec.set("classification/logits", logits)
        return logits
