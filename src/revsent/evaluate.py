"""Score a saved model on held-out or new labelled data: the ``revsent evaluate`` command's library function."""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .artifacts import METRICS, load_model
from .baseline import BASELINE_MAX, tfidf_baseline
from .data import RecordReader, store
from .data.parts import RunData, open_run_data
from .errors import ArtifactError, DataError
from .device import resolve_device
from .metrics import classification_metrics
from .model import class_probabilities


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
            y, proba = own.test.y, class_probabilities(model, own.test.seqs, device=torch_device)
            described = f"test split (held out) of {', '.join(cfg.data.paths) or 'imdb'}"
        elif len(paths) == 1 and store.is_dataset(paths[0]):
            ds = store.Dataset.open(paths[0])
            if ds.encoder.vocab != encoder.vocab or ds.manifest["tokenizer"] != {
                    k: getattr(cfg.model, k) for k in store.TOKENIZER_FIELDS}:
                raise DataError(paths[0], "was prepared with another vocabulary or tokenizer settings than the "
                                "model's; evaluate the data files instead")
            trained_on = _trained_dataset(model_dir).get("id")
            rows = ds.rows(1) if ds.id == trained_on else np.arange(ds.manifest["n"])
            y = _map_classes(ds.y[rows], ds.classes, classes, paths[0])
            proba = class_probabilities(model, ds.seqs.take(rows), device=torch_device)
            if baseline:
                wanted = set(rows.tolist()) if len(rows) < ds.manifest["n"] else None
                texts = [text for row, text in store.iter_texts(ds) if wanted is None or row in wanted]
            scored = "test split (held out)" if len(rows) < ds.manifest["n"] else "all reviews"
            described = f"{scored} of dataset {paths[0]}"
        else:  # the model's label scheme and fields, but nothing tied to its training files
            fresh = {"paths": tuple(paths), "format": "auto", "category": None, "business": None, "limit": None}
            if {"label_field", "stars_field"} & set(data_options):
                fresh.update(label_field=None, stars_field=None)
            data_cfg = dataclasses.replace(cfg.data, **{**fresh, **data_options})
            y, proba, texts = _score_files(model, encoder, data_cfg, classes, torch_device, keep_texts=baseline)
            described = list(paths)
        result = classification_metrics(y, proba, classes, model.decision_threshold)
        result["data"] = described
        if baseline:  # fitted on the model's own split, scored on the same reviews as the model
            fit_texts, val_texts, test_texts = own.baseline_texts(limit=BASELINE_MAX)
            val = own.validation
            result["baseline"] = tfidf_baseline(fit_texts, own.fit.y, test_texts if texts is None else texts, y,
                                                classes, cfg.train.seed, val=(val_texts, val.y) if len(val) else None)
    return result


SCORE_CHUNK = 8192  # reviews scored at a time when streaming a file


def _trained_dataset(model_dir: str | Path) -> dict:
    """What metrics.json recorded about the training data (empty for models saved from Python)."""
    try:
        return json.loads((Path(model_dir) / METRICS).read_text("utf-8")).get("dataset") or {}
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def _own_dataset(model_dir: str | Path, cfg, needed: bool) -> Iterator[RunData | None]:
    """The model's training data, cut as its run cut it: its own prepared dataset, or its files
    prepared again in a temporary folder and checked against the digest recorded at training."""
    if not needed:
        yield None
        return
    record = _trained_dataset(model_dir)
    if not record:
        raise ArtifactError(f"{Path(model_dir) / METRICS}: records no training split (a model saved from Python?); "
                            "give labelled DATA to evaluate on")
    paths = cfg.data.paths
    work = Path(tempfile.mkdtemp(prefix="revsent-evaluate-"))
    try:
        data = open_run_data(cfg, work / "dataset", work_dir=work)
        if len(paths) == 1 and store.is_dataset(paths[0]):
            if data.dataset.id != record["id"]:
                raise DataError(paths[0], "is not the dataset this model was trained on (it changed since); "
                                "give DATA to evaluate on")
        elif store.digest(data.test.seqs, data.test.y) != record.get("heldout_digest"):
            raise DataError(", ".join(paths) or "imdb", "no longer holds the data this model was trained on (its "
                            "held-out split differs); give DATA to evaluate on")
        yield data
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
