"""Images a user may drop on relviz: headers that claim more pixels than the file holds (PNG, JPEG, TIFF,
tiled TIFF, WebP, BMP), truncated and garbage files, files whose content is not what their name says,
strips too thin to resize, inputs too large for the model, paths that are not files (pipes, devices,
dangling and looping links, names too long), and the valid edges that must keep working (16-bit,
grayscale, CMYK, EXIF-rotated, multi-frame, 1×8, 1×1, odd characters in the name, a large image just
under the pixel limit).  Every file is generated here and stays small: the bombs are a few hundred bytes.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from corpus import Case

#: a fast image model (the bundled LR-Net) and the families whose resize paths differ
LRNET = ["--model", "demo-lrnet", "--device", "cpu"]
RELATION = ["--model", "demo-relation", "--device", "cpu"]
NONLOCAL_CLIP = ["--model", "demo-nonlocal-clip", "--device", "cpu"]
DETR = ["--model", "detr-r50", "--weights", "none", "--config", "backbone_depth=18", "--config", "hidden_dim=64",
        "--heads", "4", "--config", "enc_layers=2", "--config", "dec_layers=2", "--config", "dim_feedforward=96",
        "--config", "num_queries=8", "--config", "num_classes=5", "--device", "cpu"]
LIMIT = "--max-pixels"  # every over-the-limit sentence says how to raise it


# -- crafted files ----------------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_claiming(width: int, height: int, extra: bytes = b"") -> bytes:
    """A PNG whose IHDR claims width×height RGB pixels, with a tiny IDAT (the issue's 150-Mpx file)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + extra + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _chunk(b"IEND", b""))


def tiff_claiming(width: int, height: int, tile: tuple[int, int] | None = None) -> bytes:
    """A little-endian 8-bit gray TIFF declaring width×height, 64 bytes of data; ``tile`` makes it tiled."""
    data = b"\x80" * 64
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (277, 3, 1, 1)]
    if tile:
        entries += [(322, 4, 1, tile[0]), (323, 4, 1, tile[1]), (324, 4, 1, 8), (325, 4, 1, len(data))]
    else:
        entries += [(273, 4, 1, 8), (278, 4, 1, height), (279, 4, 1, len(data))]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in sorted(entries))
    return b"II*\x00" + struct.pack("<I", 8 + len(data)) + data + ifd + struct.pack("<I", 0)


def _encoded(fmt: str, size=(16, 16), mode="RGB", **options) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, (90, 120, 200) if mode == "RGB" else 128).save(buf, fmt, **options)
    return buf.getvalue()


def jpeg_claiming(width: int, height: int) -> bytes:
    """A 16×16 JPEG whose SOF0 marker is patched to claim width×height."""
    data = bytearray(_encoded("JPEG", quality=80))
    at = data.index(b"\xff\xc0")
    data[at + 5:at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def webp_claiming(width: int, height: int) -> bytes:
    """A 16×16 lossless WebP whose VP8L header is patched to claim width×height (at most 16384 a side)."""
    data = bytearray(_encoded("WEBP", lossless=True))
    at = data.index(b"VP8L") + 8
    bits = int.from_bytes(data[at + 1:at + 5], "little")
    bits = (width - 1) | ((height - 1) << 14) | (bits & ~((1 << 28) - 1))
    data[at + 1:at + 5] = bits.to_bytes(4, "little")
    return bytes(data)


def bmp_claiming(width: int, height: int) -> bytes:
    header = struct.pack("<2sIHHI", b"BM", 54 + 64, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 64, 2835, 2835, 0, 0)
    return header + info + b"\0" * 64


def mp4_bytes() -> bytes:
    """The first bytes of an MP4 file (ftyp box): a video, whatever its name says."""
    return struct.pack(">I", 24) + b"ftypisom" + b"\0\0\2\0isomiso2" + struct.pack(">I", 8) + b"free"


def _save(folder: Path, name: str, data: bytes | Image.Image | np.ndarray, **options) -> Path:
    path = folder / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    elif isinstance(data, np.ndarray):
        Image.fromarray(data).save(path, **options)
    else:
        data.save(path, **options)
    return path


def _shapes(width: int, height: int) -> np.ndarray:
    rgb = np.full((height, width, 3), 200, np.uint8)
    rgb[height // 4: height // 2, width // 4: width // 2] = (220, 40, 40)
    return rgb


# -- the cases --------------------------------------------------------------------------------------


def _trace(model: list[str], path: Path, folder: Path, *extra: str) -> list[str]:
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in path.stem[:40])
    return ["trace", *model, "--input", str(path), "--out", str(folder / f"{stem}.npz"), *extra]


def _refusals(folder: Path) -> list[Case]:
    """Bombs and broken files: refused in one sentence before their pixels are decoded."""
    cases = []
    bombs = [
        ("png-header-150mpx", "bomb.png", png_claiming(12000, 12500), "12000×12500"),
        ("png-header-56mpx", "big.png", png_claiming(8000, 7000), "8000×7000"),
        ("png-header-4gpx", "huge.png", png_claiming(65535, 65535), LIMIT),
        ("jpeg-header-3600mpx", "bomb.jpg", jpeg_claiming(60000, 60000), LIMIT),
        ("jpeg-header-63mpx", "big.jpg", jpeg_claiming(9000, 7000), "9000×7000"),
        ("tiff-header-900mpx", "bomb.tif", tiff_claiming(30000, 30000), LIMIT),
        ("webp-header-256mpx", "bomb.webp", webp_claiming(16000, 16000), LIMIT),
        ("webp-header-56mpx", "big.webp", webp_claiming(8000, 7000), "8000×7000"),
        ("bmp-header-900mpx", "bomb.bmp", bmp_claiming(30000, 30000), LIMIT),
        ("png-bomb-named-jpg", "bomb-as.jpg", png_claiming(12000, 12500), LIMIT),
    ]
    for name, file, data, message in bombs:
        path = _save(folder, file, data)
        cases.append(Case(name, _trace(LRNET, path, folder), message=message, unchanged=[str(path)]))
    cases.append(Case("png-bomb-export", ["export", "--view", "detections", *RELATION, "--input",
                                          str(folder / "bomb.png"), "--out", str(folder / "bomb-fig.png")],
                      message=LIMIT))
    cases.append(Case("png-bomb-detr", _trace(DETR, folder / "bomb.png", folder), message="50 Mpx"))
    # the limit raised on purpose: the header passes, and the missing pixel data is what is refused
    cases.append(Case("png-56mpx-limit-raised", _trace(LRNET, folder / "big.png", folder, LIMIT, "60000000"),
                      message="truncated"))

    good = _encoded("PNG", size=(64, 48))
    broken = [
        ("tiff-tile-bomb", "tile.tif", tiff_claiming(64, 64, tile=(60000, 60000)), "corrupt or truncated"),
        ("png-truncated", "cut.png", _encoded("PNG", size=(64, 48), mode="RGB")[:60], "truncated"),
        ("jpeg-truncated", "cut.jpg", _encoded("JPEG", size=(64, 64), quality=95)[:300], "truncated"),
        ("png-zero-width", "zero.png", png_claiming(0, 10), "corrupt"),
        ("png-garbage-after-magic", "garbage.png", good[:16] + os.urandom(200), "corrupt"),
        ("png-text-bomb", "ztxt.png", png_claiming(8, 8, _chunk(b"zTXt", b"c\0\0" + zlib.compress(b"a" * (20 << 20)))),
         "corrupt"),
        ("empty-png", "empty.png", b"", "empty"),
        ("text-named-png", "notes.png", b"this is a shopping list, not a picture\n" * 20, "text file"),
        ("eps-named-jpg", "drawing.jpg", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\n", "not an image"),
        ("mp4-named-png", "clip.png", mp4_bytes() + os.urandom(100), "video"),
        ("gif-named-png", "anim.png", _encoded("GIF", size=(16, 16)), "GIF"),
        ("random-bytes-webp", "noise.webp", os.urandom(3000), "not an image"),
    ]
    for name, file, data, message in broken:
        path = _save(folder, file, data)
        cases.append(Case(name, _trace(LRNET, path, folder), message=message, unchanged=[str(path)]))
    return cases


def _model_inputs(folder: Path) -> list[Case]:
    """Images a model cannot take at any sane size: thin strips, and model inputs over the limit."""
    strip = _save(folder, "strip-1x20000.png", np.full((20000, 1, 3), 128, np.uint8))
    wide = _save(folder, "strip-20000x1.png", np.full((1, 20000, 3), 128, np.uint8))
    just_over = _save(folder, "ratio-31.png", np.full((31, 961, 3), 128, np.uint8))
    photo = _save(folder, "photo-2000x1500.png", _shapes(2000, 1500))
    return [
        Case("strip-1x20000-lrnet", _trace(LRNET, strip, folder), message="aspect ratio"),
        Case("strip-20000x1-detr", _trace(DETR, wide, folder), message="aspect ratio"),
        Case("strip-relation", _trace(RELATION, strip, folder), message="aspect ratio"),
        Case("strip-nonlocal-clip", _trace(NONLOCAL_CLIP, wide, folder), message="aspect ratio"),
        Case("ratio-31-lrnet", _trace(LRNET, just_over, folder), message="31:1"),
        Case("resize-0-3mpx-lrnet", _trace(LRNET, photo, folder, "--resize", "0"), message="model-input limit"),
        Case("resize-0-3mpx-relation", _trace(RELATION, photo, folder, "--resize", "0"), message="model-input limit"),
        Case("resize-0-3mpx-detr", _trace(DETR, photo, folder, "--resize", "0"), message="model-input limit"),
        Case("resize-3000-lrnet", _trace(LRNET, photo, folder, "--resize", "3000"), message="model-input limit"),
        Case("still-clip-too-long", _trace(NONLOCAL_CLIP, photo, folder, "--clip-length", "256", "--resize", "200"),
             message="256 frames"),
    ]


def _paths(folder: Path) -> list[Case]:
    """Paths that are not readable files: one sentence each, and a pipe never blocks."""
    fifo = folder / "pipe.png"
    os.mkfifo(fifo)
    (folder / "dangling.png").symlink_to(folder / "nowhere" / "gone.png")
    sub = folder / "pictures.png"
    sub.mkdir()
    locked = _save(folder, "locked.png", _shapes(32, 24))
    locked.chmod(0)
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    cases = [
        Case("fifo", _trace(LRNET, fifo, folder), message="named pipe"),
        # (a symlink loop is left to tests/test_inputs_bounds.py: the command line resolves --input first)
        Case("symlink-dangling", _trace(LRNET, folder / "dangling.png", folder), message="does not exist"),
        Case("missing", _trace(LRNET, folder / "missing.png", folder), message="does not exist"),
        Case("folder-named-png", _trace(LRNET, sub, folder), message="folder"),
        Case("name-too-long", _trace(LRNET, folder / ("n" * 300 + ".png"), folder), message="too long"),
        Case("parent-is-a-file", _trace(LRNET, folder / "big.png" / "x.png", folder), message="does not exist"),
        # root reads any file whatever its mode; anyone else is refused with a sentence
        Case("unreadable", _trace(LRNET, locked, folder), expect=0 if root else 2,
             message="" if root else "permission denied"),
    ]
    if os.path.exists("/dev/null"):
        cases.append(Case("device", _trace(LRNET, Path("/dev/null"), folder), message="character device"))
    return cases


def _valid(folder: Path) -> list[Case]:
    """Edges that must keep working: exit 0."""
    gray16 = (np.arange(48 * 64, dtype=np.uint32).reshape(48, 64) * 21).astype(np.uint16)
    rotated = Image.fromarray(_shapes(60, 20))
    exif = rotated.getexif()
    exif[0x0112] = 6
    frames = [Image.new("RGB", (40, 30), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    files = {
        "gray16.png": (gray16, {}),
        "gray.jpg": (Image.fromarray(_shapes(64, 48)).convert("L"), {"quality": 90}),
        "cmyk.jpg": (Image.fromarray(_shapes(64, 48)).convert("CMYK"), {}),
        "rotated.jpg": (rotated, {"exif": exif}),
        "rgba.webp": (Image.fromarray(_shapes(64, 48)).convert("RGBA"), {}),
        "float.tif": (Image.fromarray(np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(48, 64)), {}),
        "strip-1x8.png": (np.full((8, 1, 3), 99, np.uint8), {}),
        "ratio-30.png": (np.full((30, 900, 3), 99, np.uint8), {}),
        "pixel-1x1.png": (np.full((1, 1, 3), 250, np.uint8), {}),
        "png-named.jpg": (_shapes(64, 48), {"format": "PNG"}),
        "odd name\twith tab\nand newline é.png": (_shapes(64, 48), {"format": "PNG"}),
        "animated.png": (frames[0], {"save_all": True, "append_images": frames[1:]}),
        "pages.tif": (frames[0], {"save_all": True, "append_images": frames[1:]}),
        "scene.png": (_shapes(96, 72), {}),
    }
    cases = []
    for file, (data, options) in files.items():
        path = _save(folder, file, data, **options)
        name = "valid-" + "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in file)
        cases.append(Case(name[:40], _trace(LRNET, path, folder), expect=0, unchanged=[str(path)]))
    scene = folder / "scene.png"
    cases += [
        Case("valid-detr", _trace(DETR, scene, folder, "--resize", "96"), expect=0),
        Case("valid-relation", _trace(RELATION, scene, folder), expect=0),
        Case("valid-relation-resize-0", _trace(RELATION, scene, folder, "--resize", "0"), expect=0),
        Case("valid-still-clip", _trace(NONLOCAL_CLIP, scene, folder, "--clip-length", "4"), expect=0),
        Case("valid-ratio-30-detr", _trace(DETR, folder / "ratio-30.png", folder, "--resize", "96"), expect=0),
        Case("valid-export", ["export", "--view", "detections", *RELATION, "--input", str(scene),
                              "--out", str(folder / "scene-fig.png"), "--dpi", "50"], expect=0),
    ]
    # a large image just under the 50-Mpx limit (a flat PNG compresses to ~150 kB): decoded and run
    large = _save(folder, "large-7000x7000.png", Image.new("RGB", (7000, 7000), (30, 90, 160)), compress_level=9)
    cases.append(Case("valid-large-49mpx", _trace(LRNET, large, folder), expect=0, unchanged=[str(large)]))
    return cases


def make(folder: Path) -> list[Case]:
    return [*_refusals(folder), *_model_inputs(folder), *_paths(folder), *_valid(folder)]
