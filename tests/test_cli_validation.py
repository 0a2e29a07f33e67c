"""The command line's one schema for options and recipes, its error lines, and files it never loses or overwrites."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from relviz import export
from relviz.cli import main
from relviz.core import atomic, limits

SMALL = ["--model", "detr-r50", "--weights", "none", "--config", "backbone_depth=18", "--config", "hidden_dim=64",
         "--heads", "4", "--config", "enc_layers=2", "--config", "dec_layers=2", "--config", "dim_feedforward=96",
         "--config", "num_queries=8", "--config", "num_classes=5", "--device", "cpu"]
SMALL_CONFIG = {"backbone_depth": 18, "hidden_dim": 64, "nheads": 4, "enc_layers": 2, "dec_layers": 2,
                "dim_feedforward": 96, "num_queries": 8, "num_classes": 5}


@pytest.fixture(autouse=True)
def report_folder(tmp_path_factory, monkeypatch):
    """Internal-error reports of these tests go to a temporary cache folder, not the user's."""
    cache = tmp_path_factory.getbasetemp() / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache / "relviz"


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scene")
    rgb = np.zeros((72, 96, 3), np.uint8)
    rgb[10:40, 10:50] = (220, 40, 40)
    rgb[40:70, 55:90] = (40, 40, 220)
    Image.fromarray(rgb).save(folder / "scene.png")
    assert main(["trace", *SMALL, "--resize", "96", "--threshold", "0", "--input", str(folder / "scene.png"),
                 "--out", str(folder / "scene.npz")]) == 0
    return folder


def refused(capsys, argv, *fragments):
    """Run ``relviz argv``: exit 2 and exactly one line ``relviz: error: ...`` holding every fragment."""
    rc = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("relviz: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def export_args(scene, out, *extra):
    return ["export", "--trace", str(scene / "scene.npz"), "--view", "detections", "--out", str(out), *extra]


@pytest.mark.parametrize("extra,says", [
    (["--dpi", "10000"], "--dpi 10000 is out of range (30..1200)"),
    (["--dpi", "0"], "--dpi 0 is out of range"),
    (["--width", "-1"], "--width -1 is out of range"),
    (["--width", "1e6"], "--width 1e+06 is out of range"),
    (["--height", "nan"], "--height nan must be a finite number"),
    (["--height", "inf"], "--height inf must be a finite number"),
    (["--cmap", "nope"], "--cmap nope is not a matplotlib colormap"),
    (["--point", "1e308,5"], "--point 1e+308,5 is outside any image"),
    (["--point", "nan,1"], "--point nan,1 must be two finite numbers"),
    (["--object", "-1"], "--object -1 is out of range"),
    (["--frame", "-1"], "--frame -1 is out of range"),
    (["--top-k", "0"], "--top-k 0 is out of range (1..1000)"),
    (["--head", "64"], "--head 64 is out of range"),
    (["--head", "first"], "--head first must be 'mean' or a head index"),
    (["--set", "a=[[[[1]]]]"], "--set a=[[[[1]]]] must be a number, a string"),
    (["--set", "a=" + "[" * 30 + "]" * 30], "--set a is nested too deeply"),
    (["--set", "a=NaN"], "--set a=nan must be a finite number"),
    (["--width", "40", "--height", "40", "--dpi", "1200"], "over the limit of 100,000,000"),
])
def test_view_options_are_refused_in_one_sentence_naming_the_option(scene, tmp_path, capsys, extra, says):
    refused(capsys, export_args(scene, tmp_path / "f.png", *extra), says)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("extra", [["--width", "40", "--height", "30", "--dpi", "600"],
                                   ["--width", "40", "--dpi", "1200"]])
def test_vector_figures_have_the_same_pixel_bound(scene, tmp_path, capsys, extra):
    """PDF and SVG embed heatmaps as rasters at the DPI: as costly as a PNG of that size."""
    refused(capsys, export_args(scene, tmp_path / "f.pdf", *extra), "over the limit of 100,000,000", "--dpi")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("extra,says", [
    (["--resize", "-1"], "--resize -1 is out of range"),
    (["--resize", "100000"], "--resize 100000 is out of range"),
    (["--resize", "8"], "--resize 8 is out of range"),
    (["--clip-length", "0"], "--clip-length 0 is out of range (1..256)"),
    (["--clip-length", str(10**6)], "--clip-length 1000000 is out of range"),
    (["--stride", "0"], "--stride 0 is out of range (1..64)"),
    (["--heads", "0"], "--heads 0 is out of range (1..64)"),
    (["--heads", "1000"], "--heads 1000 is out of range"),
    (["--config", "nheads=-3"], "--config nheads=-3 is out of range"),
    (["--threshold", "2"], "--threshold 2 is out of range (0..1)"),
    (["--threshold", "nan"], "--threshold nan must be a finite number"),
    (["--seed", "-1"], "--seed -1 is out of range"),
    (["--device", "gpu"], "--device gpu must be auto, cpu"),
    (["--config", "a=" + "[" * 40 + "1" + "]" * 40], "--config a is nested too deeply"),
    (["--config", "a=" + "1" * 300], "longer than 256 characters"),
    (["--max-pixels", "0"], "--max-pixels 0 is out of range"),
])
def test_model_options_are_refused_before_any_model_is_built(scene, tmp_path, capsys, monkeypatch, extra, says):
    monkeypatch.setattr(export, "run_source", lambda source: pytest.fail("the model ran"))
    refused(capsys, ["trace", "--model", "detr-r50", "--weights", "none", "--input", str(scene / "scene.png"),
                     "--out", str(tmp_path / "t.npz"), *extra], says)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv,says", [
    (["export", "--nope"], "unrecognized arguments: --nope"),
    (["export", "--dpi", "1e3"], "argument --dpi: invalid int value"),
    (["export", "--term", "colour"], "argument --term: invalid choice"),
    (["export", "--point", "1,2,3"], "expected X,Y"),
    (["export", "--config", "junk"], "expected KEY=VALUE"),
    (["trace", "--model", "demo-lrnet"], "the following arguments are required"),
])
def test_argparse_refusals_are_one_line(capsys, argv, says):
    refused(capsys, argv, says)


def test_a_valid_export_still_works_at_the_edges_of_every_range(scene, tmp_path, capsys):
    out = tmp_path / "edge.png"
    assert main(export_args(scene, out, "--dpi", "30", "--width", "0.5", "--height", "40", "--top-k", "1000",
                            "--cmap", "gray", "--object", "0", "--head", "63")) == 0
    with Image.open(out) as im:
        assert im.size == (15, 1200)
    recipe = json.loads((tmp_path / "edge.recipe.json").read_text())
    assert recipe["options"]["head"] == "63" and recipe["dpi"] == 30


# -- recipe files ---------------------------------------------------------------------------------


@pytest.fixture
def recipe_file(scene, tmp_path):
    assert main(export_args(scene, tmp_path / "fig.png", "--dpi", "40")) == 0
    return tmp_path / "fig.recipe.json"


def rewrite(recipe_file, change):
    data = json.loads(recipe_file.read_text())
    change(data)
    path = recipe_file.with_name("edited.json")
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("change,says", [
    (lambda r: r.update(dpi="300"), "recipe field dpi must be an integer"),
    (lambda r: r.update(dpi=[300]), "recipe field dpi must be an integer"),
    (lambda r: r.update(dpi=10**40), "recipe field dpi is out of range"),
    (lambda r: r["options"].update(width="wide"), "recipe field options.width must be a number"),
    (lambda r: r["options"].update(width={"in": 3}), "recipe field options.width must be a number"),
    (lambda r: r["options"].update(points=[[1, 2], [3]]), "recipe field options.points[1] must be two numbers"),
    (lambda r: r["options"].update(cmap="nope"), "recipe field options.cmap is not a matplotlib colormap"),
    (lambda r: r["options"].update(extra={"k": [[[1]]]}), "recipe field options.extra.k must be"),
    (lambda r: r.pop("view"), "recipe field view is missing"),
    (lambda r: r.pop("trace"), "names neither a trace nor a source"),
    (lambda r: r.update(relviz="9.0.0"), "recipe field relviz says '9.0.0'"),
    (lambda r: r.update(colour="red"), "recipe field colour is not a field relviz knows"),
    (lambda r: r.update(trace="a\x00b"), "recipe field trace contains a NUL character"),
    (lambda r: r["options"].update(extra={"deep": json.loads("[" * 100 + "]" * 100)}), "nested too deeply"),
])
def test_recipe_fields_are_checked_by_the_same_schema(recipe_file, tmp_path, capsys, change, says):
    edited = rewrite(recipe_file, change)
    refused(capsys, ["export", "--recipe", str(edited), "--out", str(tmp_path / "again.png")], says)
    assert not (tmp_path / "again.png").exists()


@pytest.mark.parametrize("content,says", [
    (b"", "is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe binary", "not UTF-8"),
    (b"{\"relviz\": ", "is not valid JSON"),
    (b"[1, 2, 3]", "must hold a JSON object"),
    (b"{\"dpi\": NaN}", "holds NaN"),
    (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
    (b"{\"a\": " + b"1" * 5000 + b"}", "is not valid JSON"),
    (b" " * (limits.MAX_RECIPE_BYTES + 1), "larger than 1,000,000 bytes"),
])
def test_recipe_files_that_are_not_recipes(tmp_path, capsys, content, says):
    path = tmp_path / "bad.recipe.json"
    path.write_bytes(content)
    refused(capsys, ["export", "--recipe", str(path), "--out", str(tmp_path / "f.png")], says)


def test_recipe_that_is_a_folder_or_missing(tmp_path, capsys):
    refused(capsys, ["export", "--recipe", str(tmp_path), "--out", str(tmp_path / "f.png")], "is a folder")
    refused(capsys, ["export", "--recipe", str(tmp_path / "none.json")], "does not exist")


def test_relative_paths_in_a_recipe_are_relative_to_its_folder(scene, recipe_file, tmp_path, monkeypatch):
    os.link(scene / "scene.npz", tmp_path / "here.npz")
    edited = rewrite(recipe_file, lambda r: r.update(trace="here.npz", output="rel.png"))
    monkeypatch.chdir(scene)  # somewhere else
    assert main(["export", "--recipe", str(edited)]) == 0
    assert (tmp_path / "rel.png").is_file() and (tmp_path / "rel.recipe.json").is_file()


# -- internal errors ------------------------------------------------------------------------------


def test_a_bug_is_one_line_and_a_report_file(scene, tmp_path, capsys, monkeypatch, report_folder):

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug in the drawing code\nwith a second line")

    monkeypatch.setattr(export, "export_figure", broken)
    argv = export_args(scene, tmp_path / "f.png")
    assert main(argv) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("relviz: internal error (ZeroDivisionError): a bug in the drawing code; "
                               "the full report is in ")
    report = Path(lines[0].rsplit(" ", 1)[1])
    assert report.parent == report_folder and report.is_file()
    text = report.read_text()
    assert "Traceback" in text and "ZeroDivisionError: a bug in the drawing code" in text and "def broken" not in text
    assert "in broken" in text and str(tmp_path / "f.png") in text and "relviz 0.1.0" in text


def test_running_out_of_memory_is_a_sentence(scene, tmp_path, capsys, monkeypatch):
    def hungry(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(export, "export_figure", hungry)
    refused(capsys, export_args(scene, tmp_path / "f.png"), "ran out of memory")


def test_max_pixels_holds_for_the_command_only(scene, tmp_path, monkeypatch):
    seen = {}

    def spy(*args, **kwargs):
        seen["limit"] = limits.max_image_pixels()
        return tmp_path / "f.png", tmp_path / "f.recipe.json"

    monkeypatch.delenv("RELVIZ_MAX_PIXELS", raising=False)
    monkeypatch.setattr(export, "export_figure", spy)
    assert main(export_args(scene, tmp_path / "f.png", "--max-pixels", "1234")) == 0
    assert seen["limit"] == 1234
    assert "RELVIZ_MAX_PIXELS" not in os.environ and limits.max_image_pixels() == limits.MAX_IMAGE_PIXELS


# -- outputs --------------------------------------------------------------------------------------


def test_outputs_never_overwrite_inputs(scene, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(export, "run_source", lambda source: pytest.fail("the model ran"))
    image = tmp_path / "photo.png"
    image.write_bytes((scene / "scene.png").read_bytes())
    before = image.read_bytes()
    (tmp_path / "link.png").symlink_to(image)
    os.link(image, tmp_path / "hard.png")
    monkeypatch.chdir(tmp_path)
    base = ["trace", "--model", "detr-r50", "--weights", "none", "--input", "photo.png"]
    for out in ("photo.png", "./sub/../photo.png", str(tmp_path / "link.png"), "hard.png"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        refused(capsys, [*base, "--out", out], "is the input", "never overwrites")
    refused(capsys, ["export", *SMALL, "--input", "photo.png", "--view", "detections", "--out", "link.png"],
            "the figure", "is the input")
    assert image.read_bytes() == before


def test_a_figure_never_replaces_its_trace_or_its_recipe(scene, tmp_path, capsys):
    trace = tmp_path / "t.png"  # a trace file with a figure's name
    trace.write_bytes((scene / "scene.npz").read_bytes())
    refused(capsys, export_args(scene, trace)[:2] + [str(trace), "--view", "detections", "--out", str(trace)],
            "is the trace it draws")
    assert trace.read_bytes() == (scene / "scene.npz").read_bytes()
    assert main(export_args(scene, tmp_path / "fig.png")) == 0
    recipe = tmp_path / "fig.recipe.json"
    before = recipe.read_bytes()
    # --out elsewhere whose recipe would replace the recipe being replayed (with another figure's output)
    refused(capsys, ["export", "--recipe", str(recipe), "--out", str(tmp_path / "fig.svg")], "its recipe",
            "is the recipe being replayed", "--out")
    assert recipe.read_bytes() == before and not (tmp_path / "fig.svg").exists()


def test_a_recipe_regenerates_its_figure_in_place(scene, tmp_path, capsys, monkeypatch):
    figure, recipe = tmp_path / "fig.png", tmp_path / "fig.recipe.json"
    assert main(export_args(scene, figure, "--dpi", "60")) == 0
    png, text = figure.read_bytes(), recipe.read_bytes()
    figure.write_bytes(b"an outdated figure")
    os.utime(recipe, (1_600_000_000,) * 2)
    capsys.readouterr()
    assert main(["export", "--recipe", str(recipe)]) == 0  # no --out: the recipe's own output
    assert f"wrote {figure} and {recipe.name}" in capsys.readouterr().out
    assert figure.read_bytes() == png  # drawn again, the same bytes
    assert recipe.read_bytes() == text and recipe.stat().st_mtime > 1_600_000_000  # rewritten, same content
    assert main(["export", "--recipe", str(recipe), "--out", str(figure)]) == 0  # --out the same figure: in place
    assert recipe.read_bytes() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png", "fig.recipe.json"]  # no temporary file
    # together or not at all: when the recipe cannot be renamed, the new figure is taken back and the
    # recipe being replayed stays as it was, so nothing is lost — replaying it again draws the figure
    real_replace = os.replace

    def recipe_fails(src, dst):
        if Path(dst) == recipe:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", recipe_fails)
    refused(capsys, ["export", "--recipe", str(recipe)], "cannot write", "No space left on device")
    monkeypatch.setattr(atomic.os, "replace", real_replace)
    assert recipe.read_bytes() == text and [p.name for p in tmp_path.iterdir()] == ["fig.recipe.json"]
    assert main(["export", "--recipe", str(recipe)]) == 0
    assert figure.read_bytes() == png and recipe.read_bytes() == text


def test_a_recipe_replayed_in_place_still_never_overwrites_its_inputs(scene, tmp_path, capsys):
    trace = tmp_path / "t.png"  # a trace with a figure's name: a recipe drawing it onto itself
    trace.write_bytes((scene / "scene.npz").read_bytes())
    assert main(export_args(scene, tmp_path / "fig.png")) == 0
    data = json.loads((tmp_path / "fig.recipe.json").read_text())
    data.update(trace=str(trace), output=str(trace))
    onto_trace = tmp_path / "t.recipe.json"
    onto_trace.write_text(json.dumps(data))
    refused(capsys, ["export", "--recipe", str(onto_trace)], "is the trace it draws")
    assert trace.read_bytes() == (scene / "scene.npz").read_bytes()


def test_a_loop_of_symlinks_is_a_sentence_not_a_bug(scene, tmp_path, capsys, report_folder):
    (tmp_path / "a.png").symlink_to(tmp_path / "b.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    reports = set(report_folder.glob("*"))
    refused(capsys, ["trace", "--model", "detr-r50", "--weights", "none", "--input", str(tmp_path / "a.png"),
                     "--out", str(tmp_path / "b.png")])
    refused(capsys, ["export", "--trace", str(tmp_path / "a.png"), "--view", "detections",
                     "--out", str(tmp_path / "f.png")])
    assert set(report_folder.glob("*")) == reports  # no internal error


def test_figure_and_recipe_land_together_or_not_at_all(scene, tmp_path, capsys, monkeypatch):
    real_replace = os.replace
    calls = []

    def second_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", second_fails)
    refused(capsys, export_args(scene, tmp_path / "f.png"), "cannot write", "No space left on device")
    monkeypatch.setattr(atomic.os, "replace", real_replace)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # neither the figure nor any temporary file


@pytest.mark.parametrize("name", ["f" * 246 + ".png", "é" * 60 + "x" * 130 + ".svg"])
def test_long_legal_output_names_write_figure_and_recipe(scene, tmp_path, name):
    assert 250 <= len(name.encode()) <= 255
    prefix, suffix = atomic.temp_name(name)
    assert len(prefix.encode()) + 8 + len(suffix.encode()) < 60
    out = tmp_path / name
    assert main(export_args(scene, out, "--dpi", "40")) == 0
    recipe = export.recipe_path(out)
    assert out.is_file() and recipe.is_file() and len(recipe.name.encode()) <= 255
    assert json.loads(recipe.read_text())["output"] == str(out)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_name_over_the_file_system_limit_is_a_sentence(scene, tmp_path, capsys):
    refused(capsys, export_args(scene, tmp_path / ("f" * 252 + ".png")), "longer than 255 bytes")


def test_stale_temporary_files_are_removed_and_nothing_else(scene, tmp_path):
    old = time.time() - 2 * atomic.STALE_SECONDS
    stale = tmp_path / ".relviz-tmp-0123456789-abcd_123.part.png"
    fresh = tmp_path / ".relviz-tmp-0123456789-efgh_456.part.png"
    alike = tmp_path / ".relviz-tmp-notours.part.png"
    users = tmp_path / "notes.part"
    for p in (stale, fresh, alike, users):
        p.write_bytes(b"x")
        if p is not fresh:
            os.utime(p, (old, old))
    atomic._SWEPT.discard(os.path.abspath(tmp_path))
    assert main(export_args(scene, tmp_path / "f.png", "--dpi", "40")) == 0
    assert not stale.exists()
    assert fresh.exists() and alike.exists() and users.exists()


def test_atomic_paths_leaves_nothing_when_the_block_fails(tmp_path):
    targets = [tmp_path / "a.png", tmp_path / "a.recipe.json"]
    with pytest.raises(RuntimeError):
        with atomic.atomic_paths(targets) as temps:
            for t in temps:
                assert atomic.TEMP_PATTERN.fullmatch(t.name), t.name
                t.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


# -- layering and the app -------------------------------------------------------------------------


def test_export_from_a_trace_imports_no_torch(scene, tmp_path):
    code = ("import sys; from relviz.cli import main; "
            f"rc = main({export_args(scene, tmp_path / 'f.svg')!r}); "
            "assert rc == 0, rc; assert 'torch' not in sys.modules, 'torch was imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_app_figure_replays_at_the_input_size_the_app_ran(scene, tmp_path):
    from relviz.app import exporting

    source = export.Source(model="detr-r50", weights="none", input=str(scene / "scene.png"), device="cpu",
                           resize=64, threshold=0.0, overrides=SMALL_CONFIG)
    trace = export.run_source(source)
    origin = {"model": "detr-r50", "weights": "none", "family": "detr", "input": str(scene / "scene.png"),
              "device": "cpu", "precision": "fp32", "threshold": 0.0, "resize": 64, "frame": 0,
              "overrides": SMALL_CONFIG}
    sel = SimpleNamespace(object=0, point=None, frame=0, layer=-1, head=None, term="weight", module=None,
                          source="detr/decoder/cross_attn")
    ctx = SimpleNamespace(progress=lambda percent, text: None)
    options = {"path": str(tmp_path / "app.png"), "view": "decoder-attention", "format": "png", "dpi": 60,
               "width": 4.0, "height": 3.0}
    assert exporting.export_figure(ctx, trace, options, sel, origin) == str(tmp_path / "app.png")
    recipe = json.loads((tmp_path / "app.recipe.json").read_text())
    assert recipe["source"]["resize"] == 64 and recipe["options"]["object"] == 0
    assert main(["export", "--recipe", str(tmp_path / "app.recipe.json"), "--out", str(tmp_path / "cli.png")]) == 0
    assert (tmp_path / "cli.png").read_bytes() == (tmp_path / "app.png").read_bytes()


def test_the_command_line_runs_models_through_the_pipeline_with_its_cpu_fallback(scene, tmp_path, capsys,
                                                                                   monkeypatch):
    """A GPU that runs out of memory hands the run to the CPU, as in the window, and the line says so."""
    import torch

    from relviz import pipeline, zoo

    real_load, real_run, devices = zoo.load_model, zoo.run_model, []
    loads = []

    def load_on_a_full_gpu(*args, **kwargs):
        loads.append(kwargs)
        loaded = real_load(*args, **{**kwargs, "device": "cpu"})
        loaded.device = torch.device("cuda", 0)  # pretend: the model sits on a GPU that is full
        return loaded

    def run_model(model, path, options=None):
        devices.append(str(model.device))
        if model.device.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_run(model, path, options)

    monkeypatch.setattr(zoo, "load_model", load_on_a_full_gpu)
    monkeypatch.setattr(zoo, "run_model", run_model)
    names = []
    monkeypatch.setattr(pipeline, "name_classes", lambda trace: names.append(trace) or trace)
    argv = ["trace", *SMALL[:-2], "--device", "cuda", "--resize", "64", "--threshold", "0", "--input",
            str(scene / "scene.png"), "--out", str(tmp_path / "t.npz")]
    assert main(argv) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert devices == ["cuda:0", "cpu"] and len(names) == 1  # retried on the CPU, classes named once
    assert err == ["relviz: warning: the GPU ran out of memory; fell back to the CPU for detr-r50"]
    assert loads[0]["overrides"]["hidden_dim"] == 64 and loads[0]["overrides"]["nheads"] == 4  # --config kept
    from relviz.core.trace import Trace

    trace = Trace.load(tmp_path / "t.npz")
    assert len(trace["detections/boxes"]) == 8 and trace.meta["model"]["config"]["hidden_dim"] == 64


def test_a_bundled_model_loads_through_the_pipeline(scene, monkeypatch):
    from relviz import pipeline

    choices = []
    real = pipeline.load_model
    monkeypatch.setattr(pipeline, "load_model", lambda report, choice: choices.append(choice) or real(report, choice))
    trace = export.run_source({"model": "demo-lrnet", "input": str(scene / "scene.png"), "device": "cpu"})
    assert choices == [{"name": "demo-lrnet", "weights": "bundled", "family": None, "device": "cpu",
                        "precision": "fp32"}]
    assert trace.meta["model"]["weights"] == "bundled" and len(trace["classification/logits"]) == len(
        trace.meta["labels"])
