"""The one place the library reports progress: a tqdm bar and plain lines, both on stderr."""
from __future__ import annotations

import sys

from tqdm import tqdm


class Progress:
    """``Progress(enabled=False)`` is silent (tests, the Python API by default)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def bar(self, total: int, desc: str):
        # A bar only on a terminal; logs get the one line per epoch that `log` writes.
        return tqdm(total=total, desc=desc, unit="batch", disable=not (self.enabled and sys.stderr.isatty()), file=sys.stderr,
                    dynamic_ncols=True, leave=False, mininterval=1.0)

    def log(self, message: str) -> None:
        if self.enabled:
            tqdm.write(message, file=sys.stderr)
