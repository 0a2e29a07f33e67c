"""The bundled demo models: small models of every family trained by ``relviz.train`` on procedural data.

Each entry's weights live in ``weights/<name>.safetensors`` with a model card ``weights/<name>.json``
whose ``sha256`` the zoo checks before loading.  The configs here hold what a state dict cannot tell
(input size, labels, anchors); ``python -m relviz.train <name>`` reproduces the weights.  Entries of
families whose architecture is not registered are skipped, so this module never breaks the zoo.
"""

from __future__ import annotations

from relviz.train.classify import CLASS_NAMES
from relviz.train.rcnn import DEMO_REGIONFEAT, DEMO_RELATION, LABELS
from relviz.train.recipes import (
    DEMO_DETR,
    DEMO_DETR_RESIZE,
    DEMO_LRNET,
    DEMO_NONLOCAL,
    DEMO_NONLOCAL_CLIP,
)
from relviz.train.scenes import CLASSES
from relviz.zoo import ModelEntry, families, register_model

# demo-relation first: the application opens the first model with bundled weights, and it is the
# strongest demo detector (see the model cards)
_ENTRIES = [
    ModelEntry(
        "demo-relation",
        "relation",
        "demo Relation Networks detector (R18-FPN, 2fc+RM, 128 px) on shapes scenes",
        {**DEMO_RELATION, "labels": LABELS},
        weights="demo-relation.safetensors",
    ),
    ModelEntry(
        "demo-detr",
        "detr",
        "demo DETR (ResNet-18, 2+2 layers, 192 px) trained on relviz's shapes scenes",
        {**DEMO_DETR, "resize": DEMO_DETR_RESIZE, "labels": list(CLASSES)},
        weights="demo-detr.safetensors",
    ),
    ModelEntry(
        "demo-regionfeat",
        "regionfeat",
        "demo learned-region-features detector (R18-FPN, 128 px) on shapes scenes",
        {**DEMO_REGIONFEAT, "labels": LABELS},
        weights="demo-regionfeat.safetensors",
    ),
    ModelEntry(
        "demo-lrnet",
        "lrnet",
        "demo LR-Net (tiny, 32 px) classifying shape and texture of patches",
        {**DEMO_LRNET, "labels": CLASS_NAMES["patches"]},
        weights="demo-lrnet.safetensors",
    ),
    ModelEntry(
        "demo-nonlocal",
        "nonlocal",
        "demo non-local ResNet (tiny, 64 px): do two distant shapes share a colour?",
        {**DEMO_NONLOCAL, "labels": CLASS_NAMES["pairs"]},
        weights="demo-nonlocal.safetensors",
    ),
    ModelEntry(
        "demo-nonlocal-clip",
        "nonlocal",
        "demo C2D non-local ResNet (tiny, 8 frames): do two moving shapes share a colour?",
        {**DEMO_NONLOCAL_CLIP, "labels": CLASS_NAMES["clips"]},
        weights="demo-nonlocal-clip.safetensors",
    ),
]

for _entry in _ENTRIES:
    if _entry.family in families():
        register_model(_entry)
