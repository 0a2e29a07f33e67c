"""A detector's default score threshold, chosen on held-out scenes and written into its model card.

AP50 ranks detections and never says where to cut them; a user looking at one image sees the detections
above one threshold.  The default is the threshold with the best F1 on fresh scenes of a seed used for
neither training, evaluation nor the bundled samples.  A detection is right when its label is right and it
overlaps a not yet claimed object of that label with IoU ≥ 0.5 (detections claim objects greedily in
descending score, as in COCO's matching); precision is right detections / detections, recall is objects
found / objects.  The card also records what the threshold gives on each bundled scene.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from relviz.train import scenes
from relviz.train.common import log
from relviz.train.resources import SAMPLE_SEED, SCENE_INDICES

#: scenes the threshold is chosen on: never used for training (1000+), evaluation (2026) or samples (7)
THRESHOLD_SEED = 3031
#: the thresholds tried
CANDIDATES = np.round(np.arange(0.05, 0.951, 0.01), 2)
IOU = 0.5


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def right_detections(scene: scenes.Scene, det: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(scores, right) of a scene's detections in descending score; ``right[i]``: detection ``i`` claims an
    unclaimed object of its label at IoU ≥ 0.5.  Claims go in score order, so the detections above any
    threshold claim exactly what they would claim alone."""
    order = np.argsort(-det["scores"], kind="stable")
    gt_boxes, gt_labels = scene.boxes, scene.labels
    claimed = np.zeros(len(gt_labels), dtype=bool)
    right = np.zeros(len(order), dtype=bool)
    for rank, i in enumerate(order):
        ious = _iou(np.asarray(det["boxes"][i], np.float32), gt_boxes) if len(gt_boxes) else np.zeros(0)
        ious[(gt_labels != det["labels"][i]) | claimed] = -1.0
        if len(ious) and ious.max() >= IOU:
            claimed[int(ious.argmax())] = True
            right[rank] = True
    return np.asarray(det["scores"])[order], right


def precision_recall(
    gt_scenes: list[scenes.Scene], detections: list[dict[str, np.ndarray]], threshold: float
) -> dict[str, float]:
    """Precision, recall and F1 of the detections scoring above ``threshold`` (the families keep ``> t``)."""
    found = kept = objects = 0
    for scene, det in zip(gt_scenes, detections, strict=True):
        scores, right = right_detections(scene, det)
        above = scores > threshold
        found += int(right[above].sum())
        kept += int(above.sum())
        objects += len(scene.objects)
    precision = found / kept if kept else 1.0
    recall = found / objects if objects else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "F1": f1, "detections": kept, "objects": objects}


def choose_threshold(loaded, seed: int = THRESHOLD_SEED, n: int = 200) -> dict[str, Any]:
    """The F1-best threshold of a loaded detector on ``n`` fresh scenes of ``seed``, and what it gives on the
    held-out scenes and on each bundled scene."""
    from relviz.train.evaluate import detect_scenes

    held_out = scenes.make_scenes(seed, n)
    detections = detect_scenes(loaded, held_out, threshold=0.0)
    table = [precision_recall(held_out, detections, float(t)) for t in CANDIDATES]
    best = int(np.argmax([row["F1"] for row in table]))
    value = float(CANDIDATES[best])
    samples = [scenes.make_scene(SAMPLE_SEED, i) for i in SCENE_INDICES]
    on_samples = detect_scenes(loaded, samples, threshold=value)
    bundled = {
        f"scene-{i}.png": _rounded(precision_recall([s], [d], value))
        for i, s, d in zip(SCENE_INDICES, samples, on_samples, strict=True)
    }
    ok = all(b["precision"] >= 0.8 and b["recall"] >= 0.8 for b in bundled.values())
    return {
        "value": value,
        "rule": (
            f"the F1-best of thresholds {CANDIDATES[0]:.2f}..{CANDIDATES[-1]:.2f} (step 0.01) on {n} fresh scenes "
            f"of seed {seed}; a detection is right when its label is right and it claims an object at IoU >= {IOU}"
        ),
        "held_out": {"seed": seed, "scenes": n, **_rounded(table[best])},
        "bundled_scenes": bundled,
        "bundled_scenes_target": "on each bundled scene precision >= 0.8 and recall >= 0.8",
        "bundled_scenes_met": ok,
    }


def write_threshold(card_path: Path, found: dict[str, Any]) -> None:
    """Put ``found`` into the card as ``score_threshold`` (the rest of the card, and its sha256, unchanged)."""
    from relviz.core.atomic import atomic_path

    card = json.loads(Path(card_path).read_text())
    card["score_threshold"] = found
    with atomic_path(card_path) as tmp:
        Path(tmp).write_text(json.dumps(card, indent=1) + "\n")
    log(f"{Path(card_path).name}: default score threshold {found['value']:.2f} ({found['held_out']})")


def choose_for_bundled(name: str, weights_dir: Path, n: int = 200) -> dict[str, Any]:
    """Choose bundled detector ``name``'s threshold (the weights in ``weights_dir``) and write it to its card."""
    from relviz.zoo import load_model

    weights = Path(weights_dir) / f"{name}.safetensors"
    loaded = load_model(name, weights=str(weights), device="cpu")
    found = choose_threshold(loaded, n=n)
    write_threshold(weights.with_suffix(".json"), found)
    return found


def _rounded(row: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
