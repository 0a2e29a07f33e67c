"""The procedural data: deterministic from a seed, boxes exactly around drawn pixels, labels as defined."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from relviz.train import longrange, patches, scenes
from relviz.train.resources import RESOURCES, write_resources


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_scenes_same_seed_same_bytes_and_different_seed_differs():
    a = scenes.make_scenes(3, 5)
    b = scenes.make_scenes(3, 5)
    c = scenes.make_scenes(4, 5)
    assert _digest(*(s.image for s in a), *(s.boxes for s in a), *(s.labels for s in a)) == _digest(
        *(s.image for s in b), *(s.boxes for s in b), *(s.labels for s in b)
    )
    assert _digest(*(s.image for s in a)) != _digest(*(s.image for s in c))
    assert a[0].image.shape == (256, 256, 3) and a[0].image.dtype == np.uint8


def _background_only(seed: int, index: int) -> np.ndarray:
    # the background is the first thing drawn from the scene's generator
    rng = np.random.default_rng([seed, index])
    return scenes._background(rng, 256)


@pytest.mark.parametrize("index", range(12))
def test_scene_boxes_match_drawn_pixels(index):
    scene = scenes.make_scene(11, index)
    changed = np.any(scene.image != _background_only(11, index), axis=-1)
    covered = np.zeros_like(changed)
    assert 3 <= len(scene.objects) <= 12
    for obj in scene.objects:
        x0, y0, x1, y1 = obj.box
        # look a few pixels beyond the box: the object's pixels must end exactly at its edges
        X0, Y0, X1, Y1 = max(0, x0 - 2), max(0, y0 - 2), min(256, x1 + 2), min(256, y1 + 2)
        ys, xs = np.nonzero(changed[Y0:Y1, X0:X1])
        assert (X0 + xs.min(), Y0 + ys.min(), X0 + xs.max() + 1, Y0 + ys.max() + 1) == obj.box
        covered[y0:y1, x0:x1] = True
    assert not np.any(changed & ~covered), "pixels drawn outside every box"


def test_odd_label_means_a_colour_no_other_object_has():
    seen_odd = 0
    for index in range(40):
        scene = scenes.make_scene(5, index)
        colours = [o.colour for o in scene.objects]
        for obj in scene.objects:
            unique = colours.count(obj.colour) == 1
            assert (obj.label == scenes.ODD) == unique
            if obj.label != scenes.ODD:
                assert scenes.KINDS[obj.label] == obj.kind
        seen_odd += any(o.label == scenes.ODD for o in scene.objects)
    assert 15 <= seen_odd <= 35  # about two scenes in three


def test_odd_object_is_not_recognisable_alone():
    # the same (kind, colour, texture) appears as "odd" in some scenes and as its kind in others
    odd, plain = set(), set()
    for index in range(200):
        for o in scenes.make_scene(9, index).objects:
            (odd if o.label == scenes.ODD else plain).add((o.kind, o.colour))
    assert len(odd & plain) >= 10


def test_coco_ground_truth_matches_scenes():
    sc = scenes.make_scenes(1, 3)
    gt = scenes.coco_ground_truth(sc)
    assert len(gt["annotations"]) == sum(len(s.objects) for s in sc)
    first = gt["annotations"][0]
    x0, y0, x1, y1 = sc[0].objects[0].box
    assert first["bbox"] == [x0, y0, x1 - x0, y1 - y0]


def test_patches_deterministic_and_need_shape_and_texture():
    x1, y1 = patches.make_patches(2, 64)
    x2, y2 = patches.make_patches(2, 64)
    assert _digest(x1, y1) == _digest(x2, y2)
    assert x1.shape == (64, 32, 32, 3) and set(y1) <= set(range(len(patches.PATCH_CLASSES)))
    # colour alone says nothing: mean colour is not separable by class at a glance (class means close)
    x, y = patches.make_patches(3, 600)
    means = np.stack([x[y == c].mean(axis=(0, 1, 2)) for c in range(6)])
    assert np.ptp(means, axis=0).max() < 30
    # striped and solid versions of a shape differ in local structure: more strong horizontal/vertical edges
    grey = x.astype(np.int16).sum(-1)
    edges = (np.abs(np.diff(grey, axis=1)) > 90).sum(axis=(1, 2)) + (np.abs(np.diff(grey, axis=2)) > 90).sum(
        axis=(1, 2)
    )
    assert edges[y % 2 == 1].mean() > 1.5 * edges[y % 2 == 0].mean()


def test_pair_images_label_is_hue_equality():
    x1, y1 = longrange.make_pair_images(4, 32)
    x2, y2 = longrange.make_pair_images(4, 32)
    assert _digest(x1, y1) == _digest(x2, y2)
    assert x1.shape == (32, 64, 64, 3) and 8 <= y1.sum() <= 24
    # recompute the label from pixels: the two saturated shapes' mean hues agree iff label == 1
    import colorsys

    for img, label in zip(x1, y1, strict=True):
        f = img.astype(np.float32) / 255
        sat = f.max(-1) - f.min(-1)
        from scipy import ndimage

        comps, n = ndimage.label(sat > 0.3)
        sizes = ndimage.sum(np.ones_like(sat), comps, range(1, n + 1))
        big = np.argsort(sizes)[-2:] + 1
        hues = [colorsys.rgb_to_hsv(*np.median(f[comps == k], axis=0))[0] for k in big]
        gap = min(abs(hues[0] - hues[1]), 1 - abs(hues[0] - hues[1]))
        assert (gap < 0.03) == bool(label)


def test_motion_clips_label_is_hue_equality_of_the_moving_shapes():
    import colorsys

    from scipy import ndimage

    clips, labels = longrange.make_motion_clips(6, 16)
    again, _ = longrange.make_motion_clips(6, 16)
    assert _digest(clips) == _digest(again)
    assert clips.shape == (16, 8, 64, 64, 3) and 3 <= labels.sum() <= 13
    for clip, label in zip(clips, labels, strict=True):
        positions = []
        for frame in clip[[0, -1]]:
            f = frame.astype(np.float32) / 255
            comps, n = ndimage.label((f.max(-1) - f.min(-1)) > 0.3)
            sizes = ndimage.sum(np.ones(f.shape[:2]), comps, range(1, n + 1))
            big = np.argsort(sizes)[-2:] + 1
            hues = [colorsys.rgb_to_hsv(*np.median(f[comps == k], axis=0))[0] for k in big]
            gap = min(abs(hues[0] - hues[1]), 1 - abs(hues[0] - hues[1]))
            assert (gap < 0.03) == bool(label)
            positions.append([ndimage.center_of_mass(comps == k) for k in big])
        assert not np.allclose(positions[0], positions[1])  # they move


def test_resources_are_reproducible(tmp_path: Path):
    info = write_resources(tmp_path)
    for name in info["files"]:
        if name.endswith(".png"):
            assert (tmp_path / name).read_bytes() == (RESOURCES / name).read_bytes(), name
    assert json.loads((RESOURCES / "samples.json").read_text()) == info
    scene = scenes.make_scene(info["generator_seed"], 0)
    assert np.array_equal(np.asarray(Image.open(RESOURCES / "scene-0.png")), scene.image)
    from relviz.core.video import VideoReader

    with VideoReader(RESOURCES / "clip-0.mp4") as video:
        assert len(video) == 16 and (video.width, video.height) == (256, 256)
