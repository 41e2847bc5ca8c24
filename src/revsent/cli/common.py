"""What every `revsent` command shares: the Typer app, the data options, and turning errors into one line."""
from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer

from ..errors import RevsentError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train, evaluate and use LSTM sentiment classifiers on review text.")

DATA, MODEL, TRAIN, RUN = "Data", "Model", "Training", "Run"

# Data options, shared by every command that reads data (names match DataConfig fields).
Format = Annotated[Optional[str], typer.Option(
    help="auto | yelp | jsonl | csv | tsv | parquet | tar (default auto: by extension and content).",
    rich_help_panel=DATA)]
TextField = Annotated[Optional[str], typer.Option(
    help="Field holding the review text (default: text).",
    rich_help_panel=DATA)]
LabelField = Annotated[Optional[str], typer.Option(help="Field holding labels used as they are.", rich_help_panel=DATA)]
StarsField = Annotated[Optional[str], typer.Option(
    help="Field holding star ratings, mapped by --labels.",
    rich_help_panel=DATA)]
Labels = Annotated[Optional[str], typer.Option(
    help="binary (stars > 3 positive) | polarity (1-2 vs 4-5, 3 dropped) | stars (5 classes).",
    rich_help_panel=DATA)]
IdField = Annotated[Optional[str], typer.Option(
    help="Field holding a record id (default: review_id or id when present).",
    rich_help_panel=DATA)]
Business = Annotated[Optional[str], typer.Option(
    help="Yelp business.json (or the Yelp tar), for --category.",
    rich_help_panel=DATA)]
Category = Annotated[Optional[str], typer.Option(
    help="Keep only reviews of businesses in this category, e.g. Restaurants.",
    rich_help_panel=DATA)]
Limit = Annotated[Optional[int], typer.Option(help="Use the first N usable records.", rich_help_panel=DATA)]
SkipBad = Annotated[Optional[bool], typer.Option(
    "--skip-bad/--no-skip-bad",
    help="Skip bad records and count them instead of stopping at the first.",
    rich_help_panel=DATA)]
Device = Annotated[str, typer.Option(help="auto | cpu | cuda.", rich_help_panel=RUN)]
Precision = Annotated[Optional[str], typer.Option(
    help="auto | fp32 | bf16: training's arithmetic (auto: bf16 where the GPU or CPU computes it natively).",
    rich_help_panel=RUN)]
Backend = Annotated[str, typer.Option(
    help="torch | onnx (the model's ONNX export on onnxruntime, without PyTorch; see `revsent export`).")]
DataArg = Annotated[Optional[list[str]], typer.Argument(
    help="Review files (Yelp JSON/.gz/.tar, JSON lines, CSV, TSV, Parquet), 'imdb' or 'rt' for a bundled sample "
         "(default imdb), or (train) a dataset made by `revsent prepare`.",
    show_default=False)]
# Tokenizer options, shared by train and prepare (names match ModelConfig fields).
VocabSize = Annotated[Optional[int], typer.Option(
    help="Words kept: ids 1..N-1 for the N-1 most frequent of the training split.",
    rich_help_panel=MODEL)]
Oov = Annotated[Optional[bool], typer.Option(
    "--oov/--no-oov",
    help="Map unknown words to an OOV id instead of dropping them.",
    rich_help_panel=MODEL)]
MaxLen = Annotated[Optional[int], typer.Option(help="Truncate reviews to this many words.", rich_help_panel=MODEL)]
Truncate = Annotated[Optional[str], typer.Option(
    help="Which part of a long review to keep: head | tail | head_tail (the first quarter of --max-len words and the "
         "rest from the end).",
    rich_help_panel=MODEL)]
MinCount = Annotated[Optional[int], typer.Option(
    help="Leave out words seen fewer times in the training texts (1 keeps every word, as Keras).",
    rich_help_panel=MODEL)]


def _given(**options) -> dict:
    """The options the user actually gave (None means 'keep the preset's or model's value')."""
    return {key: value for key, value in options.items() if value is not None}


DATA_OPTIONS = ("format", "text_field", "label_field", "stars_field", "labels", "id_field", "business", "category",
                "limit", "skip_bad", "vocab_size", "oov", "max_len", "truncate", "min_count", "test_split", "seed")


def _data_settings(args: dict) -> dict:
    """The data, tokenizer and split settings among a command's arguments (train, prepare, tune)."""
    return {"paths": tuple(args["data"]) if args["data"] else None,
            "test_data": tuple(args["test_data"]) if args["test_data"] else None,
            **{name: args[name] for name in DATA_OPTIONS}}


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


def _counts(counts: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())
