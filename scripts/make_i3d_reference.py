"""Reference outputs of mmaction2's I3D ResNet-50 + non-local for relviz's tests (``tests/data/i3d/``).

Run once, in a scratch environment that has mmaction2 (never a relviz dependency)::

    python -m venv /tmp/mm && . /tmp/mm/bin/activate
    pip install torch==2.14.1 torchvision==0.29.1 mmengine "mmcv-lite==2.1.0" einops importlib_metadata scipy
    pip install --no-deps mmaction2==1.2.0
    python scripts/make_i3d_reference.py [--out tests/data/i3d] [--base-channels 4]

It builds mmaction2's own model from its own config files
(``i3d_imagenet-pretrained-r50-nl-{embedded-gaussian,dot-product,gaussian}_8xb8-32x2x1-100e_kinetics400-rgb``),
with the full key layout but narrower stages (``backbone.base_channels``, an mmaction2 setting) and 10 classes
so the files stay small; the weights are seeded, the batch norms calibrated on the clip (so activations stay
near unit scale) and then given random affine terms, and θ/φ widened so the attention is far from uniform.
Embedded Gaussian and dot product share one set of weights (their keys are identical); the Gaussian file is
the same weights without θ/φ.  For each mode it writes the mmengine checkpoint (``meta.cfg`` = the config text)
and the model's logits and every non-local block's attention (``pairwise_weight`` inside mmcv's
``NonLocal3d``) of its float64 run (attention rounded to float32; for the Gaussian the row arg-max), with its
float32 logits and its own float32-vs-float64 deviation beside them.  ``clip.npz`` holds the input frames
(T, H, W, 3), uint8 RGB.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

MODES = ("embedded-gaussian", "dot-product", "gaussian")
SEED = 15


def _import_mmaction():
    """mmaction2 1.2.0's wheel lacks ``mmaction.models.localizers.drn``: stub it before the import."""
    stub = types.ModuleType("mmaction.models.localizers.drn.drn")
    stub.DRN = None
    sys.modules.setdefault("mmaction.models.localizers.drn", types.ModuleType("mmaction.models.localizers.drn"))
    sys.modules.setdefault("mmaction.models.localizers.drn.drn", stub)
    import mmaction
    import mmaction.models  # noqa: F401 — registers the models
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    DefaultScope.get_instance("relviz-reference", scope_name="mmaction")
    return mmaction, Config


def make_clip(frames: int, height: int, width: int, seed: int) -> np.ndarray:
    """A smooth synthetic clip: two coloured discs moving over a gradient and a texture (compresses well)."""
    phase = np.random.default_rng(seed).uniform(0, np.pi, 3).astype(np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        img = np.stack([xx / width * 160 + 40, yy / height * 120 + 60, np.full_like(xx, 90.0)], -1)
        for (cx, cy, vx, vy, r, colour) in ((20, 30, 5, 2, 14, (230, 40, 40)), (100, 80, -4, -1, 18, (40, 60, 220))):
            mask = (xx - cx - vx * t) ** 2 + (yy - cy - vy * t) ** 2 < r * r
            img[mask] = colour
        img += 12 * np.sin(xx[..., None] * 0.35 + t * 0.2 + phase) * np.cos(yy[..., None] * 0.27)
        out[t] = (np.clip(img, 0, 255) // 4 * 4).astype(np.uint8)
    return out


def build(Config, root: Path, mode: str, base: int, classes: int):
    from mmaction.registry import MODELS

    cfg = Config.fromfile(str(root / f"i3d_imagenet-pretrained-r50-nl-{mode}_8xb8-32x2x1-100e_kinetics400-rgb.py"))
    cfg.model.backbone.pretrained = None
    cfg.model.backbone.base_channels = base
    cfg.model.cls_head.in_channels = base * 8 * 4
    cfg.model.cls_head.num_classes = classes
    return cfg, MODELS.build(cfg.model)


def randomise(model, x: torch.Tensor, seed: int) -> None:
    """Random affine terms in every batch norm, θ/φ wider, then the batch-norm statistics calibrated on ``x``
    (one train-mode pass, momentum 1) so activations stay near unit scale; a non-local block's output BN keeps
    mean 0 / variance 1 (its input can be nearly constant over positions, and would be blown up)."""
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    outs = [m.conv_out.bn for name, m in model.named_modules() if name.endswith("non_local_block")]
    with torch.no_grad():
        for m in bns:
            m.weight.uniform_(0.6, 1.2, generator=g)
            m.bias.normal_(0, 0.1, generator=g)
            m.momentum = 1.0
        for m in outs:
            m.weight.uniform_(0.3, 0.6, generator=g)
        for name, m in model.named_modules():
            if name.endswith("non_local_block"):
                for part in ("theta", "phi"):
                    conv = getattr(m, part, None)
                    if isinstance(conv, torch.nn.Sequential):  # sub-sampled: (ConvModule, max-pool)
                        conv = conv[0]
                    conv = getattr(conv, "conv", None)
                    if conv is None:  # the Gaussian has no θ, and its φ is only the max-pool
                        continue
                    conv.weight.normal_(0, 0.5 / conv.weight.shape[1] ** 0.5, generator=g)
                    conv.bias.zero_()
                m.conv_out.conv.weight.normal_(0, 1 / m.conv_out.conv.weight.shape[1] ** 0.5, generator=g)
        head = model.cls_head.fc_cls
        head.weight.normal_(0, 1 / head.weight.shape[1] ** 0.5, generator=g)
        head.bias.normal_(0, 0.1, generator=g)
        model.train()
        for m in outs:
            m.eval()
        model.backbone(x)
    for m in bns:
        m.momentum = 0.1
    model.eval()


def run(model, x: torch.Tensor) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Logits and every non-local block's attention (captured inside mmcv's pairwise function)."""
    attention: dict[str, np.ndarray] = {}
    for name, m in model.backbone.named_modules():
        if name.endswith("non_local_block"):
            stage, block = name.split(".")[:2]
            key = f"res{int(stage[len('layer'):]) + 1}.{block}"
            original = getattr(type(m), m.mode).__get__(m)

            def capture(theta, phi, _original=original, _key=key):
                weight = _original(theta, phi)
                attention[_key] = weight[0].detach().cpu().numpy()
                return weight

            setattr(m, m.mode, capture)
    with torch.no_grad():
        logits = model.cls_head(model.backbone(x))
    return logits[0].cpu().numpy(), attention


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/data/i3d")
    parser.add_argument("--base-channels", type=int, default=4)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, nargs=2, default=(112, 144), metavar=("H", "W"))
    args = parser.parse_args()
    mmaction, Config = _import_mmaction()
    import mmengine
    from mmengine.runner.checkpoint import save_checkpoint

    root = Path(mmaction.__file__).parent / ".mim" / "configs" / "recognition" / "i3d"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frames = make_clip(args.frames, *args.size, seed=SEED)
    np.savez_compressed(out / "clip.npz", frames=frames)
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1, 1)
    x = (torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() - mean) / std  # N·C·T·H·W
    torch.manual_seed(SEED)
    _, shared = build(Config, root, "embedded-gaussian", args.base_channels, args.classes)
    weights = shared.state_dict()  # the seeded convolutions every mode shares
    classes = [f"action {i}" for i in range(args.classes)]
    for mode in MODES:
        cfg, model = build(Config, root, mode, args.base_channels, args.classes)
        state = {k: v for k, v in weights.items() if k in model.state_dict()}
        model.load_state_dict(state, strict=True)
        randomise(model, x, SEED)  # each form its own batch-norm statistics: the dot product is not normalised
        state = model.state_dict()
        meta = {"mmengine_version": mmengine.__version__, "cfg": cfg.pretty_text, "seed": SEED,
                "experiment_name": f"i3d-nl-{mode}-tiny", "time": time.strftime("%Y%m%d_%H%M%S"), "epoch": 100}
        if mode == "embedded-gaussian":
            meta["dataset_meta"] = {"classes": classes}  # the others carry no names: relviz says 'class N'
        name = mode.replace("-", "_")
        save_checkpoint({"meta": meta, "state_dict": state}, str(out / f"i3d_nl_{name}.pth"))
        logits32, attn32 = run(model, x)
        model64 = copy.deepcopy(model).double()
        logits64, attn64 = run(model64, x.double())
        arrays = {"logits": logits64, "logits32": logits32}
        for key in attn32:
            if mode == "gaussian":  # near one-hot: the row arg-max is what can be compared
                arrays[f"argmax/{key}"] = attn32[key].argmax(-1).astype(np.int32)
                arrays[f"argmax64/{key}"] = attn64[key].argmax(-1).astype(np.int32)
            else:
                arrays[f"attn/{key}"] = attn64[key].astype(np.float32)  # the float64 run, rounded once
        dev = max(float(np.abs(attn32[k] - attn64[k]).max()) for k in attn32)
        arrays["mmaction_f32_vs_f64"] = np.array([np.abs(logits32 - logits64).max(), dev])  # logits, attention
        np.savez_compressed(out / f"reference_{name}.npz", **arrays)
        print(f"{mode}: logits {logits32[:3]}…, mmaction2 float32 vs float64: logits "
              f"{np.abs(logits32 - logits64).max():.2e}, attention {dev:.2e}; blocks {sorted(attn32)} "
              f"{[attn32[k].shape for k in sorted(attn32)]}")
    print("wrote", sorted(os.listdir(out)))


if __name__ == "__main__":
    main()
