"""Reference outputs of transformers' DetrForObjectDetection for relviz's Hugging Face DETR tests.

Run in a scratch environment that has transformers (never a relviz dependency), once per major version:

    python scripts/make_hf_detr_reference.py --transformers 5   # with transformers>=5 and timm installed
    python scripts/make_hf_detr_reference.py --transformers 4   # with transformers 4.x and timm

For each case it builds the config with transformers, records every tensor's name (Hub files, and transformers
5's in-memory names) and shape in ``tests/data/hf_detr/<case>/keys.json``, writes the weights with the tests'
own writer (``tests/hf_detr_fixture.py``), loads that folder with ``from_pretrained`` (strictly: no missing or
unexpected keys) and saves transformers' outputs on a padded batch of two images — logits, boxes and every
layer's per-head attention (eager attention, ``output_attentions=True``) — to ``reference.npz``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import hf_detr_fixture  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def coco_id2label() -> dict[int, str]:
    spec = importlib.util.spec_from_file_location("coco", ROOT / "relviz/models/coco.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(enumerate(module.COCO_CLASSES))


SMALL = dict(d_model=32, encoder_layers=2, decoder_layers=2, encoder_ffn_dim=48, decoder_ffn_dim=48, num_queries=7,
             id2label={0: "N/A", 1: "circle", 2: "N/A", 3: "square", 4: "odd"})


def cases(version: int) -> dict[str, dict]:
    from transformers import ResNetConfig

    if version == 5:
        bottleneck = ResNetConfig(embedding_size=8, hidden_sizes=[16, 24, 32, 48], depths=[1, 1, 2, 1],
                                  layer_type="bottleneck", out_features=["stage4"])
        basic = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 24, 32], depths=[1, 2, 1, 1],
                             layer_type="basic", out_features=["stage4"])
        return {
            "v5-resnet-sine": dict(SMALL, backbone_config=bottleneck, encoder_attention_heads=4,
                                   decoder_attention_heads=2),
            "v5-resnet-learned-gelu": dict(SMALL, backbone_config=basic, encoder_attention_heads=8,
                                           decoder_attention_heads=8, position_embedding_type="learned",
                                           activation_function="gelu"),
            "v5-timm-r18-coco": dict(SMALL, d_model=64, encoder_attention_heads=8, decoder_attention_heads=8,
                                     encoder_ffn_dim=64, decoder_ffn_dim=64, num_queries=10, id2label=coco_id2label(),
                                     use_timm_backbone=True, backbone="resnet18", use_pretrained_backbone=False),
        }
    return {
        "v4-timm-r18-learned": dict(SMALL, encoder_attention_heads=4, decoder_attention_heads=4,
                                    position_embedding_type="learned", use_timm_backbone=True, backbone="resnet18",
                                    use_pretrained_backbone=False),
        "v4-timm-r50-dc5": dict(SMALL, encoder_attention_heads=4, decoder_attention_heads=4, use_timm_backbone=True,
                                backbone="resnet50", use_pretrained_backbone=False, dilation=True),
    }


def images() -> list[np.ndarray]:
    rng = np.random.default_rng(14)
    return [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8), rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)]


def normalised(image: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
    return (x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)


def batch(ims: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded bottom-right, pixel_mask 1 on real pixels (as DetrImageProcessor pads)."""
    h = max(i.shape[0] for i in ims)
    w = max(i.shape[1] for i in ims)
    values = torch.zeros(len(ims), 3, h, w)
    mask = torch.zeros(len(ims), h, w, dtype=torch.long)
    for n, im in enumerate(ims):
        values[n, :, : im.shape[0], : im.shape[1]] = normalised(im)
        mask[n, : im.shape[0], : im.shape[1]] = 1
    return values, mask


def keys_of(model, version: int, scratch: Path) -> list[list]:
    """[hub name, in-memory name (transformers 5) or None, shape] of every tensor the model saves."""
    from safetensors import safe_open

    model.save_pretrained(scratch)
    with safe_open(str(scratch / "model.safetensors"), "pt") as fh:
        hub = {k: fh.get_tensor(k) for k in fh.keys()}
    memory = model.state_dict()
    rows = []
    for name, tensor in hub.items():
        twin = None
        if version == 5:  # the in-memory name holding the same values
            twin = next(k for k, v in memory.items() if v.shape == tensor.shape and torch.equal(v, tensor))
        rows.append([name, twin, list(tensor.shape)])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transformers", type=int, choices=(4, 5), required=True)
    args = parser.parse_args()
    import transformers
    from transformers import DetrConfig, DetrForObjectDetection

    assert int(transformers.__version__.split(".")[0]) == args.transformers, transformers.__version__
    for case, kwargs in cases(args.transformers).items():
        torch.manual_seed(0)
        model = DetrForObjectDetection(DetrConfig(**kwargs)).eval()
        out_dir = hf_detr_fixture.DATA / case
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            # distinct random values everywhere, so each Hub name finds its in-memory twin by value
            with torch.no_grad():
                for p in model.state_dict().values():
                    if p.is_floating_point():
                        p.copy_(torch.randn_like(p))
            rows = keys_of(model, args.transformers, Path(tmp) / "raw")
            (out_dir / "keys.json").write_text(json.dumps(rows, indent=0) + "\n")
            (out_dir / "config.json").write_text((Path(tmp) / "raw" / "config.json").read_text())
            folder = hf_detr_fixture.write_folder(case, Path(tmp) / "fixture")
            loaded, info = DetrForObjectDetection.from_pretrained(folder, attn_implementation="eager",
                                                                   output_loading_info=True)
        bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        assert not bad, (case, bad)
        loaded.eval()
        ims = images()
        values, mask = batch(ims)
        with torch.no_grad():
            out = loaded(pixel_values=values, pixel_mask=mask, output_attentions=True)
        np.savez_compressed(
            out_dir / "reference.npz",
            image0=ims[0], image1=ims[1], pixel_values=values.numpy(), pixel_mask=mask.numpy(),
            logits=out.logits.numpy(), pred_boxes=out.pred_boxes.numpy(),
            encoder=torch.stack(out.encoder_attentions).numpy(),
            decoder_self=torch.stack(out.decoder_attentions).numpy(),
            decoder_cross=torch.stack(out.cross_attentions).numpy(),
            transformers_version=np.array(transformers.__version__),
        )
        print(case, "logits", tuple(out.logits.shape), "encoder", tuple(out.encoder_attentions[0].shape))


if __name__ == "__main__":
    main()
