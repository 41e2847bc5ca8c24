"""A TF-IDF + logistic regression baseline, the yardstick for what the LSTM adds over n-grams.

Training and ``evaluate`` fit it on the model's own training reviews and score it on the same
held-out reviews, so its figures sit beside the model's in one report.
"""
from __future__ import annotations

import pickle
from typing import Sequence

import numpy as np

from .metrics import classification_metrics

BASELINE_MAX = 500_000  # training reviews scikit-learn's TF-IDF + LR baseline may hold in memory
BASELINE_CS = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)  # C values tried on the validation slice
BASELINE_C = 10.0  # without a validation slice


def tfidf_baseline(train_texts: Sequence[str], train_y: np.ndarray, test_texts: Sequence[str],
                   test_y: np.ndarray, classes: list[str], seed: int = 36,
                   val: tuple[Sequence[str], np.ndarray] | None = None) -> dict:
    """TF-IDF (1-2 grams) + logistic regression fitted on ``train_*``, scored once on ``test_*``.

    With ``val`` (texts, labels), C is the one of BASELINE_CS with the best accuracy there (the
    regression is still fitted on ``train_*`` alone, as revsent's model is); else BASELINE_C.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2 if len(train_texts) >= 100 else 1,
                                 max_features=500_000, sublinear_tf=True)
    features = vectorizer.fit_transform(train_texts)
    fit = lambda c: LogisticRegression(C=c, max_iter=1000, random_state=seed).fit(features, train_y)  # noqa: E731
    chosen, scores = BASELINE_C, {}
    if val is not None and len(val[0]):
        val_features = vectorizer.transform(val[0])
        scores = {c: float(fit(c).score(val_features, val[1])) for c in BASELINE_CS}
        chosen = max(scores, key=lambda c: (scores[c], -abs(np.log(c / BASELINE_C))))  # ties: nearest the default
    classifier = fit(chosen)
    proba = np.zeros((len(test_texts), len(classes)))
    proba[:, classifier.classes_] = classifier.predict_proba(vectorizer.transform(test_texts))
    result = classification_metrics(test_y, proba, classes)
    result["C"] = chosen
    # its size as saved the usual way (pickled, without the pruned terms scikit-learn keeps for inspection)
    vectorizer.stop_words_ = None
    result["model_bytes"] = len(pickle.dumps((vectorizer, classifier), protocol=pickle.HIGHEST_PROTOCOL))
    if scores:
        result["validation_accuracy_by_C"] = {str(c): score for c, score in scores.items()}
    return result
