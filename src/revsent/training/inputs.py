"""What a fit prepares before its first epoch, once: the loss's class weights, the n-gram branch
fitted (a logistic regression on TF-IDF n-grams, rank 0's, then shared), its out-of-fold log-odds
that the LSTM's logits are trained beside, and the embedding's word-vector start.

Out of fold: each training review's n-gram log-odds come from a regression that did not see it,
so the LSTM learns what the n-grams miss rather than leaning on logits fitted to its own labels.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..config import Config
from ..data.parts import Part
from ..model import WIDE_BUFFERS, SentimentLSTM
from ..ngrams import NGRAM_CS, NgramFeatures, WideTable, fit_choosing_c, fit_linear, out_of_fold_logits
from ..progress import Progress
from ..text import Cut
from .distributed import Ranks, broadcast, from_main
from .word_vectors import start_from_word_vectors

WIDE = WIDE_BUFFERS  # the n-gram branch's tensors in the model
DEFAULT_NGRAM_C = 30.0  # the wide branch's C where the config leaves it to a validation slice there is not


@dataclass(frozen=True)
class FitInputs:
    """``weights``: per-class loss weights (None: all 1); ``offsets``: (n, C) added to the LSTM's
    logits for each training review (None without an n-gram branch); ``seconds`` spent here."""

    weights: np.ndarray | None
    offsets: torch.Tensor | None
    seconds: float
    wide: dict | None = None  # what the n-gram branch's fit chose (``fit_wide_branch``)


def class_weights(y: np.ndarray, n_classes: int, scheme: str | None) -> np.ndarray | None:
    """Per-class loss weights: None, or ``balanced`` as scikit-learn's ``n / (k * count)``."""
    if scheme is None:
        return None
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    return np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 0.0).astype(np.float32)


def prepare_inputs(model: SentimentLSTM, cfg: Config, train: Part, val: Part | None, *, fresh: bool, ranks: Ranks,
                   device: torch.device, progress: Progress, table: WideTable | None = None,
                   wide: dict | None = None) -> FitInputs:
    """The inputs of :func:`~revsent.training.loop.fit`. With ``fresh`` (not resuming, whose
    checkpoint holds them) the model's n-gram branch is fitted (its C chosen on ``val`` where the
    config leaves it open) and its embedding started from word vectors (``embedding_init`` ppmi;
    not when fine-tuning, which keeps its embedding). ``table``: the n-gram branch's features and
    idf, given (a bag's members share the whole training part's); ``wide``: what the fit of a
    resumed run chose."""
    n_classes, features = model.n_classes, NgramFeatures.of(model.cfg)
    weights = class_weights(train.y, n_classes, cfg.train.class_weight)
    started = time.perf_counter()
    lstm_train, train, val = train, ngram_part(train, model.cfg), val and ngram_part(val, model.cfg)
    if features is not None and fresh:
        progress.log(f"wide branch: fitting a logistic regression on the n-grams of {len(train.y):,} reviews")
        wide = fit_wide_branch(model, train, val, features, weights, cfg.train.seed, ranks, device, table)
        progress.log(f"wide branch: {wide['features']:,} n-gram features, C {wide['C']:g}, fitted in "
                     f"{time.perf_counter() - started:.1f}s")
    if model.cfg.embedding_init == "ppmi" and fresh and cfg.train.init_from is None:
        start_from_word_vectors(model, lstm_train.seqs, cfg.train.seed, ranks, device, progress)
    offsets = None
    if features is not None:
        offsets = torch.zeros(len(train.y), n_classes)
        if ranks.main:
            began = time.perf_counter()
            progress.log("wide branch: out-of-fold log-odds (two fits on halves), for the LSTM to learn beside")
            c = (wide or {}).get("C") or model.cfg.ngram_c or DEFAULT_NGRAM_C
            offsets = torch.from_numpy(out_of_fold_logits(train.seqs, train.y, n_classes, features, c, cfg.train.seed,
                                                          class_weights=weights, min_df=model.cfg.ngram_min_df))
            progress.log(f"wide branch: out-of-fold log-odds in {time.perf_counter() - began:.1f}s")
        offsets = broadcast(offsets, ranks, device)
    return FitInputs(weights, offsets, time.perf_counter() - started, wide)


def ngram_part(part: Part, cfg) -> Part:
    """What the n-gram branch reads of ``part``: whole reviews, or (``ngram_whole`` off, the models
    before whole reviews) what the LSTM's cut leaves."""
    return part if cfg.ngram_whole else Part(Cut.of(cfg)(part.seqs), part.y)


def fit_wide_branch(model: SentimentLSTM, train: Part, val: Part | None, features: NgramFeatures,
                    weights: np.ndarray | None, seed: int, ranks: Ranks, device: torch.device,
                    table: WideTable | None) -> dict:
    """The model's n-gram branch fitted on ``train`` by rank 0, then broadcast to every rank; what
    was fitted (its features, its C and, where C was chosen on ``val``, each C's accuracy there)."""
    c, scores = model.cfg.ngram_c, None
    if ranks.main:
        chosen = None
        if c is None and val is not None and len(val):
            chosen = fit_choosing_c(train.seqs, train.y, model.n_classes, features, NGRAM_CS, (val.seqs, val.y),
                                    weights, table, model.cfg.ngram_min_df)
        if chosen is not None:
            (table, weight, bias), c, scores = chosen
        else:
            c = DEFAULT_NGRAM_C if c is None else c
            table, weight, bias = fit_linear(train.seqs, train.y, model.n_classes, features, c, seed, weights, table,
                                             model.cfg.ngram_min_df)
        model.set_wide(table, weight, bias)
    if ranks.enabled:  # the others learn the table's size and C, then the table
        rows, c = from_main([len(model.wide_keys) if ranks.main else 0, c or 0.0], ranks, device)
        if not ranks.main:
            rows = int(rows)
            model.set_wide(WideTable(np.zeros(rows, np.int64), np.zeros(rows, np.float32), 0.0),
                           np.zeros((rows, model.n_classes), np.float32), np.zeros(model.n_classes, np.float32))
        for name in WIDE:
            getattr(model, name).copy_(broadcast(getattr(model, name), ranks, device))
    return {"C": float(c), "features": int(len(model.wide_keys)),
            "validation_accuracy_by_C": None if scores is None else {str(k): v for k, v in scores.items()}}
