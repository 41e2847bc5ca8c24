"""The model behind the routes: loaded once, on the model's thread, and asked for predictions and explanations."""
from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

import numpy as np

from .batcher import model_thread
from .settings import ServeConfig


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
                     "settings": cfg.to_dict(), "metrics": metrics, "backend": self.config.backend}
        # The model, vocabulary and libraries are long-lived: out of the collector's sight, so that
        # the full collections that request garbage triggers do not walk them again and again.
        gc.freeze()
        self.ready = True

    def predict(self, texts: list[str]) -> np.ndarray:
        return self.classifier.predict_proba(texts)

    def explain(self, texts: list[str]) -> list[dict]:
        return [e.to_dict() for e in self.classifier.explain(texts)]
