"""The window, offscreen: drops, linked selection, head/layer keys, point clicks, export, video, leaks."""

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from relviz.app.settings import SETTINGS_VERSION, Settings
from relviz.app.synthetic import synthetic_trace
from relviz.app.window import MainWindow

pytestmark = pytest.mark.gui
WAIT = 60_000


@pytest.fixture
def settings(tmp_path):
    return Settings(settings=QSettings(str(tmp_path / "relviz.ini"), QSettings.Format.IniFormat))


@pytest.fixture
def window(qtbot, settings):
    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.controller.shutdown()


def show(window, trace):
    window.state.set_image(trace.image, Path("synthetic.png"), "trace")
    window.state.set_trace(trace)


def drop(widget, paths=(), text=None):
    mime = QMimeData()
    if paths:
        mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    if text is not None:
        mime.setText(text)
    pos = QPoint(40, 40)
    enter = QDragEnterEvent(
        pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    ev = QDropEvent(
        QPointF(pos), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(widget, ev)


def wait_message(qtbot, window, needle, level=None):
    def check():
        text, lev = window.state.last_message
        assert needle in text, text
        if level:
            assert lev == level

    qtbot.waitUntil(check, timeout=WAIT)


@pytest.fixture
def image_file(tmp_path):
    img = np.full((48, 64, 3), 200, np.uint8)
    img[8:24, 10:30] = (220, 40, 40)
    path = tmp_path / "scene.png"
    Image.fromarray(img).save(path)
    return path


# -- drops and model runs --------------------------------------------------------------------------------


def test_dropping_a_checkpoint_and_an_image_fills_the_objects_table(qtbot, window, tiny_detr, image_file):
    window.state.threshold = 0.0  # random weights: every query is a detection
    window.state.resize = 64
    drop(window, [tiny_detr, image_file])
    qtbot.waitUntil(lambda: window.state.trace is not None, timeout=WAIT)
    trace = window.state.trace
    n = len(trace["detections/boxes"])
    assert n == 6
    assert window.objects_panel.table.rowCount() == n
    np.testing.assert_array_equal(window.canvas.overlay.boxes, trace["detections/boxes"])
    assert window.state.model.family == "detr" and window.state.model.weights == str(tiny_detr)
    assert window.state.image.shape == (48, 64, 3)
    # the first object is selected: its cross-attention is the canvas map
    assert window.state.sel.object == 0
    q = int(trace["detections/query"][0])
    expected = trace["detr/decoder/cross_attn"][-1, :, q].mean(axis=0)
    np.testing.assert_allclose(window.canvas.last_heat.ravel(), expected, rtol=1e-6)


def test_bad_drops_leave_a_message_and_the_window_takes_the_next(qtbot, window, tmp_path, image_file):
    drop(window, text="just some text")
    wait_message(qtbot, window, "not a file", "error")
    assert window.message_bar.isVisible()
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    drop(window, [notes])
    wait_message(qtbot, window, "cannot open notes.txt", "error")
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(Image.open(image_file).tobytes()[:100])
    drop(window, [corrupt])
    wait_message(qtbot, window, "broken.png", "error")
    assert window.state.image is None
    unsafe = tmp_path / "evil.pth"
    import torch

    torch.save({"model": {"w": torch.zeros(1)}, "payload": Path("x")}, unsafe)
    drop(window, [unsafe])
    wait_message(qtbot, window, "would run code", "error")
    drop(window, [image_file])
    qtbot.waitUntil(lambda: window.state.image is not None, timeout=WAIT)
    assert window.state.image.shape == (48, 64, 3)
    assert window.isVisible()


def test_a_worker_exception_is_shown_not_fatal(qtbot, window):
    def boom(ctx):
        raise ValueError("deliberate")

    window.controller._start("testing", boom, pool="io")
    wait_message(qtbot, window, "internal error while testing: ValueError: deliberate", "error")
    window.controller._start("testing again", lambda ctx: 42, pool="io", done=lambda v: window.state.info(f"got {v}"))
    wait_message(qtbot, window, "got 42")
    qtbot.waitUntil(lambda: not window.state.busy, timeout=WAIT)


def test_a_folder_is_stepped_with_the_arrow_keys(qtbot, window, tmp_path):
    folder = tmp_path / "shots"
    folder.mkdir()
    for i, color in enumerate([(255, 0, 0), (0, 0, 255)]):
        Image.fromarray(np.full((20, 30, 3), color, np.uint8)).save(folder / f"{i}.png")
    (folder / "readme.txt").write_text("not an image")
    drop(window, [folder])
    qtbot.waitUntil(lambda: window.state.image is not None, timeout=WAIT)
    assert len(window.state.items) == 2 and window.state.image[0, 0, 0] == 255
    QTest.keyClick(window, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: window.state.image[0, 0, 2] == 255, timeout=WAIT)
    assert window.state.item_index == 1 and "[2/2]" in window.windowTitle()
    window._fill_recent()
    recent = [a.text() for a in window.recent_menu.actions()]
    assert str(folder.resolve()) in recent


# -- linked selection --------------------------------------------------------------------------------


def test_selecting_a_row_changes_the_selection_everywhere(qtbot, window):
    trace = synthetic_trace()
    show(window, trace)
    table = window.objects_panel.table
    row = window.objects_panel.row_of(2)
    table.selectRow(row)
    assert window.state.sel.object == 2
    assert window.canvas.overlay.selected == 2
    rel = window.relations_panel
    assert rel.row_box.rect().y() == 2 and rel.row_box.rect().height() == 1
    q = int(trace["detections/query"][2])
    cross = trace["detr/decoder/cross_attn"]
    qtbot.wait(5)  # the small multiples refresh right after the canvas, coalesced
    np.testing.assert_array_equal(window.attention_panel.map.values.reshape(3, -1), cross[-1, :, q])
    np.testing.assert_allclose(window.canvas.last_heat.ravel(), cross[-1, :, q].mean(axis=0), rtol=1e-6)
    # arrows start at the strongest contributors and end at object 2's centre
    b = trace["detections/boxes"][2]
    np.testing.assert_allclose(window.canvas.overlay.arrows[:, 2:], [[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]] * 2)
    # a matrix cell selects the pair
    rel.click_cell(0, 1)
    assert (window.state.sel.object, window.state.sel.partner) == (0, 1)
    assert window.objects_panel.table.selectionModel().selectedRows()[0].row() == window.objects_panel.row_of(0)


def test_head_and_layer_keys_change_the_shown_map(qtbot, window):
    trace = synthetic_trace()
    show(window, trace)
    window.state.select(object=1)
    q = int(trace["detections/query"][1])
    cross = trace["detr/decoder/cross_attn"]
    QTest.keyClick(window, Qt.Key.Key_2)
    assert window.state.sel.head == 2
    np.testing.assert_array_equal(window.canvas.last_heat.ravel(), cross[1, 2, q])
    QTest.keyClick(window, Qt.Key.Key_BracketLeft)
    assert window.state.sel.layer == 0
    np.testing.assert_array_equal(window.canvas.last_heat.ravel(), cross[0, 2, q])
    qtbot.wait(5)
    assert window.attention_panel.layer.value() == 0
    QTest.keyClick(window, Qt.Key.Key_9)  # only 3 heads: refused with a message
    assert window.state.sel.head == 2 and "only" in window.state.last_message[0]
    QTest.keyClick(window, Qt.Key.Key_M)
    assert window.state.sel.head is None
    np.testing.assert_allclose(window.canvas.last_heat.ravel(), cross[0, :, q].mean(axis=0), rtol=1e-6)
    # the Relations panel's head choice is the same selection
    window.relations_panel.head.setCurrentIndex(3)  # "head 2"
    assert window.state.sel.head == 2
    QTest.keyClick(window, Qt.Key.Key_M)
    assert window.relations_panel.head.currentIndex() == 0
    # a term switch changes the relation matrix to that term's numbers
    window.state.select(term="appearance", head=1)
    np.testing.assert_array_equal(window.relations_panel.rel.matrix, trace["relation/fc1/appearance"][1])


def test_a_point_click_shows_the_map_of_that_points_row(qtbot, window):
    trace = synthetic_trace(width=256, height=192, stride=32)
    show(window, trace)
    combo = window.attention_panel.source
    combo.setCurrentIndex(combo.findData("detr/encoder/self_attn"))
    assert window.state.sel.source == "detr/encoder/self_attn"
    window.canvas.follow.setChecked(False)
    x, y = 150.0, 100.0  # cell (3, 4) of the 6×8 grid
    vb = window.canvas.vb
    scene = vb.mapViewToScene(QPointF(x, y))
    pos = window.canvas.view.mapFromScene(scene)
    QTest.mouseClick(window.canvas.view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos)
    qtbot.waitUntil(lambda: window.state.sel.point is not None and abs(window.state.sel.point[0] - x) < 2)
    cell = 3 * 8 + 4
    rows = trace.rows("detr/encoder/self_attn", cell)
    np.testing.assert_allclose(window.canvas.last_heat.ravel(), rows[-1].mean(axis=0), rtol=1e-6)
    window.state.set_head(1)
    np.testing.assert_allclose(window.canvas.last_heat.ravel(), rows[-1, 1], rtol=1e-6)
    qtbot.wait(5)
    np.testing.assert_allclose(window.attention_panel.map.values.reshape(3, -1), rows[-1], rtol=1e-6)


def test_geometry_panel_shows_relation_lrnet_and_region_terms(qtbot, window):
    trace = synthetic_trace()
    show(window, trace)
    window.docks["Geometry"].raise_()
    window.state.select(object=0, head=1)
    panel = window.geometry_panel
    assert panel.shown == ["relation", "lrnet", "region"]
    geo = trace["relation/fc1/geometry"][1]
    np.testing.assert_array_equal(panel.relation_points[:, 2], geo[0, [1, 2]])


# -- export ------------------------------------------------------------------------------------------


def test_export_dialog_writes_a_valid_pdf_and_its_recipe(qtbot, window, tmp_path):
    trace = synthetic_trace()
    trace.save(tmp_path / "synthetic.npz")
    drop(window, [tmp_path / "synthetic.npz"])  # a trace file opens without a model
    qtbot.waitUntil(lambda: window.state.trace is not None, timeout=WAIT)
    np.testing.assert_array_equal(window.state.image, trace.image)
    window.state.select(object=1, head=0)
    dialog = window.export_figure_dialog(accept=False)
    names = [dialog.view.itemData(i) for i in range(dialog.view.count())]
    assert "decoder-attention" in names and "detections" in names
    dialog.view.setCurrentIndex(names.index("decoder-attention"))
    dialog.fmt.setCurrentText("PDF")
    out = tmp_path / "fig.pdf"
    dialog.path.setText(str(out))
    window.accept_export(dialog)
    wait_message(qtbot, window, "wrote")
    data = out.read_bytes()
    assert data.startswith(b"%PDF-") and b"%%EOF" in data[-64:]
    recipe = json.loads((tmp_path / "fig.recipe.json").read_text())
    assert recipe["view"] == "decoder-attention"
    assert recipe["options"]["object"] == 1 and recipe["options"]["head"] == "0"
    assert recipe["trace"] == str((tmp_path / "synthetic.npz").resolve())
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".part")]


def test_export_to_a_missing_folder_is_refused_with_a_message(qtbot, window, tmp_path):
    show(window, synthetic_trace())
    window.state.exportRequested.emit(
        "figure", {"view": "detections", "format": "png", "path": str(tmp_path / "nowhere" / "fig.png")}
    )
    wait_message(qtbot, window, "does not exist", "error")
    window.state.exportRequested.emit("trace", {"path": str(tmp_path / "t.npz")})
    wait_message(qtbot, window, "wrote")
    from relviz.core.trace import Trace

    again = Trace.load(tmp_path / "t.npz")
    np.testing.assert_array_equal(again["relation/fc1/weight"], window.state.trace["relation/fc1/weight"])


# -- video -------------------------------------------------------------------------------------------


def write_video(path, frames=8, size=(64, 48)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, size)
    for i in range(frames):
        frame = np.zeros((size[1], size[0], 3), np.uint8)
        frame[:, :, 1] = (30 * i) % 256
        frame[10:20, (5 + 5 * i) % 50 : (15 + 5 * i) % 50 or 50] = 255
        writer.write(frame)
    writer.release()
    return path


def test_the_video_timeline_steps_frames(qtbot, window, tmp_path):
    from relviz.core.video import VideoReader

    video = write_video(tmp_path / "clip.mp4")
    drop(window, [video])
    qtbot.waitUntil(lambda: window.state.video_frames == 8 and window.state.image is not None, timeout=WAIT)
    assert window.timeline_panel.isEnabled()
    with VideoReader(video) as reader:
        expected = [reader.read(i) for i in range(3)]
    np.testing.assert_array_equal(window.state.image, expected[0])
    window.timeline_panel.fwd.click()
    qtbot.waitUntil(lambda: np.array_equal(window.state.image, expected[1]), timeout=WAIT)
    QTest.keyClick(window, Qt.Key.Key_Period)
    qtbot.waitUntil(lambda: np.array_equal(window.state.image, expected[2]), timeout=WAIT)
    assert window.state.sel.frame == 2 and window.timeline_panel.slider.value() == 2
    qtbot.waitUntil(lambda: not window.state.busy and window.model_panel.progress.format() == "idle", timeout=WAIT)
    window.timeline_panel.slider.setValue(7)
    qtbot.waitUntil(lambda: window.state.image[15, 42, 0] == 255, timeout=WAIT)  # the square of frame 7


def test_a_video_cut_short_shrinks_the_timeline_with_a_message(qtbot, window, tmp_path):
    full = tmp_path / "full.avi"
    writer = cv2.VideoWriter(str(full), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(40):
        writer.write(np.random.default_rng(i).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    cut = tmp_path / "cut.avi"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 3])  # the header still says 40 frames; about 12 decode
    drop(window, [cut])
    qtbot.waitUntil(lambda: window.state.video_frames == 40 and window.controller.idle(), timeout=WAIT)
    window.timeline_panel.slider.setValue(35)
    wait_message(qtbot, window, "cannot be decoded", "warning")
    assert 5 < window.state.video_frames < 20  # what really decodes
    assert window.timeline_panel.slider.maximum() == window.state.video_frames - 1
    window.timeline_panel.slider.setValue(1)  # the frames that exist still play
    qtbot.waitUntil(lambda: window.state.sel.frame == 1 and window.controller.idle(), timeout=WAIT)


def test_a_truncated_video_gives_a_message(qtbot, window, tmp_path):
    video = write_video(tmp_path / "full.mp4", frames=30)
    data = video.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    drop(window, [cut])
    wait_message(qtbot, window, "cut.mp4", "error")
    assert window.isVisible()


# -- settings and lifetime ---------------------------------------------------------------------------


def test_settings_reset_on_a_new_version_and_keep_recent_files(tmp_path):
    qs = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    qs.setValue("version", SETTINGS_VERSION - 1)
    qs.setValue("window/state", b"old layout")
    s = Settings(settings=qs)
    assert s.window_state() == (None, None) and s.qs.value("version") in (SETTINGS_VERSION, str(SETTINGS_VERSION))
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    s.add_recent(a)
    s.add_recent(b)
    s.add_recent(a)
    assert s.recent_files() == [str(a.resolve()), str(b.resolve())]
    s.save_model_choice({"name": "detr-r50", "weights": "none", "device": "cpu", "precision": "fp32"})
    assert Settings(settings=qs).model_choice()["device"] == "cpu"


def test_no_widget_leaks_after_closing_the_window(qtbot, settings):
    def count():
        import gc

        gc.collect()
        qtbot.wait(50)  # deferred deletes run in the event loop
        return len(QApplication.allWidgets())

    def cycle():
        w = MainWindow(settings)
        w.show()
        show(w, synthetic_trace())
        w.state.select(object=1)
        qtbot.wait(10)
        w.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        w.close()

    cycle()  # first use creates Qt's shared singletons
    before = count()
    cycle()
    after = count()
    assert after == before, f"{after - before} widgets left behind"


def test_playback_drops_frames_rather_than_stalling(qtbot, window, tmp_path, monkeypatch):
    import time

    from relviz import pipeline

    real_step = pipeline.video_step

    def slow_step(*args):  # a model that needs 150 ms a frame, on a 50 fps video
        time.sleep(0.15)
        return real_step(*args)

    monkeypatch.setattr(pipeline, "video_step", slow_step)
    video = tmp_path / "fast.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 50.0, (32, 24))
    for i in range(50):
        writer.write(np.full((24, 32, 3), (i * 5) % 256, np.uint8))
    writer.release()
    drop(window, [video])
    qtbot.waitUntil(lambda: window.state.video_frames == 50 and window.controller.idle(), timeout=WAIT)
    shown_before = window.controller.shown_frames
    t0 = time.perf_counter()
    QTest.keyClick(window, Qt.Key.Key_Space)
    assert window.state.playing
    qtbot.waitUntil(lambda: not window.state.playing, timeout=WAIT)
    qtbot.waitUntil(lambda: window.controller.idle(), timeout=WAIT)
    elapsed = time.perf_counter() - t0
    shown = window.controller.shown_frames - shown_before
    assert window.state.sel.frame == 49
    assert elapsed < 4.0  # one second of video, not 50 × 150 ms
    assert 2 <= shown < 25  # most frames were skipped
    assert window.timeline_panel.slider.value() == 49


def test_geometry_landscape_places_a_box_of_the_objects_size_everywhere(qtbot, window, monkeypatch):
    from relviz.views import geometry

    trace = synthetic_trace()
    trace["relation/fc1/geometry_weight"] = np.zeros((4, 64), np.float32)
    trace["relation/fc1/geometry_bias"] = np.zeros(4, np.float32)
    calls = []

    def omega_g(tr, module, receiver, others, heads=None):  # stands in for the W_G formula
        calls.append((module, np.asarray(receiver), np.asarray(others)))
        cx = (others[:, 0] + others[:, 2]) / 2
        return np.stack([cx * (h + 1) for h in range(4)])

    monkeypatch.setattr(geometry, "omega_g", omega_g)
    show(window, trace)
    window.state.select(object=1, head=2)
    land = window.geometry_panel.landscape
    cols, rows = geometry.landscape_cells(geometry.PANEL_RESOLUTION, 128, 96)
    assert land is not None and land.shape == (rows, cols)  # cells across a 128×96 image at its aspect
    module, receiver, others = calls[-1]
    box = trace["relation/fc1/boxes"][1]
    np.testing.assert_array_equal(receiver, box)
    np.testing.assert_allclose(others[:, 2] - others[:, 0], box[2] - box[0])  # the object's own size
    np.testing.assert_allclose(land[0], ((np.arange(cols) + 0.5) * 128 / cols) * 3)  # head 2 = 3·cx


def test_the_initial_model_choice_says_what_it_does(qtbot, window):
    ctrl, st = window.controller, window.state
    st.zoo = [{"name": "detr-r50", "family": "detr", "description": "", "has_weights": False},
              {"name": "demo-detr", "family": "detr", "description": "", "has_weights": True}]  # fmt: skip
    st.devices = ["auto", "cpu"]
    assert ctrl._initial_choice("nope", None) is None
    assert "unknown model 'nope'" in st.last_message[0] and "detr-r50, demo-detr" in st.last_message[0]
    choice = ctrl._initial_choice("detr-r50", "cuda:3")
    assert choice == {"name": "detr-r50", "weights": "none", "device": "auto", "precision": "fp32"}
    assert "seeded random weights" in st.last_message[0]
    # with no model named, the first model with bundled weights opens
    assert ctrl._initial_choice(None, None)["name"] == "demo-detr"


def test_the_demo_scene_shows_an_odd_object(qtbot, window):
    from relviz.app.controller import RESOURCES
    from relviz.train import scenes

    path = window.controller._demo_scene()
    info = json.loads((RESOURCES / "samples.json").read_text())["files"][path.name]
    # the object the relation modules decide is in the picture the application opens on
    scene = scenes.make_scene(info["seed"], info["index"])
    assert scenes.ODD in scene.labels
    assert [o["label"] for o in info["objects"]] == [scenes.CLASSES[k] for k in scene.labels]
