"""Labelled data read whole into memory (texts + class ids): for small data and the benchmarks;
runs read theirs through a prepared dataset (:mod:`revsent.data.parts`)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from ..config import Config
from ..errors import DataError
from .records import RecordReader, Tally, describe_tally


@dataclass
class Labelled:
    texts: list[str]
    y: np.ndarray  # (n,) class ids into `classes`
    classes: list[str]
    tally: Tally
    source: str  # the inputs, for messages


def read_labelled(cfg: Config, paths: Iterable[str] | None = None, classes: list[str] | None = None) -> Labelled:
    """Read every usable record of ``paths`` (default: ``cfg.data.paths``).

    ``classes`` fixes the class list (validation data, evaluation): a label outside it is an error.
    """
    data_cfg = cfg.data if paths is None else dataclasses.replace(cfg.data, paths=tuple(paths), limit=None)
    reader = RecordReader(data_cfg)
    texts, labels = [], []
    for record in reader:
        texts.append(record.text)
        labels.append(record.label)
    source = ", ".join(reader.paths)
    if not texts:
        raise DataError(source, f"no usable records (read {reader.tally.read}: {describe_tally(reader.tally)})")
    seen = set(labels)
    if classes is None:
        classes = reader.classes(seen)
        if len(seen) < 2:
            raise DataError(source, f"only one class ({next(iter(seen))!r}) in {len(texts)} records; a classifier needs at least two")
    else:
        unknown = sorted(seen - set(classes))
        if unknown:
            raise DataError(source, f"labels {unknown[:5]} are not among the model's classes {classes}")
    index = {name: i for i, name in enumerate(classes)}
    y = np.fromiter((index[label] for label in labels), dtype=np.int64, count=len(labels))
    return Labelled(texts, y, list(classes), reader.tally, source)
