"""The bundled demo models: small models of every family trained by ``relviz.train`` on procedural data.

Each entry's weights live in ``weights/<name>.safetensors`` with a model card ``weights/<name>.json``
whose ``sha256`` the zoo checks before loading.  The configs here are plain data: what a state dict
cannot tell (input size, labels, anchors).  ``relviz.train`` reads them from here to train the same
architectures (``python -m relviz.train <name>`` reproduces the weights), so listing the zoo never
loads the training code.  Entries of families whose architecture is not registered are skipped, so
this module never breaks the zoo.
"""

from __future__ import annotations

from relviz.zoo import ModelEntry, families, register_model

# -- the demo data's classes ----------------------------------------------------------------------

#: shapes of the detection scenes and patches
SHAPE_KINDS = ("circle", "square", "triangle")
#: detection scenes: a shape, or "odd" for the object whose colour differs from all others
SCENE_CLASSES = (*SHAPE_KINDS, "odd")
#: LR-Net patches: a texture and a shape
PATCH_TEXTURES = ("solid", "striped")
PATCH_CLASSES = tuple(f"{t} {k}" for k in SHAPE_KINDS for t in PATCH_TEXTURES)
#: non-local images and clips: do two distant shapes share a colour?
PAIR_CLASSES = ("different", "same")
#: the two-stage detectors' classes (0 is background)
DETECTOR_LABELS = ["background", *SCENE_CLASSES]

# -- configs --------------------------------------------------------------------------------------

_RCNN_COMMON = {
    "num_classes": len(DETECTOR_LABELS),
    "backbone": "resnet18",
    "norm": "batch",
    "trainable_layers": 5,
    "fpn_channels": 64,
    "min_size": 128,
    "max_size": 128,
    "anchor_sizes": [8, 16, 32, 64, 128],
    "rpn_pre_nms_top_n_train": 300,
    "rpn_post_nms_top_n_train": 100,
    "rpn_pre_nms_top_n_test": 300,
    "proposals": 50,
    "box_batch_size_per_image": 64,
    "representation": 256,
    "detections_per_img": 50,
    "score_thresh": 0.01,
}
#: 2fc+RM head: two relation modules, 4 heads, d_k = 32, d_g = 32; classic NMS (no duplicate removal)
DEMO_RELATION = {
    **_RCNN_COMMON,
    "relation_modules": 2,
    "heads": 4,
    "key_dim": 128,
    "geo_dim": 32,
    "duplicate_removal": False,
    "nms": "nms",
}
#: learned region features: 4×4 parts from 8×8 samples per box; narrower FPN and 2fc than the relation
#: detector, so that all of weights/ stays under 40 MB
DEMO_REGIONFEAT = {
    **_RCNN_COMMON,
    "fpn_channels": 48,
    "representation": 128,
    "parts": 4,
    "samples": 8,
    "region_geo_dim": 32,
    "region_value": "shared",
}
#: a small DETR: ResNet-18, 2 + 2 transformer layers of width 128, 16 queries (a scene has ≤ 12 objects)
DEMO_DETR = {
    "backbone_depth": 18,
    "dilation": False,
    "hidden_dim": 128,
    "nheads": 8,
    "enc_layers": 2,
    "dec_layers": 2,
    "dim_feedforward": 256,
    "num_queries": 16,
    "num_classes": len(SCENE_CLASSES),
    "pre_norm": False,
    "position_embedding": "sine",
}
#: scenes are 256×256 and the model sees them at their own size: ResNet-18's stride-32 grid is 8×8 = 64 tokens
#: for up to 12 objects (at 192 px, 6×6 tokens; at 128 px, 4×4 were too few to tell neighbouring objects apart)
DEMO_DETR_RESIZE = 256
#: tiny LR-Net (the family's "tiny" preset: 1 block per stage, 5×5 local relation) on 32×32 patches, with
#: one aggregation per channel (m=1): with so few channels, the preset's m=4 left too few geometry priors
#: to tell shapes apart (in equal short runs, shape accuracy rose faster per step with m=1)
DEMO_LRNET = {"preset": "tiny", "num_classes": len(PATCH_CLASSES), "input_size": 32, "m": 1}
#: tiny non-local ResNet, embedded Gaussian blocks after res3.0 and res4.0, 64×64 images
DEMO_NONLOCAL = {"preset": "tiny", "num_classes": len(PAIR_CLASSES), "input_size": 64, "clip": False}
#: the same as a C2D clip model: 8 frames, space-time non-local blocks
DEMO_NONLOCAL_CLIP = {"preset": "tiny", "num_classes": len(PAIR_CLASSES), "input_size": 64, "clip": True,
                      "clip_length": 8}

# demo-relation first: the application opens the first model with bundled weights, and it is the
# strongest demo detector (see the model cards)
_ENTRIES = [
    ModelEntry(
        "demo-relation",
        "relation",
        "demo Relation Networks detector (R18-FPN, 2fc+RM, 128 px) on shapes scenes",
        {**DEMO_RELATION, "labels": DETECTOR_LABELS},
        weights="demo-relation.safetensors",
    ),
    ModelEntry(
        "demo-detr",
        "detr",
        "demo DETR (ResNet-18, 2+2 layers, 192 px) trained on relviz's shapes scenes",
        {**DEMO_DETR, "resize": DEMO_DETR_RESIZE, "labels": list(SCENE_CLASSES)},
        weights="demo-detr.safetensors",
    ),
    ModelEntry(
        "demo-regionfeat",
        "regionfeat",
        "demo learned-region-features detector (R18-FPN, 128 px) on shapes scenes",
        {**DEMO_REGIONFEAT, "labels": DETECTOR_LABELS},
        weights="demo-regionfeat.safetensors",
    ),
    ModelEntry(
        "demo-lrnet",
        "lrnet",
        "demo LR-Net (tiny, 32 px) classifying shape and texture of patches",
        {**DEMO_LRNET, "labels": list(PATCH_CLASSES)},
        weights="demo-lrnet.safetensors",
    ),
    ModelEntry(
        "demo-nonlocal",
        "nonlocal",
        "demo non-local ResNet (tiny, 64 px): do two distant shapes share a colour?",
        {**DEMO_NONLOCAL, "labels": list(PAIR_CLASSES)},
        weights="demo-nonlocal.safetensors",
    ),
    ModelEntry(
        "demo-nonlocal-clip",
        "nonlocal",
        "demo C2D non-local ResNet (tiny, 8 frames): do two moving shapes share a colour?",
        {**DEMO_NONLOCAL_CLIP, "labels": list(PAIR_CLASSES)},
        weights="demo-nonlocal-clip.safetensors",
    ),
]

for _entry in _ENTRIES:
    if _entry.family in families():
        register_model(_entry)
