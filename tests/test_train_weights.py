"""The bundled demo weights: they load strictly, match their cards, and do what their cards claim."""

import json
import shutil

import numpy as np
import pytest

from relviz.core.checkpoint import CheckpointError, load_checkpoint, sha256_of
from relviz.train.evaluate import TASKS
from relviz.train.resources import RESOURCES
from relviz.zoo import RunOptions, get_model, load_model, run_model

NAMES = sorted(TASKS)


def _bundled(name):
    entry = get_model(name)
    if not entry.has_weights:
        pytest.skip(f"{name} has no bundled weights in this checkout")
    return entry, json.loads(entry.weights_path.with_suffix(".json").read_text())


def test_weights_folder_stays_small():
    from relviz.zoo import WEIGHTS_DIR

    total = sum(p.stat().st_size for p in WEIGHTS_DIR.glob("*") if p.is_file())
    assert total < 40e6


@pytest.mark.parametrize("name", NAMES)
def test_bundled_weights_load_strictly_and_match_their_card(name):
    entry, card = _bundled(name)
    assert card["sha256"] == sha256_of(entry.weights_path)
    assert card["name"] == name and card["family"] == entry.family
    loaded = load_model(name, device="cpu")  # strict: every key, every shape
    assert loaded.weights == "bundled"
    assert set(load_checkpoint(entry.weights_path).state_dict) == set(loaded.module.state_dict())
    assert "metrics" in card and card["training"]["wall_time_min"] > 0


def test_weights_whose_sha256_differs_from_the_card_are_refused(tmp_path, monkeypatch):
    entry, card = _bundled("demo-lrnet")
    shutil.copy(entry.weights_path, tmp_path / entry.weights)
    card["sha256"] = "0" * 64
    (tmp_path / entry.weights).with_suffix(".json").write_text(json.dumps(card))
    import relviz.zoo

    monkeypatch.setattr(relviz.zoo, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(CheckpointError, match="sha256"):
        load_model("demo-lrnet", device="cpu")


@pytest.mark.parametrize("name", ["demo-detr", "demo-relation", "demo-regionfeat"])
def test_detector_on_the_bundled_scenes_scores_about_its_card(name):
    from relviz.train import scenes
    from relviz.train.evaluate import coco_ap50, detect_scenes

    _, card = _bundled(name)
    loaded = load_model(name, device="cpu")
    info = json.loads((RESOURCES / "samples.json").read_text())
    sample = [scenes.make_scene(info["generator_seed"], i) for i in range(4)]
    trace = run_model(loaded, RESOURCES / "scene-0.png", RunOptions(threshold=0.3, capture=False))
    assert trace["detections/boxes"].shape[1:] == (4,)
    ap = coco_ap50(sample, detect_scenes(loaded, sample))["AP50"]
    # four scenes are a small sample: the card's number, measured on 200 fresh scenes, within 0.3
    assert abs(ap - card["metrics"]["AP50"]) <= 0.3, (ap, card["metrics"]["AP50"])


@pytest.mark.parametrize("name", ["demo-lrnet", "demo-nonlocal", "demo-nonlocal-clip"])
def test_classifier_on_fresh_items_scores_about_its_card(name):
    from relviz.train.classify import evaluate_classifier

    _, card = _bundled(name)
    loaded = load_model(name, device="cpu")
    samples = {
        "demo-lrnet": ["tiles/patch-0.png", "tiles/patch-1.png"],
        "demo-nonlocal": ["tiles/pair-0.png", "tiles/pair-1.png"],
        "demo-nonlocal-clip": ["clip-0.mp4"],
    }[name]
    info = json.loads((RESOURCES / "samples.json").read_text())["files"]
    right = 0
    for sample in samples:
        trace = run_model(loaded, RESOURCES / sample, RunOptions(capture=False, clip_length=8))
        logits = trace["classification/logits"]
        assert logits.shape == (len(card["architecture"]["labels"]),) and np.isfinite(logits).all()
        right += card["architecture"]["labels"][int(np.argmax(logits))] == info[sample]["label"]
    if card["metrics"]["top1"] >= 0.9 and len(samples) > 1:  # a good model gets at least one of two right
        assert right >= 1
    top1 = evaluate_classifier(loaded, TASKS[name], seed=31337, n=60)
    # binomial spread at n = 60 is about 0.065: allow 3.5 of it
    assert abs(top1 - card["metrics"]["top1"]) <= 0.23, (top1, card["metrics"]["top1"])
