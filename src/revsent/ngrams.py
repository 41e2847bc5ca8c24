"""The wide branch's features: TF-IDF over word ids and hashed bigrams (fastText's hashing trick).

A review's features are its word ids (``< vocab_size``) and its bigrams hashed into ``buckets``
slots after them, weighted as scikit-learn's ``TfidfVectorizer(sublinear_tf=True)`` would:
``(1 + log tf) * idf``, each review's vector scaled to unit length. ``fit_linear`` fits a
logistic regression on them; the model adds its log-odds to the LSTM's.

Everything streams over batches of reviews, so memory does not grow with the number of
reviews: features are computed per batch (vectorised), never stored for the whole corpus, and
the regression is fitted by minibatch Adam on scikit-learn's objective
``mean(cross-entropy) + |W|^2 / (2 C n)``.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .text import Sequences

NGRAM_PRIME = 1_000_003  # mixes the two ids of a bigram into one hash
ROWS = 2048  # reviews per step when counting or predicting
FIT_BATCH = 256  # reviews per optimiser step
FIT_LR = 0.02
FIT_UPDATES = 600  # optimiser steps wanted (measured on IMDB: as accurate as scikit-learn's lbfgs fit); one epoch on large data


def batch_grams(seqs: Sequences, index: np.ndarray, vocab_size: int, buckets: int):
    """Distinct features of the reviews ``index``: row (N,), feature id (N,), count (N,), sorted by row."""
    lengths = seqs.lengths[index]
    ids = np.concatenate([np.asarray(seqs[i], dtype=np.int64) for i in index]) if len(index) else np.zeros(0, np.int64)
    row = np.repeat(np.arange(len(index), dtype=np.int64), lengths)  # (T,)
    same = row[:-1] == row[1:]  # bigrams never cross two reviews
    bigrams = vocab_size + (ids[:-1][same] * NGRAM_PRIME + ids[1:][same]) % buckets
    width = vocab_size + buckets
    keys, counts = np.unique(np.concatenate([row * width + ids, row[:-1][same] * width + bigrams]), return_counts=True)
    return keys // width, keys % width, counts


def tfidf(seqs: Sequences, index, idf: np.ndarray, vocab_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse rows for ``index``: feature ids (N,), weights (N,), row offsets (len(index) + 1,)."""
    index = np.asarray(index, dtype=np.int64)
    rows, features, counts = batch_grams(seqs, index, vocab_size, len(idf) - vocab_size)
    weights = (1.0 + np.log(counts)) * idf[features]
    norms = np.sqrt(np.bincount(rows, weights * weights, minlength=len(index)))  # (B,)
    weights = weights / np.where(norms > 0, norms, 1.0)[rows]
    offsets = np.zeros(len(index) + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=len(index)), out=offsets[1:])
    return features, weights.astype(np.float32), offsets


def document_frequencies(seqs: Sequences, vocab_size: int, buckets: int) -> np.ndarray:
    """In how many reviews each feature occurs: (F,) int64, counted in batches."""
    df = np.zeros(vocab_size + buckets, dtype=np.int64)
    for start in range(0, len(seqs), ROWS):
        _, features, _ = batch_grams(seqs, np.arange(start, min(start + ROWS, len(seqs))), vocab_size, buckets)
        df += np.bincount(features, minlength=len(df))
    return df


def fit_idf(seqs: Sequences, vocab_size: int, buckets: int, df: np.ndarray | None = None) -> np.ndarray:
    """Smoothed inverse document frequency, as scikit-learn: ``log((1 + n) / (1 + df)) + 1``."""
    df = document_frequencies(seqs, vocab_size, buckets) if df is None else df
    return (np.log((1 + len(seqs)) / (1 + df)) + 1).astype(np.float32)


def linear_logits(seqs: Sequences, index: np.ndarray, idf: np.ndarray, weight: torch.Tensor | np.ndarray,
                  bias, vocab_size: int) -> torch.Tensor:
    """The regression's log-odds (B, C) for the reviews ``index``."""
    features, weights, offsets = tfidf(seqs, index, idf, vocab_size)
    weight = torch.as_tensor(weight)
    return nn.functional.embedding_bag(torch.from_numpy(features), weight, torch.from_numpy(offsets[:-1]), mode="sum",
                                       per_sample_weights=torch.from_numpy(weights)) + torch.as_tensor(bias)


def fit_linear(seqs: Sequences, y: np.ndarray, n_classes: int, vocab_size: int, buckets: int,
               c: float, seed: int, class_weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logistic regression on the TF-IDF features: ``idf`` (F,), ``weight`` (F, C), ``bias`` (C,)."""
    df = document_frequencies(seqs, vocab_size, buckets)
    idf = fit_idf(seqs, vocab_size, buckets, df)
    n = len(seqs)
    seen = np.flatnonzero(df)  # features of some training review: the others keep weight 0
    compact = np.zeros(len(idf), dtype=np.int64)  # feature id -> row of `weight`; the rest never occur
    compact[seen] = np.arange(len(seen))
    weight = torch.zeros(len(seen), n_classes, requires_grad=True)  # (F_seen, C), zero as scikit-learn starts
    bias = torch.zeros(n_classes, requires_grad=True)
    # Adam's (coupled) weight decay is the gradient of the L2 term; the fused kernel is 3x faster
    # here, because every step updates all F x C weights.
    optimizer = torch.optim.Adam([{"params": [weight], "weight_decay": 1.0 / (c * n)}, {"params": [bias]}],
                                 lr=FIT_LR, fused=True)
    loss_fn = nn.CrossEntropyLoss(weight=None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32))
    y_t = torch.from_numpy(np.asarray(y, dtype=np.int64))
    rng = np.random.default_rng(seed)
    epochs = math.ceil(FIT_UPDATES / max(1, math.ceil(n / FIT_BATCH)))
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, FIT_BATCH):
            index = order[start: start + FIT_BATCH]
            features, weights, offsets = tfidf(seqs, index, idf, vocab_size)
            logits = nn.functional.embedding_bag(
                torch.from_numpy(compact[features]), weight, torch.from_numpy(offsets[:-1]), mode="sum",
                per_sample_weights=torch.from_numpy(weights)) + bias  # (B, C)
            loss = loss_fn(logits, y_t[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    full = np.zeros((len(idf), n_classes), dtype=np.float32)
    full[seen] = weight.detach().numpy()
    return idf, full, bias.detach().numpy().copy()


def predict_logits(seqs: Sequences, idf: np.ndarray, weight: np.ndarray, bias: np.ndarray, vocab_size: int) -> np.ndarray:
    """The regression's log-odds (n, C) for every review of ``seqs``, in batches."""
    out = np.zeros((len(seqs), weight.shape[1]), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(seqs), ROWS):
            index = np.arange(start, min(start + ROWS, len(seqs)))
            out[index] = linear_logits(seqs, index, idf, weight, bias, vocab_size).numpy()
    return out


def out_of_fold_logits(seqs: Sequences, y: np.ndarray, n_classes: int, vocab_size: int, buckets: int,
                       c: float, seed: int, folds: int = 2, class_weights: np.ndarray | None = None) -> np.ndarray:
    """Each review's wide-branch log-odds from a regression that never saw it: (n, C).

    The LSTM trains on top of these (stacking), so it learns what the n-grams miss instead of
    what a regression that has memorised the training set already gets right.
    """
    logits = np.zeros((len(seqs), n_classes), dtype=np.float32)
    order = np.random.default_rng(seed).permutation(len(seqs))
    for fold in np.array_split(order, folds):
        rest = np.sort(np.setdiff1d(order, fold))
        if len(np.unique(y[rest])) < 2:  # too little data for this fold: no offset
            continue
        idf, weight, bias = fit_linear(seqs.take(rest), y[rest], n_classes, vocab_size, buckets, c, seed, class_weights)
        logits[fold] = predict_logits(seqs.take(fold), idf, weight, bias, vocab_size)
    return logits
