"""Model cards: what a bundled weight file is, how it was made, and how well it does on fresh data."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from relviz.core.checkpoint import sha256_of


def write_card(
    weights: Path,
    *,
    name: str,
    family: str,
    config: dict[str, Any],
    data: dict[str, Any],
    recipe: dict[str, Any],
    training: dict[str, Any],
    metrics: dict[str, Any],
    targets: dict[str, Any],
    notes: list[str],
) -> Path:
    """Write ``weights.with_suffix('.json')`` beside the weights; returns its path.

    ``metrics`` are measured on data generated from a seed never used in training; ``targets`` are
    the issue's goals, and ``notes`` say in words where a target was missed and why.
    """
    card = {
        "name": name,
        "family": family,
        "architecture": config,
        "weights": weights.name,
        "sha256": sha256_of(weights),
        "bytes": weights.stat().st_size,
        "data": data,
        "recipe": recipe,
        "training": training,
        "metrics": metrics,
        "targets": targets,
        "targets_met": {k: _met(metrics.get(k), v) for k, v in targets.items()},
        "notes": notes,
        "written": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reproduce": f"python -m relviz.train {name}",
    }
    path = weights.with_suffix(".json")
    path.write_text(json.dumps(card, indent=1, default=_plain) + "\n")
    return path


def read_card(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def _met(value: Any, target: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(target, str) and target.startswith(">"):  # e.g. "> baseline_top1"
        return None
    return float(value) >= float(target)


def _plain(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)
