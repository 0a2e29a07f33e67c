"""Video reading with OpenCV (headless wheel, FFmpeg backend): frames as (H, W, 3) uint8 RGB.

Everything is checked before frames are decoded: the file is a regular, readable, non-empty file
whose first bytes are not an image or text; the frame size the container declares is within
:func:`relviz.core.limits.max_image_pixels`; a clip's length and stride are within
``MAX_CLIP_LENGTH`` / ``MAX_CLIP_STRIDE`` and its decoded frames within the same pixel budget as one
image.  FFmpeg and OpenCV would print their own warnings on a truncated or garbage file straight to the
terminal, before relviz's sentence; their logging is silenced when this module is imported (set
``OPENCV_LOG_LEVEL`` / ``OPENCV_FFMPEG_LOGLEVEL`` yourself to see it).  OpenCV reads the FFmpeg level
once, when FFmpeg is first used in the process, so this module must be imported before any other code
opens a video file or writer (relviz's entry points import it early, through the reader registry).
"""

from __future__ import annotations

import math
import os

_USER_LOG_LEVEL = "OPENCV_LOG_LEVEL" in os.environ
os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when FFmpeg is first opened

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from relviz.core import limits  # noqa: E402
from relviz.core.errors import BadInputError  # noqa: E402
from relviz.core.files import read_head, shown, sniff  # noqa: E402
from relviz.core.images import check_pixels  # noqa: E402

if not _USER_LOG_LEVEL:  # OpenCV may have been imported (and its level read) before this module
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
#: frames skipped by decoding rather than seeking (exact, and cheaper than a seek for short hops)
_GRAB_WINDOW = 64
#: a frame a seek could not reach is decoded forward from the start only this near it (bounded time)
_REOPEN_LIMIT = 1000


def check_clip_options(length: int, stride: int) -> tuple[int, int]:
    """``length`` and ``stride`` as ints within 1..MAX_CLIP_LENGTH and 1..MAX_CLIP_STRIDE, else a sentence."""
    length, stride = _whole(length, "--clip-length"), _whole(stride, "--stride")
    if not 1 <= length <= limits.MAX_CLIP_LENGTH:
        raise BadInputError(f"--clip-length must be 1 to {limits.MAX_CLIP_LENGTH} frames, got {length}")
    if not 1 <= stride <= limits.MAX_CLIP_STRIDE:
        raise BadInputError(f"--stride must be 1 to {limits.MAX_CLIP_STRIDE} frames, got {stride}")
    return length, stride


def check_frame_index(frame: int) -> int:
    """A frame index as an int ≥ 0, else a sentence."""
    frame = _whole(frame, "--frame")
    if frame < 0:
        raise BadInputError(f"--frame must be 0 or more (frames count from 0), got {frame}")
    return frame


def _whole(value, flag: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise BadInputError(f"{flag} must be a whole number, got {value!r}")
    return int(value)


def _video_content(path: Path) -> str | None:
    """What the file's first bytes say it is; an image, text or an archive named like a video is refused."""
    what = sniff(read_head(path, 4096, "a video", "video"))
    if what is None or what.endswith(" video"):
        return what
    hint = ""
    if what.endswith(" image"):
        hint = f"; rename it to .{what.split()[1].lower()} to open it as an image"
    raise BadInputError(f"{shown(path)} is {what}, not a video{hint}")


def _unopened(what: str | None) -> str:
    """Why FFmpeg could not open a file, as far as its first bytes tell."""
    if what:
        return f"it looks like {what} but is truncated or corrupt (cut short while copying or recording?)"
    return "it is not in a video format OpenCV's FFmpeg can decode, or it is corrupt"


class VideoReader:
    """Random and sequential access to the frames of a video file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.name = shown(self.path)
        self._fd: int | None = None
        content = _video_content(self.path)
        self._cap = self._open()
        try:
            if not self._cap.isOpened():
                raise BadInputError(f"{self.name} is not a video relviz can read: {_unopened(content)}")
            self._read_properties()
            self._next = 0
            self._reopened = False
            self._first = None
            first = self._decode()
            if first is None:
                raise BadInputError(f"video {self.name} is empty or corrupt: its first frame cannot be decoded")
            self._first = first
            if self.width <= 0 or self.height <= 0:  # the container did not say: the first frame does
                self.height, self.width = first.shape[:2]
        except BaseException:
            self.close()
            raise

    def _open(self) -> cv2.VideoCapture:
        try:
            return cv2.VideoCapture(self._name_for_ffmpeg(), cv2.CAP_FFMPEG)
        except cv2.error:
            return cv2.VideoCapture()  # not opened: refused with the reason by the caller

    def _name_for_ffmpeg(self) -> str:
        """An absolute name (FFmpeg never reads 'x:…' as a protocol); /proc/self/fd/N for a name not in UTF-8."""
        name = os.path.abspath(self.path)
        try:
            name.encode("utf-8")
            return name
        except UnicodeEncodeError:
            pass
        if self._fd is None and os.path.isdir("/proc/self/fd"):
            self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        if self._fd is None:
            raise BadInputError(f"{self.name}: relviz cannot open videos whose names are not UTF-8 on this "
                                "system; rename the file")
        return f"/proc/self/fd/{self._fd}"

    def _read_properties(self) -> None:
        """fps, frame size and count as the container declares them; the size is checked before decoding."""
        fps = float(self._cap.get(cv2.CAP_PROP_FPS))
        self.fps = fps if math.isfinite(fps) and 0 < fps < 10_000 else 25.0
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        count = float(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self._count = int(count) if math.isfinite(count) and 0 < count < 2**40 else 0
        if self.width > 0 and self.height > 0:  # else the first decoded frame is checked
            check_pixels(f"each frame of video {self.name}", self.width, self.height)

    def __len__(self) -> int:
        """Frame count as the container states it (a truncated file may decode fewer)."""
        return max(self._count, 1)

    @property
    def declared_frames(self) -> int:
        """The container's frame count; 0 when it does not say."""
        return self._count

    def _decode(self) -> np.ndarray | None:
        """The frame at the capture's position, as RGB; None at the end or on a frame that does not decode."""
        try:
            ok, frame = self._cap.read()
        except cv2.error:
            ok, frame = False, None
        if not ok or frame is None or frame.ndim != 3 or frame.shape[2] != 3:
            self._next = -1
            return None
        self._next += 1
        check_pixels(f"a frame of video {self.name}", frame.shape[1], frame.shape[0])
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def _skip(self, count: int) -> bool:
        for _ in range(count):
            if not self._cap.grab():
                self._next = -1
                return False
            self._next += 1
        return True

    def _seek(self, index: int, reopen: bool) -> bool:
        """Put the capture at ``index``: by decoding forward for short hops, else by seeking."""
        if index == self._next:
            return True
        if 0 <= self._next < index <= self._next + _GRAB_WINDOW:
            return self._skip(index - self._next)
        if self._cap.set(cv2.CAP_PROP_POS_FRAMES, index):
            self._next = index
            return True
        return reopen and self._reopen_at(index)

    def _reopen_at(self, index: int) -> bool:
        """Reopen and decode forward to ``index`` (some files cannot seek back after their end)."""
        self._cap.release()
        self._cap = self._open()
        self._next = 0
        self._reopened = True
        return self._cap.isOpened() and self._skip(index)

    def read(self, index: int) -> np.ndarray | None:
        """Frame ``index`` as RGB, or None past the last frame that decodes."""
        if index < 0:
            return None
        if index == 0 and self._first is not None:
            return self._first.copy()
        # past the declared end or far into the file, no slow recovery: a failed seek is the answer
        within = (not self._count or index < self._count) and index <= _REOPEN_LIMIT
        self._reopened = False
        if not self._seek(index, reopen=within):
            return None
        frame = self._decode()
        if frame is None and within and not self._reopened:
            # a seek that landed badly (files that cannot seek back after their end): decode forward instead
            if self._reopen_at(index):
                frame = self._decode()
        return frame

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as RGB, or a sentence: past the end, or not decodable."""
        index = check_frame_index(index)
        frame = self.read(index)
        if frame is not None:
            return frame
        if self._count and index >= self._count:
            raise BadInputError(f"{self.name} has {self._count} frame{'s' if self._count != 1 else ''} "
                                f"(0 to {self._count - 1}); frame {index} is past its end")
        if self._count:
            raise BadInputError(f"frame {index} of {self.name} cannot be decoded: the file is cut short or "
                                f"corrupt (its header promises {self._count} frames)")
        raise BadInputError(f"{self.name} has no frame {index}: it ends (or stops decoding) before it")

    def frames(self, start: int = 0, stop: int | None = None, step: int = 1) -> Iterator[tuple[int, np.ndarray]]:
        if step < 1:
            raise BadInputError(f"the frame step must be 1 or more, got {step}")
        index = max(0, start)
        while stop is None or index < stop:
            frame = self.read(index)
            if frame is None:
                return
            yield index, frame
            index += step

    def clip(self, start: int, length: int, stride: int = 1) -> list[np.ndarray]:
        """``length`` frames from ``start`` every ``stride`` frames, all checked before any is decoded.

        Refuses (never pads) when the video ends first; the decoded clip may hold at most as many pixels
        as one image may (``max_image_pixels``), so a long clip of large frames is refused up front.
        """
        start = check_frame_index(start)
        length, stride = check_clip_options(length, stride)
        self._check_clip_pixels(length)
        frames = [frame for _, frame in self.frames(start, start + (length - 1) * stride + 1, stride)]
        if len(frames) < length:
            self._refuse_short(start, length, stride, len(frames))
        return frames

    def _check_clip_pixels(self, length: int) -> None:
        pixels, limit = length * self.width * self.height, limits.max_image_pixels()
        if pixels > limit:
            most = max(1, limit // max(1, self.width * self.height))
            raise BadInputError(
                f"a clip of {length} frames of {self.width}×{self.height} from {self.name} would hold "
                f"{pixels / 1e6:.1f} Mpx decoded, more than relviz's limit of {limit / 1e6:g} Mpx for one input; "
                f"choose --clip-length {most} or fewer (or raise --max-pixels)"
            )

    def _refuse_short(self, start: int, length: int, stride: int, available: int) -> None:
        promised = self._count and start + (length - 1) * stride < self._count
        total = f"{self._count} in all" if self._count else "its length unknown"
        why = "; the file may be cut short: its header promises more" if promised else ""
        raise BadInputError(
            f"{self.name} has only {available} frames from frame {start} at stride {stride} ({total}{why}), "
            f"fewer than the clip length {length}; relviz refuses rather than pad "
            "(choose a smaller --clip-length, --stride or --frame)"
        )

    def close(self) -> None:
        cap = getattr(self, "_cap", None)
        if cap is not None:
            cap.release()
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_clip(path: str | Path, start: int, length: int, stride: int = 1) -> list[np.ndarray]:
    """``length`` frames from ``start`` every ``stride`` frames; refused with a sentence if the video ends first."""
    with VideoReader(path) as video:
        return video.clip(start, length, stride)
