"""Classification patches for LR-Net: the class is a shape *and* a texture, so it needs local structure.

Each patch is a small image (default 32×32) of one shape (circle, square or triangle) drawn solid or
striped, in a random colour over a random grey background, at a random size and place.  Colour and
position tell nothing about the class (6 classes = 3 shapes × 2 textures): only the local geometry of
edges and stripes does, which is what LR-Net's local relation layer aggregates.  Patch ``index`` of data
set ``seed`` comes from ``numpy.random.default_rng([seed, index])``: the same seed gives the same bytes.
"""

from __future__ import annotations

import numpy as np

from relviz.train.scenes import KINDS, shape_mask
from relviz.zoo.demo import PATCH_CLASSES, PATCH_TEXTURES  # noqa: F401


def make_patch(seed: int, index: int = 0, size: int = 32) -> tuple[np.ndarray, int]:
    """(image (size, size, 3) uint8, class index) for patch ``index`` of data set ``seed``."""
    rng = np.random.default_rng([seed, index, 1])
    label = int(rng.integers(len(PATCH_CLASSES)))
    kind, texture = KINDS[label // 2], PATCH_TEXTURES[label % 2]
    grey = rng.integers(40, 216)
    img = np.clip(grey + rng.normal(0, 6, size=(size, size, 1)) + rng.integers(-15, 16, size=3), 0, 255)
    side = int(rng.integers(size // 2, size - 3))
    x0, y0 = (int(v) for v in rng.integers(0, size - side + 1, size=2))
    mask = shape_mask(kind, side, rng)
    hue_colour = rng.integers(0, 256, size=3).astype(np.float32)
    # keep the shape visible against the background: push its colour away from the grey
    if np.abs(hue_colour.mean() - grey) < 60:
        hue_colour = np.clip(hue_colour + (80 if grey < 128 else -80), 0, 255)
    pixels = np.broadcast_to(hue_colour, (side, side, 3)).copy()
    if texture == "striped":
        yy, xx = np.mgrid[0:side, 0:side]
        period = int(rng.integers(3, 6))
        stripes = ((xx if rng.random() < 0.5 else yy) // period) % 2 == 0
        pixels[stripes] = pixels[stripes] * 0.35 + (255 - pixels[stripes]) * 0.35
    region = img[y0 : y0 + side, x0 : x0 + side]
    region[mask] = pixels[mask]
    return np.round(img).astype(np.uint8), label


def make_patches(seed: int, n: int, size: int = 32, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(N, size, size, 3) uint8 images and (N,) int64 labels."""
    items = [make_patch(seed, start + i, size) for i in range(n)]
    return np.stack([im for im, _ in items]), np.array([lb for _, lb in items], dtype=np.int64)
