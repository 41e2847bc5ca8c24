"""Experiment tracking: a finished run logged to TensorBoard and MLflow (the ``track`` extra).

Logging is done after the run, from the files it saved (config.json, history.csv, metrics.json,
the plots, the model directory itself): what a tracker shows is exactly what the model directory
holds, a run that failed logs nothing half-done, and any model directory can be logged again
later (``log_model_dir``). A tuning directory (``revsent tune``) is logged as one parent run with
a child run per trial and one for the final model (``log_tune_dir``).

A tracking store that cannot be opened or written (a bad URI, a server that does not answer) is
an ``ArtifactError`` naming the URI, as any output that cannot be written is.

mlflow and tensorboard are imported where they are used: without them the ImportError reaches
the CLI, which names the extra to install.
"""
from __future__ import annotations

import contextlib
import csv
import json
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from . import artifacts
from .errors import ArtifactError

EXPERIMENT = "revsent"  # the MLflow experiment every run goes to
PLOTS = ("training_curves.png", "confusion_matrix.png", "reliability.png")
STUDY_FILES = ("trials.csv", "history.png", "importance.png")  # a tuning directory's own, logged with its parent run
SECTIONS = ("data", "model", "train")  # config.json's settings, logged as parameters "model.hidden_size", ...
PARAM_MAX = 6000  # MLflow's longest parameter value
BATCH = 100  # MLflow's log_batch takes at most 1,000 metrics and 100 parameters at once
EPOCH_FIGURES = {"train_loss": "train/loss", "train_accuracy": "train/accuracy", "val_loss": "validation/loss",
                 "val_accuracy": "validation/accuracy", "reviews_per_s": "speed/reviews_per_s"}


@dataclass
class Record:
    """What one model directory says of its run."""

    path: Path
    config: dict
    metrics: dict
    history: list[dict] = field(default_factory=list)

    @property
    def plots(self) -> list[Path]:
        return [self.path / name for name in PLOTS if (self.path / name).exists()]


def read_record(model_dir: str | Path) -> Record:
    """The run saved in ``model_dir``; a directory that is not a finished model is a one-line error."""
    path = Path(model_dir)
    if not (path / artifacts.CONFIG).is_file() or not (path / artifacts.METRICS).is_file():
        raise ArtifactError(f"{path}: not a model directory written by `revsent train` (no config.json and "
                            "metrics.json); nothing to log")
    try:
        config = json.loads((path / artifacts.CONFIG).read_text(encoding="utf-8"))
        metrics = json.loads((path / artifacts.METRICS).read_text(encoding="utf-8"))
        history = []
        if (path / artifacts.HISTORY).exists():
            with open(path / artifacts.HISTORY, encoding="utf-8", newline="") as f:
                history = [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]
    except (OSError, ValueError, csv.Error) as exc:
        raise ArtifactError(f"{path}: unreadable run files ({_first_line(exc)})") from None
    return Record(path, config, metrics, history)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _number(text: str | None):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def params(config: dict) -> dict[str, str]:
    """config.json's settings as flat string parameters (``model.hidden_size``), with the preset and classes."""
    flat = {"preset": str(config.get("preset")), "classes": ",".join(config.get("classes", []))}
    for section in SECTIONS:
        for name, value in (config.get(section) or {}).items():
            flat[f"{section}.{name}"] = (json.dumps(value) if isinstance(value, (list, dict)) else str(value))[:PARAM_MAX]
    return flat


def final_figures(metrics: dict) -> dict[str, float]:
    """The run's scalar end figures: ``test_*`` (metrics.json's top level), ``validation_*``,
    ``baseline_*`` (TF-IDF + LR, where run), and the run's sizes and seconds."""
    def scalars(source: dict, prefix: str) -> dict[str, float]:
        return {f"{prefix}{k}": float(v) for k, v in (source or {}).items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}

    figures = scalars({k: metrics.get(k) for k in ("accuracy", "f1_macro", "precision_macro", "recall_macro",
                                                   "log_loss", "ece", "roc_auc")}, "test_")
    figures |= scalars(metrics.get("validation"), "validation_")
    figures |= scalars(metrics.get("baseline_tfidf_lr"), "baseline_")
    figures |= scalars({k: metrics.get(k) for k in ("n_train", "n_validation", "n_test", "train_seconds",
                                                   "total_seconds")}, "")
    return figures


def epoch_series(history: list[dict]) -> list[tuple[str, int, float]]:
    """(key, epoch, value) for each figure of each epoch; a bag's members apart (``member_2.val_loss``)."""
    series = []
    for row in history:
        member = row.get("member")
        prefix = f"member_{int(member)}." if member is not None else ""
        for key in EPOCH_FIGURES:
            if row.get(key) is not None and row.get("epoch") is not None:
                series.append((prefix + key, int(row["epoch"]), row[key]))
    return series


@contextlib.contextmanager
def _quiet():
    """MLflow's store set-up notices and deprecation warnings stay out of revsent's output."""
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def tensorboard_run(record: Record, log_dir: Path) -> Path:
    """Write ``record`` as TensorBoard event files in ``log_dir``: per-epoch scalars, the end
    figures (``test/accuracy``, ...), the settings as hyperparameters, the plots as images."""
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    writer = SummaryWriter(log_dir=str(log_dir))
    try:
        for key, epoch, value in epoch_series(record.history):
            prefix, _, name = key.rpartition(".")
            writer.add_scalar(EPOCH_FIGURES[name] + (f"/{prefix}" if prefix else ""), value, epoch)
        end = _last_epoch(record)
        figures = {_tb_name(k): v for k, v in final_figures(record.metrics).items()}
        for name, value in figures.items():
            writer.add_scalar(name, value, end)
        experiment, start, finish = hparams(params(record.config), {k: v for k, v in figures.items()
                                                                    if k.startswith("test/")})
        for summary in (experiment, start, finish):
            writer.file_writer.add_summary(summary)
        add_images(writer, record.plots, "plots", end)
    finally:
        writer.close()
    return log_dir


def add_images(writer, pngs: list[Path], prefix: str, step: int) -> None:
    """Each PNG as the image ``prefix/STEM`` (RGB; a grey image as three equal channels)."""
    import numpy as np
    from matplotlib.image import imread

    for png in pngs:
        image = imread(png)  # (H, W), (H, W, 3) or (H, W, 4), floats in [0, 1]
        image = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]  # (H, W, 3)
        writer.add_image(f"{prefix}/{png.stem}", np.ascontiguousarray(image), step, dataformats="HWC")


def _tb_name(key: str) -> str:
    if key.startswith("validation_"):  # the chosen epoch's, apart from the per-epoch validation/loss
        return f"validation/chosen_{key[len('validation_'):]}"
    for prefix in ("test_", "baseline_"):
        if key.startswith(prefix):
            return f"{prefix[:-1]}/{key[len(prefix):]}"
    return f"run/{key}"


def _last_epoch(record: Record) -> int:
    epochs = record.metrics.get("epochs_run") or 0
    return int(max(epochs) if isinstance(epochs, list) else epochs)


def mlflow_client(uri: str | bool | None):
    """``(client, uri, experiment id)``: an MlflowClient for ``uri`` and the id of the experiment
    ``revsent`` there (made when missing). True, "" or None is MLflow's own default
    (``MLFLOW_TRACKING_URI``, else a local store, ``sqlite:///mlflow.db`` in the working directory).
    A store that cannot be opened is an ArtifactError naming the URI."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = mlflow.get_tracking_uri() if uri in (True, "", None) else str(uri)
    try:
        with _quiet():
            client = MlflowClient(tracking_uri=uri)
            found = client.get_experiment_by_name(EXPERIMENT)
            experiment = found.experiment_id if found is not None else client.create_experiment(EXPERIMENT)
    except MlflowException as exc:
        raise ArtifactError(f"MLflow tracking URI {uri!r}: cannot log there ({_first_line(exc)})") from None
    return client, uri, experiment


def mlflow_run(client, experiment: str, record: Record, name: str, parent: str | None = None) -> str:
    """Log ``record`` as one MLflow run (a child of ``parent`` where given): the settings as
    parameters, the per-epoch figures with their epoch as step, the end figures, the package
    versions as tags, and the whole model directory as the artifact ``model``. Its run id."""
    from mlflow.entities import Metric, Param, RunTag

    tags = {f"versions.{k}": str(v) for k, v in (record.config.get("versions") or {}).items()}
    tags["revsent.model_dir"] = str(record.path.resolve())
    if parent is not None:
        tags["mlflow.parentRunId"] = parent
    run = client.create_run(experiment, run_name=name, tags=tags).info.run_id
    now = int(time.time() * 1000)
    metrics = [Metric(key, value, now, step) for key, step, value in epoch_series(record.history)]
    end = _last_epoch(record)
    metrics += [Metric(key, value, now, end) for key, value in final_figures(record.metrics).items()]
    _log_batches(client, run, metrics, [Param(k, v) for k, v in params(record.config).items()], [])
    client.log_artifacts(run, str(record.path), artifact_path="model")
    client.set_terminated(run)
    return run


def _log_batches(client, run: str, metrics: list, params_: list, tags: list) -> None:
    for i in range(0, max(len(metrics), len(params_), len(tags), 1), BATCH):
        client.log_batch(run, metrics=metrics[i:i + BATCH], params=params_[i:i + BATCH], tags=tags[i:i + BATCH])


def log_model_dir(model_dir: str | Path, *, tensorboard: str | Path | None = None, mlflow: str | bool | None = None,
                  run_name: str | None = None) -> dict:
    """Log the run saved in ``model_dir`` to TensorBoard (event files under ``tensorboard``/NAME)
    and/or MLflow (the tracking URI ``mlflow``; True or "": MLflow's default local store), NAME
    being ``run_name`` or the directory's name. What was logged, to say so:
    ``{"tensorboard": log dir, "mlflow": {"tracking_uri", "experiment", "run_id"}}``."""
    record = read_record(model_dir)
    name = run_name or record.path.resolve().name
    done = {}
    if tensorboard is not None:
        done["tensorboard"] = str(tensorboard_run(record, Path(tensorboard) / name))
    if mlflow is not None and mlflow is not False:
        client, uri, experiment = mlflow_client(mlflow)
        with _quiet():
            done["mlflow"] = {"tracking_uri": uri, "experiment": EXPERIMENT,
                              "run_id": mlflow_run(client, experiment, record, name)}
    return done


def read_trials(tune_dir: Path) -> list[dict]:
    """trials.csv of a tuning directory: one dict per trial (numbers as floats, blanks as None)."""
    path = tune_dir / "trials.csv"
    if not path.is_file() or not (tune_dir / "model").is_dir():
        raise ArtifactError(f"{tune_dir}: not a tuning directory written by `revsent tune` (no trials.csv and "
                            "model/); nothing to log")
    try:
        with open(path, encoding="utf-8", newline="") as f:
            trials = [{k: (v if k == "state" else _number(v)) for k, v in row.items()} for row in csv.DictReader(f)]
    except (OSError, ValueError, csv.Error) as exc:
        raise ArtifactError(f"{path}: unreadable ({_first_line(exc)})") from None
    if any(t.get("trial") is None for t in trials):
        raise ArtifactError(f"{path}: a row without a trial number; not a trials.csv written by `revsent tune`")
    return trials


TRIAL_COLUMNS = ("trial", "state", "val_loss", "val_accuracy", "best_epoch", "seconds")
RUN_STATUS = {"complete": "FINISHED", "pruned": "FINISHED", "fail": "FAILED"}  # Optuna's state -> MLflow's; others KILLED


def _trial_run(client, experiment: str, trial: dict, parent: str) -> str:
    from mlflow.entities import Metric, Param

    number = int(trial["trial"])
    run = client.create_run(experiment, run_name=f"trial {number}",
                            tags={"mlflow.parentRunId": parent, "state": str(trial["state"])}).info.run_id
    now = int(time.time() * 1000)
    figures = [Metric(k, trial[k], now, 0) for k in ("val_loss", "val_accuracy", "best_epoch", "seconds")
               if trial.get(k) is not None]
    settings = [Param(k, str(v)) for k, v in trial.items() if k not in TRIAL_COLUMNS and v is not None]
    _log_batches(client, run, figures, settings, [])
    client.set_terminated(run, RUN_STATUS.get(str(trial["state"]), "KILLED"))
    return run


def log_tune_dir(tune_dir: str | Path, *, tensorboard: str | Path | None = None, mlflow: str | bool | None = None,
                 run_name: str | None = None) -> dict:
    """Log a tuning directory: to MLflow one parent run (the best trial's settings as ``best.*``
    parameters, its validation loss, the final model's end figures, trials.csv and the study's
    plots as artifacts ``study/``), a child run per trial and a child run ``final model`` (as
    ``log_model_dir`` logs one); to TensorBoard ``trials/val_loss`` by trial number and the study's
    plots under ``tensorboard``/NAME, the final model under NAME/model. What was logged:
    ``{"tensorboard": dir, "mlflow": {"tracking_uri", "experiment", "run_id" (the parent's),
    "trial_runs", "model_run"}}``."""
    tune_dir = Path(tune_dir)
    trials, record = read_trials(tune_dir), read_record(tune_dir / "model")
    name = run_name or tune_dir.resolve().name
    study_files = [tune_dir / f for f in STUDY_FILES if (tune_dir / f).is_file()]
    done = {}
    if tensorboard is not None:
        from torch.utils.tensorboard import SummaryWriter

        with contextlib.closing(SummaryWriter(log_dir=str(Path(tensorboard) / name))) as writer:
            for trial in trials:
                if trial.get("val_loss") is not None:
                    writer.add_scalar("trials/val_loss", trial["val_loss"], int(trial["trial"]))
            add_images(writer, [f for f in study_files if f.suffix == ".png"], "study", len(trials))
        tensorboard_run(record, Path(tensorboard) / name / "model")
        done["tensorboard"] = str(Path(tensorboard) / name)
    if mlflow is not None and mlflow is not False:
        client, uri, experiment = mlflow_client(mlflow)
        with _quiet():
            done["mlflow"] = {"tracking_uri": uri, "experiment": EXPERIMENT,
                              **_study_runs(client, experiment, trials, record, study_files, name, tune_dir)}
    return done


def _study_runs(client, experiment: str, trials: list[dict], record: Record, study_files: list[Path], name: str,
                tune_dir: Path) -> dict:
    """The parent run of a study, its trials' child runs and the final model's; their run ids."""
    from mlflow.entities import Metric, Param

    parent = client.create_run(experiment, run_name=name,
                               tags={"revsent.tune_dir": str(tune_dir.resolve())}).info.run_id
    finished = [t for t in trials if t.get("val_loss") is not None and t["state"] == "complete"]
    best = min(finished, key=lambda t: t["val_loss"]) if finished else None
    now = int(time.time() * 1000)
    figures = [Metric(k, v, now, 0) for k, v in final_figures(record.metrics).items()]
    settings = [Param("trials", str(len(trials)))]
    if best is not None:
        figures.append(Metric("best_val_loss", best["val_loss"], now, 0))
        settings += [Param(f"best.{k}", str(v)) for k, v in best.items() if k not in TRIAL_COLUMNS]
    _log_batches(client, parent, figures, settings, [])
    for path in study_files:
        client.log_artifact(parent, str(path), artifact_path="study")
    children = [_trial_run(client, experiment, trial, parent) for trial in trials]
    final = mlflow_run(client, experiment, record, "final model", parent=parent)
    client.set_terminated(parent)
    return {"run_id": parent, "trial_runs": children, "model_run": final}
