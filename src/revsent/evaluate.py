"""Honest numbers: held-out metrics, the confusion matrix, plots and a TF-IDF baseline."""
from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Sequence

import numpy as np

from .artifacts import atomic_write, load_model
from .data import read_labelled, split
from .device import resolve_device
from .model import class_probabilities


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, per-class and macro precision/recall/F1, ROC-AUC (binary), log loss, confusion matrix."""
    from sklearn import metrics as skm  # here, not at import: `revsent predict` starts faster

    labels = list(range(len(classes)))
    y_pred = proba.argmax(axis=1)
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
    }
    if len(classes) == 2 and len(np.unique(y_true)) == 2:
        result["roc_auc"] = float(skm.roc_auc_score(y_true, proba[:, 1]))
    return result


def tfidf_baseline(train_texts: Sequence[str], train_y: np.ndarray, test_texts: Sequence[str],
                   test_y: np.ndarray, classes: list[str], seed: int = 36) -> dict:
    """TF-IDF (1-2 grams) + logistic regression fitted on ``train_*``, scored on ``test_*``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2 if len(train_texts) >= 100 else 1,
                                 max_features=500_000, sublinear_tf=True)
    features = vectorizer.fit_transform(train_texts)
    classifier = LogisticRegression(C=10.0, max_iter=1000, random_state=seed).fit(features, train_y)
    proba = np.zeros((len(test_texts), len(classes)))
    proba[:, classifier.classes_] = classifier.predict_proba(vectorizer.transform(test_texts))
    return classification_metrics(test_y, proba, classes)


def format_report(result: dict, baseline: dict | None = None) -> str:
    """A readable table: overall figures, per-class figures and the confusion matrix."""
    rows = [("accuracy", "accuracy"), ("F1 (macro)", "f1_macro"), ("precision (macro)", "precision_macro"),
            ("recall (macro)", "recall_macro"), ("ROC-AUC", "roc_auc"), ("log loss", "log_loss")]
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
        lines.append(f"{name[:20]:20s}{row['precision']:10.4f}{row['recall']:10.4f}{row['f1']:10.4f}{row['support']:10d}")
    lines.append("")
    width = max(8, *(len(c) + 2 for c in result["labels"]))
    lines.append("confusion matrix (rows: true, columns: predicted)")
    lines.append(" " * width + "".join(f"{c[:width - 1]:>{width}s}" for c in result["labels"]))
    for name, row in zip(result["labels"], result["confusion_matrix"]):
        lines.append(f"{name[:width - 1]:{width}s}" + "".join(f"{v:>{width}d}" for v in row))
    return "\n".join(lines)


def _save_figure(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    atomic_write(path, buffer.getvalue())


def plot_history(history: list[dict], path: Path) -> None:
    """Training and validation loss and accuracy per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((ax_loss, "loss", "loss"), (ax_acc, "accuracy", "accuracy")):
        ax.plot(epochs, [row[f"train_{key}"] for row in history], "o-", label="train")
        ax.plot(epochs, [row[f"val_{key}"] for row in history], "o-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
        ax.legend()
    _save_figure(fig, path)
    plt.close(fig)


def plot_confusion(matrix: list[list[int]], classes: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(1.2 * len(classes) + 3, 1.2 * len(classes) + 2.5))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_title("confusion matrix (held out)")
    _save_figure(fig, path)
    plt.close(fig)


def evaluate(model_dir: str | Path, paths: Sequence[str] = (), *, baseline: bool = False,
             device: str = "auto", **data_options) -> dict:
    """Score a saved model on ``paths`` (read with the model's own data settings, overridable),
    or, with no paths, on the held-out part of its own training data.

    ``baseline`` also fits TF-IDF + logistic regression on the model's training split (re-read
    from the files it was trained on) and scores it on the same data: ``result["baseline"]``.
    """
    torch_device = resolve_device(device)
    cfg, classes, encoder, model = load_model(model_dir, torch_device)
    if paths:  # the model's label scheme and fields, but nothing tied to its training files
        fresh = {"paths": tuple(paths), "format": "auto", "category": None, "business": None, "limit": None}
        if {"label_field", "stars_field"} & set(data_options):
            fresh.update(label_field=None, stars_field=None)
        eval_cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, **{**fresh, **data_options}))
        data = read_labelled(eval_cfg, classes=classes)
        texts, y = data.texts, data.y
    if not paths or baseline:
        own = read_labelled(cfg, classes=classes)  # the files the model was trained on
        if cfg.train.val_data:
            train_texts, train_y = own.texts, own.y
            held = read_labelled(cfg, cfg.train.val_data, classes=classes)
            held_texts, held_y = held.texts, held.y
        else:
            train_idx, val_idx = split(len(own.texts), cfg.train.val_split, cfg.train.seed)
            train_texts, train_y = [own.texts[i] for i in train_idx], own.y[train_idx]
            held_texts, held_y = [own.texts[i] for i in val_idx], own.y[val_idx]
        if not paths:
            texts, y = held_texts, held_y
    proba = class_probabilities(model, encoder.encode(texts), device=torch_device)
    result = classification_metrics(y, proba, classes)
    result["data"] = list(paths) or f"held-out split of {', '.join(cfg.data.paths) or 'imdb'}"
    if baseline:
        result["baseline"] = tfidf_baseline(train_texts, train_y, texts, y, classes, cfg.train.seed)
    return result
