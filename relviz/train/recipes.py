"""The bundled demo models' recipes: ``python -m relviz.train <name>``; name → training function and defaults.

Every recipe is seeded, draws its data from the procedural generators (each training item is fresh:
item ``i`` of seed ``TRAIN_SEED`` + the recipe's offset), and trains in the one loop of
:mod:`relviz.train.harness` on CPU within a step and time budget, keeping resumable state in
:func:`relviz.train.common.run_dir`; it exports ``weights/<name>.safetensors`` (or ``--out``) with its
model card, measured on data from :data:`relviz.train.common.EVAL_SEED` (never used for training).
What each recipe supplies to the loop is in :mod:`relviz.train.detr`, :mod:`relviz.train.rcnn` and
:mod:`relviz.train.classifiers`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from relviz.train.common import WEIGHTS_DIR
from relviz.train.compact import compact_state  # noqa: F401  (older model cards name it here)
from relviz.zoo.demo import DEMO_LRNET, DEMO_NONLOCAL, DEMO_NONLOCAL_CLIP


@dataclass
class Recipe:
    """A demo model's recipe: its training function and the command line's defaults for it."""

    name: str
    family: str
    description: str
    train: Callable[[argparse.Namespace], dict[str, Any]]
    defaults: dict[str, Any]


RECIPES: dict[str, Recipe] = {}


def recipe(name: str, family: str, description: str, **defaults: Any) -> Callable:
    """Register the decorated training function as recipe ``name``."""

    def deco(fn: Callable[[argparse.Namespace], dict[str, Any]]) -> Callable:
        RECIPES[name] = Recipe(name, family, description, fn, defaults)
        return fn

    return deco


# -- DETR -----------------------------------------------------------------------------------------


@recipe(
    "demo-detr",
    "detr",
    "DETR ResNet-18, 2+2 layers, width 128, 16 queries, on 256×256 scenes",
    steps=200000,
    minutes=48.0,
    batch=16,
    lr=3e-4,
    init_backbone=str(WEIGHTS_DIR / "demo-relation.safetensors"),
    backbone_lr_mult=0.0,
    pool=5000,
    query_groups=2,
)
def train_detr(args: argparse.Namespace) -> dict[str, Any]:
    from relviz.train.detr import train_detr

    return train_detr(args)


# -- LR-Net and Non-local -------------------------------------------------------------------------


@recipe(
    "demo-lrnet",
    "lrnet",
    "tiny LR-Net on 32×32 shape-and-texture patches (6 classes)",
    steps=20000,
    minutes=40.0,
    batch=64,
    lr=2e-3,
)
def train_lrnet(args: argparse.Namespace) -> dict[str, Any]:
    from relviz.models.lrnet import LRNet
    from relviz.train.classifiers import train_classifier

    return train_classifier(
        args,
        family="lrnet",
        task="patches",
        build=LRNet,
        config=DEMO_LRNET,
        baseline=None,
        target=0.95,
        describe="LR-Net tiny: 1-1-1-1 blocks, 5×5 local relation, m=1",
    )


@recipe(
    "demo-nonlocal",
    "nonlocal",
    "tiny non-local ResNet on 64×64 'same colour?' pair images",
    steps=20000,
    minutes=40.0,
    batch=64,
    lr=2e-3,
)
def train_nonlocal(args: argparse.Namespace) -> dict[str, Any]:
    from relviz.models.nonlocal_net import NonLocalResNet
    from relviz.train.classifiers import train_classifier

    return train_classifier(
        args,
        family="nonlocal",
        task="pairs",
        build=NonLocalResNet,
        config=DEMO_NONLOCAL,
        baseline={**DEMO_NONLOCAL, "nonlocal": "none"},
        target=0.90,
        describe="non-local ResNet tiny: 1-1-1-1 bottlenecks, blocks after res3.0 and res4.0",
    )


@recipe(
    "demo-nonlocal-clip",
    "nonlocal",
    "tiny C2D non-local ResNet on 8-frame 'same colour?' clips of moving shapes",
    steps=20000,
    minutes=40.0,
    batch=32,
    lr=2e-3,
)
def train_nonlocal_clip(args: argparse.Namespace) -> dict[str, Any]:
    from relviz.models.nonlocal_net import NonLocalResNet
    from relviz.train.classifiers import train_classifier

    return train_classifier(
        args,
        family="nonlocal",
        task="clips",
        build=NonLocalResNet,
        config=DEMO_NONLOCAL_CLIP,
        baseline={**DEMO_NONLOCAL_CLIP, "nonlocal": "none"},
        target=0.90,
        describe="C2D non-local ResNet tiny, 8 frames, space-time blocks",
    )


# -- Relation Networks and Learning Region Features -----------------------------------------------


@recipe(
    "demo-relation",
    "relation",
    "Faster R-CNN R18-FPN with a 2fc+RM relation head, 128×128 scenes",
    steps=20000,
    minutes=90.0,
    batch=8,
    lr=5e-4,
)
def train_relation(args: argparse.Namespace) -> dict[str, Any]:
    from relviz.models.rcnn import build_relation_rcnn
    from relviz.train.rcnn import DEMO_RELATION, train_rcnn

    return train_rcnn(
        args,
        family="relation",
        build=build_relation_rcnn,
        config=DEMO_RELATION,
        baseline={**DEMO_RELATION, "relation_modules": 0} if args.baseline else None,
        target=0.90,
        describe="ResNet-18 FPN (64 channels), 2fc (256) + 2 relation modules (4 heads)",
    )


@recipe(
    "demo-regionfeat",
    "regionfeat",
    "Faster R-CNN R18-FPN with learned region features, 128×128 scenes",
    steps=20000,
    minutes=90.0,
    batch=8,
    lr=5e-4,
)
def train_regionfeat(args: argparse.Namespace) -> dict[str, Any]:
    from relviz.models.rcnn import build_regionfeat_rcnn
    from relviz.train.rcnn import DEMO_REGIONFEAT, train_rcnn

    return train_rcnn(
        args,
        family="regionfeat",
        build=build_regionfeat_rcnn,
        config=DEMO_REGIONFEAT,
        baseline=None,
        target=0.85,
        describe="ResNet-18 FPN (64 channels), learned region features (4×4 parts), 2fc (256)",
    )
