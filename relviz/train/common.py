"""Shared pieces of the training recipes: seeds, output and run directories, progress, time budgets,
batch norm swaps, starting files."""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"
#: training data: recipe ``r`` draws item ``i`` of seed ``TRAIN_SEED + offset(r)``
TRAIN_SEED = 1000
#: the default evaluation seed: never used for training (recipes train on seeds 1000+)
EVAL_SEED = 2026


def output_dir(args: argparse.Namespace) -> Path:
    """Where a recipe writes its weights and card: ``--out``, else the bundled ``weights/``."""
    return Path(getattr(args, "out", None) or WEIGHTS_DIR)


def run_dir(name: str) -> Path:
    """Where a recipe keeps its resumable state (outside the repository)."""
    root = Path(os.environ.get("RELVIZ_TRAIN_DIR", Path.home() / ".cache" / "relviz" / "train"))
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def machine() -> str:
    cores = torch.get_num_threads()
    return (
        f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores ({cores} torch threads), "
        f"torch {torch.__version__}, Python {platform.python_version()}"
    )


def unfreeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every FrozenBatchNorm2d by a trainable BatchNorm2d with the same statistics.

    The official DETR backbone freezes batch norm (it starts from ImageNet weights); trained from scratch
    a ResNet needs batch statistics, so recipes train with BatchNorm2d and freeze it again for export
    (:func:`freeze_batchnorm`); in eval mode the two compute the same thing.
    """
    for name, child in list(module.named_children()):
        if isinstance(child, FrozenBatchNorm2d):
            bn = nn.BatchNorm2d(child.weight.numel(), eps=child.eps)
            with torch.no_grad():
                bn.weight.copy_(child.weight)
                bn.bias.copy_(child.bias)
                bn.running_mean.copy_(child.running_mean)
                bn.running_var.copy_(child.running_var)
            setattr(module, name, bn)
        else:
            unfreeze_batchnorm(child)
    return module


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Inverse of :func:`unfreeze_batchnorm`: BatchNorm2d → FrozenBatchNorm2d with its running stats."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            with torch.no_grad():
                frozen.weight.copy_(child.weight)
                frozen.bias.copy_(child.bias)
                frozen.running_mean.copy_(child.running_mean)
                frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            freeze_batchnorm(child)
    return module


class Budget:
    """A training schedule bounded by steps and by wall time, whichever ends first.

    The learning rate follows a linear warm-up then a cosine decay over the *progress*, the larger of
    step/steps and elapsed/minutes: on a busy machine the run still ends decayed and on time.
    """

    def __init__(self, steps: int, minutes: float, warmup: int = 100, elapsed: float = 0.0):
        self.steps, self.seconds, self.warmup = steps, minutes * 60.0, warmup
        self.start = time.monotonic() - elapsed

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def progress(self, step: int) -> float:
        return min(1.0, max(step / self.steps, self.elapsed / self.seconds))

    def lr_factor(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * self.progress(step)))

    def done(self, step: int) -> bool:
        return self.progress(step) >= 1.0


class Progress:
    """One line of progress every ``every`` seconds (loss averaged since the last line)."""

    def __init__(self, name: str, every: float = 30.0):
        self.name, self.every, self.last = name, every, time.monotonic()
        self.sums: dict[str, float] = {}
        self.count = 0

    def update(self, step: int, budget: Budget, **losses: float) -> None:
        for k, v in losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.count += 1
        if time.monotonic() - self.last >= self.every:
            avg = " ".join(f"{k} {v / self.count:.4f}" for k, v in self.sums.items())
            print(
                f"[{self.name}] step {step} {100 * budget.progress(step):5.1f}% {budget.elapsed / 60:6.1f} min  {avg}",
                flush=True,
            )
            self.sums, self.count, self.last = {}, 0, time.monotonic()


class Every:
    """Wall-clock timer for periodic work in a training loop: :meth:`due` is true once per period.

    A period of 0 (or None) never comes due.
    """

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds or 0.0
        self.last = time.monotonic()

    def due(self) -> bool:
        if self.seconds and time.monotonic() - self.last > self.seconds:
            self.last = time.monotonic()
            return True
        return False


def save_state(path: Path, **state: Any) -> None:
    """``torch.save`` through a temporary file, so a run killed while saving keeps its previous state."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def init_backbone(module: nn.Module, path: str | Path, prefix: str) -> int:
    """Copy a trained ResNet body (``backbone.body.*`` of a relviz Faster R-CNN file) into ``prefix``.

    The two-stage detectors train their ResNet-18 fastest; DETR (``backbone.0.body.``) and the
    region-feature detector (``backbone.body.``) start from that body, as DETR starts from an
    ImageNet backbone in the paper.  Returns the number of tensors copied; every body tensor must fit.
    """
    from relviz.core.checkpoint import load_checkpoint

    source = {
        k[len("backbone.body.") :]: v
        for k, v in load_checkpoint(path).state_dict.items()
        if k.startswith("backbone.body.")
    }
    own = {k[len(prefix) :]: v for k, v in module.state_dict().items() if k.startswith(prefix)}
    missing = sorted(set(own) - set(source))
    bad = [k for k in own if k in source and source[k].shape != own[k].shape]
    if missing or bad or not own:
        raise ValueError(f"backbone of {path} does not fit {prefix}: missing {missing[:3]}, shapes {bad[:3]}")
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(source[k].to(v.dtype))
    return len(own)


def freeze(module: nn.Module) -> None:
    """No gradients, and batch norm kept in eval mode (see :class:`FrozenTrain`)."""
    for p in module.parameters():
        p.requires_grad_(False)
    module.eval()
    module.train = lambda mode=True: module  # stays in eval mode when the model is set to train


def init_source(args: argparse.Namespace, option: str = "init_backbone") -> dict[str, str] | str:
    """The file a recipe started from (``--init-backbone`` or ``--init-from``): name and sha256.

    Read once (the first call; recipes call it before training), because the file may be retrained later.
    """
    path = getattr(args, option, "")
    if not path:
        return "from scratch"
    shas = args.__dict__.setdefault("_init_sha256", {})
    if option not in shas:
        from relviz.core.checkpoint import sha256_of

        shas[option] = sha256_of(Path(path))
    return {"file": Path(path).name, "sha256": shas[option]}


def init_note(args: argparse.Namespace) -> str:
    """Where a detector's backbone came from, in words, for a card's notes."""
    if not args.init_backbone:
        return "from scratch (seeded random)"
    return (
        f"ResNet-18 body of {Path(args.init_backbone).name} (relviz's demo-relation recipe, same scenes, "
        "another training seed), as DETR starts from a pretrained backbone"
    )
