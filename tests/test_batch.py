"""``relviz batch`` end to end on generated scenes: traces, manifest and statistics; a killed run resumes without
redoing finished items; bad input is refused before any work; per-item failures are recorded and counted in the
exit code; two gloo processes under torchrun give the single process's statistics."""

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from relviz.batch import manifest
from relviz.batch.command import failed_exit_code
from relviz.batch.inputs import list_inputs
from relviz.batch.progress import Progress
from relviz.batch.runner import BatchOptions, _state_path, run_batch
from relviz.cli import main
from relviz.core.trace import Trace

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Four generated scenes (the demo detectors' data) and their COCO json."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from batch_scenes import write_scenes

    folder = tmp_path_factory.mktemp("scenes")
    write_scenes(folder, 4, seed=11)
    return folder


def options(inputs, out, **kw):
    return BatchOptions(inputs=str(inputs), out=Path(out), model="demo-relation", device="cpu", **kw)


def test_inputs_folder_glob_list_and_coco_name_the_same_files(scenes, tmp_path):
    names = [f.name for f in list_inputs(str(scenes)).files]
    assert names == [f"scene-{i:05d}.png" for i in range(4)]
    assert [f.name for f in list_inputs(str(scenes / "scene-*.png")).files] == names
    (tmp_path / "list.txt").write_text("# scenes\n" + "\n".join(str(scenes / n) for n in reversed(names)) + "\n\n")
    assert [f.name for f in list_inputs(str(tmp_path / "list.txt")).files] == names
    coco = list_inputs(str(scenes / "coco.json"))
    assert [f.name for f in coco.files] == names and coco.categories == ["circle", "square", "triangle", "odd"]
    # a file outside the set's root is named by its whole path: outputs named after it stay inside --out
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "c.json").write_text(json.dumps({"images": [{"file_name": f"../{names[0]}"}]}))
    (scenes / "sub").mkdir(exist_ok=True)
    escaping = list_inputs(str(tmp_path / "ann" / "c.json"), image_root=str(scenes / "sub"))
    assert ".." not in escaping.files[0].name and escaping.files[0].path == scenes / names[0]


def test_videos_expand_frame_by_frame_or_clip_by_clip():
    from relviz.batch.inputs import InputFile, expand

    files = [InputFile(Path("/d/a.png"), "a.png", "image"), InputFile(Path("/d/v.mp4"), "v.mp4", "video")]
    frames = expand(files, "image", 1, 3, {Path("/d/v.mp4"): 10})
    assert [(i.key, i.frame) for i in frames] == [("a.png", None), ("v.mp4#f0", 0), ("v.mp4#f3", 3),
                                                   ("v.mp4#f6", 6), ("v.mp4#f9", 9)]
    assert frames[2].stem == "v.mp4.f000003"
    clips = expand(files, "clip", 4, None, {Path("/d/v.mp4"): 10})
    # back to back, the last clip ending at the last frame; an image is a still clip of the clip's length
    assert [(i.key, i.frame, i.clip_length) for i in clips] == [("a.png", None, 4), ("v.mp4#f0", 0, 4),
                                                                 ("v.mp4#f4", 4, 4), ("v.mp4#f6", 6, 4)]
    assert [i.key for i in expand(files, "clip", 8, None, {Path("/d/v.mp4"): 0})] == ["a.png", "v.mp4#f0"]


@pytest.mark.parametrize("make, pattern", [
    (lambda d: d / "missing", "does not exist"),
    (lambda d: (d / "empty").mkdir() or d / "empty", "holds no images or videos"),
    (lambda d: (d / "bad.json").write_text("{not json") and d / "bad.json", "is not valid JSON"),
    (lambda d: (d / "x.json").write_text('{"images": [{"file_name": "gone.png"}], "categories": []}')
     and d / "x.json", "1 of the 1 files .* do not exist"),
    (lambda d: (d / "l.txt").write_text("gone.png\n") and d / "l.txt", "do not exist"),
    (lambda d: d / "nothing-*.png", "matches no files"),
])
def test_bad_input_sets_exit_2_before_any_work(tmp_path, capsys, make, pattern):
    inputs = make(tmp_path)
    out = tmp_path / "out"
    assert main(["batch", "--model", "demo-relation", "--inputs", str(inputs), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("relviz: error: ") and "\n" not in err and "Traceback" not in err
    import re

    assert re.search(pattern, err), err
    assert not out.exists()  # nothing was written


def test_model_and_input_mismatch_exit_2_before_any_work(scenes, tmp_path, capsys):
    coco = json.loads((scenes / "coco.json").read_text())
    coco["categories"] = [{"id": 1, "name": "person"}]
    (scenes / "person.json").write_text(json.dumps(coco))
    cases = [
        (["--model", "demo-relation", "--inputs", str(scenes / "person.json")],
         "(such as 'person') are not among its classes"),
        (["--model", "demo-lrnet", "--inputs", str(scenes / "coco.json")], "classifier"),
        (["--model", "demo-relation", "--inputs", str(scenes), "--view", "encoder-attention"], "draws detr traces"),
    ]
    for args, text in cases:
        out = tmp_path / f"out{len(text)}"
        assert main(["batch", *args, "--out", str(out), "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert text in err and "Traceback" not in err
        assert not out.exists()  # nothing was written, not even the folder


def _stats(out):
    return json.loads((out / "stats.json").read_text())


def _close(a, b):
    """Two stats.json summaries equal to float32 tolerance (None where both measured nothing)."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a if k != "relviz")
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):  # float32 model outputs: torch's kernels differ with threads
        return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)
    return a == b


@pytest.mark.slow
def test_run_writes_traces_manifest_stats_and_a_killed_run_resumes(scenes, tmp_path):
    whole = tmp_path / "whole"
    result = run_batch(options(scenes, whole, stats=True), stream=io.StringIO())
    assert (result.total, result.done, result.failed, result.ran) == (4, 4, 0, 4)
    lines = [json.loads(line) for line in (whole / "manifest.jsonl").read_text().splitlines()]
    assert [r["key"] for r in lines] == [f"scene-{i:05d}.png" for i in range(4)]
    assert all(r["status"] == "done" and r["error"] is None for r in lines)
    trace = Trace.load(whole / lines[0]["outputs"][0])
    assert trace.family == "relation" and "relation/fc1/weight" in trace
    summary = _stats(whole)
    assert summary["inputs"] == 4 and summary["family"] == "relation"
    assert sum(summary["class_counts"]) == sum(len(Trace.load(whole / r["outputs"][0])["detections/labels"])
                                               for r in lines)
    for name in ("relation-fc1-class-pairs", "relation-fc2-geometry"):
        assert (whole / "stats" / f"{name}.pdf").read_bytes().startswith(b"%PDF-")

    # killed after two items: the statistics part was last saved before them (as after a SIGKILL), and the
    # manifest part ends in half a line
    killed = tmp_path / "killed"

    class Killed(BaseException):
        pass

    def kill_after_two(done, acc):
        if done == 2:
            raise Killed

    with pytest.raises(Killed):
        run_batch(options(scenes, killed, stats=True), stream=io.StringIO(), on_item=kill_after_two)
    part = manifest.part_path(killed, 0)
    with open(part, "ab") as fh:
        fh.write(b'{"key": "scene-00002.png", "sta')
    from relviz.batch.stats import Accumulator

    Accumulator("relation").save(_state_path(killed, 0), {"manifest_bytes": 0})
    finished = {r["key"]: r["time"] for r in manifest.read_records(part)}
    assert len(finished) == 2

    resumed = run_batch(options(scenes, killed, stats=True), stream=io.StringIO())
    assert (resumed.ran, resumed.done, resumed.failed) == (2, 4, 0)  # the two finished items are not run again
    again = {r["key"]: r for r in manifest.read_records(part)}
    assert all(again[k]["time"] == t for k, t in finished.items())
    assert _close(_stats(killed), _stats(whole))  # each item counted once

    rerun = run_batch(options(scenes, killed, stats=True), stream=io.StringIO())
    assert rerun.ran == 0 and rerun.done == 4


@pytest.mark.slow
def test_a_bad_item_is_recorded_and_counted_in_the_exit_code(scenes, tmp_path, capsys):
    folder = tmp_path / "set"
    folder.mkdir()
    for name in ("scene-00000.png", "scene-00001.png"):
        (folder / name).write_bytes((scenes / name).read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    big = np.zeros((8, 400, 3), np.uint8)  # an aspect ratio of 50:1
    cv2.imwrite(str(folder / "strip.png"), big)
    out = tmp_path / "out"
    code = main(["batch", "--model", "demo-relation", "--device", "cpu", "--inputs", str(folder), "--out", str(out),
                 "--no-traces", "--stats"])
    assert code == failed_exit_code(2) == 12
    err = capsys.readouterr().err
    assert "2 of 4 inputs failed" in err and "Traceback" not in err
    records = {r["key"]: r for r in manifest.read_records(out / "manifest.jsonl")}
    assert records["scene-00000.png"]["status"] == "done" and records["scene-00000.png"]["outputs"] == []
    for key in ("broken.png", "strip.png"):
        assert records[key]["status"] == "failed"
        assert records[key]["error"] and "\n" not in records[key]["error"]
    assert "aspect ratio" in records["strip.png"]["error"]
    assert _stats(out)["inputs"] == 2
    assert not list((out / "traces").glob("*.npz"))


def test_progress_lines_in_a_log():
    class Ranks:
        rank, world = 1, 2

    now = [0.0]
    stream = io.StringIO()
    p = Progress(4, stream, Ranks(), clock=lambda: now[0])
    for t, ok in ((5.0, True), (12.0, False), (20.0, True), (30.0, True)):
        now[0] = t
        p.tick(ok)
    p.finish()
    lines = stream.getvalue().splitlines()
    assert lines == ["relviz batch: [rank 1/2] 2/4 items (1 failed), 0.17 items/s, ETA 12s",
                     "relviz batch: [rank 1/2] 4/4 items (1 failed), 0.13 items/s",
                     "relviz batch: [rank 1/2] 4/4 items (1 failed), 0.13 items/s — finished in 30s"]


@pytest.mark.slow
def test_two_gloo_processes_under_torchrun_give_the_single_process_statistics(scenes, tmp_path):
    single = tmp_path / "single"
    run_batch(options(scenes, single, stats=True, traces=False), stream=io.StringIO())
    two = tmp_path / "two"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "relviz", "batch", "--model", "demo-relation", "--device", "cpu", "--inputs", str(scenes),
           "--out", str(two), "--stats", "--no-traces"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, start_new_session=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in (two / "parts").glob("manifest-rank*")) == ["manifest-rank00000.jsonl",
                                                                             "manifest-rank00001.jsonl"]
    ranks = {r["key"]: r["rank"] for r in manifest.read_records(two / "manifest.jsonl")}
    assert sorted(ranks.values()) == [0, 0, 1, 1]
    assert _close(_stats(two), _stats(single))
