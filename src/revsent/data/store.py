"""Prepared datasets on disk: opening one (memory maps, checked against its manifest) and what
can be read from it. Building one is :mod:`revsent.data.build`'s.

A dataset directory holds:

    manifest.json   settings, classes, counts, sizes and SHA-256 of every file, revsent version
    tokenizer.json  the vocabulary (fitted on the training split only)
    ids.bin         every review's token ids, concatenated: uint16 when the vocabulary fits, else uint32
    offsets.npy     (n + 1,) int64: review i is ids[offsets[i]:offsets[i + 1]]
    labels.npy      (n,) class ids
    split.npy       (n,) uint8: 0 training, 1 held out

Any number of processes may open one at once (torchrun's ranks do).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..config import LEGACY_SPLIT_KEYS, Config, DataConfig, ModelConfig, renamed
from ..errors import ArtifactError, ConfigError, DataError
from ..text import Sequences, TextEncoder
from .records import RecordReader

FORMAT, FORMAT_VERSION = "revsent-dataset", 1
MANIFEST, TOKENIZER, IDS, OFFSETS, LABELS, SPLIT = (
    "manifest.json", "tokenizer.json", "ids.bin", "offsets.npy", "labels.npy", "split.npy")
CHUNK = 8192  # records tokenized per task, and reviews hashed per step of a digest
TOKENIZER_FIELDS = ("vocab_size", "oov", "max_len", "truncate", "min_count")


def is_dataset(path: str | Path) -> bool:
    """Whether ``path`` is a prepared dataset directory (rather than a data file)."""
    return Path(path).is_dir() and (Path(path) / MANIFEST).is_file()


@dataclass
class Dataset:
    """An opened dataset: ``seqs`` over the memory-mapped ids, ``y`` class ids, ``split`` 0/1."""

    path: Path
    manifest: dict
    seqs: Sequences
    y: np.ndarray  # (n,) class ids, uint8 (int32 beyond 255 classes)
    split: np.ndarray  # (n,) uint8
    encoder: TextEncoder

    @property
    def classes(self) -> list[str]:
        return list(self.manifest["classes"])

    @property
    def id(self) -> str:
        """A fingerprint of the dataset's contents: equal ids, equal data."""
        return self.manifest["id"]

    def rows(self, part: int) -> np.ndarray:
        """Row numbers of the training (0) or held-out (1) part (int32 while they fit)."""
        rows = np.flatnonzero(self.split == part)
        return rows.astype(np.int32) if len(self.split) < 1 << 31 else rows

    @property
    def cut(self) -> bool:
        """Whether the ids are of reviews cut to ``max_len`` (datasets of the releases before whole reviews)."""
        return not self.manifest.get("whole_reviews") and self.manifest["tokenizer"]["max_len"] is not None

    def model_config(self, model: ModelConfig) -> ModelConfig:
        """``model`` with this dataset's tokenizer settings (and, of cut reviews, an n-gram branch
        that reads what they hold, as the models trained on them did)."""
        return dataclasses.replace(model, **self.manifest["tokenizer"], **({"ngram_whole": False} if self.cut else {}))

    def run_config(self, cfg: Config) -> Config:
        """``cfg`` as a run on this dataset: its tokenizer, split and data settings replace cfg's."""
        m = self.manifest
        data = dataclasses.replace(DataConfig(**_tuples(m["data"])), paths=(str(self.path),))
        train = dataclasses.replace(cfg.train, test_split=m["split"]["test_split"], seed=m["split"]["seed"],
                                    test_data=tuple(m["split"]["test_data"]))
        return dataclasses.replace(cfg, data=data, model=self.model_config(cfg.model), train=train)

    @classmethod
    def open(cls, path: str | Path, verify: bool = True) -> "Dataset":
        """Open a prepared dataset, checking every file against the manifest (size and SHA-256)."""
        path = Path(path)
        manifest = _read_manifest(path)
        files = manifest["files"]
        for name, expected in files.items():
            file = path / name
            if not file.is_file():
                raise ArtifactError(f"{file}: missing from the dataset; prepare it again")
            if file.stat().st_size != expected["bytes"]:
                raise ArtifactError(f"{file}: {file.stat().st_size} bytes, the manifest says {expected['bytes']} "
                                    "(truncated or edited); prepare the dataset again")
            if verify and sha256_of(file) != expected["sha256"]:
                raise ArtifactError(f"{file}: contents differ from the manifest's checksum (edited or damaged); "
                                    "prepare the dataset again")
        n, dtype = manifest["n"], np.dtype(manifest["ids_dtype"])
        try:
            # plain ndarray views of the maps: indexing a np.memmap subclass costs more per call
            ids = np.memmap(path / IDS, dtype=dtype, mode="r").view(np.ndarray) if files[IDS]["bytes"] else np.zeros(0, dtype)
            offsets = np.load(path / OFFSETS, mmap_mode="r").view(np.ndarray)
            labels = np.load(path / LABELS)
            split = np.load(path / SPLIT)
            settings = {k: v for k, v in manifest["tokenizer"].items() if k != "min_count"}  # fitting's, not encoding's
            encoder = TextEncoder.from_str((path / TOKENIZER).read_text("utf-8"), **settings)
        except (OSError, ValueError, KeyError) as exc:
            raise ArtifactError(f"{path}: unreadable dataset file ({exc}); prepare it again") from None
        except Exception as exc:  # tokenizers raises a bare Exception on a bad file
            raise ArtifactError(f"{path / TOKENIZER}: corrupt tokenizer ({str(exc).splitlines()[0]})") from None
        if not (len(offsets) == n + 1 == len(labels) + 1 == len(split) + 1 and int(offsets[-1]) == len(ids)):
            raise ArtifactError(f"{path / MANIFEST}: the dataset's files disagree in size; prepare it again")
        return cls(path, manifest, Sequences(ids, offsets), labels, split, encoder)


def _tuples(raw: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}


def _read_manifest(path: Path) -> dict:
    file = path / MANIFEST
    if not path.is_dir():
        raise ArtifactError(f"{path}: no such dataset directory")
    try:
        manifest = json.loads(file.read_text("utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{file}: missing; is {path} a dataset made by `revsent prepare`?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{file}: corrupt JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{file}: not a revsent dataset manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{file}: dataset format {manifest.get('format_version')!r} is not supported "
                            f"(this revsent reads format {FORMAT_VERSION}); prepare it again with this version")
    missing = {"n", "ids_dtype", "files", "classes", "tokenizer", "split", "data", "id"} - set(manifest)
    if missing:
        raise ArtifactError(f"{file}: incomplete manifest (no {', '.join(sorted(missing))})")
    manifest["split"] = renamed(manifest["split"], LEGACY_SPLIT_KEYS)  # prepared before "val" became "test"
    if isinstance(manifest["tokenizer"], dict):  # prepared before words could be left out for rarity: all kept
        manifest["tokenizer"] = {"min_count": 1, **manifest["tokenizer"]}
    return manifest


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def iter_texts(ds: Dataset) -> Iterator[tuple[int, str]]:
    """``(row, text)`` for every record of the files ``ds`` was prepared from, re-read in order.

    Refuses when the files no longer give the records the dataset was prepared from.
    """
    data = DataConfig(**_tuples(ds.manifest["data"]))
    paths = [data.paths] + ([tuple(ds.manifest["split"]["test_data"])] if ds.manifest["split"]["test_data"] else [])
    row = 0
    for part, paths_of_part in enumerate(paths):
        cfg = data if part == 0 else dataclasses.replace(data, paths=paths_of_part, limit=None)
        for record in RecordReader(cfg):
            if row >= ds.manifest["n"]:
                break
            yield row, record.text
            row += 1
    if row != ds.manifest["n"]:
        raise DataError(", ".join(data.paths) or "imdb", f"now gives {row} records, not the {ds.manifest['n']} "
                        "the dataset was prepared from: the data changed")


def check_settings(path: str | Path, cfg: Config, given: set[str]) -> None:
    """Refuse explicitly given settings that contradict the dataset's (they would need a new prepare)."""
    manifest = _read_manifest(Path(path))
    fixed = {**manifest["tokenizer"], "test_split": manifest["split"]["test_split"], "seed": manifest["split"]["seed"],
             "test_data": tuple(manifest["split"]["test_data"])}
    owners = {**{k: cfg.model for k in TOKENIZER_FIELDS}, "test_split": cfg.train, "seed": cfg.train, "test_data": cfg.train}
    for name, value in fixed.items():
        if name in given and getattr(owners[name], name) != value:
            raise ConfigError(f"--{name.replace('_', '-')} {getattr(owners[name], name)!r} differs from the dataset's "
                              f"{value!r} ({path}); prepare the dataset again with the new setting")
    data_given = sorted(given & {f.name for f in dataclasses.fields(DataConfig)} - {"paths"})
    if data_given:
        raise ConfigError(f"--{data_given[0].replace('_', '-')}: a prepared dataset's records were chosen when it was "
                          f"prepared ({path}); prepare it again with the new setting")


def prepared_with(ds: Dataset, cfg: Config) -> bool:
    """Whether ``ds`` holds exactly what preparing ``cfg`` would give (same data, tokenizer, split)."""
    m = ds.manifest
    return (not ds.cut and m["data"] == json.loads(json.dumps(dataclasses.asdict(cfg.data)))
            and m["tokenizer"] == {name: getattr(cfg.model, name) for name in TOKENIZER_FIELDS}
            and m.get("vocabulary_from") == cfg.train.init_from
            and m["split"] == {"test_split": cfg.train.test_split, "seed": cfg.train.seed,
                               "test_data": list(cfg.train.test_data)})


def digest(seqs: Sequences, y: np.ndarray) -> str:
    """A fingerprint of some reviews' token ids and labels: the same data gives the same digest."""
    hasher = hashlib.sha256(np.asarray(y, dtype=np.int64).tobytes())
    hasher.update(np.asarray(seqs.lengths, dtype=np.int64).tobytes())
    for start in range(0, len(seqs), CHUNK):
        chunk = [np.asarray(seqs[i], dtype=np.int64) for i in range(start, min(start + CHUNK, len(seqs)))]
        if chunk:
            hasher.update(np.concatenate(chunk).tobytes())
    return hasher.hexdigest()[:32]


HASH_SAMPLE = 1_000_000  # training reviews fingerprinted at most (8 MB in a model directory); beyond, a sample


def review_hashes(seqs: Sequences, start: int = 0, stop: int | None = None) -> np.ndarray:
    """(n,) uint64: a fingerprint of each review's token ids (whole reviews, as the model's tokenizer
    numbers them), of reviews ``start`` to ``stop``: equal reviews, equal hashes; 64 bits, so that
    millions of reviews do not collide by chance."""
    digests = b"".join(hashlib.blake2b(np.asarray(seqs[i], dtype="<i4").tobytes(), digest_size=8).digest()
                       for i in range(start, len(seqs) if stop is None else min(stop, len(seqs))))
    return np.frombuffer(digests, dtype="<u8").astype(np.uint64)


def held_out_hashes(test: Sequences, train: Sequences) -> np.ndarray:
    """The fingerprints of the test reviews that only the test part holds: an empty review, or one
    the training part also holds (a duplicate within the data, which the labelled training part
    teaches the model anyway), is left out. What a run's other texts must not hold."""
    hashes = review_hashes(test)[test.lengths > 0]
    return hashes[~np.isin(hashes, review_hashes(train))]


def hash_sample(hashes: np.ndarray, most: int = HASH_SAMPLE) -> tuple[np.ndarray, int | None]:
    """The distinct ``hashes`` sorted, and None; or, where more than ``most`` are distinct, the
    ``most`` smallest and the largest of them (the bound): hashes are uniform, so those below the
    bound are a fair sample, and any review's hash says whether it would be in that sample."""
    distinct = np.unique(np.asarray(hashes, dtype=np.uint64))
    if len(distinct) <= most:
        return distinct, None
    kept = distinct[:most]
    return kept, int(kept[-1])


def merged_samples(samples: list[tuple[np.ndarray, int | None]]) -> tuple[np.ndarray, int | None]:
    """One fingerprint sample of several (each :func:`hash_sample`'s): the hashes under the smallest
    of their bounds, so that it is a fair sample of every set at once."""
    bounds = [bound for _, bound in samples if bound is not None]
    bound = min(bounds) if bounds else None
    kept = np.concatenate([np.asarray(hashes, np.uint64) for hashes, _ in samples] or [np.empty(0, np.uint64)])
    if bound is not None:
        kept = kept[kept <= np.uint64(bound)]
    merged, cut = hash_sample(kept)
    return merged, cut if cut is not None else bound


def fingerprint_sample(seqs: Sequences, most: int = HASH_SAMPLE, chunk: int = 1 << 16) -> tuple[np.ndarray, int | None]:
    """``hash_sample(review_hashes(seqs), most)``, a chunk of reviews at a time: memory bounded by
    ``most + chunk`` fingerprints, however many reviews (7M: 8 MB, not 56 MB and a list of 7M digests)."""
    kept, cut = np.empty(0, np.uint64), False
    for start in range(0, len(seqs), chunk):
        kept, bound = hash_sample(np.concatenate([kept, review_hashes(seqs, start, start + chunk)]), most)
        cut = cut or bound is not None
    return kept, (int(kept[-1]) if cut else None)


def texts_by_part(ds: Dataset, limit: int) -> tuple[list[str], list[str]]:
    """The raw texts of the training and held-out parts, re-read from the dataset's files.

    For scikit-learn's in-memory TF-IDF baseline, so bounded by ``limit`` training reviews.
    """
    if ds.manifest["n_train"] > limit:
        raise ConfigError(f"--baseline fits scikit-learn's TF-IDF + logistic regression in memory, up to {limit:,} "
                          f"training reviews; this dataset has {ds.manifest['n_train']:,}. Use --limit, or leave "
                          "--baseline off")
    parts: tuple[list[str], list[str]] = ([], [])
    for row, text in iter_texts(ds):
        parts[int(ds.split[row])].append(text)
    return parts
