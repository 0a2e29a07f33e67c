"""Persistent settings (QSettings) with a version key: a layout change resets what no longer fits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

#: bump when the window layout (docks, their names) changes, so an old saved state is dropped
SETTINGS_VERSION = 3
MAX_RECENT = 10


class Settings:
    def __init__(self, organization: str = "relviz", application: str = "relviz", settings: QSettings | None = None):
        self.qs = settings if settings is not None else QSettings(organization, application)
        version = self.qs.value("version", None)
        if version is None or str(version) != str(SETTINGS_VERSION):
            self.qs.clear()
            self.qs.setValue("version", SETTINGS_VERSION)

    def _get(self, key: str, default: Any = None) -> Any:
        value = self.qs.value(key, default)
        return default if value is None else value

    # window layout
    def window_state(self) -> tuple[QByteArray | None, QByteArray | None]:
        return self.qs.value("window/geometry"), self.qs.value("window/state")

    def save_window_state(self, geometry: QByteArray, state: QByteArray) -> None:
        self.qs.setValue("window/geometry", geometry)
        self.qs.setValue("window/state", state)

    # recent files
    def recent_files(self) -> list[str]:
        value = self._get("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in value if v]

    def add_recent(self, path: str | Path) -> list[str]:
        path = str(Path(path).resolve())
        items = [p for p in self.recent_files() if p != path]
        items.insert(0, path)
        self.qs.setValue("recent", items[:MAX_RECENT])
        return items[:MAX_RECENT]

    def clear_recent(self) -> None:
        self.qs.setValue("recent", [])

    # model choice
    def model_choice(self) -> dict[str, str]:
        return {k: str(self._get(f"model/{k}", "")) for k in ("name", "weights", "device", "precision")}

    def save_model_choice(self, choice: dict[str, str]) -> None:
        for k in ("name", "weights", "device", "precision"):
            if k in choice and choice[k] is not None:
                self.qs.setValue(f"model/{k}", str(choice[k]))

    def threshold(self, default: float = 0.7) -> float:
        try:
            return float(self._get("model/threshold", default))
        except (TypeError, ValueError):
            return default

    def save_threshold(self, value: float) -> None:
        self.qs.setValue("model/threshold", float(value))

    def export_dir(self) -> str:
        return str(self._get("export/dir", ""))

    def save_export_dir(self, folder: str) -> None:
        self.qs.setValue("export/dir", folder)

    def sync(self) -> None:
        self.qs.sync()
