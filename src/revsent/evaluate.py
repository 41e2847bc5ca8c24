"""Honest numbers: held-out metrics, the confusion matrix, plots and a TF-IDF baseline."""
from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import json
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .artifacts import METRICS, atomic_write, load_model
from .data import RecordReader, store
from .data.dataset import validation_mask
from .errors import ArtifactError, DataError
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


BASELINE_CS = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)  # C values tried on the validation slice
BASELINE_C = 10.0  # without a validation slice


def tfidf_baseline(train_texts: Sequence[str], train_y: np.ndarray, test_texts: Sequence[str],
                   test_y: np.ndarray, classes: list[str], seed: int = 36,
                   val: tuple[Sequence[str], np.ndarray] | None = None) -> dict:
    """TF-IDF (1-2 grams) + logistic regression fitted on ``train_*``, scored once on ``test_*``.

    With ``val`` (texts, labels), C is the one of BASELINE_CS with the best accuracy there (the
    regression is still fitted on ``train_*`` alone, as revsent's model is); else BASELINE_C.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2 if len(train_texts) >= 100 else 1,
                                 max_features=500_000, sublinear_tf=True)
    features = vectorizer.fit_transform(train_texts)
    fit = lambda c: LogisticRegression(C=c, max_iter=1000, random_state=seed).fit(features, train_y)  # noqa: E731
    chosen, scores = BASELINE_C, {}
    if val is not None and len(val[0]):
        val_features = vectorizer.transform(val[0])
        scores = {c: float(fit(c).score(val_features, val[1])) for c in BASELINE_CS}
        chosen = max(scores, key=lambda c: (scores[c], -abs(np.log(c / BASELINE_C))))  # ties: nearest the default
    classifier = fit(chosen)
    proba = np.zeros((len(test_texts), len(classes)))
    proba[:, classifier.classes_] = classifier.predict_proba(vectorizer.transform(test_texts))
    result = classification_metrics(test_y, proba, classes)
    result["C"] = chosen
    if scores:
        result["validation_accuracy_by_C"] = {str(c): score for c, score in scores.items()}
    return result


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
    """Training (and, with a validation slice, validation) loss and accuracy per epoch, and those
    of the weights' running mean (``--average-weights``); a bag's members (rows with a ``member``)
    each get their own curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict = {}
    for row in history:
        groups.setdefault(row.get("member"), []).append(row)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((ax_loss, "loss", "loss"), (ax_acc, "accuracy", "accuracy")):
        for member, rows in groups.items():
            epochs, who = [row["epoch"] for row in rows], "" if member is None else f" (member {member})"
            ax.plot(epochs, [row[f"train_{key}"] for row in rows], "o-", label=f"train{who}")
            if all(f"val_{key}" in row for row in rows):  # no validation slice: training curves only
                ax.plot(epochs, [row[f"val_{key}"] for row in rows], "o--", label=f"validation{who}")
            averaged = [row for row in rows if f"val_{key}_mean" in row]  # --average-weights, from epoch 2
            if averaged:
                ax.plot([row["epoch"] for row in averaged], [row[f"val_{key}_mean"] for row in averaged], "s:",
                        label=f"validation, mean of epochs 1..e{who}")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.set_xticks(sorted({row["epoch"] for row in history}))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
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
    """Score a saved model on ``paths``, or with no paths on the held-out part of its own data.

    ``paths`` are labelled files (streamed in chunks, read with the model's label scheme and
    fields unless ``data_options`` say otherwise) or one prepared dataset (its held-out part when
    the model was trained on it, else every review). Without paths the model's own data is
    prepared again and refused if it no longer matches what the model was trained on.
    ``baseline`` also fits TF-IDF + logistic regression on the model's training split and scores
    it on the same reviews: ``result["baseline"]``.
    """
    torch_device = resolve_device(device)
    cfg, classes, encoder, model = load_model(model_dir, torch_device)
    texts: list[str] | None = None
    with _own_dataset(model_dir, cfg, needed=not paths or baseline) as own:
        if not paths:
            rows = own.rows(1)
            y, proba = own.y[rows], class_probabilities(model, own.seqs.take(rows), device=torch_device)
            described = f"test split (held out) of {', '.join(cfg.data.paths) or 'imdb'}"
        elif len(paths) == 1 and store.is_dataset(paths[0]):
            ds = store.Dataset.open(paths[0])
            if ds.encoder.vocab != encoder.vocab or ds.manifest["tokenizer"] != {
                    k: getattr(cfg.model, k) for k in store.TOKENIZER_FIELDS}:
                raise DataError(paths[0], "was prepared with another vocabulary or tokenizer settings than the model's; "
                                "evaluate the data files instead")
            trained_on = _trained_dataset(model_dir).get("id")
            rows = ds.rows(1) if ds.id == trained_on else np.arange(ds.manifest["n"])
            y = _map_classes(ds.y[rows], ds.classes, classes, paths[0])
            proba = class_probabilities(model, ds.seqs.take(rows), device=torch_device)
            if baseline:
                wanted = set(rows.tolist()) if len(rows) < ds.manifest["n"] else None
                texts = [text for row, text in store.iter_texts(ds) if wanted is None or row in wanted]
            described = f"{'test split (held out)' if len(rows) < ds.manifest['n'] else 'all reviews'} of dataset {paths[0]}"
        else:  # the model's label scheme and fields, but nothing tied to its training files
            fresh = {"paths": tuple(paths), "format": "auto", "category": None, "business": None, "limit": None}
            if {"label_field", "stars_field"} & set(data_options):
                fresh.update(label_field=None, stars_field=None)
            data_cfg = dataclasses.replace(cfg.data, **{**fresh, **data_options})
            y, proba, texts = _score_files(model, encoder, data_cfg, classes, torch_device, keep_texts=baseline)
            described = list(paths)
        result = classification_metrics(y, proba, classes)
        result["data"] = described
        if baseline:
            train_texts, held_texts = store.texts_by_part(own, limit=BASELINE_MAX)
            train_y = own.y[own.rows(0)]
            in_val = validation_mask(len(train_y), cfg.train.val_fraction, cfg.train.seed)
            if texts is None:
                texts = held_texts
            part = lambda keep: [x for x, v in zip(train_texts, in_val) if v == keep]  # noqa: E731
            result["baseline"] = tfidf_baseline(part(0), train_y[in_val == 0], texts, y, classes, cfg.train.seed,
                                                val=(part(1), train_y[in_val == 1]) if in_val.any() else None)
    return result


BASELINE_MAX = 500_000  # training reviews scikit-learn's TF-IDF + LR baseline may hold in memory
SCORE_CHUNK = 8192  # reviews scored at a time when streaming a file


def _trained_dataset(model_dir: str | Path) -> dict:
    """What metrics.json recorded about the training data (empty for models saved from Python)."""
    try:
        return json.loads((Path(model_dir) / METRICS).read_text("utf-8")).get("dataset") or {}
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def _own_dataset(model_dir: str | Path, cfg, needed: bool) -> Iterator[store.Dataset | None]:
    """The model's training data as a dataset: its own prepared dataset, or its files prepared
    again in a temporary folder and checked against the digest recorded at training."""
    if not needed:
        yield None
        return
    record = _trained_dataset(model_dir)
    if not record:
        raise ArtifactError(f"{Path(model_dir) / METRICS}: records no training split (a model saved from Python?); "
                            "give labelled DATA to evaluate on")
    paths = cfg.data.paths
    if len(paths) == 1 and store.is_dataset(paths[0]):
        ds = store.Dataset.open(paths[0])
        if ds.id != record["id"]:
            raise DataError(paths[0], "is not the dataset this model was trained on (it changed since); give DATA to evaluate on")
        yield ds
        return
    work = Path(tempfile.mkdtemp(prefix="revsent-evaluate-"))
    try:
        ds = store.prepare(cfg, work / "dataset", work_dir=work)
        if store.digest(ds.seqs.take(ds.rows(1)), ds.y[ds.rows(1)]) != record.get("heldout_digest"):
            raise DataError(", ".join(paths) or "imdb", "no longer holds the data this model was trained on (its "
                            "held-out split differs); give DATA to evaluate on")
        yield ds
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _map_classes(y: np.ndarray, names: list[str], classes: list[str], source: str) -> np.ndarray:
    unknown = sorted(set(names[i] for i in np.unique(y)) - set(classes))
    if unknown:
        raise DataError(source, f"labels {unknown[:5]} are not among the model's classes {classes}")
    return np.array([classes.index(name) for name in names], dtype=np.int64)[y]


def _score_files(model, encoder, data_cfg, classes: list[str], device, keep_texts: bool):
    """Labels and probabilities for every record of ``data_cfg``, streamed in chunks."""
    reader = RecordReader(data_cfg)
    index = {name: i for i, name in enumerate(classes)}
    ys, probas, texts = [], [], []
    source = ", ".join(reader.paths)
    records = iter(reader)
    while chunk := list(itertools.islice(records, SCORE_CHUNK)):
        unknown = sorted({r.label for r in chunk} - set(classes))
        if unknown:
            raise DataError(source, f"labels {unknown[:5]} are not among the model's classes {classes}")
        chunk_texts = [r.text for r in chunk]
        ys.append(np.array([index[r.label] for r in chunk], dtype=np.int64))
        probas.append(class_probabilities(model, encoder.encode(chunk_texts), device=device))
        if keep_texts:
            texts.extend(chunk_texts)
    if not ys:
        raise DataError(source, f"no usable records (read {reader.tally.read})")
    return np.concatenate(ys), np.concatenate(probas), texts if keep_texts else None
