import numpy as np
import pytest

from revsent import Classifier
from revsent.errors import DataError, NotFittedError

from .conftest import NEGATIVE, POSITIVE, TINY

TEXTS, LABELS = POSITIVE * 4 + NEGATIVE * 4, [1] * 24 + [0] * 24


def test_overfit_save_reload_same_predictions(tmp_path):
    """spaCy's test_overfitting_IO: learn a tiny set, save, reload, same answers."""
    clf = Classifier(preset="seed", **TINY)
    assert clf.fit(TEXTS, LABELS) is clf
    assert clf.classes_ == ["0", "1"]
    assert clf.predict(POSITIVE + NEGATIVE) == ["1"] * 6 + ["0"] * 6
    proba = clf.predict_proba(["great friendly food", "rude awful staff"])
    assert proba.shape == (2, 2) and np.allclose(proba.sum(1), 1)
    clf.save(tmp_path / "m")
    again = Classifier.load(tmp_path / "m")
    np.testing.assert_allclose(again.predict_proba(TEXTS), clf.predict_proba(TEXTS), atol=1e-6)


def test_validation_data_and_history():
    clf = Classifier(preset="seed", **{**TINY, "epochs": 3}).fit(TEXTS, LABELS, val_texts=TEXTS[:4], val_labels=LABELS[:4])
    assert [row["epoch"] for row in clf.history_] == [1, 2, 3]
    # the kept weights are the best epoch's: its validation figures are those of the fitted model
    best = min(clf.history_, key=lambda row: row["val_loss"])
    proba = clf.predict_proba(TEXTS[:4])
    loss = -np.mean(np.log(proba[np.arange(4), [clf.classes_.index(str(v)) for v in LABELS[:4]]]))
    assert best["val_loss"] == pytest.approx(loss, rel=1e-4)
    assert best["val_accuracy"] == np.mean(np.array(clf.predict(TEXTS[:4])) == np.array([str(v) for v in LABELS[:4]]))


def test_not_fitted():
    with pytest.raises(NotFittedError, match="not fitted yet. Call 'fit'"):
        Classifier().predict(["x"])


@pytest.mark.parametrize("texts, labels, message", [
    (["a", "b"], [1], "2 texts but 1 labels"),
    (["a", ""], [1, 0], "text 1 is empty"),
    (["a", "b"], [1, 1], "only one class"),
    ("one string", [1], "got one string"),
])
def test_fit_input_errors(texts, labels, message):
    with pytest.raises(DataError, match=message):
        Classifier(preset="seed", **TINY).fit(texts, labels)


def test_unknown_validation_label():
    with pytest.raises(DataError, match="do not occur in the training labels"):
        Classifier(preset="seed", **TINY).fit(TEXTS, LABELS, val_texts=["x"], val_labels=[7])


def test_save_refuses_non_empty_dir(tmp_path):
    clf = Classifier(preset="seed", **{**TINY, "epochs": 1}).fit(TEXTS, LABELS)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "mine.txt").write_text("x")
    from revsent.errors import ArtifactError

    with pytest.raises(ArtifactError, match="not empty"):
        clf.save(tmp_path / "m")
