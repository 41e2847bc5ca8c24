"""Text -> token ids, with the semantics of the tutorial's Keras ``Tokenizer(num_words=N)``.

Lowercase; punctuation removed (deleted, as the tutorial's regex does, so "don't" -> "dont"),
except the characters the tutorial's regex let through and Keras then split on (``[\\]^_```),
which separate words; split on white space; keep the N-1 most frequent words as ids 1..N-1
(0 is padding); drop unknown words, or map them to id 1 with ``oov``. Unlike the tutorial's
ASCII-only ``[^a-zA-z0-9\\s]`` this keeps accented and non-Latin letters. Ties in frequency
are broken alphabetically (Keras breaks them by first appearance).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordLevel
from tokenizers.trainers import WordLevelTrainer

from .config import ModelConfig

PAD, UNK = "[PAD]", "[UNK]"
CHUNK = 1024  # texts encoded per call: bounds memory (an Encoding object is large)


def _normalizer():
    return normalizers.Sequence([
        normalizers.Lowercase(),
        normalizers.Replace(Regex(r"[\[\\\]^_`]"), " "),  # kept by the tutorial's regex, split by Keras
        normalizers.Replace(Regex(r"[^\w\s]"), ""),  # \w is Unicode-aware here
    ])


def _empty_tokenizer(vocab: dict[str, int] | None = None) -> Tokenizer:
    tokenizer = Tokenizer(WordLevel(vocab or {PAD: 0, UNK: 1}, unk_token=UNK))
    tokenizer.normalizer = _normalizer()
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tokenizer


def words(text: str) -> list[str]:
    """The words of ``text`` as the tokenizer sees them (before the vocabulary is applied)."""
    normalized = _normalizer().normalize_str(text)
    return [word for word, _ in pre_tokenizers.WhitespaceSplit().pre_tokenize_str(normalized)]


@dataclass
class Sequences:
    """Variable-length id sequences stored flat: ``ids[offsets[i]:offsets[i+1]]`` is sequence i."""

    ids: np.ndarray  # (total_tokens,) int32
    offsets: np.ndarray  # (n + 1,) int64

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i]: self.offsets[i + 1]]

    def subset(self, index: np.ndarray) -> "Sequences":
        lengths = self.lengths[index]
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        ids = np.concatenate([self[i] for i in index]) if len(index) else np.zeros(0, np.int32)
        return Sequences(ids.astype(np.int32, copy=False), offsets)


class TextEncoder:
    """A fitted vocabulary: ``fit`` builds it, ``encode`` turns texts into :class:`Sequences`."""

    def __init__(self, tokenizer: Tokenizer, vocab_size: int, oov: bool = False,
                 max_len: int | None = None, truncate: str = "tail"):
        self.tokenizer, self.vocab_size, self.oov = tokenizer, vocab_size, oov
        self.max_len, self.truncate = max_len, truncate
        self.unk_id = tokenizer.token_to_id(UNK)

    @classmethod
    def fit(cls, texts: Iterable[str], vocab_size: int, oov: bool = False,
            max_len: int | None = None, truncate: str = "tail") -> "TextEncoder":
        """Count words over ``texts`` and keep the ``vocab_size - 1`` most frequent (``-2`` with oov)."""
        counter = _empty_tokenizer()
        counter.train_from_iterator(texts, trainer=WordLevelTrainer(vocab_size=1 << 31, special_tokens=[]),
                                    length=None)
        ranked = sorted(counter.get_vocab().items(), key=lambda item: item[1])  # trainer ids are ranks
        first = 2 if oov else 1
        vocab = {PAD: 0}
        if oov:
            vocab[UNK] = 1
        for word, _ in ranked[: vocab_size - first]:
            vocab[word] = len(vocab)
        if not oov:
            vocab[UNK] = vocab_size  # outside the embedding: dropped by `encode`
        return cls(_empty_tokenizer(vocab), vocab_size, oov, max_len, truncate)

    @classmethod
    def fit_config(cls, texts: Iterable[str], cfg: ModelConfig) -> "TextEncoder":
        """``fit`` with the tokenizer settings of a model config."""
        return cls.fit(texts, cfg.vocab_size, cfg.oov, cfg.max_len, cfg.truncate)

    @classmethod
    def from_str_config(cls, data: str, cfg: ModelConfig) -> "TextEncoder":
        """``from_str`` with the tokenizer settings of a model config."""
        return cls.from_str(data, cfg.vocab_size, cfg.oov, cfg.max_len, cfg.truncate)

    def encode(self, texts: Sequence[str]) -> Sequences:
        """Token ids of each text, unknown words dropped (or mapped to 1), long texts truncated."""
        id_chunks, length_chunks = [], []
        for start in range(0, len(texts), CHUNK):
            encodings = self.tokenizer.encode_batch_fast(list(texts[start: start + CHUNK]), add_special_tokens=False)
            lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
            ids = np.fromiter((i for e in encodings for i in e.ids), dtype=np.int32, count=int(lengths.sum()))
            if not self.oov:
                keep = ids != self.unk_id
                kept_before = np.concatenate([[0], np.cumsum(keep)])  # kept ids before each position
                ends = np.cumsum(lengths)
                lengths = kept_before[ends] - kept_before[ends - lengths]
                ids = ids[keep]
            id_chunks.append(ids)
            length_chunks.append(lengths)
        ids = np.concatenate(id_chunks) if id_chunks else np.zeros(0, np.int32)
        lengths = np.concatenate(length_chunks) if length_chunks else np.zeros(0, np.int64)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        sequences = Sequences(ids, offsets)
        if self.max_len is not None and (lengths > self.max_len).any():
            sequences = self._truncated(sequences)
        return sequences

    def _truncated(self, seqs: Sequences) -> Sequences:
        lengths = seqs.lengths
        kept = np.minimum(lengths, self.max_len)
        if self.truncate == "tail":  # keep the end of the review
            starts = seqs.offsets[1:] - kept
        else:
            starts = seqs.offsets[:-1]
        index = np.repeat(starts - np.concatenate([[0], np.cumsum(kept)[:-1]]), kept) + np.arange(kept.sum())
        offsets = np.zeros(len(kept) + 1, dtype=np.int64)
        np.cumsum(kept, out=offsets[1:])
        return Sequences(seqs.ids[index], offsets)

    def tokens(self, text: str) -> list[str]:
        """The vocabulary words of ``text`` in order (unknown words dropped or shown as [UNK])."""
        return [self.tokenizer.id_to_token(i) for i in self.encode([text])[0]]

    @property
    def vocab(self) -> dict[str, int]:
        return self.tokenizer.get_vocab()

    def to_str(self) -> str:
        return self.tokenizer.to_str()

    @classmethod
    def from_str(cls, data: str, vocab_size: int, oov: bool = False,
                 max_len: int | None = None, truncate: str = "tail") -> "TextEncoder":
        return cls(Tokenizer.from_str(data), vocab_size, oov, max_len, truncate)
