"""Errors that reach the user as one sentence.

Anything raised as a :class:`RelvizError` is an expected problem with the user's input (a bad file, an
option out of range, a checkpoint that does not fit).  The command line turns it into exit code 2 and
its message; the application shows it in the window.  Any other exception is a bug.
"""


class RelvizError(Exception):
    """A problem with the user's input, explained in the message."""


class BadInputError(RelvizError):
    """An input file or option that cannot be used."""


class CheckpointError(RelvizError):
    """A checkpoint that cannot be read or does not fit the model."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle whose loading would run code; it is refused, never executed."""
