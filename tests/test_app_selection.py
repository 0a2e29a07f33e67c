"""The selection rules of relviz.app.state (what survives a change of model, input, frame, view and layer),
the docks that adapt to the family, and the Objects panel's class list — checked on what the window shows."""

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from relviz.app.synthetic import synthetic_trace
from relviz.core.trace import Trace

pytestmark = pytest.mark.gui

NONLOCAL = ("nonlocal/", "classification/")
RELATION = ("detections/", "relation/")
DETR = ("detections/", "detr/")
LRNET = ("lrnet/", "classification/")


def show(window, trace, path="synthetic.png", follow=False):
    window.state.set_image(trace.image, Path(path), "image")
    window.state.set_trace(trace, follow=follow)


def marker_points(window) -> list[tuple[float, float]]:
    data = window.canvas.marker.data
    return [(float(x), float(y)) for x, y in zip(data["x"], data["y"], strict=True)]


def test_a_relation_model_after_a_point_model_selects_its_strongest_object(qtbot, window):
    show(window, synthetic_trace(family="nonlocal", model="nl", only=NONLOCAL))
    sel = window.state.sel
    assert sel.object is None and sel.source == "nonlocal" and sel.point == (64.0, 48.0)  # the image centre
    window.state.select(point=(30.0, 20.0))
    assert marker_points(window) == [(30.0, 20.0)]
    show(window, synthetic_trace(family="relation", model="rel", only=RELATION))
    sel = window.state.sel
    assert sel.object == 0 and sel.point is None and sel.module == "fc1"
    assert window.objects_panel.table.selectionModel().selectedRows()[0].row() == window.objects_panel.row_of(0)
    assert marker_points(window) == []  # no point views in a relation trace: no marker
    window.docks["Geometry"].raise_()
    assert "relation" in window.geometry_panel.shown
    assert "no geometry terms" not in window.geometry_panel.info.text()
    # back to a point model: the point the user chose is kept
    show(window, synthetic_trace(family="nonlocal", model="nl", only=NONLOCAL))
    assert window.state.sel.point == (30.0, 20.0) and window.state.sel.object is None
    assert marker_points(window) == [(30.0, 20.0)]


def test_a_layer_chosen_in_the_encoder_stays_in_the_encoder(qtbot, window):
    trace = synthetic_trace(layers=3, model="detr")
    show(window, trace)
    st = window.state
    assert st.sel.source == "detr/decoder/cross_attn" and st.sel.layer == -1 and st.sel.object == 0
    st.select(source="detr/encoder/self_attn")
    QTest.keyClick(window, Qt.Key.Key_BracketLeft)
    QTest.keyClick(window, Qt.Key.Key_BracketLeft)
    assert st.sel.layer == 0
    # an object picked in the encoder view switches to the decoder at *its* default layer (the last)
    window.objects_panel.table.selectRow(window.objects_panel.row_of(1))
    assert st.sel.source == "detr/decoder/cross_attn" and st.sel.layer == -1
    q = int(trace["detections/query"][1])
    cross = trace["detr/decoder/cross_attn"]
    np.testing.assert_allclose(window.canvas.last_heat.ravel(), cross[2, :, q].mean(axis=0), rtol=1e-6)
    qtbot.wait(5)
    assert window.attention_panel.layer.value() == 2
    # back in the encoder, its layer 0 is back
    st.select(source="detr/encoder/self_attn")
    assert st.sel.layer == 0
    # a new model starts every view at its default layer, with the head mean
    st.set_head(1)
    show(window, synthetic_trace(layers=3, model="detr-other", seed=1))
    assert st.sel.layer == -1 and st.sel.head is None and st.sel.source == "detr/decoder/cross_attn"
    st.select(source="detr/encoder/self_attn")
    assert st.sel.layer == -1


def test_the_point_marker_shows_only_in_point_views(qtbot, window):
    show(window, synthetic_trace(model="detr"))
    st = window.state
    assert st.sel.source == "detr/decoder/cross_attn" and st.sel.point is None and marker_points(window) == []
    st.select(source="detr/encoder/self_attn")
    assert st.sel.point == (64.0, 48.0) and marker_points(window) == [(64.0, 48.0)]
    st.select(point=(100.0, 30.0))
    assert marker_points(window) == [(100.0, 30.0)]
    st.select(object=2)  # an object view: the point is put aside, not drawn
    assert st.sel.source == "detr/decoder/cross_attn" and st.sel.point is None and marker_points(window) == []
    st.select(source="detr/encoder/self_attn")
    assert st.sel.point == (100.0, 30.0) and marker_points(window) == [(100.0, 30.0)]


def shifted(trace: Trace, order, dx: float) -> Trace:
    """The same trace with its detections reordered (``order``) and moved right by ``dx`` pixels: the next
    frame of a video, as a detector would report it (DETR's query slots move with their detections)."""
    out = Trace(meta=dict(trace.meta))
    for name in trace.names():
        out[name] = trace.factored[name] if name in trace.factored else trace.arrays[name]
    boxes = np.asarray(trace["detections/boxes"])[order].copy()
    boxes[:, [0, 2]] += dx
    out["detections/boxes"] = boxes
    for name in ("detections/scores", "detections/labels", "detections/query"):
        if name in trace:
            out[name] = np.asarray(trace[name])[order]
    out.meta["input"] = {**trace.meta["input"], "frame": 1}
    return out


def test_a_new_frame_follows_the_object_and_keeps_layer_head_and_view(qtbot, window):
    trace = synthetic_trace(layers=3, model="detr")
    show(window, trace)
    st = window.state
    st.select(object=1)
    st.set_head(2)
    st.step_layer(-1)
    assert (st.sel.object, st.sel.head, st.sel.layer) == (1, 2, 1)
    show(window, shifted(trace, [2, 0, 1], 3.0), follow=True)  # object 1 (query 1) is now row 2
    assert (st.sel.object, st.sel.head, st.sel.layer, st.sel.source) == (2, 2, 1, "detr/decoder/cross_attn")
    # another image from the same model: the first object again; head and layer kept
    other = synthetic_trace(layers=3, model="detr", seed=3)
    other.meta["input"] = {**other.meta["input"], "path": "another.png"}
    show(window, other, path="another.png")
    assert (st.sel.object, st.sel.head, st.sel.layer) == (0, 2, 1)


def test_without_query_slots_a_frame_follows_the_object_by_box_overlap(qtbot, window):
    trace = synthetic_trace(family="relation", model="rel", only=RELATION)
    show(window, trace)
    st = window.state
    st.select(object=2, head=3)
    show(window, shifted(trace, [1, 2, 0], 4.0), follow=True)  # object 2 is now row 1
    assert (st.sel.object, st.sel.head, st.sel.module) == (1, 3, "fc1")
    assert window.objects_panel.table.selectionModel().selectedRows()[0].row() == window.objects_panel.row_of(1)


def test_docks_adapt_to_the_family(qtbot, window):
    docks = window.docks

    def shown():
        return {title for title, dock in docks.items() if not dock.isHidden()}

    assert "Timeline" not in shown()  # no video yet
    show(window, synthetic_trace(family="nonlocal", model="nl", only=NONLOCAL))
    assert shown() == {"Model", "Objects", "Attention"}
    show(window, synthetic_trace(family="relation", model="rel", only=RELATION))
    assert shown() == {"Model", "Objects", "Relations", "Geometry"}
    show(window, synthetic_trace(family="lrnet", model="lr", only=LRNET))
    assert shown() == {"Model", "Objects", "Attention", "Geometry"}
    # a dock the user closes stays closed, even when the family needs it
    docks["Attention"].toggleViewAction().trigger()
    show(window, synthetic_trace(model="detr"))
    assert shown() == {"Model", "Objects", "Relations", "Geometry"}
    window.reset_layout()
    assert shown() == {"Model", "Objects", "Attention", "Relations", "Geometry"}
    # the hidden docks give their space to the others: the Attention dock takes the right column
    show(window, synthetic_trace(family="nonlocal", model="nl", only=NONLOCAL))
    qtbot.wait(20)
    assert docks["Attention"].height() > 0.8 * (window.height() - window.menuBar().height() - 60)


def test_a_classifier_lists_its_classes_by_name_in_a_narrow_dock(qtbot, window):
    trace = synthetic_trace(family="lrnet", model="lrnet-26", only=LRNET)
    logits = np.zeros(1000, np.float32)
    logits[[564, 281, 999]] = [5.0, 4.0, 3.0]
    trace["classification/logits"] = logits
    from relviz.pipeline import name_classes

    trace.meta["labels"] = [f"class {i}" for i in range(1000)]
    show(window, name_classes(trace))
    panel = window.objects_panel
    lines = panel.classes.text().splitlines()
    p = np.exp(logits - logits.max())
    p /= p.sum()
    assert lines[0] == f"{p[564]:.2f}  four-poster" and lines[1] == f"{p[281]:.2f}  tabby"
    assert lines[2] == f"{p[999]:.2f}  toilet tissue" and len(lines) == 5
    assert panel.classes.isVisible() and not panel.table.isVisible()
    # a long class name does not widen the left dock
    trace2 = synthetic_trace(family="lrnet", model="lrnet-26", only=LRNET)
    trace2["classification/logits"] = logits
    trace2.meta["labels"] = ["a very long class name " * 8] * 1000
    show(window, trace2)
    qtbot.wait(20)
    assert window.docks["Objects"].width() <= 360
    assert window.docks["Model"].width() <= 360


def test_the_model_pickers_show_their_entries_in_full(qtbot, window):
    panel = window.model_panel
    window.state.zoo = [
        {"name": "relation-rcnn-r50-fpn", "family": "relation", "description": "", "has_weights": False},
        {"name": "demo-relation", "family": "relation", "description": "", "has_weights": True},
    ]
    window.state.zooChanged.emit()
    combo = panel.zoo
    longest = max((combo.itemText(i) for i in range(combo.count())), key=len)
    assert "relation-rcnn-r50-fpn" in longest
    assert combo.view().minimumWidth() >= combo.view().fontMetrics().horizontalAdvance(longest)
    assert window.docks["Model"].width() <= 360
