"""The model behind the routes: loaded once, on the model's thread, and asked for predictions and explanations."""
from __future__ import annotations

import gc
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .batcher import model_thread
from .settings import ServeConfig


@dataclass(frozen=True)
class Scores:
    """The model's answer for some texts: class probabilities (n, C) and how many words of each text its
    vocabulary knows (n,); 0 means it read nothing and answered from its prior. Sliced by rows, as the
    micro-batcher hands each request its own."""

    proba: np.ndarray  # (n, C)
    known_words: np.ndarray  # (n,) int64

    def __len__(self) -> int:
        return len(self.proba)

    def __getitem__(self, rows: slice) -> "Scores":
        return Scores(self.proba[rows], self.known_words[rows])


class Service:
    """The model behind the routes: loaded once (``load``, off the event loop), predicting in batches."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self.ready = False
        self.error: str | None = None
        self.classifier = None
        self.info: dict[str, Any] = {}
        self.thread = model_thread()  # load, predict and explain all run here

    def load(self) -> None:
        try:
            if self.config.backend == "onnx":
                from ..export import OnnxClassifier

                self.classifier = OnnxClassifier.load(self.config.model, self.config.threads)
            else:
                from ..api import Classifier
                from ..device import set_threads

                set_threads(self.config.threads)
                self.classifier = Classifier.load(self.config.model)
        except Exception as exc:  # reported by /readyz; the CLI loads once before serving, so this is rare
            self.error = f"{type(exc).__name__}: {exc}"
            raise
        path = Path(self.config.model)
        metrics = json.loads((path / "metrics.json").read_text()) if (path / "metrics.json").is_file() else None
        cfg = self.classifier.config_
        self.info = {"model": str(path), "classes": self.classifier.classes_, "preset": cfg.preset,
                     "settings": cfg.to_dict(), "metrics": metrics, "backend": self.config.backend,
                     "about": about(cfg, self.classifier.classes_, metrics)}
        # The model, vocabulary and libraries are long-lived: out of the collector's sight, so that
        # the full collections that request garbage triggers do not walk them again and again.
        gc.freeze()
        self.ready = True

    def predict(self, texts: list[str]) -> Scores:
        """Each text's probabilities and known words, from one encoding of the texts."""
        encoder = self.classifier.encoder_  # both backends number words with the model's tokenizer.json
        seqs = encoder.encode(texts)
        return Scores(self._probabilities(seqs), encoder.known_words(seqs))

    def _probabilities(self, seqs) -> np.ndarray:
        if self.config.backend == "onnx":
            return self.classifier.probabilities(seqs)
        from ..model import class_probabilities

        model = self.classifier.model_
        return class_probabilities(model, seqs, device=next(model.parameters()).device)

    def explain(self, texts: list[str]) -> list[dict]:
        encoder = self.classifier.encoder_
        # encoding again costs little beside an explanation's dozens of model calls
        known = encoder.known_words(encoder.encode(texts))
        return [{**e.to_dict(), "known_words": int(k)} for e, k in zip(self.classifier.explain(texts), known)]


# The page's example reviews are chosen to fit the domain of the model's training data.
MOVIE_SAMPLES = {"imdb": "IMDB movie reviews (the bundled sample)",
                 "rt": "Rotten Tomatoes movie-review sentences (the bundled sample)",
                 "rotten_tomatoes": "Rotten Tomatoes movie-review sentences (the bundled sample)"}

EATING = {"restaurant", "restaurants", "food", "bars", "cafes", "coffee", "bakeries", "nightlife", "pizza"}


def about(cfg, classes: list[str], metrics: dict | None) -> dict:
    """What the page says of the model: its training data, classes, test accuracy, and the domain of that data
    (``movies``, ``restaurants`` or ``general``), read from its config.json and metrics.json alone."""
    data = cfg.data
    # a run of `revsent train` with no DATA reads the imdb sample; a model fitted in Python has no metrics.json
    paths = list(data.paths) or (["imdb"] if metrics is not None else [])
    names = [MOVIE_SAMPLES.get(p, Path(p).name) for p in paths]
    if data.category:
        names.append(f"category {data.category!r}")
    accuracy = n_test = None
    if metrics and isinstance(metrics.get("accuracy"), (int, float)) and metrics.get("n_test"):
        accuracy, n_test = float(metrics["accuracy"]), int(metrics["n_test"])
    return {"data": ", ".join(names) or None, "classes": list(classes), "test_accuracy": accuracy,
            "n_test": n_test, "domain": _domain(paths, data.category, data.business)}


def _domain(paths: list[str], category: str | None, business: str | None) -> str:
    if category:  # a Yelp category: restaurants only where it says so
        return "restaurants" if set(re.findall(r"[a-z]+", category.lower())) & EATING else "general"
    if paths and all(p in MOVIE_SAMPLES for p in paths):
        return "movies"
    if business or any("yelp" in p.lower() for p in paths):
        return "restaurants"
    return "general"
