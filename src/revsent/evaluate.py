"""Score a saved model on held-out or new labelled data: the ``revsent evaluate`` command's library function.

Figures on reviews the model was trained on overstate its accuracy on new ones, so scoring new
data checks it against the model's training part: exactly, review by review, where the model
directory holds ``train_hashes.npy`` (a fingerprint of each training review, see
:func:`revsent.data.store.review_hashes`); otherwise only as far as the names of the files tell (a file the model was
trained on). What it finds is in ``result["warnings"]``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .artifacts import METRICS, TRAIN_HASHES, UNLABELLED_HASHES, load_model, read_metrics
from .baseline import BASELINE_MAX, tfidf_baseline
from .data import RecordReader, sample, store
from .data.store import review_hashes
from .data.parts import RunData, open_run_data
from .errors import ArtifactError, DataError
from .device import resolve_device
from .metrics import classification_metrics, model_warnings
from .model import class_probabilities


def evaluate(model_dir: str | Path, paths: Sequence[str] = (), *, baseline: bool = False,
             device: str = "auto", **data_options) -> dict:
    """Score a saved model on ``paths``, or with no paths on the held-out part of its own data.

    ``paths`` are labelled files (streamed in chunks, read with the model's label scheme and
    fields unless ``data_options`` say otherwise) or one prepared dataset (its held-out part when
    the model was trained on it, else every review). Without paths the model's own data is
    prepared again and refused if it no longer matches what the model was trained on.
    ``baseline`` also fits TF-IDF + logistic regression on the model's training split and scores
    it on the same reviews: ``result["baseline"]``. ``result["warnings"]`` says where the reviews
    scored were in the model's training part (see the module's docstring).
    """
    torch_device = resolve_device(device)
    cfg, classes, encoder, model = load_model(model_dir, torch_device)
    texts: list[str] | None = None
    train_hashes = read_train_hashes(model_dir)
    pretrain_hashes = read_train_hashes(model_dir, UNLABELLED_HASHES)
    hashed = train_hashes is not None or pretrain_hashes is not None
    fingerprints: np.ndarray | None = None  # the scored reviews' hashes, where there are training ones to match
    with _own_dataset(model_dir, cfg, needed=not paths or baseline) as own:
        checked = paths  # what to check against the training part: none where its held-out part is scored
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
            checked = () if ds.id == trained_on else paths
            y = _map_classes(ds.y[rows], ds.classes, classes, paths[0])
            proba = class_probabilities(model, ds.seqs.take(rows), device=torch_device)
            if hashed and checked:
                fingerprints = review_hashes(ds.seqs.take(rows))
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
            y, proba, texts, fingerprints = _score_files(model, encoder, data_cfg, classes, torch_device, keep_texts=baseline,
                                                   hashes=hashed)
            described = list(paths)
        result = classification_metrics(y, proba, classes, model.decision_threshold)
        result["data"] = described
        result["warnings"] = (training_overlap(model_dir, cfg, checked, len(y), fingerprints, train_hashes)
                              + pretraining_overlap(model_dir, checked, len(y), fingerprints, pretrain_hashes)
                              + model_warnings(result))
        if baseline:  # fitted on the model's own split, scored on the same reviews as the model
            fit_texts, val_texts, test_texts = own.baseline_texts(limit=BASELINE_MAX)
            val = own.validation
            result["baseline"] = tfidf_baseline(fit_texts, own.fit.y, test_texts if texts is None else texts, y,
                                                classes, cfg.train.seed, val=(val_texts, val.y) if len(val) else None)
    return result


SCORE_CHUNK = 8192  # reviews scored at a time when streaming a file


def _trained_dataset(model_dir: str | Path) -> dict:
    """What metrics.json recorded about the training data (empty for models saved from Python)."""
    return read_metrics(model_dir).get("dataset") or {}


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


def _score_files(model, encoder, data_cfg, classes: list[str], device, keep_texts: bool, hashes: bool = False):
    """Labels, probabilities, texts (with ``keep_texts``) and review hashes (with ``hashes``) for
    every record of ``data_cfg``, streamed in chunks."""
    reader = RecordReader(data_cfg)
    index = {name: i for i, name in enumerate(classes)}
    ys, probas, texts, fingerprints = [], [], [], []
    source = ", ".join(reader.paths)
    records = iter(reader)
    while chunk := list(itertools.islice(records, SCORE_CHUNK)):
        unknown = sorted({r.label for r in chunk} - set(classes))
        if unknown:
            raise DataError(source, f"labels {unknown[:5]} are not among the model's classes {classes}")
        chunk_texts = [r.text for r in chunk]
        ys.append(np.array([index[r.label] for r in chunk], dtype=np.int64))
        seqs = encoder.encode(chunk_texts)
        probas.append(class_probabilities(model, seqs, device=device))
        if keep_texts:
            texts.extend(chunk_texts)
        if hashes:
            fingerprints.append(review_hashes(seqs))
    if not ys:
        raise DataError(source, f"no usable records (read {reader.tally.read})")
    return (np.concatenate(ys), np.concatenate(probas), texts if keep_texts else None,
            np.concatenate(fingerprints) if hashes else None)


OVERSTATE = "these figures overstate accuracy on new reviews"


def read_train_hashes(model_dir: str | Path, name: str = TRAIN_HASHES) -> tuple[np.ndarray, int | None] | None:
    """The model's training-part fingerprints (``train_hashes.npy``; ``unlabelled_hashes.npy``: those of
    the language model it started from) and their sample bound (None: every review's; see
    :func:`revsent.data.store.hash_sample`), or None where it has none."""
    path = Path(model_dir) / name
    if not path.exists():
        return None
    try:
        hashes = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: corrupt ({str(exc).splitlines()[0]}); delete it to evaluate without it") from None
    if hashes.dtype != np.uint64 or hashes.ndim != 1:
        raise ArtifactError(f"{path}: holds {hashes.dtype} of shape {hashes.shape}, not one uint64 per review; "
                            "delete it to evaluate without it")
    key = "unlabelled_hashes" if name == UNLABELLED_HASHES else "train_hashes"
    bound = (read_metrics(model_dir).get(key) or {}).get("bound")
    return hashes, bound


def overlap(scored: np.ndarray, train: tuple[np.ndarray, int | None]) -> tuple[int, bool]:
    """How many ``scored`` fingerprints are among the training part's, and whether that is an
    estimate (the training fingerprints are a sample: those below its bound, scaled up)."""
    hashes, bound = train
    if bound is None:
        return int(np.isin(scored, hashes).sum()), False
    in_sample = scored <= np.uint64(bound)
    seen = int(np.isin(scored[in_sample], hashes).sum())
    return (round(seen * len(scored) / in_sample.sum()) if in_sample.any() else 0), True


def training_overlap(model_dir: str | Path, cfg, paths: Sequence[str], n: int, scored: np.ndarray | None,
                     train: tuple[np.ndarray, int | None] | None) -> list[str]:
    """What can be said of the ``n`` reviews scored from ``paths`` (none: the model's own held-out
    part) having been in the model's training part: counted where both fingerprints are known;
    without the model's, only that a file scored is one the model was trained on, and how many
    reviews that part held at most."""
    if not paths:  # the model's own held-out part
        return []
    if scored is not None and train is not None:
        seen, estimated = overlap(scored, train)
        if not seen:
            return []
        about = "about " if estimated else ""
        return [f"{about}{seen:,} of {n:,} reviews scored here were in the model's training part; {OVERSTATE}"]
    record = read_metrics(model_dir)
    if not record.get("dataset"):  # saved from Python: no files to compare
        return []
    trained = [path for path in paths if any(_same_input(path, other) for other in cfg.data.paths or (sample.DEFAULT,))]
    if not trained:
        return []
    part = (record.get("n_train") or 0) + (record.get("n_validation") or 0)
    most = f"up to {min(part, n):,} of the {n:,} reviews" if part else "some of the reviews"
    return [f"{', '.join(trained)}: the model was trained on this data; {most} scored here may have been in its "
            f"training part ({Path(model_dir) / TRAIN_HASHES} is missing, so they cannot be counted); {OVERSTATE}"]


def pretraining_overlap(model_dir: str | Path, paths: Sequence[str], n: int, scored: np.ndarray | None,
                        known: tuple[np.ndarray, int | None] | None) -> list[str]:
    """How many of the ``n`` reviews scored were among the texts the model read without their labels
    (``unlabelled_hashes.npy``: its language model's, its --unlabelled reviews)."""
    if not paths or scored is None or known is None:
        return []
    seen, estimated = overlap(scored, known)
    if not seen:
        return []
    record = read_metrics(model_dir)
    sources = [f"the language model {(record.get('init_from') or {}).get('model')}"] if (
        record.get("init_from") or {}).get("kind") else []
    sources += [f"--unlabelled {', '.join(record['unlabelled']['files'])}"] if record.get("unlabelled") else []
    return [f"{'about ' if estimated else ''}{seen:,} of {n:,} reviews scored here were among the texts the model "
            f"read without their labels ({'; '.join(sources) or 'unlabelled text'}); {OVERSTATE}"]


def _same_input(path: str, trained: str) -> bool:
    """Whether ``path`` names the same bundled sample or file as ``trained`` (a path given at training)."""
    if sample.is_sample(path) or sample.is_sample(trained):
        return path == trained
    try:
        return os.path.samefile(path, trained)
    except OSError:
        return False
