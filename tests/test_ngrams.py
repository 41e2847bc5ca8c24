import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from revsent.ngrams import NGRAM_PRIME, batch_grams, fit_idf, fit_linear, out_of_fold_logits, tfidf
from revsent.text import Sequences

DOCS = [[1, 2, 3, 2], [3, 4], [5], [], [2, 2, 2, 1, 5]]
VOCAB, BUCKETS = 6, 50


def _seqs(rows):
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    return Sequences(np.array([i for r in rows for i in r], dtype=np.int32), offsets)


def grams(ids, vocab_size, buckets):
    """One review's features, written out plainly: word ids, then hashed bigram slots."""
    ids = [int(i) for i in ids]
    return ids + [vocab_size + (a * NGRAM_PRIME + b) % buckets for a, b in zip(ids, ids[1:])]


def test_batch_grams_are_words_then_hashed_bigrams_within_each_review():
    seqs = _seqs(DOCS)
    rows, features, counts = batch_grams(seqs, np.arange(len(DOCS)), VOCAB, BUCKETS)
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
    idf = fit_idf(seqs, VOCAB, BUCKETS)
    ids, weights, offsets = tfidf(seqs, np.arange(len(DOCS)), idf, VOCAB)
    ours = np.zeros((len(DOCS), VOCAB + BUCKETS))
    for row in range(len(DOCS)):
        ours[row, ids[offsets[row]:offsets[row + 1]]] = weights[offsets[row]:offsets[row + 1]]
    vectorizer = TfidfVectorizer(analyzer=lambda doc: [str(g) for g in grams(doc, VOCAB, BUCKETS)],
                                 sublinear_tf=True)
    theirs = vectorizer.fit_transform(DOCS).toarray()
    columns = [int(name) for name in vectorizer.get_feature_names_out()]
    np.testing.assert_allclose(ours[:, columns], theirs, rtol=1e-5, atol=1e-7)
    assert np.count_nonzero(ours) == np.count_nonzero(theirs)


def test_fit_linear_separates_classes():
    rows = [[1, 2, 1], [1, 2], [2, 1, 1], [3, 4, 3], [4, 3], [3, 3, 4]]
    y = np.array([1, 1, 1, 0, 0, 0])
    idf, weight, bias = fit_linear(_seqs(rows), y, 2, VOCAB, BUCKETS, c=10.0, seed=0)
    assert weight.shape == (VOCAB + BUCKETS, 2)
    odds = weight[:, 1] - weight[:, 0]  # log-odds of the positive class per feature
    assert odds[1] > 0 > odds[3]
    ids, w, off = tfidf(_seqs(rows), np.arange(6), idf, VOCAB)
    scores = np.add.reduceat(w * odds[ids], off[:-1]) + bias[1] - bias[0]
    assert ((scores > 0) == y.astype(bool)).all()


def test_fit_linear_three_classes():
    rows = [[1, 1], [1], [2, 2], [2], [3, 3], [3]]
    _, weight, bias = fit_linear(_seqs(rows), np.array([0, 0, 1, 1, 2, 2]), 3, VOCAB, BUCKETS, c=10.0, seed=0)
    assert weight[1].argmax() == 0 and weight[2].argmax() == 1 and weight[3].argmax() == 2


def test_out_of_fold_logits_come_from_models_that_did_not_see_the_review():
    # Word 1 means positive everywhere except in one review, which a model that saw it would
    # fit; the out-of-fold model has not, so that review still gets the positive score.
    rows = [[1, 2]] * 20 + [[3, 4]] * 20 + [[1, 5]]
    y = np.array([1] * 20 + [0] * 20 + [0])
    logits = out_of_fold_logits(_seqs(rows), y, 2, VOCAB, BUCKETS, c=10.0, seed=0, folds=2)
    odds = logits[:, 1] - logits[:, 0]
    assert logits.shape == (41, 2)
    assert odds[:20].min() > 0 > odds[20:40].max()
    assert odds[40] > 0


def test_class_weights_move_the_decision_towards_the_weighted_class():
    rows = [[1, 2]] * 3 + [[1, 3]] + [[4]] * 8
    y = np.array([1, 1, 1, 0] + [0] * 4 + [1] * 4)  # 7 positive, 5 negative
    seqs = _seqs(rows)
    _, _, plain = fit_linear(seqs, y, 2, VOCAB, BUCKETS, c=10.0, seed=0)
    _, _, weighted = fit_linear(seqs, y, 2, VOCAB, BUCKETS, c=10.0, seed=0, class_weights=np.array([3.0, 1.0]))
    # Unweighted, the prior leans positive (the majority); negatives counted 3x make it lean negative.
    assert plain[1] - plain[0] > 0 > weighted[1] - weighted[0]
