"""Calibration: after the weights are chosen, the validation slice fits how sharp the model's
probabilities are (temperature scaling, Guo et al., 2017).

Prediction's logits are ``(LSTM + wide) / T`` (``SentimentLSTM.mix`` holds ``1 / T`` for each
branch); T minimises the validation slice's log loss. Dividing every logit by one number keeps
every label as it was, so accuracy is unchanged and only the probabilities move. (Fitting the
two branches' scales apart was tried: on a slice of 100 reviews, one the epoch was already chosen
on, it weighed the LSTM up and cost test accuracy.) Nothing is chosen on the test part, whose
expected calibration error is reported before and after.
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.parts import Part
from ..metrics import expected_calibration_error
from ..model import SentimentLSTM, branch_logits, mixed_probabilities
from ..progress import Progress

MIN_REVIEWS = 20  # fewer validation reviews fit nothing: the probabilities stay as trained


def log_loss(lstm: np.ndarray, wide: np.ndarray | None, y: np.ndarray, mix) -> float:
    proba = mixed_probabilities(lstm, wide, mix)
    return float(-np.log(np.maximum(proba[np.arange(len(y)), y], 1e-12)).mean())


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


def calibrate(model: SentimentLSTM, val: Part, device: torch.device, progress: Progress) -> dict | None:
    """Fit ``model.mix`` on the validation slice ``val``; what was fitted and the slice's figures
    before and after (None, and nothing fitted, on a slice of fewer than MIN_REVIEWS)."""
    if len(val) < MIN_REVIEWS or len(np.unique(val.y)) < 2:
        return None
    lstm, wide = branch_logits(model, val.seqs, device=device)
    temperature = fit_temperature(lstm if wide is None else lstm + wide, val.y)
    mix = np.full(2, 1.0 / temperature)
    before = mixed_probabilities(lstm, wide, (1.0, 1.0))
    after = mixed_probabilities(lstm, wide, mix)
    model.mix.copy_(torch.as_tensor(mix, dtype=torch.float32))
    result = {
        "method": "temperature scaling: the logits divided by the T that minimises the validation slice's log "
                  "loss (labels unchanged); the test figures are reported, nothing chosen on them",
        "temperature": temperature,
        "validation_loss_before": log_loss(lstm, wide, val.y, (1.0, 1.0)),
        "validation_loss_after": log_loss(lstm, wide, val.y, mix),
        "validation_ece_before": expected_calibration_error(before, val.y),
        "validation_ece_after": expected_calibration_error(after, val.y),
    }
    progress.log(f"calibrated on {len(val)} validation reviews: temperature {temperature:.2f}; validation ECE "
                 f"{result['validation_ece_before']:.3f} -> {result['validation_ece_after']:.3f}")
    return result
