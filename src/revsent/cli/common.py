"""What every `revsent` command shares: the Typer app, the data options, and turning errors into one line."""
from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import enum
import typer
from typer.core import TyperGroup

from .. import __version__
from ..config import DEVICES, FORMATS, LABEL_SCHEMES, PRECISIONS, TRUNCATE, preset_values
from ..errors import RevsentError

# Click's exception family, whether Typer vendors Click or uses it.
ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


# Options whose value may be left out (`--mlflow` alone: the local store); bare, they take "".
OPTIONAL_VALUES = ("--mlflow",)


def optional_values(args: list[str]) -> list[str]:
    """``args`` with a bare optional-value option (at the end, or before another option) given "":
    `--mlflow --epochs 2` is `--mlflow= --epochs 2`. Click has no such options; Typer passes none."""
    args = list(args)
    return [f"{arg}=" if arg in OPTIONAL_VALUES and (i + 1 == len(args) or args[i + 1].startswith("-")) else arg
            for i, arg in enumerate(args)]


class OneLineErrors(TyperGroup):
    """The `revsent` group: a usage mistake (a wrong choice, a missing option) is one line on
    stderr, as every other error is, not a framed usage screen."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        return super().parse_args(ctx, optional_values(args))

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # `revsent` alone: its help, as asked
                typer.echo(exc.format_message())
                sys.exit(0)
            ctx = getattr(exc, "ctx", None)
            path = " ".join(["revsent", *ctx.command_path.split()[1:]]) if ctx is not None else "revsent"
            hint = f" (see `{path} --help`)"
            typer.echo(f"revsent: error: {exc.format_message()}{hint}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(cls=OneLineErrors, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train, evaluate and use LSTM sentiment classifiers on review text.")

DATA, MODEL, TRAIN, RUN = "Data", "Model", "Training", "Run"


def _version(show: bool) -> None:
    if show:
        typer.echo(f"revsent {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_version, is_eager=True, help="Print revsent's version and exit.")] = None) -> None:
    """Train, evaluate and use LSTM sentiment classifiers on review text.

    Start with `revsent train my_reviews.csv --text-field review --stars-field rating --out model`,
    then `revsent predict model "Great food, rude staff."`; `revsent presets` shows every setting.
    """


def choice(name: str, values) -> type[enum.StrEnum]:
    """A real choice: `--help` lists the values and a wrong one fails naming them (its members are
    the strings themselves, so the config receives plain values)."""
    return enum.StrEnum(name, {value: value for value in values})


def examples(*lines: str) -> str:
    """A command's help epilog: example command lines, one per line."""
    return "Examples:\n\n" + "\n\n".join(f"  $ {line}" for line in lines)


def shown(value) -> str:
    """A setting's value as a user would type it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "none"
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def preset_note(name: str) -> str:
    """``(default: X)``, or each preset's value where the presets differ: what an option left out means."""
    values = {preset: shown(value) for preset, value in preset_values(name).items()}
    if len(set(values.values())) == 1:
        return f"(default: {next(iter(values.values()))})"
    return "(default: {})".format(", ".join(f"{v} in {p}" for p, v in values.items()))


def setting(name: str, help: str = "", *decls: str, panel: str = MODEL):
    """A train/tune/prepare option for the config field ``name``: its help ends with what each preset sets."""
    return typer.Option(*decls, help=f"{help} {preset_note(name)}".strip(), rich_help_panel=panel, show_default=False)


# Data options, shared by every command that reads data (names match DataConfig fields).
Format = Annotated[Optional[choice("Format", FORMATS)], typer.Option(
    help="How to read the files (auto: by extension and content). (default: auto)", rich_help_panel=DATA)]
TextField = Annotated[Optional[str], typer.Option(
    help="Field holding the review text. (default: text)",
    rich_help_panel=DATA)]
LabelField = Annotated[Optional[str], typer.Option(
    help="Field holding labels used as they are (strings or integers). (default: label, when there is one)",
    rich_help_panel=DATA)]
StarsField = Annotated[Optional[str], typer.Option(
    help="Field holding star ratings, mapped by --labels. (default: stars, when there is one)",
    rich_help_panel=DATA)]
Labels = Annotated[Optional[choice("Labels", LABEL_SCHEMES)], typer.Option(
    help="Star ratings to classes: binary (stars > 3 positive, the rest negative), polarity (1-2 negative, 4-5 "
         "positive, 3 dropped), stars (five classes). (default: binary)",
    rich_help_panel=DATA)]
IdField = Annotated[Optional[str], typer.Option(
    help="Field holding a record id. (default: review_id or id when present)",
    rich_help_panel=DATA)]
Business = Annotated[Optional[str], typer.Option(
    help="Yelp business.json (or the Yelp tar), for --category.",
    rich_help_panel=DATA)]
Category = Annotated[Optional[str], typer.Option(
    help="Keep only reviews of businesses in this category, e.g. Restaurants.",
    rich_help_panel=DATA)]
Limit = Annotated[Optional[int], typer.Option(
    help="Use the first N usable records. (default: all)", rich_help_panel=DATA)]
SkipBad = Annotated[Optional[bool], typer.Option(
    "--skip-bad/--no-skip-bad",
    help="Skip bad records and count them instead of stopping at the first. (default: no-skip-bad)",
    rich_help_panel=DATA)]
Device = Annotated[choice("Device", DEVICES), typer.Option(help="Where to run (auto: CUDA when present).",
                                                          rich_help_panel=RUN)]
Precision = Annotated[Optional[choice("Precision", PRECISIONS)], typer.Option(
    help="Training's arithmetic (auto: bf16 where the GPU or CPU computes it natively). (default: auto)",
    rich_help_panel=RUN)]
Backend = Annotated[choice("Backend", ("torch", "onnx")), typer.Option(
    help="torch, or onnx: the model's ONNX export on onnxruntime, without PyTorch (see `revsent export`).")]
DataArg = Annotated[Optional[list[str]], typer.Argument(
    help="Review files (Yelp JSON/.gz/.tar, JSON lines, CSV, TSV, Parquet), 'imdb' or 'rt' for a bundled sample "
         "(default imdb), or (train) a dataset made by `revsent prepare`.",
    show_default=False)]
# Tokenizer options, shared by train and prepare (names match ModelConfig fields).
VocabSize = Annotated[Optional[int], setting(
    "vocab_size", "Words kept: ids 1..N-1 for the N-1 most frequent of the training split.")]
Oov = Annotated[Optional[bool], setting("oov", "Map unknown words to an OOV id instead of dropping them.", "--oov/--no-oov")]
MaxLen = Annotated[Optional[int], setting(
    "max_len", "The LSTM reads at most this many words of a review (none: whole reviews); the n-grams read all.")]
Truncate = Annotated[Optional[choice("Truncate", TRUNCATE)], setting(
    "truncate", "Which part of a long review the LSTM reads: head, tail, or head_tail (the first quarter of "
    "--max-len words and the rest from the end).")]
MinCount = Annotated[Optional[int], setting(
    "min_count", "Leave out words seen fewer times in the training texts (1 keeps every word, as Keras).")]


def _given(**options) -> dict:
    """The options the user actually gave (None means 'keep the preset's or model's value')."""
    return {key: str(value) if isinstance(value, enum.Enum) else value  # a choice: its plain string
            for key, value in options.items() if value is not None}


DATA_OPTIONS = ("format", "text_field", "label_field", "stars_field", "labels", "id_field", "business", "category",
                "limit", "skip_bad", "vocab_size", "oov", "max_len", "truncate", "min_count", "test_split", "seed")


def _data_settings(args: dict) -> dict:
    """The data, tokenizer and split settings among a command's arguments (train, prepare, tune)."""
    return {"paths": tuple(args["data"]) if args["data"] else None,
            "test_data": tuple(args["test_data"]) if args["test_data"] else None,
            **{name: args[name] for name in DATA_OPTIONS}}


OUTPUT_PROBLEM = 3  # the exit code of ArtifactError: a model, output or machine problem


def _run(action):
    """Call ``action``; a user's mistake becomes one line on stderr and a non-zero exit code."""
    try:
        return action()
    except RevsentError as exc:
        typer.echo(f"revsent: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("revsent: interrupted", err=True)
        raise typer.Exit(130)
    except BrokenPipeError:  # `revsent predict ... | head`: the reader left, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0)
    except OSError as exc:  # the machine's refusal (a full disk, a permission, a vanished file), not a bug
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"revsent: error: {where}{exc.strerror or exc}", err=True)
        raise typer.Exit(OUTPUT_PROBLEM)


def _counts(counts: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())
