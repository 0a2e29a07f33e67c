"""Images and clips for Non-local networks, whose label needs a long-range interaction.

Images ("same colour"): two shapes far apart (in opposite halves of a 64×64 image, at least 28 pixels
between centres) over a noisy background, with a few small grey distractors.  The label is whether the
two shapes have the *same* hue.  Hues are continuous (not from a palette) and differ by at least 45° when
they differ, so no fixed colour detector answers it: the two distant shapes must be compared.

Clips ("same colour, moving"): 8 frames of 64×64 in which two coloured shapes and two small grey
distractors move in straight lines, the coloured ones never closer than 24 pixels; the label is again
whether the two coloured shapes share a hue.  (The issue's other example, "do two shapes approach or
separate", was tried first and dropped: approaching and separating clips are time reverses of each
other, and the C2D network — per-frame 2-D convolutions, symmetric temporal max-pooling, space-time
non-local blocks without positional encoding, global average pooling — is blind to the order of
frames, so no C2D model can learn it; trained, it stayed at chance, with or without non-local blocks.)

Item ``index`` of data set ``seed`` comes from ``numpy.random.default_rng([seed, index, tag])``.
"""

from __future__ import annotations

import colorsys

import numpy as np

from relviz.train.scenes import KINDS, shape_mask
from relviz.zoo.demo import PAIR_CLASSES

IMAGE_CLASSES = CLIP_CLASSES = PAIR_CLASSES


def _hue_rgb(hue: float, rng: np.random.Generator) -> np.ndarray:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, rng.uniform(0.75, 1.0), rng.uniform(0.8, 1.0))
    return np.array([r, g, b], dtype=np.float32) * 255


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    grey = rng.integers(70, 170)
    return np.clip(grey + rng.normal(0, 8, size=(size, size, 1)), 0, 255).astype(np.float32).repeat(3, 2)


def _stamp(img: np.ndarray, kind: str, side: int, cx: float, cy: float, colour: np.ndarray) -> None:
    """Draw ``kind`` centred at (cx, cy), clipped at the image border."""
    size = img.shape[0]
    mask = shape_mask(kind, side)
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    xs0, ys0 = max(0, -x0), max(0, -y0)
    xs1, ys1 = min(side, size - x0), min(side, size - y0)
    if xs1 <= xs0 or ys1 <= ys0:
        return
    sub = mask[ys0:ys1, xs0:xs1]
    img[y0 + ys0 : y0 + ys1, x0 + xs0 : x0 + xs1][sub] = colour


def make_pair_image(seed: int, index: int = 0, size: int = 64) -> tuple[np.ndarray, int]:
    """(image (size, size, 3) uint8, 1 if the two distant shapes share a hue else 0)."""
    rng = np.random.default_rng([seed, index, 2])
    label = int(rng.integers(2))
    img = _background(rng, size)
    for _ in range(int(rng.integers(2, 5))):  # grey distractors: things to ignore
        g = float(rng.integers(40, 220))
        _stamp(
            img,
            KINDS[rng.integers(3)],
            int(rng.integers(4, 8)),
            *rng.uniform(4, size - 4, 2),
            np.array([g, g, g], np.float32),
        )
    h1 = rng.random()
    h2 = h1 if label else h1 + rng.uniform(45, 315) / 360
    side = int(rng.integers(9, 14))
    # opposite halves along a random axis, centres at least 28 px apart
    while True:
        a = rng.uniform(side / 2, size - side / 2, 2)
        b = rng.uniform(side / 2, size - side / 2, 2)
        if np.hypot(*(a - b)) >= 28:
            break
    _stamp(img, KINDS[rng.integers(3)], side, a[0], a[1], _hue_rgb(h1, rng))
    _stamp(img, KINDS[rng.integers(3)], side, b[0], b[1], _hue_rgb(h2, rng))
    return np.round(img).astype(np.uint8), label


def make_motion_clip(seed: int, index: int = 0, size: int = 64, frames: int = 8) -> tuple[np.ndarray, int]:
    """(clip (T, size, size, 3) uint8, 1 if the two moving coloured shapes share a hue else 0)."""
    rng = np.random.default_rng([seed, index, 3])
    label = int(rng.integers(2))
    bg = _background(rng, size)
    kinds = [KINDS[rng.integers(3)] for _ in range(4)]
    h1 = rng.random()
    h2 = h1 if label else h1 + rng.uniform(45, 315) / 360
    greys = [float(rng.integers(40, 220)) for _ in range(2)]
    colours = [_hue_rgb(h1, rng), _hue_rgb(h2, rng)] + [np.array([g, g, g], np.float32) for g in greys]
    sides = [int(rng.integers(8, 12))] * 2 + [int(rng.integers(4, 8)) for _ in range(2)]
    while True:  # the two coloured shapes stay at least 24 px apart in every frame
        start = rng.uniform(6, size - 6, size=(4, 2))
        end = rng.uniform(6, size - 6, size=(4, 2))
        f = np.linspace(0, 1, frames)[:, None]
        gap = np.hypot(*((start[0] - start[1]) * (1 - f) + (end[0] - end[1]) * f).T)
        if gap.min() >= 24:
            break
    out = []
    for t in range(frames):
        f = t / (frames - 1)
        img = bg.copy()
        for k in (2, 3, 0, 1):  # distractors first: the coloured shapes are drawn on top
            cx, cy = start[k] * (1 - f) + end[k] * f
            _stamp(img, kinds[k], sides[k], cx, cy, colours[k])
        out.append(np.round(img).astype(np.uint8))
    return np.stack(out), label


def make_pair_images(seed: int, n: int, size: int = 64, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    items = [make_pair_image(seed, start + i, size) for i in range(n)]
    return np.stack([im for im, _ in items]), np.array([lb for _, lb in items], dtype=np.int64)


def make_motion_clips(
    seed: int, n: int, size: int = 64, frames: int = 8, start: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    items = [make_motion_clip(seed, start + i, size, frames) for i in range(n)]
    return np.stack([c for c, _ in items]), np.array([lb for _, lb in items], dtype=np.int64)
