"""What ``relviz batch --inputs`` names, as a sorted list of items, refused before any work when unusable.

``--inputs`` is one of:

- a **folder**: the images and videos directly inside it (other files are passed over);
- a **glob** (``'photos/**/*.jpg'``, quoted so the shell leaves it alone), ``**`` reaching into sub-folders;
- a **list file** (``.txt``): one path per line, relative to the list's folder; blank lines and ``#``
  comments are skipped;
- a **COCO json** (``.json``): the ``file_name`` of every entry of ``images``, relative to ``--image-root``
  (by default the json's folder, then its parent); its ``categories`` must be classes the model knows.

A missing folder, an empty set, a list or COCO file naming files that do not exist, or a json that is not
COCO: one sentence, before the model is loaded.  A file that exists but does not decode is an item like any
other; it fails when it runs and the manifest says why.

Items are named by their path relative to the set's root (``street/0001.jpg``); a video is expanded into
one item per frame (image models) or per clip (clip models) once the model is known (:func:`expand`).
"""

from __future__ import annotations

import glob
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from relviz.core.errors import BadInputError
from relviz.core.files import shown
from relviz.core.readers import InputKind, classify, folder_items

#: a COCO json is read whole; COCO 2017's largest annotation file (train instances) is 470 MB
MAX_COCO_JSON_BYTES = 1_000_000_000
#: a list file of paths, one per line
MAX_LIST_BYTES = 200_000_000
#: items in one batch run (a sanity bound: the item list is held in memory)
MAX_ITEMS = 10_000_000
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class InputFile:
    """One image or video of the set, and its name relative to the set's root."""

    path: Path
    name: str  # relative, with '/' separators
    kind: str  # 'image' or 'video'


@dataclass(frozen=True)
class InputSet:
    """The files ``--inputs`` names, and the class names a COCO json declares (None otherwise)."""

    files: list[InputFile]
    spec: str
    categories: list[str] | None = None


@dataclass(frozen=True)
class Item:
    """One unit of work: an image, one frame of a video (image models) or one clip (clip models)."""

    key: str  # unique within the run: the file's name, with '#f<frame>' for a video frame or clip
    path: Path
    kind: str  # 'image' or 'video'
    frame: int | None = None  # the frame (image models) or the clip's first frame (clip models)
    clip_length: int | None = None

    @property
    def stem(self) -> str:
        """The item's output name under ``traces/`` and ``figures/``: ``a/b.jpg``, ``clip.mp4.f000120``."""
        name = self.key.split("#", 1)[0]
        return name if self.frame is None else f"{name}.f{self.frame:06d}"


def _media_kind(path: Path) -> str | None:
    """'image' or 'video' by the name, else None (a checkpoint, a trace, any other file)."""
    try:
        kind = classify(path)
    except BadInputError:
        return None
    return {InputKind.IMAGE: "image", InputKind.VIDEO: "video"}.get(kind)


def _relative(paths: list[Path], root: Path) -> list[InputFile]:
    """The media files of ``paths``, named relative to ``root`` — never with ``..`` (outputs are written under
    these names): a file outside ``root`` is named by its whole path."""
    files = []
    base = Path(os.path.abspath(root))
    for p in paths:
        kind = _media_kind(p)
        if kind is None:
            continue
        full = Path(os.path.abspath(p))  # normalised: no '..' left
        try:
            name = full.relative_to(base).as_posix()
        except ValueError:
            name = full.as_posix().lstrip("/")
        files.append(InputFile(full, name, kind))
    return files


def _common_root(paths: list[Path]) -> Path:
    if not paths:
        return Path(".")
    try:
        return Path(os.path.commonpath([str(p.parent.absolute()) for p in paths]))
    except ValueError:  # different drives
        return Path(".")


def list_inputs(spec: str, image_root: str | None = None) -> InputSet:
    """The files ``spec`` names (sorted, each once), or one sentence saying why there are none to run."""
    if not spec:
        raise BadInputError("--inputs is empty; give a folder, a glob, a list file (.txt) or a COCO json")
    path = Path(spec).expanduser()
    exists = os.path.lexists(path)
    if not exists and _GLOB_CHARS & set(spec):
        files = _from_glob(spec)
    elif not exists:
        raise BadInputError(f"--inputs {shown(spec)} does not exist; give a folder, a glob, a list file (.txt) "
                            "or a COCO json")
    elif _is_dir(path):
        files = _relative(folder_items(path), path)
    elif path.suffix.lower() == ".txt":
        files = _from_list(path)
    elif path.suffix.lower() == ".json":
        files, categories = _from_coco(path, image_root)
        return _checked(InputSet(files, spec, categories))
    elif _media_kind(path) is not None:
        files = _relative([path], path.parent)
    else:
        classify(path)  # a sentence for a dangling link, a pipe, a device
        raise BadInputError(f"--inputs {shown(spec)} is neither a folder, a glob, a list file (.txt), a COCO json "
                            "nor an image or video")
    return _checked(InputSet(files, spec, None))


def _is_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:
        return False


def _checked(inputs: InputSet) -> InputSet:
    if not inputs.files:
        raise BadInputError(f"--inputs {shown(inputs.spec)} holds no images or videos")
    if len(inputs.files) > MAX_ITEMS:
        raise BadInputError(f"--inputs {shown(inputs.spec)} names {len(inputs.files):,} files; one run takes at "
                            f"most {MAX_ITEMS:,} (split the set)")
    seen: set[str] = set()
    unique = []
    for f in sorted(inputs.files, key=lambda f: f.name):
        if f.name not in seen:
            seen.add(f.name)
            unique.append(f)
    return InputSet(unique, inputs.spec, inputs.categories)


def _from_glob(pattern: str) -> list[InputFile]:
    paths = [Path(p) for p in glob.glob(os.path.expanduser(pattern), recursive=True)]
    paths = [p for p in paths if p.is_file()]
    if not paths:
        raise BadInputError(f"--inputs {shown(pattern)} matches no files")
    # the root: the pattern's part before its first wildcard
    fixed = []
    for part in Path(os.path.expanduser(pattern)).parts:
        if _GLOB_CHARS & set(part):
            break
        fixed.append(part)
    root = Path(*fixed) if fixed else Path(".")
    return _relative(sorted(paths), root if root.is_dir() else root.parent)


def _read_text(path: Path, limit: int, what: str) -> str:
    try:
        size = path.stat().st_size
        if size > limit:
            raise BadInputError(f"{what} {shown(path)} is {size / 1e6:,.0f} MB, more than the {limit / 1e6:,.0f} MB "
                                "relviz reads")
        with open(path, "rb") as fh:
            raw = fh.read(limit + 1)
    except OSError as exc:
        raise BadInputError(f"{what} {shown(path)} cannot be read: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInputError(f"{what} {shown(path)} is not UTF-8 text") from None


def _missing(paths: list[Path], what: str, hint: str) -> None:
    gone = [p for p in paths if not p.is_file()]
    if gone:
        raise BadInputError(f"{len(gone):,} of the {len(paths):,} files {what} lists do not exist (the first: "
                            f"{shown(gone[0])}); {hint}")


def _from_list(path: Path) -> list[InputFile]:
    text = _read_text(path, MAX_LIST_BYTES, "list file")
    base = path.parent
    paths = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        p = Path(line).expanduser()
        paths.append(p if p.is_absolute() else base / p)
    if not paths:
        raise BadInputError(f"list file {shown(path)} names no files (one path per line)")
    _missing(paths, shown(path.name), "fix the list (paths are relative to its folder)")
    refused = [p for p in paths if _media_kind(p) is None]
    if refused:
        raise BadInputError(f"list file {shown(path.name)} names {shown(refused[0].name)}, which is not an image or "
                            "video")
    return _relative(paths, _common_root(paths))


def _from_coco(path: Path, image_root: str | None) -> tuple[list[InputFile], list[str]]:
    text = _read_text(path, MAX_COCO_JSON_BYTES, "COCO json")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{shown(path.name)} is not valid JSON ({exc.msg} at line {exc.lineno}, column "
                            f"{exc.colno})") from None
    except (ValueError, RecursionError):
        raise BadInputError(f"{shown(path.name)} is not valid JSON") from None
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list) or not all(isinstance(i, dict) and isinstance(i.get("file_name"), str)
                                               for i in images):
        raise BadInputError(f"{shown(path.name)} is not a COCO json: it needs a list 'images' whose entries have a "
                            "'file_name'")
    if not images:
        raise BadInputError(f"COCO json {shown(path.name)} lists no images")
    categories = data.get("categories", [])
    if not isinstance(categories, list) or not all(isinstance(c, dict) and isinstance(c.get("name"), str)
                                                   for c in categories):
        raise BadInputError(f"{shown(path.name)} is not a COCO json: its 'categories' must be a list of entries "
                            "with a 'name'")
    names = [img["file_name"] for img in images]
    roots = [Path(image_root).expanduser()] if image_root else [path.parent, path.parent.parent]
    if image_root and not Path(roots[0]).is_dir():
        raise BadInputError(f"--image-root {shown(image_root)} is not a folder")
    root = next((r for r in roots if (r / names[0]).is_file()), roots[0])
    paths = [root / n for n in names]
    hint = "give --image-root FOLDER (file names are relative to it)" if not image_root else "check --image-root"
    _missing(paths, f"COCO json {shown(path.name)}", hint)
    refused = [p for p in paths if _media_kind(p) is None]
    if refused:
        raise BadInputError(f"COCO json {shown(path.name)} names {shown(refused[0].name)}, which is not an image")
    return _relative(paths, root), [c["name"] for c in categories]


def check_categories(categories: list[str] | None, labels: list[str], model: str) -> None:
    """A COCO json annotated for classes the model does not know is a mismatch: refused, naming one."""
    if not categories:
        return
    known = {str(label).strip().lower() for label in labels}
    unknown = [c for c in categories if c.strip().lower() not in known]
    if unknown:
        shown_labels = ", ".join(str(v) for v in labels[:12]) + (", …" if len(labels) > 12 else "")
        raise BadInputError(f"the COCO json's categories do not match {model}: {len(unknown)} of {len(categories)} "
                            f"(such as {unknown[0]!r}) are not among its classes ({shown_labels})")


def expand(files: list[InputFile], input_kind: str, clip_length: int, frame_step: int | None,
           frame_counts: dict[Path, int]) -> list[Item]:
    """One item per image, per video frame (image models, every ``frame_step``-th) or per clip (clip models,
    clips of ``clip_length`` frames starting every ``frame_step`` frames, by default back to back).

    ``frame_counts`` gives each video's frames (:func:`video_frames`); a video whose count is unknown (0)
    becomes one item at frame 0, which fails with the reader's sentence when it runs.
    """
    items: list[Item] = []
    for f in files:
        if f.kind == "image":
            items.append(Item(f.name, f.path, "image", None, clip_length if input_kind == "clip" else None))
            continue
        n = frame_counts.get(f.path, 0)
        if input_kind == "clip":
            step = frame_step or clip_length
            starts = list(range(0, max(n - clip_length, 0) + 1, step)) or [0]
            if n > clip_length and starts[-1] + clip_length < n:
                starts.append(n - clip_length)  # the last clip ends at the video's last frame
            for s in starts:
                items.append(Item(f"{f.name}#f{s}", f.path, "video", s, clip_length))
        else:
            for t in range(0, max(n, 1), frame_step or 1):
                items.append(Item(f"{f.name}#f{t}", f.path, "video", t, None))
    return items


def video_frames(path: Path) -> int:
    """How many frames a video's header declares; 0 when it cannot be opened (the item then fails)."""
    from relviz.core.errors import RelvizError
    from relviz.core.video import VideoReader

    try:
        with VideoReader(path) as video:
            return int(len(video))
    except RelvizError:
        return 0
