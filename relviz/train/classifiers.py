"""The classifier recipes (LR-Net on patches, Non-local on pair images and clips): what differs from the
harness's loop — a task's batches and cross entropy, and top-1 on fresh items of the task.

Non-local recipes train a baseline without non-local blocks *on the same batches* (interleaved steps,
same seed and budget) so the model card can compare the two fairly.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from relviz.train.classify import CLASS_NAMES, GENERATOR_NAMES, GENERATORS, TASK_SEED_OFFSET, to_tensor, top1
from relviz.train.common import EVAL_SEED, TRAIN_SEED
from relviz.train.harness import CardFacts, Measured, Plan, Run, Trainee, adamw, bundled_outputs, fit


def train_classifier(
    args: argparse.Namespace,
    *,
    family: str,
    task: str,
    build: Callable[[dict], torch.nn.Module],
    config: dict[str, Any],
    baseline: dict[str, Any] | None,
    target: float,
    describe: str,
) -> dict[str, Any]:
    """Train ``build(config)`` (and, when given, ``build(baseline)`` on the same batches); export and card."""
    torch.manual_seed(args.seed)
    models: dict[str, torch.nn.Module] = {"model": build(config)}
    if baseline is not None:
        torch.manual_seed(args.seed)
        models["baseline"] = build(baseline)
    size = int(config["input_size"])
    seed = TRAIN_SEED + TASK_SEED_OFFSET[task]

    def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        items, labels = GENERATORS[task](seed, step * args.batch, args.batch)
        return to_tensor(items, size), torch.from_numpy(labels)

    def measure(run: Run, shipped: torch.nn.Module) -> Measured:
        metrics: dict[str, Any] = {"top1": top1(shipped, task, size, EVAL_SEED, args.eval_n)}
        targets: dict[str, Any] = {"top1": target}
        notes = []
        if baseline is not None:
            metrics["baseline_top1"] = top1(run.modules()["baseline"], task, size, EVAL_SEED, args.eval_n)
            metrics["baseline"] = "the same network without non-local blocks, trained on the same batches"
            targets["above_baseline"] = "top1 > baseline_top1"
            if metrics["top1"] <= metrics["baseline_top1"]:
                notes.append(
                    f"top-1 {metrics['top1']:.3f} is not above the no-non-local baseline "
                    f"({metrics['baseline_top1']:.3f}) on this task at this budget."
                )
        if metrics["top1"] < target:
            notes.append(
                f"top-1 {metrics['top1']:.3f} misses the {target:.2f} target after "
                f"{run.budget.elapsed / 60:.0f} min of training on 2 shared CPU cores ({run.step} steps of "
                f"{args.batch}); a longer run would likely raise it."
            )
        return Measured(metrics, targets, notes)

    card = CardFacts(
        family=family,
        config={**config, "labels": CLASS_NAMES[task]},
        data={
            "generator": GENERATOR_NAMES[task],
            "train_seed": seed,
            "eval_seed": EVAL_SEED,
            "eval_n": args.eval_n,
            "classes": CLASS_NAMES[task],
        },
        recipe={
            "loss": "cross entropy",
            "optimizer": "AdamW",
            "lr": args.lr,
            "weight_decay": 1e-4,
            "batch": args.batch,
            "schedule": "warm-up 100 steps, cosine over the step/time budget",
            "seed": args.seed,
            "model": describe,
            **({"baseline_config": baseline} if baseline is not None else {}),
        },
    )
    plan = Plan(
        models={k: Trainee(m, adamw(m.parameters(), args.lr)) for k, m in models.items()},
        batch=batch,
        loss=lambda _key, module, xy: F.cross_entropy(module(xy[0]), xy[1]),
        ship=lambda modules: copy.deepcopy(modules["model"]).eval(),
        measure=measure,
        card=card,
        warmup=100,
        **bundled_outputs(args, family),
    )
    return fit(args, plan).metrics
