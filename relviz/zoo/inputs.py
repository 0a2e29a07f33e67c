"""Turning an input path into what a family runs on: one image, or one clip of frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from relviz.core.errors import BadInputError
from relviz.core.images import read_image
from relviz.core.readers import InputKind, classify
from relviz.core.video import VideoReader

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalise(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB → (3, H, W) float with ImageNet mean and std, as every family's backbone expects."""
    x = torch.from_numpy(np.require(image, np.uint8, ["C", "W"])).permute(2, 0, 1).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def read_inputs(path: str | Path, input_kind: str, options) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Frames for a family that takes ``input_kind`` ('image' or 'clip'), and the source's identity."""
    path = Path(path)
    kind = classify(path)
    if kind == InputKind.IMAGE:
        image = read_image(path)
        frames = [image]
        if input_kind == "clip":
            length = options.clip_length or 1
            frames = [image] * length  # a still image as a static clip
        return frames, {"path": str(path), "kind": "image", "frame": 0,
                        "size": [image.shape[1], image.shape[0]]}
    if kind == InputKind.VIDEO:
        with VideoReader(path) as video:
            if input_kind == "clip":
                length = options.clip_length or 8
                start, stride = options.frame, max(1, options.stride)
                frames = [f for _, f in video.frames(start, start + length * stride, stride)]
                if len(frames) < length:
                    raise BadInputError(
                        f"{path.name} has only {len(frames)} frames from frame {start} at stride {stride}, "
                        f"fewer than the clip length {length}; relviz refuses rather than pad "
                        "(choose a smaller --clip-length, --stride or --frame)"
                    )
            else:
                frame = video.read(options.frame)
                if frame is None:
                    raise BadInputError(f"{path.name} has no frame {options.frame} (it has about {len(video)})")
                frames = [frame]
            return frames, {"path": str(path), "kind": "video", "frame": options.frame,
                            "size": [frames[0].shape[1], frames[0].shape[0]], "fps": video.fps,
                            "stride": options.stride}
    raise BadInputError(f"{path.name} is a {kind.value}, not an image or video to run a model on")
