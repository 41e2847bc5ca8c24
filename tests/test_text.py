"""revsent.text: the tutorial's words (regex + Keras Tokenizer) and Keras' num_words vocabulary."""
from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

import revsent.text
from revsent.config import ModelConfig
from revsent.text import PAD, UNK, Cut, Sequences, TextEncoder, truncate, words

# --- the tutorial's pipeline, rewritten in plain Python --------------------------------------------

# keras.preprocessing.text.Tokenizer's default `filters`
KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'


def tutorial_words(text: str) -> list[str]:
    """data['text'].apply(lambda x: x.lower()); re.sub('[^a-zA-z0-9\\s]', '', x); then Keras'
    text_to_word_sequence: lower, every filter character -> ' ', split on ' ', drop empties."""
    text = re.sub(r"[^a-zA-z0-9\s]", "", text.lower())  # A-z (sic) also lets [ \ ] ^ _ ` through
    text = text.lower().translate(str.maketrans({c: " " for c in KERAS_FILTERS}))
    return [w for w in text.split(" ") if w]


def keras_word_index(texts: list[str]) -> dict[str, int]:
    """Tokenizer.fit_on_texts: ids by descending count from 1 (ties by first appearance)."""
    counts: dict[str, int] = {}
    for text in texts:
        for word in tutorial_words(text):
            counts[word] = counts.get(word, 0) + 1
    ranked = sorted(counts, key=lambda w: -counts[w])  # stable sort
    return {w: i for i, w in enumerate(ranked, start=1)}


def keras_sequences(train: list[str], texts: list[str], num_words: int, oov: bool) -> list[list[int]]:
    """Tokenizer(num_words, oov_token='<OOV>' if oov).texts_to_sequences after fit_on_texts(train)."""
    index = keras_word_index(train)
    if oov:  # Keras puts the OOV token first: id 1, words from 2
        index = {w: i + 1 for w, i in index.items()}
    out = []
    for text in texts:
        seq = []
        for word in tutorial_words(text):
            i = index.get(word)
            if i is not None and i < num_words:
                seq.append(i)
            elif oov:
                seq.append(1)
        out.append(seq)
    return out


ASCII_SENTENCES = [
    "Hello, World!",
    "I don't like it... at ALL!!!",
    "The food was great (really great) -- 10/10, would eat again.",
    "Price: $12.99; tip: 15% & tax @ 8.5%",
    "e-mail me at someone@example.com or visit http://example.com/a_b?x=1&y=2",
    "[bracketed]text{braces}<angle>",
    "under_score snake_case_word __dunder__",
    "back\\slash caret^word back`tick`s",
    "multiple     spaces   between  words",
    "line one\nline two\n\nline four",
    "tabs\tbetween\twords",
    "digits 123 and 4.56 and 7,890 and 1st 2nd",
    "  leading and trailing spaces  ",
    "\"quoted\" 'single' `back`",
    "MiXeD CaSe WoRdS",
    "semi;colon:colon|pipe~tilde+plus=equals*star#hash",
    "It's 5 o'clock somewhere... isn't it?",
    "!!!???...",
    "",
]


@pytest.mark.parametrize("text", ASCII_SENTENCES)
def test_words_match_the_tutorial_on_ascii(text):
    assert words(text) == tutorial_words(text)


def test_words_exact_tokens():
    assert words("I don't like it... at ALL!!!") == ["i", "dont", "like", "it", "at", "all"]
    assert words("under_score [a]b^c`d\\e") == ["under", "score", "a", "b", "c", "d", "e"]
    assert words("10/10, $12.99 -- e-mail") == ["1010", "1299", "email"]
    assert words("line one\nline\ttwo   end") == ["line", "one", "line", "two", "end"]
    assert words("") == [] and words(" \n\t ") == [] and words("?!.") == []


def test_the_reference_pipeline_is_what_the_tutorial_did():
    # Guards the reimplementation itself: A-z keeps [\]^_` for Keras to split on; other marks go.
    assert tutorial_words("a_b [c] d-e it's") == ["a", "b", "c", "de", "its"]


@pytest.mark.parametrize("text,expected", [
    ("Café", ["café"]),
    ("Привет, мир!", ["привет", "мир"]),
    ("東京 タワー", ["東京", "タワー"]),
    ("naïve façade", ["naïve", "façade"]),
    ("Straße ÆON", ["straße", "æon"]),
    ("l'été à Zürich", ["lété", "à", "zürich"]),
    ("مرحبا بالعالم", ["مرحبا", "بالعالم"]),
    ("Great food 😀👍!", ["great", "food"]),  # emoji are not letters
    ("Très bon — vraiment «super»", ["très", "bon", "vraiment", "super"]),
    ("बहुत अच्छा खाना!", ["बहुत", "अच्छा", "खाना"]),  # vowel signs are combining marks: kept
    ("cafe\u0301 1½ stars, 10²", ["cafe\u0301", "1", "stars", "10"]),  # other numbers (½, ²) are deleted like punctuation
])
def test_words_keep_accented_and_non_latin_letters(text, expected):
    assert words(text) == expected


# --- the vocabulary ------------------------------------------------------------------------------

# word k appears k times: no ties, so Keras' first-appearance order and revsent's agree
RANKED = ["kilo", "juliet", "india", "hotel", "golf", "foxtrot", "echo", "delta", "charlie", "bravo", "alpha"]
CORPUS = [
    "Kilo kilo, KILO! kilo kilo kilo; kilo kilo kilo kilo kilo.",
    "juliet juliet juliet juliet juliet juliet juliet juliet juliet juliet",
    "india india india india india india india india india hotel hotel",
    "hotel hotel hotel hotel hotel hotel golf golf golf golf golf golf golf",
    "Foxtrot... foxtrot foxtrot foxtrot foxtrot foxtrot echo echo echo echo echo",
    "delta delta delta delta charlie charlie charlie bravo bravo alpha",
]
PROBES = [
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo",
    "KILO, unknown kilo!! zulu alpha",
    "nothing known here",
    "",
    "kilo",
]


def test_corpus_counts_are_as_intended():
    counts = Counter(w for text in CORPUS for w in tutorial_words(text))
    assert [(w, counts[w]) for w in RANKED] == [(w, 11 - k) for k, w in enumerate(RANKED)]
    assert list(keras_word_index(CORPUS)) == RANKED


@pytest.mark.parametrize("num_words", [3, 5, 11, 12, 50])
@pytest.mark.parametrize("oov", [False, True])
def test_encoding_equals_keras_tokenizer_num_words(num_words, oov):
    encoder = TextEncoder.fit(CORPUS, vocab_size=num_words, oov=oov)
    sequences = encoder.encode(PROBES)
    expected = keras_sequences(CORPUS, PROBES, num_words, oov)
    assert [sequences[i].tolist() for i in range(len(sequences))] == expected


def test_num_words_keeps_n_minus_1_most_frequent_words_as_ids_1_to_n_minus_1():
    encoder = TextEncoder.fit(CORPUS, vocab_size=5)
    word_ids = {w: i for w, i in encoder.vocab.items() if w not in (PAD, UNK)}
    assert word_ids == {"kilo": 1, "juliet": 2, "india": 3, "hotel": 4}
    assert encoder.vocab[PAD] == 0  # no word has id 0
    assert encoder.encode(["alpha hotel golf kilo zulu"])[0].tolist() == [4, 1]  # unknown words dropped
    assert encoder.tokens("alpha hotel golf kilo zulu") == ["hotel", "kilo"]


def test_oov_maps_unknown_words_to_id_1_and_keeps_n_minus_2_words():
    encoder = TextEncoder.fit(CORPUS, vocab_size=5, oov=True)
    word_ids = {w: i for w, i in encoder.vocab.items() if w not in (PAD, UNK)}
    assert word_ids == {"kilo": 2, "juliet": 3, "india": 4}
    assert encoder.vocab[UNK] == 1
    assert encoder.encode(["alpha india golf kilo zulu"])[0].tolist() == [1, 4, 1, 2, 1]
    assert encoder.tokens("zulu kilo") == [UNK, "kilo"]


def test_all_ids_below_vocab_size():
    for oov in (False, True):
        encoder = TextEncoder.fit(CORPUS, vocab_size=6, oov=oov)
        ids = encoder.encode(CORPUS + PROBES).ids
        assert ids.dtype == np.int32
        assert ids.min() >= 1 and ids.max() <= 5


def test_vocabulary_smaller_than_vocab_size():
    encoder = TextEncoder.fit(["b a", "a"], vocab_size=100)
    assert encoder.encode(["a b c"])[0].tolist() == [1, 2]


def test_ties_are_broken_alphabetically():
    # Keras would rank by first appearance (zulu, yankee, xray); revsent ranks alphabetically.
    encoder = TextEncoder.fit(["zulu yankee xray", "mike mike"], vocab_size=10)
    assert encoder.encode(["zulu yankee xray mike"])[0].tolist() == [4, 3, 2, 1]
    encoder = TextEncoder.fit(["zulu yankee xray", "mike mike"], vocab_size=3)  # keeps 2 words
    assert encoder.tokens("zulu yankee xray mike") == ["xray", "mike"]


def test_fit_normalises_like_words():
    encoder = TextEncoder.fit(["Don't STOP", "don't, stop!", "dont"], vocab_size=10)
    assert {w: i for w, i in encoder.vocab.items() if w not in (PAD, UNK)} == {"dont": 1, "stop": 2}
    assert encoder.encode(["DON'T... stop_dont"])[0].tolist() == [1, 2, 1]


def test_unicode_words_in_the_vocabulary():
    encoder = TextEncoder.fit(["Café café Привет 東京", "привет"], vocab_size=10)
    assert encoder.tokens("CAFÉ, привет! 東京.") == ["café", "привет", "東京"]


# --- sequences -----------------------------------------------------------------------------------

ALPHABET = ["a a a a a a", "b b b b b", "c c c c", "d d d", "e e", "f"]  # a=1 b=2 c=3 d=4 e=5 f=6


@pytest.mark.parametrize("truncate,expected", [
    ("tail", [[4, 5, 6], [1, 2], [], [3, 2, 1], [6]]),
    ("head", [[1, 2, 3], [1, 2], [], [6, 5, 4], [6]]),
])
def test_max_len_truncates_head_or_tail(truncate, expected):
    encoder = TextEncoder.fit(ALPHABET, vocab_size=10, max_len=3, truncate=truncate)
    whole = encoder.encode(["a b c d e f", "a b", "", "f e d c b a", "f zzz"])
    assert whole.lengths.tolist() == [6, 2, 0, 6, 1]  # encoded whole: the n-gram branch reads it all
    sequences = Cut(3, truncate)(whole)  # the LSTM's input
    assert [sequences[i].tolist() for i in range(len(sequences))] == expected
    assert sequences.lengths.tolist() == [len(s) for s in expected]
    assert sequences.offsets.tolist() == [0, 3, 5, 5, 8, 9]


def test_head_tail_keeps_a_quarter_from_the_start_and_the_rest_from_the_end():
    encoder = TextEncoder.fit(ALPHABET, vocab_size=10, max_len=4, truncate="head_tail")
    sequences = Cut.of(ModelConfig(max_len=4, truncate="head_tail"))(encoder.encode(["a b c d e f", "a b c d", "f e d c b a a"]))
    assert [sequences[i].tolist() for i in range(3)] == [[1, 4, 5, 6], [1, 2, 3, 4], [6, 2, 1, 1]]
    assert Cut(4).lengths(np.array([7, 4, 0])).tolist() == [4, 4, 0] and Cut().lengths(np.array([7])).tolist() == [7]
    short = encoder.encode(["a b"])
    assert Cut(4)(short) is short  # nothing to cut: no copy


@pytest.mark.parametrize("side", ["head", "tail", "head_tail"])
def test_truncate_matches_cutting_each_review_alone(side):
    rng = np.random.default_rng(0)
    for _ in range(200):
        lengths = rng.integers(0, 30, size=int(rng.integers(1, 6)))
        ids = rng.integers(0, 1000, size=int(lengths.sum()))
        max_len = int(rng.integers(1, 25))
        got, kept = truncate(ids, lengths, max_len, side)
        expected, offset = [], 0
        for n in lengths:
            review, offset = ids[offset: offset + n].tolist(), offset + n
            head = {"head": max_len, "tail": 0, "head_tail": max_len // 4}[side]
            expected.append(review if n <= max_len else review[:head] + review[n - (max_len - head):])
        assert got.tolist() == [i for review in expected for i in review]
        assert kept.tolist() == [len(review) for review in expected]


def test_max_len_counts_kept_words_after_dropping_unknown_ones():
    encoder = TextEncoder.fit(ALPHABET, vocab_size=10, max_len=2, truncate="head")
    assert Cut(2, "head")(encoder.encode(["x y a z b c"]))[0].tolist() == [1, 2]


def test_no_max_len_keeps_everything():
    encoder = TextEncoder.fit(ALPHABET, vocab_size=10)
    assert encoder.encode(["a b c d e f a b c d e f"])[0].tolist() == [1, 2, 3, 4, 5, 6] * 2


def test_empty_texts():
    encoder = TextEncoder.fit(ALPHABET, vocab_size=10)
    sequences = encoder.encode(["", "   ", "?!", "unknown"])
    assert len(sequences) == 4
    assert sequences.lengths.tolist() == [0, 0, 0, 0]
    assert sequences[0].tolist() == []
    assert len(encoder.encode([])) == 0


def test_encoding_in_chunks_gives_the_same_sequences(monkeypatch):
    encoder = TextEncoder.fit(ALPHABET, vocab_size=4)  # a b c known, the rest dropped
    texts = ["a d b", "", "e f", "c c a", "b", "d"]
    whole = encoder.encode(texts)
    monkeypatch.setattr(revsent.text, "CHUNK", 2)
    chunked = encoder.encode(texts)
    assert chunked.ids.tolist() == whole.ids.tolist() == [1, 2, 3, 3, 1, 2]
    assert chunked.offsets.tolist() == whole.offsets.tolist() == [0, 2, 2, 2, 5, 6, 6]


def test_sequences_subset_copies():
    sequences = Sequences(np.array([1, 2, 3, 4, 5, 6], dtype=np.int32), np.array([0, 3, 3, 5, 6], dtype=np.int64))
    sub = sequences.subset(np.array([3, 0, 2]))
    assert len(sub) == 3
    assert [sub[i].tolist() for i in range(3)] == [[6], [1, 2, 3], [4, 5]]
    assert sub.offsets.tolist() == [0, 1, 4, 6]
    assert sub.ids.dtype == np.int32
    empty = sequences.subset(np.array([], dtype=np.int64))
    assert len(empty) == 0 and empty.ids.tolist() == [] and empty.offsets.tolist() == [0]
    only_empty = sequences.subset(np.array([1, 1]))
    assert only_empty.lengths.tolist() == [0, 0] and only_empty.ids.tolist() == []


# --- saving --------------------------------------------------------------------------------------

@pytest.mark.parametrize("oov", [False, True])
def test_to_str_from_str_round_trip(oov):
    encoder = TextEncoder.fit(CORPUS + ["Café Привет 東京"], vocab_size=8, oov=oov, max_len=4, truncate="head")
    texts = PROBES + ["Café, привет 東京 kilo", "zulu zulu"]
    saved = encoder.to_str()
    loaded = TextEncoder.from_str(saved, vocab_size=8, oov=oov, max_len=4, truncate="head")
    assert loaded.vocab == encoder.vocab
    before, after = encoder.encode(texts), loaded.encode(texts)
    assert after.ids.tolist() == before.ids.tolist()
    assert after.offsets.tolist() == before.offsets.tolist()
    assert loaded.to_str() == saved
    assert loaded.unk_id == encoder.unk_id


def test_sequences_take_is_a_view_with_the_same_rows():
    sequences = Sequences(np.array([1, 2, 3, 4, 5, 6], dtype=np.uint16), np.array([0, 3, 3, 5, 6], dtype=np.int64))
    view = sequences.take(np.array([3, 0, 2]))
    assert view.ids is sequences.ids  # no tokens copied
    assert [view[i].tolist() for i in range(3)] == [[6], [1, 2, 3], [4, 5]]
    assert view.lengths.tolist() == [1, 3, 2] and view.n_tokens == 6
    again = view.take(np.array([2, 0]))  # a view of a view indexes the original rows
    assert [again[i].tolist() for i in range(2)] == [[4, 5], [6]]


def test_min_count_leaves_out_rare_words_and_numbers_the_rest_densely():
    from revsent.text import rank_vocabulary

    counts = [("good", 5), ("bad", 3), ("meh", 2), ("odd", 1)]
    vocab = rank_vocabulary(counts, 100, min_count=3)
    assert [w for w in vocab if w not in ("[PAD]", "[UNK]")] == ["good", "bad"]
    assert sorted(i for w, i in vocab.items() if w not in ("[UNK]",)) == [0, 1, 2]  # ids 1..2: two embedding rows
    assert TextEncoder.fit(["a a a b b c"], 100, min_count=2).rows == 3  # padding, a, b


def test_known_words_counts_the_words_the_vocabulary_knows():
    with_oov = TextEncoder.fit(["good food good", "bad service"], 10, oov=True)
    seqs = with_oov.encode(["good zzz", "qqq", "", "bad bad xx"])
    assert with_oov.known_words(seqs).tolist() == [1, 0, 0, 2]
    assert with_oov.known_words(seqs.take(np.array([3, 0]))).tolist() == [2, 1]
    dropping = TextEncoder.fit(["good food good", "bad service"], 10)
    assert dropping.known_words(dropping.encode(["good zzz", "qqq", ""])).tolist() == [1, 0, 0]
