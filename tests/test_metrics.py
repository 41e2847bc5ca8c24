import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from revsent.metrics import classification_metrics, format_report, model_warnings


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


def _result(confusion, labels=("negative", "positive")):
    """classification_metrics' result for the predictions that give ``confusion`` (rows: truth)."""
    y, predicted = [], []
    for t, row in enumerate(confusion):
        for p, count in enumerate(row):
            y += [t] * count
            predicted += [p] * count
    proba = np.eye(len(labels))[predicted] * 0.8 + 0.2 / len(labels)
    return classification_metrics(np.array(y), proba, list(labels))


def test_no_warning_for_a_model_that_tells_classes_apart():
    assert model_warnings(_result([[40, 10], [8, 42]])) == []


def test_a_model_no_better_than_the_majority_class_is_named():
    warnings = model_warnings(_result([[10, 20], [20, 50]]))  # accuracy 0.60, 70% positive
    assert len(warnings) == 1
    assert "accuracy 0.6000 is no better than always answering 'positive' (0.7000 of these 100 reviews)" in warnings[0]


def test_a_model_that_answers_one_class_is_named():
    warnings = model_warnings(_result([[1, 49], [0, 50]]))  # 99% answered positive, half are
    assert any("answers 'positive' for 99.0% of these 100 reviews, though 50.0% are 'positive' "
               "(negative recall 0.020)" in w for w in warnings)


def test_one_class_on_data_that_is_nearly_all_one_class_is_not_a_fault():
    assert model_warnings(_result([[2, 1], [0, 97]])) == []  # 98% answered positive, 97% are
    assert model_warnings({"confusion_matrix": [], "labels": ["a", "b"], "accuracy": 0.0}) == []


def test_training_report_prints_counts_and_warnings(capsys):
    from revsent.cli.fit import _report_training

    metrics = _result([[1, 49], [0, 50]])
    metrics.update(records_read=120, records_kept=100, records_skipped={"empty_text": 5},
                   records_filtered={"neutral_3_stars": 15}, warnings=model_warnings(metrics),
                   epochs_run=1, n_test=100, train_seconds=1.0)
    _report_training(metrics, "m")
    out, err = capsys.readouterr()
    assert "read 120 records: 100 kept, 5 skipped as bad (empty text), 15 dropped (3 stars)" in out
    assert "warning: the model answers 'positive' for 99.0%" in err
    assert model_warnings(_result([[0, 0], [0, 3]])) == []  # one class to score: nothing to tell apart
