"""Video reading with OpenCV (headless wheel): frames as (H, W, 3) uint8 RGB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from relviz.core.errors import BadInputError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


class VideoReader:
    """Random and sequential access to the frames of a video file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise BadInputError(f"video {self.path} does not exist")
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            raise BadInputError(f"{self.path} is not a video relviz can read")
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS)) or 25.0
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self._count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self._next = 0
        first = self.read(0)
        if first is None:
            self.close()
            raise BadInputError(f"video {self.path} is empty or corrupt: its first frame cannot be decoded")

    def __len__(self) -> int:
        """Frame count as the container states it (a truncated file may decode fewer)."""
        return max(self._count, 1)

    def read(self, index: int) -> np.ndarray | None:
        """Frame ``index`` as RGB, or None past the last frame that decodes."""
        if index < 0:
            return None
        if index != self._next:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = self._cap.read()
        if not ok or frame is None:
            self._next = -1
            return None
        self._next = index + 1
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def frames(self, start: int = 0, stop: int | None = None, step: int = 1) -> Iterator[tuple[int, np.ndarray]]:
        index = start
        while stop is None or index < stop:
            frame = self.read(index)
            if frame is None:
                return
            yield index, frame
            index += step

    def close(self) -> None:
        self._cap.release()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_clip(path: str | Path, start: int, length: int, stride: int = 1) -> list[np.ndarray]:
    """``length`` frames from ``start`` every ``stride`` frames; fewer if the video ends first."""
    with VideoReader(path) as video:
        return [frame for _, frame in video.frames(start, start + length * stride, stride)]
