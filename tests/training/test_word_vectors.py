import numpy as np
import pytest
from safetensors.torch import load_file

from revsent import artifacts
from revsent.training import word_vectors as vectors
from revsent.config import Config
from revsent.errors import ConfigError
from revsent.text import Sequences
from revsent.training import train

from ..conftest import TINY


def _seqs(reviews):
    lengths = [len(r) for r in reviews]
    return Sequences(np.concatenate([np.asarray(r, dtype=np.int32) for r in reviews]),
                     np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))


def _corpus(n=300, seed=0):
    """Words 1-2 share one set of neighbours (5-8), words 3-4 another (9-12)."""
    rng = np.random.default_rng(seed)
    reviews = []
    for _ in range(n):
        centre, contexts = (rng.choice([1, 2]), [5, 6, 7, 8]) if rng.random() < 0.5 else (rng.choice([3, 4]), [9, 10, 11, 12])
        reviews.append([*rng.choice(contexts, 3), centre, *rng.choice(contexts, 3)])
    return _seqs(reviews)


def _cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_words_with_the_same_neighbours_get_close_vectors():
    table, counted = vectors.ppmi_vectors(_corpus(), vocab_size=13, dim=4, seed=0)
    assert table.shape == (13, 4) and not table[0].any()  # the padding row stays zero
    same = [_cosine(table[1], table[2]), _cosine(table[3], table[4])]
    other = [_cosine(table[1], table[3]), _cosine(table[2], table[4])]
    assert min(same) > 0.9 and max(other) < 0.1, (same, other)
    assert counted["words"] == 13 and counted["pairs"] > 0
    assert table[1:].std() == pytest.approx(vectors.SCALE, rel=1e-4)


def test_counts_stay_within_a_review_and_do_not_depend_on_the_chunk(monkeypatch):
    seqs = _seqs([[1, 2], [3, 4, 5, 6, 7, 8, 9], [2, 1]])
    whole = vectors._cooccurrences(seqs, 10, 2, np.arange(3)).toarray()
    assert whole[2, 3] == whole[3, 2] == 0  # the last word of one review, the first of the next
    assert whole[1, 2] == whole[2, 1] == 2.0  # once in each of two reviews, one apart
    assert whole[3, 5] == 0.5  # two apart: weighted 1/2
    assert whole[3, 6] == 0  # three apart: outside the window
    monkeypatch.setattr(vectors, "CHUNK_TOKENS", 3)  # a review or two per step
    np.testing.assert_array_equal(vectors._cooccurrences(seqs, 10, 2, np.arange(3)).toarray(), whole)
    # Only the first ``words`` ids are counted, as words and as neighbours; the others are left out.
    small = vectors._cooccurrences(seqs, 6, 2, np.arange(3)).toarray()
    np.testing.assert_array_equal(small, whole[:6, :6])


def test_a_token_budget_counts_a_seeded_sample_of_reviews():
    seqs = _seqs([[1, 2, 3, 4]] * 100)
    assert len(vectors._sample(seqs, 0, 10_000)) == 100
    rows = vectors._sample(seqs, 0, 40)
    assert len(rows) == 10 and np.all(np.diff(rows) > 0)  # the fewest that reach the budget, in the corpus's order
    assert len(vectors._sample(seqs, 0, 41)) == 11
    np.testing.assert_array_equal(rows, vectors._sample(seqs, 0, 40))
    assert not np.array_equal(rows, vectors._sample(seqs, 1, 40))


def test_too_few_words_leave_the_random_start():
    table, counted = vectors.ppmi_vectors(_seqs([[1, 1]]), vocab_size=3, dim=4, seed=0)
    assert table is None


def test_training_starts_the_embedding_from_the_vectors(tiny_reviews, tmp_path, monkeypatch):
    made = []
    real = vectors.ppmi_vectors

    def keep(*args, **kwargs):
        table, counted = real(*args, **kwargs)
        made.append(table)
        return table, counted

    monkeypatch.setattr(vectors, "ppmi_vectors", keep)
    cfg = Config.from_preset("seed", paths=(tiny_reviews,), **{**TINY, "epochs": 1, "lr": 1e-9},
                             embedding_init="ppmi")
    train(cfg, tmp_path / "model")
    weights = load_file(tmp_path / "model" / artifacts.WEIGHTS)["readers.0.embedding.weight"].numpy()
    rows = artifacts.load_encoder(tmp_path / "model", cfg).rows  # the embedding holds the words kept
    assert rows < TINY["vocab_size"] and len(made) == 1 and made[0].shape == weights.shape == (rows, TINY["embedding_dim"])
    np.testing.assert_allclose(weights, made[0], atol=1e-6)  # a learning rate of 1e-9 barely moves it
    assert artifacts.load_model(tmp_path / "model")[0].model.embedding_init == "ppmi"


def test_an_unknown_embedding_start_is_refused():
    with pytest.raises(ConfigError, match="embedding_init"):
        Config.from_preset("default", embedding_init="glove")
