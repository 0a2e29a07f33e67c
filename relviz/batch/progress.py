"""Progress of a batch run: items, rate and ETA — one line redrawn on a terminal, log lines otherwise."""

from __future__ import annotations

import time
from typing import TextIO

#: a log (not a terminal) gets a line at most this often, and at the end
LOG_EVERY = 10.0
#: a terminal's line is redrawn at most this often
TTY_EVERY = 0.2


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``."""
    s = int(round(max(seconds, 0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """Counts items as they finish; ``stream`` a terminal: one line redrawn (rank 0 only), else a line every
    :data:`LOG_EVERY` seconds from every rank, prefixed with the rank when there are several."""

    def __init__(self, total: int, stream: TextIO, ranks, skipped: int = 0, clock=time.monotonic):
        self.total, self.stream, self.skipped, self.clock = total, stream, skipped, clock
        self.ranks = ranks
        self.done = self.failed = 0
        self.start = self.last = clock()
        try:
            self.tty = bool(stream.isatty())
        except (AttributeError, ValueError):
            self.tty = False
        self.quiet = self.tty and ranks.rank != 0
        prefix = f"[rank {ranks.rank}/{ranks.world}] " if ranks.world > 1 else ""
        self.prefix = f"relviz batch: {prefix}"
        if skipped and not self.quiet:
            self._write(f"{skipped} items already done, {total} to run", final=True)

    def line(self) -> str:
        elapsed = max(self.clock() - self.start, 1e-9)
        rate = self.done / elapsed
        left = self.total - self.done
        eta = f", ETA {duration(left / rate)}" if rate > 0 and left else ""
        failed = f" ({self.failed} failed)" if self.failed else ""
        return f"{self.done}/{self.total} items{failed}, {rate:.2f} items/s{eta}"

    def tick(self, ok: bool) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        now = self.clock()
        if now - self.last >= (TTY_EVERY if self.tty else LOG_EVERY):
            self.last = now
            self._write(self.line())

    def finish(self) -> None:
        elapsed = self.clock() - self.start
        self._write(f"{self.line()} — finished in {duration(elapsed)}", final=True)

    def _write(self, text: str, final: bool = False) -> None:
        if self.quiet:
            return
        if self.tty:
            self.stream.write(f"\r\x1b[K{self.prefix}{text}" + ("\n" if final else ""))
        else:
            self.stream.write(f"{self.prefix}{text}\n")
        self.stream.flush()
