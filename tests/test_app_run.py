"""The application with a real (tiny, random-weight) DETR: video following, video export, cancel,
GPU out-of-memory fallback, and the real ``relviz`` command's screenshot mode."""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from relviz import pipeline

ROOT = Path(__file__).resolve().parents[1]
WAIT = 90_000


def write_video(path, frames=6, size=(64, 48)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, size)
    for i in range(frames):
        frame = np.full((size[1], size[0], 3), 60, np.uint8)
        frame[10:30, 4 + 6 * i : 24 + 6 * i] = (0, 200, 255)
        writer.write(frame)
    writer.release()
    return path


def load(qtbot, window, ckpt):
    window.state.threshold = 0.0  # random weights: every query becomes a detection
    window.state.resize = 64  # a small input keeps the test quick
    window.state.openRequested.emit([str(ckpt)])
    qtbot.waitUntil(lambda: window.controller.loaded is not None, timeout=WAIT)


def test_video_runs_per_frame_and_the_selection_follows_the_query(qtbot, window, tiny_detr, tmp_path):
    load(qtbot, window, tiny_detr)
    window.state.openRequested.emit([str(write_video(tmp_path / "clip.mp4"))])
    qtbot.waitUntil(lambda: window.state.trace is not None and window.state.video_frames == 6, timeout=WAIT)
    trace0 = window.state.trace
    assert trace0.meta["input"]["frame"] == 0 and trace0.meta["input"]["kind"] == "video"
    window.state.select(object=3)
    query = int(trace0["detections/query"][3])
    window.timeline_panel.fwd.click()
    qtbot.waitUntil(lambda: window.state.trace.meta["input"]["frame"] == 1, timeout=WAIT)
    trace1 = window.state.trace
    assert int(trace1["detections/query"][window.state.sel.object]) == query
    assert window.objects_panel.table.rowCount() == len(trace1["detections/boxes"])


def test_export_video_with_overlays_writes_every_frame(qtbot, window, tiny_detr, tmp_path):
    load(qtbot, window, tiny_detr)
    video = write_video(tmp_path / "clip.mp4", frames=4)
    window.state.openRequested.emit([str(video)])
    qtbot.waitUntil(lambda: window.state.trace is not None, timeout=WAIT)
    out = tmp_path / "out.mp4"
    window.state.exportRequested.emit("video", {"path": str(out)})
    qtbot.waitUntil(lambda: out.is_file() and "wrote" in window.state.last_message[0], timeout=WAIT)
    cap = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 4 and frames[0].shape == (48, 64, 3)
    raw = cv2.VideoCapture(str(video)).read()[1]
    assert np.abs(frames[0].astype(int) - raw.astype(int)).mean() > 5  # boxes and heatmap drawn over it
    assert not [p for p in os.listdir(tmp_path) if ".part" in p]


def test_cancelling_an_export_leaves_no_file(qtbot, window, tiny_detr, tmp_path):
    load(qtbot, window, tiny_detr)
    video = write_video(tmp_path / "long.mp4", frames=40)
    window.state.openRequested.emit([str(video)])
    qtbot.waitUntil(lambda: window.state.trace is not None, timeout=WAIT)
    out = tmp_path / "never.mp4"
    window.state.exportRequested.emit("video", {"path": str(out)})
    qtbot.waitUntil(lambda: window.state.busy, timeout=WAIT)
    window.model_panel.cancel.click()
    qtbot.waitUntil(lambda: "cancelled" in window.state.last_message[0], timeout=WAIT)
    qtbot.waitUntil(lambda: window.controller.idle(), timeout=WAIT)
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if ".part" in p]


class _ExportCtx:
    """What a worker hands the export: progress (here: what the folder holds meanwhile), notes, cancel."""

    def __init__(self, folder):
        self.folder = folder
        self.seen: list[set[str]] = []
        self.cancelled = False

    def progress(self, *a):
        self.seen.append({p for p in os.listdir(self.folder) if p.startswith(".")})

    def note(self, text, level="warning"):
        pass

    def check(self):
        pass


def test_a_video_export_writes_through_relviz_temporary_names_for_any_file_name(tiny_detr, tmp_path):
    from relviz import zoo
    from relviz.app import exporting
    from relviz.app.state import Selection
    from relviz.core.atomic import TEMP_PATTERN

    loaded = zoo.load_model(weights=str(tiny_detr), device="cpu")
    video = write_video(tmp_path / "clip.mp4", frames=3)
    folder = tmp_path / "out"
    folder.mkdir()
    stale = folder / ".relviz-tmp-0123456789-abcdefgh.part.mp4"  # left by a run killed two hours ago
    stale.write_bytes(b"half a video")
    os.utime(stale, (stale.stat().st_mtime - 7200,) * 2)
    out = folder / ("v" * 251 + ".mp4")  # 255 bytes: no room for a longer temporary name beside it
    ctx = _ExportCtx(folder)
    wrote = exporting.export_video(ctx, str(video), str(out), loaded, pipeline.RunChoice(0.0, 64), Selection(), {})
    assert wrote == str(out) and cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FRAME_COUNT) == 3
    temps = set().union(*ctx.seen[1:])  # while frames were written
    assert temps and all(TEMP_PATTERN.fullmatch(name) and name.endswith(".part.mp4") for name in temps)
    assert not stale.exists()  # the next write into the folder swept it
    assert sorted(os.listdir(folder)) == [out.name]


class _Ctx:
    def __init__(self):
        self.notes = []

    def progress(self, *a):
        pass

    def note(self, text, level="warning"):
        self.notes.append(text)


def test_gpu_out_of_memory_falls_back_to_cpu_with_a_message(monkeypatch, tiny_detr, tmp_path):
    from relviz import zoo

    loaded = zoo.load_model(weights=str(tiny_detr), device="cpu")
    loaded.device = torch.device("cuda", 0)  # pretend it sits on a GPU that is full
    calls = []
    real_run = zoo.run_model

    def run_model(model, path, options=None):
        calls.append(str(model.device))
        if model.device.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_run(model, path, options)

    monkeypatch.setattr(zoo, "run_model", run_model)
    image = tmp_path / "img.png"
    Image.fromarray(np.full((40, 50, 3), 128, np.uint8)).save(image)
    ctx = _Ctx()
    trace = pipeline.run_image(ctx, loaded, str(image), pipeline.RunChoice(0.0, 64))
    assert calls == ["cuda:0", "cpu"]
    assert loaded.device.type == "cpu" and "fell back to the CPU" in ctx.notes[0]
    assert len(trace["detections/boxes"]) == 6


def test_the_relviz_command_saves_a_screenshot_and_exits_0(tmp_path, tiny_detr):
    image = tmp_path / "scene.png"
    scene = np.full((60, 80, 3), 200, np.uint8)
    scene[10:40, 10:50] = (230, 20, 20)
    Image.fromarray(scene).save(image)
    out = tmp_path / "shot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "relviz", "--screenshot", str(out), str(tiny_detr), str(image)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    shot = Image.open(out)
    assert shot.size[0] >= 800 and shot.size[1] >= 500
    # the window shows the image, not only the empty placeholder: its red square is on the canvas
    px = np.asarray(shot.convert("RGB")).astype(int)
    red = (px[..., 0] > 150) & (px[..., 1] < 90) & (px[..., 2] < 90)
    assert red.sum() > 5000


def test_without_a_display_the_command_says_so(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.run(
        [sys.executable, "-m", "relviz"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and "no display" in proc.stderr


def test_real_lrnet_and_nonlocal_traces_light_up_their_panels(qtbot, window, tmp_path):
    from relviz.views.lrnet import pixel_kernels
    from relviz.zoo import load_model, run_model

    image = tmp_path / "img.png"
    scene = np.full((48, 64, 3), 120, np.uint8)
    scene[8:30, 10:40] = (200, 30, 30)
    Image.fromarray(scene).save(image)
    lr = run_model(load_model("lrnet-26", weights="none", overrides={"preset": "tiny"}), image)
    nl = run_model(load_model("nonlocal-r50", weights="none", overrides={"preset": "tiny"}), image)
    lr.save(tmp_path / "lr.npz")
    nl.save(tmp_path / "nl.npz")

    window.state.openRequested.emit([str(tmp_path / "lr.npz")])
    qtbot.waitUntil(lambda: window.state.trace is not None and window.state.trace.family == "lrnet", timeout=WAIT)
    src = window.state.current_source()
    assert src.key == "lrnet" and src.layers[0] == "stem"
    window.canvas.click_at(30.0, 20.0)
    window.state.select(layer=1, head=2)
    pk = pixel_kernels(lr, src.layers[1], 30.0, 20.0)
    # the canvas shows group 2's k×k kernel at the clicked pixel, its cells the kernel's
    np.testing.assert_allclose(window.canvas.last_heat, pk.weight[2], rtol=1e-6)
    classes = window.objects_panel.classes
    assert classes.isVisible() and len(classes.text().splitlines()) == 5  # the classifier's top 5, by name
    # the term switch in the Attention panel: ω_A, the appearance term, at the same window
    qtbot.wait(5)
    combo = window.attention_panel.term
    assert [combo.itemData(i) for i in range(combo.count())] == ["weight", "appearance", "geometry"]
    combo.setCurrentIndex(1)
    assert window.state.sel.term == "appearance"
    np.testing.assert_allclose(window.canvas.last_heat, pk.appearance[2], rtol=1e-6, equal_nan=True)
    window.docks["Geometry"].raise_()
    qtbot.waitUntil(lambda: "lrnet" in window.geometry_panel.shown)

    window.state.openRequested.emit([str(tmp_path / "nl.npz")])
    qtbot.waitUntil(lambda: window.state.trace.family == "nonlocal", timeout=WAIT)
    window.state.select(layer=-1, point=(50.0, 40.0))
    block = window.state.current_source().layers[-1]
    info = nl.meta["nonlocal"]["blocks"][block]
    from relviz.core.grid import Grid

    cell = Grid.from_json(info["query_grid"]).cell_of_point(50.0, 40.0)
    np.testing.assert_allclose(window.canvas.last_heat.ravel(), nl.rows(f"nonlocal/{block}/attn", cell), rtol=1e-6)


RELATION_TINY = {
    "backbone": "resnet18", "fpn_channels": 32, "min_size": 96, "max_size": 128, "proposals": 12,
    "rpn_pre_nms_top_n_test": 50, "representation": 32, "key_dim": 32, "heads": 4, "geo_dim": 16,
    "first_n": 6, "nms_rank_dim": 16, "nms_key_dim": 16, "nms_embed": 8, "num_classes": 3,
    "score_thresh": 0.0, "norm": "batch",
}  # fmt: skip


def _run_family(name, config, image):
    from relviz import zoo

    fam = zoo.get_family(name)
    cfg = {**fam.default_config(), **config}
    torch.manual_seed(0)
    loaded = zoo.LoadedModel(fam, "tiny", fam.build(cfg).eval(), cfg, torch.device("cpu"), torch.float32)
    source = {"path": "memory", "kind": "image", "frame": 0, "size": [image.shape[1], image.shape[0]]}
    with torch.inference_mode():
        return fam.run(loaded, [image], source, zoo.RunOptions(threshold=0.0))


def test_real_relation_and_region_traces_drive_the_panels(qtbot, window, tmp_path):
    from relviz.views.geometry import omega_g

    image = np.full((96, 128, 3), 190, np.uint8)
    image[10:50, 15:60] = (220, 40, 40)
    image[55:90, 70:120] = (40, 40, 220)
    rel = _run_family("relation", RELATION_TINY, image)
    rel.save(tmp_path / "rel.npz")
    window.state.openRequested.emit([str(tmp_path / "rel.npz")])
    qtbot.waitUntil(lambda: window.state.trace is not None and window.state.trace.family == "relation", timeout=WAIT)
    assert window.state.sel.module == "fc1"
    det = 3
    window.state.select(object=det, head=None, term="weight")
    panel = window.relations_panel
    assert panel.row_box.rect().y() == det  # the matrix is over the detections, row i = detection i
    props = np.asarray(rel["detections/proposal"])
    mean = rel["relation/fc1/weight"].mean(axis=0)
    np.testing.assert_allclose(panel.rel.matrix, mean[np.ix_(props, props)], rtol=1e-6)
    box = rel["detections/boxes"][det]  # drawn where the canvas draws the detection
    centre = [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]
    arrows = window.canvas.overlay.arrows
    assert len(arrows) and np.allclose(arrows[:, 2:], centre)
    # the geometry landscape is ω_G from W_G at boxes of the object's size
    window.state.select(term="geometry", head=1)
    land = window.geometry_panel.landscape
    assert land is not None
    w, h = rel.image_size
    cols, rows = land.shape[1], land.shape[0]
    cx, cy = (0 + 0.5) * w / cols, (0 + 0.5) * h / rows
    bw, bh = box[2] - box[0], box[3] - box[1]
    expected = omega_g(rel, "fc1", box, np.array([[cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]]))[1, 0]
    assert land[0, 0] == pytest.approx(expected, rel=1e-5)

    region_cfg = {"backbone": "resnet18", "fpn_channels": 32, "min_size": 96, "max_size": 128, "proposals": 8,
                  "rpn_pre_nms_top_n_test": 50, "representation": 32, "num_classes": 3, "score_thresh": 0.0,
                  "samples": 4, "parts": 2, "region_geo_dim": 16, "norm": "batch"}  # fmt: skip
    reg = _run_family("regionfeat", region_cfg, image)
    reg.save(tmp_path / "region.npz")
    window.state.openRequested.emit([str(tmp_path / "region.npz")])
    qtbot.waitUntil(lambda: window.state.trace.family == "regionfeat", timeout=WAIT)
    window.state.select(object=1, head=None, term="weight")
    r = int(reg["detections/region_row"][1])
    qtbot.wait(5)
    # the parts' weights drawn as the cells of the sampling lattice: each sample position's cell holds its w_k
    m = window.attention_panel.map
    weights, positions = reg["region/weight"][r], reg["region/positions"][r]
    rows, cols = m.cells
    x0, y0, x1, y1 = m.rect
    for p, (x, y) in enumerate(positions):
        i = min(int((y - y0) / (y1 - y0) * rows), rows - 1)
        j = min(int((x - x0) / (x1 - x0) * cols), cols - 1)
        np.testing.assert_allclose(m.values[:, i, j], weights[:, p], rtol=1e-6)
        assert window.canvas.last_heat[i, j] == pytest.approx(weights[:, p].mean(), rel=1e-6)
    assert "region" in window.geometry_panel.shown


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="needs xvfb-run (CI installs it: .ci/run)")
def test_the_real_window_under_xvfb(tmp_path, tiny_detr):
    image = tmp_path / "scene.png"
    scene = np.full((60, 80, 3), 200, np.uint8)
    scene[10:40, 10:50] = (230, 20, 20)
    Image.fromarray(scene).save(image)
    out = tmp_path / "xvfb.png"
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env["HOME"] = str(tmp_path)
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", "env", "QT_QPA_PLATFORM=xcb", sys.executable, "-m",
           "relviz", "--screenshot", str(out), str(tiny_detr), str(image)]  # fmt: skip
    # its own session, so a timeout ends Xvfb and relviz too (they hold the pipes; killing xvfb-run alone would
    # leave communicate() waiting on them)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate()
        pytest.fail(f"relviz under Xvfb gave no screenshot within 180 s: {stderr[-2000:]}")
    assert proc.returncode == 0, stderr
    px = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert ((px[..., 0] > 150) & (px[..., 1] < 90) & (px[..., 2] < 90)).sum() > 5000


def load_bundled(qtbot, window, name):
    window.state.loadModelRequested.emit({"name": name, "weights": "bundled", "device": "cpu", "precision": "fp32"})
    qtbot.waitUntil(lambda: window.controller.loaded is not None and window.controller.loaded.name == name,
                    timeout=WAIT)


def test_a_clip_model_shows_every_frame_of_the_bundled_clip(qtbot, window):
    from relviz.core.video import VideoReader

    clip = ROOT / "resources" / "clip-0.mp4"
    load_bundled(qtbot, window, "demo-nonlocal-clip")
    window.state.openRequested.emit([str(clip)])
    qtbot.waitUntil(lambda: window.state.trace is not None and window.controller.idle(), timeout=WAIT)
    st = window.state
    n = st.video_frames
    assert n == 16
    with VideoReader(clip) as reader:
        decoded = [reader.frame(i) for i in range(n)]
    for t in range(n):
        st.select(frame=t)
        qtbot.waitUntil(
            lambda t=t: window.controller.idle() and st.trace.meta["input"].get("shown_frame") == t, timeout=WAIT
        )
        start = min(max(t - 4, 0), n - 8)  # the 8-frame clip that covers frame t
        assert st.trace.meta["input"]["frame_indices"] == list(range(start, start + 8))
        np.testing.assert_array_equal(st.image, decoded[t])
        np.testing.assert_array_equal(window.canvas.image_item.image, decoded[t])  # the frame on the canvas
        assert window.timeline_panel.label.text().startswith(f"frame {t} / 15")
        assert window.timeline_panel.shown_label.text() == f"clip {start}–{start + 7}"
        assert window.canvas.last_heat is not None and np.isfinite(window.canvas.last_heat).all()
    assert not st.messages.problems, [p.text for p in st.messages.problems]
    # playing from the start runs to the last frame, without an error
    st.select(frame=0)
    qtbot.waitUntil(lambda: window.controller.idle() and st.trace.meta["input"].get("shown_frame") == 0, timeout=WAIT)
    st.playRequested.emit(True)
    qtbot.waitUntil(lambda: not st.playing, timeout=WAIT)
    qtbot.waitUntil(lambda: window.controller.idle(), timeout=WAIT)
    assert st.sel.frame == 15 and not st.messages.problems
    np.testing.assert_array_equal(window.canvas.image_item.image, decoded[st.trace.meta["input"]["shown_frame"]])


def test_demo_relation_after_a_non_local_model_starts_on_its_strongest_object(qtbot, window):
    scene = ROOT / "resources" / "scene-0.png"
    load_bundled(qtbot, window, "demo-nonlocal")
    window.state.openRequested.emit([str(scene)])
    qtbot.waitUntil(lambda: window.state.trace is not None and window.state.trace.family == "nonlocal", timeout=WAIT)
    assert window.state.sel.point is not None and window.state.sel.object is None
    assert not window.docks["Relations"].isVisible()  # nothing for a classifier there
    load_bundled(qtbot, window, "demo-relation")
    qtbot.waitUntil(lambda: window.state.trace.family == "relation" and window.controller.idle(), timeout=WAIT)
    st = window.state
    assert st.sel.object == 0 and st.sel.point is None
    assert window.docks["Relations"].isVisible()
    assert window.canvas.marker.data.size == 0  # no point marker over a detector's objects
    window.docks["Geometry"].raise_()
    qtbot.waitUntil(lambda: "relation" in window.geometry_panel.shown)
    assert "no geometry terms" not in window.geometry_panel.info.text()
