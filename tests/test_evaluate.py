import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from revsent.evaluate import classification_metrics, format_report, plot_confusion, plot_history, tfidf_baseline


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


def test_tfidf_baseline_learns():
    texts = ["good great fine", "great good lovely", "bad awful poor", "awful bad terrible"] * 5
    y = np.array([1, 1, 0, 0] * 5)
    m = tfidf_baseline(texts, y, ["good lovely", "terrible poor"], np.array([1, 0]), ["neg", "pos"])
    assert m["accuracy"] == 1.0


def test_plots_are_png(tmp_path):
    plot_history([{"epoch": 1, "train_loss": .5, "val_loss": .6, "train_accuracy": .7, "val_accuracy": .6},
                  {"epoch": 2, "train_loss": .4, "val_loss": .5, "train_accuracy": .8, "val_accuracy": .7}],
                 tmp_path / "h.png")
    plot_confusion([[5, 1], [2, 4]], ["neg", "pos"], tmp_path / "c.png")
    for name in ("h.png", "c.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_history_plot_draws_the_running_mean_where_there_is_one(tmp_path, monkeypatch):
    import revsent.evaluate as evaluate

    figures = []
    monkeypatch.setattr(evaluate, "_save_figure", lambda fig, path: figures.append(fig))
    rows = [{"epoch": 1, "train_loss": .5, "val_loss": .6, "train_accuracy": .7, "val_accuracy": .6},
            {"epoch": 2, "train_loss": .4, "val_loss": .5, "train_accuracy": .8, "val_accuracy": .7,
             "val_loss_mean": .45, "val_accuracy_mean": .75}]
    plot_history(rows, tmp_path / "h.png")
    plot_history(rows[:1], tmp_path / "one.png")
    loss_axis = figures[0].axes[0]
    mean = [line for line in loss_axis.lines if "mean" in line.get_label()]
    assert len(mean) == 1 and list(mean[0].get_xdata()) == [2] and list(mean[0].get_ydata()) == [.45]
    assert not [line for line in figures[1].axes[0].lines if "mean" in line.get_label()]
