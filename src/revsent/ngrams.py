"""The wide branch's features: TF-IDF over word ids and hashed bigrams (fastText's hashing trick).

A review's features are its word ids (``< vocab_size``) and its bigrams hashed into ``buckets``
slots after them, weighted as scikit-learn's ``TfidfVectorizer(sublinear_tf=True)`` would:
``(1 + log tf) * idf``, each review's vector scaled to unit length. ``fit_linear`` fits a
logistic regression on them; the model adds its log-odds to the LSTM's.
"""
from __future__ import annotations

import numpy as np

from .text import Sequences

NGRAM_PRIME = 1_000_003  # mixes the two ids of a bigram into one hash


def grams(ids: np.ndarray, vocab_size: int, buckets: int) -> np.ndarray:
    """Word ids, then hashed bigram slots: (len + len - 1,) int64."""
    ids = ids.astype(np.int64)
    bigrams = vocab_size + (ids[:-1] * NGRAM_PRIME + ids[1:]) % buckets
    return np.concatenate([ids, bigrams])


def tfidf(seqs: Sequences, index, idf: np.ndarray, vocab_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse rows for ``index``: feature ids (N,), weights (N,), row offsets (len(index) + 1,)."""
    buckets = len(idf) - vocab_size
    ids, weights, offsets = [], [], np.zeros(len(index) + 1, dtype=np.int64)
    for row, i in enumerate(index):
        features, counts = np.unique(grams(seqs[i], vocab_size, buckets), return_counts=True)
        w = (1.0 + np.log(counts)) * idf[features]
        norm = np.sqrt((w * w).sum())
        ids.append(features)
        weights.append(w / norm if norm > 0 else w)
        offsets[row + 1] = offsets[row] + len(features)
    if not ids:
        return np.zeros(0, np.int64), np.zeros(0, np.float32), offsets
    return np.concatenate(ids), np.concatenate(weights).astype(np.float32), offsets


def fit_idf(seqs: Sequences, vocab_size: int, buckets: int) -> np.ndarray:
    """Smoothed inverse document frequency, as scikit-learn: ``log((1 + n) / (1 + df)) + 1``."""
    df = np.zeros(vocab_size + buckets, dtype=np.int64)
    for i in range(len(seqs)):
        df[np.unique(grams(seqs[i], vocab_size, buckets))] += 1
    return (np.log((1 + len(seqs)) / (1 + df)) + 1).astype(np.float32)


def fit_linear(seqs: Sequences, y: np.ndarray, n_classes: int, vocab_size: int, buckets: int,
               c: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logistic regression on the TF-IDF features: ``idf`` (F,), ``weight`` (F, C), ``bias`` (C,)."""
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression

    idf = fit_idf(seqs, vocab_size, buckets)
    ids, weights, offsets = tfidf(seqs, np.arange(len(seqs)), idf, vocab_size)
    features = csr_matrix((weights, ids, offsets), shape=(len(seqs), len(idf)))
    model = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(features, y)
    weight = np.zeros((len(idf), n_classes), dtype=np.float32)
    bias = np.zeros(n_classes, dtype=np.float32)
    if model.coef_.shape[0] == 1:  # binary: one row of log-odds for the second class
        weight[:, model.classes_[1]] = model.coef_[0]
        bias[model.classes_[1]] = model.intercept_[0]
    else:
        weight[:, model.classes_] = model.coef_.T
        bias[model.classes_] = model.intercept_
    return idf, weight, bias


def out_of_fold_logits(seqs: Sequences, y: np.ndarray, n_classes: int, vocab_size: int, buckets: int,
                       c: float, seed: int, folds: int = 2) -> np.ndarray:
    """Each review's wide-branch log-odds from a regression that never saw it: (n, C).

    The LSTM trains on top of these (stacking), so it learns what the n-grams miss instead of
    what a regression that has memorised the training set already gets right.
    """
    logits = np.zeros((len(seqs), n_classes), dtype=np.float32)
    order = np.random.default_rng(seed).permutation(len(seqs))
    for fold in np.array_split(order, folds):
        rest = np.setdiff1d(order, fold)
        if len(np.unique(y[rest])) < 2:  # too little data for this fold: no offset
            continue
        idf, weight, bias = fit_linear(seqs.subset(rest), y[rest], n_classes, vocab_size, buckets, c, seed)
        ids, weights, offsets = tfidf(seqs, fold, idf, vocab_size)
        rows = np.repeat(np.arange(len(fold)), np.diff(offsets))
        scores = np.zeros((len(fold), n_classes), dtype=np.float32)
        np.add.at(scores, rows, weights[:, None] * weight[ids])
        logits[fold] = scores + bias
    return logits
