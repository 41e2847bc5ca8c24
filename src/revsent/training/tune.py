"""Tuning: Optuna's TPE search over the main settings, each trial pruned on its validation loss.

    revsent.training.tune.tune(config, out, trials=20)    search, then train the best settings once

    out/study.db        the Optuna study (SQLite): running tune again on ``out`` continues it
    out/dataset/        the prepared data (when DATA were files), reused when continuing
    out/trials.csv      one row per trial: state, validation loss and accuracy, settings, seconds
    out/history.png     Optuna's optimisation history; out/importance.png its parameter importances
    out/model/          the best settings trained again: an ordinary model directory

Every choice is made on the validation slice (``val_fraction`` of the training part); the test
part is scored once, by the final training of the best settings, and by nothing else.
"""
from __future__ import annotations

import contextlib
import csv
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from .. import artifacts
from ..config import Config
from ..data.parts import open_run_data
from ..device import start_run
from ..errors import ArtifactError, ConfigError
from ..progress import Progress

STUDY = "study.db"
TUNE_FILES = (STUDY, "trials.csv", "history.png", "importance.png", "dataset", "model")


def search_space(trial, base: Config) -> dict:
    """The settings one trial tries: the default preset's main knobs, around its values."""
    settings = {
        "lr": trial.suggest_float("lr", 5e-4, 5e-3, log=True),
        "hidden_size": trial.suggest_categorical("hidden_size", [64, 128, 192]),
        "embedding_dim": trial.suggest_categorical("embedding_dim", [64, 128, 192]),
        "dropout": trial.suggest_float("dropout", 0.1, 0.6),
        "word_dropout": trial.suggest_float("word_dropout", 0.0, 0.3),
        "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128]),
        "weight_decay": trial.suggest_float("weight_decay", 1e-8, 1e-4, log=True),
        "embedding_init": trial.suggest_categorical("embedding_init", ["random", "ppmi"]),
        # 0 turns adversarial training off (and halves a trial's time); the default preset's 0.02 is inside
        "adversarial": trial.suggest_float("adversarial", 0.0, 0.05),
    }
    if base.model.pooling != "last":
        settings["pooling"] = trial.suggest_categorical("pooling", ["max", "mean", "max_mean"])
    if base.model.ngram_buckets:
        settings["ngram_c"] = trial.suggest_float("ngram_c", 1.0, 100.0, log=True)
    return settings


@dataclass
class TuneResult:
    out: Path
    best_params: dict
    best_val_loss: float
    n_trials: int
    metrics: dict  # the final model's (test metrics, scored once)


TUNE_VAL_FRACTION = 0.1  # the default preset's slice, for presets with none (seed)


def tune(cfg: Config, out: str | Path, *, trials: int | None = None, minutes: float | None = None,
         progress: Progress | None = None) -> TuneResult:
    """Search settings for ``cfg.data`` (files or one prepared dataset) with Optuna, then train
    the best ones into ``out/model``. Stops after ``trials`` more trials or ``minutes``. A new
    ``out`` is removed when the search fails before a trial completed; after that it is a study to
    continue."""
    if not trials and not minutes:
        raise ConfigError("Give --trials N or --minutes M: how long to search")
    progress = progress or Progress(False)
    if not cfg.train.val_fraction:  # the seed preset has none: every choice here needs one
        cfg = cfg.with_settings(val_fraction=TUNE_VAL_FRACTION)
        progress.log(f"preset {cfg.preset} keeps no validation slice; tuning chooses on one: "
                     f"{TUNE_VAL_FRACTION:.0%} of the training part (--val-fraction)")
    out = Path(out)
    with artifacts.removed_on_failure(out, resumable=_has_completed_trials):  # a study is continued
        return _search(cfg, _check_out(out), trials, minutes, progress)


def _search(cfg: Config, out: Path, trials: int | None, minutes: float | None, progress: Progress) -> TuneResult:
    import optuna

    from ..model import SentimentLSTM
    from .loop import fit
    from .run import train
    from .state import chosen_figures

    data = open_run_data(cfg, out / "dataset", reuse=True, refuse_other=True, progress=progress,
                         cite_cache=True)
    cfg, fit_part, val_part = data.cfg, data.fit, data.validation
    device = start_run(cfg.train)

    def objective(trial) -> float:
        # a trial is one LSTM: a bag's members would repeat the same settings (the final model has the preset's)
        trial_cfg = cfg.with_settings(members=1, **search_space(trial, cfg))
        model = SentimentLSTM(trial_cfg.model, len(data.classes), data.encoder.rows).to(device)

        def report(epoch: int, row: dict) -> None:
            trial.report(row["val_loss"], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        state = fit(model, trial_cfg, fit_part, val_part, device=device, progress=Progress(False), on_epoch=report)
        trial.set_user_attr("val_accuracy", chosen_figures(state)["val_accuracy"])
        trial.set_user_attr("best_epoch", state.best_epoch)
        return state.best_val_loss

    def log_trial(study, trial) -> None:
        progress.log(trial_line(trial))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=f"sqlite:///{out / STUDY}", study_name="revsent", direction="minimize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=cfg.train.seed, n_startup_trials=5),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0))
    done_before = len(study.trials)
    progress.log(f"searching: {len(fit_part)} training and {len(val_part)} validation reviews"
                 + (f"; continuing a study of {done_before} trials" if done_before else ""))
    study.optimize(objective, n_trials=trials, timeout=minutes * 60 if minutes else None, callbacks=[log_trial],
                   catch=())
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise ArtifactError(f"{out / STUDY}: no trial completed; give more --trials or --minutes")
    _write_trials(study, out)
    _write_plots(study, out, len(complete))
    best = study.best_trial
    progress.log(f"best: trial {best.number}, val loss {best.value:.4f}; training it again on the same split")
    final_cfg = cfg.with_settings(**best.params)
    result = train(final_cfg, out / "model", force=(out / "model").exists(), progress=progress)
    return TuneResult(out, dict(best.params), float(best.value), len(study.trials), result.metrics)


def _has_completed_trials(out: Path) -> bool:
    import sqlite3

    if not (out / STUDY).is_file():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{out / STUDY}?mode=ro", uri=True)) as db:
            return db.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0] > 0
    except sqlite3.Error:  # a study file the failure left unreadable holds nothing to continue
        return False


def _check_out(out: Path) -> Path:
    """``out`` is new, empty, or a tuning directory (continued); nothing else is touched."""
    artifacts.check_writable(out)
    if out.exists() and not out.is_dir():
        raise ArtifactError(f"{out}: exists and is not a directory; choose another --out")
    if out.is_dir():
        strangers = [p.name for p in out.iterdir() if p.name not in TUNE_FILES and not p.name.startswith(".")]
        if strangers:
            raise ArtifactError(f"{out}: holds files tune did not write ({', '.join(sorted(strangers)[:5])}); "
                                "choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    return out


def trial_line(trial) -> str:
    """One finished trial for the log: a complete one's chosen validation loss and accuracy; a
    pruned one's loss at the epoch where it was stopped (it has no chosen accuracy)."""
    if "val_accuracy" in trial.user_attrs:
        value = f"val loss {trial.value:.4f}, acc {trial.user_attrs['val_accuracy']:.4f}"
    elif trial.intermediate_values:
        epoch = max(trial.intermediate_values)
        value = f"val loss {trial.intermediate_values[epoch]:.4f} after epoch {epoch}"
    else:
        value = "no epoch finished"
    return f"trial {trial.number}: {trial.state.name.lower()} ({value}) {trial.params}"


def _write_trials(study, out: Path) -> None:
    names = sorted({name for t in study.trials for name in t.params})
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["trial", "state", "val_loss", "val_accuracy", "best_epoch", "seconds", *names])
    for t in study.trials:
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else ""
        writer.writerow([t.number, t.state.name.lower(), "" if t.value is None else t.value,
                         t.user_attrs.get("val_accuracy", ""), t.user_attrs.get("best_epoch", ""),
                         seconds if seconds == "" else round(seconds, 1), *(t.params.get(n, "") for n in names)])
    artifacts.atomic_write(out / "trials.csv", buffer.getvalue())


def _write_plots(study, out: Path, n_complete: int) -> None:
    import matplotlib
    import optuna

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as views

    from ..plots import save_figure

    plots = [("history.png", views.plot_optimization_history)]
    if n_complete >= 2:
        plots.append(("importance.png", views.plot_param_importances))
    for name, plot in plots:
        try:
            with warnings.catch_warnings():  # Optuna marks its matplotlib views experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                axes = plot(study)
        except (ValueError, RuntimeError):  # e.g. importances of trials that all tried the same values
            continue
        save_figure(axes.figure, out / name)
        plt.close(axes.figure)
