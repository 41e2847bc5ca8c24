"""Calibration: after the weights are chosen, the validation slice fits how sharp the model's
probabilities are (temperature scaling, Guo et al., 2017).

Prediction's logits are ``(w LSTM + wide) / T`` (``SentimentLSTM.mix`` holds ``w / T`` and
``1 / T``); T minimises the validation slice's log loss. Dividing every logit by one number keeps
every label as it was, so accuracy is unchanged and only the probabilities move.

With an n-gram branch, the LSTM's weight w is chosen from LSTM_WEIGHTS on the same slice (the
lowest log loss, each with its own T; a tie keeps the larger): with few labelled reviews an LSTM
can add more noise than it learnt, and the model then leans on the n-grams, as the validation
slice decides. (Fitting the two scales freely was tried first: on a slice of 100 reviews it
weighed the LSTM up and cost test accuracy; a coarse grid has less to overfit.) Nothing is chosen
on the test part, whose expected calibration error is reported before and after.
"""
from __future__ import annotations

import numpy as np
import torch

from ..config import threshold_rule
from ..data.parts import Part
from ..metrics import expected_calibration_error
from ..model import SentimentLSTM, branch_logits, mixed_probabilities
from ..progress import Progress

MIN_REVIEWS = 20  # fewer validation reviews fit nothing: the probabilities stay as trained
LSTM_WEIGHTS = (1.0, 0.5, 0.0)  # the LSTM's weight beside the n-grams, tried on the validation slice


def log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.maximum(proba[np.arange(len(y)), y], 1e-12)).mean())


def fits_on(val: Part | None) -> bool:
    """Whether a validation slice is large enough to fit on: MIN_REVIEWS, of both classes."""
    return val is not None and len(val) >= MIN_REVIEWS and len(np.unique(val.y)) >= 2


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The T > 0 minimising the log loss of ``softmax(logits / T)`` on labels ``y`` (convex in 1 / T)."""
    from scipy.optimize import minimize_scalar

    y = np.asarray(y, dtype=np.int64)
    logits = logits.astype(np.float64)

    def loss(log_scale: float) -> float:
        scaled = logits * np.exp(log_scale)
        scaled -= scaled.max(axis=1, keepdims=True)
        return float(-(scaled[np.arange(len(y)), y] - np.log(np.exp(scaled).sum(axis=1))).mean())

    found = minimize_scalar(loss, bounds=(-5.0, 5.0), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(-found.x))


def calibrate(model: SentimentLSTM, val: Part, device: torch.device, progress: Progress,
              threshold: str | None = None) -> dict | None:
    """Fit ``model.mix`` on the validation slice ``val`` and, with a ``threshold`` rule (two
    classes), ``model.threshold`` on the calibrated probabilities; what was fitted and the slice's
    figures before and after (None, and nothing fitted, on a slice of fewer than MIN_REVIEWS)."""
    if not fits_on(val):  # a threshold to choose was refused before training (run.check_threshold)
        if threshold is not None:
            model.threshold.fill_(threshold_rule(threshold)[1])
        return None
    lstm, wide = branch_logits(model, val.seqs, device=device)
    losses, weight, temperature = lstm_weight(lstm, wide, val.y)
    mix = np.array([weight, 1.0]) / temperature
    before = mixed_probabilities(lstm, wide, (1.0, 1.0))
    after = mixed_probabilities(lstm, wide, mix)
    model.mix.copy_(torch.as_tensor(mix, dtype=torch.float32))
    result = {
        "method": "temperature scaling: the logits divided by the T that minimises the validation slice's log "
                  "loss; with n-grams, the LSTM's weight beside them chosen there too; the test figures are "
                  "reported, nothing chosen on them",
        "temperature": temperature,
        "lstm_weight": weight,
        "validation_loss_by_lstm_weight": losses,
        "validation_loss_before": log_loss(before, val.y),
        "validation_loss_after": log_loss(after, val.y),
        "validation_ece_before": expected_calibration_error(before, val.y),
        "validation_ece_after": expected_calibration_error(after, val.y),
    }
    leaning = "" if wide is None else f", the LSTM's weight {weight:g}"
    progress.log(f"calibrated on {len(val)} validation reviews: temperature {temperature:.2f}{leaning}; validation "
                 f"ECE {result['validation_ece_before']:.3f} -> {result['validation_ece_after']:.3f}")
    if threshold is not None:
        result["threshold"] = choose_threshold(threshold, after, val.y)
        model.threshold.fill_(result["threshold"]["value"])
        progress.log(f"decision threshold ({threshold}): {result['threshold']['value']:.3f} on the validation slice"
                     + ("" if result["threshold"]["reached"] else "; its target is out of reach there, the closest kept"))
    return result


def lstm_weight(lstm: np.ndarray, wide: np.ndarray | None, y: np.ndarray) -> tuple[dict | None, float, float]:
    """The validation log loss of each LSTM weight (None without n-grams: the weight stays 1), the
    chosen weight and its temperature."""
    if wide is None:
        return None, 1.0, fit_temperature(lstm, y)
    losses, fitted = {}, {}
    for weight in LSTM_WEIGHTS:
        fitted[weight] = fit_temperature(weight * lstm + wide, y)
        losses[weight] = log_loss(mixed_probabilities(lstm, wide, np.array([weight, 1.0]) / fitted[weight]), y)
    best = min(LSTM_WEIGHTS, key=lambda w: (round(losses[w], 6), -w))
    return {str(w): v for w, v in losses.items()}, best, fitted[best]


def choose_threshold(rule: str, proba: np.ndarray, y: np.ndarray) -> dict:
    """The binary decision threshold ``rule`` (``config.threshold_rule``) gives on validation
    probabilities ``proba`` (n, 2) and labels ``y``: a value as given; ``f1``: the best F1 of
    classes[1]; ``precision:P``: the lowest threshold reaching precision P (the most recall);
    ``recall:R``: the highest keeping recall R (the most precision). The slice's figures there."""
    from sklearn.metrics import precision_recall_curve

    kind, target = threshold_rule(rule)
    y = np.asarray(y) == 1
    if kind == "value":
        value = target
    else:
        precision, recall, cuts = precision_recall_curve(y, proba[:, 1])
        precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
        if kind == "f1":
            f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
            value = float(cuts[int(np.argmax(f1))])
        elif kind == "precision":  # out of reach: the most precise threshold (the run is not lost over it)
            reach = np.flatnonzero(precision >= target)
            value = float(cuts[reach[0]] if len(reach) else cuts[int(np.argmax(precision))])
        else:
            keep = np.flatnonzero(recall >= target)
            value = float(cuts[keep[-1]])
    predicted = proba[:, 1] >= value
    tp = float((predicted & y).sum())
    figures = {"precision": tp / max(predicted.sum(), 1), "recall": tp / max(y.sum(), 1)}
    figures["f1"] = 2 * figures["precision"] * figures["recall"] / max(figures["precision"] + figures["recall"], 1e-12)
    reached = {"precision": figures["precision"], "recall": figures["recall"]}.get(kind, 1.0) >= (target or 0.0)
    return {"rule": rule, "value": float(value), "reached": bool(reached),
            "validation": {k: float(v) for k, v in figures.items()}}
