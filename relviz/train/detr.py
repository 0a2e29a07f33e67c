"""The DETR recipe: what differs from the harness's loop — scenes as DETR batches, the Hungarian set loss,
a frozen (or slower) pretrained body, and the official frozen batch norm in the shipped file.

With the body frozen (``--backbone-lr-mult 0``, the default) and ``--pool N``, the body's features of N
training scenes are computed once and stored (:mod:`relviz.train.bodycache`); the transformer and heads
train on them, with ``--query-groups`` groups of object queries during training only (Group DETR,
:class:`CachedBodyDETR`).  The exported model is plain DETR, official key layout."""

from __future__ import annotations

import argparse
import copy
import time
from typing import Any

import torch
from torch import nn

from relviz.train import scenes
from relviz.train.bodycache import FeaturePool, cached_pool, scene_targets
from relviz.train.common import (
    EVAL_SEED,
    TRAIN_SEED,
    freeze,
    freeze_batchnorm,
    init_backbone,
    init_note,
    init_source,
    log,
    run_dir,
    unfreeze_batchnorm,
)
from relviz.train.harness import CardFacts, Measured, Plan, Run, Trainee, adamw, bundled_outputs, fit
from relviz.zoo.demo import DEMO_DETR, DEMO_DETR_RESIZE

TARGET_AP50 = 0.90


def scene_batch(seed: int, start: int, n: int, shorter: int) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """A training batch: images preprocessed as the DETR family does, boxes as normalised cxcywh."""
    from relviz.zoo.detr import preprocess

    images, targets = [], []
    for i in range(n):
        scene = scenes.make_scene(seed, start + i)
        images.append(preprocess(scene.image, shorter))
        labels, boxes = scene_targets(scene)
        targets.append({"labels": labels, "boxes": boxes})
    return torch.stack(images), targets


class CachedBodyDETR(nn.Module):
    """A DETR trained on its frozen body's stored features, with extra query groups during training only.

    ``detr`` is the model that ships (plain DETR, official key layout); ``extra_queries`` are ``groups - 1``
    more sets of object queries (Group DETR): every group decodes the same encoder memory on its own (the
    groups run as separate batch items, so their queries never attend to each other) and is matched one to
    one with the targets, which gives the shared decoder several matched queries per object at each step.
    Only ``detr`` is exported; at inference it is plain DETR with its one group of queries.
    """

    def __init__(self, detr: nn.Module, groups: int):
        super().__init__()
        self.detr = detr
        self.groups = groups
        q, c = detr.query_embed.weight.shape
        self.extra_queries = nn.Parameter(torch.randn(max(0, groups - 1) * q, c))

    def forward(self, features: torch.Tensor) -> dict:
        """``features`` (B, C, h, w) of the body; outputs for B × groups items (group-major)."""
        d = self.detr
        b, _, h, w = features.shape
        mask = torch.zeros(b, h, w, dtype=torch.bool)
        pos = d.backbone[1](mask).to(features.dtype).flatten(2).transpose(1, 2)
        src = d.input_proj(features).flatten(2).transpose(1, 2)
        flat_mask = mask.flatten(1)
        memory = d.transformer.encoder(src, pos, flat_mask)
        queries = torch.cat([d.query_embed.weight, self.extra_queries]).view(self.groups, -1, src.shape[-1])
        g = self.groups
        query_pos = queries[:, None].expand(-1, b, -1, -1).flatten(0, 1)
        hs = d.transformer.decoder(
            torch.zeros_like(query_pos),
            memory.repeat(g, 1, 1),
            pos.repeat(g, 1, 1),
            query_pos,
            flat_mask.repeat(g, 1),
        )
        logits, boxes = d.class_embed(hs), d.bbox_embed(hs).sigmoid()
        return {
            "pred_logits": logits[-1],
            "pred_boxes": boxes[-1],
            "aux_outputs": [{"pred_logits": a, "pred_boxes": bb} for a, bb in zip(logits[:-1], boxes[:-1])],
        }


def pool_batch(pool: FeaturePool, seed: int, step: int, n: int) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Step ``step``'s batch: ``n`` scenes of the pool drawn from a generator seeded by (seed, step), so a
    resumed run draws what the uninterrupted one would have."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return pool.batch(torch.randint(len(pool), (n,), generator=g))


def train_detr(args: argparse.Namespace) -> dict[str, Any]:
    """Train the demo DETR (its body from ``--init-backbone``); export it with its card; its metrics."""
    from relviz.models.detr import DETR, DETRConfig
    from relviz.train.evaluate import evaluate_detector, loaded_for
    from relviz.train.setloss import SetCriterion

    torch.manual_seed(args.seed)
    model = unfreeze_batchnorm(DETR(DETRConfig(**DEMO_DETR, dropout=0.0)))
    if args.init_backbone:
        copied = init_backbone(model, args.init_backbone, "backbone.0.body.")
        log(f"[{args.name}] backbone from {args.init_backbone}: {copied} tensors")
    body = model.backbone[0].body
    if args.backbone_lr_mult == 0:
        freeze(body)
    criterion = SetCriterion(len(scenes.CLASSES), eos_coef=0.1)
    cached = args.backbone_lr_mult == 0 and args.pool > 0
    if cached:
        started = time.monotonic()
        pool = cached_pool(body, TRAIN_SEED, args.pool, DEMO_DETR_RESIZE, run_dir(args.name))
        cache_minutes = (time.monotonic() - started) / 60
        trainee = CachedBodyDETR(model, args.query_groups)
        params = [p for p in trainee.parameters() if p.requires_grad]
        optimizer = adamw(params, args.lr)
    else:
        trainee = model
        body_ids = {id(p) for p in body.parameters()}
        groups = [{"params": [p for p in model.parameters() if id(p) not in body_ids], "mult": 1.0}]
        if args.backbone_lr_mult > 0:
            groups.append({"params": list(body.parameters()), "mult": args.backbone_lr_mult})
        optimizer = adamw(groups, args.lr)
    config = {**DEMO_DETR, "resize": DEMO_DETR_RESIZE, "labels": list(scenes.CLASSES)}

    def measure(run: Run, shipped: torch.nn.Module) -> Measured:
        metrics = evaluate_detector(loaded_for("detr", args.name, shipped, config), EVAL_SEED, args.eval_n)
        notes = []
        if cached:
            notes.append(
                f"trained on the frozen body's stored features of {args.pool} scenes ({cache_minutes:.1f} min to "
                f"compute or read them): {run.step / max(run.budget.elapsed, 1e-9):.2f} steps/s of {args.batch} "
                f"scenes x {args.query_groups} query groups on this machine"
            )
        if metrics["AP50"] < TARGET_AP50:
            body_lr = "frozen" if args.backbone_lr_mult == 0 else f"at {args.backbone_lr_mult}x the learning rate"
            notes.append(
                f"AP50 {metrics['AP50']:.3f} misses the {TARGET_AP50:.2f} target: backbone {init_note(args)}, "
                f"{body_lr}; {run.budget.elapsed / 60:.0f} min on 2 CPU cores ({run.step} steps of {args.batch}). "
                "DETR converges slowly and longer training would raise it."
            )
        return Measured(metrics, {"AP50": TARGET_AP50}, notes)

    card = CardFacts(
        family="detr",
        config=config,
        data={
            "generator": "relviz.train.scenes.make_scene",
            "train_seed": TRAIN_SEED,
            "eval_seed": EVAL_SEED,
            "eval_n": args.eval_n,
            "image_size": 256,
            "model_input": DEMO_DETR_RESIZE,
            "classes": list(scenes.CLASSES),
        },
        recipe={
            "loss": "Hungarian set loss (CE, eos_coef 0.1; L1 x5; GIoU x2) with auxiliary decoder losses",
            "optimizer": "AdamW",
            "lr": args.lr,
            "weight_decay": 1e-4,
            "grad_clip": 0.1,
            "batch": args.batch,
            "schedule": "warm-up 200 steps, cosine over the step/time budget",
            "batch_norm": "trained as BatchNorm2d, exported as the official frozen batch norm",
            "dropout": 0.0,
            "seed": args.seed,
            "backbone_init": init_source(args),
            "backbone_lr_mult": args.backbone_lr_mult,
            **(
                {
                    "body_features": f"the frozen body's features of training scenes 0..{args.pool - 1} computed "
                    "once and stored (float16); each step draws its batch from them",
                    "query_groups": f"{args.query_groups} during training (Group DETR: each group matched one to "
                    "one on its own, groups never attend to each other); the exported model has the first",
                }
                if cached
                else {}
            ),
        },
    )
    def loss(_key: str, module: nn.Module, batch: tuple) -> tuple[torch.Tensor, dict[str, float]]:
        groups = module.groups if cached else 1
        return criterion(module(batch[0]), batch[1] * groups)

    def next_batch(step: int) -> tuple:
        if cached:
            return pool_batch(pool, args.seed, step, args.batch)
        return scene_batch(TRAIN_SEED, step * args.batch, args.batch, DEMO_DETR_RESIZE)

    def ship(models: dict[str, nn.Module]) -> nn.Module:
        detr = models["model"].detr if cached else models["model"]
        return freeze_batchnorm(copy.deepcopy(detr)).eval()

    plan = Plan(
        models={"model": Trainee(trainee, optimizer, clip=0.1)},
        batch=next_batch,
        loss=loss,
        ship=ship,
        measure=measure,
        card=card,
        warmup=200,
        **bundled_outputs(args, "detr"),
    )
    return fit(args, plan).metrics
