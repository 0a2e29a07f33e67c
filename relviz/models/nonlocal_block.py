"""The non-local block (Wang, Girshick, Gupta, He, "Non-local Neural Networks", CVPR 2018), 2-D and 3-D.

Paper equations:

    (1)  y_i = 1/C(x) · Σ_j f(x_i, x_j) g(x_j)
    (2)  Gaussian:            f = exp(x_iᵀ x_j),            C(x) = Σ_j f          (a softmax over j)
    (3)  embedded Gaussian:   f = exp(θ(x_i)ᵀ φ(x_j)),      C(x) = Σ_j f          (a softmax over j)
    (4)  dot product:         f = θ(x_i)ᵀ φ(x_j),           C(x) = N, the number of positions j
    (5)  concatenation:       f = ReLU(w_fᵀ [θ(x_i), φ(x_j)]), C(x) = N
    (6)  z_i = W_z y_i + x_i  (residual; W_z is a 1×1(×1) conv followed by batch norm)

θ, φ and g are 1×1 (2-D) or 1×1×1 (3-D) convolutions to C/2 channels (the "bottleneck" of §3.3).

Where the official code (facebookresearch/video-nonlocal-net) differs from the paper text, this file
follows the code:
- the embedded-Gaussian logits are scaled by 1/√d (d = C/2) before the softmax (``scale``, on by default;
  the paper does not mention it);
- φ and g are sub-sampled by a 2×2 spatial max-pooling (1×2×2 for clips; ``subsample``), so keys lie on a
  grid of twice the stride of the queries;
- the batch norm after W_z has its γ initialised to zero, so a fresh block is the identity;
- θ, φ, g and W_z have biases and are initialised from N(0, 0.01²).
The released code implements the embedded Gaussian (and dot product); the Gaussian and concatenation
forms follow the paper: the Gaussian uses x itself (sub-sampled like φ) for both sides of eq. (2), and
concatenation splits w_f into its θ and φ halves, so ReLU(w_θᵀθ_i + w_φᵀφ_j) needs no N×N×2d tensor.

Capture (trace contract): ``nonlocal/<block>/attn`` (Tq·Hq·Wq, Tk·Hk·Wk) — the normalised f/C(x)
rows; for the two softmax forms it is recorded as its factors (θ, φ and the scale) and materialised on
demand; for dot product and concatenation also ``nonlocal/<block>/pairwise``, the un-normalised f.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from relviz.core.capture import active_recorder

INSTANTIATIONS = ("gaussian", "embedded", "dot", "concat")
_ALIASES = {
    "embedded_gaussian": "embedded",
    "embedded-gaussian": "embedded",
    "softmax": "embedded",
    "dot_product": "dot",
    "dot-product": "dot",
    "concatenation": "concat",
}


def canonical_instantiation(name: str) -> str:
    key = str(name).lower()
    key = _ALIASES.get(key, key)
    if key not in INSTANTIATIONS:
        from relviz.core.errors import BadInputError

        raise BadInputError(
            f"unknown non-local instantiation {name!r}; valid ones: {', '.join(INSTANTIATIONS)} "
            "(embedded = embedded Gaussian)"
        )
    return key


class NonLocalBlock(nn.Module):
    """A non-local block on (B, C, H, W) images (``dim=2``) or (B, C, T, H, W) clips (``dim=3``)."""

    def __init__(
        self,
        channels: int,
        dim: int = 2,
        instantiation: str = "embedded",
        inner_channels: int | None = None,
        subsample: bool = True,
        scale: bool = True,
        name: str = "nl",
    ) -> None:
        super().__init__()
        if dim not in (2, 3):
            raise ValueError("a non-local block is 2-D or 3-D")
        self.dim = dim
        self.instantiation = canonical_instantiation(instantiation)
        self.inner = inner_channels or max(1, channels // 2)
        self.subsample = subsample
        self.scale = scale
        self.name = name
        self.input_stride = 1  # model-input pixels per cell (set by the network)
        self.frame_stride = 1  # input frames per time step (set by the network)
        conv = nn.Conv2d if dim == 2 else nn.Conv3d
        if self.instantiation != "gaussian":
            self.theta = conv(channels, self.inner, 1)
            self.phi = conv(channels, self.inner, 1)
        self.g = conv(channels, self.inner, 1)
        if self.instantiation == "concat":
            # w_f of eq. (5) split into the halves acting on θ_i and on φ_j
            self.concat_theta = nn.Parameter(torch.empty(self.inner))
            self.concat_phi = nn.Parameter(torch.empty(self.inner))
        self.w_z = conv(self.inner, channels, 1)
        self.bn = (nn.BatchNorm2d if dim == 2 else nn.BatchNorm3d)(channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for mod in (getattr(self, "theta", None), getattr(self, "phi", None), self.g, self.w_z):
            if mod is not None and mod.weight.device.type != "meta":
                nn.init.normal_(mod.weight, std=0.01)
                nn.init.zeros_(mod.bias)
        if self.instantiation == "concat" and self.concat_theta.device.type != "meta":
            nn.init.normal_(self.concat_theta, std=0.01)
            nn.init.normal_(self.concat_phi, std=0.01)
        if self.bn.weight.device.type != "meta":
            nn.init.zeros_(self.bn.weight)  # zero γ: the block starts as the identity (official code)
            nn.init.zeros_(self.bn.bias)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, instantiation={self.instantiation}, inner={self.inner}, "
            f"subsample={self.subsample}, scale={self.scale}"
        )

    def _pool(self, t: torch.Tensor) -> torch.Tensor:
        if not self.subsample:
            return t
        if self.dim == 2:
            return F.max_pool2d(t, 2, 2)
        return F.max_pool3d(t, (1, 2, 2), (1, 2, 2))

    def key_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """(T, H, W) of the key grid for a query grid of ``shape`` (T, H, W)."""
        t, h, w = shape
        return (t, h // 2, w // 2) if self.subsample else (t, h, w)

    def affinity(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
        """(attention f/C(x) (B, Nq, Nk), the un-normalised f or None, the softmax factors or {})."""
        if self.instantiation == "gaussian":
            q = x.flatten(2).transpose(1, 2)  # (B, Nq, C): eq. (2) uses x itself
            k = self._pool(x).flatten(2).transpose(1, 2)
            attn = torch.softmax(q @ k.transpose(1, 2), dim=-1)
            return attn, None, {"q": q, "k": k, "scale": 1.0}
        theta = self.theta(x).flatten(2).transpose(1, 2)  # (B, Nq, d)
        phi = self._pool(self.phi(x)).flatten(2).transpose(1, 2)  # (B, Nk, d)
        n = phi.shape[1]
        if self.instantiation == "embedded":
            scale = self.inner**-0.5 if self.scale else 1.0
            attn = torch.softmax((theta @ phi.transpose(1, 2)) * scale, dim=-1)  # eq. (3)
            return attn, None, {"q": theta, "k": phi, "scale": scale}
        if self.instantiation == "dot":
            pairwise = theta @ phi.transpose(1, 2)  # eq. (4)
        else:
            a = theta @ self.concat_theta  # (B, Nq)
            c = phi @ self.concat_phi  # (B, Nk)
            pairwise = F.relu(a[:, :, None] + c[:, None, :])  # eq. (5)
        return pairwise / n, pairwise, {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        attn, pairwise, factors = self.affinity(x)
        gx = self._pool(self.g(x)).flatten(2).transpose(1, 2)  # (B, Nk, d)
        y = (attn @ gx).transpose(1, 2).reshape(shape[0], self.inner, *shape[2:])  # eq. (1)
        z = self.bn(self.w_z(y)) + x  # eq. (6)
        rec = active_recorder()
        if rec is not None:
            self._record(rec, x, attn, pairwise, factors)
        return z

    def _record(self, rec, x: torch.Tensor, attn, pairwise, factors: dict) -> None:
        prefix = f"nonlocal/{self.name}"
        if factors:
            # (B, 1, N, d): one "head"; the zoo drops the singleton axes so the tensor is (Nq, Nk)
            rec.append_attention(f"{prefix}/attn", factors["q"][:, None], factors["k"][:, None], factors["scale"])
        else:
            rec.set(f"{prefix}/attn", attn)
            rec.set(f"{prefix}/pairwise", pairwise)
        qshape = (1, *x.shape[2:]) if self.dim == 2 else tuple(x.shape[2:])
        kshape = self.key_shape(qshape)
        rec.meta.setdefault("nonlocal_blocks", {})[self.name] = {
            "instantiation": self.instantiation,
            "dim": self.dim,
            "scale": bool(self.scale and self.instantiation == "embedded"),
            "subsample": bool(self.subsample),
            "query_shape": list(qshape),
            "key_shape": list(kshape),
            "query_stride": self.input_stride,
            "key_stride": self.input_stride * (2 if self.subsample else 1),
            "frame_stride": self.frame_stride,
        }
