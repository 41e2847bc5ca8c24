"""MkDocs hook: the CLI reference, generated from the Typer app at build time.

    docs/reference/cli.md  ──(on_page_markdown)──►  its placeholder replaced by every command:
    typer.main.get_command(revsent.cli.app)         usage, help, arguments, options by panel

The page is never written by hand, so it cannot drift from `revsent COMMAND --help`: an option
added to the CLI appears here on the next `mkdocs build`. Typer carries its own copy of click, so
parameters are told apart by `param_type_name` and contexts come from the command's
`context_class`, never from an `import click` that may be another copy.
"""
from __future__ import annotations

PLACEHOLDER = "<!-- cli-reference -->"
PAGE = "reference/cli.md"


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace the CLI page's placeholder with the generated reference (other pages pass through)."""
    if page.file.src_uri != PAGE or PLACEHOLDER not in markdown:
        return markdown
    return markdown.replace(PLACEHOLDER, render_cli())


def render_cli() -> str:
    """The reference of every `revsent` command, in the order the app registers them."""
    import typer

    from revsent.cli import app

    root = typer.main.get_command(app)
    root_ctx = root.context_class(root, info_name="revsent")
    parts = [_render_root(root, root_ctx)]
    for name, command in root.commands.items():
        if not command.hidden:
            parts.append(_render_command(name, command, root_ctx))
    return "\n\n".join(parts) + "\n"


def _render_root(root, ctx) -> str:
    lines = ["## revsent", "", _code(f"revsent {' '.join(root.collect_usage_pieces(ctx))}"), "",
             _clean(root.help or ""), "", "| command | what it does |", "|---|---|"]
    for name, command in root.commands.items():
        if not command.hidden:
            lines.append(f"| [`{name}`](#revsent-{name}) | {_cell(command.get_short_help_str(limit=200))} |")
    options = [p for p in root.params if _is_option(p) and not p.hidden]
    if options:
        lines += ["", *_options_table(options, ctx)]
    return "\n".join(lines)


def _render_command(name: str, command, parent) -> str:
    """One command: its usage line, help, epilog (the examples), arguments and options by panel."""
    ctx = command.context_class(command, info_name=name, parent=parent)
    lines = [f"## revsent {name}", "", _code(f"{ctx.command_path} {' '.join(command.collect_usage_pieces(ctx))}"), "",
             _clean(command.help or "")]
    if command.epilog:
        lines += ["", _code(_clean(command.epilog))]
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    if arguments:
        lines += ["", "**Arguments**", "", "| argument | type | help |", "|---|---|---|"]
        for arg in arguments:
            many = "..." if arg.nargs == -1 else ""
            need = " (required)" if arg.required else ""
            lines.append(f"| `{arg.name.upper()}{many}` | {_type(arg)} | {_cell(getattr(arg, 'help', '') or '')}{need} |")
    panels: dict[str, list] = {}
    for param in command.params:
        if _is_option(param) and not param.hidden:
            panels.setdefault(getattr(param, "rich_help_panel", None) or "Options", []).append(param)
    for panel, options in panels.items():
        lines += ["", f"**{panel}**", "", *_options_table(options, ctx)]
    return "\n".join(lines)


def _options_table(options: list, ctx) -> list[str]:
    rows = ["| option | type | default | help |", "|---|---|---|---|"]
    for option in options:
        names = ", ".join(f"`{n}`" for n in [*option.opts, *option.secondary_opts])
        need = " (required)" if option.required else ""
        rows.append(f"| {names} | {_type(option)} | {_default(option, ctx)} | {_cell(option.help or '')}{need} |")
    return rows


def _type(param) -> str:
    """What the option takes: its choices, `flag`, or the value's type."""
    if _is_option(param) and param.is_flag:
        return "flag"
    choices = getattr(param.type, "choices", None)
    if choices:
        return " \\| ".join(f"`{getattr(c, 'value', c)}`" for c in choices)
    return {"str": "text", "text": "text", "integer": "int", "boolean": "bool"}.get(param.type.name, param.type.name)


def _default(option, ctx) -> str:
    """The default click applies; most revsent options leave it to the preset, whose values the
    help text states ("(default: ... in seed, ...)"), so those show a dash here."""
    value = option.get_default(ctx, call=False)
    if value is None or value == () or callable(value):
        return "—"
    if option.is_flag and option.secondary_opts:  # --x/--no-x: the one in force
        return f"`{option.opts[0] if value else option.secondary_opts[0]}`"
    if option.is_flag:
        return "on" if value else "off"
    return f"`{getattr(value, 'value', value)}`"  # an enum choice shows its string


def _is_option(param) -> bool:
    return param.param_type_name == "option"


def _clean(text: str) -> str:
    """Help text as click shows it: `\\b` (keep this paragraph's line breaks) dropped."""
    return "\n".join(line for line in text.splitlines() if line.strip() != "\b").strip()


def _cell(text: str) -> str:
    """Help text inside a table cell: one line, pipes escaped."""
    return " ".join(_clean(text).split()).replace("|", "\\|")


def _code(text: str) -> str:
    return f"```text\n{text}\n```"
