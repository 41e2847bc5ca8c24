"""The errors revsent raises for a user's mistakes: each prints as one line that says what to fix."""
from __future__ import annotations


SHOWN = 60  # characters of a user's value an error message quotes


def shown(value, most: int = SHOWN) -> str:
    """``repr(value)`` for an error message, cut to ``most`` characters with its length named, so
    that a one-megabyte bad value is still a one-line error."""
    text = repr(value)
    if len(text) <= most:
        return text
    size = f" ({len(value):,} characters)" if isinstance(value, (str, bytes)) else ""
    return f"{text[:most]}…{size}"


# Exit codes: 0 done; 1 a bug (a traceback); 2 bad input or usage (data, settings, options);
# 3 a model, output or machine problem (a damaged model, an output that cannot be written, a full
# disk); 130 interrupted.


class RevsentError(Exception):
    """Base class: a problem with the user's input, files or settings (never a bug)."""

    exit_code = 3


class ConfigError(RevsentError, ValueError):
    """A setting has a wrong type or value."""

    exit_code = 2


class DataError(RevsentError, ValueError):
    """A data file is missing, unreadable or holds a bad record.

    Printed as ``FILE:LINE: problem`` (``FILE: problem`` when no line applies).
    """

    exit_code = 2

    def __init__(self, source: str, problem: str, line: int | None = None, reason: str | None = None):
        self.source, self.problem, self.line, self.reason = source, problem, line, reason
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {problem}")


class NotFittedError(RevsentError, ValueError, AttributeError):
    """A model was used before ``fit`` (scikit-learn's name and wording)."""


class ArtifactError(RevsentError):
    """A model directory or one of its files is missing, corrupt or incompatible, or an output
    cannot be written."""

    exit_code = 3
