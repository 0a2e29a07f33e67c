"""Classification recipes (LR-Net patches, Non-local pair images and motion clips) and their top-1.

Inputs are preprocessed exactly as the zoo families do at run time (shorter side resized to the model's
``input_size``, ImageNet mean/std), so the accuracy measured here is the one a user gets from
``relviz eval``.  Non-local recipes train a baseline without non-local blocks *on the same batches*
(interleaved steps, same seed and budget) so the model card can compare the two fairly.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from relviz.train import longrange, patches
from relviz.train.common import WEIGHTS_DIR, Budget, Every, Progress, log, run_dir, save_state

#: generator(seed, start, n) → (uint8 images (N,H,W,3) or clips (N,T,H,W,3), int64 labels)
GENERATORS: dict[str, Callable[[int, int, int], tuple[np.ndarray, np.ndarray]]] = {
    "patches": lambda seed, start, n: patches.make_patches(seed, n, start=start),
    "pairs": lambda seed, start, n: longrange.make_pair_images(seed, n, start=start),
    "clips": lambda seed, start, n: longrange.make_motion_clips(seed, n, start=start),
}
GENERATOR_NAMES = {
    "patches": "relviz.train.patches.make_patch (32×32)",
    "pairs": "relviz.train.longrange.make_pair_image (64×64)",
    "clips": "relviz.train.longrange.make_motion_clip (8 frames of 64×64)",
}
CLASS_NAMES = {
    "patches": list(patches.PATCH_CLASSES),
    "pairs": list(longrange.IMAGE_CLASSES),
    "clips": list(longrange.CLIP_CLASSES),
}


def to_tensor(items: np.ndarray, input_size: int) -> torch.Tensor:
    """uint8 images (N,H,W,3) → (N,3,h,w), or clips (N,T,H,W,3) → (N,3,T,h,w), as the families preprocess."""
    from relviz.zoo.inputs import normalise
    from relviz.zoo.lrnet import resize_shorter

    if items.ndim == 5:
        return torch.stack([torch.stack([normalise(resize_shorter(f, input_size)) for f in clip], 1) for clip in items])
    return torch.stack([normalise(resize_shorter(im, input_size)) for im in items])


def evaluate_classifier(loaded, task: str, seed: int, n: int, batch: int = 64) -> float:
    """Top-1 of a loaded zoo classifier (LR-Net or Non-local) on ``n`` fresh items of ``task``."""
    module = loaded.module
    size = int(loaded.config.get("input_size", module.config.get("input_size", 64)))
    correct = 0
    with torch.inference_mode():
        for start in range(0, n, batch):
            items, labels = GENERATORS[task](seed, start, min(batch, n - start))
            logits = module(to_tensor(items, size).to(loaded.device, loaded.dtype))
            correct += int((logits.argmax(-1).cpu() == torch.from_numpy(labels)).sum())
    return correct / n


def top1(module: torch.nn.Module, task: str, input_size: int, seed: int, n: int) -> float:
    was = module.training
    module.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, n, 100):
            items, labels = GENERATORS[task](seed, start, min(100, n - start))
            correct += int((module(to_tensor(items, input_size)).argmax(-1) == torch.from_numpy(labels)).sum())
    module.train(was)
    return correct / n


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
    from relviz.train.evaluate import EVAL_SEED
    from relviz.train.recipes import TRAIN_SEED, _card, export_and_reload

    torch.manual_seed(args.seed)
    models = {"model": build(config)}
    if baseline is not None:
        torch.manual_seed(args.seed)
        models["baseline"] = build(baseline)
    opts = {k: torch.optim.AdamW(m.parameters(), lr=args.lr, weight_decay=1e-4) for k, m in models.items()}
    state_path = run_dir(args.name) / "state.pt"
    step, elapsed = 0, 0.0
    if args.resume and state_path.is_file():
        state = torch.load(state_path, weights_only=True)
        for k in models:
            models[k].load_state_dict(state[k])
            opts[k].load_state_dict(state[f"opt_{k}"])
        step, elapsed = int(state["step"]), float(state["elapsed"])
        log(f"resumed {args.name} at step {step}")
    budget = Budget(args.steps, args.minutes, warmup=100, elapsed=elapsed)
    progress = Progress(args.name)
    size = int(config["input_size"])
    saving, exporting = Every(300), Every(args.export_every * 60)
    seed = TRAIN_SEED + {"patches": 1, "pairs": 2, "clips": 3}[task]

    def export(final: bool) -> dict[str, Any]:
        model = copy.deepcopy(models["model"]).eval()
        export_and_reload(model, WEIGHTS_DIR / f"{args.name}.safetensors", {"name": args.name, "family": family})
        metrics: dict[str, Any] = {"top1": top1(model, task, size, EVAL_SEED, args.eval_n)}
        targets: dict[str, Any] = {"top1": target}
        notes = []
        if baseline is not None:
            metrics["baseline_top1"] = top1(models["baseline"], task, size, EVAL_SEED, args.eval_n)
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
                f"{budget.elapsed / 60:.0f} min of training on 2 shared CPU cores ({step} steps of "
                f"{args.batch}); a longer run would likely raise it."
            )
        if not final:
            notes.append("interim export: training was still running when this card was written")
        cfg = {**config, "labels": CLASS_NAMES[task]}
        _card(
            args,
            family,
            cfg,
            step,
            budget,
            metrics,
            targets,
            notes,
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
        log(f"[{args.name}] exported at step {step}: {metrics}")
        return metrics

    for m in models.values():
        m.train()
    while not budget.done(step):
        items, labels = GENERATORS[task](seed, step * args.batch, args.batch)
        x, y = to_tensor(items, size), torch.from_numpy(labels)
        losses = {}
        for k, m in models.items():
            for g in opts[k].param_groups:
                g["lr"] = args.lr * budget.lr_factor(step)
            loss = F.cross_entropy(m(x), y)
            opts[k].zero_grad(set_to_none=True)
            loss.backward()
            opts[k].step()
            losses[k] = float(loss.detach())
        step += 1
        progress.update(step, budget, **losses)
        if saving.due():
            save_state(
                state_path,
                step=step,
                elapsed=budget.elapsed,
                **{k: m.state_dict() for k, m in models.items()},
                **{f"opt_{k}": o.state_dict() for k, o in opts.items()},
            )
        if exporting.due():
            export(final=False)
    return export(final=True)
