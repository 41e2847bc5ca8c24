import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

import pytest

from revsent import ngrams
from revsent.ngrams import (NGRAM_PRIME, NgramFeatures, WideTable, batch_grams, document_frequencies, fit_linear,
                            fit_table, linear_logits, nb_ratios, out_of_fold_logits, tfidf)
from revsent.text import Sequences

DOCS = [[1, 2, 3, 2], [3, 4], [5], [], [2, 2, 2, 1, 5]]
VOCAB, BUCKETS = 6, 50
WIDE = NgramFeatures(VOCAB, BUCKETS)


def dense(table, weight):
    """A table's weights over every feature id (the features without a row: 0)."""
    full = np.zeros((VOCAB + BUCKETS, weight.shape[1]))
    full[table.keys] = weight
    return full


def _seqs(rows):
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    return Sequences(np.array([i for r in rows for i in r], dtype=np.int32), offsets)


M64 = (1 << 64) - 1


def mix(prefix, word):
    """Hash 2 in plain Python integers: (prefix * K1 xor word) * K2, folded."""
    h = (((prefix * 0x9E3779B97F4A7C15) & M64) ^ word) * 0xBF58476D1CE4E5B9 & M64
    return h ^ (h >> 31)


def grams(ids, vocab_size, buckets, order=2):
    """One review's features, written out plainly: word ids, then hashed bigram (and trigram) slots."""
    ids = [int(i) for i in ids]
    pairs = [mix(a, b) for a, b in zip(ids, ids[1:])]
    triples = [mix(p, c) for p, c in zip(pairs, ids[2:])] if order == 3 else []
    return ids + [vocab_size + h % buckets for h in pairs + triples]


def test_batch_grams_are_words_then_hashed_bigrams_within_each_review():
    seqs = _seqs(DOCS)
    rows, features, counts = batch_grams(seqs, np.arange(len(DOCS)), WIDE)
    for row, doc in enumerate(DOCS):
        expected = {}
        for g in grams(doc, VOCAB, BUCKETS):
            expected[g] = expected.get(g, 0) + 1
        got = {int(f): int(c) for r, f, c in zip(rows, features, counts) if r == row}
        assert got == expected  # no bigram spans two reviews
    assert grams([1, 2], VOCAB, BUCKETS)[2] != grams([2, 1], VOCAB, BUCKETS)[2]
    assert np.all(np.diff(rows) >= 0)


def test_tfidf_equals_scikit_learn_sublinear():
    seqs = _seqs(DOCS)
    table = fit_table(seqs, WIDE)
    ids, weights, offsets = tfidf(seqs, np.arange(len(DOCS)), table, WIDE)
    ours = np.zeros((len(DOCS), VOCAB + BUCKETS))
    for row in range(len(DOCS)):
        ours[row, table.keys[ids[offsets[row]:offsets[row + 1]]]] = weights[offsets[row]:offsets[row + 1]]
    vectorizer = TfidfVectorizer(analyzer=lambda doc: [str(g) for g in grams(doc, VOCAB, BUCKETS)],
                                 sublinear_tf=True)
    theirs = vectorizer.fit_transform(DOCS).toarray()
    columns = [int(name) for name in vectorizer.get_feature_names_out()]
    np.testing.assert_allclose(ours[:, columns], theirs, rtol=1e-5, atol=1e-7)
    assert np.count_nonzero(ours) == np.count_nonzero(theirs)


def test_fit_linear_separates_classes():
    rows = [[1, 2, 1], [1, 2], [2, 1, 1], [3, 4, 3], [4, 3], [3, 3, 4]]
    y = np.array([1, 1, 1, 0, 0, 0])
    table, weight, bias = fit_linear(_seqs(rows), y, 2, WIDE, c=10.0, seed=0)
    assert weight.shape == (len(table.keys), 2) and len(table.keys) == 4 + 6  # 4 words, 6 bigrams: what the data holds
    odds = dense(table, weight)[:, 1] - dense(table, weight)[:, 0]  # log-odds of the positive class per feature
    assert odds[1] > 0 > odds[3]
    ids, w, off = tfidf(_seqs(rows), np.arange(6), table, WIDE)
    scores = np.add.reduceat(w * (weight[:, 1] - weight[:, 0])[ids], off[:-1]) + bias[1] - bias[0]
    assert ((scores > 0) == y.astype(bool)).all()


def test_fit_linear_three_classes():
    rows = [[1, 1], [1], [2, 2], [2], [3, 3], [3]]
    table, weight, bias = fit_linear(_seqs(rows), np.array([0, 0, 1, 1, 2, 2]), 3, WIDE, c=10.0, seed=0)
    weight = dense(table, weight)
    assert weight[1].argmax() == 0 and weight[2].argmax() == 1 and weight[3].argmax() == 2


def test_out_of_fold_logits_come_from_models_that_did_not_see_the_review():
    # Word 1 means positive everywhere except in one review, which a model that saw it would
    # fit; the out-of-fold model has not, so that review still gets the positive score.
    rows = [[1, 2]] * 20 + [[3, 4]] * 20 + [[1, 5]]
    y = np.array([1] * 20 + [0] * 20 + [0])
    logits = out_of_fold_logits(_seqs(rows), y, 2, WIDE, c=10.0, seed=0, folds=2)
    odds = logits[:, 1] - logits[:, 0]
    assert logits.shape == (41, 2)
    assert odds[:20].min() > 0 > odds[20:40].max()
    assert odds[40] > 0


def test_class_weights_move_the_decision_towards_the_weighted_class():
    rows = [[1, 2]] * 3 + [[1, 3]] + [[4]] * 8
    y = np.array([1, 1, 1, 0] + [0] * 4 + [1] * 4)  # 7 positive, 5 negative
    seqs = _seqs(rows)
    _, _, plain = fit_linear(seqs, y, 2, WIDE, c=10.0, seed=0)
    _, _, weighted = fit_linear(seqs, y, 2, WIDE, c=10.0, seed=0, class_weights=np.array([3.0, 1.0]))
    # Unweighted, the prior leans positive (the majority); negatives counted 3x make it lean negative.
    assert plain[1] - plain[0] > 0 > weighted[1] - weighted[0]


def test_trigrams_are_hashed_within_each_review():
    wide = NgramFeatures(VOCAB, BUCKETS, order=3)
    rows, features, counts = batch_grams(_seqs(DOCS), np.arange(len(DOCS)), wide)
    for row, doc in enumerate(DOCS):
        expected = {}
        for g in grams(doc, VOCAB, BUCKETS, order=3):
            expected[g] = expected.get(g, 0) + 1
        assert {int(f): int(c) for r, f, c in zip(rows, features, counts) if r == row} == expected


def test_hash_2_spreads_bigrams_where_hash_1_crowded_them():
    """Hash 1 (the first releases', kept for their models) is (a * NGRAM_PRIME + b) % buckets;
    with 2M buckets NGRAM_PRIME is about half of them, so the bigrams of a 2,000-word vocabulary
    fell into a few thousand slots. Hash 2 spreads them over the buckets."""
    a, b = np.meshgrid(np.arange(1, 2001), np.arange(1, 2001))
    seqs = _seqs([[int(x), int(y)] for x, y in zip(a.ravel()[::7], b.ravel()[::7])])  # 571k bigrams, all different
    index = np.arange(len(seqs))
    old = NgramFeatures(2001, 2_000_000, hash=1)
    _, features, _ = batch_grams(seqs, index, old)
    slots_1 = np.unique(features[features >= 2001])
    assert np.array_equal(np.sort(np.unique((a.ravel()[::7] * NGRAM_PRIME + b.ravel()[::7]) % 2_000_000 + 2001)), slots_1)
    _, features, _ = batch_grams(seqs, index, NgramFeatures(2001, 2_000_000))
    slots_2 = np.unique(features[features >= 2001])
    assert len(slots_1) < 20_000 and len(slots_2) > 480_000  # 571k bigrams: ~12k slots against ~500k


def test_nb_ratios_match_nbsvm():
    """Wang & Manning's r = log((p / |p|_1) / (q / |q|_1)) with p, q the smoothed binary counts."""
    class_df = np.array([[3, 0], [0, 2], [1, 1], [0, 0]])  # (F, C): reviews of each class holding each feature
    r = nb_ratios(class_df)
    p, q = class_df[:, 1] + 1.0, class_df[:, 0] + 1.0
    np.testing.assert_allclose(r[:, 1], np.log(p / p.sum()) - np.log(q / q.sum()), rtol=1e-6)
    np.testing.assert_allclose(r[:, 0], -r[:, 1], rtol=1e-6)  # two classes: one ratio, either sign


def test_nb_weighting_counts_presence_and_folds_the_ratios_into_the_weights():
    rows = [[1, 2, 1, 1], [1, 2], [2, 1, 1], [3, 4, 3], [4, 3], [3, 3, 4]]
    y = np.array([1, 1, 1, 0, 0, 0])
    wide = NgramFeatures(VOCAB, BUCKETS, order=3, weighting="nb")
    seqs = _seqs(rows)
    table, weight, bias = fit_linear(seqs, y, 2, wide, c=10.0, seed=0)
    assert np.all(table.idf == 1.0) and table.unseen == 1.0
    ids, w, off = tfidf(seqs, np.arange(6), table, wide)
    assert np.all(w == 1.0) and off[1] - off[0] == len(set(grams(rows[0], VOCAB, BUCKETS))) + 2  # 2 trigrams
    odds = dense(table, weight)[:, 1] - dense(table, weight)[:, 0]
    assert odds[1] > 0 > odds[3] and 5 not in table.keys  # word 5 never occurs: no row
    scores = np.add.reduceat((weight[:, 1] - weight[:, 0])[ids], off[:-1]) + bias[1] - bias[0]
    assert ((scores > 0) == y.astype(bool)).all()
    # the folded weights are the fitted ones times the ratios: a feature in both classes alike has ratio 0
    both = [[1, 5], [2, 5], [3, 5], [4, 5]]
    table, weight, _ = fit_linear(_seqs(both), np.array([1, 1, 0, 0]), 2, wide, c=10.0, seed=0)
    assert np.allclose(dense(table, weight)[5], 0.0, atol=1e-6)


def test_a_dense_table_of_the_first_releases_gives_the_same_vectors_sparse():
    seqs = _seqs(DOCS[:3])
    table = fit_table(seqs, WIDE)
    idf = np.full(VOCAB + BUCKETS, table.unseen, dtype=np.float32)  # the dense layout: every feature has a row
    idf[table.keys] = table.idf
    weight = np.zeros((VOCAB + BUCKETS, 2), dtype=np.float32)
    weight[table.keys] = np.random.default_rng(0).normal(size=(len(table.keys), 2))
    from_dense = WideTable.dense(idf, weight)
    assert np.array_equal(from_dense.keys, table.keys) and from_dense.unseen == pytest.approx(table.unseen)
    new = _seqs(DOCS)  # reviews with features no training review had: they count in the length only
    np.testing.assert_allclose(linear_logits(new, np.arange(5), from_dense, weight[from_dense.keys], np.zeros(2), WIDE),
                               linear_logits(new, np.arange(5), table, weight[table.keys], np.zeros(2), WIDE), rtol=1e-6)
    # and both are what the dense layout computed: every feature's weight, the unseen ones' 0
    rows, features, counts = batch_grams(new, np.arange(5), WIDE)
    values = (1 + np.log(counts)) * idf[features]
    values /= np.sqrt(np.bincount(rows, values ** 2, minlength=5))[rows]
    expected = np.stack([np.bincount(rows, values * weight[features, c], minlength=5) for c in range(2)], axis=1)
    np.testing.assert_allclose(linear_logits(new, np.arange(5), table, weight[table.keys], np.zeros(2), WIDE),
                               expected, rtol=1e-5, atol=1e-7)


def test_min_df_keeps_the_features_of_enough_reviews_and_counts_the_rest_in_the_length():
    seqs = _seqs([[1, 2], [1, 2], [1, 3]])
    table = fit_table(seqs, WIDE, min_df=2)
    df = document_frequencies(seqs, WIDE)
    assert set(table.keys.tolist()) == set(np.flatnonzero(df >= 2).tolist())  # word 1, word 2, bigram (1, 2)
    ids, weights, offsets = tfidf(seqs, np.array([2]), table, WIDE)
    assert table.keys[ids].tolist() == [1]  # word 3 and bigram (1, 3) have no row...
    idf = dict(zip(table.keys.tolist(), table.idf.tolist()))
    assert weights[0] == pytest.approx(idf[1] / np.sqrt(idf[1] ** 2 + 2 * table.unseen ** 2))  # ...but a length


@pytest.fixture(scope="module")
def imdb_seqs():
    from revsent.config import Config
    from revsent.data import read_labelled
    from revsent.text import TextEncoder

    data = read_labelled(Config.from_preset("seed", paths=("imdb",), limit=600))
    encoder = TextEncoder.fit(data.texts, 20000, max_len=200)
    return encoder.encode(data.texts), data.y, NgramFeatures(20000, 200_000)


def objective(seqs, y, table, weight, bias, wide, c):
    logits = linear_logits(seqs, np.arange(len(seqs)), table, weight, bias, wide).astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    loss = -(logits[np.arange(len(y)), y] - np.log(np.exp(logits).sum(axis=1))).mean()
    return loss + (weight.astype(np.float64) ** 2).sum() / (2 * c * len(y))


def test_the_exact_and_the_streamed_solver_minimise_one_objective(imdb_seqs, monkeypatch):
    """scikit-learn's lbfgs where the features fit in memory, minibatch Adam beyond: on 600 real
    reviews both reach the same objective (the exact one at least as low) and agree on the labels."""
    seqs, y, wide = imdb_seqs
    table, exact_w, exact_b = fit_linear(seqs, y, 2, wide, c=30.0, seed=0)
    monkeypatch.setattr(ngrams, "EXACT_MAX_NNZ", 0)
    streamed_table, adam_w, adam_b = fit_linear(seqs, y, 2, wide, c=30.0, seed=0)
    assert np.array_equal(streamed_table.keys, table.keys)
    exact, adam = (objective(seqs, y, table, w, b, wide, 30.0) for w, b in ((exact_w, exact_b), (adam_w, adam_b)))
    assert exact <= adam + 1e-4 and adam < exact * 1.15, (exact, adam)
    test = seqs.take(np.arange(len(seqs)))
    agree = (linear_logits(test, np.arange(len(seqs)), table, exact_w, exact_b, wide).argmax(1)
             == linear_logits(test, np.arange(len(seqs)), table, adam_w, adam_b, wide).argmax(1)).mean()
    assert agree > 0.97


def test_choosing_c_warm_started_reaches_each_c_s_own_optimum(imdb_seqs):
    """The C grid is fitted in ascending order, each fit starting from the one before: the chosen
    C's weights are those a fit from scratch finds (the problem is convex), within the solver's tolerance."""
    seqs, y, wide = imdb_seqs
    train, val = np.arange(500), np.arange(500, 600)
    (table, weight, bias), c, scores = ngrams.fit_choosing_c(seqs.take(train), y[train], 2, wide, (10.0, 1.0, 0.3),
                                                             (seqs.take(val), y[val]))
    assert set(scores) == {0.3, 1.0, 10.0} and scores[c] == max(scores.values())
    cold_table, cold_w, cold_b = fit_linear(seqs.take(train), y[train], 2, wide, c=c, seed=0)
    assert np.array_equal(cold_table.keys, table.keys)
    warm, cold = (objective(seqs.take(train), y[train], table, w, b, wide, c) for w, b in ((weight, bias), (cold_w, cold_b)))
    assert abs(warm - cold) < 1e-4 * cold, (warm, cold)
