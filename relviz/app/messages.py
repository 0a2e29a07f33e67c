"""What the window tells the user, and how long it stays on screen (Qt-free).

Every message (info, warning, error) goes to a time-stamped log of the last :data:`MAX_LOG_ENTRIES`
entries, which View → Messages… opens.  Warnings and errors are *problems*: they are also put on the
message bar above the canvas, and they stay there until

1. the user dismisses them with the bar's close button (which dismisses all shown), or
2. the same kind of thing succeeds in a **later** request: each problem and each success carries a
   *topic* — ``input`` (opening an image, video, folder or trace), ``model`` (loading a model or a
   checkpoint), ``run`` (running the model), ``export`` — and the number of the user request it came
   from (a drop, File → Open, Load model, Run, an export, a step to the next image).  A success
   resolves the problems on its topic from *earlier* requests only: dropping three files of which one
   is bad keeps the bad one's error on screen while the good ones open; loading another checkpoint
   successfully clears the error of the checkpoint refused before.

An info message never hides a problem: it goes to the status bar and the log only.  A problem with no
topic (an internal error, say) stays until it is dismissed.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

#: the log keeps this many entries, oldest dropped first
MAX_LOG_ENTRIES = 500
#: the message bar lists at most this many problems (the log holds them all)
MAX_SHOWN_PROBLEMS = 4

LEVELS = ("info", "warning", "error")

# topics
INPUT, MODEL, RUN, EXPORT = "input", "model", "run", "export"


@dataclass(frozen=True)
class Message:
    text: str
    level: str = "info"  # info | warning | error
    topic: str | None = None
    request: int = 0
    time: float = field(default_factory=time.time)

    @property
    def is_problem(self) -> bool:
        return self.level in ("warning", "error")

    def stamp(self) -> str:
        """The local wall-clock time, ``HH:MM:SS``."""
        return time.strftime("%H:%M:%S", time.localtime(self.time))

    def line(self) -> str:
        return f"{self.stamp()}  {self.level:<7}  {self.text}"


class MessageBook:
    """The log and the problems still shown, with the rule in the module docstring."""

    def __init__(self, max_entries: int = MAX_LOG_ENTRIES):
        self.log: deque[Message] = deque(maxlen=max_entries)
        self.problems: list[Message] = []
        self.request = 0  # the number of the latest user request
        self.total = 0  # messages ever posted (the log forgets, this does not)

    def begin(self) -> int:
        """A new user request; the messages of the work it starts carry the number returned."""
        self.request += 1
        return self.request

    def post(self, text: str, level: str = "info", topic: str | None = None, request: int | None = None) -> Message:
        if level not in LEVELS:
            level = "error"
        msg = Message(str(text), level, topic, self.request if request is None else int(request))
        self.log.append(msg)
        self.total += 1
        if msg.is_problem:
            # the same problem posted again (e.g. on every frame) moves to the end instead of repeating
            self.problems = [p for p in self.problems if (p.text, p.level) != (msg.text, msg.level)]
            self.problems.append(msg)
            del self.problems[: -MAX_LOG_ENTRIES]
        return msg

    def resolve(self, topic: str, request: int | None = None) -> bool:
        """A success on ``topic`` in ``request``: drop that topic's problems from earlier requests
        (all of them when ``request`` is None).  Returns whether any was dropped."""
        keep = [p for p in self.problems if not _resolved_by(p, topic, request)]
        changed = len(keep) != len(self.problems)
        self.problems = keep
        return changed

    def dismiss(self) -> bool:
        """The user closed the message bar."""
        changed = bool(self.problems)
        self.problems = []
        return changed

    def clear_log(self) -> None:
        self.log.clear()

    def worst(self) -> str:
        return "error" if any(p.level == "error" for p in self.problems) else "warning"

    def bar_lines(self) -> list[str]:
        """The lines the message bar shows: the latest problems, and how many more the log holds."""
        return bar_lines(self.problems)


def _resolved_by(problem: Message, topic: str, request: int | None) -> bool:
    if problem.topic != topic:
        return False
    return request is None or problem.request < request


def bar_lines(problems: Iterable[Message], limit: int = MAX_SHOWN_PROBLEMS) -> list[str]:
    items = list(problems)
    lines = [p.text for p in items[-limit:]]
    if len(items) > limit:
        lines.insert(0, f"… {len(items) - limit} earlier problem(s): View → Messages… lists them all")
    return lines
