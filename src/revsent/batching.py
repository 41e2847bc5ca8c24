"""Batches without padding waste: reviews of similar length go together.

    shuffle all ──► pools of `pool` batches ──► sort each pool by length ──► cut into batches
                                                                           ──► shuffle batch order

Within a batch the padding is only the difference between its longest and shortest review. The
model runs fused LSTMs over the right-padded batch and masks the padded steps (model.py), so
they never change a review's result; the fewer of them, the less time is spent on them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .ngrams import NgramFeatures, WideTable, tfidf
from .text import Cut, Sequences

if TYPE_CHECKING:  # only make_batch needs PyTorch: the ONNX runtime batches with inference_order alone
    import torch

@dataclass
class Batch:
    tokens: torch.Tensor  # (B, T) int64, 0-padded, rows sorted by length, longest first
    lengths: torch.Tensor  # (B,) int64 on the CPU: the model's masks and pooling read them
    index: np.ndarray  # (B,) positions of the rows in the original data
    ngrams: torch.Tensor | None = None  # (N,) the wide branch's table rows of the TF-IDF features, rows concatenated
    ngram_weights: torch.Tensor | None = None  # (N,) their weights
    ngram_offsets: torch.Tensor | None = None  # (B,) where each row's features start

    def to(self, device: "torch.device") -> "Batch":
        if device.type == "cpu":
            return self
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.tokens), self.lengths, self.index, move(self.ngrams), move(self.ngram_weights),
                     move(self.ngram_offsets))


def train_order(lengths: np.ndarray, batch_size: int, rng: np.random.Generator, pool: int = 50) -> list[np.ndarray]:
    """Index batches for one epoch: random, but each drawn from a pool sorted by length."""
    order = rng.permutation(len(lengths))
    if len(order) < 1 << 31:  # the same order, half the memory
        order = order.astype(np.int32)
    batches = []
    for start in range(0, len(order), batch_size * pool):
        chunk = order[start: start + batch_size * pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i: i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


# What a batch of B reviews padded to T positions costs the fused LSTM on a CPU, in row-steps:
# T * (B + STEP_COST) + CALL_COST, in units of one row's step; the constants were measured on
# the CPU (bench/JOURNAL.md has the figures, and how little the choice of STEP_COST matters).
STEP_COST, CALL_COST = 6.5, 280.0


def inference_order(lengths: np.ndarray, batch_size: int, max_tokens: int = 1 << 13) -> list[np.ndarray]:
    """Index batches sorted by length: the least padding; callers restore the order via ``Batch.index``.

    A batch holds ``batch_size`` reviews, fewer where they are long (at most ``max_tokens``
    padded positions), so memory is bounded by the budget, not by the longest review.

    Up to ``4 * batch_size`` reviews (a server's micro-batch, a short list), the cut points are
    the cheapest by the cost model above (dynamic programming over the sorted lengths): a few
    reviews of mixed lengths are split where padding them together would cost more than another
    call. Longer lists sorted by length have little padding to save: they are cut greedily."""
    order = np.argsort(lengths, kind="stable")
    if len(order) <= 4 * batch_size:
        return _cheapest_cuts(order, np.maximum(lengths[order], 1).astype(np.float64), batch_size, max_tokens)
    batches, start = [], 0
    while start < len(order):
        candidates = np.maximum(lengths[order[start: start + batch_size]], 1)  # ascending
        padded = np.arange(1, len(candidates) + 1) * candidates  # (k,) positions if the batch ends there
        end = start + max(1, int(np.searchsorted(padded, max_tokens, side="right")))
        batches.append(order[start:end])
        start = end
    return batches


def _cheapest_cuts(order: np.ndarray, sorted_lengths: np.ndarray, batch_size: int, max_tokens: int) -> list[np.ndarray]:
    """``order`` (sorted by length) cut into batches of the least total cost, each within the limits."""
    n = len(order)
    best = np.zeros(n + 1)
    cut = np.zeros(n + 1, dtype=np.int64)
    for end in range(1, n + 1):
        longest = sorted_lengths[end - 1]
        rows = max(1, min(batch_size, int(max_tokens // longest)))
        starts = np.arange(max(0, end - rows), end)  # (k,) where the batch ending here may start
        costs = best[starts] + longest * (end - starts + STEP_COST) + CALL_COST
        k = int(np.argmin(costs))
        best[end], cut[end] = costs[k], starts[k]
    batches, end = [], n
    while end:
        batches.append(order[cut[end]:end])
        end = cut[end]
    return batches[::-1]


def token_parts(index: np.ndarray, lengths: np.ndarray, max_tokens: int) -> list[np.ndarray]:
    """``index`` itself when its padded batch fits ``max_tokens`` positions, else its reviews,
    longest first, in the fewest equal parts that each fit (a review longer than the budget goes
    alone)."""
    longest = max(int(np.max(lengths[index], initial=1)), 1)
    rows = max(1, max_tokens // longest)
    if len(index) <= rows:
        return [index]
    index = index[np.argsort(-lengths[index], kind="stable")]
    return np.array_split(index, -(-len(index) // rows))


def pad(seqs: Sequences, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sequences ``index`` right-padded with 0: tokens (B, T) int64 and lengths (B,) int64,
    an empty review counted as one padding token."""
    lengths = seqs.lengths[index]
    steps = np.maximum(lengths, 1).astype(np.int64)
    tokens = np.zeros((len(index), int(steps.max(initial=1))), dtype=np.int64)
    for row, i in enumerate(index):
        tokens[row, : lengths[row]] = seqs[i]
    return tokens, steps


def make_batch(seqs: Sequences, index: np.ndarray, table: WideTable | None = None, wide: NgramFeatures | None = None,
               pin: bool = False, cut: Cut = Cut()) -> Batch:
    """Pad what the LSTM reads of the sequences ``index`` (``cut``) into one batch (an empty
    review becomes one padding token).

    With ``table`` and ``wide`` the batch also carries the wide branch's features, of the whole
    reviews (or of the cut ones, as the models before whole reviews read them).
    """
    import torch

    index = np.asarray(index, dtype=np.int64)
    index = index[np.argsort(-cut.lengths(seqs.lengths[index]), kind="stable")]
    whole = seqs.take(index)
    read = cut(whole)
    tokens, steps = pad(read, np.arange(len(index)))
    batch = Batch(torch.from_numpy(tokens), torch.from_numpy(steps), index)
    if table is not None:
        ids, weights, offsets = tfidf(whole if wide.whole else read, np.arange(len(index)), table, wide)
        batch.ngrams, batch.ngram_weights = torch.from_numpy(ids), torch.from_numpy(weights)
        batch.ngram_offsets = torch.from_numpy(offsets[:-1])
    if pin:
        batch.tokens = batch.tokens.pin_memory()
    return batch
