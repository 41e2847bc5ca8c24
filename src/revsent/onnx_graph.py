"""The whole model as one traceable PyTorch module, for ``export``: token ids in, probabilities out.

    tokens (B, T) int64, lengths (B,) int64   the ids of tokenizer.json (Hugging Face), right-padded
      │ compact: ids outside the embedding ([UNK] without --oov) dropped, as revsent's encoder drops them
      ├─► --max-len kept as revsent keeps it (tail, head or head_tail) ─► LSTM branch(es) ─► logits
      └─► n-grams of the whole review: words and hashed bigrams (trigrams), per review ─► table rows (binary search in the sorted
          feature ids) ─► TF-IDF (counts by Unique, idf, unit length) ─► weights summed per review ─► + logits
      ─► × the calibration's scale ─► softmax ─► probabilities (B, C)

Only standard ONNX operators (opset 18): the 64-bit hash of the n-grams is integer arithmetic that
wraps as NumPy's does (xor as ``a + b - 2 (a & b)``, the unsigned shift and remainder from 32-bit
halves), so any onnxruntime (Python, C++, Java, C#, JavaScript) computes what revsent computes.
"""
from __future__ import annotations

import torch
from torch import nn

from .batching import Batch
from .ngrams import MIX_1, MIX_2, NGRAM_PRIME, NgramFeatures

LOW = 0xFFFFFFFF
SENTINEL = 1 << 62  # the key of a position that holds no n-gram: its review index matches no review


def _signed(value) -> int:
    """A uint64 constant as the int64 of the same bits."""
    value = int(value)
    return value - (1 << 64) if value >= 1 << 63 else value


def _xor(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a ^ b`` by arithmetic that wraps: ONNX has no integer xor the exporter writes."""
    return a + b - 2 * torch.bitwise_and(a, b)


def _halves(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The unsigned high and low 32 bits of int64 ``h``, each as a non-negative int64."""
    low = torch.bitwise_and(h, LOW)
    return torch.bitwise_and(torch.div(h - low, 1 << 32, rounding_mode="trunc"), LOW), low


class ModelGraph(nn.Module):
    """``model`` on (tokens, lengths): calibrated logits and probabilities, the n-gram branch inside."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.wide = NgramFeatures.of(model.cfg)
        self.words = model.words

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        read, read_lengths = self.compact(tokens, lengths, cut=True)
        lstm, _ = self.model.branches(Batch(read, read_lengths, None))
        logits = lstm * self.model.mix[0]
        if self.wide is not None:
            if self.wide.whole and self.model.cfg.max_len is not None:
                read, read_lengths = self.compact(tokens, lengths, cut=False)
            logits = logits + self.wide_logits(read, read_lengths) * self.model.mix[1]
        return logits, torch.softmax(logits, dim=1)

    def compact(self, tokens: torch.Tensor, lengths: torch.Tensor, cut: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Each review's ids that revsent's encoder keeps, moved to its front and, with ``cut``,
        truncated as ``max_len`` says (the LSTM's input); an empty review is one padding position,
        as in revsent's batches."""
        cfg, width = self.model.cfg, tokens.shape[1]
        steps = torch.arange(width)[None, :]  # (1, T)
        valid = (steps < lengths[:, None]) & (tokens > 0) & (tokens < self.words)  # (B, T)
        kept = valid.to(torch.int64)
        n = kept.sum(dim=1, keepdim=True)  # (B, 1)
        at = torch.cumsum(kept, dim=1) - 1  # (B, T) position among the kept ids
        if cfg.max_len is None or not cut:
            dest, count = at, n
        else:
            count = torch.clamp(n, max=cfg.max_len)
            skip = n - count
            head = {"tail": torch.zeros_like(count), "head": count,
                    "head_tail": torch.clamp(count, max=cfg.max_len // 4)}[cfg.truncate]
            valid = valid & ((at < head) | (at >= head + skip))
            dest = torch.where(at < head, at, at - skip)
        dest = torch.where(valid, dest, torch.full_like(dest, width))  # the rest to a column dropped below
        out = torch.zeros(tokens.shape[0], width + 1, dtype=torch.int64).scatter(1, dest, tokens * kept)
        longest = torch.clamp(count.max(), min=1)
        out = out.index_select(1, torch.arange(longest))  # (B, T') T' = the longest kept review
        return out, torch.clamp(count[:, 0], min=1)

    def wide_logits(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The n-gram branch's log-odds (B, C) for compacted ``tokens``: ``ngrams.linear_logits``."""
        m, wide = self.model, self.wide
        batch, width = tokens.shape
        total = wide.n_features
        rows = torch.arange(batch)[:, None]  # (B, 1)
        steps = torch.arange(width)[None, :]
        grams = [(tokens, steps < lengths[:, None])]
        pairs = self._extend(tokens[:, :-1], tokens[:, 1:])  # (B, T-1) unreduced hashes
        grams.append((self._slot(pairs), steps[:, 1:] < lengths[:, None]))
        if wide.order >= 3:
            grams.append((self._slot(self._extend(pairs[:, :-1], tokens[:, 2:])), steps[:, 2:] < lengths[:, None]))
        keys = torch.cat([torch.where(ok, rows * total + f, torch.full_like(f, SENTINEL)).reshape(-1)
                          for f, ok in grams])
        unique, counts = torch.unique(keys, sorted=True, return_counts=True)  # (N,) distinct (review, feature)
        review = torch.div(unique, total, rounding_mode="trunc")
        feature = unique - review * total
        row, hit = self._lookup(feature)
        idf = torch.where(hit, m.wide_idf[row], m.wide_unseen)
        values = idf if wide.weighting == "nb" else (1.0 + torch.log(counts.to(idf.dtype))) * idf  # (N,)
        weight = m.wide_weight[row] * hit[:, None].to(idf.dtype)  # (N, C): 0 without a row
        belongs = (review[None, :] == torch.arange(batch)[:, None]).to(idf.dtype)  # (B, N)
        sums = belongs @ (values[:, None] * weight)  # (B, C)
        if wide.weighting != "nb":
            norms = torch.sqrt(belongs @ (values * values))  # (B,)
            sums = sums / torch.where(norms > 0, norms, torch.ones_like(norms))[:, None]
        return sums + m.wide_bias

    def _extend(self, prefix: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """``NgramFeatures.extend`` in wrapping int64 arithmetic."""
        if self.wide.hash == 1:
            return torch.remainder(prefix * NGRAM_PRIME + ids, self.wide.buckets)
        h = _xor(prefix * _signed(MIX_1), ids) * _signed(MIX_2)
        high, low = _halves(h)
        return _xor(h, high * 2 + torch.div(low, 1 << 31, rounding_mode="trunc"))  # h ^ (h >>> 31)

    def _slot(self, hashes: torch.Tensor) -> torch.Tensor:
        """``NgramFeatures.slot``: the unsigned hash modulo the buckets, after the words."""
        buckets = self.wide.buckets
        if self.wide.hash == 1:
            return self.wide.vocab_size + hashes
        high, low = _halves(hashes)
        rest = torch.remainder(torch.remainder(high, buckets) * ((1 << 32) % buckets) + torch.remainder(low, buckets),
                               buckets)
        return self.wide.vocab_size + rest

    def _lookup(self, feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each feature id's row in the sorted ``wide_keys`` and whether it has one: a binary search
        unrolled over the table's size (searchsorted has no ONNX operator)."""
        keys = self.model.wide_keys
        feature = feature.to(keys.dtype)  # int32 where the feature ids fit it
        size = int(keys.shape[0])
        if size == 0:
            return torch.zeros_like(feature), torch.zeros_like(feature, dtype=torch.bool)
        at = torch.zeros_like(feature)  # the last row whose key is <= the feature (0 if none)
        step = 1 << max(size - 1, 1).bit_length()
        while step:
            candidate = torch.clamp(at + step, max=size - 1)
            at = torch.where(keys[candidate] <= feature, candidate, at)
            step >>= 1
        return at, keys[at] == feature
