"""The Python API: a scikit-learn estimator::

    clf = Classifier(preset="quick", epochs=1).fit(texts, labels)
    clf.predict(["great food"]), clf.predict_proba(["great food"]), clf.score(texts, labels)
    clf.save("model/");  Classifier.load("model/")
    cross_val_score(Classifier(preset="quick", epochs=1), texts, labels, cv=3)

Its parameters are ``preset`` and every :class:`~revsent.config.Config` field, listed in
``__init__``'s signature (scikit-learn's ``get_params`` reads them there): ``clone``,
``set_params``, ``Pipeline`` and grid searches see them all.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError as SklearnNotFittedError

from . import artifacts, errors
from .config import SECTIONS, Config
from .data.parts import Part, RunData
from .data.records import _is_int
from .device import resolve_device, start_run
from .errors import ConfigError, DataError
from .metrics import decide
from .model import class_probabilities
from .progress import Progress
from .text import TextEncoder

# Where the saved model was trained, not what it is: `load` leaves them to the machine that refits.
MACHINE_SETTINGS = ("device", "precision", "threads")


class NotFittedError(errors.NotFittedError, SklearnNotFittedError):
    """A :class:`Classifier` used before ``fit``: revsent's error, which scikit-learn's checks
    (``check_is_fitted``, its estimator checks) also recognise as their own."""


class Classifier(ClassifierMixin, BaseEstimator):
    """An LSTM sentiment classifier on raw texts, a scikit-learn estimator.

    ``preset`` is one of ``revsent presets``; every other parameter is the
    :class:`~revsent.config.Config` field of the same name (the CLI flag ``--hidden-size`` is
    ``hidden_size``), and None means the preset's value. ``init_from="models/yelp"`` fine-tunes
    that trained model (its vocabulary, settings and weights). The data settings (``paths`` ..
    ``skip_bad``) and ``test_split``, ``test_data``, ``baseline`` only matter to ``revsent train``:
    ``fit`` learns from the texts it is given.

    A misspelt parameter fails here, at construction; a wrong value (``preset="fast"``,
    ``epochs=-1``) fails at ``fit`` with the config's error, as scikit-learn estimators do, so that
    ``set_params`` and ``clone`` meet the same check.
    """

    def __init__(
        self, preset: str = "default", *,
        # data: DataConfig
        paths: tuple[str, ...] | None = None, format: str | None = None, text_field: str | None = None,
        label_field: str | None = None, stars_field: str | None = None, labels: str | None = None,
        id_field: str | None = None, business: str | None = None, category: str | None = None,
        limit: int | None = None, skip_bad: bool | None = None,
        # the tokenizer and the network: ModelConfig
        vocab_size: int | None = None, oov: bool | None = None, min_count: int | None = None,
        max_len: int | None = None, truncate: str | None = None, embedding_dim: int | None = None,
        hidden_size: int | None = None, layers: int | None = None, bidirectional: bool | None = None,
        dropout: float | None = None, recurrent_dropout: float | None = None, word_dropout: float | None = None,
        pooling: str | None = None, dense: tuple[int, ...] | None = None, ngram_buckets: int | None = None,
        ngram_c: float | None = None, ngram_min_df: int | None = None, ngram_order: int | None = None,
        ngram_weighting: str | None = None, ngram_hash: int | None = None, ngram_whole: bool | None = None,
        init: str | None = None, embedding_init: str | None = None, members: int | None = None,
        # training: TrainConfig
        epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
        weight_decay: float | None = None, clip_norm: float | None = None, patience: int | None = None,
        average_weights: bool | None = None, test_split: float | None = None,
        test_data: tuple[str, ...] | None = None, val_fraction: float | None = None, seed: int | None = None,
        device: str | None = None, precision: str | None = None, threads: int | None = None,
        baseline: bool | None = None, class_weight: str | None = None, checkpoint_minutes: float | None = None,
        init_from: str | None = None, adversarial: float | None = None, encoder_lr: float | None = None,
        schedule: str | None = None, gradual_unfreezing: bool | None = None,
        unlabelled: tuple[str, ...] | None = None, vat: float | None = None, entropy_weight: float | None = None,
        threshold: str | None = None,
        **unknown,  # only to name a misspelt parameter; get_params leaves it out
    ):
        given = locals()
        if unknown:
            raise self._unexpected(next(iter(unknown)))
        for name in self._get_param_names():  # the signature's names, stored unchanged as clone expects
            setattr(self, name, given[name])

    def set_params(self, **params) -> "Classifier":
        """Set parameters by name (``Pipeline`` passes ``clf__epochs=2`` on as ``epochs=2``)."""
        for name in params:
            if name not in self._get_param_names():
                raise self._unexpected(name)
        return super().set_params(**params)

    @classmethod
    def _unexpected(cls, name: str) -> ConfigError:
        """A misspelt parameter, with the closest real one when there is one."""
        names = cls._get_param_names()
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"its parameters are {', '.join(names)}"
        return ConfigError(f"{cls.__name__} got an unexpected parameter {name!r}; {hint}")

    def _settings(self) -> dict:
        """The settings given (not None): they replace the preset's."""
        return {name: getattr(self, name) for name in self._get_param_names()
                if name != "preset" and getattr(self, name) is not None}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # a list of texts, as CountVectorizer takes
        tags.input_tags.string = True
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    def fit(self, texts: Sequence[str], labels: Sequence, val_texts: Sequence[str] | None = None,
            val_labels: Sequence | None = None, verbose: bool = False) -> "Classifier":
        """Train on ``texts`` / ``labels`` (any hashable labels; predictions are their ``str``).

        With ``val_texts`` / ``val_labels`` the best epoch on them is kept (and ``patience`` applies);
        without them, a ``val_fraction`` slice of ``texts`` (the default preset's 0.1) plays that role.
        """
        # training pulls in the rest of scikit-learn and the training loop; prediction does not need them
        from .training.init_from import InitFrom
        from .training.members import fit_members, member_history
        from .training.run import calibrated, check_threshold

        settings = self._settings()
        cfg = Config.from_preset(self.preset, **settings)
        start = InitFrom.of(cfg)  # fine-tuning: the model's vocabulary, settings and weights
        if start is not None:
            cfg = start.settings(cfg, settings)
            start.check(cfg)
        texts, labels = _check_pairs(texts, labels, "texts")
        names = [str(label) for label in labels]
        seen = set(names)
        if len(seen) < 2:
            raise DataError("labels", f"only one class ({next(iter(seen))!r}); a classifier needs at least two")
        classes = sorted(seen, key=int) if all(_is_int(n) for n in seen) else sorted(seen)
        index = {name: i for i, name in enumerate(classes)}
        device = start_run(cfg.train)
        encoder = TextEncoder.fit_config(texts, cfg.model) if start is None else start.encoder
        val = None
        if val_texts is not None:  # every member validates on it; else each on its own slice of ``texts``
            val_texts, val_labels = _check_pairs(val_texts, val_labels, "val_texts")
            unknown = {str(v) for v in val_labels} - seen
            if unknown:
                raise DataError("val_labels", f"labels {sorted(unknown)[:5]} do not occur in the training labels")
            val = Part(encoder.encode(val_texts), np.array([index[str(v)] for v in val_labels], dtype=np.int64))
        train = Part(encoder.encode(texts), np.array([index[n] for n in names], dtype=np.int64))
        data = RunData.of(cfg, classes, encoder, train, val=val)
        check_threshold(data)
        model, states = fit_members(data, device=device, progress=Progress(verbose),
                                    start=None if start is None else start.readers(classes))
        calibrated(model, data, len(states), device, Progress(verbose))  # on the validation slice, as `train`
        self.config_, self.classes_, self.encoder_, self.model_ = cfg, classes, encoder, model
        self.history_ = member_history(states)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                                 "appropriate arguments before using this estimator.")

    def predict_proba(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Class probabilities (n, n_classes), columns in the order of ``classes_``."""
        self._check_fitted()
        _check_texts(texts)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"The 'batch_size' parameter must be an int >= 1. Got {batch_size!r} instead.")
        device = next(self.model_.parameters()).device
        return class_probabilities(self.model_, self.encoder_.encode(list(texts)), batch_size, device)

    def predict(self, texts: Sequence[str]) -> list[str]:
        """Each text's label: the most probable class, or by the model's decision threshold (``threshold_``)."""
        proba = self.predict_proba(texts)
        return [self.classes_[i] for i in decide(proba, self.threshold_)]

    def score(self, texts: Sequence[str], labels: Sequence, sample_weight=None) -> float:
        """Accuracy of ``predict(texts)`` against ``labels``, compared as ``str`` as ``fit`` names
        classes (labels 1/0 match predictions "1"/"0"); what ``cross_val_score`` reports by default."""
        from sklearn.metrics import accuracy_score

        texts, labels = _check_pairs(texts, labels, "texts")
        truth = [str(label) for label in labels]
        return float(accuracy_score(truth, self.predict(texts), sample_weight=sample_weight))

    def known_words(self, texts: Sequence[str]) -> np.ndarray:
        """How many words of each text the model's vocabulary knows (int64, one per text): 0 means
        the model reads nothing of that text and answers from its bias alone."""
        self._check_fitted()
        _check_texts(texts)
        return self.encoder_.known_words(self.encoder_.encode(list(texts)))

    @property
    def threshold_(self) -> float | None:
        """The binary decision threshold on ``classes_[1]``'s probability (``--threshold``); None: argmax."""
        self._check_fitted()
        return self.model_.decision_threshold

    def explain(self, texts: Sequence[str]) -> list:
        """Each word's share of each prediction (:class:`revsent.explain.Explanation` per text)."""
        from .explain import explain

        self._check_fitted()
        _check_texts(texts)
        return explain(self.model_, self.encoder_, self.classes_, list(texts))

    def save(self, path: str | Path, force: bool = False) -> Path:
        """Write the model directory (refuses a non-empty one unless ``force``)."""
        self._check_fitted()
        out = artifacts.prepare_out(path, force=force)
        artifacts.save_model(out, self.config_, self.classes_, self.encoder_, self.model_)
        return out

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "Classifier":
        """A fitted Classifier from a model directory. Its parameters are the saved config's
        settings (but ``device``, ``precision`` and ``threads``, the training machine's), so that
        ``clone(clf).fit(...)`` trains the same model afresh; a None among them is the preset's value."""
        cfg, classes, encoder, model = artifacts.load_model(path, resolve_device(device))
        saved = {name: value for section in SECTIONS for name, value in vars(getattr(cfg, section)).items()
                 if name not in MACHINE_SETTINGS}
        clf = cls(cfg.preset, **{name: value for name, value in saved.items() if name in cls._get_param_names()})
        clf.config_, clf.classes_, clf.encoder_, clf.model_ = cfg, classes, encoder, model
        clf.history_ = []
        return clf


def _check_texts(texts, name: str = "texts") -> None:
    if isinstance(texts, str):
        raise DataError(name, "expected a list of texts, got one string; wrap it in a list")


def _check_pairs(texts, labels, name: str):
    _check_texts(texts, name)
    texts = list(texts)
    labels = list(labels) if labels is not None else None
    if labels is None or len(texts) != len(labels):
        raise DataError(name, f"{len(texts)} texts but {0 if labels is None else len(labels)} labels; give one label per text")
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise DataError(name, f"text {i} is empty or not a string")
    return texts, labels
