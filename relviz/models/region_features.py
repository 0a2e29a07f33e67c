"""Learned region features (Gu, Hu, Wang, Wei, Dai, "Learning Region Features for Object Detection",
ECCV 2018): a drop-in replacement for RoIAlign in a Faster R-CNN box head.

For a box b and each of K parts (K = 7×7 by default), the part feature is (paper §3: the general form
y_k(b) = Σ_p w_k ⊙ f(p) of region feature extraction, with learned weights; notation of the issue, where
p is an image position and x(p) the feature there)

    y_k(b) = Σ_{p ∈ Ω_b} w_k(b, p, x) ⊙ W_k x(p),
    w_k(b, p, x) = exp(G_k(b, p) + A_k(x, p)) / Σ_{p'} exp(G_k(b, p') + A_k(x, p')),

- G_k(b, p) = W_G^k · E(p | b): the geometric prior, a linear function (to K logits) of a sinusoidal
  embedding of p's position relative to b, normalised by the box size ((p_x − c_x)/w, (p_y − c_y)/h);
- A_k(x, p) = W_A^k · x(p): the appearance term, linear in the feature at p;
- Ω_b, the support region: the box enlarged by ``enlarge`` about its centre and sampled on a fixed
  S × S grid (bilinear, at the cell centres, one FPN level chosen from the box size as RoIAlign does),
  so the cost per box is K·S² whatever the image size (the paper's efficient implementation samples
  the support region sparsely for the same reason).

Because Ω_b is sampled on a grid fixed *relative to the box*, E(p | b) is the same for every box, and
G is one (K, P) table computed from W_G; relviz records it per box anyway to keep the trace contract.
W_k is applied after the sum (Σ_p w_k x(p) first, then W_k), which equals the formula by linearity and
costs K·C·C' once per box instead of per position.  ``value='shared'`` uses one W for every part.

With G_k = 0 inside bin k of the box and −∞ outside, A = 0 and W_k = I, y_k is the average of the
samples in bin k: RoIAlign with two samples per bin side (tested).

Recording (inside :func:`relviz.core.capture.recording`): ``region/weight``, ``region/geometry`` and
``region/appearance`` (1, N, K, P), ``region/positions`` (1, N, P, 2) and ``region/boxes`` (1, N, 4)
in the model input's pixels, for the boxes of all images of the batch in order (relviz runs one image).
Positions are row-major over the S × S grid, parts row-major over the parts × parts bins.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torchvision.ops import roi_align

from relviz.core.capture import active_recorder


def position_embedding(
    rel: torch.Tensor, dim: int = 64, wavelength: float = 1000.0, scale: float = 100.0
) -> torch.Tensor:
    """Sinusoidal embedding of (..., 2) box-relative positions into (..., dim): per coordinate
    [sin(s·u / λ^{4i/dim})] + [cos(…)] for i < dim/4 (the Relation Networks embedding, two terms)."""
    if dim % 4:
        raise ValueError(f"position embedding dim must be a multiple of 4, got {dim}")
    freq = torch.arange(dim // 4, dtype=rel.dtype, device=rel.device)
    denom = wavelength ** ((4.0 / dim) * freq)
    angle = (scale * rel).unsqueeze(-1) / denom
    return torch.cat([angle.sin(), angle.cos()], dim=-1).flatten(-2)


class RegionFeatureExtractor(nn.Module):
    """Learned region features over FPN maps; call it like torchvision's ``MultiScaleRoIAlign``.

    Returns (N, out_channels, parts_h, parts_w) for the boxes of all images, part k = row-major bin.
    """

    def __init__(
        self,
        in_channels: int = 256,
        out_channels: int | None = None,
        parts: int = 7,
        samples: int = 28,
        enlarge: float = 2.0,
        geo_dim: int = 64,
        value: str = "per_part",
        featmap_names: tuple[str, ...] = ("0", "1", "2", "3"),
        canonical_scale: int = 224,
        canonical_level: int = 4,
    ) -> None:
        super().__init__()
        if value not in ("per_part", "shared"):
            raise ValueError(f"value must be 'per_part' or 'shared', got {value!r}")
        self.in_channels = in_channels
        self.out_channels = in_channels if out_channels is None else out_channels
        self.parts, self.samples, self.enlarge = parts, samples, float(enlarge)
        self.featmap_names = tuple(featmap_names)
        self.canonical_scale, self.canonical_level = canonical_scale, canonical_level
        self.value = value
        k = parts * parts
        self.geometry_fc = nn.Linear(geo_dim, k)  # W_G: E(p|b) → G_k
        self.appearance_fc = nn.Conv2d(in_channels, k, kernel_size=1)  # W_A: x(p) → A_k
        n_w = k if value == "per_part" else 1
        self.value_weight = nn.Parameter(torch.empty(n_w, self.out_channels, in_channels))  # W_k
        self.value_bias = nn.Parameter(torch.zeros(n_w, self.out_channels))
        with torch.no_grad():  # nn.Linear's default initialisation, per part
            nn.init.kaiming_uniform_(self.value_weight.view(-1, in_channels), a=math.sqrt(5))
        # the fixed sampling grid, relative to the box: u in box widths from the centre
        step = (torch.arange(samples, dtype=torch.float32) + 0.5) / samples - 0.5  # (−0.5, 0.5)
        gy, gx = torch.meshgrid(step * self.enlarge, step * self.enlarge, indexing="ij")
        self.register_buffer("relative_grid", torch.stack([gx, gy], -1).view(-1, 2), persistent=False)
        self.geo_dim = geo_dim

    @property
    def num_parts(self) -> int:
        return self.parts * self.parts

    def geometry_logits(self) -> torch.Tensor:
        """G (K, P): the geometric prior over the fixed box-relative sampling grid."""
        emb = position_embedding(self.relative_grid, self.geo_dim)
        return self.geometry_fc(emb).transpose(0, 1)

    def sample_positions(self, boxes: torch.Tensor) -> torch.Tensor:
        """(N, P, 2) pixel positions of the samples of each box's support region."""
        cx = 0.5 * (boxes[:, 0] + boxes[:, 2])
        cy = 0.5 * (boxes[:, 1] + boxes[:, 3])
        w = boxes[:, 2] - boxes[:, 0]
        h = boxes[:, 3] - boxes[:, 1]
        rel = self.relative_grid.to(boxes.dtype)
        return torch.stack([cx[:, None] + rel[None, :, 0] * w[:, None], cy[:, None] + rel[None, :, 1] * h[:, None]], -1)

    def _levels(self, boxes: torch.Tensor, n_levels: int, k_min: int) -> torch.Tensor:
        # FPN paper eq. (1), as torchvision's LevelMapper, on the (unenlarged) box
        if n_levels == 1:
            return torch.zeros(len(boxes), dtype=torch.int64, device=boxes.device)
        area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp_min(1e-6)
        lvl = torch.floor(self.canonical_level + torch.log2(area.sqrt() / self.canonical_scale) + 1e-6)
        return (lvl.clamp(k_min, k_min + n_levels - 1) - k_min).to(torch.int64)

    def sample(
        self,
        features: dict[str, torch.Tensor],
        boxes: list[torch.Tensor],
        image_shapes: list[tuple[int, int]],
    ) -> torch.Tensor:
        """Bilinear samples of the support regions: (N, C, S, S)."""
        maps = [features[name] for name in self.featmap_names]
        max_h = max(s[0] for s in image_shapes)
        scales = [2.0 ** round(math.log2(m.shape[-2] / max_h)) for m in maps]
        k_min = int(round(-math.log2(scales[0])))
        all_boxes = torch.cat(boxes)
        ids = torch.cat(
            [torch.full((len(b),), i, dtype=all_boxes.dtype, device=all_boxes.device) for i, b in enumerate(boxes)]
        )
        cx = 0.5 * (all_boxes[:, 0] + all_boxes[:, 2])
        cy = 0.5 * (all_boxes[:, 1] + all_boxes[:, 3])
        hw = 0.5 * self.enlarge * (all_boxes[:, 2] - all_boxes[:, 0])
        hh = 0.5 * self.enlarge * (all_boxes[:, 3] - all_boxes[:, 1])
        rois = torch.stack([ids, cx - hw, cy - hh, cx + hw, cy + hh], 1)
        levels = self._levels(all_boxes, len(maps), k_min)
        out = maps[0].new_zeros(len(all_boxes), maps[0].shape[1], self.samples, self.samples)
        for lvl, (fmap, scale) in enumerate(zip(maps, scales, strict=True)):
            idx = torch.where(levels == lvl)[0]
            if len(idx):
                out[idx] = roi_align(
                    fmap,
                    rois[idx],
                    (self.samples, self.samples),
                    spatial_scale=scale,
                    sampling_ratio=1,
                    aligned=True,
                ).to(out.dtype)
        return out

    def forward(
        self,
        features: dict[str, torch.Tensor],
        boxes: list[torch.Tensor],
        image_shapes: list[tuple[int, int]],
    ) -> torch.Tensor:
        x = self.sample(features, boxes, image_shapes)  # (N, C, S, S)
        n = x.shape[0]
        g = self.geometry_logits().to(x.dtype)  # (K, P)
        a = self.appearance_fc(x).flatten(2)  # (N, K, P)
        weight = torch.softmax(g.unsqueeze(0) + a, dim=-1)  # softmax over positions p
        pooled = weight @ x.flatten(2).transpose(1, 2)  # Σ_p w_k x(p): (N, K, C)
        if self.value == "per_part":
            y = torch.einsum("nkc,koc->nko", pooled, self.value_weight) + self.value_bias
        else:
            y = pooled @ self.value_weight[0].t() + self.value_bias[0]
        rec = active_recorder()
        if rec is not None:
            all_boxes = torch.cat(boxes)
            rec.set("region/weight", weight.unsqueeze(0))
            rec.set("region/geometry", g.unsqueeze(0).expand(n, -1, -1).unsqueeze(0))
            rec.set("region/appearance", a.unsqueeze(0))
            rec.set("region/positions", self.sample_positions(all_boxes).unsqueeze(0))
            rec.set("region/boxes", all_boxes.unsqueeze(0))
        return y.transpose(1, 2).reshape(n, self.out_channels, self.parts, self.parts)
