"""Multi-head attention with ``nn.MultiheadAttention``'s parameters, recording its factors.

The parameter names (``in_proj_weight``, ``in_proj_bias``, ``out_proj``) are those of
``torch.nn.MultiheadAttention``, so official checkpoints load unchanged.  The forward pass uses fused
``scaled_dot_product_attention`` always; when a recorder is active it also keeps the per-head queries
and keys (already computed, so recording costs no extra compute) from which any row of the attention
matrix — or the whole of it — is rebuilt on demand.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from relviz.core.capture import active_recorder


class MultiheadAttention(nn.Module):
    """Batch-first multi-head attention: ``softmax(q kᵀ / √d_head) v`` per head, then ``out_proj``."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, trace_name: str = ""):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.head_dim = embed_dim // num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        self.trace_name = trace_name
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # as nn.MultiheadAttention
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """query (B, Nq, D), key/value (B, Nk, D), key_padding_mask (B, Nk) True = padding."""
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        q = self._heads(F.linear(query, w_q, b_q))
        k = self._heads(F.linear(key, w_k, b_k))
        v = self._heads(F.linear(value, w_v, b_v))
        recorder = active_recorder()
        if recorder is not None and self.trace_name:
            recorder.append_attention(self.trace_name, q, k, self.head_dim**-0.5, key_padding_mask)
        mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        out = out.transpose(1, 2).reshape(query.shape[0], query.shape[1], self.embed_dim)
        return self.out_proj(out)
