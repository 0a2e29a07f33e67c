"""Classification tasks (LR-Net patches, Non-local pair images and motion clips): data, inputs, top-1.

Inputs are preprocessed exactly as the zoo families do at run time (shorter side resized to the model's
``input_size``, ImageNet mean/std), so the accuracy measured here is the one a user gets from
``relviz eval``.  The recipes that train on these tasks are in :mod:`relviz.train.classifiers`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from relviz.train import longrange, patches

#: generator(seed, start, n) → (uint8 images (N,H,W,3) or clips (N,T,H,W,3), int64 labels)
GENERATORS: dict[str, Callable[[int, int, int], tuple[np.ndarray, np.ndarray]]] = {
    "patches": lambda seed, start, n: patches.make_patches(seed, n, start=start),
    "pairs": lambda seed, start, n: longrange.make_pair_images(seed, n, start=start),
    "clips": lambda seed, start, n: longrange.make_motion_clips(seed, n, start=start),
}
GENERATOR_NAMES = {
    "patches": "relviz.train.patches.make_patch (32×32)",
    "pairs": "relviz.train.longrange.make_pair_image (64×64)",
    "clips": "relviz.train.longrange.make_motion_clip (8 frames of 64×64)",
}
#: each task's training data seed: ``relviz.train.common.TRAIN_SEED`` + offset
TASK_SEED_OFFSET = {"patches": 1, "pairs": 2, "clips": 3}
CLASS_NAMES = {
    "patches": list(patches.PATCH_CLASSES),
    "pairs": list(longrange.IMAGE_CLASSES),
    "clips": list(longrange.CLIP_CLASSES),
}


def to_tensor(items: np.ndarray, input_size: int) -> torch.Tensor:
    """uint8 images (N,H,W,3) → (N,3,h,w), or clips (N,T,H,W,3) → (N,3,T,h,w), as the families preprocess."""
    from relviz.zoo.inputs import normalise
    from relviz.zoo.lrnet import resize_shorter

    if items.ndim == 5:
        return torch.stack([torch.stack([normalise(resize_shorter(f, input_size)) for f in clip], 1) for clip in items])
    return torch.stack([normalise(resize_shorter(im, input_size)) for im in items])


def evaluate_classifier(loaded, task: str, seed: int, n: int, batch: int = 64) -> float:
    """Top-1 of a loaded zoo classifier (LR-Net or Non-local) on ``n`` fresh items of ``task``."""
    module = loaded.module
    size = int(loaded.config.get("input_size", module.config.get("input_size", 64)))
    correct = 0
    with torch.inference_mode():
        for start in range(0, n, batch):
            items, labels = GENERATORS[task](seed, start, min(batch, n - start))
            logits = module(to_tensor(items, size).to(loaded.device, loaded.dtype))
            correct += int((logits.argmax(-1).cpu() == torch.from_numpy(labels)).sum())
    return correct / n


def top1(module: torch.nn.Module, task: str, input_size: int, seed: int, n: int) -> float:
    was = module.training
    module.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, n, 100):
            items, labels = GENERATORS[task](seed, start, min(100, n - start))
            correct += int((module(to_tensor(items, input_size)).argmax(-1) == torch.from_numpy(labels)).sum())
    module.train(was)
    return correct / n
