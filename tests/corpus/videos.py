"""Videos a user may drop on relviz: containers that claim frames larger than the pixel limit, truncated,
empty and garbage files, images and text named like videos, frames and clips past the end, clip options out of
range, clips too large to decode, thin frames, and paths that are not files; and the valid edges that must keep
working (a one-frame video with an image model and with a clip model, an AVI named .mp4, a strided clip).
Every video is generated here with OpenCV's writer (tiny frames) and patched with struct where a header lies.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

import relviz.core.video  # noqa: F401 - silences FFmpeg's logging before the writer below first starts it
from corpus import Case
from corpus.images import DETR, LRNET, NONLOCAL_CLIP, RELATION

NONLOCAL = ["--model", "demo-nonlocal", "--device", "cpu"]


def write_video(path: Path, size: tuple[int, int], frames: int, fourcc: str = "mp4v") -> Path:
    """``frames`` frames of ``size`` (width, height): a bar that grows, so frames differ."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {fourcc} here")
    width, height = size
    for i in range(frames):
        frame = np.full((height, width, 3), 30, np.uint8)
        frame[:, : max(1, (i + 1) * width // (frames + 1))] = (40, 200, 90)
        writer.write(frame)
    writer.release()
    return path


def avi_claiming(small: Path, width: int, height: int) -> bytes:
    """An MJPG AVI of 64×48 frames whose headers (avih, strh, strf and every JPEG's SOF) claim width×height."""
    data = bytearray(small.read_bytes())
    data = data.replace(struct.pack("<II", 64, 48), struct.pack("<II", width, height))
    data = data.replace(struct.pack("<hhhh", 0, 0, 64, 48), struct.pack("<hhhh", 0, 0, min(width, 32767),
                                                                         min(height, 32767)))
    at = data.find(b"\xff\xc0")
    while at >= 0:
        data[at + 5:at + 9] = struct.pack(">HH", height, width)
        at = data.find(b"\xff\xc0", at + 2)
    return bytes(data)


def _trace(model: list[str], path: Path, folder: Path, *extra: str) -> list[str]:
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in path.stem[:40])
    return ["trace", *model, "--input", str(path), "--out", str(folder / f"{stem}.npz"), *extra]


def _refusals(folder: Path) -> list[Case]:
    ten = write_video(folder / "ten.mp4", (64, 48), 10)
    small_avi = write_video(folder / "small.avi", (64, 48), 3, "MJPG")
    data = ten.read_bytes()
    files = {
        "bomb.avi": avi_claiming(small_avi, 10000, 8000),
        "cut.mp4": data[: len(data) // 2],
        "cut-header.mp4": data[:40],
        "empty.mp4": b"",
        "notes.mp4": b"frame 1: a cat\nframe 2: the same cat\n" * 30,
        "garbage.mp4": os.urandom(5000),
        "ftyp-garbage.mp4": data[:32] + os.urandom(3000),
    }
    for name, content in files.items():
        (folder / name).write_bytes(content)
    Image.new("RGB", (32, 24), (200, 0, 0)).save(folder / "photo.mp4", format="PNG")
    Image.new("RGB", (32, 24), (200, 0, 0)).save(folder / "photo.avi", format="JPEG")
    thin = write_video(folder / "thin.avi", (16, 640), 2, "MJPG")
    big = write_video(folder / "big.avi", (1000, 1000), 2, "MJPG")
    whole = write_video(folder / "whole.avi", (64, 48), 10, "MJPG").read_bytes()
    cut_avi = folder / "cut.avi"
    cut_avi.write_bytes(whole[: len(whole) * 85 // 100])  # opens; the header promises 10 frames, ~6 decode
    (folder / "cut-early.avi").write_bytes(whole[:2500])  # too little left to open
    os.mkfifo(folder / "pipe.mp4")
    (folder / "dangling.mp4").symlink_to(folder / "nowhere.mp4")
    f = folder
    return [
        Case("avi-header-80mpx", _trace(LRNET, f / "bomb.avi", f), message="10000×8000",
             unchanged=[str(f / "bomb.avi")]),
        Case("avi-header-80mpx-clip", _trace(NONLOCAL_CLIP, f / "bomb.avi", f), message="--max-pixels"),
        Case("mp4-truncated", _trace(LRNET, f / "cut.mp4", f), message="truncated", unchanged=[str(f / "cut.mp4")]),
        Case("mp4-truncated-header", _trace(LRNET, f / "cut-header.mp4", f), message="truncated"),
        Case("mp4-truncated-export", ["export", "--view", "detections", *RELATION, "--input", str(f / "cut.mp4"),
                                      "--out", str(f / "cut-fig.png")], message="truncated"),
        Case("mp4-empty", _trace(LRNET, f / "empty.mp4", f), message="empty"),
        Case("text-named-mp4", _trace(LRNET, f / "notes.mp4", f), message="text file"),
        Case("png-named-mp4", _trace(LRNET, f / "photo.mp4", f), message="PNG image"),
        Case("jpeg-named-avi", _trace(NONLOCAL_CLIP, f / "photo.avi", f), message="JPEG image"),
        Case("random-bytes-mp4", _trace(LRNET, f / "garbage.mp4", f), message="not a video"),
        Case("mp4-box-then-garbage", _trace(LRNET, f / "ftyp-garbage.mp4", f), message="truncated or corrupt"),
        Case("avi-truncated", _trace(LRNET, f / "cut-early.avi", f), message="truncated"),
        Case("avi-cut-frame-past-data", _trace(LRNET, cut_avi, f, "--frame", "9"), message="cut short"),
        Case("avi-cut-clip-past-data", _trace(NONLOCAL_CLIP, cut_avi, f, "--clip-length", "10"), message="cut short"),
        Case("frame-past-end", _trace(LRNET, ten, f, "--frame", "50"), message="past its end"),
        Case("frame-past-end-clip", _trace(NONLOCAL_CLIP, ten, f, "--frame", "50", "--clip-length", "2"),
             message="fewer than the clip length"),
        Case("frame-negative", _trace(LRNET, ten, f, "--frame", "-1"), message="--frame"),
        Case("clip-longer-than-video", _trace(NONLOCAL_CLIP, ten, f, "--clip-length", "8", "--stride", "2"),
             message="fewer than the clip length 8"),
        Case("clip-length-zero", _trace(NONLOCAL_CLIP, ten, f, "--clip-length", "0"), message="--clip-length"),
        Case("clip-length-huge", _trace(NONLOCAL_CLIP, ten, f, "--clip-length", "100000"), message="--clip-length"),
        Case("stride-zero", _trace(NONLOCAL_CLIP, ten, f, "--stride", "0"), message="--stride"),
        Case("stride-huge", _trace(NONLOCAL_CLIP, ten, f, "--stride", "1000"), message="--stride"),
        Case("clip-too-many-pixels", _trace(NONLOCAL_CLIP, big, f, "--clip-length", "64"),
             message="--clip-length 50 or fewer"),
        Case("thin-frames", _trace(LRNET, thin, f), message="aspect ratio"),
        Case("thin-frames-clip", _trace(NONLOCAL_CLIP, thin, f, "--clip-length", "2"), message="aspect ratio"),
        Case("fifo-mp4", _trace(LRNET, f / "pipe.mp4", f), message="named pipe"),
        Case("dangling-mp4", _trace(LRNET, f / "dangling.mp4", f), message="does not exist"),
        Case("folder-mp4", _trace(LRNET, _folder(f / "clips.mp4"), f), message="folder"),
    ]


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def _valid(folder: Path) -> list[Case]:
    one = write_video(folder / "one.mp4", (64, 48), 1)
    avi = write_video(folder / "avi-named.avi", (64, 48), 6, "MJPG").rename(folder / "avi-named.mp4")
    ten = folder / "ten.mp4"
    odd = write_video(folder / "odd name\twith tab é.mp4", (64, 48), 3)
    f = folder
    return [
        Case("valid-one-frame-image-model", _trace(LRNET, one, f), expect=0, unchanged=[str(one)]),
        Case("valid-one-frame-clip-model", _trace(NONLOCAL_CLIP, one, f), expect=0),
        Case("valid-one-frame-clip-length-4", _trace(NONLOCAL_CLIP, one, f, "--clip-length", "4"), expect=0),
        Case("valid-one-frame-nonlocal-image", _trace(NONLOCAL, one, f), expect=0),
        Case("valid-one-frame-detr", _trace(DETR, one, f, "--resize", "96"), expect=0),
        Case("valid-one-frame-export", ["export", "--view", "detections", *RELATION, "--input", str(one),
                                        "--out", str(f / "one-fig.png"), "--dpi", "50"], expect=0),
        Case("valid-avi-named-mp4", _trace(LRNET, avi, f, "--frame", "5"), expect=0),
        Case("valid-last-frame", _trace(LRNET, ten, f, "--frame", "9"), expect=0),
        Case("valid-clip-stride", _trace(NONLOCAL_CLIP, ten, f, "--clip-length", "4", "--stride", "3"), expect=0),
        Case("valid-clip-from-frame", _trace(NONLOCAL_CLIP, ten, f, "--clip-length", "8", "--frame", "2"), expect=0),
        Case("valid-odd-name", _trace(LRNET, odd, f, "--frame", "2"), expect=0),
        Case("valid-clip-of-large-frames", _trace(NONLOCAL_CLIP, f / "big.avi", f, "--clip-length", "2"), expect=0),
    ]


def make(folder: Path) -> list[Case]:
    return [*_refusals(folder), *_valid(folder)]
