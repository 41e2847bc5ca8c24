"""`revsent evaluate`, `predict`, `explain`, `serve` and `export`: the commands that use a trained model."""
from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Optional

import typer

from ..errors import ConfigError
from .common import *  # noqa: F403 - the shared options
from .common import _counts, _given, _run

ModelArg = Annotated[str, typer.Argument(help="Model directory (made by `revsent train`).", show_default=False)]
Threads = Annotated[Optional[int], typer.Option(help="CPU threads. (default: all cores)", rich_help_panel=RUN)]
LogLevel = choice("LogLevel", ("critical", "error", "warning", "info", "debug"))
ExportFormat = choice("ExportFormat", ("onnx",))


def _plain(value):
    """A choice's plain string (the library takes strings); anything else as it is."""
    return None if value is None else str(value) if isinstance(value, str) else value


@app.command(epilog=examples(
    "revsent evaluate model",
    "revsent evaluate model new_reviews.csv --text-field body --stars-field rating --json",
    "revsent evaluate model yelp_2023.json --baseline"))
def evaluate(
    model: ModelArg,
    data: Annotated[Optional[list[str]], typer.Argument(
        help="Labelled files to score. (default: the model's own test split, held out from training)",
        show_default=False)] = None,
    format: Format = None, text_field: TextField = None, label_field: LabelField = None,
    stars_field: StarsField = None, labels: Labels = None, business: Business = None,
    category: Category = None, limit: Limit = None, skip_bad: SkipBad = None,
    baseline: Annotated[bool, typer.Option(
        "--baseline/--no-baseline",
        help="Also score TF-IDF + logistic regression fitted on the model's training split.")] = False,
    as_json: Annotated[bool, typer.Option("--json/--table", help="Print one JSON object, or a table.")] = False,
    device: Device = "auto",
):
    """Score a model: accuracy, per-class and macro precision/recall/F1, ROC-AUC, log loss, confusion matrix.

    Scoring reviews the model was trained on is warned about on stderr (and in the JSON's "warnings").
    """
    from ..evaluate import evaluate as evaluate_model
    from ..metrics import format_report

    def action():
        result = evaluate_model(model, tuple(data or ()), baseline=baseline, device=_plain(device), **_given(
            format=format, text_field=text_field, label_field=label_field, stars_field=stars_field,
            labels=labels, business=business, category=category, limit=limit, skip_bad=skip_bad))
        for warning in result.get("warnings", ()):
            typer.echo(f"warning: {warning}", err=True)
        if as_json:
            typer.echo(json.dumps(result))
        else:
            typer.echo(format_report(result, result.get("baseline")))

    _run(action)


@app.command(epilog=examples(
    'revsent predict model "The tacos were amazing" "Cold food, rude staff"',
    "revsent predict model --input reviews.csv --text-field body --output predictions.csv --keep all",
    "cat reviews.txt | revsent predict model --input - > predictions.jsonl"))
def predict(
    model: ModelArg,
    texts: Annotated[Optional[list[str]], typer.Argument(
        help="Reviews to classify; each comes out with its index and text.", show_default=False)] = None,
    input: Annotated[Optional[str], typer.Option(
        "--input", "-i", show_default=False,
        help="File of reviews (any readable format), or - for one review per line on stdin.")] = None,
    output: Annotated[Optional[str], typer.Option(
        "--output", "-o", show_default=False,
        help="Write .jsonl, .csv or .parquet, with the input's id column. (default: JSON lines on stdout)")] = None,
    keep: Annotated[Optional[list[str]], typer.Option(
        "--keep", show_default=False, metavar="COLUMN",
        help="Also copy this column of --input into the output (repeat it for more; 'all': every column; "
             "input_NAME where NAME is an output field). (default: the id column only)")] = None,
    format: Format = None, text_field: TextField = None, id_field: IdField = None,
    skip_bad: Annotated[Optional[bool], typer.Option(
        "--skip-bad/--no-skip-bad", rich_help_panel=DATA,
        help="Skip bad records instead of stopping at the first: their count on stderr and, with --output, "
             "each one (line, id, reason) in OUTPUT.skipped.jsonl. (default: no-skip-bad)")] = None,
    batch_size: Annotated[int, typer.Option(help="Reviews per forward pass.", rich_help_panel=RUN)] = 256,
    force: Annotated[bool, typer.Option("--force/--no-force", help="Overwrite --output if it exists.")] = False,
    device: Device = "auto",
    threads: Threads = None,
    backend: Backend = "torch",
):
    """Classify reviews: a label, a probability per class and known_words (how many of its words the
    model knows) for each.

    A text the model knows no word of (known_words 0) gets the model's prior as its label; stderr counts them.
    """
    from ..predict import predict as predict_texts

    def action():
        result = predict_texts(model, texts or (), input=input, output=output, force=force, keep=keep or (),
                               batch_size=batch_size, device=_plain(device), threads=threads, backend=_plain(backend),
                               **_given(format=format, text_field=text_field, id_field=id_field, skip_bad=skip_bad))
        if output:
            typer.echo(f"{result['predicted']} predictions written to {output}", err=True)
        if skip_bad and "records_skipped" in result:
            _report_skipped(result)
        _report_unknown(result["no_known_words"])

    _run(action)


def _report_skipped(result: dict) -> None:
    """One line on stderr: how many bad records --skip-bad left out, by reason, and where they are listed."""
    counts = result["records_skipped"]
    line = f"skipped {sum(counts.values())} bad record(s)" + (": " + _counts(counts) if counts else "")
    if result.get("skipped_list"):
        line += f"; listed in {result['skipped_list']}"
    typer.echo(line, err=True)


def _report_unknown(count: int) -> None:
    if count:
        typer.echo(f"{count} text(s) had no word the model knows: their label is the model's prior, not a reading",
                   err=True)


def _colour(color: bool | None) -> bool:
    """--color / --no-color, else colour on a terminal unless NO_COLOR is set (https://no-color.org)."""
    if color is not None:
        return color
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


@app.command(epilog=examples(
    'revsent explain model "Great food, rude staff."',
    'revsent explain model "Great food, rude staff." --no-color | less',
    "revsent explain model --input reviews.csv --text-field body > explanations.jsonl"))
def explain(
    model: ModelArg,
    texts: Annotated[Optional[list[str]], typer.Argument(help="Reviews to explain.", show_default=False)] = None,
    input: Annotated[Optional[str], typer.Option(
        "--input", "-i", show_default=False,
        help="File of reviews (any readable format), or - for one review per line on stdin.")] = None,
    format: Format = None, text_field: TextField = None, id_field: IdField = None, skip_bad: SkipBad = None,
    as_json: Annotated[Optional[bool], typer.Option(
        "--json/--text", show_default=False,
        help="One JSON object per review (its index or id, label, probabilities, known_words, each word's "
             "attribution), or the text with its words coloured. (default: --json with --input, else --text)")] = None,
    color: Annotated[Optional[bool], typer.Option(
        "--color/--no-color", show_default=False,
        help="Colour the words; without colour each word is followed by its attribution. "
             "(default: colour on a terminal, unless NO_COLOR is set)")] = None,
    threads: Threads = None,
):
    """Which words drove each prediction: integrated gradients over the LSTM, exact shares of the n-gram branch."""
    from ..explain import explain_reviews, render

    def action():
        explanations, tally = explain_reviews(model, texts or (), input=input, threads=threads, **_given(
            format=format, text_field=text_field, id_field=id_field, skip_bad=skip_bad))
        json_lines = as_json if as_json is not None else input is not None
        coloured = _colour(color)
        no_words = 0
        for where, explanation in explanations:
            no_words += explanation.known_words == 0
            if json_lines:
                typer.echo(json.dumps({**where, **explanation.to_dict()}))
            else:
                typer.echo(render(explanation, coloured), color=coloured)  # kept when asked for, even in a pipe
        if skip_bad and tally is not None:
            _report_skipped(tally.as_dict())
        _report_unknown(no_words)

    _run(action)


@app.command(epilog=examples(
    "revsent serve model",
    "revsent serve model --host 0.0.0.0 --port 8080 --workers 4",
    "revsent serve model --backend onnx --threads 2"))
def serve(
    model: ModelArg,
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes, each with its own copy of the model.")] = 1,
    max_batch: Annotated[int, typer.Option(
        help="Texts per model call when merging concurrent requests (1: no merging).")] = 64,
    max_wait_ms: Annotated[float, typer.Option(
        help="The longest a request waits for others to share its model call.")] = 2.0,
    max_texts: Annotated[int, typer.Option(help="Texts per request (413 above).")] = 256,
    max_chars: Annotated[int, typer.Option(help="Characters per text (413 above).")] = 50_000,
    max_body: Annotated[int, typer.Option(help="Bytes per request body (413 above).")] = 4 << 20,
    max_queue: Annotated[int, typer.Option(help="Texts waiting for the model (429 above).")] = 4096,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads per process. (default: all cores)")] = None,
    backend: Backend = "torch",
    log_level: Annotated[LogLevel, typer.Option(help="How much the server logs.")] = "info",
):
    """Serve a model over HTTP: /v1/predict, /v1/explain, a web page at /, /metrics, /docs."""
    from ..serve import ServeConfig, serve as run_server

    def action():
        config = ServeConfig(model, max_batch=max_batch, max_wait_ms=max_wait_ms, max_texts=max_texts,
                             max_chars=max_chars, max_body=max_body, max_queue=max_queue, threads=threads,
                             backend=_plain(backend))
        if workers < 1:
            raise ConfigError(f"--workers must be >= 1; got {workers}")
        run_server(config, host=host, port=port, workers=workers, log_level=_plain(log_level))

    _run(action)


@app.command(epilog=examples(
    "revsent export model",
    "revsent export model --int8 --out model-int8",
    "revsent predict model-int8 --backend onnx \"Great food\""))
def export(
    model: ModelArg,
    format: Annotated[ExportFormat, typer.Option("--format", help="The package's format.")] = "onnx",
    int8: Annotated[bool, typer.Option(
        "--int8/--no-int8",
        help="Dynamic int8 quantisation of the weights (onnxruntime's).")] = False,
    out: Annotated[Optional[str], typer.Option(
        show_default=False, help="Package directory to write. (default: the model directory itself)")] = None,
    force: Annotated[bool, typer.Option("--force/--no-force", help="Replace an earlier export.")] = False,
):
    """Export a model to ONNX, for `predict` / `serve --backend onnx` on onnxruntime without PyTorch."""
    from ..export import export as export_model

    def action():
        result = export_model(model, out, format=_plain(format), int8=int8, force=force)
        for name, size in result["files"].items():
            typer.echo(f"wrote {os.path.join(result['out'], name)} ({size / 1e6:.2f} MB)", err=True)
        typer.echo(f"{result['precision']} ONNX package in {result['out']}: {len(result['files'])} files, "
                   f"{result['bytes'] / 1e6:.2f} MB in all", err=True)

    _run(action)
