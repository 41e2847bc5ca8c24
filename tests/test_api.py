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


# --- Classifier as a scikit-learn estimator ---------------------------------------------------

import dataclasses  # noqa: E402
import functools  # noqa: E402

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError as SklearnNotFittedError  # noqa: E402
from sklearn.model_selection import cross_val_score  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer  # noqa: E402
from sklearn.utils import estimator_checks  # noqa: E402

from revsent.config import SECTIONS  # noqa: E402
from revsent.errors import ConfigError  # noqa: E402

# A few seconds on a few hundred real reviews: a small LSTM, one epoch, a small n-gram branch with C fixed.
FAST = dict(epochs=1, vocab_size=2000, max_len=100, embedding_dim=16, hidden_size=16, ngram_buckets=20000,
            ngram_c=1.0, threads=1)


@functools.lru_cache(maxsize=1)
def imdb_reviews(n: int = 300) -> tuple[list[str], list[str]]:
    """The first ``n`` reviews of the bundled IMDB sample: texts, labels ('positive' / 'negative')."""
    from revsent.config import DataConfig
    from revsent.data import RecordReader

    records = list(RecordReader(DataConfig(paths=("imdb",), limit=n)))
    return [r.text for r in records], [r.label for r in records]


@pytest.fixture(scope="module")
def tiny_clf():
    return Classifier(preset="seed", **TINY).fit(TEXTS, LABELS)


def test_parameters_are_the_config_fields():
    """Every field Config.from_preset accepts is an explicit parameter, None (the preset's value) by default."""
    fields = {f.name for name, kind in SECTIONS.items() if name != "lm"  # a language model's own settings
              for f in dataclasses.fields(kind)}
    params = Classifier().get_params()
    assert set(params) == {"preset"} | fields
    assert params["preset"] == "default" and all(params[name] is None for name in fields)


def test_get_params_set_params_clone_round_trip():
    clf = Classifier("quick", epochs=1, hidden_size=16, dense=(8,))
    params = clf.get_params()
    assert params["preset"] == "quick" and params["epochs"] == 1 and params["dense"] == (8,)
    assert clf.set_params(epochs=2, lr=0.01) is clf
    assert clf.get_params() == {**params, "epochs": 2, "lr": 0.01}
    copy = clone(clf)
    assert copy is not clf and copy.get_params() == clf.get_params()
    assert Classifier(**clf.get_params()).get_params() == clf.get_params()
    assert repr(clf) == "Classifier(dense=(8,), epochs=2, hidden_size=16, lr=0.01, preset='quick')"


def test_clone_of_a_fitted_classifier_is_unfitted(tiny_clf):
    copy = clone(tiny_clf)
    assert copy.get_params() == tiny_clf.get_params()
    assert not hasattr(copy, "model_")
    with pytest.raises(NotFittedError):
        copy.predict(["great food"])


@pytest.mark.parametrize("call, message", [
    (lambda: Classifier(epoch=1), "Classifier got an unexpected parameter 'epoch'; did you mean 'epochs'?"),
    (lambda: Classifier("quick", hiden_size=8), "unexpected parameter 'hiden_size'; did you mean 'hidden_size'?"),
    (lambda: Classifier().set_params(epoch=1), "unexpected parameter 'epoch'; did you mean 'epochs'?"),
    (lambda: Classifier(zzz=1), "'zzz'; its parameters are adversarial, average_weights, baseline"),
])
def test_unknown_parameter_fails_at_once_with_a_suggestion(call, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("?", r"\?")) as caught:
        call()
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("clf, message", [
    (Classifier(preset="fast"), "Unknown preset 'fast'; choose one of: seed, default, quick"),
    (Classifier(preset="seed", epochs=-1),
     r"The 'epochs' parameter of TrainConfig must be an int in the range \[1, inf\)"),
    (Classifier(preset="seed", pooling="sum"), "The 'pooling' parameter of ModelConfig must be one of"),
])
def test_wrong_values_fail_at_fit(clf, message):
    """Values are checked by the config at ``fit`` (scikit-learn's convention): construction only stores them."""
    with pytest.raises(ConfigError, match=message):
        clf.fit(TEXTS, LABELS)


def test_not_fitted_is_scikit_learns_error_too(tiny_clf, tmp_path):
    clf = Classifier()
    for call in (lambda: clf.predict(["x"]), lambda: clf.predict_proba(["x"]), lambda: clf.score(["x"], [1]),
                 lambda: clf.known_words(["x"]), lambda: clf.explain(["x"]), lambda: clf.save(tmp_path / "m")):
        with pytest.raises(SklearnNotFittedError, match="This Classifier instance is not fitted yet") as caught:
            call()
        assert isinstance(caught.value, NotFittedError)  # revsent's own too: the CLI makes it one line
    from sklearn.utils.validation import check_is_fitted

    with pytest.raises(SklearnNotFittedError):
        check_is_fitted(clf)
    check_is_fitted(tiny_clf)  # fitted: model_ is there


def test_score_is_accuracy(tiny_clf):
    labels = [0] * 6 + LABELS[6:]  # six positive reviews labelled negative: the model is right on 42 of 48
    predicted = tiny_clf.predict(TEXTS)
    by_hand = np.mean([p == str(label) for p, label in zip(predicted, labels)])
    assert tiny_clf.score(TEXTS, labels) == pytest.approx(by_hand) == pytest.approx(42 / 48)
    assert tiny_clf.score(TEXTS, [str(v) for v in labels]) == pytest.approx(42 / 48)  # labels as fit named them
    weights = [0.0] * 6 + [1.0] * 42
    assert tiny_clf.score(TEXTS, labels, sample_weight=weights) == 1.0


def test_known_words(tiny_clf):
    counts = tiny_clf.known_words(["great food", "qqq zzz", "great zzz food food", "GREAT, food!"])
    assert counts.dtype == np.int64 and counts.tolist() == [2, 0, 3, 2]
    oov = Classifier(preset="seed", **{**TINY, "epochs": 1, "oov": True}).fit(TEXTS, LABELS)
    assert oov.known_words(["great zzz food"]).tolist() == [2]  # zzz's OOV id is read, but not a known word
    with pytest.raises(DataError, match="got one string"):
        tiny_clf.known_words("great food")


def test_load_gives_the_models_settings_as_parameters(tiny_clf, tmp_path):
    tiny_clf.save(tmp_path / "m")
    loaded = Classifier.load(tmp_path / "m")
    params = loaded.get_params()
    assert params["preset"] == "seed"
    given = {name: value for name, value in TINY.items() if name != "threads"}
    assert {name: params[name] for name in given} == given
    assert params["threads"] is None and params["device"] is None  # the training machine's, not the model's
    assert params["pooling"] == "last" and params["ngram_buckets"] == 0  # the seed preset's, as saved
    assert loaded.score(TEXTS, LABELS) == 1.0
    assert loaded.known_words(["great zzz food"]).tolist() == [2]
    assert [e.label for e in loaded.explain(["great food"])] == ["1"]
    again = clone(loaded).set_params(threads=1).fit(TEXTS, LABELS)  # the same settings, trained afresh
    train = dataclasses.replace(loaded.config_.train, threads=1)
    assert again.config_ == dataclasses.replace(loaded.config_, train=train)
    assert again.score(TEXTS, LABELS) == 1.0


def test_cross_val_score_on_real_reviews():
    texts, labels = imdb_reviews()
    scores = cross_val_score(Classifier("quick", **FAST), texts, labels, cv=3)
    assert scores.shape == (3,) and all(0.0 <= s <= 1.0 for s in scores)
    assert scores.mean() > 0.6  # 200 training reviews: the n-gram branch alone does better than chance (~0.72)


def test_pipeline_on_real_reviews():
    texts, labels = imdb_reviews()
    unbreak = FunctionTransformer(lambda xs: [x.replace("<br />", " ") for x in xs])  # IMDB's line breaks
    pipe = Pipeline([("clean", unbreak), ("clf", Classifier("quick", **FAST))])
    assert pipe.get_params()["clf__hidden_size"] == 16
    pipe.set_params(clf__seed=7)
    assert pipe.fit(texts[:200], labels[:200]) is pipe
    held_out, truth = texts[200:], labels[200:]
    predicted = pipe.predict(held_out)
    assert pipe.score(held_out, truth) == pytest.approx(np.mean(np.array(predicted) == np.array(truth)))
    assert pipe.named_steps["clf"].config_.train.seed == 7
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        pipe.set_params(clf__epoch=2)


# scikit-learn's own estimator checks, those about parameters and the unfitted state. The others
# fit on numeric arrays (random floats, sparse matrices, NaN, 2-D X): a text classifier refuses them
# with a DataError by design (its X is a list of texts), so they do not apply. Nor does
# check_do_not_raise_errors_in_init_or_set_params: it passes every name of the signature,
# ``**unknown`` included, and that catch-all exists only to refuse names that are not parameters.
@pytest.mark.parametrize("check", [
    estimator_checks.check_get_params_invariance,
    estimator_checks.check_set_params,
    estimator_checks.check_parameters_default_constructible,
    estimator_checks.check_no_attributes_set_in_init,
    estimator_checks.check_estimators_unfitted,
    estimator_checks.check_estimator_cloneable,
    estimator_checks.check_estimator_repr,
    estimator_checks.check_mixin_order,
    estimator_checks.check_estimator_tags_renamed,
])
@pytest.mark.parametrize("estimator", [Classifier(), Classifier("quick", epochs=1, dense=(8,))],
                         ids=["default", "quick"])
def test_scikit_learn_estimator_checks(check, estimator):
    check("Classifier", estimator)
