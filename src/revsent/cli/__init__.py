"""The ``revsent`` command: a thin Typer layer over the library.

Each command parses its options, builds the config, calls the library function of the same
name, and turns a :class:`~revsent.errors.RevsentError` into one line on stderr and an exit code.
"""
from .common import app
from . import fit, use  # noqa: F401,E402 - each registers its commands on app


def main() -> None:
    app()


if __name__ == "__main__":
    main()
