"""The panels read right at the window's default size: no cut-off texts or combo boxes, relation-matrix labels
that never overlap, colour bars whose numbers fit, bars on the matrix's range; and hovering re-lays out
nothing (the texts that change per hover keep their size)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPointF
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QComboBox

from relviz.app.panels.common import TextLine
from relviz.app.synthetic import synthetic_trace
from relviz.views import maps

pytestmark = pytest.mark.gui


def show(window, trace, qtbot):
    window.state.set_image(trace.image, Path("synthetic.png"), "trace")
    window.state.set_trace(trace)
    qtbot.wait(30)


def crowded_trace(n: int = 30):
    """The synthetic scene with ``n`` detections related by one module (fc1): a crowded matrix."""
    trace = synthetic_trace()
    for name in list(trace.arrays):
        if name != "input/image":
            del trace.arrays[name]
    trace.factored.clear()
    rng = np.random.default_rng(0)
    x0, y0 = rng.uniform(0, 100, n), rng.uniform(0, 70, n)
    boxes = np.stack([x0, y0, x0 + 20, y0 + 20], 1).astype(np.float32)
    trace.arrays["detections/boxes"] = boxes
    trace.arrays["detections/labels"] = rng.integers(1, 3, n)
    trace.arrays["detections/scores"] = np.linspace(0.99, 0.8, n).astype(np.float32)
    weight = rng.random((4, n, n)).astype(np.float32)
    trace.arrays["relation/fc1/weight"] = weight / weight.sum(-1, keepdims=True)
    trace.arrays["relation/fc1/boxes"] = boxes
    return trace


def text_fits(widget, text: str) -> bool:
    return widget.fontMetrics().horizontalAdvance(text) <= widget.width() - 4


def combo_fits(combo: QComboBox) -> bool:
    """The current entry is shown whole (its text and the arrow's room)."""
    return combo.width() >= combo.sizeHint().width() or text_fits(combo, combo.currentText() + "MMM")


def test_no_text_or_combo_box_is_cut_off(qtbot, window):
    trace = synthetic_trace()
    show(window, trace, qtbot)
    window.state.select(source="lrnet", point=(40.0, 40.0), head=None, term="appearance")
    qtbot.wait(30)
    canvas, attention, relations = window.canvas, window.attention_panel, window.relations_panel
    assert canvas.caption.text() == "LR-Net stage1 ω_A at (40, 40) · mean of groups"
    assert text_fits(canvas.caption, canvas.caption.text())  # not 'LR-I' beside the colour bar
    assert attention.source.currentText() == "LR-Net aggregation weights (point)"
    assert combo_fits(attention.source)
    for bar in (canvas.colorbar, attention.colorbar):
        assert bar.scale is not None
        for label, text in zip((bar.low, bar.high, bar.mode), bar.texts(), strict=True):
            assert text and text_fits(label, text), text
        # low number | gradient | high number | range note, side by side, none over another
        parts = [bar.low.geometry(), bar.gradient.geometry(), bar.high.geometry(), bar.mode.geometry()]
        assert all(a.right() < b.left() for a, b in zip(parts, parts[1:], strict=False)), parts
        assert parts[1].width() >= 60 and parts[-1].right() <= bar.width()
    window.state.select(object=0, module="fc1")
    qtbot.wait(30)
    for combo in (relations.module, relations.term, relations.head):
        assert combo.isVisible() and combo_fits(combo), combo.currentText()
    assert relations.head.currentText() == "mean of heads"


def test_numbers_that_could_be_long_fit_the_colour_bar(qtbot, window):
    trace = synthetic_trace()
    show(window, trace, qtbot)
    window.state.select(source="detr/encoder/self_attn", point=(70.0, 40.0), layer=0)
    qtbot.wait(30)
    bar = window.canvas.colorbar
    for text in ("-0.000326", "8.71e-07", "-1.23e+04"):  # the widest '%.3g' writes
        assert text_fits(bar.low, text) and text_fits(bar.high, text)


def test_crowded_matrix_labels_never_overlap(qtbot, window):
    trace = crowded_trace(30)
    show(window, trace, qtbot)
    window.state.select(module="fc1", object=0)
    qtbot.wait(50)
    panel = window.relations_panel
    rel = maps.relations(trace, "fc1", "weight", None)
    assert len(rel) == 30
    for axis, along in (("bottom", "x"), ("left", "y")):
        item = panel.matrix_plot.getAxis(axis)
        ticks = item._tickLevels[0]
        labels = [t for _, t in ticks]
        assert labels == panel.tick_labels[axis] and labels, axis
        if axis == "bottom":
            assert all(t.startswith("d") and " " not in t for t in labels)  # short names along x
        metrics = QFontMetrics(item.style.get("tickFont") or item.font())
        vb = panel.matrix_plot.getViewBox()
        # each label's extent along its axis on screen, centred on its cell: never into the next one's
        centres = [vb.mapViewToDevice(QPointF(v, 0) if along == "x" else QPointF(0, v)) for v, _ in ticks]
        pos = [c.x() if along == "x" else c.y() for c in centres]
        size = [metrics.horizontalAdvance(t) if along == "x" else metrics.height() for t in labels]
        for i in range(len(ticks) - 1):
            assert abs(pos[i + 1] - pos[i]) >= (size[i] + size[i + 1]) / 2, (axis, labels[i], labels[i + 1])
        # every entry is still reachable: labels are every n-th entry from d0
        step = int(round(ticks[1][0] - ticks[0][0])) if len(ticks) > 1 else 1
        assert labels[0].split()[0] == "d0" and len(labels) == -(-30 // step)


def test_few_entries_are_labelled_in_full_on_the_receiving_axis(qtbot, window):
    trace = synthetic_trace()
    show(window, trace, qtbot)
    window.state.select(module="fc1", object=1)
    qtbot.wait(30)
    panel = window.relations_panel
    assert panel.tick_labels["left"] == ["d0 circle", "d1 square", "d2 triangle"]
    assert panel.tick_labels["bottom"] == ["d0", "d1", "d2"]


def test_bars_share_the_matrix_range(qtbot, window):
    trace = crowded_trace(12)
    show(window, trace, qtbot)
    window.state.select(module="fc1", object=3)
    qtbot.wait(30)
    panel = window.relations_panel
    rel = maps.relations(trace, "fc1", "weight", None)
    (_, _), (y0, y1) = panel.bar_plot.getViewBox().viewRange()
    lo, hi = min(0.0, float(rel.matrix.min())), float(rel.matrix.max())
    pad = 0.04 * (hi - lo)
    assert y0 == pytest.approx(lo - pad, rel=0.05, abs=1e-6) and y1 == pytest.approx(hi + pad, rel=0.05)
    np.testing.assert_allclose(panel.bars.opts["height"], rel.matrix[3, panel.bar_rows])
    window.state.select(object=7)  # another object: other bars, the same range
    qtbot.wait(30)
    assert panel.bar_plot.getViewBox().viewRange()[1] == pytest.approx([y0, y1])
    np.testing.assert_allclose(panel.bars.opts["height"], rel.matrix[7, panel.bar_rows])


def test_a_hover_changes_texts_without_a_new_layout(qtbot, window):
    trace = synthetic_trace()
    show(window, trace, qtbot)
    window.state.select(source="detr/encoder/self_attn", point=(10.0, 10.0), layer=0)
    qtbot.wait(30)
    texts = [window.canvas.caption, window.attention_panel.info, window.relations_panel.info,
             window.canvas.colorbar.low, window.canvas.colorbar.high, window.canvas.colorbar.mode]
    assert all(isinstance(t, TextLine) for t in texts)
    sizes = [t.size() for t in texts]
    before = window.canvas.caption.text()
    window.state.select(point=(100.0, 80.0))
    qtbot.wait(30)
    assert window.canvas.caption.text() != before and "(100, 80)" in window.canvas.caption.text()
    assert [t.size() for t in texts] == sizes
    assert [t.sizeHint().height() for t in texts] == [s.height() for s in sizes]
