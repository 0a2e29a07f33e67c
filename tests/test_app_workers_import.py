"""Workers import through Python's own import: PySide6's ``__feature__`` hook is taken out before any worker runs,
and a module first imported in a worker thread arrives whole."""

import builtins
import sys

import pytest

from relviz.app.workers import Runner, Task, use_python_import

pytestmark = pytest.mark.gui


def test_the_feature_hook_is_replaced_by_the_import_it_saved(monkeypatch):
    hook = getattr(builtins, "__feature_import__", None)
    if hook is None:
        pytest.skip("this PySide6 installs no __feature__ import hook")
    monkeypatch.setattr(builtins, "__import__", hook)
    assert use_python_import() is True
    assert builtins.__import__ is builtins.__orig_import__
    assert use_python_import() is False  # once is enough
    import json  # the import still works

    assert json.dumps([1]) == "[1]"


def test_an_import_hook_of_someone_else_is_left_alone(monkeypatch):
    seen = []
    original = builtins.__import__

    def tracing_import(name, *args, **kwargs):
        seen.append(name)
        return original(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", tracing_import)
    assert use_python_import() is False
    assert builtins.__import__ is tracing_import
    import os.path  # noqa: F401

    assert "os.path" in seen


def test_a_module_first_imported_in_a_worker_arrives_whole(qtbot, tmp_path, monkeypatch):
    package = tmp_path / "workerimported"
    package.mkdir()
    (package / "__init__.py").write_text("from workerimported.part import VALUE\n")
    (package / "part.py").write_text("VALUE = sum(range(10))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "workerimported", raising=False)
    monkeypatch.delitem(sys.modules, "workerimported.part", raising=False)

    runner = Runner()
    assert getattr(builtins.__import__, "__name__", "") != "__feature_import__"

    def work(ctx):
        import workerimported

        return workerimported.VALUE

    results = []
    runner.start(Task("import", work), pool="io", done=results.append)
    qtbot.waitUntil(lambda: len(results) == 1, timeout=30_000)
    assert results == [45]
    assert runner.wait(10_000)
