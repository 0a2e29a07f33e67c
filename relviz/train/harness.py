"""The one training loop behind every recipe.

A recipe builds its models and optimisers and says only what differs — the batch of a step, the loss
of one model on it, which module ships and how it is measured, what its card says — as a :class:`Plan`.
:func:`fit` does the rest, the same way for every recipe:

- the schedule: :class:`~relviz.train.common.Budget` (steps or wall time, whichever ends first; linear
  warm-up, then cosine), applied to every parameter group as ``--lr × group["mult"] (default 1) × factor``;
- every model of the plan (a recipe's model and, where it has one, its baseline) steps on the *same*
  batch at the same learning rate, in the plan's order, its gradient norm clipped where the plan says;
- resumable state every :data:`SAVE_EVERY_S` seconds and at the end (models, optimisers, step, elapsed
  time and torch's random state, so a resumed run goes on as the uninterrupted run would have);
- interim exports every ``--export-every`` minutes and a final one: the shipped module is written as
  compact safetensors (:mod:`relviz.train.compact`), read back, measured by the plan's evaluation hook
  and described by a model card (:mod:`relviz.train.cards`);
- a progress line every 30 s.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from relviz.train.cards import write_card
from relviz.train.common import Budget, Every, Progress, log, machine, output_dir, run_dir, save_state
from relviz.train.compact import export_and_reload

#: seconds between saves of the resumable state
SAVE_EVERY_S = 300.0
#: every recipe's AdamW weight decay
WEIGHT_DECAY = 1e-4
INTERIM_NOTE = "interim export: training was still running when this card was written"

#: ``loss(key, module, batch)`` → the loss of model ``key`` on the step's batch, or (loss, parts to log)
Loss = Callable[[str, nn.Module, Any], "torch.Tensor | tuple[torch.Tensor, dict[str, float]]"]


def adamw(params: Any, lr: float, weight_decay: float = WEIGHT_DECAY) -> torch.optim.AdamW:
    """The recipes' optimiser: AdamW over parameters or parameter groups (a group may carry ``mult``)."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


@dataclass
class Trainee:
    """One model the loop trains, with its optimiser (a parameter group may carry a learning-rate ``mult``)."""

    module: nn.Module
    optimizer: torch.optim.Optimizer
    clip: float | None = None  # largest gradient norm; None: no clipping


@dataclass
class Measured:
    """What the evaluation hook found on fresh data: metrics, the targets they answer, notes in words."""

    metrics: dict[str, Any]
    targets: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class CardFacts:
    """The fixed part of a recipe's model card (the training record and the measurements come from the run)."""

    family: str
    config: dict[str, Any]
    data: dict[str, Any]
    recipe: dict[str, Any]


@dataclass
class Plan:
    """What one recipe supplies to :func:`fit`."""

    models: dict[str, Trainee]
    batch: Callable[[int], Any]  # step → the batch every model trains on at that step
    loss: Loss
    ship: Callable[[dict[str, nn.Module]], nn.Module]  # the models → the module to export (a copy, eval mode)
    measure: Callable[[Run, nn.Module], Measured]  # evaluation hook, on the module as read back from its file
    weights: Path  # where the shipped module is written
    card: CardFacts | None = None  # None: no card (the file is not a bundled model)
    metadata: dict[str, str] | None = None  # safetensors metadata
    warmup: int = 100
    label: str = ""  # progress lines' tag (default: the recipe's name)
    state: Path | None = None  # resumable state; None: never saved
    interim_exports: bool = True  # export every --export-every minutes as well as at the end


def bundled_outputs(args: argparse.Namespace, family: str) -> dict[str, Any]:
    """The :class:`Plan` fields every bundled model's recipe shares: its weights file in ``--out`` (else
    ``weights/``), the safetensors metadata naming it and its family, and its resumable state."""
    return {
        "weights": output_dir(args) / f"{args.name}.safetensors",
        "metadata": {"name": args.name, "family": family},
        "state": run_dir(args.name) / "state.pt",
    }


@dataclass
class Run:
    """A plan being trained: where it stands, for the evaluation hook and the card."""

    args: argparse.Namespace
    plan: Plan
    budget: Budget
    step: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)  # of the last export
    curve: list[dict[str, float]] = field(default_factory=list)  # step, minutes and the numbers of every export

    @property
    def name(self) -> str:
        return self.args.name

    def modules(self) -> dict[str, nn.Module]:
        return {k: t.module for k, t in self.plan.models.items()}

    def training_record(self) -> dict[str, Any]:
        """The card's ``training`` section."""
        return {
            "steps": self.step,
            "samples_seen": self.step * self.args.batch,
            "epochs": "1 (every training item is freshly generated; none is seen twice)",
            "wall_time_min": round(self.budget.elapsed / 60, 1),
            "machine": machine(),
            "budget": {"steps": self.args.steps, "minutes": self.args.minutes},
            "curve": self.curve,
        }


def fit(args: argparse.Namespace, plan: Plan) -> Run:
    """Train ``plan`` within ``args.steps`` / ``args.minutes`` at ``args.lr``; export; return the finished run.

    With ``args.resume`` the run continues from the plan's saved state where there is one.
    """
    resumed = getattr(args, "resume", False) and plan.state is not None
    step, elapsed, curve = _resume(args, plan) if resumed else (0, 0.0, [])
    run = Run(args, plan, Budget(args.steps, args.minutes, warmup=plan.warmup, elapsed=elapsed), step, curve=curve)
    progress = Progress(plan.label or args.name)
    saving = Every(SAVE_EVERY_S)
    exporting = Every(args.export_every * 60 if plan.interim_exports else 0)
    _set_mode(plan, training=True)
    while not run.budget.done(run.step):
        factor = run.budget.lr_factor(run.step)
        batch = plan.batch(run.step)
        logged: dict[str, float] = {}
        for key, trainee in plan.models.items():
            loss, parts = _train_step(key, trainee, batch, plan.loss, args.lr * factor)
            if len(plan.models) == 1:
                logged.update(loss=loss, **parts)
            else:
                logged.update({key: loss}, **{f"{key}_{k}": v for k, v in parts.items()})
        run.step += 1
        progress.update(run.step, run.budget, **logged)
        if plan.state is not None and (saving.due() or run.budget.done(run.step)):
            _save(run)
        if exporting.due():
            export(run, final=False)
            _set_mode(plan, training=True)
    export(run, final=True)
    if plan.state is not None and plan.state.is_file():  # the saved curve ends with the final export
        state = torch.load(plan.state, weights_only=True)
        save_state(plan.state, **{**state, "curve": run.curve})
    return run


def export(run: Run, final: bool) -> dict[str, Any]:
    """Write the shipped module, read it back, measure it and write its card; returns the metrics."""
    plan = run.plan
    _set_mode(plan, training=False)
    module = plan.ship(run.modules())
    export_and_reload(module, plan.weights, plan.metadata)
    found = plan.measure(run, module)
    numbers = {k: round(float(v), 4) for k, v in found.metrics.items() if isinstance(v, (int, float))}
    run.curve.append({"step": run.step, "minutes": round(run.budget.elapsed / 60, 1), **numbers})
    notes = list(found.notes) + ([] if final else [INTERIM_NOTE])
    if plan.card is not None:
        write_card(
            plan.weights,
            name=run.name,
            family=plan.card.family,
            config=plan.card.config,
            data=plan.card.data,
            recipe=plan.card.recipe,
            training=run.training_record(),
            metrics=found.metrics,
            targets=found.targets,
            notes=notes,
        )
    log(f"[{run.name}] exported at step {run.step}: {found.metrics}")
    run.metrics = found.metrics
    return found.metrics


def _train_step(key: str, trainee: Trainee, batch: Any, loss_fn: Loss, lr: float) -> tuple[float, dict[str, float]]:
    for group in trainee.optimizer.param_groups:
        group["lr"] = lr * group.get("mult", 1.0)
    out = loss_fn(key, trainee.module, batch)
    loss, parts = out if isinstance(out, tuple) else (out, {})
    trainee.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if trainee.clip is not None:
        torch.nn.utils.clip_grad_norm_(trainee.module.parameters(), trainee.clip)
    trainee.optimizer.step()
    return float(loss.detach()), parts


def _set_mode(plan: Plan, training: bool) -> None:
    for trainee in plan.models.values():
        trainee.module.train(training)


def _save(run: Run) -> None:
    models = run.plan.models
    save_state(
        run.plan.state,
        step=run.step,
        elapsed=run.budget.elapsed,
        rng=torch.get_rng_state(),
        curve=run.curve,
        **{k: t.module.state_dict() for k, t in models.items()},
        **{f"opt_{k}": t.optimizer.state_dict() for k, t in models.items()},
    )


def _resume(args: argparse.Namespace, plan: Plan) -> tuple[int, float, list[dict[str, float]]]:
    """Load the saved state into the plan's models and optimisers; (step, elapsed seconds, curve so far),
    or (0, 0, [])."""
    if not plan.state.is_file():
        return 0, 0.0, []
    state = torch.load(plan.state, weights_only=True)
    for key, trainee in plan.models.items():
        trainee.module.load_state_dict(state[key])
        # states saved before the harness named a lone model's optimiser "opt"
        trainee.optimizer.load_state_dict(state[f"opt_{key}"] if f"opt_{key}" in state else state["opt"])
    if "rng" in state:
        torch.set_rng_state(state["rng"])
    step, elapsed = int(state["step"]), float(state["elapsed"])
    log(f"resumed {args.name} at step {step} ({elapsed / 60:.1f} min)")
    return step, elapsed, list(state.get("curve", []))
