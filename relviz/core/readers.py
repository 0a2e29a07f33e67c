"""One reader registry: what a path given on the command line, opened or dropped on the window is.

:func:`classify` maps a path to a :class:`InputKind` or refuses it with a sentence; File → Open, the
command line and drag-and-drop all go through it, so they accept and refuse the same things.
"""

from __future__ import annotations

import enum
from pathlib import Path

from relviz.core.errors import BadInputError
from relviz.core.images import IMAGE_SUFFIXES
from relviz.core.video import VIDEO_SUFFIXES

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors")
TRACE_SUFFIXES = (".npz",)


class InputKind(enum.Enum):
    IMAGE = "image"
    VIDEO = "video"
    CHECKPOINT = "checkpoint"
    TRACE = "trace"
    FOLDER = "folder"


_BY_SUFFIX = {
    **{s: InputKind.IMAGE for s in IMAGE_SUFFIXES},
    **{s: InputKind.VIDEO for s in VIDEO_SUFFIXES},
    **{s: InputKind.CHECKPOINT for s in CHECKPOINT_SUFFIXES},
    **{s: InputKind.TRACE for s in TRACE_SUFFIXES},
}


def supported_suffixes(kind: InputKind | None = None) -> list[str]:
    return sorted(s for s, k in _BY_SUFFIX.items() if kind is None or k == kind)


def classify(path: str | Path) -> InputKind:
    """What ``path`` is, by its name; a clear :class:`BadInputError` for anything relviz cannot open."""
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"{path} does not exist")
    if path.is_dir():
        return InputKind.FOLDER
    kind = _BY_SUFFIX.get(path.suffix.lower())
    if kind is None:
        raise BadInputError(
            f"relviz cannot open {path.name}: not an image ({', '.join(IMAGE_SUFFIXES)}), video "
            f"({', '.join(VIDEO_SUFFIXES)}), checkpoint ({', '.join(CHECKPOINT_SUFFIXES)}) or trace (.npz)"
        )
    return kind


def folder_items(folder: str | Path) -> list[Path]:
    """The images and videos directly inside ``folder``, sorted by name, for stepping through."""
    folder = Path(folder)
    items = [
        p
        for p in sorted(folder.iterdir())
        if p.is_file() and _BY_SUFFIX.get(p.suffix.lower()) in (InputKind.IMAGE, InputKind.VIDEO)
    ]
    if not items:
        raise BadInputError(f"folder {folder} holds no images or videos")
    return items
