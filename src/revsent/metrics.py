"""Held-out figures from a classifier's probabilities, and the table the CLI prints of them.

Kept apart from PyTorch and the plots: training, tuning, evaluation and the TF-IDF baseline all
score with this one function, so their figures compare.
"""
from __future__ import annotations

import numpy as np


def decide(proba: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Each row's label id: the most probable class, or with a ``threshold`` (two classes) the
    second class (``classes[1]``) where its probability reaches it."""
    if threshold is None or not np.isfinite(threshold) or proba.shape[1] != 2:
        return proba.argmax(axis=1)
    return (proba[:, 1] >= threshold).astype(np.int64)


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, classes: list[str],
                           threshold: float | None = None) -> dict:
    """Accuracy, per-class and macro precision/recall/F1, ROC-AUC (binary), log loss, confusion
    matrix, calibration error; the labels by ``decide`` (argmax, or the binary ``threshold``)."""
    from sklearn import metrics as skm  # here, not at import: `revsent predict` starts faster

    labels = list(range(len(classes)))
    y_pred = decide(proba, threshold)
    precision, recall, f1, support = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    result = {
        "n": int(len(y_true)),
        "labels": classes,
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "f1_macro": float(f1.mean()),
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "log_loss": float(skm.log_loss(y_true, np.clip(proba, 1e-12, 1.0), labels=labels)),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(classes, precision, recall, f1, support)
        },
        "confusion_matrix": skm.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "ece": expected_calibration_error(proba, y_true),
    }
    if len(classes) == 2 and len(np.unique(y_true)) == 2:
        result["roc_auc"] = float(skm.roc_auc_score(y_true, proba[:, 1]))
    return result


ONE_CLASS_SHARE = 0.95  # "nearly all": predictions of one class at least this share of the reviews ...
ONE_CLASS_EXCESS = 0.05  # ... and this much above that class's true share (a 97%-positive sample may be right)


def model_warnings(result: dict) -> list[str]:
    """What a user must hear about a model's held-out figures (``classification_metrics``' result):
    that it does no better than always answering the majority class, or that it answers one class
    for nearly every review. Empty when neither holds, or for an empty part."""
    confusion = np.asarray(result.get("confusion_matrix") or [], dtype=np.int64)
    n = int(confusion.sum()) if confusion.size else 0
    if not n:
        return []
    names, truth, predicted = result["labels"], confusion.sum(axis=1) / n, confusion.sum(axis=0) / n
    warnings = []
    majority = int(truth.argmax())
    if result["accuracy"] <= truth[majority] < 1:  # (data of one class has no classes to tell apart)
        warnings.append(f"accuracy {result['accuracy']:.4f} is no better than always answering "
                        f"{names[majority]!r} ({truth[majority]:.4f} of these {n:,} reviews): the model has not "
                        "learnt to tell the classes apart; give more data or epochs, or another preset")
    top = int(predicted.argmax())
    if predicted[top] >= ONE_CLASS_SHARE and predicted[top] - truth[top] >= ONE_CLASS_EXCESS:
        others = ", ".join(f"{name} recall {result['per_class'][name]['recall']:.3f}" for name in names
                           if name != names[top] and name in result.get("per_class", {}))
        warnings.append(f"the model answers {names[top]!r} for {predicted[top]:.1%} of these {n:,} reviews, "
                        f"though {truth[top]:.1%} are {names[top]!r}" + (f" ({others})" if others else ""))
    return warnings


ECE_BINS = 15  # equal-width confidence bins (Guo et al., 2017)


def reliability(proba: np.ndarray, y_true: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    """Per confidence bin (of the top probability, equal widths over [0, 1]): its reviews, mean
    confidence and accuracy; empty bins left out."""
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == np.asarray(y_true)
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    return [{"low": k / bins, "high": (k + 1) / bins, "n": int((which == k).sum()),
             "confidence": float(confidence[which == k].mean()), "accuracy": float(correct[which == k].mean())}
            for k in range(bins) if (which == k).any()]


def expected_calibration_error(proba: np.ndarray, y_true: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: the reviews' mean gap between confidence and accuracy, bin by bin."""
    rows = reliability(proba, y_true, bins)
    return float(sum(r["n"] * abs(r["confidence"] - r["accuracy"]) for r in rows) / max(len(y_true), 1))


def format_report(result: dict, baseline: dict | None = None) -> str:
    """A readable table: overall figures, per-class figures and the confusion matrix."""
    rows = [("accuracy", "accuracy"), ("F1 (macro)", "f1_macro"), ("precision (macro)", "precision_macro"),
            ("recall (macro)", "recall_macro"), ("ROC-AUC", "roc_auc"), ("log loss", "log_loss"),
            ("calibration error", "ece")]
    head = f"{'':20s}{'revsent':>10s}" + (f"{'TF-IDF+LR':>12s}" if baseline else "")
    lines = [f"{result['n']} reviews, classes: {', '.join(result['labels'])}", head]
    for title, key in rows:
        if key in result:
            line = f"{title:20s}{result[key]:10.4f}"
            if baseline and key in baseline:
                line += f"{baseline[key]:12.4f}"
            lines.append(line)
    lines.append("")
    lines.append(f"{'class':20s}{'precision':>10s}{'recall':>10s}{'f1':>10s}{'support':>10s}")
    for name, row in result["per_class"].items():
        lines.append(f"{name[:20]:20s}{row['precision']:10.4f}{row['recall']:10.4f}{row['f1']:10.4f}"
                     f"{row['support']:10d}")
    lines.append("")
    width = max(8, *(len(c) + 2 for c in result["labels"]))
    lines.append("confusion matrix (rows: true, columns: predicted)")
    lines.append(" " * width + "".join(f"{c[:width - 1]:>{width}s}" for c in result["labels"]))
    for name, row in zip(result["labels"], result["confusion_matrix"]):
        lines.append(f"{name[:width - 1]:{width}s}" + "".join(f"{v:>{width}d}" for v in row))
    return "\n".join(lines)

