"""Shipping a trained module: compact safetensors that compute the same function in eval mode.

``weights/`` must stay small (all six demo models under 40 MB), so the big ResNet convolutions go to
float8 with an exact batch-norm compensation and the rest to float16 (:func:`compact_state`);
:func:`export_and_reload` reads the file back into the module, so what a recipe measures is what ships.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch


def _conv_bn_pairs(state: dict[str, torch.Tensor]) -> dict[str, str]:
    """Conv weights followed directly by a batch norm (torchvision ResNet names) → that norm's prefix."""
    pairs = {}
    for key in state:
        m = re.fullmatch(r"(.*)\.conv(\d)\.weight", key) or re.fullmatch(r"(.*)\.downsample\.0\.weight", key)
        if m is None:
            continue
        bn = f"{m.group(1)}.bn{m.group(2)}" if "conv" in key.rsplit(".", 2)[-2] else f"{m.group(1)}.downsample.1"
        if f"{bn}.running_var" in state:
            pairs[key] = bn
    return pairs


FP8_MIN_NUMEL = 16384


def compact_state(state: dict[str, torch.Tensor], fp8_convs: bool = True) -> dict[str, torch.Tensor]:
    """A smaller state dict computing the same function in eval mode (weights/ must stay under 40 MB).

    - Conv weights followed by batch norm are stored as float8 (e4m3) *per output channel rescaled* to
      the format's range, the norm's statistics and scale compensating exactly: with x' = s·x,
      ``γ'(x' − s·μ)/√(s²σ² + ε) = γ(x − μ)/√(σ² + ε)`` when ``γ' = γ·√(s²σ² + ε)/(s·√(σ² + ε))``.
      Only the rounding of the weights to 3 mantissa bits changes the numbers.
    - Batch-norm tensors stay float32 (they are tiny, and s²σ² overflows float16); every other
      floating tensor is stored as float16.
    Loading casts everything back to the model's float32 parameters.
    """
    out = {k: v.detach().clone().contiguous() for k, v in state.items()}
    all_pairs = _conv_bn_pairs(out)
    # every conv-bn pair's norm stays float32: after a float8 export its statistics are rescaled beyond
    # float16's range, and re-compacting such a file must not overflow them
    bn_prefixes = set(all_pairs.values())
    # only big kernels go float8 (ResNet-18's 3×3 convs: 98 % of its weights)
    pairs = {k: v for k, v in all_pairs.items() if fp8_convs and out[k].numel() >= FP8_MIN_NUMEL}
    for conv, bn in pairs.items():
        w = out[conv].double()
        peak = w.abs().flatten(1).amax(1).clamp_min(1e-12)
        scale = 240.0 / peak  # e4m3fn's largest value is 448; keep headroom
        q = (w * scale.view(-1, 1, 1, 1)).to(torch.float8_e4m3fn)
        mean, var = out[f"{bn}.running_mean"].double(), out[f"{bn}.running_var"].double()
        gamma = out[f"{bn}.weight"].double()
        eps = 1e-5
        new_var = scale**2 * var
        out[f"{bn}.weight"] = (gamma * torch.sqrt(new_var + eps) / (scale * torch.sqrt(var + eps))).float()
        out[f"{bn}.running_mean"] = (scale * mean).float()
        out[f"{bn}.running_var"] = new_var.float()
        out[conv] = q
    for k, v in out.items():
        if k in pairs or any(k.startswith(p + ".") for p in bn_prefixes):
            continue
        if v.is_floating_point() and v.numel() and float(v.abs().max()) > 60000:
            continue  # beyond float16: stays float32
        if v.is_floating_point():
            out[k] = v.half()
    return out


def export_safetensors(
    module: torch.nn.Module, path: Path, metadata: dict[str, str] | None = None, compact: bool = True
) -> Path:
    """Write the state dict as safetensors (compacted by :func:`compact_state` unless ``compact=False``)."""
    from safetensors.torch import save_file

    state = module.state_dict()
    state = compact_state(state) if compact else {k: v.detach().contiguous().clone() for k, v in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=metadata or {})
    os.chmod(tmp, 0o644)
    tmp.replace(path)
    return path


def export_and_reload(module: torch.nn.Module, path: Path, metadata: dict[str, str] | None = None) -> Path:
    """Export ``module`` compactly and load the file back into it, so what is measured is what ships."""
    from relviz.core.checkpoint import load_checkpoint

    export_safetensors(module, path, metadata)
    module.load_state_dict(load_checkpoint(path).state_dict, strict=True)
    return path
