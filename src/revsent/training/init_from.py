"""Warm start: the trained model a run starts from (``--init-from``, fine-tuning), read once.

Its vocabulary numbers the new data's words, its model settings become the run's
(:func:`revsent.config.fine_tuning`), and its LSTM weights are each member's start; the n-gram
branch is fitted afresh on the new data. :func:`check_held_out` refuses a test part that model
learnt from.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch

from .. import artifacts
from ..config import Config, fine_tuning, fixed_differences
from ..errors import ConfigError
from ..model import SentimentLSTM
from ..text import TextEncoder


@dataclass(frozen=True)
class InitFrom:
    """A trained model that a run starts from, as its own files describe it."""

    path: str
    cfg: Config
    classes: list[str]
    encoder: TextEncoder
    model: SentimentLSTM

    @classmethod
    def load(cls, path: str | Path) -> "InitFrom":
        source, classes, encoder, model = artifacts.load_model(path)
        return cls(str(path), source, classes, encoder, model)

    @classmethod
    def of(cls, cfg: Config) -> "InitFrom | None":
        """The model ``cfg.train.init_from`` names (None without one)."""
        return None if cfg.train.init_from is None else cls.load(cfg.train.init_from)

    def settings(self, cfg: Config, given: Iterable[str] = ()) -> Config:
        """``cfg`` with this model's settings, but for the fine-tunable ones in ``given`` (set explicitly)."""
        return fine_tuning(cfg, self.cfg, given)

    def check(self, cfg: Config) -> None:
        """Refuse a run whose fixed model settings differ from this model's (``settings`` makes them agree)."""
        differ = fixed_differences(cfg.model, self.cfg.model)
        if differ:
            raise ConfigError(f"--init-from {self.path}: the run's {', '.join(differ)} differ from the model's; a "
                              "fine-tuning run keeps its vocabulary and weights' settings (config.fine_tuning)")

    def readers(self, classes: list[str]) -> list[dict[str, torch.Tensor]]:
        """Each LSTM branch's weights to start from. With other classes than the model's, the
        output layer is left out: it starts afresh."""
        states = [reader.state_dict() for reader in self.model.readers]
        if classes != self.classes:
            states = [{k: v for k, v in state.items() if not k.startswith("out.")} for state in states]
        return states

    def describe(self, classes: list[str]) -> dict:
        """What metrics.json says of it."""
        return {"model": self.path, "data": list(self.cfg.data.paths) or ["imdb"],
                "classes": self.classes, "output_layer": "kept" if classes == self.classes else "new (other classes)"}


def check_held_out(cfg: Config, start: InitFrom | None) -> None:
    """Refuse a test part the started-from model trained on: its figures would not be held out."""
    if start is None:
        return
    source, path = start.cfg, start.path
    learned = _places(source.data.paths)
    for file in cfg.train.test_data:
        if _places([file]) & learned:
            raise ConfigError(f"--test-data {file}: the model of --init-from {path} was trained on it, so its figures "
                              f"would not be held out")
    same_split = (source.train.test_data, source.train.test_split, source.train.seed) == \
                 (cfg.train.test_data, cfg.train.test_split, cfg.train.seed)
    if not cfg.train.test_data and _places(cfg.data.paths) & learned and not same_split:
        theirs = (f"its test part was --test-data {', '.join(source.train.test_data)}" if source.train.test_data
                  else f"seed {source.train.seed}, test split {source.train.test_split}")
        raise ConfigError(f"--init-from {path}: that model was trained on this data with another split ({theirs}), "
                          f"so part of this run's test part trained it; use the same split, or --test-data")


def _places(paths) -> set[str]:
    """Data paths as comparable strings (no paths: the bundled IMDB sample)."""
    return {str(Path(p).resolve()) if Path(p).exists() else p for p in (paths or ("imdb",))}
