"""The Model panel's input-size box holds only sizes a run and an export accept: 0 (the model's default) or
16..4096 px, whether typed or stepped (offscreen, pytest-qt)."""

import pytest
from PySide6.QtCore import Qt

from relviz.app.panels.model import ModelPanel
from relviz.app.state import AppState
from relviz.core.limits import MAX_RESIZE, MIN_RESIZE

pytestmark = pytest.mark.gui


@pytest.fixture
def panel(qtbot):
    state = AppState()
    p = ModelPanel(state)
    qtbot.addWidget(p)
    p.show()
    qtbot.waitExposed(p)
    return p


def type_size(qtbot, panel, text):
    box = panel.resize
    box.setFocus()
    box.selectAll()
    qtbot.keyClicks(box.lineEdit(), text)
    qtbot.keyClick(box, Qt.Key.Key_Return)
    box.clearFocus()  # editing finishes as when the user moves on


def test_typed_sizes_below_16_are_never_taken(qtbot, panel):
    assert (panel.resize.minimum(), panel.resize.maximum()) == (0, MAX_RESIZE)
    assert panel.resize.text() == "model default" and panel.state.resize is None
    for text in ("8", "1", "15"):
        type_size(qtbot, panel, text)
        assert panel.resize.value() == 0 and panel.state.resize is None, text
    type_size(qtbot, panel, "16")
    assert panel.resize.value() == MIN_RESIZE and panel.state.resize == 16
    type_size(qtbot, panel, "9")  # refused: the last valid size stays
    assert panel.resize.value() == 16 and panel.state.resize == 16
    type_size(qtbot, panel, "4097")
    assert panel.resize.value() <= MAX_RESIZE and panel.state.resize <= MAX_RESIZE
    type_size(qtbot, panel, "0")
    assert panel.resize.text() == "model default" and panel.state.resize is None


def test_stepping_skips_1_to_15(panel):
    box = panel.resize
    box.setValue(40)
    box.stepBy(-1)  # 40 − 32 would be 8
    assert box.value() == 0
    box.stepBy(1)
    assert box.value() == 32
    box.setValue(0)
    box.setSingleStep(10)
    box.stepBy(1)  # 10 would be under 16
    assert box.value() == MIN_RESIZE
    box.setValue(MAX_RESIZE - 5)
    box.stepBy(1)
    assert box.value() == MAX_RESIZE
