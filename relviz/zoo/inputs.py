"""Turning an input path into what a family runs on: one image, or one clip of frames.

Also the one rule every family's resize obeys (:func:`check_model_input`): the model-input size is
computed from the image's size *before* anything is resized, and refused when its aspect ratio is
beyond ``MAX_ASPECT_RATIO`` or its pixels (all frames of a clip together) beyond
``max_model_input_pixels()``; images are resized as uint8 and only then converted to float.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from relviz.core import limits
from relviz.core.errors import BadInputError
from relviz.core.files import shown
from relviz.core.images import read_image
from relviz.core.readers import InputKind, classify
from relviz.core.video import VideoReader, check_clip_options, check_frame_index

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalise(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB → (3, H, W) float with ImageNet mean and std, as every family's backbone expects."""
    x = torch.from_numpy(np.require(image, np.uint8, ["C", "W"])).permute(2, 0, 1).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


# -- the model-input rule ---------------------------------------------------------------------------


def check_resize(resize: Any) -> None:
    """``--resize``: 0 (keep the size) or a positive whole number of pixels."""
    if isinstance(resize, bool) or not isinstance(resize, (int, np.integer)) or resize < 0:
        raise BadInputError(f"--resize must be 0 (keep the image's size) or a positive number of pixels, "
                            f"got {resize!r}")


def check_model_input(size: tuple[int, int], target: tuple[int, int], frames: int = 1,
                      resize: Any = None, base_limit: int = limits.MAX_MODEL_INPUT_PIXELS) -> None:
    """Refuse, before any resizing, an input whose model-input size breaks relviz's bounds.

    ``size`` is the image's (width, height), ``target`` the (width, height) the family would resize it
    to, ``frames`` how many such frames go into the model together, ``resize`` the asked shorter side
    (checked when given), ``base_limit`` the family's model-input limit in pixels before ``--max-pixels``
    raises it.  One sentence says what is wrong and what to change.
    """
    if resize is not None:
        check_resize(resize)
    width, height = int(size[0]), int(size[1])
    if width < 1 or height < 1:
        raise BadInputError(f"the input is {width}×{height} pixels: it has no pixels to run a model on")
    ratio = max(width, height) / min(width, height)
    if ratio > limits.MAX_ASPECT_RATIO:
        raise BadInputError(
            f"the input is {width}×{height} pixels, an aspect ratio of {ratio:.0f}:1; relviz accepts at most "
            f"{limits.MAX_ASPECT_RATIO:g}:1 (crop it into parts first)"
        )
    tw, th = int(target[0]), int(target[1])
    if tw < 1 or th < 1:
        raise BadInputError(f"resized for the model, the {width}×{height} input would be {tw}×{th} pixels; "
                            "choose a larger --resize")
    pixels, limit = tw * th * max(1, int(frames)), limits.max_model_input_pixels(base_limit)
    if pixels > limit:
        clip = f" × {frames} frames" if frames > 1 else ""
        fix = "a smaller --resize or --clip-length" if frames > 1 else "a smaller --resize"
        raise BadInputError(
            f"resized for the model, the {width}×{height} input would be {tw}×{th} pixels{clip} = "
            f"{pixels / 1e6:.1f} Mpx, more than relviz's model-input limit of {limit / 1e6:g} Mpx; choose {fix} "
            "(the limit grows with --max-pixels)"
        )


def shorter_side_size(width: int, height: int, shorter: int | None) -> tuple[int, int]:
    """(width, height) with the shorter side ``shorter`` pixels, aspect kept; 0 or None keeps the size."""
    if not shorter or min(width, height) == shorter or min(width, height) < 1:
        return width, height
    s = shorter / min(width, height)
    return max(1, round(width * s)), max(1, round(height * s))


def detector_input_size(width: int, height: int, min_size: int, max_size: int) -> tuple[int, int]:
    """(width, height) torchvision's ``GeneralizedRCNNTransform`` resizes to, in its own (float64) arithmetic."""
    if min(width, height) < 1:
        return width, height
    scale = min(min_size / min(width, height), max_size / max(width, height))
    return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))


def resize_uint8(image: np.ndarray, size: tuple[int, int], shrink: int = cv2.INTER_AREA,
                 grow: int = cv2.INTER_LINEAR) -> np.ndarray:
    """``image`` (H, W, 3) uint8 resized to ``size`` (width, height), still uint8; the same array if equal."""
    height, width = image.shape[:2]
    if (width, height) == tuple(size):
        return image
    smaller = size[0] * size[1] < width * height
    return cv2.resize(np.ascontiguousarray(image), tuple(int(v) for v in size),
                      interpolation=shrink if smaller else grow)


# -- reading ------------------------------------------------------------------------------------------


def read_inputs(path: str | Path, input_kind: str, options) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Frames for a family that takes ``input_kind`` ('image' or 'clip'), and the source's identity.

    Options are checked here too (frame ≥ 0, clip length and stride within bounds), whatever the caller
    checked: a library function does not trust its callers.
    """
    path = Path(path)
    kind = classify(path)
    frame = check_frame_index(getattr(options, "frame", 0) or 0)
    given = getattr(options, "clip_length", None)
    length = stride = 1
    if input_kind == "clip":
        length, stride = check_clip_options(8 if given is None else given, getattr(options, "stride", 1))
    still = 1 if given is None else length  # a still image as a static clip: the family repeats one frame
    if kind == InputKind.IMAGE:
        image = read_image(path)
        frames = [image]
        if input_kind == "clip":
            frames = [image] * still
        return frames, {"path": str(path), "kind": "image", "frame": 0,
                        "size": [image.shape[1], image.shape[0]]}
    if kind == InputKind.VIDEO:
        with VideoReader(path) as video:
            source: dict[str, Any] = {"path": str(path), "kind": "video", "frame": frame, "fps": video.fps,
                                      "stride": stride if input_kind == "clip" else getattr(options, "stride", 1)}
            if input_kind == "clip" and frame == 0 and video.declared_frames <= 1 and video.read(1) is None:
                # a one-frame video is a still: run like an image (a static clip of frame 0)
                frames = [video.frame(0)] * still
                source["still"] = True
            elif input_kind == "clip":
                frames = video.clip(frame, length, stride)
            else:
                frames = [video.frame(frame)]
            source["size"] = [frames[0].shape[1], frames[0].shape[0]]
            return frames, source
    raise BadInputError(f"{shown(path.name)} is a {kind.value}, not an image or video to run a model on")
