"""Write the sample inputs in ``resources/``: scenes, a patch, a pair image and a clip, all from seeds.

``python -m relviz.train.resources`` regenerates them byte for byte (PNG) — the clip goes through the
mp4v encoder, whose output is stable for a given OpenCV build.  ``resources/samples.json`` records each
file's generator, seed, index and ground truth, so tests and the README can check a model against it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from relviz.train import longrange, patches, scenes

RESOURCES = Path(__file__).resolve().parents[2] / "resources"
#: seeds for the samples: never used for training or evaluation (see common.TRAIN_SEED and EVAL_SEED)
SAMPLE_SEED = 7
SCENE_INDICES = (0, 1, 2, 3)
CLIP_UPSCALE = 4


def write_resources(out: Path = RESOURCES) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    # small classifier inputs in a subfolder, so the scenes come first in a sorted listing (the app opens the first)
    (out / "tiles").mkdir(exist_ok=True)
    info: dict = {"generator_seed": SAMPLE_SEED, "files": {}}
    for i in SCENE_INDICES:
        scene = scenes.make_scene(SAMPLE_SEED, i)
        name = f"scene-{i}.png"
        Image.fromarray(scene.image).save(out / name, optimize=False)
        info["files"][name] = {
            "generator": "relviz.train.scenes.make_scene",
            "seed": SAMPLE_SEED,
            "index": i,
            "objects": [
                {
                    "label": scenes.CLASSES[o.label],
                    "box": list(o.box),
                    "kind": o.kind,
                    "colour": scenes.COLOUR_NAMES[o.colour],
                    "texture": o.texture,
                }
                for o in scene.objects
            ],
        }
    for i in range(2):
        img, label = patches.make_patch(SAMPLE_SEED, i)
        name = f"tiles/patch-{i}.png"
        Image.fromarray(img).save(out / name)
        info["files"][name] = {
            "generator": "relviz.train.patches.make_patch",
            "seed": SAMPLE_SEED,
            "index": i,
            "label": patches.PATCH_CLASSES[label],
        }
    for i in range(2):
        img, label = longrange.make_pair_image(SAMPLE_SEED, i)
        name = f"tiles/pair-{i}.png"
        Image.fromarray(img).save(out / name)
        info["files"][name] = {
            "generator": "relviz.train.longrange.make_pair_image",
            "seed": SAMPLE_SEED,
            "index": i,
            "label": longrange.IMAGE_CLASSES[label],
        }
    clip, label = longrange.make_motion_clip(SAMPLE_SEED, 0, frames=16)
    write_clip(out / "clip-0.mp4", clip, CLIP_UPSCALE)
    info["files"]["clip-0.mp4"] = {
        "generator": "relviz.train.longrange.make_motion_clip",
        "seed": SAMPLE_SEED,
        "index": 0,
        "frames": 16,
        "upscale": CLIP_UPSCALE,
        "label": longrange.CLIP_CLASSES[label],
    }
    (out / "samples.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def write_clip(path: Path, frames: np.ndarray, upscale: int = 1, fps: float = 8.0) -> None:
    """Write (T, H, W, 3) RGB frames as an mp4v .mp4, each pixel an ``upscale``² block."""
    import cv2

    h, w = frames.shape[1] * upscale, frames.shape[2] * upscale
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    try:
        for frame in frames:
            big = frame.repeat(upscale, 0).repeat(upscale, 1)
            writer.write(cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


if __name__ == "__main__":
    written = write_resources()
    print(f"wrote {len(written['files'])} files to {RESOURCES}")
