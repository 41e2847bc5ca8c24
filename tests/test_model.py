import numpy as np
import pytest
import torch

from revsent.batching import inference_order, make_batch, train_order
from revsent.config import ModelConfig
from revsent.model import SentimentLSTM, class_probabilities
from revsent.ngrams import NgramFeatures, WideTable
from revsent.text import Sequences


def _seqs(*rows):
    lengths = [len(r) for r in rows]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ids = np.array([i for r in rows for i in r], dtype=np.int32)
    return Sequences(ids, offsets)


SEQS = _seqs([5, 6, 7, 8, 9], [1], [2, 3, 4], [9, 8, 7, 6, 5, 4, 3, 2])
CONFIGS = [
    ModelConfig(vocab_size=10, embedding_dim=4, hidden_size=3),
    ModelConfig(vocab_size=10, embedding_dim=4, hidden_size=3, bidirectional=True, layers=2, pooling="max_mean"),
    ModelConfig(vocab_size=10, embedding_dim=4, hidden_size=3, bidirectional=True, pooling="last", dense=(5,)),
    ModelConfig(vocab_size=10, embedding_dim=4, hidden_size=3, pooling="mean", ngram_buckets=50),
    ModelConfig(vocab_size=10, embedding_dim=4, hidden_size=3, pooling="max", init="torch"),
    ModelConfig(vocab_size=10, embedding_dim=4, hidden_size=3, bidirectional=True, pooling="max_mean", members=3),
]


def fill_wide(model, rng):
    """A wide branch with a row, a random idf and random weights for every feature."""
    features = model.cfg.vocab_size + model.cfg.ngram_buckets
    model.set_wide(WideTable(np.arange(features), rng.uniform(1, 3, features).astype(np.float32), 2.0),
                   rng.normal(size=(features, model.n_classes)).astype(np.float32), np.zeros(model.n_classes, np.float32))


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.pooling}-bi{c.bidirectional}-l{c.layers}")
def test_output_shape(cfg):
    model = SentimentLSTM(cfg, 3).eval()
    batch = make_batch(SEQS, np.arange(4), model.table(), NgramFeatures.of(cfg))
    assert model(batch).shape == (4, 3)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.pooling}-bi{c.bidirectional}-l{c.layers}")
def test_padded_batch_equals_each_review_alone(cfg):
    """Padding never changes a review's output: a batch gives what each review gives alone."""
    torch.manual_seed(0)
    model = SentimentLSTM(cfg, 2).eval()
    if cfg.ngram_buckets:  # a wide branch with something in it
        fill_wide(model, np.random.default_rng(0))
    together = class_probabilities(model, SEQS, batch_size=4)
    alone = np.concatenate([class_probabilities(model, SEQS.subset(np.array([i])), batch_size=1) for i in range(4)])
    np.testing.assert_allclose(together, alone, atol=1e-6)


def test_last_pooling_is_the_state_after_the_last_word():
    cfg = ModelConfig(vocab_size=10, embedding_dim=4, hidden_size=3)
    model = SentimentLSTM(cfg, 2).eval()
    batch = make_batch(SEQS, np.arange(4))
    row = int(np.where(batch.index == 2)[0][0])
    ids = torch.tensor([[2, 3, 4]])
    reader = model.readers[0]
    _, (h_n, _) = reader.forward_layers[0](reader.embedding(ids).transpose(0, 1))  # time-major
    expected = reader.out(h_n[0])
    np.testing.assert_allclose(model(batch)[row].detach(), expected[0].detach(), atol=1e-6)


def test_keras_initialisation():
    cfg = ModelConfig(vocab_size=50, embedding_dim=8, hidden_size=6)
    model = SentimentLSTM(cfg, 2).readers[0]
    lstm = model.forward_layers[0]
    h = 6
    bias = lstm.bias_ih_l0.detach()
    assert torch.all(bias[h:2 * h] == 1.0) and torch.all(bias[:h] == 0) and torch.all(bias[2 * h:] == 0)
    assert torch.all(lstm.bias_hh_l0 == 0)
    w_hh = lstm.weight_hh_l0.detach()  # (4H, H): orthonormal columns
    np.testing.assert_allclose((w_hh.T @ w_hh).numpy(), np.eye(h), atol=1e-5)
    limit = (6 / (8 + 4 * h)) ** 0.5
    assert lstm.weight_ih_l0.abs().max() <= limit
    assert model.embedding.weight.abs().max() <= 0.05
    assert torch.all(model.embedding.weight[0] == 0)


def test_recurrent_dropout_only_while_training():
    cfg = ModelConfig(vocab_size=10, embedding_dim=4, hidden_size=8, recurrent_dropout=0.5, dropout=0.0)
    torch.manual_seed(1)
    model = SentimentLSTM(cfg, 2)
    batch = make_batch(SEQS, np.arange(4))
    model.eval()
    a, b = model(batch), model(batch)
    assert torch.equal(a, b)
    model.train()
    c, d = model(batch), model(batch)
    assert not torch.equal(c, d)
    c.sum().backward()
    assert model.readers[0].forward_layers[0].weight_hh_l0.grad is not None


def test_word_dropout_drops_every_occurrence_of_a_word_and_only_while_training():
    cfg = ModelConfig(vocab_size=10, embedding_dim=4, hidden_size=3, dropout=0.0, recurrent_dropout=0.0, word_dropout=0.5)
    torch.manual_seed(3)
    model = SentimentLSTM(cfg, 2)
    seqs = _seqs([5, 6, 5, 7, 5, 6], [6, 8, 6, 9])
    batch = make_batch(seqs, np.arange(2))
    seen = []
    model.readers[0].forward_layers[0].register_forward_hook(lambda module, args, out: seen.append(args[0].detach()))
    table = model.readers[0].embedding.weight.detach()
    model.train()
    for _ in range(20):
        model(batch)
    tokens = batch.tokens.T  # (T, B), as the LSTM reads them
    patterns = set()
    for x in seen:  # (T, B, E): each word either zero everywhere or its row doubled everywhere
        scale = {}
        for t, b in zip(*np.nonzero(tokens.numpy())):
            word = int(tokens[t, b])
            kept = bool(torch.allclose(x[t, b], 2 * table[word]))
            assert kept or bool(torch.all(x[t, b] == 0))
            assert scale.setdefault(word, kept) == kept
        patterns.add(tuple(sorted(scale.items())))
    assert len(patterns) > 1  # a new draw each batch
    model.eval()
    seen.clear()
    model(batch)
    assert torch.equal(seen[0], table[tokens])


def test_empty_review_gets_one_padding_step():
    seqs = _seqs([], [3, 4])
    batch = make_batch(seqs, np.arange(2))
    assert batch.lengths.tolist() == [2, 1]
    probs = class_probabilities(SentimentLSTM(ModelConfig(vocab_size=10, embedding_dim=4, hidden_size=3), 2), seqs)
    assert probs.shape == (2, 2) and np.allclose(probs.sum(1), 1)


def test_train_order_covers_everything_once_and_groups_lengths():
    lengths = np.random.default_rng(0).integers(1, 500, size=1000)
    batches = train_order(lengths, 32, np.random.default_rng(1), pool=10)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    random_spread = np.mean([lengths[b].max() - lengths[b].min() for b in np.array_split(np.arange(1000), 32)])
    assert spread < random_spread / 5


def test_inference_order_sorted_by_length():
    lengths = np.array([5, 1, 9, 3])
    assert [b.tolist() for b in inference_order(lengths, 2)] == [[1, 3], [0, 2]]


def test_wide_branch_adds_its_log_odds_only_when_predicting():
    cfg = ModelConfig(vocab_size=10, embedding_dim=4, hidden_size=3, ngram_buckets=20, ngram_hash=1)  # hash 1: written out below
    model = SentimentLSTM(cfg, 2)
    features = cfg.vocab_size + cfg.ngram_buckets
    model.set_wide(WideTable(np.arange(features), np.ones(features, np.float32), 1.0),
                   np.stack([np.zeros(features), np.ones(features)], axis=1).astype(np.float32), np.array([0.0, 0.5]))
    lstm_only = model.eval()(make_batch(SEQS, np.arange(4)))
    with_wide = model(make_batch(SEQS, np.arange(4), model.table(), NgramFeatures.of(cfg)))
    delta = (with_wide - lstm_only).detach()
    assert torch.all(delta[:, 0] == 0)
    # each review's unit-length TF-IDF vector with idf 1: weights 1 + log(count), summed by the ones
    batch = make_batch(SEQS, np.arange(4))
    expected = []
    for i in batch.index:
        ids = SEQS[i].astype(np.int64)
        _, counts = np.unique(np.concatenate([ids, 10 + (ids[:-1] * 1_000_003 + ids[1:]) % 20]), return_counts=True)
        w = 1 + np.log(counts)
        expected.append(w.sum() / np.sqrt((w * w).sum()) + 0.5)
    np.testing.assert_allclose(delta[:, 1].numpy(), expected, rtol=1e-5)


def test_inference_batches_of_long_reviews_hold_fewer_reviews():
    lengths = np.array([5, 1000, 3, 1000, 1000, 2])
    batches = inference_order(lengths, batch_size=4, max_tokens=2000)
    assert [b.tolist() for b in batches][0] == [5, 2, 0] and len(batches) == 3  # 2 reviews of 1000 fill the budget
    assert all(len(b) * lengths[b].max() <= 2000 for b in batches)
    assert sorted(i for b in batches for i in b.tolist()) == list(range(6))


def test_a_few_mixed_reviews_are_cut_where_padding_costs_more_than_a_call():
    """A micro-batch of 20 short reviews and 2 long ones fits one batch, but padding the short ones
    to 300 steps costs more than a second call: they go apart. Equal lengths stay together."""
    lengths = np.array([300] + [10] * 20 + [300])
    assert sorted(len(b) for b in inference_order(lengths, batch_size=64)) == [2, 20]
    assert [len(b) for b in inference_order(np.full(22, 300), batch_size=64)] == [22]
    assert sorted(len(b) for b in inference_order(np.full(22, 300), batch_size=8)) == [6, 8, 8]


def test_weights_saved_before_readers_existed_load_as_reader_0():
    """Models written by earlier releases name their LSTM's weights ``embedding.weight``...: they load."""
    cfg = ModelConfig(vocab_size=10, embedding_dim=4, hidden_size=3, ngram_buckets=20)
    model = SentimentLSTM(cfg, 2).eval()
    rng = np.random.default_rng(1)
    idf, weight = rng.uniform(1, 3, 30).astype(np.float32), rng.normal(size=(30, 2)).astype(np.float32)
    idf[[3, 17]], weight[[3, 17]] = 3.0, 0.0  # features no training review had: the largest idf, no weight
    model.set_wide(WideTable.dense(idf, weight), weight[WideTable.dense(idf, weight).keys], np.array([0.1, -0.1]))
    assert len(model.wide_keys) == 28
    legacy = {k.replace("readers.0.", ""): v.clone() for k, v in model.state_dict().items()
              if k not in ("wide_keys", "wide_idf", "wide_unseen", "wide_weight")}
    legacy.update(wide_idf=torch.from_numpy(idf), wide_weight=torch.from_numpy(weight))  # dense, as they were
    assert "embedding.weight" in legacy and "wide_weight" in legacy
    again = SentimentLSTM(cfg, 2).eval()
    again.load_state_dict(legacy)
    assert torch.equal(again.wide_keys, model.wide_keys)
    batch = make_batch(SEQS, np.arange(4), model.table(), NgramFeatures.of(cfg))
    assert torch.equal(model(batch), again(batch))


def test_saved_weights_shape_the_model_they_load_into():
    """The embedding holds the ids the vocabulary gives and the wide table what the data filled:
    a model built to the config's maxima takes weights of any such size."""
    cfg = ModelConfig(vocab_size=1000, embedding_dim=4, hidden_size=3, ngram_buckets=5000)
    small = SentimentLSTM(cfg, 2, words=10)  # SEQS has ids 1..9
    small.set_wide(WideTable(np.array([1, 5, 1200]), np.ones(3, np.float32), 2.0), np.ones((3, 2), np.float32),
                   np.zeros(2, np.float32))
    assert small.readers[0].embedding.weight.shape == (10, 4) and small.wide_weight.shape == (3, 2)
    again = SentimentLSTM(cfg, 2)
    again.load_state_dict(small.state_dict())
    assert again.words == 10 and again.wide_keys.tolist() == [1, 5, 1200]
    batch = make_batch(SEQS, np.arange(4), small.table(), NgramFeatures.of(cfg))
    assert torch.equal(small.eval()(batch), again.eval()(batch))


def test_max_len_cuts_the_lstm_input_and_the_ngrams_read_the_whole_review():
    from revsent.ngrams import tfidf
    from revsent.text import Cut

    cfg = ModelConfig(vocab_size=10, embedding_dim=4, hidden_size=3, ngram_buckets=50, max_len=3)
    model = SentimentLSTM(cfg, 2).eval()
    fill_wide(model, np.random.default_rng(0))
    table, features, cut = model.table(), NgramFeatures.of(cfg), Cut.of(cfg)
    batch = make_batch(SEQS, np.arange(4), table, features, cut=cut)
    assert batch.tokens.shape == (4, 3) and batch.lengths.tolist() == [3, 3, 3, 1]
    row = {int(i): r for r, i in enumerate(batch.index)}
    assert batch.tokens[row[3]].tolist() == [4, 3, 2] and batch.tokens[row[0]].tolist() == [7, 8, 9]  # tails
    whole, _, _ = tfidf(SEQS, batch.index, table, features)
    np.testing.assert_array_equal(batch.ngrams.numpy(), whole)  # the n-grams of the whole reviews
    # the models before whole reviews: the n-grams of what the cut leaves
    legacy = NgramFeatures.of(ModelConfig(**{**cfg.__dict__, "ngram_whole": False}))
    old = make_batch(SEQS, np.arange(4), table, legacy, cut=cut)
    cut_ids, _, _ = tfidf(cut(SEQS.take(old.index)), np.arange(4), table, legacy)
    np.testing.assert_array_equal(old.ngrams.numpy(), cut_ids)
    assert len(cut_ids) < len(whole)
    # predictions batch the same way: each review alone gives what the batch gives
    together = class_probabilities(model, SEQS, batch_size=4)
    alone = np.concatenate([class_probabilities(model, SEQS.subset(np.array([i])), batch_size=1) for i in range(4)])
    np.testing.assert_allclose(together, alone, atol=1e-6)
