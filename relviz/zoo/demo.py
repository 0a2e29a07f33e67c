"""The bundled demo models: small models of every family trained by ``relviz.train`` on procedural data.

Each entry's weights live in ``weights/<name>.safetensors`` with a model card ``weights/<name>.json``
whose ``sha256`` the zoo checks before loading.  Entries of families whose architecture is not
registered (yet) are skipped, so this module never breaks ``import relviz.zoo``.
"""

from __future__ import annotations

from relviz.train.recipes import DEMO_DETR, DEMO_DETR_RESIZE
from relviz.train.scenes import CLASSES
from relviz.zoo import ModelEntry, families, register_model

_ENTRIES = [
    ModelEntry(
        "demo-detr",
        "detr",
        "demo DETR (ResNet-18, 2+2 layers) trained on relviz's shapes scenes",
        {**DEMO_DETR, "resize": DEMO_DETR_RESIZE, "labels": list(CLASSES)},
        weights="demo-detr.safetensors",
    ),
]

for _entry in _ENTRIES:
    if _entry.family in families():
        register_model(_entry)
