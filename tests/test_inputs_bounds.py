"""Images and videos are bounded before they are decoded; paths that are not readable files get one sentence.

The image header check refuses without decoding (PIL's load is never reached), the pixel limit follows
RELVIZ_MAX_PIXELS, every family's resize path goes through the one model-input rule before resizing, videos
are checked from the container before frames are decoded, and FFmpeg's own log lines never reach the
terminal before relviz's sentence.
"""

import os
import struct
import subprocess
import sys
import threading
import time
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from relviz.core import limits
from relviz.core.errors import BadInputError
from relviz.core.files import open_regular, shown
from relviz.core.images import image_size, read_image
from relviz.core.readers import InputKind, classify, folder_items
from relviz.core.video import VideoReader, check_clip_options, read_clip
from relviz.zoo import RunOptions
from relviz.zoo.inputs import (
    check_model_input,
    detector_input_size,
    read_inputs,
    shorter_side_size,
)

ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A ~70-byte PNG whose header claims width×height RGB pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + _chunk(b"IEND", b""))
    return path


def write_video(path: Path, frames: int, size=(64, 48), fourcc="mp4v") -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, size)
    for i in range(frames):
        frame = np.full((size[1], size[0], 3), 20 * i % 256, np.uint8)
        frame[:, : (i + 1) * size[0] // (frames + 1)] = (40, 200, 90)
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture
def no_load(monkeypatch):
    """Records every call of PIL's decoding step (ImageFile.load)."""
    calls = []
    original = ImageFile.ImageFile.load

    def load(self):
        calls.append(self.size)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return calls


@pytest.fixture
def limit(monkeypatch):
    """Set RELVIZ_MAX_PIXELS for one test."""
    def set_limit(value):
        monkeypatch.setenv("RELVIZ_MAX_PIXELS", str(value))
    monkeypatch.delenv("RELVIZ_MAX_PIXELS", raising=False)
    return set_limit


# -- images: the header check ---------------------------------------------------------------------------


def test_header_bomb_is_refused_fast_without_decoding(tmp_path, no_load, limit):
    bomb = png_claiming(tmp_path / "bomb.png", 12000, 12500)
    assert bomb.stat().st_size < 130
    start = time.perf_counter()
    with pytest.raises(BadInputError) as info:
        read_image(bomb)
    assert time.perf_counter() - start < 1.0
    assert no_load == []  # refused from the header: PIL never decoded
    message = str(info.value)
    assert "12000×12500" in message and "50 Mpx" in message and "--max-pixels" in message
    assert "\n" not in message
    with pytest.raises(BadInputError, match="12000×12500"):
        image_size(bomb)
    assert no_load == []


def test_pil_own_bomb_error_and_warning_become_our_sentence(tmp_path, no_load, limit):
    huge = png_claiming(tmp_path / "huge.png", 65535, 65535)  # above twice PIL's own limit: PIL raises at open
    middle = png_claiming(tmp_path / "middle.png", 10000, 10000)  # between PIL's warning and error limits
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning may escape either
        with pytest.raises(BadInputError, match="declares 4294.8 Mpx.*--max-pixels"):
            read_image(huge)
        with pytest.raises(BadInputError, match="10000×10000 pixels"):
            read_image(middle)
    assert no_load == []


def test_the_limit_follows_relviz_max_pixels(tmp_path, limit):
    big = png_claiming(tmp_path / "big.png", 8000, 7000)  # 56 Mpx declared, 64 bytes of data
    assert limits.max_image_pixels() == limits.MAX_IMAGE_PIXELS
    with pytest.raises(BadInputError, match="8000×7000"):
        read_image(big)
    limit(60_000_000)
    assert limits.max_image_pixels() == 60_000_000
    assert limits.max_model_input_pixels() == 3_000_000
    assert image_size(big) == (8000, 7000)
    with pytest.raises(BadInputError, match="truncated"):  # past the header: its missing data is what is wrong
        read_image(big)
    limit(1000)
    Image.new("RGB", (40, 30)).save(tmp_path / "small.png")
    with pytest.raises(BadInputError, match="40×30 pixels .*limit of 0.001 Mpx"):
        read_image(tmp_path / "small.png")


def test_raised_limit_above_pils_own_is_honoured(tmp_path, limit, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # PIL would refuse anything above 1000 pixels
    Image.new("RGB", (60, 40), (1, 2, 3)).save(tmp_path / "im.png")
    limit(5000)
    assert read_image(tmp_path / "im.png").shape == (40, 60, 3)


def test_valid_edges_still_read(tmp_path, limit):
    gray16 = np.full((6, 8), 65535, np.uint16)
    gray16[:, :4] = 257 * 10
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    assert read_image(tmp_path / "g16.png")[0, :, 0].tolist() == [10] * 4 + [255] * 4
    Image.fromarray(np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)).save(tmp_path / "f.tif")
    assert read_image(tmp_path / "f.tif")[2, 3, 0] == 255
    frames = [Image.new("RGB", (10, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(tmp_path / "anim.png", save_all=True, append_images=frames[1:])
    assert tuple(read_image(tmp_path / "anim.png")[0, 0]) == (255, 0, 0)  # the first frame
    Image.new("RGB", (10, 8), (9, 9, 9)).save(tmp_path / "png.jpg", format="PNG")  # wrong extension
    assert read_image(tmp_path / "png.jpg").shape == (8, 10, 3)
    limit(80)
    Image.new("RGB", (10, 8)).save(tmp_path / "exact.png")
    assert read_image(tmp_path / "exact.png").shape == (8, 10, 3)  # exactly at the limit


@pytest.mark.parametrize("content,reason", [
    (b"a shopping list\n" * 10, "is a text file, not an image"),
    (b"\x00\x00\x00\x18ftypisom" + bytes(200), "MP4/QuickTime video, not an image"),
    (b"GIF89a" + bytes(100), "is a GIF image, not an image relviz can read"),
    (b"\x89PNG\r\n\x1a\n" + bytes(100), "corrupt or truncated"),
    (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\n", "not an image"),  # never handed to Ghostscript
])
def test_content_that_is_not_an_image_is_named(tmp_path, content, reason):
    path = tmp_path / "x.png"
    path.write_bytes(content)
    with pytest.raises(BadInputError, match=reason):
        read_image(path)


# -- paths that are not readable files ------------------------------------------------------------------


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    errors = []

    def attempt():
        for call in (classify, read_image, VideoReader, lambda p: open_regular(p, "an image")):
            try:
                call(fifo)
            except BadInputError as exc:
                errors.append(str(exc))

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "reading a FIFO blocked"
    assert len(errors) == 4 and all("named pipe (FIFO)" in e for e in errors)


def test_links_loops_long_names_and_devices(tmp_path):
    (tmp_path / "a.png").symlink_to(tmp_path / "b.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    (tmp_path / "gone.mp4").symlink_to(tmp_path / "nowhere.mp4")
    for call in (classify, read_image):
        with pytest.raises(BadInputError, match="loop of symbolic links"):
            call(tmp_path / "a.png")
    with pytest.raises(BadInputError, match="symbolic link to .*nowhere.mp4, which does not exist"):
        classify(tmp_path / "gone.mp4")
    with pytest.raises(BadInputError, match="symbolic link to"):
        VideoReader(tmp_path / "gone.mp4")
    with pytest.raises(BadInputError, match="too long for the file system"):
        classify(tmp_path / ("n" * 400 + ".png"))
    with pytest.raises(BadInputError, match="a part of the path is a file"):
        classify(Path(__file__) / "x.png")
    if os.path.exists("/dev/null"):
        with pytest.raises(BadInputError, match="character device"):
            read_image("/dev/null")
    with pytest.raises(BadInputError, match="NUL"):
        classify("bad\0name.png")


def test_permission_denied_is_caught_where_the_file_is_opened(tmp_path, monkeypatch):
    image = tmp_path / "locked.png"
    Image.new("RGB", (8, 8)).save(image)
    image.chmod(0)
    if not ROOT:  # root reads it anyway; anyone else is refused by the real open
        with pytest.raises(BadInputError, match="permission denied"):
            read_image(image)
    import relviz.core.files as files

    real_open = os.open

    def denied(path, *args, **kwargs):
        if str(path).endswith("locked.png"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(files.os, "open", denied)  # what a non-root user, an ACL or NFS gives
    with pytest.raises(BadInputError, match="cannot be read: permission denied"):
        read_image(image)
    monkeypatch.setattr(Path, "iterdir", lambda self: (_ for _ in ()).throw(PermissionError(13, "denied")))
    with pytest.raises(BadInputError, match="cannot be listed: permission denied"):
        folder_items(tmp_path)


def test_odd_names_stay_on_one_line_and_still_open(tmp_path):
    odd = tmp_path / "two\nlines\tand é.png"
    with pytest.raises(BadInputError) as info:
        classify(odd)
    assert "\n" not in str(info.value) and "\\n" in str(info.value)
    Image.new("RGB", (8, 6), (5, 6, 7)).save(odd, format="PNG")
    assert read_image(odd).shape == (6, 8, 3)
    latin1 = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.png"))  # a name that is not UTF-8
    Image.new("RGB", (8, 6)).save(latin1, format="PNG")
    assert read_image(latin1).shape == (6, 8, 3)
    assert "\\udce9" in shown(latin1)
    video = write_video(tmp_path / "clip.mp4", 3).rename(Path(os.fsdecode(bytes(tmp_path) + b"/v\xe9.mp4")))
    with VideoReader(video) as reader:  # reached through /proc/self/fd: OpenCV takes UTF-8 names only
        assert reader.read(2) is not None


def test_folder_items_pass_over_what_is_not_a_file(tmp_path):
    Image.new("RGB", (8, 6)).save(tmp_path / "a.png")
    os.mkfifo(tmp_path / "b.png")
    (tmp_path / "c.jpg").symlink_to(tmp_path / "missing.jpg")
    (tmp_path / "d.mp4").mkdir()
    assert [p.name for p in folder_items(tmp_path)] == ["a.png"]
    assert classify(tmp_path) == InputKind.FOLDER


# -- the model-input rule ---------------------------------------------------------------------------------


def test_check_model_input_bounds():
    check_model_input((1, 30), (224, 6720))  # exactly 30:1, 1.5 Mpx: allowed
    check_model_input((1, 8), (224, 1792))
    with pytest.raises(BadInputError, match="aspect ratio of 20000:1; relviz accepts at most 30:1"):
        check_model_input((1, 20000), (224, 4_480_000))
    with pytest.raises(BadInputError, match="31:1"):
        check_model_input((31, 961), (64, 1984))
    with pytest.raises(BadInputError, match="model-input limit of 2.5 Mpx"):
        check_model_input((2000, 1500), (2000, 1500), resize=0)
    check_model_input((400, 300), (400, 300), frames=20)  # 2.4 Mpx in all
    with pytest.raises(BadInputError, match="× 21 frames"):
        check_model_input((400, 300), (400, 300), frames=21)
    with pytest.raises(BadInputError, match="--resize must be 0"):
        check_model_input((40, 30), (40, 30), resize=-5)
    with pytest.raises(BadInputError, match="choose a larger --resize"):
        check_model_input((40, 30), (0, 1))
    with pytest.raises(BadInputError, match="no pixels"):
        check_model_input((0, 30), (1, 1))


def test_the_limit_is_checked_before_any_resize(monkeypatch):
    import relviz.zoo.lrnet as lrnet

    monkeypatch.setattr(lrnet.cv2, "resize", lambda *a, **k: pytest.fail("resized before the check"))
    image = np.zeros((10, 400, 3), np.uint8)
    with pytest.raises(BadInputError, match="aspect ratio of 40:1"):
        lrnet.resize_shorter(image, 224)
    with pytest.raises(BadInputError, match="model-input limit"):
        lrnet.resize_shorter(np.zeros((100, 100, 3), np.uint8), 2000)


def test_every_family_resizes_uint8_to_a_checked_target(monkeypatch):
    """DETR, LR-Net/non-local and the R-CNN families: refused before resizing, resized before float."""
    from relviz import zoo
    from relviz.models.nonlocal_net import NonLocalResNet
    from relviz.zoo import detr

    strip = np.zeros((10, 400, 3), np.uint8)
    with pytest.raises(BadInputError, match="40:1"):
        detr.preprocess(strip, 800)
    seen = []
    monkeypatch.setattr(detr, "normalise", lambda a: seen.append((a.dtype, a.shape)) or torch.zeros(1))
    detr.preprocess(np.zeros((300, 400, 3), np.uint8), 96)
    assert seen == [(np.uint8, (96, 128, 3))]

    source = {"path": "memory", "kind": "image", "frame": 0, "size": [400, 10]}
    for name in ("relation", "regionfeat"):
        fam = zoo.get_family(name)
        loaded = zoo.LoadedModel(fam, "x", None, fam.default_config(), torch.device("cpu"), torch.float32)
        with pytest.raises(BadInputError, match="40:1"):  # refused before the (absent) module is touched
            fam.run(loaded, [strip], source, RunOptions())
        with pytest.raises(BadInputError, match="model-input limit"):
            fam.run(loaded, [np.zeros((1500, 2000, 3), np.uint8)], source, RunOptions(resize=0))

    import relviz.zoo.relation as relation

    fed = []

    def fake_detector(module, x, min_size, max_size):
        fed.append((tuple(x.shape), x.dtype, min_size, max_size))
        raise RuntimeError("stop")

    monkeypatch.setattr(relation, "run_detector", fake_detector)
    fam = zoo.get_family("relation")
    loaded = zoo.LoadedModel(fam, "x", torch.nn.Module(), {**fam.default_config(), "min_size": 96, "max_size": 128},
                             torch.device("cpu"), torch.float32)
    monkeypatch.setattr(relation, "_apply_runtime", lambda module, extra: {})
    monkeypatch.setattr(relation, "_restore_runtime", lambda module, saved: None)
    with pytest.raises(RuntimeError, match="stop"):
        fam.run(loaded, [np.zeros((900, 1200, 3), np.uint8)], source, RunOptions())
    assert fed == [((3, 96, 128), torch.float32, 96, 128)]  # the float tensor is the model input, not the image

    net = NonLocalResNet({"preset": "tiny", "clip": True})
    fam = zoo.get_family("nonlocal")
    loaded = zoo.LoadedModel(fam, "x", net, {}, torch.device("cpu"), torch.float32)
    with pytest.raises(BadInputError, match="× 64 frames"):
        fam.run(loaded, [np.zeros((300, 400, 3), np.uint8)] * 64, source, RunOptions(resize=224))


@pytest.mark.parametrize("size", [(640, 480), (480, 640), (410, 300), (1000, 37), (333, 333), (97, 1301)])
@pytest.mark.parametrize("sides", [(96, 128), (160, 213), (800, 1333), (50, 67)])
def test_detector_input_size_is_torchvisions(size, sides):
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    transform = GeneralizedRCNNTransform(sides[0], sides[1], [0.0] * 3, [1.0] * 3)
    images, _ = transform([torch.zeros(3, size[1], size[0])])
    h, w = images.image_sizes[0]
    assert detector_input_size(*size, *sides) == (w, h)


def test_shorter_side_size():
    assert shorter_side_size(640, 480, 224) == (299, 224)
    assert shorter_side_size(640, 480, 0) == (640, 480)
    assert shorter_side_size(1, 8, 64) == (64, 512)


# -- videos -----------------------------------------------------------------------------------------------


def test_one_frame_video_is_valid_for_image_and_clip_models(tmp_path):
    one = write_video(tmp_path / "one.mp4", 1)
    with VideoReader(one) as video:
        assert len(video) == 1
        assert video.frame(0).shape == (48, 64, 3)
        assert video.read(0) is not None and video.read(0) is not None  # again, after a first read
        with pytest.raises(BadInputError, match="has 1 frame \\(0 to 0\\); frame 1 is past its end"):
            video.frame(1)
    frames, source = read_inputs(one, "image", RunOptions())
    assert len(frames) == 1 and source["size"] == [64, 48]
    frames, source = read_inputs(one, "clip", RunOptions())  # a still: the family repeats it into a clip
    assert len(frames) == 1 and source["still"] and source["frame"] == 0
    frames, _ = read_inputs(one, "clip", RunOptions(clip_length=4))
    assert len(frames) == 4 and all(f is frames[0] for f in frames)


def test_frames_and_clips_past_the_end_and_options_out_of_range(tmp_path):
    ten = write_video(tmp_path / "ten.mp4", 10)
    with VideoReader(ten) as video:
        last = video.frame(9)
        assert np.abs(video.frame(9).astype(int) - last).max() == 0
        with pytest.raises(BadInputError, match="has 10 frames \\(0 to 9\\); frame 10 is past its end"):
            video.frame(10)
        with pytest.raises(BadInputError, match="--frame must be 0 or more"):
            video.frame(-1)
        assert len(video.clip(1, 3, 4)) == 3
        with pytest.raises(BadInputError, match="has only 3 frames from frame 1 at stride 3 .*fewer than the clip "
                                                "length 5"):
            video.clip(1, 5, 3)
    for length, stride, message in [(0, 1, "--clip-length must be 1 to 256"), (257, 1, "--clip-length"),
                                     (4, 0, "--stride must be 1 to 64"), (4, 65, "--stride"),
                                     (2.5, 1, "whole number"), (True, 1, "whole number")]:
        with pytest.raises(BadInputError, match=message):
            check_clip_options(length, stride)
        with pytest.raises(BadInputError, match=message):
            read_inputs(ten, "clip", RunOptions(clip_length=length, stride=stride))
    with pytest.raises(BadInputError, match="--frame must be 0 or more"):
        read_inputs(ten, "image", RunOptions(frame=-3))
    assert len(read_clip(ten, 2, 8)) == 8


def test_video_bounds_are_checked_before_frames_are_decoded(tmp_path, monkeypatch, limit):
    big = write_video(tmp_path / "big.avi", 2, size=(1000, 1000), fourcc="MJPG")
    decoded = []
    original = VideoReader._decode

    def counting(self):
        decoded.append(1)
        return original(self)

    monkeypatch.setattr(VideoReader, "_decode", counting)
    with VideoReader(big) as video:
        assert len(decoded) == 1  # the first frame, at open
        with pytest.raises(BadInputError, match="64.0 Mpx decoded, .*choose --clip-length 50 or fewer"):
            video.clip(0, 64)
        assert len(decoded) == 1
    decoded.clear()
    limit(900_000)
    with pytest.raises(BadInputError, match="each frame of video .*1000×1000 pixels .*--max-pixels 1000000"):
        VideoReader(big)
    assert decoded == []  # refused from the container's frame size


@pytest.mark.parametrize("content,reason", [
    (b"", "empty \\(0 bytes\\)"),
    (b"a note about a video\n" * 20, "is a text file, not a video"),
    (b"\x89PNG\r\n\x1a\n" + bytes(200), "PNG image, not a video; rename it to .png"),
    (b"\xff\xd8\xff\xe0" + bytes(200), "JPEG image, not a video"),
    (b"\x00\x00\x00\x18ftypisom" + bytes(300), "looks like an MP4/QuickTime video but is truncated or corrupt"),
])
def test_video_content_that_cannot_be_read_is_named(tmp_path, content, reason):
    path = tmp_path / "x.mp4"
    path.write_bytes(content)
    with pytest.raises(BadInputError, match=reason):
        VideoReader(path)


@pytest.mark.slow
def test_decoder_logs_never_reach_the_terminal(tmp_path):
    """A truncated and a damaged video through the real command: stderr holds relviz's sentence and nothing else."""
    data = write_video(tmp_path / "ten.mp4", 30, size=(160, 120)).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    damaged = bytearray(data)
    rng = np.random.default_rng(1)
    at = data.index(b"mdat") + 3000
    damaged[at:at + 4000] = rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()
    (tmp_path / "damaged.mp4").write_bytes(bytes(damaged))
    script = (
        "import sys\n"
        "from relviz.cli import main\n"
        "for name in ('cut.mp4', 'damaged.mp4'):\n"
        "    code = main(['trace', '--model', 'demo-lrnet', '--device', 'cpu', '--frame', '25',\n"
        "                 '--input', name, '--out', name + '.npz'])\n"
        "    print(name, code)\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    env.pop("OPENCV_LOG_LEVEL", None)
    env.pop("OPENCV_FFMPEG_LOGLEVEL", None)
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    codes = dict(line.split() for line in proc.stdout.splitlines() if line.endswith((" 0", " 2")))
    assert codes["cut.mp4"] == "2"
    errors = proc.stderr.strip().splitlines()
    assert errors[0].startswith("relviz: error: ") and "truncated or corrupt" in errors[0]
    # the damaged file decodes (with errors FFmpeg would print) or is refused: either way one sentence at most
    assert len(errors) == (2 if codes["damaged.mp4"] == "2" else 1), proc.stderr
    assert all(line.startswith("relviz: error: ") for line in errors), proc.stderr
