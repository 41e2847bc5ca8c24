"""`revsent train`, `prepare` and `tune`: the commands that read data and fit models."""
from __future__ import annotations

import inspect
import json
from typing import Annotated, Optional

import typer

from ..config import CLASS_WEIGHTS, DEVICES, EMBEDDING_INITS, POOLINGS, PRESETS, SCHEDULES
from ..errors import ConfigError
from .common import *  # noqa: F403 - the shared options
from .common import _data_settings, _given, _run

# Options of `train` (names match the config's fields; each help ends with what the presets set).
Out = Annotated[str, typer.Option(help="Model directory to write.", rich_help_panel=RUN, show_default=False)]
Preset = Annotated[choice("Preset", PRESETS), typer.Option(
    help="Settings to start from: seed (the tutorial's model), default (the most accurate), quick (minutes). "
         "`revsent presets NAME` lists every setting.", rich_help_panel=RUN)]
EmbeddingDim = Annotated[Optional[int], setting("embedding_dim", "Word vector size.")]
HiddenSize = Annotated[Optional[int], setting("hidden_size", "LSTM units (per direction).")]
Layers = Annotated[Optional[int], setting("layers", "Stacked LSTM layers.")]
Bidirectional = Annotated[Optional[bool], setting(
    "bidirectional", "Read each review both ways.", "--bidirectional/--no-bidirectional")]
Dropout = Annotated[Optional[float], setting("dropout", "Dropout on the LSTM's inputs.")]
RecurrentDropout = Annotated[Optional[float], setting("recurrent_dropout", "DropConnect on the recurrent weights.")]
WordDropout = Annotated[Optional[float], setting(
    "word_dropout", "While training, drop each vocabulary word (all its occurrences) with this chance per batch.")]
Pooling = Annotated[Optional[choice("Pooling", POOLINGS)], setting(
    "pooling", "How the LSTM's states become one vector.")]
Dense = Annotated[Optional[str], setting("dense", "Extra ReLU layers, e.g. 128,64 ('' for none).")]
NgramBuckets = Annotated[Optional[int], setting(
    "ngram_buckets", "Hashed n-gram slots of the wide n-gram branch (0: no n-gram branch).")]
NgramC = Annotated[Optional[float], setting(
    "ngram_c", "Inverse L2 strength of the n-gram branch's logistic regression (none: chosen on the validation slice).")]
NgramMinDf = Annotated[Optional[int], setting(
    "ngram_min_df", "The n-gram branch keeps the n-grams of at least this many training reviews.")]
NgramOrder = Annotated[Optional[int], setting("ngram_order", "The n-gram branch's longest n-gram: 2 or 3.")]
NgramWeighting = Annotated[Optional[choice("NgramWeighting", ("tfidf", "nb"))], setting(
    "ngram_weighting", "tfidf, or nb (NBSVM's log-count ratios).")]
Init = Annotated[Optional[choice("Init", ("keras", "torch"))], setting("init", "Initialisation: keras (Glorot, orthogonal) or torch's.")]
EmbeddingInit = Annotated[Optional[choice("EmbeddingInit", EMBEDDING_INITS)], setting(
    "embedding_init", "random, or ppmi (word vectors of the training texts: PPMI + SVD).")]
Members = Annotated[Optional[int], setting(
    "members", "LSTMs averaged, each trained apart on its own validation slice (a bag).")]
Epochs = Annotated[Optional[int], setting("epochs", "Most epochs (early stopping may stop sooner).", panel=TRAIN)]
BatchSize = Annotated[Optional[int], setting("batch_size", "Reviews per step.", panel=TRAIN)]
Lr = Annotated[Optional[float], setting("lr", "Adam's learning rate.", panel=TRAIN)]
WeightDecay = Annotated[Optional[float], setting("weight_decay", "Adam's L2 weight decay.", panel=TRAIN)]
ClipNorm = Annotated[Optional[float], setting("clip_norm", "Clip the gradient norm (none: no clipping).", panel=TRAIN)]
Patience = Annotated[Optional[int], setting(
    "patience", "Stop after N epochs without a better validation loss (none: run every epoch).", panel=TRAIN)]
AverageWeights = Annotated[Optional[bool], setting(
    "average_weights", "Also validate the mean of the epochs' weights; keep it when its validation loss is lower.",
    "--average-weights/--no-average-weights", panel=TRAIN)]
TestSplit = Annotated[Optional[float], setting(
    "test_split", "Held-out test fraction, scored once at the end (0.2 is the tutorial's).", panel=TRAIN)]
TestData = Annotated[Optional[list[str]], typer.Option(
    help="Test on this labelled file instead of a split; all of DATA then trains (repeatable).",
    rich_help_panel=TRAIN)]
ValFraction = Annotated[Optional[float], setting(
    "val_fraction", "Fraction of the training part kept for validation: early stopping, the best epoch, the "
    "calibration and the n-gram branch's C are chosen there (0: none, as the tutorial).", panel=TRAIN)]
Seed = Annotated[Optional[int], setting(
    "seed", "Split and initialisation seed (36 is the tutorial's random_state).", panel=TRAIN)]
Baseline = Annotated[Optional[bool], setting(
    "baseline", "Also fit TF-IDF + logistic regression on the same split and report it beside the model.",
    "--baseline/--no-baseline", panel=TRAIN)]
ClassWeight = Annotated[Optional[choice("ClassWeight", CLASS_WEIGHTS)], setting(
    "class_weight", "balanced: weight classes by n / (k * count) in the loss (none: unweighted).", panel=TRAIN)]
Adversarial = Annotated[Optional[float], setting(
    "adversarial", "Adversarial training: also train on each review's embedded input moved this fraction of its "
    "norm in the direction that raises its loss (about 2x the time; 0: off).", panel=TRAIN)]
Unlabelled = Annotated[Optional[list[str]], typer.Option(
    help="Reviews without labels to learn from too (semi-supervised: --vat and --entropy-weight on a batch of them "
         "beside each labelled batch; any format DATA can have; repeatable). None may be among the test reviews.",
    rich_help_panel=TRAIN, show_default=False)]
Vat = Annotated[Optional[float], setting(
    "vat", "With --unlabelled: virtual adversarial training, each unlabelled review moved this fraction of its norm "
    "where the prediction changes most (0: off).", panel=TRAIN)]
EntropyWeight = Annotated[Optional[float], setting(
    "entropy_weight", "With --unlabelled: the weight of the predictions' entropy on unlabelled reviews (0: off).",
    panel=TRAIN)]
EncoderLr = Annotated[Optional[float], setting(
    "encoder_lr", "The embedding's and LSTMs' learning rate as a share of --lr (below 1: a pretrained encoder "
    "changes less than the layers above it, ULMFiT's discriminative rates).", panel=TRAIN)]
Schedule = Annotated[Optional[choice("Schedule", SCHEDULES)], setting(
    "schedule", "The learning rate over the run: constant, or stlr (ULMFiT's slanted triangular: rising over the "
    "first tenth of the steps to --lr, then falling to a 32nd of it).", panel=TRAIN)]
GradualUnfreezing = Annotated[Optional[bool], setting(
    "gradual_unfreezing", "ULMFiT's gradual unfreezing: the first epoch trains only the layers above the LSTMs, "
    "each later epoch one layer group more (the LSTM layers from the top down, then the embedding).",
    "--gradual-unfreezing/--no-gradual-unfreezing", panel=TRAIN)]
Threshold = Annotated[Optional[str], setting(
    "threshold", "Two classes: label the second class from this probability on: a value (0.7), or chosen on the "
    "validation slice: f1, precision:P (the most recall at precision P), recall:R (none: the most probable class).",
    panel=TRAIN)]
InitFromModel = Annotated[Optional[str], typer.Option(
    help="Start from this trained model (fine-tuning): its vocabulary, model settings and LSTM weights; the n-gram "
         "branch is fitted afresh. Or from a language model (`revsent pretrain`): its vocabulary, embedding and LSTMs.",
    rich_help_panel=TRAIN)]
DeviceTrain = Annotated[Optional[choice("Device", DEVICES)], setting("device", "Where to train (auto: CUDA when present).", panel=RUN)]
Threads = Annotated[Optional[int], typer.Option(help="CPU threads. (default: all cores)", rich_help_panel=RUN)]
CheckpointMinutes = Annotated[Optional[float], setting(
    "checkpoint_minutes", "Also checkpoint mid-epoch this often (and at each epoch's end).", panel=RUN)]
Resume = Annotated[bool, typer.Option(
    help="Continue the interrupted run in --out from its last checkpoint (or start it afresh if it wrote none).",
    rich_help_panel=RUN)]
Force = Annotated[bool, typer.Option(help="Replace the model already in --out.", rich_help_panel=RUN)]
Quiet = Annotated[bool, typer.Option(help="No progress output.", rich_help_panel=RUN)]
TRACK = "Tracking (the track extra)"
Tensorboard = Annotated[Optional[str], typer.Option(
    help="Log the run to TensorBoard under this directory (DIR/NAME, NAME being --out's): the settings, the "
         "per-epoch figures, the test metrics and the plots.", metavar="DIR", rich_help_panel=TRACK,
    show_default=False)]
Mlflow = Annotated[Optional[str], typer.Option(
    help="Log the run to MLflow, experiment 'revsent': the settings, the per-epoch figures, the test metrics and "
         "the model directory. At the tracking URI given, or alone, at MLFLOW_TRACKING_URI or else a local store "
         "(sqlite:///mlflow.db and ./mlruns in the working directory).", metavar="[URI]", rich_help_panel=TRACK,
    show_default=False)]


TRAIN_EXAMPLES = examples(
    "revsent train reviews.csv --text-field review --stars-field rating --out model",
    "revsent train yelp_academic_dataset_review.json --business yelp_academic_dataset_business.json "
    "--category Restaurants --out restaurants",
    "revsent train imdb --preset seed --out seed   (the tutorial's model)",
)


@app.command(epilog=TRAIN_EXAMPLES)
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
    encoder_lr: EncoderLr = None,
    schedule: Schedule = None,
    gradual_unfreezing: GradualUnfreezing = None,
    unlabelled: Unlabelled = None,
    vat: Vat = None,
    entropy_weight: EntropyWeight = None,
    threshold: Threshold = None,
    init_from: InitFromModel = None,
    device: DeviceTrain = None,
    precision: Precision = None,
    threads: Threads = None,
    checkpoint_minutes: CheckpointMinutes = None,
    resume: Resume = False,
    force: Force = False,
    quiet: Quiet = False,
    tensorboard: Tensorboard = None,
    mlflow: Mlflow = None,
):
    """Train a model on review data (files, or a dataset made by `revsent prepare`) and write it to --out."""
    args = dict(locals())
    from ..progress import Progress
    from ..training import train as train_model

    def action():
        _check_tracking(tensorboard, mlflow)
        cfg, start = _train_config(args)
        result = train_model(cfg, out, resume=resume, force=force, progress=Progress(not quiet), start=start)
        if result.metrics:  # empty in a torchrun process other than rank 0: rank 0 reports and logs
            _report_training(result.metrics, result.out)
            _track(result.out, tensorboard, mlflow)

    _run(action)


# The model and training options of `train`, by their field names (those the user gave override the preset).
TRAIN_OPTIONS = ("embedding_dim", "hidden_size", "layers", "bidirectional", "dropout", "recurrent_dropout",
                 "word_dropout", "pooling", "ngram_buckets", "ngram_c", "ngram_min_df", "ngram_order", "ngram_weighting", "init",
                 "embedding_init", "members", "epochs", "batch_size", "lr", "weight_decay", "clip_norm", "patience",
                 "average_weights", "val_fraction", "baseline", "class_weight", "init_from", "adversarial", "encoder_lr",
                 "schedule", "gradual_unfreezing",
                 "vat", "entropy_weight", "threshold",
                 "device", "precision", "threads", "checkpoint_minutes")


def _train_config(args: dict):
    """The run's config from `train`'s arguments, and the --init-from model (read once) or None."""
    from ..config import Config
    from ..data.store import check_settings, is_dataset

    dense = args["dense"]
    try:
        dense_sizes = None if dense is None else tuple(int(s) for s in dense.split(",") if s.strip())
    except ValueError:
        raise ConfigError(f"--dense takes layer sizes separated by commas, e.g. 128,64. "
                          f"Got {dense!r} instead.") from None
    options = _given(**_data_settings(args), **{name: args[name] for name in TRAIN_OPTIONS}, dense=dense_sizes,
                     unlabelled=tuple(args["unlabelled"]) if args["unlabelled"] else None)
    cfg, start = Config.from_preset(str(args["preset"]), **options), None
    if cfg.train.init_from is not None:  # fine-tuning: that model's vocabulary, settings and weights
        from ..training.init_from import InitFrom

        start = InitFrom.load(cfg.train.init_from)
        cfg = start.settings(cfg, options)
    data = args["data"]
    if data and len(data) == 1 and is_dataset(data[0]):
        check_settings(data[0], cfg, set(options))
    return cfg, start


def _check_tracking(tensorboard: str | None, mlflow: str | None) -> None:
    """Before any work: the packages tracking needs (a missing one ends with its extra's install line), and
    that the MLflow store can be opened."""
    if tensorboard is not None:
        import tensorboard as _  # noqa: F401
    if mlflow is not None:  # and the store: a bad URI is found before the run, not after it
        from ..tracking import mlflow_client

        mlflow_client(mlflow)


def _track(out, tensorboard: str | None, mlflow: str | None, tuned: bool = False) -> None:
    """Log the finished run in ``out`` (a model or, ``tuned``, a tuning directory) where asked, and say where."""
    if tensorboard is None and mlflow is None:
        return
    from ..tracking import log_model_dir, log_tune_dir

    done = (log_tune_dir if tuned else log_model_dir)(out, tensorboard=tensorboard, mlflow=mlflow)
    if "tensorboard" in done:
        typer.echo(f"TensorBoard logs in {done['tensorboard']} (tensorboard --logdir {tensorboard})")
    if "mlflow" in done:
        logged = done["mlflow"]
        typer.echo(f"logged to MLflow: run {logged['run_id']} of experiment {logged['experiment']!r} at "
                   f"{logged['tracking_uri']}")


def _report_training(metrics: dict, out) -> None:
    """What `train` prints at the end: the validation figures the weights were chosen by, the test report."""
    from ..data.records import describe_counts
    from ..metrics import format_report

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
    typer.echo(f"read {metrics['records_read']:,} records: {describe_counts(metrics)}")
    for warning in metrics.get("warnings", ()):
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"model written to {out}")


@app.command(epilog=examples(
    "revsent prepare yelp_academic_dataset_review.json --out yelp-data   (once; then train on it many times)",
    "revsent prepare reviews.csv --text-field review --stars-field rating --labels polarity --out data",
    "revsent train yelp-data --out model",
))
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
    from ..config import Config
    from ..data.build import prepare as prepare_dataset
    from ..data.records import describe_counts, describe_labels
    from ..progress import Progress

    def action():
        options = _given(**_data_settings(args), init_from=init_from)
        cfg, encoder = Config.from_preset(str(preset), **options), None
        if init_from is not None:  # its vocabulary numbers the words (a classifier's or a language model's)
            from ..training.init_from import InitFrom

            start = InitFrom.load(init_from)
            cfg, encoder = start.settings(cfg, options), start.encoder
        ds = prepare_dataset(cfg, out, force=force, progress=Progress(not quiet), encoder=encoder)
        manifest = ds.manifest
        typer.echo(f"{manifest['n']} reviews ({manifest['n_train']} training, {manifest['n_heldout']} held out), "
                   f"{manifest['n_tokens']} tokens, "
                   f"classes: {', '.join(manifest['classes'])}; {manifest['seconds']:.1f}s")
        counts = manifest["counts"]
        typer.echo(f"read {counts['records_read']:,} records: {describe_counts(counts)}")
        typer.echo(f"labels: {describe_labels(manifest.get('label_scheme'), counts, manifest['classes'])}")
        typer.echo(f"dataset written to {ds.path}")

    _run(action)


@app.command(epilog=examples(
    "revsent tune reviews.csv --text-field review --stars-field rating --trials 20 --out tuning",
    "revsent tune imdb --preset quick --minutes 30   (run it again to continue the study)",
))
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
    tensorboard: Tensorboard = None,
    mlflow: Mlflow = None,
):
    """Search the model's settings with Optuna (TPE, pruned on validation loss), then train the best ones."""
    args = dict(locals())
    from ..config import Config
    from ..metrics import format_report
    from ..progress import Progress
    from ..training.tune import tune as tune_settings

    def action():
        _check_tracking(tensorboard, mlflow)
        if val_fraction == 0:
            raise ConfigError("--val-fraction 0 leaves tuning nothing to choose on; give a fraction such as 0.1, "
                              "or leave it out for the preset's (0.1 where the preset keeps none)")
        cfg = Config.from_preset(str(preset), **_given(
            **_data_settings(args),
            epochs=epochs, val_fraction=val_fraction, device=device, precision=precision, threads=threads))
        result = tune_settings(cfg, out, trials=trials, minutes=minutes, progress=Progress(not quiet))
        typer.echo(f"{result.n_trials} trial(s) in {result.out / 'study.db'}; best validation loss "
                   f"{result.best_val_loss:.4f} with {result.best_params}")
        metrics = result.metrics
        typer.echo(f"test metrics of the best settings ({metrics['n_test']} held-out reviews, scored once):")
        typer.echo(format_report(metrics))
        for warning in metrics.get("warnings", ()):
            typer.echo(f"warning: {warning}", err=True)
        typer.echo(f"model written to {result.out / 'model'}")
        _track(result.out, tensorboard, mlflow, tuned=True)

    _run(action)


@app.command(epilog=examples("revsent presets", "revsent presets seed", "revsent presets default --json"))
def presets(
    name: Annotated[Optional[choice("Preset", PRESETS)], typer.Argument(
        help="One preset (default: all three side by side).", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the settings as JSON (config.json's layout).")] = False,
):
    """Every setting of the presets; `*` marks a value that differs from the tutorial's model (seed)."""
    from ..config import Config

    names = [name] if name else list(PRESETS)
    settings = {preset: Config.from_preset(preset).to_dict() for preset in names}
    if as_json:
        typer.echo(json.dumps(settings[name] if name else settings, indent=2))
        return
    seed = Config.from_preset("seed").to_dict()
    flags = set(inspect.signature(train).parameters)  # the settings a user sets with a flag of `train`
    typer.echo(("setting".ljust(22) + "".join(p.ljust(12) for p in names)).rstrip())
    for section in ("data", "model", "train"):
        for field, tutorial in ((f, v) for f, v in seed[section].items() if f in flags):
            cells = [shown(_plain(settings[p][section][field])) + ("*" if settings[p][section][field] != tutorial
                                                                   else "") for p in names]
            typer.echo(("--" + field.replace("_", "-")).ljust(22) + "".join(c.ljust(12) for c in cells).rstrip())


def _plain(value):
    return tuple(value) if isinstance(value, list) else value


def lm_setting(name: str, help: str, *decls: str, panel: str = MODEL):
    """A `pretrain` option for the config field ``name``: its help ends with the language model's value."""
    from ..config import LM_PRESET, Config

    cfg = Config.from_preset(LM_PRESET)
    value = next(getattr(getattr(cfg, section), name) for section in ("data", "model", "train", "lm")
                 if hasattr(getattr(cfg, section), name))
    return typer.Option(*decls, help=f"{help} (default: {shown(value)})", rich_help_panel=panel, show_default=False)


LM = "Language model"
PRETRAIN_OPTIONS = ("vocab_size", "min_count", "embedding_dim", "hidden_size", "dropout", "recurrent_dropout",
                    "word_dropout", "epochs", "batch_size", "lr", "weight_decay", "clip_norm", "seed", "bptt",
                    "negatives", "output_dropout", "heldout", "heldout_tokens", "device", "precision", "threads",
                    "checkpoint_minutes", "init_from")


@app.command(epilog=examples(
    "revsent pretrain reviews.csv unlabelled.jsonl --text-field review --out lm",
    "revsent train reviews.csv --text-field review --stars-field rating --init-from lm --out model",
    "revsent pretrain yelp_academic_dataset_review.json --epochs 1 --out yelp-lm",
    "revsent pretrain my_reviews.csv --init-from yelp-lm --epochs 2 --out my-lm   (continue it on your own texts)",
))
def pretrain(
    data: DataArg = None,
    out: Annotated[str, typer.Option(help="Language model directory to write.", rich_help_panel=RUN,
                                     show_default=False)] = ...,
    format: Format = None, text_field: TextField = None, business: Business = None, category: Category = None,
    limit: Limit = None, skip_bad: SkipBad = None,
    vocab_size: Annotated[Optional[int], lm_setting("vocab_size", "Words kept (ids 2..N-1; 1 is every other word).")] = None,
    min_count: Annotated[Optional[int], lm_setting("min_count", "Leave out words seen fewer times.")] = None,
    embedding_dim: Annotated[Optional[int], lm_setting("embedding_dim", "Word vector size.")] = None,
    hidden_size: Annotated[Optional[int], lm_setting("hidden_size", "LSTM units per direction.")] = None,
    dropout: Annotated[Optional[float], lm_setting("dropout", "Locked dropout on the LSTM's inputs.")] = None,
    recurrent_dropout: Annotated[Optional[float], lm_setting(
        "recurrent_dropout", "Recurrent units dropped for a whole batch (AWD-LSTM's weight drop).")] = None,
    word_dropout: Annotated[Optional[float], lm_setting(
        "word_dropout", "Whole words dropped from the embedding per batch.")] = None,
    output_dropout: Annotated[Optional[float], lm_setting(
        "output_dropout", "Locked dropout on the LSTM's outputs.", panel=LM)] = None,
    bptt: Annotated[Optional[int], lm_setting("bptt", "Tokens per training window.", panel=LM)] = None,
    negatives: Annotated[Optional[int], lm_setting(
        "negatives", "Words of the sampled softmax per step (drawn by frequency^0.75).", panel=LM)] = None,
    heldout: Annotated[Optional[float], lm_setting(
        "heldout", "Fraction of the texts held out to measure perplexity on.", panel=LM)] = None,
    heldout_tokens: Annotated[Optional[int], lm_setting(
        "heldout_tokens", "Perplexity (a full softmax) on at most this many held-out tokens.", panel=LM)] = None,
    epochs: Annotated[Optional[int], lm_setting("epochs", "Passes over the texts.", panel=TRAIN)] = None,
    batch_size: Annotated[Optional[int], lm_setting("batch_size", "Windows per step.", panel=TRAIN)] = None,
    lr: Annotated[Optional[float], lm_setting(
        "lr", "Adam's peak learning rate (a slanted triangular schedule).", panel=TRAIN)] = None,
    weight_decay: Annotated[Optional[float], lm_setting("weight_decay", "Adam's L2 weight decay.", panel=TRAIN)] = None,
    clip_norm: Annotated[Optional[float], lm_setting("clip_norm", "Clip the LSTMs' gradient norm.", panel=TRAIN)] = None,
    seed: Annotated[Optional[int], lm_setting("seed", "Held-out part, initialisation and window order.", panel=TRAIN)] = None,
    init_from: Annotated[Optional[str], typer.Option(
        help="Continue this language model on DATA (ULMFiT's fine-tuning of the language model on the task's own "
             "texts): its vocabulary, sizes and weights.", rich_help_panel=TRAIN, show_default=False)] = None,
    device: DeviceTrain = None,
    precision: Precision = None,
    threads: Threads = None,
    checkpoint_minutes: CheckpointMinutes = None,
    resume: Resume = False,
    force: Annotated[bool, typer.Option(help="Replace the language model already in --out.", rich_help_panel=RUN)] = False,
    quiet: Quiet = False,
):
    """Train an LSTM language model on review text, labelled or not (files, or a dataset made by `revsent
    prepare`: its training part), for `revsent train --init-from` to start a classifier from."""
    args = dict(locals())
    from ..config import LM_PRESET, Config
    from ..progress import Progress
    from ..training.pretrain import continued, pretrain as pretrain_model

    def action():
        options = _given(paths=tuple(data) if data else None, format=format, text_field=text_field,
                         business=business, category=category, limit=limit, skip_bad=skip_bad,
                         **{name: args[name] for name in PRETRAIN_OPTIONS})
        cfg, start = Config.from_preset(LM_PRESET, **options), None
        if init_from is not None:
            cfg, start = continued(cfg, options)
        result = pretrain_model(cfg, out, resume=resume, force=force, progress=Progress(not quiet), start=start)
        if result.metrics:  # rank 0 reports
            m, texts = result.metrics, result.metrics["texts"]
            typer.echo(f"language model: held-out perplexity {m['heldout_perplexity']} (forward "
                       f"{m['forward_perplexity']}, backward {m['backward_perplexity']}; "
                       f"{m['heldout_tokens_scored'] or 0:,} tokens of {texts['heldout_reviews']:,} held-out reviews)")
            typer.echo(f"learnt from {texts['reviews']:,} reviews ({texts['tokens']:,} tokens) in {m['epochs_run']} "
                       f"epoch(s), {m['train_seconds']:.1f}s; read {texts['counts']['records_read']:,} records")
            typer.echo(f"language model written to {result.out}; start a classifier from it with "
                       f"`revsent train DATA --init-from {result.out} --out MODEL`")

    _run(action)
