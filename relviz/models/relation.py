"""Object relation module and duplicate-removal module of Relation Networks (Hu et al., CVPR 2018).

Paper notation: objects n (receiving) and m (contributing), appearance features f_A, boxes f_G.

- Eq. (5): the geometry term  ω_G^{mn} = max{0, W_G · E_G(f_G^m, f_G^n)}  (one scalar per head).
- Eq. (4): the appearance term ω_A^{mn} = dot(W_K f_A^m, W_Q f_A^n) / √d_k.
- Eq. (3): ω^{mn} = ω_G^{mn} · exp(ω_A^{mn}) / Σ_k ω_G^{kn} · exp(ω_A^{kn}), which is a softmax over m of
  log(ω_G) + ω_A.
- Eq. (2): f_R(n) = Σ_m ω^{mn} · (W_V f_A^m);  Eq. (6): f_A^n ← f_A^n + Concat[f_R^1(n), …, f_R^{N_r}(n)].

Where the official MXNet code (msracver/Relation-Networks-for-Object-Detection) differs from the paper,
this module follows the code, and each place says so:

1. Relative geometry (paper eq. 5's footnote): the paper normalises the offsets by the *contributing*
   box m; the code divides by the width/height of the *receiving* box (the row of the matrix), i.e.
   (log(max(|x_n − x_m| / w_n, 1e-3)), log(max(|y_n − y_m| / h_n, 1e-3)), log(w_n / w_m), log(h_n / h_m)).
   The code clamps the offsets at 1e-3 before the log (the paper has no clamp).  The code's boxes are
   in the inclusive-pixel convention (w = x2 − x1 + 1); torchvision's boxes are continuous, so relviz
   uses w = x2 − x1, which is what makes ω_G exactly invariant to a common translation and scaling.
2. The embedding multiplies the four terms by 100 before the sinusoid of wavelength 1000
   (E(p)_{2i} = sin(100·p / 1000^{8i/d_g}), cos likewise), laid out per term as [sin × d_g/8, cos × d_g/8].
3. log(ω_G) is taken of max(ω_G, 1e-6) (the paper's ω_G·exp(ω_A) has no clamp).
4. There is no W_V before aggregation: each head aggregates the raw features, Σ_m ω^{mn} f_A^m, and the
   per-head output projection (W_V of eq. 2, mapping d_f → d_f / N_r) is applied after, as one grouped
   1×1 convolution with N_r groups (``linear_out`` in the code).  By linearity this equals eq. (2).
5. Queries and keys are affine (the fully connected layers have biases), as is W_G.

Recording: when a :func:`relviz.core.capture.recording` block is active, each module records under its
``name`` (e.g. ``relation/fc1``) ``weight`` (ω), ``geometry`` (ω_G, before the log and the clamp) and
``appearance`` (ω_A), each (B, H, N, N) with rows = receiving object n and columns = contributing
object m, and ``boxes`` (B, N, 4).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from relviz.core.capture import active_recorder

#: clamps of the official code
OFFSET_CLAMP = 1e-3
GEOMETRY_CLAMP = 1e-6
POSITION_SCALE = 100.0
WAVELENGTH = 1000.0


def relative_geometry(boxes: torch.Tensor, eps: float = OFFSET_CLAMP) -> torch.Tensor:
    """Relative geometry of every pair: (..., N, N, 4) with [n, m] = box m seen from receiving box n.

    ``boxes`` is (..., N, 4) in xyxy.  Normalised by the receiving box n as the official code does.
    """
    x1, y1, x2, y2 = boxes.unbind(-1)
    w = (x2 - x1).clamp_min(1e-6)
    h = (y2 - y1).clamp_min(1e-6)
    cx = 0.5 * (x1 + x2)
    cy = 0.5 * (y1 + y2)
    dx = (cx.unsqueeze(-1) - cx.unsqueeze(-2)) / w.unsqueeze(-1)
    dy = (cy.unsqueeze(-1) - cy.unsqueeze(-2)) / h.unsqueeze(-1)
    dx = torch.log(dx.abs().clamp_min(eps))
    dy = torch.log(dy.abs().clamp_min(eps))
    dw = torch.log(w.unsqueeze(-1) / w.unsqueeze(-2))
    dh = torch.log(h.unsqueeze(-1) / h.unsqueeze(-2))
    return torch.stack([dx, dy, dw, dh], dim=-1)


def geometry_embedding(
    position: torch.Tensor, dim: int = 64, wavelength: float = WAVELENGTH, scale: float = POSITION_SCALE
) -> torch.Tensor:
    """Sinusoidal embedding E_G of (..., 4) relative geometry into (..., dim) (official layout).

    For each of the four terms p: [sin(s·p / λ^{8i/dim}) for i < dim/8] + [cos(…) for i < dim/8].
    """
    if dim % 8:
        raise ValueError(f"geometry embedding dim must be a multiple of 8, got {dim}")
    freq = torch.arange(dim // 8, dtype=position.dtype, device=position.device)
    denom = wavelength ** ((8.0 / dim) * freq)  # (dim/8,)
    angle = (scale * position).unsqueeze(-1) / denom  # (..., 4, dim/8)
    emb = torch.cat([angle.sin(), angle.cos()], dim=-1)  # (..., 4, dim/4)
    return emb.flatten(-2)


def rank_embedding(
    n: int,
    dim: int = 1024,
    wavelength: float = WAVELENGTH,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Sinusoidal embedding of ranks 0..n−1 into (n, dim): [sin(r / λ^{2i/dim})] + [cos(…)] (official)."""
    rank = torch.arange(n, device=device, dtype=dtype).unsqueeze(1)
    freq = torch.arange(dim // 2, device=device, dtype=dtype)
    denom = wavelength ** ((2.0 / dim) * freq)
    angle = rank / denom
    return torch.cat([angle.sin(), angle.cos()], dim=1)


class RelationModule(nn.Module):
    """One object relation module (paper §4.2, Fig. 2 right), multi-head, with its residual.

    ``feat_dim`` is d_f of f_A; ``key_dim`` the total query/key width (d_k = key_dim / heads per head);
    ``out_dim`` the width added to the input (= feat_dim in the detection head).  In the duplicate
    removal module the official code uses feat_dim = 128, key_dim = 1024, out_dim = 128.
    """

    def __init__(
        self,
        feat_dim: int = 1024,
        key_dim: int = 1024,
        out_dim: int | None = None,
        heads: int = 16,
        geo_dim: int = 64,
        name: str = "relation/fc1",
    ) -> None:
        super().__init__()
        out_dim = feat_dim if out_dim is None else out_dim
        if key_dim % heads or out_dim % heads:
            raise ValueError(f"key_dim ({key_dim}) and out_dim ({out_dim}) must divide by heads ({heads})")
        self.feat_dim, self.key_dim, self.out_dim = feat_dim, key_dim, out_dim
        self.heads, self.geo_dim, self.name = heads, geo_dim, name
        self.d_k = key_dim // heads
        self.geometry_fc = nn.Linear(geo_dim, heads)  # W_G (official pair_pos_fc1)
        self.query = nn.Linear(feat_dim, key_dim)  # W_Q
        self.key = nn.Linear(feat_dim, key_dim)  # W_K
        # official linear_out: Conv 1×1 on heads·feat_dim channels with `heads` groups → out_dim
        self.linear_out = nn.Conv2d(heads * feat_dim, out_dim, kernel_size=1, groups=heads)

    def terms(
        self, features: torch.Tensor, boxes: torch.Tensor | None = None, embedding: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ω, ω_G, ω_A), each (B, H, N, N), rows receiving n, columns contributing m.

        ``features`` (B, N, feat_dim); either ``boxes`` (B, N, 4) or a precomputed ``embedding``
        (B, N, N, geo_dim) of their relative geometry.
        """
        if embedding is None:
            if boxes is None:
                raise ValueError("give boxes or their geometry embedding")
            embedding = geometry_embedding(relative_geometry(boxes), self.geo_dim)
        b, n, _ = features.shape
        omega_g = torch.relu(self.geometry_fc(embedding)).permute(0, 3, 1, 2)  # eq. (5): (B, H, N, N)
        q = self.query(features).view(b, n, self.heads, self.d_k).transpose(1, 2)
        k = self.key(features).view(b, n, self.heads, self.d_k).transpose(1, 2)
        omega_a = q @ k.transpose(-1, -2) / math.sqrt(self.d_k)  # eq. (4): [n, m] = W_Q f_n · W_K f_m
        logits = torch.log(omega_g.clamp_min(GEOMETRY_CLAMP)) + omega_a  # eq. (3) as a softmax
        weight = torch.softmax(logits, dim=-1)
        return weight, omega_g, omega_a

    def forward(
        self,
        features: torch.Tensor,
        boxes: torch.Tensor,
        embedding: torch.Tensor | None = None,
        record: bool = True,
        keep: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """f_A + relation feature (eq. 6), (B, N, out_dim); records its terms when recording, and appends
        ω of the first item of the batch, (H, N, N), to ``keep`` when given (for auxiliary losses)."""
        weight, omega_g, omega_a = self.terms(features, boxes, embedding)
        if keep is not None:
            keep.append(weight[0])
        rec = active_recorder() if record else None
        if rec is not None:
            rec.set(f"{self.name}/weight", weight)
            rec.set(f"{self.name}/geometry", omega_g)
            rec.set(f"{self.name}/appearance", omega_a)
            rec.set(f"{self.name}/boxes", boxes)
        if self.out_dim != self.feat_dim:
            raise ValueError("the residual of eq. (6) needs out_dim == feat_dim")
        return features + self.relation(weight, features)

    def relation(self, weight: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Concat over heads of W_V^h Σ_m ω_h^{nm} f_m (eq. 2, aggregated first as the official code)."""
        b, h, n, _ = weight.shape
        agg = weight @ features.unsqueeze(1)  # (B, H, N, feat_dim)
        agg = agg.permute(0, 2, 1, 3).reshape(b * n, h * self.feat_dim, 1, 1)
        return self.linear_out(agg).view(b, n, self.out_dim)


class DuplicateRemoval(nn.Module):
    """The learned duplicate-removal ("e2e NMS") module of paper §4.3, Fig. 3(b).

    For one class at a time, over its top ``first_n`` detections sorted by score: rank feature
    (sinusoidal embedding of the rank into ``rank_dim`` = 1024, then linear to ``embed_dim`` = 128) plus
    appearance feature (linear ``feat_dim`` → 128); one relation module (key width 1024, 16 heads) with
    its residual; ReLU; linear to one logit per IoU threshold; s1 = sigmoid(logit).  The final score is
    s0 · s1 with s0 the classifier's score (official ``nms_multi_score``).
    """

    def __init__(
        self,
        feat_dim: int = 1024,
        embed_dim: int = 128,
        rank_dim: int = 1024,
        key_dim: int = 1024,
        heads: int = 16,
        geo_dim: int = 64,
        iou_thresholds: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9),
        name: str = "relation/nms",
    ) -> None:
        super().__init__()
        self.rank_dim = rank_dim
        self.iou_thresholds = tuple(float(t) for t in iou_thresholds)
        self.rank_fc = nn.Linear(rank_dim, embed_dim)  # official nms_rank
        self.appearance_fc = nn.Linear(feat_dim, embed_dim)  # official roi_feat_embedding
        self.relation = RelationModule(embed_dim, key_dim, embed_dim, heads, geo_dim, name=name)
        self.logit = nn.Linear(embed_dim, len(self.iou_thresholds))  # official nms_logit

    def rescore(
        self, features: torch.Tensor, boxes: torch.Tensor, scores: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sort each group by descending score s0, run the module; (s1 (G, N, T), order (G, N)).

        Row r of the outputs is the group's rank-r detection, input index ``order[g, r]``; the final
        score of each threshold is ``scores.gather(1, order)[..., None] * s1``.
        """
        order = scores.argsort(dim=1, descending=True)
        idx = order.unsqueeze(-1)
        feats = features.gather(1, idx.expand(-1, -1, features.shape[-1]))
        bxs = boxes.gather(1, idx.expand(-1, -1, 4))
        return self(feats, bxs), order

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """Appearance embedding plus rank embedding, (G, N, embed_dim), for rank-ordered rows."""
        n = features.shape[1]
        ranks = rank_embedding(n, self.rank_dim, device=features.device, dtype=features.dtype)
        return self.appearance_fc(features) + self.rank_fc(ranks).unsqueeze(0)

    def forward(self, features: torch.Tensor, boxes: torch.Tensor, record: bool = True) -> torch.Tensor:
        """s1 (G, N, T) for G groups (classes) of N detections each, sorted by descending score.

        ``features`` (G, N, feat_dim) and ``boxes`` (G, N, 4): row r of a group is its rank-r detection.
        """
        x = torch.relu(self.relation(self.embed(features), boxes, record=record))
        return torch.sigmoid(self.logit(x))
