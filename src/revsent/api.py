"""The Python API, in scikit-learn's manner::

    clf = Classifier(preset="quick", epochs=1).fit(texts, labels)
    clf.predict(["great food"]), clf.predict_proba(["great food"])
    clf.save("model/");  Classifier.load("model/")
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from . import artifacts
from .config import Config
from .data.parts import Part, RunData
from .data.records import _is_int
from .device import resolve_device, start_run
from .errors import ConfigError, DataError, NotFittedError
from .metrics import decide
from .model import class_probabilities
from .progress import Progress
from .text import TextEncoder


class Classifier:
    """An LSTM sentiment classifier. Settings are :class:`~revsent.config.Config` field names;
    ``init_from="models/yelp"`` fine-tunes that trained model (its vocabulary, settings and weights)."""

    def __init__(self, preset: str = "default", **settings):
        self.preset = preset
        self.settings = settings

    def fit(self, texts: Sequence[str], labels: Sequence, val_texts: Sequence[str] | None = None,
            val_labels: Sequence | None = None, verbose: bool = False) -> "Classifier":
        """Train on ``texts`` / ``labels`` (any hashable labels; predictions are their ``str``).

        With ``val_texts`` / ``val_labels`` the best epoch on them is kept (and ``patience`` applies);
        without them, a ``val_fraction`` slice of ``texts`` (the default preset's 0.1) plays that role.
        """
        # training pulls in scikit-learn; prediction does not need it
        from .training.init_from import InitFrom
        from .training.members import fit_members, member_history
        from .training.run import calibrated, check_threshold

        cfg = Config.from_preset(self.preset, **self.settings)
        start = InitFrom.of(cfg)  # fine-tuning: the model's vocabulary, settings and weights
        if start is not None:
            cfg = start.settings(cfg, self.settings)
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
        if isinstance(texts, str):
            raise DataError("texts", "expected a list of texts, got one string; wrap it in a list")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"The 'batch_size' parameter must be an int >= 1. Got {batch_size!r} instead.")
        device = next(self.model_.parameters()).device
        return class_probabilities(self.model_, self.encoder_.encode(list(texts)), batch_size, device)

    def predict(self, texts: Sequence[str]) -> list[str]:
        """Each text's label: the most probable class, or by the model's decision threshold (``threshold_``)."""
        proba = self.predict_proba(texts)
        return [self.classes_[i] for i in decide(proba, self.threshold_)]

    @property
    def threshold_(self) -> float | None:
        """The binary decision threshold on ``classes_[1]``'s probability (``--threshold``); None: argmax."""
        self._check_fitted()
        return self.model_.decision_threshold

    def explain(self, texts: Sequence[str]) -> list:
        """Each word's share of each prediction (:class:`revsent.explain.Explanation` per text)."""
        from .explain import explain

        self._check_fitted()
        if isinstance(texts, str):
            raise DataError("texts", "expected a list of texts, got one string; wrap it in a list")
        return explain(self.model_, self.encoder_, self.classes_, list(texts))

    def save(self, path: str | Path, force: bool = False) -> Path:
        """Write the model directory (refuses a non-empty one unless ``force``)."""
        self._check_fitted()
        out = artifacts.prepare_out(path, force=force)
        artifacts.save_model(out, self.config_, self.classes_, self.encoder_, self.model_)
        return out

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "Classifier":
        cfg, classes, encoder, model = artifacts.load_model(path, resolve_device(device))
        clf = cls(preset=cfg.preset)
        clf.config_, clf.classes_, clf.encoder_, clf.model_ = cfg, classes, encoder, model
        clf.history_ = []
        return clf


def _check_pairs(texts, labels, name: str):
    if isinstance(texts, str):
        raise DataError(name, "expected a list of texts, got one string; wrap it in a list")
    texts = list(texts)
    labels = list(labels) if labels is not None else None
    if labels is None or len(texts) != len(labels):
        raise DataError(name, f"{len(texts)} texts but {0 if labels is None else len(labels)} labels; give one label per text")
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise DataError(name, f"text {i} is empty or not a string")
    return texts, labels
