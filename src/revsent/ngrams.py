"""The wide branch's features: word ids and hashed n-grams (fastText's hashing trick), weighted.

A review's features are its word ids (``< vocab_size``) and its bigrams (and trigrams, with
``order`` 3) hashed into ``buckets`` slots after them. Two weightings (``NgramFeatures.weighting``):

- ``tfidf``: as scikit-learn's ``TfidfVectorizer(sublinear_tf=True)``: ``(1 + log tf) * idf``,
  each review's vector scaled to unit length;
- ``nb``: NBSVM's (Wang & Manning, 2012): a feature is present or not, scaled by its
  Naive-Bayes log-count ratio ``r_c = log(p_c / |p_c|) - log(q_c / |q_c|)`` (p_c: in how many
  reviews of class c it occurs, plus 1; q_c: of the other classes). The scale differs by class,
  so it is folded into the fitted weights: at prediction a feature just adds its row.

``fit_linear`` fits a logistic regression on them; the model adds its log-odds to the LSTM's.
A :class:`WideTable` holds only the features its training reviews had (at least ``min_df`` of
them), so a model is the size of what it learnt, not of ``buckets``.

The regression minimises scikit-learn's objective ``mean(cross-entropy) + |W|^2 / (2 C n)``:
by scikit-learn's own lbfgs on the sparse matrix where the features fit in memory, else by
minibatch Adam over batches whose features are computed as they come (memory does not grow
with the reviews).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .text import Sequences

NGRAM_PRIME = 1_000_003  # mixes the two ids of a bigram into one hash
ROWS = 2048  # reviews per step when counting or predicting
FIT_BATCH = 256  # reviews per optimiser step
FIT_LR = 0.02
FIT_UPDATES = 600  # optimiser steps wanted (as accurate as scikit-learn's lbfgs fit on IMDB); one epoch on large data
EXACT_MAX_NNZ = 60_000_000  # feature entries (about 12 bytes each) up to which scikit-learn fits exactly, in memory
EXACT_ITERATIONS, EXACT_TOL = 1000, 1e-5  # lbfgs: converged on IMDB and RT well before the cap
NGRAM_CS = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)  # the wide branch's C values tried on the validation slice (the baseline's)
ABSENT_LOGIT = 30.0  # how far below the others the bias of a class no training review has sits


WEIGHTINGS = ("tfidf", "nb")
# Hash 2 mixes 64-bit words (splitmix64's constants). Hash 1, ``(a * NGRAM_PRIME + b) % buckets``,
# is what the first releases used: with 2M buckets, NGRAM_PRIME is about half the buckets, so the
# bigrams of a 20k-word vocabulary fell into about 60k slots. It stays for the models trained with it.
MIX_1, MIX_2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9)


@dataclass(frozen=True)
class NgramFeatures:
    """What the wide branch's features are: ``vocab_size`` word ids, then ``buckets`` hashed
    n-gram slots for n = 2..``order``, weighted by ``weighting``, hashed by hash ``hash``, of
    whole reviews (``whole``) or of what the LSTM's cut leaves (the models before whole reviews)."""

    vocab_size: int
    buckets: int
    order: int = 2
    weighting: str = "tfidf"
    hash: int = 2
    whole: bool = True

    @classmethod
    def of(cls, cfg) -> "NgramFeatures | None":
        """The wide branch of a ModelConfig (None without one)."""
        if not cfg.ngram_buckets:
            return None
        return cls(cfg.vocab_size, cfg.ngram_buckets, cfg.ngram_order, cfg.ngram_weighting, cfg.ngram_hash, cfg.ngram_whole)

    @property
    def n_features(self) -> int:
        return self.vocab_size + self.buckets

    def extend(self, prefix: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """The hash of each n-gram ``prefix`` (its hash, or a word id) followed by the word ``ids``."""
        if self.hash == 1:
            return (prefix * NGRAM_PRIME + ids) % self.buckets
        h = (prefix.astype(np.uint64) * MIX_1 ^ ids.astype(np.uint64)) * MIX_2
        return h ^ (h >> np.uint64(31))

    def slot(self, hashes: np.ndarray) -> np.ndarray:
        """Feature ids of n-gram hashes: after the words."""
        return self.vocab_size + (hashes % np.uint64(self.buckets) if self.hash != 1 else hashes).astype(np.int64)


def batch_grams(seqs: Sequences, index: np.ndarray, wide: NgramFeatures):
    """Distinct features of the reviews ``index``: row (N,), feature id (N,), count (N,), sorted by row."""
    lengths = seqs.lengths[index]
    ids = np.concatenate([np.asarray(seqs[i], dtype=np.int64) for i in index]) if len(index) else np.zeros(0, np.int64)
    row = np.repeat(np.arange(len(index), dtype=np.int64), lengths)  # (T,)
    width = wide.n_features
    same = row[:-1] == row[1:]  # n-grams never cross two reviews
    pairs = wide.extend(ids[:-1], ids[1:])  # (T-1,) bigram hashes
    keys = [row * width + ids, (row[:-1] * width + wide.slot(pairs))[same]]
    if wide.order >= 3:
        triples = wide.extend(pairs[:-1], ids[2:])  # (T-2,) trigram hashes
        keys.append((row[:-2] * width + wide.slot(triples))[same[:-1] & same[1:]])
    keys, counts = np.unique(np.concatenate(keys), return_counts=True)
    return keys // width, keys % width, counts


@dataclass(frozen=True)
class WideTable:
    """The features the wide branch has a row for: sorted feature ids ``keys`` (S,) and their
    ``idf`` (S,). Every other feature has weight 0 and idf ``unseen``: it still counts in the
    length of a review's TF-IDF vector, so a table holds only what its data filled yet gives the
    same vectors as a dense one."""

    keys: np.ndarray
    idf: np.ndarray
    unseen: float

    def lookup(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The row of each feature id (-1 where none) and its idf."""
        at = np.minimum(np.searchsorted(self.keys, features), max(len(self.keys) - 1, 0))
        hit = self.keys[at] == features if len(self.keys) else np.zeros(len(features), dtype=bool)
        return np.where(hit, at, -1), np.where(hit, self.idf[at] if len(self.keys) else 0.0, self.unseen)

    @classmethod
    def dense(cls, idf: np.ndarray, weight: np.ndarray) -> "WideTable":
        """The table of a dense idf (F,) and weight (F, C) of the first releases: the features with
        a weight or an idf below the largest (some review had them); the rest are ``unseen``."""
        unseen = float(idf.max(initial=0.0))
        keys = np.flatnonzero((idf != unseen) | np.any(weight != 0, axis=1))
        return cls(keys, idf[keys].astype(np.float32), unseen)


def tfidf(seqs: Sequences, index, table: WideTable, wide: NgramFeatures) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse rows for ``index``: table rows (N,), weights (N,), row offsets (len(index) + 1,).

    TF-IDF weighting: sublinear counts times idf, unit length over all of a review's features;
    NB weighting: the idf (ones: the ratios are in the fitted weights) where a feature is present.
    Features without a row in ``table`` count in the length but are left out of the rows."""
    index = np.asarray(index, dtype=np.int64)
    rows, features, counts = batch_grams(seqs, index, wide)
    found, idf = table.lookup(features)
    if wide.weighting == "nb":
        weights = idf.astype(np.float64)
    else:
        weights = (1.0 + np.log(counts)) * idf
        norms = np.sqrt(np.bincount(rows, weights * weights, minlength=len(index)))  # (B,)
        weights = weights / np.where(norms > 0, norms, 1.0)[rows]
    kept = found >= 0
    offsets = np.zeros(len(index) + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows[kept], minlength=len(index)), out=offsets[1:])
    return found[kept], weights[kept].astype(np.float32), offsets


def document_frequencies(seqs: Sequences, wide: NgramFeatures, y: np.ndarray | None = None, n_classes: int = 1) -> np.ndarray:
    """In how many reviews each feature occurs, counted in batches: (F,) int64, or with labels
    ``y`` (F, n_classes), per class."""
    df = np.zeros(wide.n_features * n_classes, dtype=np.int64)
    for start in range(0, len(seqs), ROWS):
        index = np.arange(start, min(start + ROWS, len(seqs)))
        rows, features, _ = batch_grams(seqs, index, wide)
        if y is not None:
            features = features * n_classes + np.asarray(y)[index][rows]
        df += np.bincount(features, minlength=len(df))
    return df if y is None else df.reshape(wide.n_features, n_classes)


def fit_table(seqs: Sequences, wide: NgramFeatures, min_df: int = 1, df: np.ndarray | None = None) -> WideTable:
    """The features of at least ``min_df`` reviews of ``seqs``, with scikit-learn's smoothed idf
    ``log((1 + n) / (1 + df)) + 1`` (ones with NB weighting); the rest are unseen."""
    df = document_frequencies(seqs, wide) if df is None else df
    keys = np.flatnonzero(df >= max(min_df, 1))
    if wide.weighting == "nb":
        return WideTable(keys, np.ones(len(keys), dtype=np.float32), 1.0)
    idf = np.log((1 + len(seqs)) / (1 + df[keys])) + 1
    return WideTable(keys, idf.astype(np.float32), float(np.log(1 + len(seqs)) + 1))


def nb_ratios(class_df: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """NBSVM's log-count ratios (F, C): class c against the others, Laplace-smoothed by ``alpha``."""
    p = class_df + alpha
    q = class_df.sum(axis=1, keepdims=True) - class_df + alpha
    return (np.log(p / p.sum(axis=0)) - np.log(q / q.sum(axis=0))).astype(np.float32)


def linear_logits(seqs: Sequences, index: np.ndarray, table: WideTable, weight: np.ndarray, bias: np.ndarray,
                  wide: NgramFeatures) -> np.ndarray:
    """The regression's log-odds (B, C) for the reviews ``index``: each review's weighted sum of
    its features' rows of ``weight``, plus ``bias``."""
    features, weights, offsets = tfidf(seqs, index, table, wide)
    rows = np.repeat(np.arange(len(index)), np.diff(offsets))  # (N,) review of each feature
    terms = weight[features] * weights[:, None].astype(np.float64)  # (N, C)
    sums = [np.bincount(rows, terms[:, c], minlength=len(index)) for c in range(weight.shape[1])]
    return (np.stack(sums, axis=1) + bias).astype(np.float32)  # (B, C)


def design_matrix(seqs: Sequences, table: WideTable, wide: NgramFeatures):
    """Every review's features as one scipy CSR matrix (n, S) over the table's rows."""
    from scipy import sparse

    parts = [tfidf(seqs, np.arange(start, min(start + ROWS, len(seqs))), table, wide)
             for start in range(0, len(seqs), ROWS)]
    indptr = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(np.concatenate([np.diff(offsets) for _, _, offsets in parts] or [np.zeros(0, np.int64)]), out=indptr[1:])
    indices = np.concatenate([f for f, _, _ in parts] or [np.zeros(0, np.int64)])
    data = np.concatenate([w for _, w, _ in parts] or [np.zeros(0, np.float32)])
    return sparse.csr_matrix((data.astype(np.float64), indices, indptr), shape=(len(seqs), len(table.keys)))


def fit_linear(seqs: Sequences, y: np.ndarray, n_classes: int, wide: NgramFeatures, c: float, seed: int,
               class_weights: np.ndarray | None = None, table: WideTable | None = None,
               min_df: int = 1) -> tuple[WideTable, np.ndarray, np.ndarray]:
    """Logistic regression on the wide features: the ``table``, ``weight`` (S, C), ``bias`` (C,),
    minimising scikit-learn's objective ``mean(cross-entropy) + |W|^2 / (2 C n)``.

    The table holds the features of at least ``min_df`` training reviews; a given ``table``
    (TF-IDF weighting) is used instead: the members of a bag share one. Where the features fit
    in memory (EXACT_MAX_NNZ), scikit-learn's lbfgs fits them exactly; beyond, or with NB
    weighting (whose ratios are folded into ``weight``), minibatch Adam streams over batches."""
    y = np.asarray(y, dtype=np.int64)
    class_df = document_frequencies(seqs, wide, y, n_classes) if wide.weighting == "nb" else None
    if table is None:
        table = fit_table(seqs, wide, min_df, None if class_df is None else class_df.sum(axis=1))
    present = np.unique(y)
    if _exact(seqs, wide, present):
        weight, bias = _exact_fit(design_matrix(seqs, table, wide), y, n_classes, c, class_weights, present)
    else:
        scale = None if class_df is None else nb_ratios(class_df[table.keys])
        weight, bias = _streamed_fit(seqs, y, n_classes, wide, c, seed, class_weights, table, scale)
    return table, weight, bias


def fit_choosing_c(seqs: Sequences, y: np.ndarray, n_classes: int, wide: NgramFeatures, cs: Sequence[float],
                   val: tuple[Sequences, np.ndarray], class_weights: np.ndarray | None = None,
                   table: WideTable | None = None, min_df: int = 1):
    """:func:`fit_linear` for each C of ``cs`` on one feature matrix, the one with the best accuracy
    on the validation reviews ``val`` kept (ties: the lower log loss). Returns the fit of that C
    (table, weight, bias), C, and each C's validation accuracy; None where the features do not fit
    in memory or the weighting is NB (then C is not chosen)."""
    y = np.asarray(y, dtype=np.int64)
    present = np.unique(y)
    if not _exact(seqs, wide, present):
        return None
    table = fit_table(seqs, wide, min_df) if table is None else table
    x = design_matrix(seqs, table, wide)
    from sklearn.linear_model import LogisticRegression

    val_seqs, val_y = val
    best, scores = None, {}
    solver = LogisticRegression(max_iter=EXACT_ITERATIONS, tol=EXACT_TOL, warm_start=True)
    for c in sorted(cs):  # each C starts from the weights of the one before (more regularised)
        weight, bias = _exact_fit(x, y, n_classes, c, class_weights, present, solver)
        logits = predict_logits(val_seqs, table, weight, bias, wide).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        accuracy = float((logits.argmax(axis=1) == val_y).mean())
        key = (accuracy, float(log_p[np.arange(len(val_y)), val_y].mean()))
        scores[c] = accuracy
        if best is None or key > best[0]:
            best = (key, c, weight, bias)
    _, c, weight, bias = best
    return (table, weight, bias), c, scores


def _exact(seqs: Sequences, wide: NgramFeatures, present: np.ndarray) -> bool:
    """Whether scikit-learn fits exactly: TF-IDF weighting, two classes or more, and features that fit in memory."""
    return wide.weighting == "tfidf" and len(present) > 1 and seqs.n_tokens * wide.order <= EXACT_MAX_NNZ


def _exact_fit(x, y: np.ndarray, n_classes: int, c: float, class_weights: np.ndarray | None,
               present: np.ndarray, fit=None) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's lbfgs on the CSR matrix ``x``. Two classes: its one weight vector d is the
    softmax pair (-d/2, d/2), whose penalty |d|^2 / 2 asks for C doubled; more: multinomial.
    ``fit``: a LogisticRegression with ``warm_start`` that fitted the same matrix at another C
    (the solver starts from its weights: the same optimum, sooner)."""
    from sklearn.linear_model import LogisticRegression

    binary = len(present) == 2
    fit = fit or LogisticRegression(max_iter=EXACT_ITERATIONS, tol=EXACT_TOL)
    fit.set_params(C=2 * c if binary else c)
    fit.fit(x, y, sample_weight=None if class_weights is None else np.asarray(class_weights)[y])
    weight = np.zeros((x.shape[1], n_classes), dtype=np.float32)
    bias = np.full(n_classes, -ABSENT_LOGIT, dtype=np.float32)  # a class no review has: never chosen
    if binary:
        halves = np.stack([-fit.coef_[0], fit.coef_[0]], axis=1) / 2  # (S, 2)
        weight[:, present] = halves
        bias[present] = np.array([-fit.intercept_[0], fit.intercept_[0]]) / 2
    else:
        weight[:, present] = fit.coef_.T
        bias[present] = fit.intercept_ - fit.intercept_.mean()
    return weight, bias


def _streamed_fit(seqs: Sequences, y: np.ndarray, n_classes: int, wide: NgramFeatures, c: float, seed: int,
                  class_weights: np.ndarray | None, table: WideTable,
                  scale: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Minibatch Adam on the same objective, features computed per batch: memory does not grow
    with the reviews. ``scale`` (S, C): NB's ratios, folded into the returned weights."""
    import torch  # here, not at the top: features and prediction are NumPy, for the ONNX runtime path
    from torch import nn

    n = len(seqs)
    scale = None if scale is None else torch.from_numpy(scale)
    weight = torch.zeros(len(table.keys), n_classes, requires_grad=True)  # (S, C), zero as scikit-learn starts
    bias = torch.zeros(n_classes, requires_grad=True)
    # Adam's (coupled) weight decay is the gradient of the L2 term; the fused kernel, because every
    # step updates all S x C weights.
    optimizer = torch.optim.Adam([{"params": [weight], "weight_decay": 1.0 / (c * n)}, {"params": [bias]}],
                                 lr=FIT_LR, fused=True)
    loss_fn = nn.CrossEntropyLoss(weight=None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32))
    y_t = torch.from_numpy(y)
    rng = np.random.default_rng(seed)
    epochs = math.ceil(FIT_UPDATES / max(1, math.ceil(n / FIT_BATCH)))
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, FIT_BATCH):
            index = order[start: start + FIT_BATCH]
            features, weights, offsets = tfidf(seqs, index, table, wide)
            rows = torch.from_numpy(features)
            # NB: only the rows of this batch's features are scaled, not all S x C weights
            rows_of = weight if scale is None else weight.index_select(0, rows) * scale.index_select(0, rows)
            logits = nn.functional.embedding_bag(
                rows if scale is None else torch.arange(len(rows)), rows_of, torch.from_numpy(offsets[:-1]), mode="sum",
                per_sample_weights=torch.from_numpy(weights)) + bias  # (B, C)
            loss = loss_fn(logits, y_t[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    fitted = weight.detach()
    return (fitted if scale is None else fitted * scale).numpy().copy(), bias.detach().numpy().copy()


def predict_logits(seqs: Sequences, table: WideTable, weight: np.ndarray, bias: np.ndarray,
                   wide: NgramFeatures) -> np.ndarray:
    """The regression's log-odds (n, C) for every review of ``seqs``, in batches."""
    out = np.zeros((len(seqs), weight.shape[1]), dtype=np.float32)
    for start in range(0, len(seqs), ROWS):
        index = np.arange(start, min(start + ROWS, len(seqs)))
        out[index] = linear_logits(seqs, index, table, weight, bias, wide)
    return out


def out_of_fold_logits(seqs: Sequences, y: np.ndarray, n_classes: int, wide: NgramFeatures, c: float, seed: int,
                       folds: int = 2, class_weights: np.ndarray | None = None, min_df: int = 1) -> np.ndarray:
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
        table, weight, bias = fit_linear(seqs.take(rest), y[rest], n_classes, wide, c, seed, class_weights,
                                         min_df=min_df)
        logits[fold] = predict_logits(seqs.take(fold), table, weight, bias, wide)
    return logits
