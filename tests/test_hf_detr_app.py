"""Dropping a Hugging Face DETR folder on the window loads it and shows its class names."""

import hf_detr_fixture as fx
import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

pytestmark = pytest.mark.gui
WAIT = 60_000


def drop(widget, paths):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPoint(40, 40)
    enter = QDragEnterEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    QApplication.sendEvent(widget, QDropEvent(QPointF(pos), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                                              Qt.KeyboardModifier.NoModifier))


def test_dropping_a_hugging_face_folder_loads_it_with_its_class_names(qtbot, window, tmp_path):
    ref = np.load(fx.DATA / "v5-resnet-sine" / "reference.npz")
    folder = fx.write_folder("v5-resnet-sine", tmp_path / "my-detr")
    image = tmp_path / "scene.png"
    Image.fromarray(ref["image0"]).save(image)
    window.state.threshold = 0.0  # random weights: every query is a detection
    window.state.resize = 0
    drop(window, [folder, image])
    qtbot.waitUntil(lambda: window.state.trace is not None and window.state.model is not None, timeout=WAIT)
    assert window.state.model.family == "detr" and window.state.model.weights == str(folder)
    trace = window.state.trace
    names = ["N/A", "circle", "N/A", "square", "odd"]
    assert trace.meta["labels"] == names
    np.testing.assert_allclose(trace["detr/pred_logits"], ref["logits"][0], atol=1e-4, rtol=0)
    table = window.objects_panel.table
    assert table.rowCount() == 7
    shown = {table.item(r, 1).text() for r in range(table.rowCount())}
    expected = {names[int(i)] for i in trace["detections/labels"]}
    assert shown == expected and shown <= set(names)


def test_dropping_the_weights_file_of_a_folder_reads_the_config_beside_it(qtbot, window, tmp_path):
    folder = fx.write_folder("v5-resnet-learned-gelu", tmp_path / "my-detr")
    drop(window, [folder / "model.safetensors"])
    weights = str(folder / "model.safetensors")
    qtbot.waitUntil(lambda: window.state.model is not None and window.state.model.weights == weights, timeout=WAIT)
    loaded = window.controller.loaded
    assert loaded.config["activation"] == "gelu" and loaded.config["labels"][1] == "circle"
