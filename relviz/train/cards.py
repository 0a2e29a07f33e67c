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
        "targets_met": targets_met(metrics, targets),
        "notes": notes,
        "written": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reproduce": f"python -m relviz.train {name}",
    }
    path = weights.with_suffix(".json")
    path.write_text(json.dumps(card, indent=1, default=_plain) + "\n")
    return path


def targets_met(metrics: dict[str, Any], targets: dict[str, Any]) -> dict[str, bool | None]:
    """Each target: met or not (None where the metric was not measured)."""
    met = {k: _met(metrics.get(k), v) for k, v in targets.items()}
    if "above_baseline" in targets and "baseline_top1" in metrics:
        met["above_baseline"] = metrics["top1"] > metrics["baseline_top1"]
    if "odd_above_baseline" in targets and "baseline_AP50_odd" in metrics:
        met["odd_above_baseline"] = metrics["AP50_odd"] > metrics["baseline_AP50_odd"]
    return met


def refresh_targets(path: Path) -> dict[str, Any]:
    """Recompute a card's ``targets_met`` from its metrics (weights and sha256 untouched)."""
    card = read_card(path)
    card["targets_met"] = targets_met(card["metrics"], card["targets"])
    Path(path).write_text(json.dumps(card, indent=1, default=_plain) + "\n")
    return card


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


def compact_bundled(name: str, eval_n: int | None = None) -> dict[str, Any]:
    """Rewrite ``weights/<name>.safetensors`` compactly (float8 convs, float16 rest) and re-measure its card.

    For weights exported uncompacted (float16 or float32): the card keeps its training record, and its
    sha256, size and headline metric are replaced by those of the compact file, measured again on the
    card's evaluation seed.  The previous value is kept in ``metrics['before_compaction']``.
    """
    import torch

    from relviz.train.compact import export_safetensors
    from relviz.train.evaluate import evaluate_loaded
    from relviz.zoo import get_model, load_model

    entry = get_model(name)
    card_path = entry.weights_path.with_suffix(".json")
    card = read_card(card_path)
    loaded = load_model(name, device="cpu")
    export_safetensors(loaded.module, entry.weights_path, {"name": name, "family": entry.family})
    card["sha256"] = sha256_of(entry.weights_path)
    card["bytes"] = entry.weights_path.stat().st_size
    card_path.write_text(json.dumps(card, indent=1, default=_plain) + "\n")  # so the zoo accepts the new file
    loaded = load_model(name, device="cpu")
    seed, n = card["data"]["eval_seed"], eval_n or card["data"]["eval_n"]
    with torch.inference_mode():
        metric, value, metrics = evaluate_loaded(name, loaded, seed, n)
    before = {k: v for k, v in card["metrics"].items() if not k.startswith("baseline") and k != "before_compaction"}
    _merge_baseline(card, name)
    card["metrics"].update(metrics)
    card["metrics"]["before_compaction"] = before
    card["targets_met"] = targets_met(card["metrics"], card["targets"])
    card["compaction"] = (
        "ResNet conv weights stored as float8 e4m3, per output channel rescaled with exact "
        "batch-norm compensation; other tensors float16 (relviz.train.compact.compact_state)"
    )
    card["written"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    card_path.write_text(json.dumps(card, indent=1, default=_plain) + "\n")
    return card


def _merge_baseline(card: dict[str, Any], name: str) -> bool:
    """Copy the relation-free baseline recorded in the recipe's run directory (``baseline.json``, written
    by :func:`relviz.train.rcnn.train_baseline_head`) into ``card``; False where there is none."""
    from relviz.train.common import run_dir

    baseline = run_dir(name) / "baseline.json"
    if not baseline.is_file():
        return False
    record = json.loads(baseline.read_text())
    card["metrics"].update({f"baseline_{k}": v for k, v in record["metrics"].items()})
    card["metrics"]["baseline"] = record["protocol"]
    card["recipe"]["baseline"] = {k: v for k, v in record.items() if k != "metrics"}
    card["targets"]["odd_above_baseline"] = "AP50_odd > baseline_AP50_odd"
    card["targets_met"] = targets_met(card["metrics"], card["targets"])
    return True


def attach_baseline(name: str, card_path: Path | None = None) -> dict[str, Any]:
    """Write the recorded baseline into the card of ``name`` (weights untouched): ``card_path``, else the
    bundled card."""
    if card_path is None:
        from relviz.zoo import get_model

        card_path = get_model(name).weights_path.with_suffix(".json")
    card = read_card(card_path)
    if not _merge_baseline(card, name):
        raise FileNotFoundError(f"no baseline recorded for {name}")
    card_path.write_text(json.dumps(card, indent=1, default=_plain) + "\n")
    return card
