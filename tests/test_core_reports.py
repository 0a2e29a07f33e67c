"""Internal-error reports: one writer (relviz.core.reports) for the command line and the window — one folder,
one naming, never replacing a report, pruning the oldest — with the traceback, command and versions inside."""

import os
import re
import tempfile
from pathlib import Path

import pytest

from relviz.core import reports

NAME = re.compile(r"internal-error-\d{8}-\d{6}-\d+-\d+\.txt")


def _raised(message="a bug for the report"):
    try:
        raise KeyError(message)
    except KeyError as exc:
        return exc


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "relviz"


def test_a_report_holds_the_traceback_the_command_and_the_versions(cache):
    path = reports.write_report(_raised(), "relviz export", ["export", "--out", "a b.png"])
    assert path.parent == cache and NAME.fullmatch(path.name)
    text = path.read_text()
    assert "Traceback" in text and "in _raised" in text and "KeyError: 'a bug for the report'" in text
    assert "while: relviz export" in text and "command: relviz export --out 'a b.png'" in text
    assert re.search(r"versions: relviz \d+\.\d+\.\d+, Python 3\.\d+", text) and "numpy " in text


def test_reports_in_the_same_second_never_replace_each_other(cache):
    paths = [reports.write_report(_raised(f"bug {i}")) for i in range(3)]
    assert len(set(paths)) == 3 and all(p.is_file() for p in paths)
    assert [f"bug {i}" in p.read_text() for i, p in enumerate(paths)] == [True] * 3


def test_only_the_newest_reports_are_kept_and_nothing_else_is_touched(cache):
    cache.mkdir(parents=True)
    old = []
    for i in range(reports.MAX_REPORTS + 4):
        p = cache / f"internal-error-20200101-000000-1-{i}.txt"
        p.write_text("old")
        os.utime(p, (1_600_000_000 + i,) * 2)
        old.append(p)
    other = cache / "notes.txt"
    other.write_text("mine")
    new = reports.write_report(_raised())
    kept = sorted(cache.glob("internal-error-*.txt"))
    assert len(kept) == reports.MAX_REPORTS and new in kept
    assert [p.exists() for p in old] == [False] * 5 + [True] * (reports.MAX_REPORTS - 1)
    assert other.read_text() == "mine"


def test_the_folder_rules(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # not absolute: ignored, as the XDG rules say
    assert reports.report_dir() == tmp_path / "home" / ".cache" / "relviz"
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    path = reports.write_report(_raised())
    assert path.parent == tmp_path / "tmp" / "relviz" and NAME.fullmatch(path.name)


def test_the_command_line_and_the_window_write_the_same_reports(cache, tmp_path, capsys, monkeypatch):
    from relviz import cli, export
    from relviz.app import crash

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug in the command")

    monkeypatch.setattr(export, "export_figure", broken)
    assert cli.main(["export", "--trace", str(tmp_path / "t.npz"), "--view", "detections",
                     "--out", str(tmp_path / "f.png")]) == 1
    from_cli = Path(capsys.readouterr().err.strip().rsplit(" ", 1)[1])
    line = crash.handle(_raised("a bug in the window"), "drawing")
    from_app = Path(line.split("the full report is in ")[1].rstrip(")"))
    assert from_cli.parent == from_app.parent == cache
    assert NAME.fullmatch(from_cli.name) and NAME.fullmatch(from_app.name)
    cli_text, app_text = from_cli.read_text(), from_app.read_text()
    assert cli_text.startswith("relviz internal error report") and app_text.startswith("relviz internal error report")
    assert "command: relviz export --trace" in cli_text and "ZeroDivisionError: a bug in the command" in cli_text
    assert "while: drawing" in app_text and "a bug in the window" in app_text and "versions: relviz" in app_text
