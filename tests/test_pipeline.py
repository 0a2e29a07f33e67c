"""relviz.pipeline: sliding clips on every frame, the frame cache, short and one-frame videos, the GPU → CPU
fallback, class names, and that the module imports neither Qt nor torch."""

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from relviz import pipeline
from relviz.core import class_names
from relviz.core.errors import BadInputError
from relviz.core.trace import Trace

ROOT = Path(__file__).resolve().parents[1]


def write_video(path, frames, size=(40, 32)):
    """Frame i is filled with grey level 10·i (mp4v keeps a flat frame within a few levels)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), 10 * i, np.uint8))
    writer.release()
    return path


def level(image):
    return int(round(float(image.mean()) / 10))


class _Family:
    """A clip (or image) family that records the frames it is given, as the real families' ``run`` does."""

    name = "fake"

    def __init__(self, input_kind="clip", fail_on_cuda=False):
        self.input_kind = input_kind
        self.calls = []
        self.fail_on_cuda = fail_on_cuda

    def run(self, model, frames, source, options):
        self.calls.append((str(model.device), [level(f) for f in frames], dict(source)))
        if self.fail_on_cuda and model.device.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        trace = Trace(meta={"family": "fake", "labels": [f"class {i}" for i in range(1000)]})
        start = int(source["frame"])
        trace.meta["input"] = {**source, "frame_indices": [start + i for i in range(len(frames))]}
        trace["input/image"] = frames[0]
        return trace


class _Loaded:
    def __init__(self, family, clip_length=8, device="cpu"):
        self.family = family
        self.name = "fake"
        self.config = {"clip_length": clip_length}
        self.device = torch.device(device)
        self.dtype = torch.float32
        self.module = torch.nn.Linear(1, 1)

    def describe(self):
        return {"name": self.name, "device": str(self.device)}


class _Report:
    def __init__(self):
        self.notes = []

    def note(self, text, level="warning"):
        self.notes.append(text)


@pytest.mark.parametrize(
    ("index", "frames", "length", "expected"),
    [
        (0, 16, 8, (0, 8)),  # held at the start
        (4, 16, 8, (0, 8)),  # t − T//2 = 0: t in the middle of its clip
        (5, 16, 8, (1, 8)),
        (9, 16, 8, (5, 8)),  # the frame the old code refused ("only 7 frames from frame 9")
        (12, 16, 8, (8, 8)),
        (15, 16, 8, (8, 8)),  # held at the end: the last clip
        (2, 5, 8, (0, 5)),  # a video shorter than the clip: all its frames
        (0, 1, 8, (0, 1)),
        (3, 16, 1, (3, 1)),
        (6, 16, 3, (5, 3)),
    ],
)
def test_clip_window_slides_and_stops_at_the_ends(index, frames, length, expected):
    start, used = pipeline.clip_window(index, frames, length)
    assert (start, used) == expected
    assert start == min(max(index - length // 2, 0), frames - used)
    assert start <= index < start + used  # the clip covers the frame


def test_clip_window_refuses_a_frame_outside_the_video():
    with pytest.raises(BadInputError, match="outside the video's 16 frames"):
        pipeline.clip_window(16, 16, 8)
    with pytest.raises(BadInputError, match="no frames"):
        pipeline.clip_window(0, 0, 8)


def test_every_frame_of_a_video_runs_with_the_clip_that_covers_it(tmp_path):
    family = _Family()
    loaded = _Loaded(family, clip_length=8)
    video = pipeline.VideoSource(write_video(tmp_path / "v.mp4", 16))
    try:
        for t in range(16):
            result = pipeline.video_step(None, video, t, loaded, pipeline.RunChoice())
            start = min(max(t - 4, 0), 8)
            assert result.index == t and level(result.image) == t  # the frame shown is frame t
            assert family.calls[-1][1] == list(range(start, start + 8))  # the clip the model saw
            meta = result.trace.meta["input"]
            assert meta["frame"] == start and meta["shown_frame"] == t
            assert meta["frame_indices"] == list(range(start, start + 8))
    finally:
        video.close()


def test_consecutive_frames_decode_one_new_frame_each(tmp_path, monkeypatch):
    loaded = _Loaded(_Family(), clip_length=4)
    video = pipeline.VideoSource(write_video(tmp_path / "v.mp4", 10))
    reads = []
    real_read = video.reader.read
    monkeypatch.setattr(video.reader, "read", lambda i: (reads.append(i), real_read(i))[1])
    pipeline.video_step(None, video, 5, loaded, pipeline.RunChoice())  # clip 3..6
    assert sorted(reads) == [3, 4, 5, 6]
    reads.clear()
    pipeline.video_step(None, video, 6, loaded, pipeline.RunChoice())  # clip 4..7: one new frame
    assert reads == [7]
    video.close()


def test_a_video_shorter_than_the_clip_runs_all_its_frames_and_one_frame_is_a_still(tmp_path):
    family = _Family()
    loaded = _Loaded(family, clip_length=8)
    video = pipeline.VideoSource(write_video(tmp_path / "short.mp4", 3))
    result = pipeline.video_step(None, video, 2, loaded, pipeline.RunChoice())
    assert family.calls[-1][1] == [0, 1, 2] and result.trace.meta["input"]["shown_frame"] == 2
    video.close()
    video = pipeline.VideoSource(write_video(tmp_path / "one.mp4", 1))
    pipeline.video_step(None, video, 0, loaded, pipeline.RunChoice())
    assert family.calls[-1][1] == [0] and family.calls[-1][2].get("still") is True
    video.close()


def test_an_image_model_runs_on_the_shown_frame_only(tmp_path):
    family = _Family("image")
    video = pipeline.VideoSource(write_video(tmp_path / "v.mp4", 6))
    result = pipeline.video_step(None, video, 4, _Loaded(family), pipeline.RunChoice())
    assert family.calls == [("cpu", [4], family.calls[0][2])]
    assert result.trace.meta["input"]["frame"] == 4
    video.close()


def test_a_gpu_out_of_memory_moves_the_model_to_the_cpu_and_says_so(tmp_path):
    family = _Family(fail_on_cuda=True)
    loaded = _Loaded(family, clip_length=2, device="cuda:0")  # pretends to sit on a full GPU
    video = pipeline.VideoSource(write_video(tmp_path / "v.mp4", 4))
    result = pipeline.video_step(None, video, 1, loaded, pipeline.RunChoice())
    assert [c[0] for c in family.calls] == ["cuda:0", "cpu"]
    assert loaded.device.type == "cpu" and "fell back to the CPU" in result.note
    video.close()


def test_a_frame_past_the_end_of_a_cut_short_file_says_how_many_decode(tmp_path):
    path = write_video(tmp_path / "v.mp4", 12)
    video = pipeline.VideoSource(path)
    video._decodable = 5  # what counting a file cut short after 5 frames finds
    real_read = video.reader.read
    video.reader.read = lambda i: real_read(i) if i < 5 else None
    result = pipeline.video_step(None, video, 7, None, pipeline.RunChoice())
    assert result.image is None and result.frames == 5 and "ends at frame 4" in result.note
    # a clip model near the end slides within the frames that decode
    family = _Family()
    result = pipeline.video_step(None, video, 4, _Loaded(family, clip_length=4), pipeline.RunChoice())
    assert family.calls[-1][1] == [1, 2, 3, 4]
    video.close()


def test_imagenet_names_replace_numbered_classes():
    names = class_names.imagenet1k()
    assert len(names) == 1000 and names[0] == "tench" and names[564] == "four-poster"
    numbered = [f"class {i}" for i in range(1000)]
    assert class_names.display_labels(numbered) == list(names)
    assert class_names.display_labels(["different", "same"]) == ["different", "same"]
    own = [f"class {i}" for i in range(999)] + ["mine"]  # names given by the checkpoint are kept
    assert class_names.display_labels(own) is own
    assert class_names.default_labels(1000)[1] == "goldfish" and class_names.default_labels(3)[2] == "class 2"
    trace = pipeline.name_classes(Trace(meta={"labels": numbered}))
    assert trace.meta["labels"][564] == "four-poster"


def test_importing_the_pipeline_imports_neither_qt_nor_torch():
    code = (
        "import sys, relviz.pipeline; "
        "print(sorted(m for m in ('torch', 'PySide6', 'pyqtgraph', 'relviz.zoo', 'relviz.app') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_a_1000_class_classifier_without_names_gets_imagenet_names_in_its_trace(tmp_path):
    from relviz import zoo
    from relviz.zoo.lrnet import labels_for

    assert labels_for({"num_classes": 1000})[564] == "four-poster"
    assert labels_for({"num_classes": 3}) == ["class 0", "class 1", "class 2"]
    assert labels_for({"num_classes": 2, "labels": '["same", "different"]'}) == ["same", "different"]
    loaded = zoo.load_model("demo-lrnet", weights="none", device="cpu", overrides={"num_classes": 1000})
    image = tmp_path / "patch.png"
    cv2.imwrite(str(image), np.full((32, 32, 3), 90, np.uint8))
    trace = zoo.run_model(loaded, str(image))  # the family's own labels, before any renaming
    assert len(trace.meta["labels"]) == 1000 and trace.meta["labels"][1] == "goldfish"
