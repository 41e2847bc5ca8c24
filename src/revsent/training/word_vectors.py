"""Word vectors from the training texts themselves, to start the embedding from (``embedding_init``).

``ppmi``: the positive pointwise mutual information of the most frequent words with their
neighbours, factored by a truncated SVD (Levy, Goldberg & Dagan, 2015: as good as word2vec's
vectors for word similarity, at a fraction of the cost). Counts of word pairs at most ``window``
words apart, weighted 1/distance, within each review; context counts smoothed by the power 3/4;
the left singular vectors scaled by the square roots of their singular values. Only the training
rows' texts are read (no labels), so nothing is learnt from the validation slice or the test part.

Memory and time are bounded whatever the corpus: the matrix is ``words`` x ``words`` (sparse),
counted over batches of reviews, from at most ``max_tokens`` tokens (a seeded sample of the
reviews when there are more).
"""
from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils.extmath import randomized_svd

from ..model import SentimentLSTM
from ..progress import Progress
from ..text import Sequences
from .distributed import Ranks, broadcast

WORDS = 30_000  # the most frequent words get vectors; the rarer keep the random start
WINDOW = 5  # words either side
ALPHA = 0.75  # context-distribution smoothing (word2vec's)
MAX_TOKENS = 50_000_000  # tokens counted at most: bounds the time of counting on a large corpus
CHUNK_TOKENS = 2_000_000  # tokens counted per step
SCALE = 0.05  # the vectors' standard deviation per component (Keras' uniform start: 0.029)


def ppmi_vectors(seqs: Sequences, vocab_size: int, dim: int, seed: int, *, words: int = WORDS,
                 window: int = WINDOW, max_tokens: int = MAX_TOKENS) -> tuple[np.ndarray | None, dict]:
    """(``words`` x ``dim``) float32 vectors for ids 0..words-1 (row 0, padding, is zero) and what
    was counted; None when the texts hold too few words to factor. ``words`` is capped by the vocabulary."""
    started = time.perf_counter()
    words = min(words, vocab_size)
    counts = _cooccurrences(seqs, words, window, _sample(seqs, seed, max_tokens))
    pmi = _ppmi(counts)
    dim_used = min(dim, words - 2)
    table = None
    if dim_used >= 1 and pmi.nnz:
        u, s, _ = randomized_svd(pmi, dim_used, n_iter=5, random_state=seed)
        table = np.zeros((words, dim), dtype=np.float32)
        table[:, :dim_used] = u * np.sqrt(s)[None, :]
        table[0] = 0.0
        spread = table[1:, :dim_used].std()
        if spread > 0:
            table *= SCALE / spread
    return table, {"words": words, "pairs": int(pmi.nnz), "seconds": round(time.perf_counter() - started, 2)}


def _sample(seqs: Sequences, seed: int, max_tokens: int) -> np.ndarray:
    """The rows to count: all of them, or a seeded random sample holding about ``max_tokens``."""
    lengths = seqs.lengths
    if int(lengths.sum()) <= max_tokens:
        return np.arange(len(seqs))
    order = np.random.default_rng(seed).permutation(len(seqs))
    upto = int(np.searchsorted(np.cumsum(lengths[order], dtype=np.int64), max_tokens)) + 1
    return np.sort(order[:upto])


def _cooccurrences(seqs: Sequences, words: int, window: int, rows: np.ndarray) -> sp.csr_matrix:
    """Symmetric (words x words) counts of pairs at most ``window`` apart in a review, 1/distance each."""
    total = sp.csr_matrix((words, words), dtype=np.float64)
    ends = np.cumsum(seqs.lengths[rows], dtype=np.int64)  # tokens up to and including each row
    start = 0
    while start < len(rows):
        done = int(ends[start - 1]) if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, done + CHUNK_TOKENS, side="right")))
        # The chunk's reviews end to end, ``window`` zeros between them: no pair spans two reviews.
        parts = []
        for i in rows[start:stop]:
            parts += [seqs[int(i)], np.zeros(window, dtype=np.int64)]
        ids = np.concatenate(parts).astype(np.int64)
        ids[ids >= words] = 0  # rarer words are not counted (nor as contexts)
        a_all, b_all, w_all = [], [], []
        for d in range(1, window + 1):
            a, b = ids[:-d], ids[d:]
            keep = (a > 0) & (b > 0)
            a_all.append(a[keep])
            b_all.append(b[keep])
            w_all.append(np.full(int(keep.sum()), 1.0 / d))
        a, b = np.concatenate(a_all), np.concatenate(b_all)
        chunk = sp.csr_matrix((np.concatenate(w_all), (a, b)), shape=(words, words))
        total = total + chunk + chunk.T
        start = stop
    return total


def _ppmi(counts: sp.csr_matrix) -> sp.csr_matrix:
    """max(0, log p(w, c) / (p(w) p_alpha(c))), sparse."""
    coo = counts.tocoo()
    n = coo.data.sum()
    if n == 0:
        return sp.csr_matrix(counts.shape, dtype=np.float64)
    word_p = np.asarray(counts.sum(axis=1)).ravel() / n
    context = np.asarray(counts.sum(axis=0)).ravel() ** ALPHA
    context_p = context / context.sum()
    pmi = np.log(coo.data / n) - np.log(word_p[coo.row]) - np.log(context_p[coo.col])
    keep = pmi > 0
    return sp.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=counts.shape)


def start_from_word_vectors(model: SentimentLSTM, seqs: Sequences, seed: int, ranks: Ranks, device: torch.device,
                            progress: Progress) -> None:
    """Every LSTM branch's embedding starts from PPMI + SVD vectors of ``seqs`` (rank 0 counts, then shares)."""
    cfg = model.cfg
    rows = min(WORDS, model.words)
    table = torch.zeros(rows, cfg.embedding_dim)
    found = torch.zeros(1)
    if ranks.main:
        words, counted = ppmi_vectors(seqs, model.words, cfg.embedding_dim, seed)
        if words is not None:
            table, found = torch.from_numpy(words), torch.ones(1)
            progress.log(f"word vectors: PPMI + SVD of the {counted['words']} most frequent words' neighbours "
                         f"({counted['pairs']} pairs) in {counted['seconds']:.1f}s")
        else:
            progress.log("word vectors: too few words to factor; the embedding starts at random")
    if broadcast(found, ranks, device).item():
        table = broadcast(table, ranks, device)
        with torch.no_grad():
            for reader in model.readers:
                reader.embedding.weight[:rows].copy_(table.to(reader.embedding.weight.device))
