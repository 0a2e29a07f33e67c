"""Local Relation Networks (Hu, Zhang, Xie, Lin, "Local Relation Networks for Image Recognition", ICCV 2019).

The local relation layer (paper §3) replaces a k×k convolution by an aggregation whose weights are
computed from the pixels themselves.  For an output position p′ and every p in its k×k window Ω_p′

    ω(p′, p) = softmax_{p ∈ Ω_p′} ( Φ(f_θq(x_p′), f_θk(x_p)) + f_θg(p − p′) )        (aggregation weights)
    y_p′     = Σ_{p ∈ Ω_p′} ω(p′, p) · x_p                                            (aggregation)

- f_θq, f_θk: 1×1 convolutions giving the *query* and *key* maps.  The paper shares one aggregation among
  ``m`` channels (default m = 8, "channel sharing"), so a layer with C channels computes G = ⌈C/m⌉
  aggregations and its key and query maps have G channels: one scalar key and query per group.  (This
  is the reading that reproduces the paper's 23.3 M / 14.7 M parameters for LR-Net-50 / -26: the key
  and query maps hold C/8 channels.)  Note the paper's ``m`` counts channels *per* group; the trace's
  leading axis counts the G groups.
- Φ, the appearance composability: squared difference −(q_p′ − k_p)² is the paper's default; absolute
  difference −|q_p′ − k_p| and multiplication q_p′·k_p are the ablation's alternatives (``composability``).
- f_θg, the geometry prior: a small network of two 1×1 channel transforms with a ReLU between them,
  applied to the relative position p − p′ of each window cell; it gives k×k logits per group that do not
  depend on the input.  The offsets fed to it are divided by ⌊k/2⌋ so they lie in [−1, 1] (the paper does
  not say how they are scaled).
- Window cells that fall outside the image are excluded from the softmax (not zero-padded into it).
- After the aggregation a 1×1 convolution transforms the channels (the paper's layer diagram ends with
  one; without it the parameter counts of the paper's table are 16 % short).

LR-Net-50 (paper Table 1, 7×7, m = 8): stem 1×1 conv 64 → 7×7 LR 64 stride 2 → 3×3 max-pool stride 2;
bottlenecks 1×1 → 7×7 LR → 1×1 with middle widths 100/200/400/800 and outputs 256/512/1024/2048 in 3-4-6-3
blocks (LR-Net-26: 2-2-2-2); the first block of res3–res5 has stride 2 in its LR layer.  23.3 M / 14.7 M
parameters.

Memory: the forward pass never unfolds the whole map.  It walks over bands of output rows whose unfolded
windows fit in ``max_chunk_elements`` numbers, so a large input costs time, not memory.

Capture (trace contract): per layer ``lrnet/<layer>/geometry`` (G,k,k), the factors ``/key`` (G,H,W) and
``/query`` (G,H′,W′), and when the layer's ``capture_full`` is on, ``/appearance`` and ``/weight``
(G,k·k,H′,W′).  ``relviz.render.lrnet.pixel_kernels`` recomputes one pixel's kernels from the factors.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from relviz.core.capture import active_recorder
from relviz.models.presets import resolve_preset

COMPOSABILITY = ("squared", "abs", "mul")

# Paper Table 1 widths; "tiny" is for the demo models trained on small synthetic images.
PRESETS: dict[str, dict[str, Any]] = {
    "lrnet-50": {
        "blocks": [3, 4, 6, 3],
        "widths": [100, 200, 400, 800],
        "outs": [256, 512, 1024, 2048],
        "stem_width": 64,
    },
    "lrnet-26": {
        "blocks": [2, 2, 2, 2],
        "widths": [100, 200, 400, 800],
        "outs": [256, 512, 1024, 2048],
        "stem_width": 64,
    },
    "tiny": {
        "blocks": [1, 1, 1, 1],
        "widths": [16, 32, 48, 64],
        "outs": [32, 64, 96, 128],
        "stem_width": 16,
        "m": 4,
        "kernel_size": 5,
        "num_classes": 10,
        "input_size": 64,
    },
}

DEFAULT_CONFIG: dict[str, Any] = {
    **PRESETS["lrnet-50"],
    "kernel_size": 7,
    "m": 8,
    "composability": "squared",
    "num_classes": 1000,
    "input_size": 224,
}


def resolve_config(config: dict[str, Any]) -> dict[str, Any]:
    """The paper's LR-Net-50 defaults, then the named ``preset`` (if any), then every other given key.

    ``preset`` is ``lrnet-50``, ``lrnet-26`` or ``tiny``; keys such as ``blocks``, ``widths``, ``outs``,
    ``stem_width``, ``m``, ``kernel_size``, ``num_classes`` and ``input_size`` override it.
    """
    return resolve_preset(config, DEFAULT_CONFIG, PRESETS, "LR-Net")


class LocalRelation2d(nn.Module):
    """The local relation layer: k×k adaptive aggregation, G = ⌈C/m⌉ groups, stride 1 or 2."""

    def __init__(
        self,
        channels: int,
        kernel_size: int = 7,
        m: int = 8,
        stride: int = 1,
        composability: str = "squared",
        geometry_hidden: int | None = None,
        name: str = "lr",
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError("the local relation window must have an odd size")
        if composability not in COMPOSABILITY:
            raise ValueError(f"composability must be one of {COMPOSABILITY}, not {composability!r}")
        self.channels = channels
        self.kernel_size = kernel_size
        self.m = m
        self.groups = math.ceil(channels / m)
        self.stride = stride
        self.composability = composability
        self.name = name
        self.input_stride = 1  # model-input pixels per cell of this layer's input (set by the network)
        self.capture_full: bool = True  # record /appearance and /weight, not only the factors
        self.max_chunk_elements = 1 << 22
        g = self.groups
        # f_θk and f_θq: one scalar key / query per aggregation group
        self.key = nn.Conv2d(channels, g, 1, bias=False)
        self.query = nn.Conv2d(channels, g, 1, bias=False)
        # f_θg: two channel transforms with a ReLU between them, on the relative position (Δx, Δy)
        hidden = geometry_hidden or max(8, g // 2)
        self.geometry = nn.Sequential(nn.Conv2d(2, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, g, 1))
        self.out = nn.Conv2d(channels, channels, 1, bias=False)
        c = kernel_size // 2
        offsets = torch.arange(kernel_size, dtype=torch.float32) - c
        dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")
        scale = float(max(c, 1))
        self.register_buffer("offsets", torch.stack([dx, dy])[None] / scale, persistent=False)  # (1,2,k,k)

    def extra_repr(self) -> str:
        return (
            f"{self.channels}, kernel_size={self.kernel_size}, m={self.m}, groups={self.groups}, "
            f"stride={self.stride}, composability={self.composability}"
        )

    def geometry_prior(self) -> torch.Tensor:
        """f_θg(p − p′): (G, k, k) logits, rows = Δy, columns = Δx, independent of the input."""
        return self.geometry(self.offsets.to(self.geometry[0].weight.dtype))[0]

    def compose(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Φ(q_p′, k_p), the appearance composability term."""
        if self.composability == "squared":
            return -((q - k) ** 2)
        if self.composability == "abs":
            return -(q - k).abs()
        return q * k

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        return (h - 1) // self.stride + 1, (w - 1) // self.stride + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.aggregate(x)
        return self.out(y)

    def aggregate(self, x: torch.Tensor) -> torch.Tensor:
        """y_p′ = Σ_p ω(p′, p) x_p per group (before the output 1×1), band of rows by band of rows."""
        b, c, h, w = x.shape
        k, s, g = self.kernel_size, self.stride, self.groups
        pad = k // 2
        ho, wo = self.output_size(h, w)
        key = self.key(x)  # (B, G, H, W)
        query = self.query(x)[:, :, ::s, ::s]  # (B, G, H′, W′): queries at the output positions
        geom = self.geometry_prior().reshape(1, g, k * k, 1)
        xp = F.pad(x, (pad, pad, pad, pad))
        kp = F.pad(key, (pad, pad, pad, pad))
        inside = F.pad(x.new_ones(1, 1, h, w), (pad, pad, pad, pad))
        rec = active_recorder()
        full = rec is not None and self.capture_full
        per_row = max(1, b * c * k * k * wo)
        rows = max(1, min(ho, self.max_chunk_elements // per_row))
        out = x.new_empty(b, c, ho, wo)
        apps, weights = [], []
        for r0 in range(0, ho, rows):
            r1 = min(ho, r0 + rows)
            a0, a1 = r0 * s, (r1 - 1) * s + k  # padded input rows that the band's windows cover
            n = (r1 - r0) * wo
            ux = F.unfold(xp[:, :, a0:a1], k, stride=s).view(b, c, k * k, n)
            uk = F.unfold(kp[:, :, a0:a1], k, stride=s).view(b, g, k * k, n)
            valid = F.unfold(inside[:, :, a0:a1], k, stride=s).view(1, 1, k * k, n) > 0.5
            uq = query[:, :, r0:r1].reshape(b, g, 1, n)
            app = self.compose(uq, uk)  # (B, G, k², n)
            logits = (app + geom).masked_fill(~valid, float("-inf"))
            weight = torch.softmax(logits, dim=2)  # over the window; cells outside the image get 0
            # every channel takes its group's weights: the m channels of a group share one aggregation
            out[:, :, r0:r1] = self._weighted_sum(ux, weight).view(b, c, r1 - r0, wo)
            if full:
                apps.append(app.masked_fill(~valid, 0.0).view(b, g, k * k, r1 - r0, wo))
                weights.append(weight.view(b, g, k * k, r1 - r0, wo))
        if rec is not None:
            prefix = f"lrnet/{self.name}"
            rec.set(f"{prefix}/geometry", geom.reshape(1, g, k, k).expand(b, g, k, k))
            rec.set(f"{prefix}/key", key)
            rec.set(f"{prefix}/query", query)
            if full:
                rec.set(f"{prefix}/appearance", torch.cat(apps, dim=3))
                rec.set(f"{prefix}/weight", torch.cat(weights, dim=3))
            layers = rec.meta.setdefault("lrnet_layers", {})
            layers[self.name] = {
                "kernel_size": k,
                "stride": s,
                "m": self.m,
                "groups": g,
                "channels": c,
                "composability": self.composability,
                "input_shape": [h, w],
                "output_shape": [ho, wo],
                "input_stride": self.input_stride,
                "output_stride": self.input_stride * s,
                "full": full,
            }
        return out

    def _weighted_sum(self, ux: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Σ over the window of x · ω, each channel with its group's ω: (B, C, k², n), (B, G, k², n) → (B, C, n).

        The full groups go through a broadcast over a (G, m) view of the channels (no gathered copy of ω);
        a last, smaller group (C not divisible by m) is handled on its own.
        """
        b, c, kk, n = ux.shape
        full = c // self.m
        cf = full * self.m
        parts = []
        if full:
            xs = ux[:, :cf].reshape(b, full, self.m, kk, n)
            parts.append((xs * weight[:, :full, None]).sum(3).reshape(b, cf, n))
        if cf < c:
            parts.append((ux[:, cf:] * weight[:, full : full + 1]).sum(2))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


class LRBottleneck(nn.Module):
    """1×1 → k×k local relation → 1×1, with batch norm and a projection shortcut where shapes change."""

    def __init__(self, cin: int, mid: int, cout: int, stride: int, cfg: dict[str, Any], name: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.lr = LocalRelation2d(mid, cfg["kernel_size"], cfg["m"], stride, cfg["composability"], name=name)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.lr(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + identity)


class LRNet(nn.Module):
    """LR-Net for classification; layers are named ``stem`` and ``res<stage>.<block>`` (0-based blocks)."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        cfg = resolve_config(config or {})
        self.config = cfg
        stem = int(cfg["stem_width"])
        self.conv1 = nn.Conv2d(3, stem, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.stem_lr = LocalRelation2d(stem, cfg["kernel_size"], cfg["m"], 2, cfg["composability"], name="stem")
        self.bn2 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages = []
        cin, stride_so_far = stem, 4
        self.stem_lr.input_stride = 1
        for si, (n, mid, cout) in enumerate(zip(cfg["blocks"], cfg["widths"], cfg["outs"], strict=True)):
            blocks = []
            for bi in range(int(n)):
                stride = 2 if (bi == 0 and si > 0) else 1
                block = LRBottleneck(cin, int(mid), int(cout), stride, cfg, name=f"res{si + 2}.{bi}")
                block.lr.input_stride = stride_so_far
                stride_so_far *= stride
                blocks.append(block)
                cin = int(cout)
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = (stages + [nn.Identity()] * 4)[:4]
        if len(stages) != 4:
            raise ValueError("LR-Net has four stages (res2–res5)")
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, int(cfg["num_classes"]))
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d) and mod.weight.device.type != "meta":
                nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")

    def relation_layers(self) -> dict[str, LocalRelation2d]:
        return {m.name: m for m in self.modules() if isinstance(m, LocalRelation2d)}

    def set_capture_full(self, full: bool) -> None:
        for layer in self.relation_layers().values():
            layer.capture_full = full

    def set_max_chunk_elements(self, n: int) -> None:
        for layer in self.relation_layers().values():
            layer.max_chunk_elements = int(n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.maxpool(self.relu(self.bn2(self.stem_lr(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        logits = self.fc(torch.flatten(self.avgpool(x), 1))
        rec = active_recorder()
        if rec is not None:
            rec.set("classification/logits", logits)
        return logits
