"""Class names for classifiers whose checkpoints carry none: the 1000 ImageNet-1k classes.

A 1000-class LR-Net or Non-local model (``lrnet-26``, ``nonlocal-r50``, …) is an ImageNet-1k classifier;
its weights hold no names, so its trace would say "class 564".  The names (``relviz/data/
imagenet1k_classes.json``, in the order of the ILSVRC-2012 class indices, as torchvision lists them)
are shipped with relviz and used wherever only numbers were given.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

IMAGENET_CLASSES = 1000
_DATA = Path(__file__).resolve().parents[1] / "data" / "imagenet1k_classes.json"
_NUMBERED = re.compile(r"^(class )?(\d+)$")


@functools.lru_cache(maxsize=1)
def imagenet1k() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, index i = class i."""
    names = json.loads(_DATA.read_text(encoding="utf-8"))
    if not isinstance(names, list) or len(names) != IMAGENET_CLASSES:
        raise ValueError(f"{_DATA} must hold a list of {IMAGENET_CLASSES} class names")
    return tuple(str(n) for n in names)


def numbered(labels: Any) -> bool:
    """Whether ``labels`` name classes by their index only ('class 0', 'class 1', … or '0', '1', …)."""
    if not isinstance(labels, (list, tuple)) or not labels:
        return False
    for i, name in enumerate(labels):
        match = _NUMBERED.match(str(name))
        if match is None or int(match.group(2)) != i:
            return False
    return True


def display_labels(labels: Any) -> Any:
    """``labels`` with ImageNet-1k names when they are 1000 numbered classes; otherwise ``labels`` itself."""
    if isinstance(labels, (list, tuple)) and len(labels) == IMAGENET_CLASSES and numbered(labels):
        return list(imagenet1k())
    return labels


def default_labels(num_classes: int) -> list[str]:
    """Names for a classifier of ``num_classes`` classes given none: ImageNet-1k's for 1000, else 'class i'."""
    if num_classes == IMAGENET_CLASSES:
        return list(imagenet1k())
    return [f"class {i}" for i in range(num_classes)]


def read_label_file(path: str | Path) -> list[str]:
    """Class names from a text file, one per line (UTF-8; blank lines at the end ignored).

    Refused with one sentence: a path that is not a readable file, a file over
    :data:`~relviz.core.limits.MAX_LABEL_FILE_BYTES`, text that is not UTF-8, a blank line between names,
    more than :data:`~relviz.core.limits.MAX_CLASS_NAMES` names or a name longer than
    :data:`~relviz.core.limits.MAX_CLASS_NAME_CHARS` characters.
    """
    from relviz.core import limits
    from relviz.core.errors import BadInputError
    from relviz.core.files import check_regular, open_regular, shown

    info = check_regular(path, "a label file")
    name = shown(Path(path).name)
    if info.st_size > limits.MAX_LABEL_FILE_BYTES:
        raise BadInputError(f"label file {name} is {info.st_size:,} bytes; relviz reads label files of at most "
                            f"{limits.MAX_LABEL_FILE_BYTES:,} (one class name per line)")
    with open_regular(path, "a label file") as fh:
        raw = fh.read(limits.MAX_LABEL_FILE_BYTES + 1)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInputError(f"label file {name} is not UTF-8 text; save it as UTF-8, one class name per line") from None
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise BadInputError(f"label file {name} names no classes; write one class name per line")
    if "" in names:
        raise BadInputError(f"label file {name} has a blank line at line {names.index('') + 1}; write one class "
                            "name per line, in the order of the model's classes")
    if len(names) > limits.MAX_CLASS_NAMES:
        raise BadInputError(f"label file {name} names {len(names):,} classes; relviz reads at most "
                            f"{limits.MAX_CLASS_NAMES:,}")
    long = next((i for i, n in enumerate(names) if len(n) > limits.MAX_CLASS_NAME_CHARS), None)
    if long is not None:
        raise BadInputError(f"label file {name} has a name of {len(names[long]):,} characters at line {long + 1}; "
                            f"relviz takes names of at most {limits.MAX_CLASS_NAME_CHARS}")
    return names


def apply_labels(meta: dict[str, Any], names: list[str], source: str) -> bool:
    """Give a trace's ``meta`` the class names of a label file; False when the checkpoint named its classes.

    A trace's names come from the checkpoint first (e.g. an mmengine file's ``dataset_meta``), then from a
    label file, then relviz's own ('class N', or ImageNet-1k's for 1000 classes): the file replaces only
    names relviz made up.  Its count must be the model's number of classes.
    """
    from relviz.core.errors import BadInputError

    current = meta.get("labels")
    if not isinstance(current, list) or not current:
        raise BadInputError(f"--labels {source}: this model's trace has no classes to name")
    if len(names) != len(current):
        raise BadInputError(f"label file {source} names {len(names):,} classes but the model has "
                            f"{len(current):,}; write one name per class, in the model's order")
    made_up = numbered(current) or (len(current) == IMAGENET_CLASSES and list(current) == list(imagenet1k()))
    if not made_up:
        return False
    meta["labels"] = list(names)
    return True
