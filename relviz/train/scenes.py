"""Procedural detection scenes: coloured shapes on varied backgrounds, with boxes and labels.

Everything is drawn with numpy masks (no anti-aliasing), so an object's box is exactly the bounding box
of its pixels, and objects never touch (at least ``GAP`` pixels apart), so a box never contains another
object's pixels.  Scene ``index`` of a data set with seed ``seed`` comes from
``numpy.random.default_rng([seed, index])``: the same seed gives the same bytes on every machine.

Labels.  Every object is a ``circle``, ``square`` or ``triangle`` — except the *odd* object, whose
colour differs from the colours of all the other objects in the scene; its label is ``odd``.  Whether an
object is odd cannot be read from the object alone (a red circle is odd in one scene and an ordinary
circle in the next), so a detector must compare it with the other objects: this is the label that
relation modules are for.  About two scenes in three have an odd object; the others have every colour
at least twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from relviz.zoo.demo import SCENE_CLASSES, SHAPE_KINDS

KINDS = SHAPE_KINDS
CLASSES = SCENE_CLASSES
ODD = CLASSES.index("odd")

#: saturated base colours (RGB); textures darken or lighten them but keep the hue
PALETTE = np.array(
    [
        [220, 40, 40],  # red
        [40, 180, 60],  # green
        [50, 90, 230],  # blue
        [235, 205, 30],  # yellow
        [200, 60, 210],  # magenta
        [30, 200, 210],  # cyan
        [245, 140, 20],  # orange
    ],
    dtype=np.int16,
)
COLOUR_NAMES = ("red", "green", "blue", "yellow", "magenta", "cyan", "orange")
TEXTURES = ("solid", "stripes", "checker", "dots")
BACKGROUNDS = ("flat", "gradient", "noise", "stripes")
GAP = 3


@dataclass
class SceneObject:
    kind: str
    colour: int
    texture: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive ends), pixels
    label: int


@dataclass
class Scene:
    image: np.ndarray  # (H, W, 3) uint8
    objects: list[SceneObject] = field(default_factory=list)
    seed: int = 0
    index: int = 0

    @property
    def boxes(self) -> np.ndarray:
        """(N, 4) float32 x0, y0, x1, y1 in pixels."""
        return np.array([o.box for o in self.objects], dtype=np.float32).reshape(-1, 4)

    @property
    def labels(self) -> np.ndarray:
        return np.array([o.label for o in self.objects], dtype=np.int64)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A greyish background (low saturation, so object colours stand out but not trivially)."""
    style = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    base = rng.integers(60, 196)
    tint = rng.integers(-18, 19, size=3)
    colour = np.clip(base + tint, 0, 255).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if style == "flat":
        img = np.broadcast_to(colour, (size, size, 3)).copy()
    elif style == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None]
        img = colour + rng.uniform(30, 70) * (ramp - 0.5)
    elif style == "noise":
        img = colour + rng.normal(0, rng.uniform(6, 20), size=(size, size, 1))
    else:
        period = rng.integers(8, 24)
        angle = rng.uniform(0, np.pi)
        phase = ((np.cos(angle) * xx + np.sin(angle) * yy) * size / period) % 1.0
        img = colour + np.where(phase < 0.5, 12.0, -12.0)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def shape_mask(kind: str, size: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """A boolean (size, size) mask of ``kind`` touching all four sides of its square."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    if kind == "circle":
        r = size / 2
        mask = (xx - r) ** 2 + (yy - r) ** 2 <= r * r
    elif kind == "square":
        mask = np.ones((size, size), dtype=bool)
    elif kind == "triangle":
        # apex up (or down), base on the opposite side: |x - c| <= (y / size) * c
        c = size / 2
        t = yy / size
        if rng is not None and rng.random() < 0.5:
            t = 1.0 - t
        mask = np.abs(xx - c) <= t * c + 0.5
    else:
        raise ValueError(f"unknown shape {kind!r}")
    return mask


def _texture(rng: np.random.Generator, name: str, size: int, colour: np.ndarray) -> np.ndarray:
    """(size, size, 3) float pixels of ``colour`` with a texture that keeps its hue."""
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.broadcast_to(colour.astype(np.float32), (size, size, 3)).copy()
    if name == "stripes":
        period = int(rng.integers(4, 9))
        on = ((xx + yy) // max(1, period // 2)) % 2 == 0 if rng.random() < 0.5 else (yy // (period // 2)) % 2 == 0
        img[on] *= 0.6
    elif name == "checker":
        cell = int(rng.integers(3, 7))
        on = ((xx // cell) + (yy // cell)) % 2 == 0
        img[on] *= 0.6
    elif name == "dots":
        cell = int(rng.integers(5, 9))
        on = ((xx % cell) - cell // 2) ** 2 + ((yy % cell) - cell // 2) ** 2 <= (cell // 3) ** 2
        img[on] = img[on] * 0.45 + 255 * 0.4
    return img


def _colours(rng: np.random.Generator, n: int) -> tuple[list[int], int | None]:
    """Colours for ``n`` objects: every colour at least twice, except one odd object (about 2/3 of scenes)."""
    with_odd = n >= 3 and rng.random() < 0.67
    rest = n - 1 if with_odd else n
    groups = int(rng.integers(1, max(1, min(3, rest // 2)) + 1))
    chosen = rng.choice(len(PALETTE), size=groups + (1 if with_odd else 0), replace=False)
    base = list(chosen[:groups])
    colours = [c for c in base for _ in range(2)]  # each group colour twice ...
    colours += [base[int(rng.integers(groups))] for _ in range(rest - len(colours))]  # ... then any
    odd_pos = None
    if with_odd:
        odd_pos = int(rng.integers(n))
        colours.insert(odd_pos, int(chosen[-1]))
    return [int(c) for c in colours], odd_pos


def make_scene(seed: int, index: int = 0, size: int = 256, min_objects: int = 3, max_objects: int = 12) -> Scene:
    """Scene ``index`` of the data set ``seed``: deterministic, boxes exactly around the drawn pixels."""
    rng = np.random.default_rng([seed, index])
    image = _background(rng, size).astype(np.int16)
    n = int(rng.integers(min_objects, max_objects + 1))
    colours, odd_pos = _colours(rng, n)
    occupied: list[tuple[int, int, int, int]] = []
    objects: list[SceneObject] = []
    scale = size / 256
    for i in range(n):
        kind = KINDS[rng.integers(len(KINDS))]
        texture = TEXTURES[rng.integers(len(TEXTURES))]
        placed = None
        for attempt in range(60):
            hi = 64 if attempt < 30 else 36
            side = max(6, int(round(rng.integers(18, hi + 1) * scale)))
            x0 = int(rng.integers(0, size - side + 1))
            y0 = int(rng.integers(0, size - side + 1))
            box = (x0, y0, x0 + side, y0 + side)
            if all(
                box[0] >= b[2] + GAP or b[0] >= box[2] + GAP or box[1] >= b[3] + GAP or b[1] >= box[3] + GAP
                for b in occupied
            ):
                placed = box
                break
        if placed is None:
            if i == odd_pos:  # the odd object must exist, or the scene's labels would lie
                odd_pos = None
            continue
        x0, y0, x1, y1 = placed
        side = x1 - x0
        mask = shape_mask(kind, side, rng)
        pixels = _texture(rng, texture, side, PALETTE[colours[i]])
        region = image[y0:y1, x0:x1]
        drawn = np.clip(np.round(pixels), 0, 255).astype(np.int16)
        # never draw a pixel equal to the background under it: the box must be recoverable from pixels
        same = np.all(drawn == region, axis=-1)
        drawn[same] = np.where(drawn[same] > 127, drawn[same] - 1, drawn[same] + 1)
        region[mask] = drawn[mask]
        ys, xs = np.nonzero(mask)
        box = (x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1)
        occupied.append(placed)
        objects.append(SceneObject(kind, colours[i], texture, box, KINDS.index(kind)))
    # labels from the objects actually drawn: odd = a colour no other object has
    counts = np.bincount([o.colour for o in objects], minlength=len(PALETTE))
    for o in objects:
        if counts[o.colour] == 1 and len(objects) > 1:
            o.label = ODD
    return Scene(image.astype(np.uint8), objects, seed, index)


def make_scenes(seed: int, n: int, size: int = 256, start: int = 0) -> list[Scene]:
    return [make_scene(seed, start + i, size) for i in range(n)]


def coco_ground_truth(scenes: list[Scene]) -> dict:
    """The scenes' boxes as a COCO ground-truth dict (for pycocotools)."""
    images, annotations = [], []
    for image_id, scene in enumerate(scenes):
        h, w = scene.image.shape[:2]
        images.append({"id": image_id, "width": w, "height": h})
        for obj in scene.objects:
            x0, y0, x1, y1 = obj.box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": obj.label,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
            )
    return {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": n} for i, n in enumerate(CLASSES)],
    }
