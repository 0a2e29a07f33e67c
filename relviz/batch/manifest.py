"""The record of a batch run: one JSON line per finished item, in parts that each process appends to.

Each process (rank) appends to its own part, ``DIR/parts/manifest-rank<r>.jsonl``, one line per item as it
finishes, flushed and synced before the next item starts::

    {"key": "scene-3.png", "input": "/data/scene-3.png", "status": "done", "outputs": ["traces/scene-3.png.npz"],
     "seconds": 0.41, "error": null, "rank": 0, "time": 1764650000.1}

``status`` is ``done`` or ``failed`` (with ``error``, the one sentence a bad input gets).  A run killed while
writing leaves at most a partial last line, which readers skip and the next append cuts off.  The item is
then run again; nothing finished is lost.  ``DIR/manifest.jsonl`` is the parts merged, one line per item
(a ``done`` line wins over ``failed`` ones, a later line over an earlier one), written by rank 0 at the end.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from relviz.core.atomic import atomic_path
from relviz.core.errors import BadInputError

PARTS = "parts"
_PART = re.compile(r"manifest-rank(\d{5})\.jsonl")


def part_path(out: Path, rank: int) -> Path:
    return out / PARTS / f"manifest-rank{rank:05d}.jsonl"


def part_ranks(out: Path) -> list[int]:
    """The ranks that have written a manifest part in ``out`` (by an earlier run of any size, too)."""
    folder = out / PARTS
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _PART.fullmatch(p.name)))


def read_records(path: Path, start: int = 0) -> Iterator[dict[str, Any]]:
    """The records of a part from byte ``start``; a line that does not parse (a killed write) is skipped."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return
    with fh:
        fh.seek(start)
        for line in fh:
            if not line.endswith(b"\n"):
                break  # the partial last line of a killed run
            try:
                record = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(record, dict) and isinstance(record.get("key"), str):
                yield record


class ManifestPart:
    """This process's part, opened for appending; a partial last line left by a killed run is cut off."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._fh = open(path, "ab+")
        except OSError as exc:
            raise BadInputError(f"cannot write {path}: {exc.strerror or exc}") from None
        self._fh.seek(0, os.SEEK_END)
        size = self._fh.tell()
        if size:
            self._fh.seek(max(size - 65536, 0))
            tail = self._fh.read()
            if not tail.endswith(b"\n"):
                keep = size - len(tail) + tail.rfind(b"\n") + 1
                self._fh.truncate(keep)
        self._fh.seek(0, os.SEEK_END)

    @property
    def size(self) -> int:
        """Bytes written so far: the statistics' state records how far into the part it reaches."""
        return self._fh.tell()

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, allow_nan=False, ensure_ascii=False) + "\n"
        self._fh.write(line.encode("utf-8"))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def record(key: str, path: Path, status: str, outputs: list[str], seconds: float, error: str | None,
           rank: int, frame: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"key": key, "input": str(path), "status": status, "outputs": outputs,
                            "seconds": round(float(seconds), 4), "error": error, "rank": rank, "time": time.time()}
    if frame is not None:
        data["frame"] = frame
    return data


def _better(new: dict[str, Any], old: dict[str, Any] | None) -> bool:
    if old is None:
        return True
    if (new.get("status") == "done") != (old.get("status") == "done"):
        return new.get("status") == "done"
    return float(new.get("time", 0)) >= float(old.get("time", 0))


def latest(out: Path) -> dict[str, dict[str, Any]]:
    """Each item's record across every part: done over failed, then the latest."""
    best: dict[str, dict[str, Any]] = {}
    for rank in part_ranks(out):
        for rec in read_records(part_path(out, rank)):
            if _better(rec, best.get(rec["key"])):
                best[rec["key"]] = rec
    return best


def merge(out: Path, order: list[str]) -> tuple[int, int, int]:
    """Write ``DIR/manifest.jsonl`` from the parts: items of ``order`` first, in that order, then any other
    item an earlier run recorded.  Returns (done, failed, not run) over the items of ``order``."""
    best = latest(out)
    known = set(order)
    keys = [k for k in order if k in best] + sorted(k for k in best if k not in known)
    target = out / "manifest.jsonl"
    with atomic_path(target) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for key in keys:
            fh.write(json.dumps(best[key], allow_nan=False, ensure_ascii=False) + "\n")
    done = sum(1 for k in order if best.get(k, {}).get("status") == "done")
    failed = sum(1 for k in order if best.get(k, {}).get("status") == "failed")
    return done, failed, len(order) - done - failed
