"""Recipes for the two-stage demo detectors (Relation Networks and Learning Region Features).

Both are torchvision Faster R-CNNs (relviz's ``relation`` and ``regionfeat`` families) with a ResNet-18
FPN body trained from scratch with batch norm, at 128×128 (scenes are 256×256; the detector's transform
resizes them, at training and at run time alike).  Class 0 is background, so scene label ``c`` is class
``c + 1``.  The relation recipe also trains the same detector *without* relation modules (the plain
2fc head) on the same batches, so its card can say what the relations add on the relational ``odd``
label.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from relviz.train import scenes
from relviz.train.common import (
    EVAL_SEED,
    TRAIN_SEED,
    freeze,
    init_backbone,
    init_note,
    init_source,
    log,
    output_dir,
    run_dir,
)
from relviz.train.harness import CardFacts, Measured, Plan, Run, Trainee, adamw, bundled_outputs, fit
from relviz.zoo.demo import DEMO_REGIONFEAT, DEMO_RELATION, DETECTOR_LABELS  # noqa: F401

#: the demo detectors' configs and labels are plain data in the zoo
LABELS = DETECTOR_LABELS


#: the two detectors' training data seeds
TRAIN_SEEDS = {"relation": TRAIN_SEED + 4, "regionfeat": TRAIN_SEED + 5}
#: the Fast R-CNN losses a head-only baseline trains (its RPN is frozen)
HEAD_LOSSES = ("loss_classifier", "loss_box_reg")


def rcnn_batch(seed: int, start: int, n: int) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """Scenes ``start … start+n-1`` of ``seed`` as torchvision detector inputs (0-1 images; class 0 is background)."""
    images, targets = [], []
    for i in range(n):
        scene = scenes.make_scene(seed, start + i)
        images.append(torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255.0)
        targets.append(
            {
                "boxes": torch.from_numpy(scene.boxes),
                "labels": torch.from_numpy(scene.labels + 1),
                "groups": torch.tensor([o.colour for o in scene.objects], dtype=torch.int64),
            }
        )
    return images, targets


def restart_relations(model: torch.nn.Module, key_std: float = 5e-4) -> int:
    """Start the relation modules of ``model`` afresh as the identity, keeping every other weight.

    W_Q and W_K start small (fc6/fc7 features of these detectors have norms in the hundreds, so the
    default initialisation puts every softmax row on a single proposal, where it saturates and stops
    learning), W_G starts at ω_G ≈ 1 for every pair (no pair is gated off by the ReLU), and the output
    projection at zero, so eq. (6) adds nothing yet: the detector computes what it did without
    relations, and whatever the modules learn is their own.  Returns the number of modules restarted.
    """
    modules = list(getattr(model.roi_heads.box_head, "relations", []))
    with torch.no_grad():
        for rm in modules:
            for linear in (rm.query, rm.key):
                linear.weight.normal_(0.0, key_std)
                linear.bias.zero_()
            rm.geometry_fc.weight.normal_(0.0, 0.01)
            rm.geometry_fc.bias.fill_(1.0)
            rm.linear_out.weight.zero_()
            rm.linear_out.bias.zero_()
    return len(modules)


def freeze_body(model: torch.nn.Module) -> None:
    """Body, FPN and RPN keep the weights they have (batch norm in eval mode); only the box heads learn."""
    freeze(model.backbone)
    for p in model.rpn.parameters():
        p.requires_grad_(False)


def class_weight(odd_weight: float) -> torch.Tensor:
    """Cross-entropy weight of each detector class: 1, and ``odd_weight`` for *odd*."""
    weight = torch.ones(len(LABELS))
    weight[LABELS.index("odd")] = odd_weight
    return weight


def optimizer_groups(args: argparse.Namespace, model: torch.nn.Module) -> list[dict[str, Any]]:
    """The detector's parameter groups: the heads at the learning rate; the ResNet body at
    ``--backbone-lr-mult`` when it starts from a file (else 1); W_Q and W_K of the relation modules at
    ``--relation-qk-lr-mult``.  Frozen parameters are left out.

    W_Q and W_K act on features with norms in the hundreds: an Adam step of the head's size moves ω_A by
    tens and saturates every softmax row within a few steps, so they learn more slowly.
    """
    body_ids = {id(p) for p in model.backbone.body.parameters()}
    mult = args.backbone_lr_mult if (args.init_backbone or args.init_from) else 1.0
    qk = [
        p
        for n, p in model.roi_heads.named_parameters()
        if ".relations." in n and n.split(".")[-2] in ("query", "key") and p.requires_grad
    ]
    own_ids = body_ids | {id(p) for p in qk}
    head = [p for p in model.parameters() if p.requires_grad and id(p) not in own_ids]
    body = [p for p in model.backbone.body.parameters() if p.requires_grad]
    groups = (
        {"params": head, "mult": 1.0},
        {"params": body, "mult": mult},
        {"params": qk, "mult": args.relation_qk_lr_mult},
    )
    return [g for g in groups if g["params"]]


def detector_loss(_key: str, model: torch.nn.Module, batch: Any) -> torch.Tensor:
    """The sum of a torchvision detector's training losses on ``(images, targets)``."""
    images, targets = batch
    return sum(model(images, targets).values())


def head_loss(_key: str, model: torch.nn.Module, batch: Any) -> torch.Tensor:
    """The Fast R-CNN head's losses only (:data:`HEAD_LOSSES`), for a detector whose RPN is frozen."""
    losses = model(*batch)
    return sum(losses[k] for k in HEAD_LOSSES)


def train_rcnn(
    args: argparse.Namespace,
    *,
    family: str,
    build: Callable[[dict], torch.nn.Module],
    config: dict[str, Any],
    baseline: dict[str, Any] | None,
    target: float,
    describe: str,
) -> dict[str, Any]:
    """Train a two-stage demo detector (and its relation-free baseline on the same batches); export, card."""
    from relviz.train.evaluate import evaluate_detector, loaded_for

    seed = TRAIN_SEEDS[family]
    torch.manual_seed(args.seed)
    models = {"model": build(config)}
    if baseline is not None:
        torch.manual_seed(args.seed)
        models["baseline"] = build(baseline)
    if args.init_from:
        from relviz.core.checkpoint import load_checkpoint

        source = load_checkpoint(args.init_from).state_dict
        for k, m in models.items():
            own = m.state_dict()
            # the baseline takes what it shares with the file (body, FPN, RPN, fc6/fc7, predictor)
            fitting = {n: v.to(own[n].dtype) for n, v in source.items() if n in own and v.shape == own[n].shape}
            m.load_state_dict(fitting, strict=(k == "model"))
            log(f"[{args.name}] {k} continues from {args.init_from}: {len(fitting)} of {len(own)} tensors")
        if args.restart_relations:
            log(f"[{args.name}] restarted {restart_relations(models['model'])} relation modules")
    elif args.init_backbone:
        for m in models.values():
            n = init_backbone(m, args.init_backbone, "backbone.body.")
            log(f"[{args.name}] backbone from {args.init_backbone}: {n} tensors")
    # 'odd' is one object in ten: weighting its cross entropy keeps the relational label from being
    # drowned by the shape classes and the background
    for m in models.values():
        m.roi_heads.class_weight = class_weight(args.odd_weight)
        m.roi_heads.grouping_weight = args.grouping_weight
        if args.heads_only:  # less than half the cost of a step, and a baseline head sees the same features
            freeze_body(m)
    card_config = {**config, "labels": LABELS}

    def measure(run: Run, shipped: torch.nn.Module) -> Measured:
        metrics: dict[str, Any] = evaluate_detector(
            loaded_for(family, args.name, shipped, card_config), EVAL_SEED, args.eval_n
        )
        targets: dict[str, Any] = {"AP50": target}
        notes = []
        if baseline is not None:
            base_model = copy.deepcopy(run.modules()["baseline"]).eval()
            base = evaluate_detector(
                loaded_for(family, args.name, base_model, {**baseline, "labels": LABELS}), EVAL_SEED, args.eval_n
            )
            metrics.update({f"baseline_{k}": v for k, v in base.items()})
            metrics["baseline"] = (
                "the same detector without relation modules (plain 2fc head), same batches"
                + (", same starting file" if args.init_from else "")
                + (", same frozen body, FPN and RPN" if args.heads_only else "")
            )
            targets["odd_above_baseline"] = "AP50_odd > baseline_AP50_odd"
            if not metrics["AP50_odd"] > base["AP50_odd"]:
                notes.append(
                    f"on the relational 'odd' label the relation detector ({metrics['AP50_odd']:.3f}) "
                    f"is not above the baseline without relations ({base['AP50_odd']:.3f}) at this budget."
                )
        if args.init_from:
            sha = init_source(args, "init_from")["sha256"]
            start = f"continued from {Path(args.init_from).name} (sha256 {sha[:12]}…)"
        else:
            start = f"backbone {init_note(args)}"
        if metrics["AP50"] < target:
            notes.append(
                f"AP50 {metrics['AP50']:.3f} misses the {target:.2f} target: {start}, then "
                f"{run.budget.elapsed / 60:.0f} min on 2 CPU cores ({run.step} steps of {args.batch}); "
                "longer training would raise it."
            )
        return Measured(metrics, targets, notes)

    card = CardFacts(
        family=family,
        config=card_config,
        data={
            "generator": "relviz.train.scenes.make_scene",
            "train_seed": seed,
            "eval_seed": EVAL_SEED,
            "eval_n": args.eval_n,
            "image_size": 256,
            "model_input": config["min_size"],
            "classes": LABELS,
        },
        recipe={
            "loss": "Faster R-CNN losses (RPN objectness + box, Fast R-CNN classifier + box)",
            "odd_class_weight": args.odd_weight,
            **(
                {
                    "grouping_loss": f"{args.grouping_weight} x cross entropy of relation/fc1 head 0 against "
                    "'the other objects of my colour' (relviz.models.rcnn.RelationRoIHeads.grouping_loss)"
                }
                if args.grouping_weight and family == "relation"
                else {}
            ),
            **(
                {"relation_modules": "restarted (relviz.train.rcnn.restart_relations)"}
                if args.init_from and args.restart_relations
                else {}
            ),
            "relation_query_key_lr_mult": args.relation_qk_lr_mult,
            "trained": "box heads only (body, FPN, RPN frozen)" if args.heads_only else "all layers",
            "optimizer": "AdamW",
            "lr": args.lr,
            "weight_decay": 1e-4,
            "batch": args.batch,
            "grad_clip": 10.0,
            "schedule": "warm-up 200 steps, cosine over the step/time budget",
            "seed": args.seed,
            "model": describe,
            "backbone_init": init_source(args),
            **({"continued_from": init_source(args, "init_from")} if args.init_from else {}),
            **({"baseline_config": baseline} if baseline is not None else {}),
        },
    )
    plan = Plan(
        models={k: Trainee(m, adamw(optimizer_groups(args, m), args.lr), clip=10.0) for k, m in models.items()},
        batch=lambda step: rcnn_batch(seed, step * args.batch, args.batch),
        loss=detector_loss,
        ship=lambda modules: copy.deepcopy(modules["model"]).eval(),
        measure=measure,
        card=card,
        warmup=200,
        **bundled_outputs(args, family),
    )
    return fit(args, plan).metrics


def train_baseline_head(args: argparse.Namespace, body_weights: str) -> dict[str, Any]:
    """The relation detector's baseline: the same body (ResNet-18, FPN, RPN, frozen, from ``body_weights``)
    under a plain 2fc head without relation modules, trained on the same scenes.

    Writes ``baseline.safetensors`` and ``baseline.json`` (its AP50 per class on the evaluation seed) in
    the recipe's run directory; :func:`relviz.train.cards.compact_bundled` copies the numbers into the
    ``demo-relation`` card.  Training only the head on a shared frozen body isolates what the relation
    modules add (and costs a third of a full run).
    """
    import json

    from relviz.core.checkpoint import load_checkpoint, sha256_of
    from relviz.models.rcnn import build_relation_rcnn
    from relviz.train.evaluate import evaluate_detector, loaded_for

    config = {**DEMO_RELATION, "relation_modules": 0}
    torch.manual_seed(args.seed)
    model = build_relation_rcnn(config)
    source = load_checkpoint(body_weights).state_dict
    body = {k: v for k, v in source.items() if k.startswith(("backbone.", "rpn."))}
    own = model.state_dict()
    if set(body) != {k for k in own if k.startswith(("backbone.", "rpn."))}:
        raise ValueError(f"the body, FPN and RPN of {body_weights} do not fit the relation-free demo detector")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in body.items()}, strict=False)
    freeze_body(model)
    model.roi_heads.class_weight = class_weight(args.odd_weight)
    out = run_dir(args.name)
    plan = Plan(
        models={"model": Trainee(model, adamw([p for p in model.parameters() if p.requires_grad], args.lr))},
        batch=lambda step: rcnn_batch(TRAIN_SEEDS["relation"], step * args.batch, args.batch),
        loss=head_loss,
        ship=lambda modules: modules["model"],
        measure=lambda run, shipped: Measured(
            evaluate_detector(
                loaded_for("relation", args.name, shipped, {**config, "labels": LABELS}), EVAL_SEED, args.eval_n
            )
        ),
        weights=out / "baseline.safetensors",
        warmup=100,
        label=args.name + "-baseline",
        interim_exports=False,
    )
    run = fit(args, plan)
    record = {
        "metrics": run.metrics,
        "steps": run.step,
        "batch": args.batch,
        "wall_time_min": round(run.budget.elapsed / 60, 1),
        "body": Path(body_weights).name,
        "config": config,
        "body_sha256": sha256_of(Path(body_weights)),
        "odd_class_weight": args.odd_weight,
        "protocol": "relation-free 2fc head trained on the frozen body, FPN and RPN of the relation detector",
    }
    (out / "baseline.json").write_text(json.dumps(record, indent=1) + "\n")
    log(f"[{args.name}] baseline: {run.metrics}")
    bundled = output_dir(args) / f"{args.name}.safetensors"
    if bundled.is_file() and sha256_of(bundled) == record["body_sha256"]:
        from relviz.train.cards import attach_baseline

        attach_baseline(args.name, bundled.with_suffix(".json"))
        log(f"[{args.name}] baseline written into {bundled.with_suffix('.json').name}")
    return run.metrics
