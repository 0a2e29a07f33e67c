"""Accuracy on freshly generated data: COCO AP at IoU 0.5 (pycocotools) for detectors, top-1 otherwise.

``evaluate_model(name, seed, n)`` is what ``relviz eval`` calls.  Detectors are run through their zoo
family exactly as the application runs them (``Family.run`` with the model's default resize), so the
number measures what a user sees.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import torch

from relviz.core.errors import BadInputError
from relviz.train import scenes
from relviz.train.common import EVAL_SEED

#: the data each demo model is evaluated on
TASKS = {
    "demo-detr": "scenes",
    "demo-relation": "scenes",
    "demo-regionfeat": "scenes",
    "demo-lrnet": "patches",
    "demo-nonlocal": "pairs",
    "demo-nonlocal-clip": "clips",
}


def coco_ap50(
    gt_scenes: list[scenes.Scene], detections: list[dict[str, np.ndarray]], per_class: bool = False
) -> dict[str, float]:
    """COCO-style AP at IoU 0.5 over all classes (pycocotools), and per class when asked."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO()
    gt.dataset = scenes.coco_ground_truth(gt_scenes)
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    results = []
    for image_id, det in enumerate(detections):
        for box, score, label in zip(det["boxes"], det["scores"], det["labels"], strict=True):
            x0, y0, x1, y1 = (float(v) for v in box)
            results.append(
                {
                    "image_id": image_id,
                    "category_id": int(label),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": float(score),
                }
            )
    if not results:
        return {"AP50": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.iouThrs = np.array([0.5])
        ev.params.maxDets = [1, 10, 100]
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"][0, :, :, 0, -1]  # (recall, class) at IoU 0.5, all areas, 100 dets
    out: dict[str, float] = {}
    valid = precision > -1
    out["AP50"] = float(precision[valid].mean()) if valid.any() else 0.0
    if per_class:
        for k, cls in enumerate(scenes.CLASSES):
            col = precision[:, k]
            out[f"AP50_{cls}"] = float(col[col > -1].mean()) if (col > -1).any() else float("nan")
    return out


def detect_scenes(loaded, gt_scenes: list[scenes.Scene], threshold: float = 0.001) -> list[dict[str, np.ndarray]]:
    """Run a loaded detector (any detection family) on scenes through ``Family.run``."""
    from relviz.zoo import RunOptions

    options = RunOptions(threshold=threshold, capture=False)
    out = []
    names = loaded.family.labels(loaded.config) if hasattr(loaded.family, "labels") else list(scenes.CLASSES)
    # the family's class ids → scene classes, by name (two-stage detectors put "background" at 0)
    to_scene = np.array([scenes.CLASSES.index(n) if n in scenes.CLASSES else -1 for n in names], dtype=np.int64)
    with torch.inference_mode():
        for scene in gt_scenes:
            source = {
                "path": f"scene-{scene.seed}-{scene.index}",
                "kind": "image",
                "frame": 0,
                "size": [scene.image.shape[1], scene.image.shape[0]],
            }
            trace = loaded.family.run(loaded, [scene.image], source, options)
            labels = to_scene[trace["detections/labels"]]
            ok = labels >= 0
            out.append(
                {"boxes": trace["detections/boxes"][ok], "scores": trace["detections/scores"][ok], "labels": labels[ok]}
            )
    return out


def loaded_for(family_name: str, name: str, module: torch.nn.Module, config: dict[str, Any]):
    """A module being trained, wrapped as the zoo's loaded model (CPU, float32), so it is measured through
    its family exactly as a user runs it."""
    from relviz.zoo import LoadedModel, get_family

    return LoadedModel(get_family(family_name), name, module, config, torch.device("cpu"), torch.float32)


def evaluate_detector(loaded, seed: int = EVAL_SEED, n: int = 200, per_class: bool = True) -> dict[str, float]:
    gt_scenes = scenes.make_scenes(seed, n)
    return coco_ap50(gt_scenes, detect_scenes(loaded, gt_scenes), per_class=per_class)


def evaluate_loaded(name: str, loaded, seed: int, n: int) -> tuple[str, float, dict[str, Any]]:
    task = TASKS[name]
    if task == "scenes":
        metrics = evaluate_detector(loaded, seed, n)
        return "AP50", metrics["AP50"], metrics
    from relviz.train import classify

    top1 = classify.evaluate_classifier(loaded, task, seed, n)
    return "top1", top1, {"top1": top1}


def evaluate_model(name: str, seed: int = EVAL_SEED, n: int = 200) -> tuple[str, float]:
    """(metric name, value) of bundled demo model ``name`` on ``n`` fresh items generated from ``seed``."""
    if name not in TASKS:
        raise BadInputError(f"unknown demo model {name!r}; valid ones: {', '.join(sorted(TASKS))}")
    if n < 1:
        raise BadInputError(f"--n must be at least 1, not {n}")
    from relviz.zoo import load_model

    loaded = load_model(name, device="cpu")
    metric, value, _ = evaluate_loaded(name, loaded, seed, n)
    return metric, value
