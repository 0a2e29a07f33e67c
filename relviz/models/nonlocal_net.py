"""ResNet-50 with non-local blocks, for images (2-D) and for clips (C2D, Wang et al. 2018 Table 1).

- Images: a ResNet-50 (bottlenecks 1×1 → 3×3 → 1×1, 3-4-6-3 blocks, stride on the 3×3 as in torchvision)
  with 2-D non-local blocks after chosen residual blocks.
- Clips: the paper's C2D baseline: the same 2-D ResNet-50 applied to every frame (kernels 1×k×k), with a
  temporal max-pooling 3×1×1, stride 2×1×1 after res2 (8 frames in → 4 time steps in res3–res5), global
  average pooling over space and time, and 3-D (space-time) non-local blocks.

Non-local block placement (paper §4.1 and Table 2): ``nonlocal="1"`` puts one block in res4 right before
its last residual block (after block ``res4.4``, 0-based); ``nonlocal="5"`` puts five, after every other
residual block of res3 (blocks 1 and 3) and res4 (1, 3 and 5), as the official code's ``nonlocal_mod=2``
does.  A list of block names (``res<stage>.<block>``) places them anywhere; the names are also the names
of the blocks in the trace (``nonlocal/res4.4/attn``).

The instantiation (``gaussian``, ``embedded``, ``dot``, ``concat``), the 1/√d scaling and the 2× max-pool
sub-sampling of φ and g are configuration keys; see :mod:`relviz.models.nonlocal_block`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from relviz.core.capture import active_recorder
from relviz.core.errors import BadInputError
from relviz.models.nonlocal_block import NonLocalBlock, canonical_instantiation
from relviz.models.presets import resolve_preset

PLACEMENTS = {
    "1": ["res4.4"],
    "5": ["res3.1", "res3.3", "res4.1", "res4.3", "res4.5"],
    "none": [],
}

PRESETS: dict[str, dict[str, Any]] = {
    "r50": {"blocks": [3, 4, 6, 3], "widths": [64, 128, 256, 512], "stem_width": 64, "nonlocal": "5"},
    # demo models trained on small synthetic images / clips
    "tiny": {
        "blocks": [1, 1, 1, 1],
        "widths": [8, 16, 32, 64],
        "stem_width": 16,
        "nonlocal": ["res3.0", "res4.0"],
        "num_classes": 10,
        "input_size": 64,
        "clip_length": 4,
    },
}

DEFAULT_CONFIG: dict[str, Any] = {
    **PRESETS["r50"],
    "expansion": 4,
    "instantiation": "embedded",
    "scale": True,
    "subsample": True,
    "num_classes": 1000,
    "input_size": 224,
    "clip": False,
    "clip_length": 8,
    "temporal_pool": True,
}


def resolve_config(config: dict[str, Any]) -> dict[str, Any]:
    """Paper defaults (ResNet-50, five embedded-Gaussian blocks), then ``preset``, then every given key."""
    base = resolve_preset(config, DEFAULT_CONFIG, PRESETS, "non-local")
    base["instantiation"] = canonical_instantiation(base["instantiation"])
    for key in ("scale", "subsample", "clip", "temporal_pool"):
        base[key] = _as_bool(base[key], key)
    return base


def _as_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise BadInputError(f"{key} must be true or false, not {value!r}")


def block_names(blocks: list[int]) -> list[str]:
    return [f"res{s + 2}.{b}" for s, n in enumerate(blocks) for b in range(int(n))]


def placement(config: dict[str, Any]) -> list[str]:
    """The residual blocks after which a non-local block sits; refuses names that do not exist."""
    spec = config.get("nonlocal", "5")
    if isinstance(spec, int):
        spec = str(spec)
    if isinstance(spec, str):
        names = PLACEMENTS[spec] if spec in PLACEMENTS else [s.strip() for s in spec.split(",") if s.strip()]
    else:
        names = [str(s) for s in spec]
    valid = block_names(config["blocks"])
    bad = [n for n in names if n not in valid]
    if bad:
        raise BadInputError(
            f"no residual block {', '.join(bad)} for a non-local block; valid blocks: "
            f"{', '.join(valid)} (or '1', '5', 'none')"
        )
    return names


class Bottleneck(nn.Module):
    def __init__(self, cin: int, mid: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + identity)


class NonLocalResNet(nn.Module):
    """ResNet-50 (+ non-local blocks); ``config['clip']`` makes it the C2D video model.

    Input: (B, 3, H, W) images, or (B, 3, T, H, W) clips when ``clip`` is set.
    """

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        cfg = resolve_config(config or {})
        self.config = cfg
        self.clip = cfg["clip"]
        stem = int(cfg["stem_width"])
        self.conv1 = nn.Conv2d(3, stem, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        names = placement(cfg)
        self.nonlocal_after = names
        self.nonlocal_blocks = nn.ModuleDict()
        cin, stride_so_far = stem, 4
        frame_stride = 1
        stages = []
        for si, (n, mid) in enumerate(zip(cfg["blocks"], cfg["widths"], strict=True)):
            cout = int(mid) * int(cfg["expansion"])
            if self.clip and cfg["temporal_pool"] and si == 1:
                frame_stride = 2  # the temporal pooling after res2 halves the frames
            blocks = []
            for bi in range(int(n)):
                stride = 2 if (bi == 0 and si > 0) else 1
                blocks.append(Bottleneck(cin, int(mid), cout, stride))
                stride_so_far *= stride
                cin = cout
                name = f"res{si + 2}.{bi}"
                if name in names:
                    block = NonLocalBlock(
                        cout,
                        3 if self.clip else 2,
                        cfg["instantiation"],
                        subsample=cfg["subsample"],
                        scale=cfg["scale"],
                        name=name,
                    )
                    block.input_stride = stride_so_far
                    block.frame_stride = frame_stride
                    self.nonlocal_blocks[name.replace(".", "_")] = block
            stages.append(nn.Sequential(*blocks))
        if len(stages) != 4:
            raise BadInputError("the non-local ResNet has four stages (res2–res5)")
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, int(cfg["num_classes"]))
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d) and mod.weight.device.type != "meta":
                nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")

    def blocks(self) -> dict[str, NonLocalBlock]:
        return {b.name: b for b in self.nonlocal_blocks.values()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.clip:
            if x.dim() != 5:
                raise ValueError("the C2D model takes (B, 3, T, H, W) clips")
            b, _, t = x.shape[:3]
            x = x.transpose(1, 2).reshape(b * t, *x.shape[1:2], *x.shape[3:])  # frames as a batch
        else:
            b, t = x.shape[0], 1
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for si, stage in enumerate((self.layer1, self.layer2, self.layer3, self.layer4)):
            if self.clip and si == 1 and self.config["temporal_pool"]:
                x, t = self._temporal_pool(x, b, t)
            for bi, block in enumerate(stage):
                x = block(x)
                key = f"res{si + 2}_{bi}"
                if key in self.nonlocal_blocks:
                    nl = self.nonlocal_blocks[key]
                    if self.clip:
                        x = self._to_frames(nl(self._to_clip(x, b, t)))
                    else:
                        x = nl(x)
        if self.clip:
            x = self._to_clip(x, b, t).mean(dim=(2, 3, 4))
        else:
            x = torch.flatten(self.avgpool(x), 1)
        logits = self.fc(x)
        rec = active_recorder()
        if rec is not None:
            rec.set("classification/logits", logits)
        return logits

    @staticmethod
    def _to_clip(x: torch.Tensor, b: int, t: int) -> torch.Tensor:
        """(B·T, C, H, W) → (B, C, T, H, W)."""
        return x.reshape(b, t, *x.shape[1:]).transpose(1, 2)

    @staticmethod
    def _to_frames(x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        return x.transpose(1, 2).reshape(b * t, c, h, w)

    def _temporal_pool(self, x: torch.Tensor, b: int, t: int) -> tuple[torch.Tensor, int]:
        # paper Table 1: max-pool 3×1×1, stride 2×1×1 after res2
        clip = F.max_pool3d(self._to_clip(x, b, t), (3, 1, 1), (2, 1, 1), (1, 0, 0))
        return self._to_frames(clip.contiguous()), clip.shape[2]
