"""The ``revsent`` command: a thin Typer layer over the library.

Each command parses its options, builds the config, calls the library function of the same
name, and turns a :class:`~revsent.errors.RevsentError` into one line on stderr and an exit code.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Optional

import typer

from .errors import ConfigError, RevsentError

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


# Options of `train` (names match the config's fields).
Out = Annotated[str, typer.Option(help="Model directory to write.", rich_help_panel=RUN)]
Preset = Annotated[str, typer.Option(help="seed (the tutorial's model) | default | quick.", rich_help_panel=RUN)]
EmbeddingDim = Annotated[Optional[int], typer.Option(rich_help_panel=MODEL)]
HiddenSize = Annotated[Optional[int], typer.Option(rich_help_panel=MODEL)]
Layers = Annotated[Optional[int], typer.Option(rich_help_panel=MODEL)]
Bidirectional = Annotated[Optional[bool], typer.Option("--bidirectional/--no-bidirectional", rich_help_panel=MODEL)]
Dropout = Annotated[Optional[float], typer.Option(help="Dropout on the LSTM's inputs.", rich_help_panel=MODEL)]
RecurrentDropout = Annotated[Optional[float], typer.Option(
    help="DropConnect on the recurrent weights.",
    rich_help_panel=MODEL)]
WordDropout = Annotated[Optional[float], typer.Option(
    help="While training, drop each vocabulary word (all its occurrences) with this chance per batch.",
    rich_help_panel=MODEL)]
Pooling = Annotated[Optional[str], typer.Option(help="last | max | mean | max_mean.", rich_help_panel=MODEL)]
Dense = Annotated[Optional[str], typer.Option(
    help="Extra ReLU layers, e.g. 128,64 ('' for none).",
    rich_help_panel=MODEL)]
NgramBuckets = Annotated[Optional[int], typer.Option(
    help="Hashed n-gram slots of the wide n-gram branch (0: none).",
    rich_help_panel=MODEL)]
NgramC = Annotated[Optional[float], typer.Option(
    help="Inverse L2 strength of the wide branch's logistic regression.",
    rich_help_panel=MODEL)]
NgramMinDf = Annotated[Optional[int], typer.Option(
    help="The wide branch keeps the n-grams of at least this many training reviews.",
    rich_help_panel=MODEL)]
NgramOrder = Annotated[Optional[int], typer.Option(
    help="The wide branch's longest n-gram: 2 or 3.",
    rich_help_panel=MODEL)]
NgramWeighting = Annotated[Optional[str], typer.Option(
    help="tfidf | nb (NBSVM's log-count ratios).",
    rich_help_panel=MODEL)]
Init = Annotated[Optional[str], typer.Option(help="keras | torch initialisation.", rich_help_panel=MODEL)]
EmbeddingInit = Annotated[Optional[str], typer.Option(
    help="random | ppmi (word vectors of the training texts: PPMI + SVD).",
    rich_help_panel=MODEL)]
Members = Annotated[Optional[int], typer.Option(
    help="LSTMs averaged, each trained apart on its own validation slice (a bag).",
    rich_help_panel=MODEL)]
Epochs = Annotated[Optional[int], typer.Option(rich_help_panel=TRAIN)]
BatchSize = Annotated[Optional[int], typer.Option(rich_help_panel=TRAIN)]
Lr = Annotated[Optional[float], typer.Option(help="Adam's learning rate.", rich_help_panel=TRAIN)]
WeightDecay = Annotated[Optional[float], typer.Option(rich_help_panel=TRAIN)]
ClipNorm = Annotated[Optional[float], typer.Option(help="Clip the gradient norm.", rich_help_panel=TRAIN)]
Patience = Annotated[Optional[int], typer.Option(
    help="Stop after N epochs without a better validation loss.",
    rich_help_panel=TRAIN)]
AverageWeights = Annotated[Optional[bool], typer.Option(
    "--average-weights/--no-average-weights",
    help="Also validate the mean of the epochs' weights; keep it when its validation loss is lower (default preset: "
         "on).",
    rich_help_panel=TRAIN)]
TestSplit = Annotated[Optional[float], typer.Option(
    help="Held-out test fraction, scored once at the end (default 0.2, the tutorial's).",
    rich_help_panel=TRAIN)]
TestData = Annotated[Optional[list[str]], typer.Option(
    help="Test on this labelled file instead of a split; all of DATA then trains (repeatable).",
    rich_help_panel=TRAIN)]
ValFraction = Annotated[Optional[float], typer.Option(
    help="Fraction of the training part kept for validation: early stopping and the best epoch are chosen there "
         "(default preset 0.1, seed 0).",
    rich_help_panel=TRAIN)]
Seed = Annotated[Optional[int], typer.Option(
    help="Split and initialisation seed (default 36, the tutorial's).",
    rich_help_panel=TRAIN)]
Baseline = Annotated[Optional[bool], typer.Option(
    "--baseline/--no-baseline",
    help="Also fit TF-IDF + logistic regression on the same split.",
    rich_help_panel=TRAIN)]
ClassWeight = Annotated[Optional[str], typer.Option(
    help="balanced: weight classes by n / (k * count) in the loss.",
    rich_help_panel=TRAIN)]
Adversarial = Annotated[Optional[float], typer.Option(
    help="Adversarial training: also train on each review's embedded input moved this fraction of its norm in the "
         "direction that raises its loss (e.g. 0.02; about 2x the time).",
    rich_help_panel=TRAIN)]
Threshold = Annotated[Optional[str], typer.Option(
    help="Two classes: label the second class from this probability on: a value (0.7), or chosen on the validation "
         "slice: f1, precision:P (the most recall at precision P), recall:R. Default: the most probable class.",
    rich_help_panel=TRAIN)]
InitFromModel = Annotated[Optional[str], typer.Option(
    help="Start from this trained model (fine-tuning): its vocabulary, model settings and LSTM weights; the n-gram "
         "branch is fitted afresh.",
    rich_help_panel=TRAIN)]
DeviceTrain = Annotated[Optional[str], typer.Option(help="auto | cpu | cuda.", rich_help_panel=RUN)]
Threads = Annotated[Optional[int], typer.Option(help="CPU threads (default: all cores).", rich_help_panel=RUN)]
CheckpointMinutes = Annotated[Optional[float], typer.Option(
    help="Also checkpoint mid-epoch this often (default 10).",
    rich_help_panel=RUN)]
Resume = Annotated[bool, typer.Option(
    help="Continue the interrupted run in --out from its last checkpoint.",
    rich_help_panel=RUN)]
Force = Annotated[bool, typer.Option(help="Replace the model already in --out.", rich_help_panel=RUN)]
Quiet = Annotated[bool, typer.Option(help="No progress output.", rich_help_panel=RUN)]


@app.command()
def train(
    data: DataArg = None,
    out: Out = ...,
    preset: Preset = "default",
    format: Format = None,
    text_field: TextField = None,
    label_field: LabelField = None,
    stars_field: StarsField = None,
    labels: Labels = None,
    id_field: IdField = None,
    business: Business = None,
    category: Category = None,
    limit: Limit = None,
    skip_bad: SkipBad = None,
    vocab_size: VocabSize = None,
    oov: Oov = None,
    max_len: MaxLen = None,
    truncate: Truncate = None,
    min_count: MinCount = None,
    embedding_dim: EmbeddingDim = None,
    hidden_size: HiddenSize = None,
    layers: Layers = None,
    bidirectional: Bidirectional = None,
    dropout: Dropout = None,
    recurrent_dropout: RecurrentDropout = None,
    word_dropout: WordDropout = None,
    pooling: Pooling = None,
    dense: Dense = None,
    ngram_buckets: NgramBuckets = None,
    ngram_c: NgramC = None,
    ngram_min_df: NgramMinDf = None,
    ngram_order: NgramOrder = None,
    ngram_weighting: NgramWeighting = None,
    init: Init = None,
    embedding_init: EmbeddingInit = None,
    members: Members = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    lr: Lr = None,
    weight_decay: WeightDecay = None,
    clip_norm: ClipNorm = None,
    patience: Patience = None,
    average_weights: AverageWeights = None,
    test_split: TestSplit = None,
    test_data: TestData = None,
    val_fraction: ValFraction = None,
    seed: Seed = None,
    baseline: Baseline = None,
    class_weight: ClassWeight = None,
    adversarial: Adversarial = None,
    threshold: Threshold = None,
    init_from: InitFromModel = None,
    device: DeviceTrain = None,
    precision: Precision = None,
    threads: Threads = None,
    checkpoint_minutes: CheckpointMinutes = None,
    resume: Resume = False,
    force: Force = False,
    quiet: Quiet = False,
):
    """Train a model on review data (files, or a dataset made by `revsent prepare`) and write it to --out."""
    args = dict(locals())
    from .progress import Progress
    from .training import train as train_model

    def action():
        cfg, start = _train_config(args)
        result = train_model(cfg, out, resume=resume, force=force, progress=Progress(not quiet), start=start)
        if result.metrics:  # empty in a torchrun process other than rank 0: rank 0 reports
            _report_training(result.metrics, result.out)

    _run(action)


# The model and training options of `train`, by their field names (those the user gave override the preset).
TRAIN_OPTIONS = ("embedding_dim", "hidden_size", "layers", "bidirectional", "dropout", "recurrent_dropout",
                 "word_dropout", "pooling", "ngram_buckets", "ngram_c", "ngram_min_df", "ngram_order", "ngram_weighting", "init",
                 "embedding_init", "members", "epochs", "batch_size", "lr", "weight_decay", "clip_norm", "patience",
                 "average_weights", "val_fraction", "baseline", "class_weight", "init_from", "adversarial", "threshold",
                 "device", "precision", "threads", "checkpoint_minutes")


def _train_config(args: dict):
    """The run's config from `train`'s arguments, and the --init-from model (read once) or None."""
    from .config import Config
    from .data.store import check_settings, is_dataset

    dense = args["dense"]
    try:
        dense_sizes = None if dense is None else tuple(int(s) for s in dense.split(",") if s.strip())
    except ValueError:
        raise ConfigError(f"--dense takes layer sizes separated by commas, e.g. 128,64. "
                          f"Got {dense!r} instead.") from None
    options = _given(**_data_settings(args), **{name: args[name] for name in TRAIN_OPTIONS}, dense=dense_sizes)
    cfg, start = Config.from_preset(args["preset"], **options), None
    if cfg.train.init_from is not None:  # fine-tuning: that model's vocabulary, settings and weights
        from .training.init_from import InitFrom

        start = InitFrom.load(cfg.train.init_from)
        cfg = start.settings(cfg, options)
    data = args["data"]
    if data and len(data) == 1 and is_dataset(data[0]):
        check_settings(data[0], cfg, set(options))
    return cfg, start


def _report_training(metrics: dict, out) -> None:
    """What `train` prints at the end: the validation figures the weights were chosen by, the test report."""
    from .metrics import format_report

    skipped = sum(metrics["records_skipped"].values())
    bag = metrics.get("members", 1)
    if metrics.get("validation") and bag > 1:
        v = metrics["validation"]
        typer.echo(f"validation, mean of {bag} members ({v['n']} reviews of the training part each, its own; "
                   f"chose epochs {metrics['best_epoch']} of {metrics['epochs_run']}): loss {v['loss']:.4f}, "
                   f"accuracy {v['accuracy']:.4f}")
    elif metrics.get("validation"):
        v = metrics["validation"]
        best = metrics["best_epoch"]
        kept = f"the mean of epochs 1-{best}" if metrics.get("averaged") else f"epoch {best}"
        typer.echo(f"validation ({v['n']} reviews of the training part; chose {kept} of "
                   f"{metrics['epochs_run']}): loss {v['loss']:.4f}, accuracy {v['accuracy']:.4f}")
    n_epochs = sum(metrics["epochs_run"]) if bag > 1 else metrics["epochs_run"]
    typer.echo(f"test metrics ({metrics['n_test']} held-out reviews, scored once; {n_epochs} epoch(s)"
               f"{f' over {bag} members' if bag > 1 else ''}, {metrics['train_seconds']:.1f}s training):")
    typer.echo(format_report(metrics, metrics.get("baseline_tfidf_lr")))
    if metrics.get("baseline_tfidf_lr", {}).get("trained_on"):
        typer.echo(f"TF-IDF+LR learnt from {metrics['baseline_tfidf_lr']['trained_on']}")
    if skipped:
        typer.echo(f"skipped {skipped} bad record(s): " + _counts(metrics["records_skipped"]))
    typer.echo(f"model written to {out}")


def _counts(counts: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


@app.command()
def prepare(
    data: DataArg = None,
    out: Annotated[str, typer.Option(help="Dataset directory to write.", rich_help_panel=RUN)] = ...,
    preset: Annotated[str, typer.Option(
        help="Tokenizer settings of this preset: seed | default | quick.",
        rich_help_panel=RUN)] = "default",
    format: Format = None, text_field: TextField = None, label_field: LabelField = None,
    stars_field: StarsField = None, labels: Labels = None, id_field: IdField = None,
    business: Business = None, category: Category = None, limit: Limit = None, skip_bad: SkipBad = None,
    vocab_size: VocabSize = None, oov: Oov = None, max_len: MaxLen = None, truncate: Truncate = None,
    min_count: MinCount = None,
    test_split: Annotated[Optional[float], typer.Option(
        help="Held-out test fraction (default 0.2, the tutorial's).",
        rich_help_panel=TRAIN)] = None,
    test_data: Annotated[Optional[list[str]], typer.Option(
        help="Hold out this labelled file as the test part instead of a split (repeatable).",
        rich_help_panel=TRAIN)] = None,
    seed: Annotated[Optional[int], typer.Option(
        help="Split seed (default 36, the tutorial's).",
        rich_help_panel=TRAIN)] = None,
    init_from: Annotated[Optional[str], typer.Option(
        help="Number the words by this trained model's vocabulary (a dataset for `train --init-from` it).",
        rich_help_panel=TRAIN)] = None,
    force: Annotated[bool, typer.Option(help="Replace the dataset already in --out.", rich_help_panel=RUN)] = False,
    quiet: Annotated[bool, typer.Option(help="No progress output.", rich_help_panel=RUN)] = False,
):
    """Read review data once into a dataset directory (memory-mapped token ids, labels, split) for train and
    evaluate."""
    args = dict(locals())
    from .config import Config
    from .data.build import prepare as prepare_dataset
    from .progress import Progress

    def action():
        options = _given(**_data_settings(args), init_from=init_from)
        cfg, encoder = Config.from_preset(preset, **options), None
        if init_from is not None:  # its vocabulary numbers the words (its weights are not needed here)
            from . import artifacts
            from .config import fine_tuning

            cfg = fine_tuning(cfg, artifacts.read_config(init_from)[0], options)
            encoder = artifacts.load_encoder(init_from, cfg)
        ds = prepare_dataset(cfg, out, force=force, progress=Progress(not quiet), encoder=encoder)
        manifest = ds.manifest
        typer.echo(f"{manifest['n']} reviews ({manifest['n_train']} training, {manifest['n_heldout']} held out), "
                   f"{manifest['n_tokens']} tokens, "
                   f"classes: {', '.join(manifest['classes'])}; {manifest['seconds']:.1f}s")
        skipped = manifest["counts"]["records_skipped"]
        if skipped:
            typer.echo(f"skipped {sum(skipped.values())} bad record(s): " + _counts(skipped))
        filtered = manifest["counts"]["records_filtered"]
        if filtered:
            typer.echo(f"filtered {sum(filtered.values())} record(s): " + _counts(filtered))
        typer.echo(f"dataset written to {ds.path}")

    _run(action)


@app.command()
def tune(
    data: DataArg = None,
    out: Annotated[str, typer.Option(
        help="Tuning directory: the study (continued when run again), trials table, plots and the best model.",
        rich_help_panel=RUN)] = "tune",
    trials: Annotated[Optional[int], typer.Option(help="Run this many more trials.", rich_help_panel=RUN)] = None,
    minutes: Annotated[Optional[float], typer.Option(
        help="Search for this long (the best model then trains once more).",
        rich_help_panel=RUN)] = None,
    preset: Annotated[str, typer.Option(
        help="Settings the search starts from: default | quick | seed.",
        rich_help_panel=RUN)] = "default",
    format: Format = None, text_field: TextField = None, label_field: LabelField = None,
    stars_field: StarsField = None, labels: Labels = None, id_field: IdField = None,
    business: Business = None, category: Category = None, limit: Limit = None, skip_bad: SkipBad = None,
    vocab_size: VocabSize = None, oov: Oov = None, max_len: MaxLen = None, truncate: Truncate = None,
    min_count: MinCount = None,
    epochs: Annotated[Optional[int], typer.Option(
        help="Most epochs per trial (early stopping and pruning may stop sooner).",
        rich_help_panel=TRAIN)] = None,
    val_fraction: Annotated[Optional[float], typer.Option(
        help="Validation slice of the training part: every choice is made there.",
        rich_help_panel=TRAIN)] = None,
    test_split: Annotated[Optional[float], typer.Option(
        help="Held-out test fraction, scored once by the final model.",
        rich_help_panel=TRAIN)] = None,
    test_data: Annotated[Optional[list[str]], typer.Option(
        help="Test on this labelled file instead of a split.",
        rich_help_panel=TRAIN)] = None,
    seed: Annotated[Optional[int], typer.Option(
        help="Split, sampler and initialisation seed.",
        rich_help_panel=TRAIN)] = None,
    device: Annotated[Optional[str], typer.Option(help="auto | cpu | cuda.", rich_help_panel=RUN)] = None,
    precision: Precision = None,
    threads: Annotated[Optional[int], typer.Option(
        help="CPU threads (default: all cores).",
        rich_help_panel=RUN)] = None,
    quiet: Annotated[bool, typer.Option(help="No progress output.", rich_help_panel=RUN)] = False,
):
    """Search the model's settings with Optuna (TPE, pruned on validation loss), then train the best ones."""
    args = dict(locals())
    from .config import Config
    from .metrics import format_report
    from .progress import Progress
    from .training.tune import tune as tune_settings

    def action():
        cfg = Config.from_preset(preset, **_given(
            **_data_settings(args),
            epochs=epochs, val_fraction=val_fraction, device=device, precision=precision, threads=threads))
        result = tune_settings(cfg, out, trials=trials, minutes=minutes, progress=Progress(not quiet))
        typer.echo(f"{result.n_trials} trial(s) in {result.out / 'study.db'}; best validation loss "
                   f"{result.best_val_loss:.4f} with {result.best_params}")
        metrics = result.metrics
        typer.echo(f"test metrics of the best settings ({metrics['n_test']} held-out reviews, scored once):")
        typer.echo(format_report(metrics))
        typer.echo(f"model written to {result.out / 'model'}")

    _run(action)


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
    from .evaluate import evaluate as evaluate_model
    from .metrics import format_report

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
    from .predict import predict as predict_texts

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
    from .explain import render

    def action():
        from .api import Classifier
        from .device import set_threads

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
    from .serve import ServeConfig, serve as run_server

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
    from .export import export as export_model

    def action():
        result = export_model(model, out, format=format, int8=int8, force=force)
        for name, size in result["files"].items():
            typer.echo(f"wrote {os.path.join(result['out'], name)} ({size / 1e6:.2f} MB)", err=True)
        typer.echo(f"{result['precision']} ONNX package in {result['out']}: {len(result['files'])} files, "
                   f"{result['bytes'] / 1e6:.2f} MB in all", err=True)

    _run(action)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
