"""The data of one run, built once: a prepared dataset (opened, or built from files) cut into the
parts that train, tune, evaluate's baseline and the Python API use.

    cfg.data.paths ──► open_run_data ──► RunData ─┬─ cfg         the run's effective settings
     (files, or one     (open the dataset,        ├─ train       the training part: Part(seqs, y)
      prepared dataset)  or prepare it once)      │   └─ masks   per bag member, its validation rows
                                                  ├─ fit / validation   member 0's two slices of train
                                                  └─ test        the held-out part, scored once

A value of this module is never changed: a run that needs other settings builds another.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import Config
from ..errors import ArtifactError, ConfigError, DataError
from ..text import Sequences, TextEncoder
from . import build, store
from .records import describe_counts
from .splits import member_masks


@dataclass(frozen=True)
class Part:
    """Some reviews' token ids and class ids, row for row."""

    seqs: Sequences
    y: np.ndarray  # (n,) class ids

    def __len__(self) -> int:
        return len(self.y)

    def take(self, rows: np.ndarray) -> "Part":
        return Part(self.seqs.take(rows), self.y[rows])


@dataclass(frozen=True)
class RunData:
    """A run's data: the training part with each bag member's validation rows, and the test part.

    ``masks[i]`` (n_train,) marks member i's validation rows (all zeros without a slice);
    ``val``, where given (the Python API's ``val_texts``), validates every member instead.
    ``dataset`` is the prepared dataset the parts come from (None for texts given in memory).
    """

    cfg: Config
    classes: list[str]
    encoder: TextEncoder
    train: Part
    masks: tuple[np.ndarray, ...]
    test: Part | None = None
    dataset: store.Dataset | None = None
    val: Part | None = None
    unlabelled: Sequences | None = None  # reviews without labels (--unlabelled), numbered by ``encoder``

    @classmethod
    def of(cls, cfg: Config, classes: list[str], encoder: TextEncoder, train: Part, *, test: Part | None = None,
           dataset: store.Dataset | None = None, val: Part | None = None) -> "RunData":
        """Cut ``train`` into each member's slices (``cfg.train.val_fraction``; none when ``val`` is given)."""
        n, members = len(train), cfg.model.members
        if val is not None:
            masks = (np.zeros(n, dtype=np.uint8),) * members
        else:
            masks = tuple(member_masks(n, cfg.train.val_fraction, cfg.train.seed, members))
        return cls(cfg, list(classes), encoder, train, masks, test, dataset, val)

    def member(self, i: int) -> tuple[Part, Part]:
        """Member i's training rows and its validation part (member 0's cut once)."""
        return self._first if i == 0 else self._cut(i)

    @property
    def fit(self) -> Part:
        """The rows member 0 (a single model) learns from."""
        return self._first[0]

    @property
    def validation(self) -> Part:
        """Member 0's validation part (empty without a slice)."""
        return self._first[1]

    @functools.cached_property
    def _first(self) -> tuple[Part, Part]:
        return self._cut(0)

    def _cut(self, i: int) -> tuple[Part, Part]:
        mask = self.masks[i]
        fit = self.train.take(np.flatnonzero(mask == 0))
        if self.val is not None:
            return fit, self.val
        val = self.train.take(np.flatnonzero(mask))
        return fit, Part(val.seqs, val.y.astype(np.int64))

    def baseline_texts(self, limit: int) -> tuple[list[str], list[str], list[str]]:
        """The raw texts of the fitting rows, the validation rows and the test part, for the TF-IDF
        baseline (which, like the tools it stands for, reads text, not revsent's token ids)."""
        train_texts, test_texts = store.texts_by_part(self.dataset, limit=limit)
        in_val = self.masks[0]
        return ([x for x, v in zip(train_texts, in_val) if not v], [x for x, v in zip(train_texts, in_val) if v],
                test_texts)


def open_run_data(cfg: Config, cache: Path, *, reuse: bool = False, refuse_other: bool = False, progress=None,
                  encoder: TextEncoder | None = None, work_dir: Path | None = None,
                  cite_cache: bool = False) -> RunData:
    """The run's data: ``cfg.data.paths``' one prepared dataset, opened, or its files prepared into
    ``cache``. With ``reuse``, a dataset already in ``cache`` that holds what preparing ``cfg``
    would give is opened instead (``refuse_other``: one that does not is an error rather than
    prepared again). ``encoder`` numbers the words (fine-tuning: the started-from model's vocabulary).
    The returned ``cfg`` carries a prepared dataset's own tokenizer and split settings; with
    ``cite_cache`` a dataset prepared into ``cache`` becomes its data too (tune's final training
    then opens it rather than reading the files again)."""
    paths = cfg.data.paths
    if any(store.is_dataset(p) for p in paths):
        if len(paths) > 1:
            raise ConfigError(f"A prepared dataset must be the only DATA; got {', '.join(paths)}.")
        ds = store.Dataset.open(paths[0])
        if not ds.classes:
            raise DataError(paths[0], "holds texts without labels (prepared for `revsent pretrain`); a classifier "
                            "needs labelled data")
        if progress is not None:
            counts = ds.manifest["counts"]  # as metrics.json will hold them
            progress.log(f"dataset {paths[0]}: {ds.manifest['n']} reviews (read {counts['records_read']:,} records: "
                         f"{describe_counts(counts)}), vocabulary {ds.manifest['tokenizer']['vocab_size']}")
        if encoder is not None and (ds.model_config(cfg.model) != cfg.model or ds.encoder.vocab != encoder.vocab):
            raise ConfigError(f"{paths[0]}: its vocabulary is not that of --init-from {cfg.train.init_from}; prepare "
                              f"the dataset with `revsent prepare ... --init-from {cfg.train.init_from}`")
        return from_dataset(ds, ds.run_config(cfg))
    ds = cached_dataset(cfg, cache, refuse_other) if reuse else None
    if ds is None:
        ds = build.prepare(cfg, cache, force=True, work_dir=work_dir, progress=progress, encoder=encoder)
    return from_dataset(ds, ds.run_config(cfg) if cite_cache else cfg)


def with_unlabelled(data: RunData, cache: Path, progress=None) -> tuple[RunData, dict | None]:
    """``data`` with the reviews of ``cfg.train.unlabelled`` (texts alone, numbered by the run's
    vocabulary; prepared into ``cache``, memory-mapped), and what metrics.json says of them. A test
    review among them is refused: the run would have learnt from it."""
    cfg = data.cfg
    if not cfg.train.unlabelled:
        return data, None
    fields = {"paths": cfg.train.unlabelled, "format": "auto", "label_field": None, "stars_field": None,
              "limit": None, "category": None, "business": None}
    texts = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, **fields))
    ds = build.prepare(texts, cache, force=True, work_dir=cache.parent, progress=progress, encoder=data.encoder,
                       labelled=False)
    hashes = store.review_hashes(ds.seqs)
    if data.test is not None and len(data.test):
        seen = int(np.isin(store.held_out_hashes(data.test.seqs, data.train.seqs), hashes).sum())
        if seen:
            raise ConfigError(f"--unlabelled {', '.join(cfg.train.unlabelled)}: {seen:,} of the {len(data.test):,} "
                              "test reviews are among these texts, so the test figures would not be held out; "
                              "leave them out of the unlabelled text")
    record = {"files": list(cfg.train.unlabelled), "reviews": int(ds.manifest["n"]), "tokens": int(ds.manifest["n_tokens"]),
              "sha256": ds.manifest["files"][store.IDS]["sha256"], "counts": ds.manifest["counts"]}
    return dataclasses.replace(data, unlabelled=ds.seqs), {"record": record, "hashes": store.hash_sample(hashes)}


def cached_dataset(cfg: Config, cache: Path, refuse_other: bool = False) -> store.Dataset | None:
    """The dataset in ``cache`` when it is what preparing ``cfg`` gives (None where there is none)."""
    if not store.is_dataset(cache):
        return None
    try:
        ds = store.Dataset.open(cache)
    except ArtifactError:
        if refuse_other:
            raise
        return None
    if store.prepared_with(ds, cfg):
        return ds
    if refuse_other:
        raise ConfigError(f"{cache}: was prepared from other data or settings; continue with the same ones, "
                          "or choose another --out")
    return None


def from_dataset(ds: store.Dataset, cfg: Config) -> RunData:
    """The parts of an opened dataset under ``cfg`` (its split into training and test rows)."""
    train_rows, test_rows = ds.rows(0), ds.rows(1)
    train = Part(ds.seqs.take(train_rows), ds.y[train_rows])
    test = Part(ds.seqs.take(test_rows), ds.y[test_rows].astype(np.int64))
    return RunData.of(cfg, ds.classes, ds.encoder, train, test=test, dataset=ds)

