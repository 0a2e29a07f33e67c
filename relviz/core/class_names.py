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
