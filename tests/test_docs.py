"""The docs site's generated CLI reference: every command and option of the app, from the app itself."""
import importlib.util
from pathlib import Path

import typer

from revsent.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _hook():
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "docs" / "hooks" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cli_reference_names_every_command_and_option():
    page = _hook().render_cli()
    group = typer.main.get_command(app)
    assert set(group.commands) >= {"train", "prepare", "tune", "evaluate", "predict", "explain", "serve", "export",
                                   "presets"}
    for name, command in group.commands.items():
        assert f"revsent {name}" in page
        for param in command.params:
            for flag in getattr(param, "opts", []):
                if flag.startswith("--"):
                    assert flag in page, (name, flag)


def test_the_reference_page_is_generated_not_written():
    source = (ROOT / "docs" / "reference" / "cli.md").read_text()
    assert "<!-- cli-reference -->" in source and "--vocab-size" not in source
