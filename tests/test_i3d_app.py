"""The application with an mmaction2 I3D non-local checkpoint: drop the ``.pth`` and a video, and the
clip follows the timeline (a sliding clip around every frame)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

pytestmark = pytest.mark.gui
DATA = Path(__file__).parent / "data" / "i3d"
WAIT = 90_000


def drop(widget, path: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    enter = QDragEnterEvent(QPoint(40, 40), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(widget, QDropEvent(QPointF(40, 40), Qt.DropAction.CopyAction, mime,
                                              Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))


def test_dropping_the_checkpoint_and_a_video_runs_a_sliding_clip(qtbot, window, tmp_path):
    from relviz.core.video import VideoReader

    frames = np.load(DATA / "clip.npz")["frames"][:10]
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 8, (frames.shape[2], frames.shape[1]))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    st = window.state
    st.resize = 0  # the frames as they are
    window.controller.clip_length = 6  # shorter than the video: the clip slides
    drop(window, DATA / "i3d_nl_embedded_gaussian.pth")
    qtbot.waitUntil(lambda: window.controller.loaded is not None, timeout=WAIT)
    assert window.controller.loaded.config["arch"] == "i3d"
    drop(window, video)
    qtbot.waitUntil(lambda: st.trace is not None and st.video_frames == 10 and window.controller.idle(), timeout=WAIT)
    with VideoReader(video) as reader:
        decoded = [reader.frame(i) for i in range(10)]
    for t in (0, 4, 9):
        st.select(frame=t)
        qtbot.waitUntil(lambda t=t: window.controller.idle() and st.trace.meta["input"].get("shown_frame") == t,
                        timeout=WAIT)
        start = min(max(t - 3, 0), 10 - 6)
        assert st.trace.meta["input"]["frame_indices"] == list(range(start, start + 6))
        assert st.trace.meta["nonlocal"]["mode"] == "embedded_gaussian"
        assert st.trace.meta["labels"][0] == "action 0"
        np.testing.assert_array_equal(window.canvas.image_item.image, decoded[t])
        assert window.canvas.last_heat is not None and np.isfinite(window.canvas.last_heat).all()
    assert not st.messages.problems, [p.text for p in st.messages.problems]
