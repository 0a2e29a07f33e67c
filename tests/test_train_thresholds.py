"""Default score thresholds: chosen on held-out scenes (F1), written into the card, used by trace and the app."""

import json
from pathlib import Path

import numpy as np
import pytest

from relviz.train import scenes
from relviz.train.thresholds import precision_recall, right_detections

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"


def _scene() -> scenes.Scene:
    objects = [
        scenes.SceneObject("circle", 0, "solid", (10, 10, 30, 30), 0),
        scenes.SceneObject("square", 1, "solid", (50, 50, 80, 80), 1),
        scenes.SceneObject("square", 1, "solid", (100, 10, 120, 30), 3),
    ]
    return scenes.Scene(np.zeros((128, 128, 3), np.uint8), objects)


def _detections() -> dict[str, np.ndarray]:
    return {
        # the circle (right), a duplicate of it (wrong: already claimed), the square with the odd label
        # (wrong), the odd object found but shifted to IoU 0.6 (right), a box on nothing (wrong)
        "boxes": np.array(
            [[10, 10, 30, 30], [11, 10, 30, 30], [50, 50, 80, 80], [100, 15, 120, 35], [0, 90, 10, 100]], np.float32
        ),
        "scores": np.array([0.9, 0.8, 0.7, 0.6, 0.3], np.float32),
        "labels": np.array([0, 0, 3, 3, 2]),
    }


def test_detections_claim_objects_in_score_order_with_the_right_label():
    scores, right = right_detections(_scene(), _detections())
    assert scores.tolist() == pytest.approx([0.9, 0.8, 0.7, 0.6, 0.3])
    # IoU of the shifted odd box: overlap 20×15 = 300 over 400 + 400 - 300
    assert right.tolist() == [True, False, False, True, False]


@pytest.mark.parametrize(
    ("threshold", "found", "kept"),
    [(0.95, 0, 0), (0.85, 1, 1), (0.65, 1, 3), (0.5, 2, 4), (0.1, 2, 5)],
)
def test_precision_and_recall_count_what_scores_above_the_threshold(threshold, found, kept):
    got = precision_recall([_scene()], [_detections()], threshold)
    precision = found / kept if kept else 1.0
    recall = found / 3
    assert got["precision"] == pytest.approx(precision)
    assert got["recall"] == pytest.approx(recall)
    assert got["F1"] == pytest.approx(2 * precision * recall / (precision + recall) if found else 0.0)
    assert (got["detections"], got["objects"]) == (kept, 3)


def _card_threshold(name: str) -> float:
    card = json.loads((WEIGHTS / f"{name}.json").read_text())
    return card["score_threshold"]["value"]


@pytest.mark.parametrize("name", ["demo-detr", "demo-relation", "demo-regionfeat"])
def test_every_bundled_detector_card_names_a_threshold_chosen_on_held_out_scenes(name):
    card = json.loads((WEIGHTS / f"{name}.json").read_text())
    found = card["score_threshold"]
    assert 0.0 < found["value"] < 1.0
    assert found["held_out"]["seed"] not in (card["data"]["train_seed"], card["data"]["eval_seed"])
    assert set(found["bundled_scenes"]) == {f"scene-{i}.png" for i in range(4)}


def test_trace_uses_the_card_threshold_unless_the_user_sets_one(tmp_path):
    from relviz.cli import main
    from relviz.core.trace import Trace

    scene = Path(__file__).resolve().parents[1] / "resources" / "scene-1.png"
    default, chosen = tmp_path / "default.npz", tmp_path / "chosen.npz"
    base = ["trace", "--model", "demo-relation", "--device", "cpu", "--input", str(scene)]
    assert main([*base, "--out", str(default)]) == 0
    assert main([*base, "--threshold", "0.05", "--out", str(chosen)]) == 0
    t_default, t_chosen = Trace.load(default), Trace.load(chosen)
    value = _card_threshold("demo-relation")
    assert t_default.meta["threshold"] == pytest.approx(value)
    assert t_chosen.meta["threshold"] == pytest.approx(0.05)
    assert np.all(t_default["detections/scores"] > value)
    assert len(t_chosen["detections/scores"]) > len(t_default["detections/scores"])


def test_a_bundled_model_opens_in_the_app_at_its_card_threshold_and_a_checkpoint_keeps_the_users(
    qtbot, window, tiny_detr
):
    window.state.threshold = 0.0
    window.controller.load_model({"name": "demo-relation", "weights": "bundled", "device": "cpu"})
    qtbot.waitUntil(lambda: window.controller.loaded is not None and not window.state.busy, timeout=60000)
    value = _card_threshold("demo-relation")
    assert window.state.threshold == pytest.approx(value)
    assert window.model_panel.threshold.value() == pytest.approx(value)

    window.state.threshold = 0.25
    window.controller.load_model({"weights": str(tiny_detr), "device": "cpu"})
    qtbot.waitUntil(lambda: window.controller.loaded.name == "tiny_detr" and not window.state.busy, timeout=60000)
    assert window.state.threshold == pytest.approx(0.25)
    assert window.model_panel.threshold.value() == pytest.approx(0.25)


@pytest.mark.parametrize("name", ["demo-detr", "demo-relation", "demo-regionfeat"])
def test_at_its_default_threshold_a_detector_does_on_the_bundled_scenes_what_its_card_says(name):
    from relviz.train.resources import RESOURCES, SAMPLE_SEED
    from relviz.zoo import RunOptions, load_model, run_model

    card = json.loads((WEIGHTS / f"{name}.json").read_text())["score_threshold"]
    loaded = load_model(name, device="cpu")
    for file, claimed in card["bundled_scenes"].items():
        trace = run_model(loaded, RESOURCES / file, RunOptions(capture=False))  # no threshold: the card's
        assert trace.meta["threshold"] == pytest.approx(card["value"])
        scene = scenes.make_scene(SAMPLE_SEED, int(file.split("-")[1].split(".")[0]))
        labels = trace.meta["labels"]
        to_scene = np.array([scenes.CLASSES.index(n) if n in scenes.CLASSES else -1 for n in labels])
        det = {
            "boxes": trace["detections/boxes"],
            "scores": trace["detections/scores"],
            "labels": to_scene[trace["detections/labels"]],
        }
        got = precision_recall([scene], [det], card["value"])
        assert got["precision"] == pytest.approx(claimed["precision"], abs=1e-3), file
        assert got["recall"] == pytest.approx(claimed["recall"], abs=1e-3), file
