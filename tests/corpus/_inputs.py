"""Small valid inputs shared by the command-line categories (recipes, options, outputs): a scene image,
a trace of the small seeded DETR the tests use, and a recipe of it.  Not a category itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

SMALL = ["--model", "detr-r50", "--weights", "none", "--config", "backbone_depth=18", "--config", "hidden_dim=64",
         "--heads", "4", "--config", "enc_layers=2", "--config", "dec_layers=2", "--config", "dim_feedforward=96",
         "--config", "num_queries=8", "--config", "num_classes=5", "--resize", "96", "--device", "cpu"]
SMALL_SOURCE = {"model": "detr-r50", "weights": "none", "device": "cpu", "resize": 96, "threshold": 0.0,
                "overrides": {"backbone_depth": 18, "hidden_dim": 64, "nheads": 4, "enc_layers": 2, "dec_layers": 2,
                              "dim_feedforward": 96, "num_queries": 8, "num_classes": 5}}


def scene(folder: Path) -> Path:
    """A 96×72 PNG with two coloured boxes."""
    rgb = np.zeros((72, 96, 3), np.uint8)
    rgb[10:40, 10:50] = (220, 40, 40)
    rgb[40:70, 55:90] = (40, 40, 220)
    path = folder / "scene.png"
    Image.fromarray(rgb).save(path)
    return path


def trace(folder: Path, image: Path) -> Path:
    """The small DETR's trace of ``image`` (threshold 0, so it has detections), written without printing."""
    from relviz.export import make_source, run_source

    path = folder / "scene.npz"
    run_source(make_source({**SMALL_SOURCE, "input": str(image)})).save(path)
    return path


def recipe(trace_path: Path, output: Path, **changes) -> dict:
    """A valid recipe that draws the detections of ``trace_path`` into ``output``."""
    from relviz import __version__

    data = {"relviz": __version__, "view": "detections", "options": {"object": 0}, "dpi": 40,
            "trace": str(trace_path), "output": str(output)}
    data.update(changes)
    return data


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path
