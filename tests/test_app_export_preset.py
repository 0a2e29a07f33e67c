"""File → Export figure… at a journal preset: the dialog's choice reaches the recipe as ``--preset`` does, and the
dialog and ``relviz export`` write the same figure for the same choices."""

import json
import re

import pytest
from PySide6.QtCore import QSettings

from relviz import cli
from relviz.app.settings import Settings
from relviz.app.synthetic import synthetic_trace
from relviz.app.window import MainWindow
from relviz.render.style import PRESETS

pytestmark = pytest.mark.gui
WAIT = 60_000


@pytest.fixture
def window(qtbot, tmp_path):
    w = MainWindow(Settings(settings=QSettings(str(tmp_path / "relviz.ini"), QSettings.Format.IniFormat)))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.controller.shutdown()


def page_inches(pdf: bytes) -> tuple[float, float]:
    """The first page's size in inches, from its MediaBox (points)."""
    box = re.search(rb"/MediaBox\s*\[\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*\]", pdf)
    assert box is not None, "the PDF has no MediaBox"
    x0, y0, x1, y1 = (float(v) for v in box.groups())
    return (x1 - x0) / 72, (y1 - y0) / 72


def open_trace(qtbot, window, tmp_path):
    path = tmp_path / "synthetic.npz"
    synthetic_trace().save(path)
    window.controller.open_paths([str(path)])  # a trace file opens without a model, as when dropped
    qtbot.waitUntil(lambda: window.state.trace is not None, timeout=WAIT)
    return path


def test_the_dialog_defaults_to_the_command_lines_preset_and_size(qtbot, window, tmp_path):
    open_trace(qtbot, window, tmp_path)
    dialog = window.export_figure_dialog(accept=False)
    options = dialog.options()
    assert options["preset"] == "page" == cli.build_parser().parse_args(["export", "--out", "x.pdf"]).preset
    assert options["width"] is None and options["height"] is None  # the preset's size, as without --width/--height
    assert not dialog.width.isEnabled() and not dialog.height.isEnabled()
    dialog.preset.setCurrentIndex(dialog.preset.findData("column"))
    assert dialog.width.value() == pytest.approx(PRESETS["column"].width)
    dialog.custom_size.setChecked(True)
    dialog.width.setValue(5.0)
    dialog.height.setValue(3.0)
    assert (dialog.options()["width"], dialog.options()["height"]) == (5.0, 3.0)


@pytest.mark.parametrize("preset", ["column", "page"])
def test_export_at_a_preset_matches_the_command_line(qtbot, window, tmp_path, preset):
    trace_path = open_trace(qtbot, window, tmp_path)
    window.state.select(object=1, head=0)
    dialog = window.export_figure_dialog(accept=False)
    names = [dialog.view.itemData(i) for i in range(dialog.view.count())]
    dialog.view.setCurrentIndex(names.index("decoder-attention"))
    dialog.fmt.setCurrentText("PDF")
    dialog.preset.setCurrentIndex(dialog.preset.findData(preset))
    out = tmp_path / "dialog.pdf"
    dialog.path.setText(str(out))
    window.accept_export(dialog)
    qtbot.waitUntil(lambda: "wrote" in window.state.last_message[0], timeout=WAIT)
    qtbot.waitUntil(lambda: not window.controller.runner.active, timeout=WAIT)  # the worker has ended

    data = out.read_bytes()
    width, height = page_inches(data)
    assert width == pytest.approx(PRESETS[preset].width, abs=0.01)
    assert 0.8 <= height <= PRESETS[preset].max_height + 0.01
    recipe = json.loads((tmp_path / "dialog.recipe.json").read_text())
    assert recipe["options"]["preset"] == preset
    assert recipe["options"]["width"] is None and recipe["options"]["height"] is None

    # the command line with the same choices (the window's selection written as options) draws the same figure
    o = recipe["options"]
    argv = ["export", "--trace", str(trace_path), "--view", "decoder-attention", "--object", str(o["object"]),
            "--head", o["head"], "--preset", preset, "--out", str(tmp_path / "cli.pdf")]
    for option in ("layer", "module"):
        if o[option] is not None:
            argv += [f"--{option}", o[option]]
    assert cli.main(argv) == 0
    from_cli = json.loads((tmp_path / "cli.recipe.json").read_text())["options"]
    assert from_cli.pop("objects") == [o["object"]] and o.pop("objects") == []  # one object, written two ways
    assert from_cli == o
    assert (tmp_path / "cli.pdf").read_bytes() == data
