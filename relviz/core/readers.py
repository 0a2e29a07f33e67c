"""One reader registry: what a path given on the command line, opened or dropped on the window is.

:func:`classify` maps a path to a :class:`InputKind` or refuses it with a sentence; File → Open, the
command line and drag-and-drop all go through it, so they accept and refuse the same things.
"""

from __future__ import annotations

import enum
import stat
from pathlib import Path

from relviz.core.errors import BadInputError
from relviz.core.files import file_type, shown, stat_path
from relviz.core.images import IMAGE_SUFFIXES
from relviz.core.model_folder import is_model_folder
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
    """What ``path`` is, by its name; a clear :class:`BadInputError` for anything relviz cannot open.

    The path is looked at, never read: a missing file, a dangling or looping link, a pipe or a device
    is refused here with its own sentence, so no reader ever blocks on a FIFO.
    """
    path = Path(path)
    mode = stat_path(path).st_mode
    if stat.S_ISDIR(mode):
        # a Hugging Face model folder (config.json beside its weights) is a checkpoint, not images to step through
        return InputKind.CHECKPOINT if is_model_folder(path) else InputKind.FOLDER
    if not stat.S_ISREG(mode):
        raise BadInputError(f"{shown(path)} is a {file_type(mode)}, not a file relviz can open")
    kind = _BY_SUFFIX.get(path.suffix.lower())
    if kind is None:
        raise BadInputError(
            f"relviz cannot open {shown(path.name)}: not an image ({', '.join(IMAGE_SUFFIXES)}), video "
            f"({', '.join(VIDEO_SUFFIXES)}), checkpoint ({', '.join(CHECKPOINT_SUFFIXES)}) or trace (.npz)"
        )
    return kind


def folder_items(folder: str | Path) -> list[Path]:
    """The images and videos directly inside ``folder``, sorted by name, for stepping through.

    Links are followed; entries that are not regular files (pipes, devices, dangling or looping links)
    are passed over rather than refused, as a file browser would.
    """
    folder = Path(folder)
    if not stat.S_ISDIR(stat_path(folder).st_mode):
        raise BadInputError(f"{shown(folder)} is not a folder")
    try:
        entries = sorted(folder.iterdir())
    except PermissionError:
        raise BadInputError(f"folder {shown(folder)} cannot be listed: permission denied") from None
    except OSError as exc:
        raise BadInputError(f"folder {shown(folder)} cannot be listed: {exc.strerror or exc}") from None
    items = [p for p in entries if _BY_SUFFIX.get(p.suffix.lower()) in (InputKind.IMAGE, InputKind.VIDEO)
             and _is_file(p)]
    if not items:
        raise BadInputError(f"folder {shown(folder)} holds no images or videos")
    return items


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name the file system refuses to stat
        return False
