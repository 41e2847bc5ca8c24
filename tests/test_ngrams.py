import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from revsent.ngrams import fit_idf, fit_linear, grams, tfidf
from revsent.text import Sequences

DOCS = [[1, 2, 3, 2], [3, 4], [5], [], [2, 2, 2, 1, 5]]
VOCAB, BUCKETS = 6, 50


def _seqs(rows):
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    return Sequences(np.array([i for r in rows for i in r], dtype=np.int32), offsets)


def test_grams_are_words_then_hashed_bigrams():
    g = grams(np.array([1, 2, 3]), VOCAB, BUCKETS)
    assert g[:3].tolist() == [1, 2, 3]
    assert all(VOCAB <= x < VOCAB + BUCKETS for x in g[3:]) and len(g) == 5
    assert grams(np.array([1, 2]), VOCAB, BUCKETS)[2] != grams(np.array([2, 1]), VOCAB, BUCKETS)[2]


def test_tfidf_equals_scikit_learn_sublinear():
    seqs = _seqs(DOCS)
    idf = fit_idf(seqs, VOCAB, BUCKETS)
    ids, weights, offsets = tfidf(seqs, np.arange(len(DOCS)), idf, VOCAB)
    ours = np.zeros((len(DOCS), VOCAB + BUCKETS))
    for row in range(len(DOCS)):
        ours[row, ids[offsets[row]:offsets[row + 1]]] = weights[offsets[row]:offsets[row + 1]]
    vectorizer = TfidfVectorizer(analyzer=lambda doc: [str(g) for g in grams(np.array(doc, dtype=np.int64), VOCAB, BUCKETS)],
                                 sublinear_tf=True)
    theirs = vectorizer.fit_transform(DOCS).toarray()
    columns = [int(name) for name in vectorizer.get_feature_names_out()]
    np.testing.assert_allclose(ours[:, columns], theirs, rtol=1e-5, atol=1e-7)
    assert np.count_nonzero(ours) == np.count_nonzero(theirs)


def test_fit_linear_separates_classes():
    rows = [[1, 2, 1], [1, 2], [2, 1, 1], [3, 4, 3], [4, 3], [3, 3, 4]]
    y = np.array([1, 1, 1, 0, 0, 0])
    idf, weight, bias = fit_linear(_seqs(rows), y, 2, VOCAB, BUCKETS, c=10.0, seed=0)
    assert weight.shape == (VOCAB + BUCKETS, 2) and np.all(weight[:, 0] == 0)
    assert weight[1, 1] > 0 > weight[3, 1]
    ids, w, off = tfidf(_seqs(rows), np.arange(6), idf, VOCAB)
    scores = np.add.reduceat(w * weight[ids, 1], off[:-1]) + bias[1]
    assert ((scores > 0) == y.astype(bool)).all()


def test_fit_linear_three_classes():
    rows = [[1, 1], [1], [2, 2], [2], [3, 3], [3]]
    _, weight, bias = fit_linear(_seqs(rows), np.array([0, 0, 1, 1, 2, 2]), 3, VOCAB, BUCKETS, c=10.0, seed=0)
    assert weight[1].argmax() == 0 and weight[2].argmax() == 1 and weight[3].argmax() == 2


def test_out_of_fold_logits_come_from_models_that_did_not_see_the_review():
    from revsent.ngrams import out_of_fold_logits

    # Word 1 means positive everywhere except in one review, which a model that saw it would
    # fit; the out-of-fold model has not, so that review still gets the positive score.
    rows = [[1, 2]] * 20 + [[3, 4]] * 20 + [[1, 5]]
    y = np.array([1] * 20 + [0] * 20 + [0])
    logits = out_of_fold_logits(_seqs(rows), y, 2, VOCAB, BUCKETS, c=10.0, seed=0, folds=2)
    assert logits.shape == (41, 2) and np.all(logits[:, 0] == 0)
    assert logits[:20, 1].min() > 0 > logits[20:40, 1].max()
    assert logits[40, 1] > 0
