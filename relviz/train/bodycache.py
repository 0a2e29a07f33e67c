"""Features of a frozen backbone for a fixed pool of training scenes, computed once and kept on disk.

With its ResNet body frozen, DETR's transformer sees only the body's last feature map (512 channels on a
stride-32 grid): computing it once per scene and training the transformer on the stored maps spends the
CPU on what learns, instead of on the same frozen convolutions at every step.  The pool is a fixed set of
scenes (items ``0 .. n-1`` of the training seed), so the store is keyed by the body's bytes, the input
size and the pool; a resumed or repeated run reads it back instead of computing it again.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from relviz.train import scenes
from relviz.train.common import log, save_state

#: scenes pushed through the body at once while caching
CHUNK = 32


@dataclass
class FeaturePool:
    """Body features of ``n`` scenes (float16, (n, C, h, w)) and each scene's targets as DETR wants them:
    class ids and normalised cxcywh boxes, concatenated, scene ``i`` owning rows ``offsets[i]:offsets[i+1]``."""

    features: torch.Tensor
    labels: torch.Tensor
    boxes: torch.Tensor
    offsets: torch.Tensor

    def __len__(self) -> int:
        return self.features.shape[0]

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """Float32 features of the scenes ``indices`` and their targets."""
        targets = []
        for i in indices.tolist():
            lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
            targets.append({"labels": self.labels[lo:hi], "boxes": self.boxes[lo:hi]})
        return self.features[indices].float(), targets


def body_digest(body: nn.Module) -> str:
    """A short hash of a module's tensors: the store's key for "the same frozen body"."""
    h = hashlib.sha256()
    for name, tensor in body.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def scene_targets(scene: scenes.Scene) -> tuple[torch.Tensor, torch.Tensor]:
    """A scene's class ids and boxes as normalised (cx, cy, w, h), DETR's target format."""
    h, w = scene.image.shape[:2]
    b = scene.boxes / np.array([w, h, w, h], dtype=np.float32)
    cxcywh = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)
    return torch.from_numpy(scene.labels), torch.from_numpy(cxcywh.astype(np.float32))


@torch.no_grad()
def build_pool(body: nn.Module, seed: int, n: int, shorter: int) -> FeaturePool:
    """Push scenes ``0 .. n-1`` of ``seed``, preprocessed as the DETR family does, through ``body`` (eval mode)."""
    from relviz.zoo.detr import preprocess

    body.eval()
    features, labels, boxes, counts = [], [], [], [0]
    start = last = time.monotonic()
    for lo in range(0, n, CHUNK):
        chunk = [scenes.make_scene(seed, i) for i in range(lo, min(n, lo + CHUNK))]
        images = torch.stack([preprocess(s.image, shorter) for s in chunk])
        features.append(body(images).to(torch.float16))
        for s in chunk:
            lab, box = scene_targets(s)
            labels.append(lab)
            boxes.append(box)
            counts.append(len(lab))
        if time.monotonic() - last > 30:
            last = time.monotonic()
            done = min(n, lo + CHUNK)
            log(f"body features: {done}/{n} scenes, {done / (last - start):.1f} scenes/s")
    offsets = torch.tensor(np.cumsum(counts), dtype=torch.int64)
    return FeaturePool(torch.cat(features), torch.cat(labels), torch.cat(boxes), offsets)


def cached_pool(body: nn.Module, seed: int, n: int, shorter: int, folder: Path) -> FeaturePool:
    """:func:`build_pool`, stored in ``folder`` under a key of the body's bytes, seed, size and pool."""
    path = folder / f"body-features-{body_digest(body)}-s{seed}-r{shorter}-n{n}.pt"
    if path.is_file():
        stored = torch.load(path, weights_only=True)
        log(f"body features of {n} scenes read from {path}")
        return FeaturePool(**stored)
    start = time.monotonic()
    pool = build_pool(body, seed, n, shorter)
    save_state(path, features=pool.features, labels=pool.labels, boxes=pool.boxes, offsets=pool.offsets)
    log(f"body features of {n} scenes computed in {(time.monotonic() - start) / 60:.1f} min: {path}")
    return pool
