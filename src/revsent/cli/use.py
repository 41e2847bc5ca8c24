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

@app.command()
def evaluate(
    model: Annotated[str, typer.Argument(help="Model directory.")],
    data: Annotated[Optional[list[str]], typer.Argument(
        help="Labelled files to score (default: the model's own test split, held out from training).",
        show_default=False)] = None,
    format: Format = None, text_field: TextField = None, label_field: LabelField = None,
    stars_field: StarsField = None, labels: Labels = None, business: Business = None,
    category: Category = None, limit: Limit = None, skip_bad: SkipBad = None,
    baseline: Annotated[bool, typer.Option(
        help="Also score TF-IDF + logistic regression fitted on the model's training split.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    device: Device = "auto",
):
    """Score a model: accuracy, per-class and macro precision/recall/F1, ROC-AUC, log loss, confusion matrix."""
    from ..evaluate import evaluate as evaluate_model
    from ..metrics import format_report

    def action():
        result = evaluate_model(model, tuple(data or ()), baseline=baseline, device=device, **_given(
            format=format, text_field=text_field, label_field=label_field, stars_field=stars_field,
            labels=labels, business=business, category=category, limit=limit, skip_bad=skip_bad))
        if as_json:
            typer.echo(json.dumps(result))
        else:
            typer.echo(format_report(result, result.get("baseline")))

    _run(action)


@app.command()
def predict(
    model: Annotated[str, typer.Argument(help="Model directory.")],
    texts: Annotated[Optional[list[str]], typer.Argument(help="Reviews to classify.", show_default=False)] = None,
    input: Annotated[Optional[str], typer.Option(
        "--input",
        "-i",
        help="File of reviews (any readable format), or - for one review per line on stdin.")] = None,
    output: Annotated[Optional[str], typer.Option(
        "--output",
        "-o",
        help="Write .jsonl, .csv or .parquet (default: JSON lines on stdout).")] = None,
    format: Format = None, text_field: TextField = None, id_field: IdField = None, skip_bad: SkipBad = None,
    batch_size: Annotated[int, typer.Option(help="Reviews per forward pass.")] = 256,
    force: Annotated[bool, typer.Option(help="Overwrite --output if it exists.")] = False,
    device: Device = "auto",
    threads: Annotated[Optional[int], typer.Option(help="CPU threads (default: all cores).")] = None,
    backend: Backend = "torch",
):
    """Classify reviews: label and a probability per class for each."""
    from ..predict import predict as predict_texts

    def action():
        result = predict_texts(model, texts or (), input=input, output=output, force=force, batch_size=batch_size,
                               device=device, threads=threads, backend=backend,
                               **_given(format=format, text_field=text_field, id_field=id_field, skip_bad=skip_bad))
        skipped = sum(result.get("records_skipped", {}).values())
        if output:
            typer.echo(f"{result['predicted']} predictions written to {output}", err=True)
        if skipped:
            typer.echo(f"skipped {skipped} bad record(s): " + _counts(result["records_skipped"]), err=True)

    _run(action)


@app.command()
def explain(
    model: Annotated[str, typer.Argument(help="Model directory.")],
    texts: Annotated[list[str], typer.Argument(help="Reviews to explain.", show_default=False)],
    as_json: Annotated[bool, typer.Option(
        "--json",
        help="One JSON object per review: label, probabilities, each word's attribution.")] = False,
    color: Annotated[Optional[bool], typer.Option(
        "--color/--no-color",
        help="Colour the words (default: when writing to a terminal).")] = None,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads (default: all cores).")] = None,
):
    """Which words drove each prediction: integrated gradients over the LSTM, exact shares of the n-gram branch."""
    from ..explain import render

    def action():
        from ..api import Classifier
        from ..device import set_threads

        set_threads(threads)
        clf = Classifier.load(model)
        for explanation in clf.explain(texts):
            if as_json:
                typer.echo(json.dumps(explanation.to_dict()))
            else:
                colored = sys.stdout.isatty() and not os.environ.get("NO_COLOR") if color is None else color
                typer.echo(render(explanation, colored))

    _run(action)


@app.command()
def serve(
    model: Annotated[str, typer.Argument(help="Model directory.")],
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
    threads: Annotated[Optional[int], typer.Option(help="CPU threads per process (default: all cores).")] = None,
    backend: Backend = "torch",
    log_level: Annotated[str, typer.Option(help="critical | error | warning | info | debug.")] = "info",
):
    """Serve a model over HTTP: /v1/predict, /v1/explain, a web page at /, /metrics, /docs."""
    from ..serve import ServeConfig, serve as run_server

    def action():
        config = ServeConfig(model, max_batch=max_batch, max_wait_ms=max_wait_ms, max_texts=max_texts,
                             max_chars=max_chars, max_body=max_body, max_queue=max_queue, threads=threads,
                             backend=backend)
        if workers < 1:
            raise ConfigError(f"--workers must be >= 1; got {workers}")
        run_server(config, host=host, port=port, workers=workers, log_level=log_level)

    _run(action)


@app.command()
def export(
    model: Annotated[str, typer.Argument(help="Model directory.")],
    format: Annotated[str, typer.Option("--format", help="onnx.")] = "onnx",
    int8: Annotated[bool, typer.Option(
        "--int8",
        help="Dynamic int8 quantisation of the weights (onnxruntime's).")] = False,
    out: Annotated[Optional[str], typer.Option(
        help="Package directory to write (default: the model directory itself).")] = None,
    force: Annotated[bool, typer.Option(help="Replace an earlier export.")] = False,
):
    """Export a model to ONNX, for `predict` / `serve --backend onnx` on onnxruntime without PyTorch."""
    from ..export import export as export_model

    def action():
        result = export_model(model, out, format=format, int8=int8, force=force)
        for name, size in result["files"].items():
            typer.echo(f"wrote {os.path.join(result['out'], name)} ({size / 1e6:.2f} MB)", err=True)
        typer.echo(f"{result['precision']} ONNX package in {result['out']}: {len(result['files'])} files, "
                   f"{result['bytes'] / 1e6:.2f} MB in all", err=True)

    _run(action)
