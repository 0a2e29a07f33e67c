"""The window says what went wrong, and keeps saying it: the message bar, the message log, refused
checkpoints, bad drops of every kind, precision choices and internal errors (offscreen, pytest-qt)."""

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from relviz.app import controller as ctl
from relviz.app import crash
from relviz.app.messages import INPUT, MAX_LOG_ENTRIES, MODEL, MessageBook
from relviz.app.window import LEVEL_STYLE

pytestmark = pytest.mark.gui
ROOT = Path(__file__).resolve().parents[1]
WAIT = 90_000


@pytest.fixture
def image_file(tmp_path):
    img = np.full((48, 64, 3), 200, np.uint8)
    img[8:24, 10:30] = (220, 40, 40)
    path = tmp_path / "scene.png"
    Image.fromarray(img).save(path)
    return path


def drop(widget, paths):
    """Drop ``paths`` on the window as a file manager does."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPoint(40, 40)
    buttons, mods = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(pos, Qt.DropAction.CopyAction, mime, buttons, mods)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(widget, QDropEvent(QPointF(pos), Qt.DropAction.CopyAction, mime, buttons, mods))


def wait_idle(qtbot, window):
    qtbot.waitUntil(lambda: window.controller.idle() and not window.state.busy, timeout=WAIT)


def bar(window) -> str:
    """What the message bar shows, '' when it is hidden."""
    return window.message_bar.text()


def problems(window) -> list[str]:
    return [p.text for p in window.state.messages.problems]


def load(qtbot, window, ckpt, image):
    window.state.threshold = 0.0  # random weights: every query becomes a detection
    window.state.resize = 64
    window.state.openRequested.emit([str(ckpt), str(image)])
    qtbot.waitUntil(lambda: window.state.trace is not None, timeout=WAIT)
    wait_idle(qtbot, window)


# -- the rule, without a window ----------------------------------------------------------------------


def test_a_success_resolves_only_its_topic_and_only_earlier_requests():
    book = MessageBook()
    r1 = book.begin()
    book.post("notes.txt cannot be opened", "error", INPUT, r1)
    book.post("opened scene.png", "info", INPUT, r1)
    book.resolve(INPUT, r1)  # the good file of the same drop
    assert [p.text for p in book.problems] == ["notes.txt cannot be opened"]
    r2 = book.begin()
    book.post("evil.pth would run code", "error", MODEL, r2)
    r3 = book.begin()
    book.resolve(INPUT, r3)  # another input opened: the input problem goes, the model problem stays
    assert [p.text for p in book.problems] == ["evil.pth would run code"]
    book.resolve(MODEL, r2)
    assert len(book.problems) == 1
    book.post("evil.pth would run code", "error", MODEL, r3)  # the same problem again: listed once
    assert len(book.problems) == 1 and book.problems[0].request == r3
    assert book.dismiss() and book.problems == []


def test_the_log_is_bounded_and_time_stamped():
    book = MessageBook()
    for i in range(MAX_LOG_ENTRIES + 120):
        book.post(f"message {i}", "warning" if i % 2 else "info")
    assert len(book.log) == MAX_LOG_ENTRIES and book.total == MAX_LOG_ENTRIES + 120
    assert book.log[0].text == "message 120" and book.log[-1].text == f"message {MAX_LOG_ENTRIES + 119}"
    line = book.log[-1].line()
    assert line[2] == ":" and line[5] == ":" and "warning" in line
    lines = book.bar_lines()
    assert len(lines) == 5 and "earlier problem" in lines[0] and lines[-1] == f"message {MAX_LOG_ENTRIES + 119}"


# -- the message bar and the log ---------------------------------------------------------------------


def test_an_info_message_never_hides_an_error_and_the_close_button_does(qtbot, window):
    window.state.info("image broken.png is corrupt", "error", INPUT)
    window.state.info("loaded demo-relation")
    window.state.info("demo-relation on scene.png: 3 detections")
    assert window.message_bar.isVisible() and "broken.png is corrupt" in bar(window)
    assert window.status_text.text() == "demo-relation on scene.png: 3 detections"
    window.state.info("the GPU ran out of memory; fell back to the CPU", "warning", MODEL)
    assert "broken.png" in bar(window) and "fell back to the CPU" in bar(window)
    assert window.message_bar.level == "error"
    window.message_bar.close_button.click()
    assert not window.message_bar.isVisible() and window.state.messages.problems == []
    # the log still holds everything, with times, in the dialog View → Messages… opens
    window.messages_action.trigger()
    dialog = window.message_log
    assert dialog is not None and dialog.isVisible()
    rows = dialog.entries()
    assert [r[2] for r in rows] == [
        "image broken.png is corrupt",
        "loaded demo-relation",
        "demo-relation on scene.png: 3 detections",
        "the GPU ran out of memory; fell back to the CPU",
    ]
    assert [r[1] for r in rows] == ["error", "info", "info", "warning"]
    assert all(len(r[0]) == 8 and r[0][2] == ":" for r in rows)
    window.state.info("one more")  # the open dialog follows the log
    assert dialog.entries()[-1][2] == "one more"
    for i in range(MAX_LOG_ENTRIES):
        window.state.info(f"n{i}")
    assert dialog.table.rowCount() == MAX_LOG_ENTRIES and dialog.entries()[0][2] == "n0"
    dialog.close()
    window.message_bar.log_button.click()  # the bar's button opens the same log
    assert window.message_log is dialog and dialog.isVisible()


def test_a_refused_checkpoint_keeps_the_previous_model_its_results_and_the_error(
    qtbot, window, tiny_detr, image_file, tmp_path
):
    load(qtbot, window, tiny_detr, image_file)
    trace = window.state.trace
    boxes = window.canvas.overlay.boxes.copy()
    assert len(boxes) == 6
    results, model = window.controller.results, window.state.model.describe()
    unsafe = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "payload": Path("x")}, unsafe)
    window.state.openRequested.emit([str(unsafe)])
    qtbot.waitUntil(lambda: "would run code" in bar(window), timeout=WAIT)
    wait_idle(qtbot, window)
    qtbot.wait(300)  # the old app re-ran here and an info message hid the error 0.1 s later
    assert window.message_bar.isVisible() and "evil.pth" in bar(window) and window.message_bar.level == "error"
    assert window.controller.results == results  # not re-run
    assert window.state.trace is trace
    np.testing.assert_array_equal(window.canvas.overlay.boxes, boxes)  # its detections still drawn
    assert window.state.model.describe() == model
    assert "still loaded" in window.status_text.text() and "tiny_detr" in window.status_text.text()
    assert "evil.pth was refused" in window.model_panel.status.text()
    assert "still loaded" in window.model_panel.status.text()
    # a checkpoint that does not fit any family: a second error, the first one stays listed
    misfit = tmp_path / "misfit.pth"
    torch.save({"model": {"foo.weight": torch.zeros(3, 3)}}, misfit)
    window.state.openRequested.emit([str(misfit)])
    qtbot.waitUntil(lambda: "misfit.pth" in bar(window), timeout=WAIT)
    wait_idle(qtbot, window)
    assert "evil.pth" in bar(window) and window.controller.results == results
    # another checkpoint that loads is acting on the same thing again: the model errors go
    window.state.openRequested.emit([str(tiny_detr)])
    qtbot.waitUntil(lambda: window.controller.results > results, timeout=WAIT)
    wait_idle(qtbot, window)
    assert not window.message_bar.isVisible() and problems(window) == []
    assert "refused" not in window.model_panel.status.text()
    log = [m.text for m in window.state.messages.log]
    assert any("would run code" in t for t in log) and any("misfit.pth" in t for t in log)


def test_a_checkpoint_with_nan_weights_gets_a_message_or_runs_without_an_internal_error(
    qtbot, window, tiny_detr, image_file, tmp_path
):
    state = torch.load(tiny_detr, weights_only=True)["model"]
    first = next(k for k, v in state.items() if v.is_floating_point() and "class_embed" in k)
    state[first] = torch.full_like(state[first], float("nan"))
    nan = tmp_path / "nan.pth"
    torch.save({"model": state}, nan)
    window.state.threshold = 0.0
    window.state.resize = 64
    window.state.openRequested.emit([str(nan), str(image_file)])
    qtbot.waitUntil(lambda: window.state.image is not None, timeout=WAIT)
    wait_idle(qtbot, window)
    texts = [m.text for m in window.state.messages.log]
    assert not [t for t in texts if "internal error" in t], texts
    if window.controller.loaded is None:  # refused by the checkpoint reader: it says which file
        assert "nan.pth" in bar(window)
    else:  # or run: NaN scores are no detections, drawn without a fault
        assert window.state.trace is not None
        window.canvas.repaint()
    results = window.controller.results
    window.state.openRequested.emit([str(image_file)])
    qtbot.waitUntil(lambda: window.controller.results > results, timeout=WAIT)
    assert window.isVisible()


def test_a_bad_path_at_start_up_stays_on_screen_after_the_model_loads(qtbot, window, tmp_path):
    missing = tmp_path / "nowhere.png"
    window.controller.startup([str(missing)], model="demo-lrnet", device="cpu")
    qtbot.waitUntil(lambda: window.controller.loaded is not None, timeout=WAIT)
    wait_idle(qtbot, window)
    assert window.state.last_message[0].startswith("loaded demo-lrnet")
    assert window.message_bar.isVisible() and "nowhere.png does not exist" in bar(window)


def test_the_screenshot_of_a_bad_path_shows_the_error(tmp_path):
    out = tmp_path / "err.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "relviz", "--screenshot", str(out), "--model", "demo-lrnet", "/nonexistent.png"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "/nonexistent.png does not exist" in proc.stderr
    px = np.asarray(Image.open(out).convert("RGB")).astype(int)
    bg = LEVEL_STYLE["error"].split("background:")[1][1:7]
    r, g, b = (int(bg[i : i + 2], 16) for i in (0, 2, 4))
    bar_px = (abs(px[..., 0] - r) < 6) & (abs(px[..., 1] - g) < 6) & (abs(px[..., 2] - b) < 6)
    assert bar_px.sum() > 5000  # the red message bar across the top of the canvas


# -- bad input of every kind -------------------------------------------------------------------------


def png_header(path, width, height):
    """A PNG whose header declares width × height (grey, 8 bit) and whose data is a few empty rows."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = zlib.compress(b"\0" * (width + 1) * 4)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


def write_video(path, frames, size=(64, 48)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, size)
    for i in range(frames):
        frame = np.full((size[1], size[0], 3), 60, np.uint8)
        frame[10:30, 4 + 6 * i : 24 + 6 * i] = (0, 200, 255)
        writer.write(frame)
    writer.release()
    return path


def bad_inputs(folder: Path) -> dict[str, tuple[Path, str]]:
    """Each kind of bad input, and what its message must name."""
    folder.mkdir()
    notes = folder / "notes.txt"
    notes.write_text("hello")
    unknown = folder / "data.xyz"
    unknown.write_bytes(b"\0" * 64)
    corrupt = folder / "broken.jpg"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 255, 500, dtype=np.uint8).tobytes())
    huge = png_header(folder / "huge.png", 15_000, 10_000)  # 150 Mpx declared
    full = write_video(folder / "full.mp4", 30)
    cut = folder / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 3])
    full.unlink()
    loop = folder / "loop.png"
    os.symlink(folder / "loop2.png", loop)
    os.symlink(loop, folder / "loop2.png")
    empty = folder / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("no images here")
    return {
        "text": (notes, "cannot open notes.txt"),
        "suffix": (unknown, "cannot open data.xyz"),
        "corrupt": (corrupt, "broken.jpg"),
        "huge": (huge, "Mpx"),
        "truncated video": (cut, "cut.mp4"),
        "symlink loop": (loop, "loop.png"),
        "empty folder": (empty, "holds no images"),
    }


def test_every_kind_of_bad_input_gets_a_message_and_the_window_takes_the_next(
    qtbot, window, tmp_path, image_file
):
    import time

    cases = bad_inputs(tmp_path / "bad")
    for name, (path, needle) in cases.items():
        t0 = time.perf_counter()
        drop(window, [path])
        qtbot.waitUntil(lambda n=needle: any(n in p for p in problems(window)), timeout=WAIT)
        wait_idle(qtbot, window)
        assert time.perf_counter() - t0 < 20, name  # the 150-Mpx header is refused from the header
        assert window.state.image is None, name
        # the next (good) drop clears what the bad one said, and opens
        drop(window, [image_file])
        qtbot.waitUntil(lambda: window.state.image is not None, timeout=WAIT)
        wait_idle(qtbot, window)
        assert not window.message_bar.isVisible(), (name, bar(window))
        window.state.set_image(None)
    huge = next(m.text for m in window.state.messages.log if "huge.png" in m.text)
    assert "150" in huge and "Mpx" in huge  # its size, said from the header, never decoded
    log = " ".join(m.text for m in window.state.messages.log)
    assert "internal error" not in log and all(needle in log for _, needle in cases.values())


def test_several_files_dropped_at_once_open_the_good_and_keep_the_errors(qtbot, window, tmp_path, image_file):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    empty = tmp_path / "empty"
    empty.mkdir()
    drop(window, [notes, tmp_path / "missing.png", empty, image_file])
    qtbot.waitUntil(lambda: window.state.image is not None, timeout=WAIT)
    wait_idle(qtbot, window)
    assert window.state.image.shape == (48, 64, 3)
    assert window.state.last_message[0].startswith("opened scene.png")
    text = bar(window)
    assert "notes.txt" in text and "missing.png does not exist" in text and "holds no images" in text
    assert len(problems(window)) == 3


def test_a_one_frame_video_shows_and_plays_its_frame(qtbot, window, tiny_detr, tmp_path):
    video = write_video(tmp_path / "one.mp4", 1)
    window.state.threshold = 0.0
    window.state.resize = 64
    window.state.openRequested.emit([str(tiny_detr), str(video)])
    qtbot.waitUntil(lambda: window.state.trace is not None and window.state.video_frames == 1, timeout=WAIT)
    wait_idle(qtbot, window)
    from relviz.core.video import VideoReader

    with VideoReader(video) as reader:
        np.testing.assert_array_equal(window.state.image, reader.read(0))
    timeline = window.timeline_panel
    assert timeline.isEnabled() and timeline.slider.maximum() == 0 and "frame 0 / 0" in timeline.label.text()
    assert window.state.trace.meta["input"]["frame"] == 0 and len(window.state.trace["detections/boxes"]) == 6
    timeline.play.click()
    qtbot.waitUntil(lambda: not window.state.playing, timeout=WAIT)
    timeline.fwd.click()
    timeline.back.click()
    wait_idle(qtbot, window)
    assert window.state.sel.frame == 0 and problems(window) == []


# -- precision choices -------------------------------------------------------------------------------


def zoo_into(window, info):
    st = window.state
    st.zoo, st.devices = info["zoo"], info["devices"]
    st.precisions_by_device, st.precisions_by_family = info["precisions"], info["family_precisions"]
    st.zooChanged.emit()


def pick(window, name):
    combo = window.model_panel.zoo
    combo.setCurrentIndex(combo.findData(name))


class _Ctx:
    def progress(self, *a):
        pass


def test_the_precision_combo_offers_what_the_family_supports(qtbot, window, monkeypatch):
    from relviz import zoo

    def supported(self, device):
        if self.name == "relation":
            return ["fp32"]
        return ["fp32", "fp16", "bf16"] if device.type == "cuda" else ["bf16", "fp32"]

    for fam in zoo.families().values():
        monkeypatch.setattr(type(fam), "supported_precisions", supported, raising=False)
    zoo_into(window, ctl._zoo_listing(_Ctx()))
    window.model_panel.device.setCurrentText("cpu")
    pick(window, "demo-relation")
    assert window.model_panel.precision_options() == ["fp32"]
    pick(window, "demo-lrnet")
    assert window.model_panel.precision_options() == ["fp32", "bf16"]  # fp32 first
    window.model_panel.precision.setCurrentText("bf16")
    pick(window, "demo-relation")  # a choice the family cannot run falls back to fp32
    assert window.model_panel.precision_options() == ["fp32"] and window.model_panel.choice()["precision"] == "fp32"
    # a checkpoint not yet read: only what every family runs on the device
    window.model_panel._checkpoint = "/somewhere/unknown.pth"
    window.model_panel._on_zoo()
    window.model_panel.weights.setCurrentIndex(window.model_panel.weights.count() - 1)
    assert window.model_panel.precision_options() == ["fp32"]


def test_without_a_family_answer_the_device_decides(qtbot, window, monkeypatch):
    from relviz import zoo
    from relviz.core.devices import supported_precisions

    for fam in zoo.families().values():  # a zoo whose families do not say
        monkeypatch.setattr(type(fam), "supported_precisions", None, raising=False)
    assert ctl.family_precisions(object(), torch.device("cpu"), ["fp32", "bf16"]) == ["fp32", "bf16"]
    zoo_into(window, ctl._zoo_listing(_Ctx()))
    window.model_panel.device.setCurrentText("cpu")
    pick(window, "demo-relation")
    assert window.model_panel.precision_options() == supported_precisions(torch.device("cpu"))


def test_the_relation_detector_offers_no_bf16_on_the_cpu(qtbot, window):
    from relviz import zoo

    zoo_into(window, ctl._zoo_listing(_Ctx()))
    window.model_panel.device.setCurrentText("cpu")
    pick(window, "demo-relation")
    offered = window.model_panel.precision_options()
    assert "bf16" not in offered and offered[0] == "fp32"
    assert set(offered) == set(zoo.get_family("relation").supported_precisions(torch.device("cpu")))


# -- internal errors ---------------------------------------------------------------------------------


def test_a_worker_bug_says_internal_error_and_where_the_report_is(qtbot, window, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def boom(ctx):
        raise KeyError("a worker bug for the report test")

    window.controller._start("testing the report", boom, pool="io")
    qtbot.waitUntil(lambda: "internal error" in bar(window), timeout=WAIT)
    text = problems(window)[-1]
    assert text.startswith("internal error while testing the report: KeyError")
    report = Path(text.split("the full report is in ")[1].rstrip(")"))
    assert report.parent == tmp_path / "cache" / "relviz" and report.is_file()
    body = report.read_text()
    assert "Traceback" in body and "in boom" in body and "a worker bug for the report test" in body
    # the app goes on: the next task runs and its result arrives
    window.controller._start("next", lambda ctx: 7, pool="io", done=lambda v: window.state.info(f"got {v}"))
    qtbot.waitUntil(lambda: window.state.last_message[0] == "got 7", timeout=WAIT)
    wait_idle(qtbot, window)


def test_a_bug_in_a_result_callback_ends_the_task_as_failed(qtbot, window, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    uninstall = crash.install_excepthook(lambda line: window.state.info(line, "error"))
    try:
        failed = []

        def bad_done(value):
            raise RuntimeError("a bug while showing a result")

        window.controller._start("showing", lambda ctx: 1, pool="io", done=bad_done, failed=failed.append)
        qtbot.waitUntil(lambda: bool(failed), timeout=WAIT)
        wait_idle(qtbot, window)
    finally:
        uninstall()
    assert "internal error while showing the result of showing: RuntimeError" in failed[0]
    shown = [p for p in problems(window) if "a bug while showing a result" in p]
    assert len(shown) == 1 and "report is in" in shown[0]
    logged = [m for m in window.state.messages.log if "a bug while showing a result" in m.text]
    assert len(logged) == 1  # reported once, not again by the excepthook


def test_a_bug_in_a_slot_on_the_ui_thread_is_shown_and_the_app_lives(qtbot, window, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    uninstall = crash.install_excepthook(lambda line: window.state.info(line, "error"))
    try:

        def slot():
            raise ZeroDivisionError("a slot bug")

        QTimer.singleShot(0, slot)
        qtbot.waitUntil(lambda: "internal error" in bar(window), timeout=WAIT)
    finally:
        uninstall()
    text = problems(window)[-1]
    assert "ZeroDivisionError: a slot bug" in text
    report = Path(text.split("the full report is in ")[1].rstrip(")"))
    assert report.is_file() and "a slot bug" in report.read_text()
    assert sys.excepthook is not None and window.isVisible()
    window.state.info("still here")
    assert window.status_text.text() == "still here"
