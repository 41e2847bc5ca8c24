"""The ``revsent`` command: a thin Typer layer over the library.

Each command parses its options, builds the config, calls the library function of the same
name, and turns a :class:`~revsent.errors.RevsentError` into one line on stderr and an exit code.
"""
import sys

import typer

from ..extras import missing_extra
from .common import app
from . import fit, use  # noqa: F401,E402 - each registers its commands on app


def main() -> None:
    """The ``revsent`` console script: the app, and one line for an optional part not installed."""
    try:
        app()
    except ImportError as exc:
        command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), None)
        message = missing_extra(exc, command)
        if message is None:
            raise
        typer.echo(f"revsent: error: {message}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
