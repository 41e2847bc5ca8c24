"""Text -> token ids, with the semantics of the tutorial's Keras ``Tokenizer(num_words=N)``.

Lowercase; punctuation removed (deleted, as the tutorial's regex does, so "don't" -> "dont"),
except the characters the tutorial's regex let through and Keras then split on (``[\\]^_```),
which separate words; split on white space; keep the N-1 most frequent words as ids 1..N-1
(0 is padding); drop unknown words, or map them to id 1 with ``oov``. Unlike the tutorial's
ASCII-only ``[^a-zA-z0-9\\s]`` this keeps accented and non-Latin letters. Ties in frequency
are broken alphabetically (Keras breaks them by first appearance).

Words are cut by :func:`words` (Python's Unicode-aware ``re``: faster than the ``tokenizers``
pipeline, whose per-character alignment tracking costs more than the split itself). The vocabulary is saved in the Hugging Face ``tokenizers`` WordLevel format
(``tokenizer.json``), which other tools can load.
"""
from __future__ import annotations

import functools
import itertools
import mmap
import re
import sys
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import orjson
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordLevel

from .config import ModelConfig

PAD, UNK = "[PAD]", "[UNK]"
CHUNK = 8192  # texts encoded per step: bounds the Python lists alive at once

_SEPARATORS = str.maketrans({c: " " for c in "[\\]^_`"})  # kept by the tutorial's regex, split by Keras
_PUNCTUATION = re.compile(r"[^\w\s]")  # what is not a word character or space: enough for ASCII text


@functools.cache
def _unicode_punctuation() -> re.Pattern:
    """What to delete from any text: not a letter, mark, digit or space (Unicode's word
    characters). Python's \\w alone would delete combining marks (the vowel signs of Hindi,
    accents written apart) and keep other numbers (½, ²); built on first use (a third of a
    second), so that ASCII-only work never pays for it."""
    marks, numbers = [], []
    for code in range(sys.maxunicode + 1):
        category = unicodedata.category(chr(code))
        if category[0] == "M":
            marks.append(code)
        elif category == "No":
            numbers.append(code)
    return re.compile(f"[^\\w\\s{_ranges(marks)}]|[{_ranges(numbers)}]")


def _ranges(codes: list[int]) -> str:
    """A regex character-class body for these code points, as ranges."""
    parts, start = [], 0
    for i in range(1, len(codes) + 1):
        if i == len(codes) or codes[i] != codes[i - 1] + 1:
            first, last = codes[start], codes[i - 1]
            parts.append(re.escape(chr(first)) + (f"-{re.escape(chr(last))}" if last > first else ""))
            start = i
    return "".join(parts)


def words(text: str) -> list[str]:
    """The words of ``text`` as the tokenizer sees them (before the vocabulary is applied)."""
    text = text.lower().translate(_SEPARATORS)
    return (_PUNCTUATION if text.isascii() else _unicode_punctuation()).sub("", text).split()


def _normalizer():
    """The same normalisation as :func:`words`, recorded in tokenizer.json for other tools."""
    return normalizers.Sequence([
        normalizers.Lowercase(),
        normalizers.Replace(Regex(r"[\[\\\]^_`]"), " "),
        normalizers.Replace(Regex(r"[^\w\s]"), ""),
    ])


def _tokenizer_file(vocab: dict[str, int]) -> Tokenizer:
    tokenizer = Tokenizer(WordLevel(vocab, unk_token=UNK))
    tokenizer.normalizer = _normalizer()
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tokenizer


def rank_vocabulary(counts: Iterable[tuple[str, int]], vocab_size: int, oov: bool = False,
                    min_count: int = 1) -> dict[str, int]:
    """Keras' ``num_words`` vocabulary from word counts: the most frequent first, ties alphabetically,
    of the words counted at least ``min_count`` times.

    Ids 1..N-1 (2..N-1 with ``oov``, whose id is 1); 0 is padding. Without ``oov`` the unknown
    token gets id ``vocab_size``, outside the embedding, and ``encode`` drops it.
    """
    first = 2 if oov else 1
    kept = sorted((item for item in counts if item[1] >= min_count), key=lambda item: (-item[1], item[0]))
    kept = kept[: vocab_size - first]
    vocab = {PAD: 0}
    if oov:
        vocab[UNK] = 1
    for word, _ in kept:
        vocab[word] = len(vocab)
    if not oov:
        vocab[UNK] = vocab_size
    return vocab


def truncate(ids: np.ndarray, lengths: np.ndarray, max_len: int | None, side: str) -> tuple[np.ndarray, np.ndarray]:
    """Keep at most ``max_len`` ids of each flat-stored sequence: the last (``tail``), the first
    (``head``), or the first quarter of ``max_len`` and the rest from the end (``head_tail``)."""
    if max_len is None or not len(lengths) or lengths.max() <= max_len:
        return ids, lengths
    ends = np.cumsum(lengths)
    kept = np.minimum(lengths, max_len)
    starts = ends - kept if side == "tail" else ends - lengths  # of each review's ids kept (the first run of them)
    index = np.repeat(starts - (np.cumsum(kept) - kept), kept) + np.arange(kept.sum())
    if side == "head_tail":  # past its first quarter, each review's window skips the middle
        head = np.minimum(kept, max_len // 4)
        past_head = np.arange(kept.sum()) - np.repeat(np.cumsum(kept) - kept, kept) >= np.repeat(head, kept)
        index += np.repeat(lengths - kept, kept) * past_head
    return ids[index], kept


@dataclass(frozen=True)
class Cut:
    """What the LSTM reads of each review: at most ``max_len`` ids (None: all), kept as
    ``truncate`` says. Reviews are stored and encoded whole; the n-gram branch reads them whole
    (``ModelConfig.ngram_whole``), the LSTM only what the cut leaves."""

    max_len: int | None = None
    side: str = "tail"

    @classmethod
    def of(cls, cfg: ModelConfig) -> "Cut":
        return cls(cfg.max_len, cfg.truncate)

    def lengths(self, lengths: np.ndarray) -> np.ndarray:
        """The lengths the LSTM reads of reviews of ``lengths``."""
        return lengths if self.max_len is None else np.minimum(lengths, self.max_len)

    def __call__(self, seqs: "Sequences") -> "Sequences":
        """``seqs`` cut (``seqs`` itself where no review is longer than ``max_len``; else a compact copy)."""
        if self.max_len is None or not len(seqs) or int(seqs.lengths.max()) <= self.max_len:
            return seqs
        rows = seqs.subset(np.arange(len(seqs)))
        ids, lengths = truncate(rows.ids, rows.lengths.astype(np.int64), self.max_len, self.side)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return Sequences(ids, offsets)


RELEASE_EVERY = 1 << 8  # reviews read between two Sequences.release() calls (each costs a few ms at 7M reviews)


class Sequences:
    """Variable-length id sequences stored flat: sequence i is ``ids[start_i : start_i + length_i]``.

    ``ids`` and ``offsets`` may be memory maps of a prepared dataset; ``take`` makes a view of
    some rows without copying tokens. Lengths are computed once, so per-batch work is O(batch).
    """

    def __init__(self, ids: np.ndarray, offsets: np.ndarray, rows: np.ndarray | None = None):
        self.ids, self.offsets, self.rows = ids, offsets, rows
        self._lengths: np.ndarray | None = None
        self._reads = 0  # reviews read since the last release()

    @property
    def lengths(self) -> np.ndarray:
        """(n,) int32, computed once: per-review memory is the row number and this."""
        if self._lengths is None:
            if self.rows is None:
                self._lengths = np.diff(self.offsets).astype(np.int32)
            else:
                self._lengths = (self.offsets[self.rows + 1] - self.offsets[self.rows]).astype(np.int32)
        return self._lengths

    def __len__(self) -> int:
        return len(self.offsets) - 1 if self.rows is None else len(self.rows)

    def __getitem__(self, i: int) -> np.ndarray:
        row = i if self.rows is None else self.rows[i]
        self._reads += 1
        if self._reads >= RELEASE_EVERY:
            self.release()
        return self.ids[self.offsets[row]: self.offsets[row + 1]]

    def take(self, index: np.ndarray) -> "Sequences":
        """The rows ``index`` as a view over the same ids (no tokens copied)."""
        index = np.asarray(index)
        if index.dtype.kind not in "iu":
            index = index.astype(np.int64)
        return Sequences(self.ids, self.offsets, index if self.rows is None else self.rows[index])

    def release(self) -> None:
        """Let the kernel unmap the pages of memory-mapped ids this process has read (they stay in
        the page cache, so reading them again is cheap): the process's RSS then stays flat over an
        epoch instead of growing to the dataset's size. Called every RELEASE_EVERY reviews read."""
        self._reads = 0
        for array in (self.ids, self.offsets):
            base = array
            while base is not None and not isinstance(base, mmap.mmap):
                base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
            if base is not None and hasattr(mmap, "MADV_DONTNEED"):
                base.madvise(mmap.MADV_DONTNEED)

    def subset(self, index: np.ndarray) -> "Sequences":
        """The rows ``index`` copied into a compact Sequences of their own."""
        index = np.asarray(index, dtype=np.int64)
        lengths = self.lengths[index]
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        ids = np.concatenate([self[i] for i in index]) if len(index) else np.zeros(0, np.int32)
        return Sequences(ids.astype(np.int32, copy=False), offsets)

    @property
    def n_tokens(self) -> int:
        return int(self.lengths.sum())


class TextEncoder:
    """A fitted vocabulary: ``fit`` builds it, ``encode`` turns texts into :class:`Sequences`."""

    def __init__(self, vocab: dict[str, int], vocab_size: int, oov: bool = False,
                 max_len: int | None = None, truncate: str = "tail"):
        self.vocab, self.vocab_size, self.oov = vocab, vocab_size, oov
        self.max_len, self.truncate = max_len, truncate
        self.unk_id = vocab.get(UNK)
        self._ids = dict(vocab)  # the words that encode: a copy less the two specials (faster than a comprehension)
        self._ids.pop(PAD, None)
        self._ids.pop(UNK, None)

    @property
    def largest_id(self) -> int | None:
        """The largest id ``encode`` gives (None when it gives none): it must fit the embedding."""
        top = max(self._ids.values(), default=None)
        if self.oov and self.unk_id is not None:
            top = max(self.unk_id, -1 if top is None else top)
        return top

    @property
    def rows(self) -> int:
        """The embedding rows the ids ``encode`` gives need: the largest id + 1."""
        return (self.largest_id or 0) + 1

    @functools.cached_property
    def _id_words(self) -> dict[int, str]:
        return {i: word for word, i in self.vocab.items()}

    @classmethod
    def fit(cls, texts: Iterable[str], vocab_size: int, oov: bool = False,
            max_len: int | None = None, truncate: str = "tail", min_count: int = 1) -> "TextEncoder":
        """Count words over ``texts`` and keep the ``vocab_size - 1`` most frequent (``-2`` with oov)
        of those seen ``min_count`` times or more."""
        counts: Counter = Counter()
        for text in texts:
            counts.update(words(text))
        return cls(rank_vocabulary(counts.items(), vocab_size, oov, min_count), vocab_size, oov, max_len, truncate)

    @classmethod
    def fit_config(cls, texts: Iterable[str], cfg: ModelConfig) -> "TextEncoder":
        """``fit`` with the tokenizer settings of a model config."""
        return cls.fit(texts, cfg.vocab_size, cfg.oov, cfg.max_len, cfg.truncate, cfg.min_count)

    @classmethod
    def from_str_config(cls, data: str, cfg: ModelConfig) -> "TextEncoder":
        """``from_str`` with the tokenizer settings of a model config."""
        return cls.from_str(data, cfg.vocab_size, cfg.oov, cfg.max_len, cfg.truncate)

    def encode(self, texts: Sequence[str]) -> Sequences:
        """Token ids of each whole text, unknown words dropped (or mapped to 1); what the LSTM reads
        of them is cut at batching (:class:`Cut`)."""
        id_chunks, length_chunks = [], []
        for start in range(0, len(texts), CHUNK):
            ids, lengths = self.encode_flat(texts[start: start + CHUNK])
            id_chunks.append(ids)
            length_chunks.append(lengths)
        ids = np.concatenate(id_chunks) if id_chunks else np.zeros(0, np.int32)
        lengths = np.concatenate(length_chunks) if length_chunks else np.zeros(0, np.int64)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return Sequences(ids, offsets)

    def encode_flat(self, texts: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """The ids of ``texts`` concatenated (int32) and their lengths (int64)."""
        get = self._ids.get
        if self.oov:
            seqs = [[get(w, 1) for w in words(text)] for text in texts]
        else:
            seqs = [[i for i in map(get, words(text)) if i is not None] for text in texts]
        lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
        ids = np.fromiter(itertools.chain.from_iterable(seqs), dtype=np.int32, count=int(lengths.sum()))
        return ids, lengths

    def known_words(self, seqs: "Sequences") -> np.ndarray:
        """How many words of each encoded text the vocabulary knows (int64; OOV ids are not known):
        0 means the model reads nothing of that text and answers from its bias alone."""
        lengths = seqs.lengths.astype(np.int64)
        if not (self.oov and self.unk_id is not None):
            return lengths
        unknown = np.zeros(len(seqs.ids) + 1, np.int64)
        np.cumsum(seqs.ids == self.unk_id, out=unknown[1:])
        starts = seqs.offsets[:-1] if seqs.rows is None else seqs.offsets[seqs.rows]
        return lengths - (unknown[starts + lengths] - unknown[starts])

    def tokens(self, text: str) -> list[str]:
        """The vocabulary words of ``text`` in order (unknown words dropped or shown as [UNK])."""
        return [self._id_words[int(i)] for i in self.encode([text])[0]]

    def to_str(self) -> str:
        return _tokenizer_file(self.vocab).to_str()

    @classmethod
    def from_str(cls, data: str, vocab_size: int, oov: bool = False,
                 max_len: int | None = None, truncate: str = "tail") -> "TextEncoder":
        """From the text of a tokenizer.json that ``to_str`` wrote. Its vocabulary is read as plain
        JSON: a third of the time of building the tokenizer (start-up of `revsent predict`)."""
        try:
            vocab = orjson.loads(data)["model"]["vocab"]
        except (KeyError, TypeError):
            raise ValueError("not a word-level tokenizer file (no model.vocab)") from None
        if not isinstance(vocab, dict) or not set(map(type, vocab.values())) <= {int}:
            raise ValueError("not a word-level tokenizer file (model.vocab is not a map of words to ids)")
        return cls(vocab, vocab_size, oov, max_len, truncate)
