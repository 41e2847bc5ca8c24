import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from revsent.metrics import classification_metrics, format_report


def test_metrics_agree_with_scikit_learn():
    y = np.array([0, 0, 1, 1, 1, 0])
    proba = np.array([[.9, .1], [.4, .6], [.2, .8], [.3, .7], [.6, .4], [.8, .2]])
    m = classification_metrics(y, proba, ["neg", "pos"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["f1_macro"] == pytest.approx(f1_score(y, proba.argmax(1), average="macro"))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, proba[:, 1]))
    assert m["confusion_matrix"] == [[2, 1], [1, 2]]
    assert m["per_class"]["pos"]["support"] == 3 and m["n"] == 6


def test_three_classes_have_no_roc_auc():
    proba = np.eye(3)[[0, 1, 2, 2]]
    m = classification_metrics(np.array([0, 1, 2, 1]), proba, ["1", "2", "3"])
    assert "roc_auc" not in m and m["confusion_matrix"][1] == [0, 1, 1]


def test_report_shows_baseline_column():
    proba = np.array([[.9, .1], [.2, .8]])
    m = classification_metrics(np.array([0, 1]), proba, ["neg", "pos"])
    base = classification_metrics(np.array([0, 1]), np.array([[.2, .8], [.9, .1]]), ["neg", "pos"])  # all wrong
    text = format_report(m, base)
    assert f"{'accuracy':20s}{1.0:10.4f}{0.0:12.4f}" in text.splitlines()
    assert "confusion matrix" in text and "TF-IDF+LR" not in format_report(m)
