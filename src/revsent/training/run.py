"""A whole training run: data -> the fit (one model or a bag) -> the test part scored once -> the
model directory.

    revsent.training.train(config, out)    files or a prepared dataset in, a model directory out

Data reaches the model one way only: a prepared dataset (``cfg.data.paths`` is one, or files
prepared into ``out/.dataset`` first, kept until the run ends so that ``--resume`` need not read
them again). With ``train.init_from`` the run starts from a trained model (:mod:`.init_from`).
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import artifacts
from ..baseline import BASELINE_MAX, tfidf_baseline
from ..config import Config, threshold_rule
from ..data import store
from ..data.parts import RunData, open_run_data, with_unlabelled
from ..data.records import describe_labels
from ..device import hardware, start_run, trains_in_bf16
from ..errors import ArtifactError, ConfigError, DataError
from ..metrics import classification_metrics, expected_calibration_error, model_warnings, reliability
from ..model import SentimentLSTM, branch_logits, mixed_probabilities
from ..plots import plot_confusion, plot_history, plot_reliability
from ..progress import Progress
from .calibration import MIN_REVIEWS, calibrate, fits_on
from .distributed import Ranks, finish, init
from .init_from import InitFrom, check_held_out
from .inputs import class_weights
from .members import fit_members, member_history
from .state import FitState, chosen_figures


@dataclass
class TrainResult:
    out: Path
    metrics: dict
    history: list[dict]


def train(cfg: Config, out: str | Path, *, resume: bool = False, force: bool = False,
          progress: Progress | None = None, start: InitFrom | None = None) -> TrainResult:
    """Prepare (or open) the data, fit the model on the training split, evaluate and save ``out``.

    ``start``: the ``--init-from`` model, already read (by default read from ``cfg.train.init_from``).
    """
    progress = progress or Progress(False)
    ranks = Ranks.from_environment()
    prepared = any(store.is_dataset(p) for p in cfg.data.paths)
    if ranks.enabled and not prepared:
        raise ConfigError("under torchrun, DATA must be a dataset made by `revsent prepare`, at the same path on every "
                          "machine: every process opens it (memory-mapped)")
    started = time.perf_counter()
    start = start if start is not None else InitFrom.of(cfg)  # before --out is touched: a mistake leaves it as it was
    if start is not None:
        start.check(cfg)
        if Path(out).resolve() == Path(start.path).resolve():
            raise ConfigError(f"--out {out} is the model of --init-from; write the fine-tuned model to another "
                              "directory")
    if not prepared:  # before reading the data; a prepared dataset's split is known once it is open
        check_held_out(cfg, start)
    reuse = resume  # the prepared data of the run in --out, where it goes on (or starts again)
    if not ranks.main:
        progress, out = Progress(False), Path(out)
    else:
        out = artifacts.check_writable(out)
    with artifacts.removed_on_failure(out if ranks.main else None):
        if ranks.main:
            out, resume = open_out(out, resume=resume, force=force, progress=progress)
        data = open_run_data(cfg, out / artifacts.DATASET, reuse=reuse, progress=progress, work_dir=out,
                             encoder=None if start is None else start.encoder)
        if prepared:
            check_held_out(data.cfg, start)
        if start is not None:
            start.check_unseen(data.test, data.train)
        if cfg.train.unlabelled and ranks.enabled:
            raise ConfigError("--unlabelled is not supported under torchrun yet; train in one process, or pretrain a "
                              "language model on the unlabelled reviews (`revsent pretrain`, which runs under torchrun)")
        data, unlabelled = with_unlabelled(data, out / artifacts.UNLABELLED, progress)
        if resume and ranks.main:
            check_resumable(out, data.cfg)
        ranks, device = init(start_run(data.cfg.train))
        try:
            return _train(data, out, ranks, device, resume=resume, progress=progress, started=started, start=start,
                          unlabelled=unlabelled)
        finally:
            finish()


def open_out(out: Path, *, resume: bool, force: bool, progress: Progress) -> tuple[Path, bool]:
    """``out``, checked, and whether the run goes on from a checkpoint there. ``--resume`` where the
    interrupted run wrote none yet starts it afresh in ``out`` (its prepared data reused), saying so;
    a finished model there has nothing to resume."""
    if not resume or artifacts.has_checkpoint(out):
        return artifacts.prepare_out(out, resume=resume, force=force), resume
    if artifacts.is_finished(out):
        raise ArtifactError(f"{out}: holds a finished model and no checkpoint: there is nothing to resume; pass "
                            "--force to train a new model in its place")
    progress.log(f"{out}: no checkpoint to resume from (the run stopped before its first one, or never started "
                 "here); starting the run afresh")
    return artifacts.prepare_out(out, force=True, keep_dataset=True), False


def check_resumable(out: Path, cfg: Config) -> None:
    """Refuse to resume the run in ``out`` with settings that change its data, split or weights."""
    saved, _ = artifacts.read_config(out)
    split_of = lambda t: (t.seed, t.test_split, t.test_data, t.val_fraction)  # noqa: E731  (t: a TrainConfig)
    if saved.model != cfg.model or saved.data != cfg.data or split_of(saved.train) != split_of(cfg.train):
        raise ConfigError(f"{out}: --resume needs the same data, split and model settings as the interrupted run "
                          f"(only training settings such as --epochs may change)")
    if saved.train.init_from != cfg.train.init_from:  # its token ids and weights came from that model
        given = f"--init-from {saved.train.init_from}" if saved.train.init_from else "no --init-from"
        raise ConfigError(f"{out}: the interrupted run was started with {given}; resume it the same way")
    if saved.train.average_weights != cfg.train.average_weights:  # the running mean covers every epoch or none
        flag = "--average-weights" if saved.train.average_weights else "--no-average-weights"
        raise ConfigError(f"{out}: the interrupted run was started with {flag}; resume it with {flag}")


def _train(data: RunData, out: Path, ranks: Ranks, device: torch.device, *, resume: bool, progress: Progress,
           started: float, start: InitFrom | None, unlabelled: dict | None = None) -> TrainResult:
    cfg = data.cfg
    fit_y, n_val = data.fit.y, len(data.validation)
    source = ", ".join(cfg.data.paths) or "imdb"
    if len(np.unique(fit_y)) < 2:
        raise DataError(source, f"the training split of {len(fit_y)} records holds only one class; give more data")
    check_threshold(data)
    manifest = data.dataset.manifest
    progress.log(f"{len(fit_y):,} training, {n_val:,} validation and {len(data.test):,} test reviews from {source}; "
                 f"labels: {describe_labels(manifest.get('label_scheme'), manifest['counts'], data.classes)}")
    if ranks.main:
        out.mkdir(parents=True, exist_ok=True)
    if ranks.main and not resume:
        artifacts.atomic_write(out / artifacts.TOKENIZER, data.encoder.to_str())
        artifacts.write_json(out / artifacts.CONFIG, artifacts.config_document(cfg, data.classes))
    if start is not None:
        new_layer = "" if data.classes == start.classes else f"; a new output layer for {len(data.classes)} classes"
        what = "its vocabulary, embedding and LSTMs" if start.lm is not None else "its vocabulary and LSTM weights"
        progress.log(f"starting from {start.path}: {what}{new_layer}")
    model, states = fit_members(data, device=device, progress=progress, out=out, resume=resume, ranks=ranks,
                                start=None if start is None else start.readers(data.classes, cfg.model.members))
    finish(together=True)  # the ranks part here: the rest is rank 0's alone
    history = member_history(states)
    if not ranks.main:  # rank 0 scores the test part and writes the model directory
        return TrainResult(out, {}, history)
    calibration = calibrated(model, data, len(states), device, progress)
    # The test part is scored once, here, with the weights chosen on the validation slice(s).
    progress.log(f"scoring the {len(data.test):,} test reviews once")
    lstm, wide = branch_logits(model, data.test.seqs, device=device)
    proba = mixed_probabilities(lstm, wide, model.mix.cpu().numpy())
    metrics = run_metrics(data, states, proba, device=device, ranks=ranks, started=started, start=start,
                          threshold=model.decision_threshold)
    as_trained = mixed_probabilities(lstm, wide, (1.0, 1.0))
    curves = {"as trained": reliability(as_trained, data.test.y)}
    if calibration is not None:
        metrics["calibration"] = {**calibration, "test_ece_before": expected_calibration_error(as_trained, data.test.y),
                                  "test_ece_after": metrics["ece"]}
        curves["calibrated"] = reliability(proba, data.test.y)
    if cfg.train.baseline:
        metrics["baseline_tfidf_lr"] = run_baseline(data, start, progress)
    read = unlabelled_read(start, unlabelled)
    if unlabelled is not None:
        metrics["unlabelled"] = unlabelled["record"]
    save_run(out, data, model, metrics, history, curves, read)
    (out / artifacts.CHECKPOINT).unlink(missing_ok=True)
    shutil.rmtree(out / artifacts.DATASET, ignore_errors=True)
    shutil.rmtree(out / artifacts.MEMBERS, ignore_errors=True)
    shutil.rmtree(out / artifacts.UNLABELLED, ignore_errors=True)
    return TrainResult(out, metrics, history)


def unlabelled_read(start: InitFrom | None, unlabelled: dict | None) -> tuple[np.ndarray, int | None] | None:
    """The fingerprints of every text the model read without its label: its language model's and
    --unlabelled's (None: it read none)."""
    samples = [] if unlabelled is None else [unlabelled["hashes"]]
    lm = None if start is None else start.texts_read()
    samples += [] if lm is None else [lm]
    return store.merged_samples(samples) if samples else None


def calibrated(model: SentimentLSTM, data: RunData, members: int, device: torch.device,
                progress: Progress) -> dict | None:
    """The model calibrated (and its threshold set) on the validation slice; what was fitted. A
    bag's members each learnt from the others' slices: only a single model has one to fit on."""
    rule = data.cfg.train.threshold
    if members == 1:
        return calibrate(model, data.validation, device, progress, rule)
    if rule is not None:
        model.threshold.fill_(threshold_rule(rule)[1])
    return None


def check_threshold(data: RunData) -> None:
    """Refuse, before training, a --threshold the data or the model cannot take."""
    rule, members = data.cfg.train.threshold, data.cfg.model.members
    if rule is not None and len(data.classes) != 2:
        raise ConfigError(f"--threshold decides between two classes; this data has {len(data.classes)}")
    if rule is not None and members > 1 and threshold_rule(rule)[0] != "value":
        raise ConfigError(f"--threshold {rule} is chosen on a validation slice, and a bag (--members) has none "
                          "its members did not learn from; give a value")
    if rule is not None and threshold_rule(rule)[0] != "value" and not fits_on(data.validation):
        raise ConfigError(f"--threshold {rule} is chosen on the validation slice, which holds fewer than "
                          f"{MIN_REVIEWS} reviews of both classes; give more data or a value")


def run_metrics(data: RunData, states: list[FitState], proba: np.ndarray, *, device: torch.device, ranks: Ranks,
                started: float, start: InitFrom | None, threshold: float | None = None) -> dict:
    """metrics.json of a run: the test figures (labels by ``threshold`` where one is set), the
    validation figures the weights were chosen by, what the run did and on what data."""
    cfg, ds, test = data.cfg, data.dataset, data.test
    metrics = classification_metrics(test.y, proba, data.classes, threshold)
    if threshold is not None:
        metrics["threshold"] = threshold
    one = len(states) == 1
    metrics.update({
        "scored_on": "test: the held-out part, scored once after training; nothing was chosen on it",
        "n_train": len(data.fit), "n_validation": len(data.validation), "n_test": len(test), "members": len(states),
        "validation": validation_figures(data, states),
        "epochs_run": states[0].epoch if one else [s.epoch for s in states],
        "best_epoch": states[0].best_epoch if one else [s.best_epoch for s in states],
        "averaged": states[0].averaged if one else [s.averaged for s in states],
        "train_seconds": round(sum(s.seconds for s in states), 2),
        "total_seconds": round(time.perf_counter() - started, 2), "device": device.type,
        "hardware": hardware(device), "precision": "bf16" if trains_in_bf16(cfg.train.precision, device) else "fp32", "processes": ranks.world,
        "train_tokens": data.fit.seqs.n_tokens, **ds.manifest["counts"],
        "label_scheme": ds.manifest.get("label_scheme"),
        "dataset": {"id": ds.id, "n": ds.manifest["n"], "heldout_digest": store.digest(test.seqs, test.y)},
        "init_from": None if start is None else start.describe(data.classes),
    })
    if cfg.model.ngram_buckets:  # what the n-gram branch's fit chose
        metrics["wide_branch"] = states[0].wide if one else [s.wide for s in states]
    weights = class_weights(data.fit.y, len(data.classes), cfg.train.class_weight)
    if weights is not None:
        metrics["class_weights"] = dict(zip(data.classes, map(float, weights)))
    metrics["warnings"] = model_warnings(metrics)
    return metrics


def validation_figures(data: RunData, states: list[FitState]) -> dict | None:
    """The validation figures of the weights kept (None without a slice), and how they were chosen."""
    if not len(data.validation):
        return None
    chosen = [chosen_figures(state) for state in states]
    validation = {"n": len(data.validation), "loss": _mean(c.get("val_loss") for c in chosen),
                  "accuracy": _mean(c.get("val_accuracy") for c in chosen),
                  "chosen": "the epoch with the lowest validation loss (early stopping, best epoch)"}
    if data.cfg.train.average_weights:
        validation["chosen"] += ("; or, where its loss was lower, the mean of the weights of epochs 1 to that "
                                 "epoch (--average-weights; see 'averaged')")
    if len(states) > 1:
        validation["chosen"] += (f"; the mean of the {len(states)} members' figures, each on its own slice "
                                 "(the bag as a whole has no slice it did not learn from)")
        validation["members"] = [{"n": int(mask.sum()), "loss": c.get("val_loss"), "accuracy": c.get("val_accuracy")}
                                 for mask, c in zip(data.masks, chosen)]
    return validation


def run_baseline(data: RunData, start: InitFrom | None, progress: Progress) -> dict:
    """TF-IDF + logistic regression on the run's own split: C chosen on its validation slice, the
    test part scored once."""
    val = data.validation
    progress.log("fitting the TF-IDF + logistic regression baseline on the same split"
                 + (" (C chosen on the validation slice)" if len(val) else ""))
    fit_texts, val_texts, test_texts = data.baseline_texts(limit=BASELINE_MAX)
    result = tfidf_baseline(fit_texts, data.fit.y, test_texts, data.test.y, data.classes, data.cfg.train.seed,
                            val=(val_texts, val.y) if len(val) else None)
    if start is not None:  # revsent also learnt from the started-from model's data; the baseline did not
        result["trained_on"] = f"this run's training reviews only, not those of the --init-from model ({start.path})"
    return result


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def save_run(out: Path, data: RunData, model: SentimentLSTM, metrics: dict, history: list[dict],
             curves: dict, unlabelled: tuple[np.ndarray, int | None] | None = None) -> None:
    """The model directory: metrics, history and plots, the training part's fingerprints (for
    ``evaluate``'s overlap check), then config, tokenizer and weights, the weights last."""
    hashes, bound = store.fingerprint_sample(data.train.seqs)
    metrics["train_hashes"] = {"reviews": len(data.train), "kept": len(hashes), "bound": bound}
    if unlabelled is not None:
        metrics["unlabelled_hashes"] = {"kept": len(unlabelled[0]), "bound": unlabelled[1]}
    artifacts.write_json(out / artifacts.METRICS, metrics)
    if history:
        artifacts.write_csv(out / artifacts.HISTORY, history)
        plot_history(history, out / "training_curves.png")
    plot_confusion(metrics["confusion_matrix"], data.classes, out / "confusion_matrix.png")
    if len(data.test):
        plot_reliability(curves, out / "reliability.png")
    for name, kept in ((artifacts.TRAIN_HASHES, hashes), (artifacts.UNLABELLED_HASHES, unlabelled and unlabelled[0])):
        if kept is not None:
            artifacts.write_npy(out / name, kept)
    artifacts.save_model(out, data.cfg, data.classes, data.encoder, model)  # the weights last: a whole model
