"""An independent DETR transformer built from ``torch.nn.MultiheadAttention``, sequence-first, as the
official code is, fed the same state dict.  Tests compare relviz's model and capture against it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _mha(state: dict[str, torch.Tensor], prefix: str, d: int, heads: int) -> nn.MultiheadAttention:
    mha = nn.MultiheadAttention(d, heads)
    mha.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    return mha.eval()


def _linear(state, prefix):
    return lambda x: F.linear(x, state[prefix + ".weight"], state[prefix + ".bias"])


def _norm(state, prefix):
    return lambda x: F.layer_norm(x, x.shape[-1:], state[prefix + ".weight"], state[prefix + ".bias"])


@torch.no_grad()
def reference_transformer(state, src, mask, pos, heads, enc_layers, dec_layers):
    """Post-norm DETR transformer.  src/pos (B, C, h, w), mask (B, h, w).

    Returns the last decoder output after the final norm (B, Q, C) and, per layer, the head-mean
    attention weights ``nn.MultiheadAttention`` returns by default.
    """
    d = src.shape[1]
    src = src.flatten(2).permute(2, 0, 1)
    pos = pos.flatten(2).permute(2, 0, 1)
    mask = mask.flatten(1)
    query = state["query_embed.weight"].unsqueeze(1).repeat(1, src.shape[1], 1)
    weights = {"encoder": [], "decoder_self": [], "decoder_cross": []}
    x = src
    for i in range(enc_layers):
        p = f"transformer.encoder.layers.{i}"
        attn = _mha(state, f"{p}.self_attn.", d, heads)
        out, w = attn(x + pos, x + pos, x, key_padding_mask=mask)
        weights["encoder"].append(w)
        x = _norm(state, f"{p}.norm1")(x + out)
        x = _norm(state, f"{p}.norm2")(x + _linear(state, f"{p}.linear2")(F.relu(_linear(state, f"{p}.linear1")(x))))
    memory = x
    t = torch.zeros_like(query)
    for i in range(dec_layers):
        p = f"transformer.decoder.layers.{i}"
        out, w = _mha(state, f"{p}.self_attn.", d, heads)(t + query, t + query, t)
        weights["decoder_self"].append(w)
        t = _norm(state, f"{p}.norm1")(t + out)
        out, w = _mha(state, f"{p}.multihead_attn.", d, heads)(t + query, memory + pos, memory,
                                                                key_padding_mask=mask)
        weights["decoder_cross"].append(w)
        t = _norm(state, f"{p}.norm2")(t + out)
        t = _norm(state, f"{p}.norm3")(t + _linear(state, f"{p}.linear2")(F.relu(_linear(state, f"{p}.linear1")(t))))
    t = _norm(state, "transformer.decoder.norm")(t)
    return t.transpose(0, 1), weights
