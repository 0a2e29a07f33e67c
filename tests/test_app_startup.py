"""Start-up: the model list is filled from the zoo's plain data before torch is imported, the first model
starts loading at once, and the full listing only adds GPU devices and precisions; a saved choice still
preselects, and a saved GPU device waits for the full listing (offscreen, pytest-qt)."""

import threading

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QSettings

from relviz import pipeline
from relviz.app import controller as ctl
from relviz.app.settings import Settings
from relviz.app.window import MainWindow
from relviz.core.errors import BadInputError
from relviz.zoo import catalog

pytestmark = pytest.mark.gui
WAIT = 30_000


@pytest.fixture
def settings(tmp_path):
    return Settings(settings=QSettings(str(tmp_path / "relviz.ini"), QSettings.Format.IniFormat))


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "scene.png"
    Image.fromarray(np.full((40, 50, 3), 120, np.uint8)).save(path)
    return str(path)


class Zoo:
    """The full listing held back until released (torch being imported), and model loads recorded."""

    def __init__(self, monkeypatch):
        self.release = threading.Event()
        self.events: list = []
        monkeypatch.setattr(ctl, "_zoo_listing", self.listing)
        monkeypatch.setattr(pipeline, "load_model", self.load)

    def listing(self, ctx):
        self.events.append("listing started")
        assert self.release.wait(WAIT / 1000)
        info = catalog.cpu_listing()
        gpu = ["fp32", "fp16", "bf16"]
        info["devices"] = ["auto", "cpu", "cuda:0"]
        info["precisions"] = {"auto": gpu, "cpu": ["fp32", "bf16"], "cuda:0": gpu}
        for name, by_device in info["family_precisions"].items():
            by_device["auto"] = by_device["cuda:0"] = ["fp32"] if name == "relation" else gpu
        del info["provisional"]
        self.events.append("listing done")
        return info

    def load(self, report, choice):
        self.events.append(("load", choice["name"], choice["device"], choice["precision"]))
        raise BadInputError("this test loads no model")

    def loads(self):
        return [e for e in self.events if isinstance(e, tuple)]


@pytest.fixture
def start(qtbot, settings, monkeypatch):
    zoo = Zoo(monkeypatch)
    window = MainWindow(settings)
    qtbot.addWidget(window)
    window.show()
    yield window, zoo
    zoo.release.set()
    window.controller.shutdown()


def items(combo):
    return [combo.itemText(i) for i in range(combo.count())]


def test_the_model_list_is_there_at_once_and_the_first_model_loads_before_torch_is_listed(qtbot, start, image):
    window, zoo = start
    panel = window.model_panel
    window.controller.startup([image])
    # synchronously, before any worker ran: the whole zoo, the CPU devices and their precisions
    assert [panel.zoo.itemData(i) for i in range(panel.zoo.count())] == [e.name for e in catalog.ENTRIES]
    assert "demo-relation" in panel.zoo.itemText(panel.zoo.findData("demo-relation"))
    assert "(no bundled weights)" in panel.zoo.itemText(panel.zoo.findData("detr-r50"))
    assert items(panel.device) == ["auto", "cpu"] and window.state.zoo == catalog.cpu_listing()["zoo"]
    # the first model's load runs while the full listing has not even started (one model worker)
    qtbot.waitUntil(lambda: zoo.loads() != [], timeout=WAIT)
    assert zoo.loads() == [("load", "demo-relation", "auto", "fp32")]
    assert "listing done" not in zoo.events and window.controller.zoo_ready is False
    zoo.release.set()
    qtbot.waitUntil(lambda: "cuda:0" in items(panel.device), timeout=WAIT)
    assert items(panel.device) == ["auto", "cpu", "cuda:0"] and window.controller.zoo_ready
    assert len(zoo.loads()) == 1  # the full listing only adds devices: nothing is loaded again
    panel.zoo.setCurrentIndex(panel.zoo.findData("demo-lrnet"))
    panel.device.setCurrentText("cuda:0")
    assert panel.precision_options() == ["fp32", "fp16", "bf16"]
    panel.device.setCurrentText("cpu")
    assert panel.precision_options() == ["fp32", "bf16"]


def test_a_saved_cpu_choice_preselects_and_loads_at_once(qtbot, start, settings, image):
    window, zoo = start
    settings.save_model_choice({"name": "demo-lrnet", "weights": "bundled", "device": "cpu", "precision": "bf16"})
    window.controller.startup([image])
    panel = window.model_panel
    assert panel.zoo.currentData() == "demo-lrnet" and panel.device.currentText() == "cpu"
    assert panel.precision.currentText() == "bf16"
    qtbot.waitUntil(lambda: zoo.loads() != [], timeout=WAIT)
    assert zoo.loads() == [("load", "demo-lrnet", "cpu", "bf16")] and "listing done" not in zoo.events


def test_a_saved_gpu_device_waits_for_the_full_listing(qtbot, start, settings, image):
    window, zoo = start
    settings.save_model_choice({"name": "demo-lrnet", "weights": "bundled", "device": "cuda:0", "precision": "fp16"})
    window.controller.startup([image])
    assert [window.model_panel.zoo.itemData(i) for i in range(3)] == [e.name for e in catalog.ENTRIES[:3]]
    qtbot.waitUntil(lambda: "listing started" in zoo.events, timeout=WAIT)
    qtbot.wait(200)
    assert zoo.loads() == []  # cuda:0 is known only once torch is imported
    zoo.release.set()
    qtbot.waitUntil(lambda: zoo.loads() != [], timeout=WAIT)
    assert zoo.loads() == [("load", "demo-lrnet", "cuda:0", "fp16")]
    assert window.model_panel.device.currentText() == "cuda:0" and window.model_panel.precision.currentText() == "fp16"


def test_a_checkpoint_given_at_start_up_is_the_model_loaded(qtbot, start, image, tmp_path):
    import torch

    window, zoo = start
    ckpt = tmp_path / "mine.pth"
    torch.save({"model": {"w": torch.zeros(2)}}, ckpt)
    window.controller.startup([str(ckpt), image])
    zoo.release.set()
    qtbot.waitUntil(lambda: "listing done" in zoo.events, timeout=WAIT)
    qtbot.waitUntil(window.controller.idle, timeout=WAIT)
    assert zoo.loads() == [("load", None, "auto", "fp32")]  # the checkpoint only, no demo model after it
