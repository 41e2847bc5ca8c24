"""Warm start: the trained model a run starts from (``--init-from``, fine-tuning), read once.

Its vocabulary numbers the new data's words, its model settings become the run's
(:func:`revsent.config.fine_tuning`), and its LSTM weights are each member's start; the n-gram
branch is fitted afresh on the new data. :func:`check_held_out` refuses a test part that model
learnt from.

A language model (``revsent pretrain``) is started from the same way, but for what it fixes: its
vocabulary and the encoder's sizes (``config.LM_ENCODER``); the embedding and the first LSTM layer
each way come from it, everything after them starts afresh. Its training reviews' fingerprints
refuse a test part it read (:meth:`InitFrom.check_unseen`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch

from .. import artifacts
from ..config import LM_ENCODER, Config, fine_tuning, fixed_differences
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
    model: SentimentLSTM | None
    lm: dict[str, torch.Tensor] | None = None  # a language model's weights (then ``model`` is None)

    @classmethod
    def load(cls, path: str | Path) -> "InitFrom":
        if artifacts.is_language_model(path):
            source, encoder, state = artifacts.load_lm(path)
            return cls(str(path), source, [], encoder, None, state)
        source, classes, encoder, model = artifacts.load_model(path)
        return cls(str(path), source, classes, encoder, model)

    @classmethod
    def of(cls, cfg: Config) -> "InitFrom | None":
        """The model ``cfg.train.init_from`` names (None without one)."""
        return None if cfg.train.init_from is None else cls.load(cfg.train.init_from)

    def settings(self, cfg: Config, given: Iterable[str] = ()) -> Config:
        """``cfg`` with this model's settings, but for the fine-tunable ones in ``given`` (set explicitly);
        of a language model, only those of its encoder."""
        if self.lm is None:
            return fine_tuning(cfg, self.cfg, given)
        for name in self._differences(cfg):
            if name in set(given):
                raise ConfigError(f"--{name.replace('_', '-')} {getattr(cfg.model, name)!r} differs from the language "
                                  f"model started from ({getattr(self.cfg.model, name)!r}, --init-from {self.path}): "
                                  "its vocabulary and weights fix it")
        fixed = {name: getattr(self.cfg.model, name) for name in LM_ENCODER}
        return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, **fixed))

    def _differences(self, cfg: Config) -> list[str]:
        if self.lm is None:
            return fixed_differences(cfg.model, self.cfg.model)
        return [name for name in LM_ENCODER if getattr(cfg.model, name) != getattr(self.cfg.model, name)]

    def check(self, cfg: Config) -> None:
        """Refuse a run whose fixed model settings differ from this model's (``settings`` makes them agree)."""
        differ = self._differences(cfg)
        if differ:
            raise ConfigError(f"--init-from {self.path}: the run's {', '.join(differ)} differ from the model's; a "
                              "fine-tuning run keeps its vocabulary and weights' settings (config.fine_tuning)")

    def readers(self, classes: list[str], members: int = 1) -> list[dict[str, torch.Tensor]]:
        """Each LSTM branch's weights to start from. With other classes than the model's, the
        output layer is left out: it starts afresh. Of a language model: its embedding and the
        first layer each way (the backward one where the run reads both ways), for every member."""
        if self.lm is not None:
            start = {k: v.clone() for k, v in self.lm.items()
                     if k.startswith(("embedding.", "forward_layers.0.", "backward_layers.0."))}
            start["embedding.weight"][0] = 0.0  # padding
            return [start] * members
        states = [reader.state_dict() for reader in self.model.readers]
        if classes != self.classes:
            states = [{k: v for k, v in state.items() if not k.startswith("out.")} for state in states]
        return states

    def check_unseen(self, test, train) -> None:
        """Refuse a test part (``test``, a Part numbered by this vocabulary) that was among the texts
        this language model learnt from, review by review (its fingerprints; an estimate beyond a
        million reviews). Empty reviews, and test reviews the labelled training part (``train``)
        holds too, are left out (:func:`revsent.data.store.held_out_hashes`)."""
        if self.lm is None or not len(test):
            return
        from ..data.store import held_out_hashes
        from ..evaluate import overlap

        known = self.texts_read()
        if known is None:
            return
        seen, estimated = overlap(held_out_hashes(test.seqs, train.seqs), known)
        if seen:
            raise ConfigError(f"{'about ' if estimated else ''}{seen:,} of the {len(test):,} test reviews were among the "
                              f"texts the language model --init-from {self.path} learnt from, so its figures would not "
                              "be held out; pretrain on texts without them (a prepared dataset's training part, for "
                              "one: `revsent pretrain DATASET` never reads its test part)")

    def texts_read(self) -> tuple | None:
        """A language model's training reviews' fingerprints (store.hash_sample's sample and bound);
        None for a classifier, or a language model that kept none."""
        if self.lm is None:
            return None
        from ..evaluate import read_train_hashes

        return read_train_hashes(self.path)

    def describe(self, classes: list[str]) -> dict:
        """What metrics.json says of it."""
        if self.lm is not None:
            record = artifacts.read_metrics(self.path)
            return {"model": self.path, "kind": artifacts.LM_KIND, "texts": record.get("texts"),
                    "heldout_perplexity": record.get("heldout_perplexity"), "output_layer": "new",
                    **({"init_from": record["init_from"]} if record.get("init_from") else {})}
        return {"model": self.path, "data": list(self.cfg.data.paths) or ["imdb"],
                "classes": self.classes, "output_layer": "kept" if classes == self.classes else "new (other classes)"}


def check_held_out(cfg: Config, start: InitFrom | None) -> None:
    """Refuse a test part the started-from model trained on: its figures would not be held out.
    (A language model's texts are checked review by review, once the data is read: ``check_unseen``.)"""
    if start is None or start.lm is not None:
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
