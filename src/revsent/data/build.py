"""Building a prepared dataset (``revsent prepare``) in one streaming pass over the input.

    DATA ──► records ──► words ──► provisional word ids, lengths ──► spools  (one pass over the
               │                   (worker processes)                         input; nothing held
               └──► label codes ──────────────────────────────────► spool     grows with N)
    spools ──► counts over the training split ──► vocabulary ──► ids.bin, offsets.npy, labels.npy
               (NumPy, streamed in chunks)

It is built in a hidden folder beside its destination and renamed when complete, so a killed or
failed ``prepare`` never leaves a directory that opens as a dataset. The files are described in
:mod:`revsent.data.store`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from .. import artifacts
from ..config import Config, ModelConfig
from ..errors import ArtifactError, DataError
from ..text import PAD, UNK, TextEncoder, rank_vocabulary, words
from .records import RecordReader, describe_counts, describe_tally
from .splits import heldout_mask
from .store import (CHUNK, FORMAT, FORMAT_VERSION, IDS, LABELS, MANIFEST, OFFSETS, SPLIT, TOKENIZER,
                    TOKENIZER_FIELDS, Dataset, is_dataset, sha256_of)

TOKEN_CHUNK = 1 << 20  # provisional ids per NumPy step in the later passes (~20 MB of temporaries)
ROW_BLOCK = 1 << 16  # per-review numbers (lengths, label codes) read back from their spools at a time
POOL_AFTER = 4  # chunks tokenized in-process before worker processes pay for themselves

_WORKER_VOCAB: dict[str, int] = {}
_WORKER_GENERATION = [0]  # bumped each time this process's word table starts afresh
WORKER_WORDS = 1 << 20  # a worker's table is emptied beyond this many words (the main table has them)


def _reset_worker() -> None:
    _WORKER_VOCAB.clear()
    _WORKER_GENERATION[0] += 1


def _tokenize(texts: list[str]) -> tuple[tuple[int, int], np.ndarray, np.ndarray, list[str]]:
    """Provisional ids of ``texts`` from this process's own word table, and the words it added."""
    if len(_WORKER_VOCAB) > WORKER_WORDS:  # bounded, whatever the corpus's count of distinct words
        _reset_worker()
    table, before = _WORKER_VOCAB, len(_WORKER_VOCAB)
    seqs = [[table.setdefault(w, len(table)) for w in words(text)] for text in texts]
    lengths = np.fromiter(map(len, seqs), dtype=np.int32, count=len(seqs))
    ids = np.fromiter(itertools.chain.from_iterable(seqs), dtype=np.uint32, count=int(lengths.sum()))
    added = list(itertools.islice(table, before, None))  # dicts keep insertion order
    return (os.getpid(), _WORKER_GENERATION[0]), ids, lengths, added


class _Spool:
    """What the reading pass writes to disk as it comes, so that nothing held grows with the
    number of reviews: provisional ids (uint32), review lengths and label codes (int32). One global
    word table is merged from the workers' tables (each worker numbers its words itself, so no
    process waits for another); it grows with the number of distinct words only."""

    def __init__(self, build: Path):
        self.build = build
        self.ids, self.lengths, self.codes = (open(build / name, "wb") for name in SPOOLS)
        self.words: list[str] = []
        self.index: dict[str, int] = {}
        self.remaps: dict[tuple[int, int], np.ndarray] = {}  # (pid, generation) -> its ids' global ids

    def add(self, result) -> None:
        worker, ids, lengths, added = result
        if worker not in self.remaps:  # a worker's table started afresh: its older one is done with
            for old in [key for key in self.remaps if key[0] == worker[0]]:
                del self.remaps[old]
        fresh = np.fromiter((self._global(w) for w in added), dtype=np.uint32, count=len(added))
        self.remaps[worker] = np.concatenate([self.remaps.get(worker, np.zeros(0, np.uint32)), fresh])
        self.ids.write(self.remaps[worker][ids].tobytes())
        self.lengths.write(lengths.tobytes())

    def _global(self, word: str) -> int:
        gid = self.index.get(word)
        if gid is None:
            gid = self.index[word] = len(self.words)
            self.words.append(word)
        return gid

    def close(self) -> None:
        for handle in (self.ids, self.lengths, self.codes):
            handle.close()

    def remove(self) -> None:
        for name in SPOOLS:
            (self.build / name).unlink(missing_ok=True)


SPOOLS = ("spool-ids.bin", "spool-lengths.bin", "spool-codes.bin")


def prepare(cfg: Config, out: str | Path, *, force: bool = False, work_dir: str | Path | None = None,
            progress=None, encoder: TextEncoder | None = None, labelled: bool = True) -> Dataset:
    """Read ``cfg.data``, fit the vocabulary on the training split and write the dataset ``out``.

    ``encoder``: a model's vocabulary to use instead (fine-tuning that model, ``--init-from``).
    ``labelled=False``: texts alone (a language model's, ``revsent pretrain``): no classes, every
    label 0, and ``cfg.lm.heldout`` of the texts held out (for perplexity).

    ``cfg.model`` gives the tokenizer (vocab_size, oov, max_len, truncate); ``cfg.train`` the
    split (test_split and seed, or test_data files as the held-out part). Built in ``work_dir``
    (default: beside ``out``) and renamed into place when complete.
    """
    out = Path(out)
    _check_out(out, force)
    work = Path(work_dir) if work_dir is not None else out.parent
    work.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(work, out.name)
    build = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-{os.getpid()}-", dir=work))
    os.chmod(build, 0o777 & ~artifacts.umask())  # mkdtemp's 0700 would lock out the user's group once renamed
    try:
        _build(cfg, build, progress, encoder, labelled)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():  # --force: the old dataset goes only once the new one is complete
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / "dataset")
            os.replace(build, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(build, out)
    except OSError as exc:
        shutil.rmtree(build, ignore_errors=True)
        raise ArtifactError(f"{out}: cannot be written ({exc.strerror or exc}); no dataset was published") from None
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return Dataset.open(out, verify=False)


def _remove_stale_builds(work: Path, name: str) -> None:
    """Remove what killed prepares of ``name`` left behind (their process is gone)."""
    for folder in work.glob(f".{name}.building-*"):
        try:
            pid = int(folder.name[len(f".{name}.building-"):].split("-", 1)[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (ValueError, PermissionError):
            pass


def _check_out(out: Path, force: bool) -> None:
    artifacts.check_writable(out)
    if out.exists() and not out.is_dir():
        raise ArtifactError(f"{out}: exists and is not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()):
        if not is_dataset(out):
            raise ArtifactError(f"{out}: directory is not empty and holds no dataset; choose another --out")
        if not force:
            raise ArtifactError(f"{out}: a dataset is already there; pass --force to replace it")


def _read(cfg: Config, spool: _Spool, labelled: bool = True):
    """One pass over the inputs into the spool; returns the readers, the label of each code, the
    classes and the split (n,) uint8 (0 training, 1 held out)."""
    names: dict[str, int] = {}  # label -> code in order of appearance; class ids come later
    reader = RecordReader(cfg.data, need_labels=labelled)
    parts = [reader]
    test_reader = None
    if cfg.train.test_data and labelled:
        test_reader = RecordReader(dataclasses.replace(cfg.data, paths=cfg.train.test_data, limit=None))
        parts.append(test_reader)
    sizes, seen = [], []
    with _Tokenizers() as tokenize:
        for part_reader in parts:
            count, codes_seen = 0, set()
            for chunk in _chunks(part_reader, CHUNK):
                codes = np.fromiter((names.setdefault(r.label, len(names)) for r in chunk), np.int32, len(chunk))
                spool.codes.write(codes.tobytes())
                codes_seen.update(np.unique(codes).tolist())
                tokenize.submit([record.text for record in chunk], spool.add)
                count += len(chunk)
            tokenize.drain(spool.add)
            _check_read(part_reader, count)
            sizes.append(count)
            seen.append(codes_seen)
    spool.close()
    label_of = list(names)  # code -> label
    if not labelled:  # texts alone: a part of them held out
        return reader, None, label_of, [], heldout_mask(sizes[0], cfg.lm.heldout, cfg.train.seed, "--heldout")
    train_labels = {label_of[c] for c in seen[0]}
    classes = reader.classes(train_labels)
    if len(train_labels) < 2:
        raise DataError(", ".join(reader.paths), f"only one class ({label_of[0]!r}) in {sizes[0]} records; "
                        "a classifier needs at least two")
    _check_classes(reader, train_labels, sizes[0])
    if test_reader is not None:
        unknown = sorted({label_of[c] for c in seen[1]} - set(classes))
        if unknown:
            raise DataError(", ".join(test_reader.paths), f"labels {unknown[:5]} are not among the training classes {classes}")
    if test_reader is not None:
        split = np.concatenate([np.zeros(sizes[0], np.uint8), np.ones(sizes[1], np.uint8)])
    else:
        split = heldout_mask(sizes[0], cfg.train.test_split, cfg.train.seed)
    return reader, test_reader, label_of, classes, split


def _build(cfg: Config, build: Path, progress, encoder: TextEncoder | None, labelled: bool = True) -> dict:
    started = time.perf_counter()
    log = progress.log if progress is not None else (lambda message: None)
    vocabulary_from = None if encoder is None else cfg.train.init_from
    spool = _Spool(build)
    try:
        reader, test_reader, label_of, classes, split = _read(cfg, spool, labelled)
        n = len(split)
        model_cfg = cfg.model
        reading = _reading(reader, test_reader, time.perf_counter() - started)
        if encoder is None:
            log(f"{reading}; fitting the vocabulary")
            counts = _train_counts(build, split, len(spool.words))
            vocab = rank_vocabulary(((w, int(c)) for w, c in zip(spool.words, counts) if c), model_cfg.vocab_size,
                                    model_cfg.oov, model_cfg.min_count)
        else:
            log(f"{reading}; using the vocabulary of {cfg.train.init_from}")
            vocab = encoder.vocab
        table = np.full(len(spool.words), 1 if model_cfg.oov else -1, dtype=np.int32)  # provisional -> final id
        for word, i in vocab.items():
            if word not in (PAD, UNK) and word in spool.index:
                table[spool.index[word]] = i
        del spool.index, spool.words
        dtype = np.dtype(np.uint16 if model_cfg.vocab_size <= 1 << 16 else np.uint32)
        n_tokens, ids_sha256 = _write_ids(build, n, table, model_cfg, dtype)
        label_dtype = np.dtype(np.uint8 if len(classes) <= 255 else np.int32)
        index = {label: i for i, label in enumerate(classes)}
        class_of = np.array([index.get(label, 0) for label in label_of], dtype=label_dtype)  # texts alone: 0
        _write_labels(build, n, class_of)
    finally:
        spool.close()
        spool.remove()
    encoder = TextEncoder(vocab, model_cfg.vocab_size, model_cfg.oov, model_cfg.max_len, model_cfg.truncate)
    files = {IDS: {"bytes": (build / IDS).stat().st_size, "sha256": ids_sha256}}
    for name in (OFFSETS, LABELS):
        files[name] = {"bytes": (build / name).stat().st_size, "sha256": sha256_of(build / name)}
    for name, write in ((SPLIT, lambda f: np.save(f, split)), (TOKENIZER, lambda f: f.write(encoder.to_str().encode()))):
        with open(build / name, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        files[name] = {"bytes": (build / name).stat().st_size, "sha256": sha256_of(build / name)}
    from .. import __version__  # the package's own: it also runs from a source tree, not installed

    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "revsent_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "id": hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:32],
        "n": n, "n_train": int((split == 0).sum()), "n_heldout": int((split == 1).sum()),
        "n_tokens": n_tokens, "ids_dtype": dtype.name, "classes": classes,
        "label_scheme": (reader.star_scheme or "labels") if labelled else "none",
        "data": dataclasses.asdict(cfg.data),
        "tokenizer": {name: getattr(model_cfg, name) for name in TOKENIZER_FIELDS},
        "whole_reviews": True,  # the ids of whole reviews: max_len cuts the LSTM's input at batching
        "vocabulary_from": vocabulary_from,
        "split": {"test_split": cfg.train.test_split, "seed": cfg.train.seed, "test_data": list(cfg.train.test_data)},
        "counts": reader.tally.as_dict(),
        "heldout_counts": test_reader.tally.as_dict() if test_reader is not None else None,
        "seconds": round(time.perf_counter() - started, 2),
        "files": files,
    }
    with open(build / MANIFEST, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(manifest, indent=2) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    n_words = len(vocab) - 1 - (not model_cfg.oov)
    log(f"prepared {n} reviews ({manifest['n_tokens']} tokens, vocabulary {n_words} words) "
        f"in {manifest['seconds']:.1f}s")
    return manifest


def _npy_header(handle, dtype, n: int) -> None:
    """The header of a .npy file of ``n`` values, written before the values are streamed after it."""
    np.lib.format.write_array_header_1_0(handle, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                  "fortran_order": False, "shape": (n,)})


def _write_ids(build: Path, n: int, table: np.ndarray, model_cfg: ModelConfig, dtype) -> tuple[int, str]:
    """The final ids (``table`` applied to the spool, unknown words dropped; whole reviews) into ids.bin
    and their offsets into offsets.npy, both streamed; returns the token count and ids.bin's SHA-256."""
    digest = hashlib.sha256()
    total = 0
    with open(build / IDS, "wb") as handle, open(build / OFFSETS, "wb") as offsets:
        _npy_header(offsets, np.int64, n + 1)
        offsets.write(np.zeros(1, np.int64).tobytes())
        for _, ids, chunk_lengths in _spooled(build):
            final = table[ids]
            if not model_cfg.oov:  # unknown words are dropped, as Keras' texts_to_sequences does
                keep = final >= 0
                kept_before = np.concatenate([np.zeros(1, np.int64), np.cumsum(keep)])
                ends = np.cumsum(chunk_lengths)
                chunk_lengths = kept_before[ends] - kept_before[ends - chunk_lengths]
                final = final[keep]
            data = final.astype(dtype).tobytes()
            handle.write(data)
            digest.update(data)
            ends = total + np.cumsum(chunk_lengths, dtype=np.int64)
            offsets.write(ends.tobytes())
            total = int(ends[-1]) if len(ends) else total
        for file in (handle, offsets):
            file.flush()
            os.fsync(file.fileno())
    return total, digest.hexdigest()


def _write_labels(build: Path, n: int, class_of: np.ndarray) -> None:
    """labels.npy: the class id of each review, streamed from the spool of label codes."""
    with open(build / SPOOLS[2], "rb") as codes, open(build / LABELS, "wb") as labels:
        _npy_header(labels, class_of.dtype, n)
        while len(block := np.fromfile(codes, dtype=np.int32, count=ROW_BLOCK)):
            labels.write(class_of[block].tobytes())
        labels.flush()
        os.fsync(labels.fileno())


def _reading(reader: RecordReader, test_reader: RecordReader | None, seconds: float) -> str:
    """What reading did, in the counts the manifest keeps (and metrics.json after it): ``"read 300 records
    from FILE in 0.1s: 265 kept, 35 dropped (3 stars)"``, the held-out files' apart."""
    line = (f"read {reader.tally.read:,} records from {', '.join(reader.paths)} in {seconds:.1f}s: "
            f"{describe_counts(reader.tally.as_dict())}")
    if test_reader is not None:
        line += (f"; held out: read {test_reader.tally.read:,} records from {', '.join(test_reader.paths)}: "
                 f"{describe_counts(test_reader.tally.as_dict())}")
    return line


def _check_read(reader: RecordReader, count: int) -> None:
    if count == 0:
        raise DataError(", ".join(reader.paths), f"no usable records (read {reader.tally.read}: {describe_tally(reader.tally)})")


def _chunks(items, size: int) -> Iterator[list]:
    items = iter(items)
    while chunk := list(itertools.islice(items, size)):
        yield chunk


def _spooled(build: Path) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(first_row, provisional_ids, lengths)`` for runs of whole reviews, about TOKEN_CHUNK ids
    each, read back from the spools in order (plain reads: mapped pages of spools this size would
    count as the process' own memory)."""
    row = 0
    with open(build / SPOOLS[0], "rb") as ids, open(build / SPOOLS[1], "rb") as lengths:
        while len(block := np.fromfile(lengths, dtype=np.int32, count=ROW_BLOCK)):
            ends = np.cumsum(block, dtype=np.int64)
            start = token = 0
            while start < len(block):
                last = max(int(np.searchsorted(ends, token + TOKEN_CHUNK, side="right")), start + 1)
                stop = int(ends[last - 1])
                yield row + start, np.fromfile(ids, dtype=np.uint32, count=stop - token), block[start:last]
                start, token = last, stop
            row += len(block)


MAX_CLASSES = 1000  # more are not sentiment classes: an id, a date or free text read as the label
FEW_CLASSES = 20  # ... and beyond this many, each class needs two records on average


def _check_classes(reader, labels: set, n: int) -> None:
    """Refuse a label field that is not a set of classes (nearly every record its own value)."""
    if len(labels) > MAX_CLASSES or (len(labels) > FEW_CLASSES and len(labels) > n / 2):
        field = reader.cfg.label_field or "label"
        raise DataError(", ".join(reader.paths), f"{len(labels):,} different labels in {n:,} records: field {field!r} "
                        f"looks like an id or free text, not classes (at most {MAX_CLASSES:,}, each with several "
                        "records); name the label column with --label-field, or star ratings with --stars-field")


def _train_counts(build: Path, split: np.ndarray, n_words: int) -> np.ndarray:
    """How often each provisional word occurs in the training split."""
    counts = np.zeros(n_words, dtype=np.int64)
    for first, ids, chunk_lengths in _spooled(build):
        train = np.repeat(split[first: first + len(chunk_lengths)] == 0, chunk_lengths)
        counts += np.bincount(ids[train], minlength=n_words)
    return counts


class _Tokenizers:
    """Tokenizes chunks in this process first, then in worker processes (one per core) once the
    input proves large enough to repay starting them. Results come back in submission order."""

    def __init__(self):
        self.pool = None
        self.pending = []
        self.chunks_seen = 0

    def __enter__(self):
        _reset_worker()  # this process's table starts afresh with each dataset
        return self

    def submit(self, texts: list[str], handle) -> None:
        self.chunks_seen += 1
        if self.chunks_seen <= POOL_AFTER or (os.cpu_count() or 1) < 2:
            handle(_tokenize(texts))
            return
        if self.pool is None:
            import multiprocessing

            # fork where there is one: a spawned worker would re-run a user's script that calls
            # prepare() without a `__main__` guard. The workers run only Python and NumPy code.
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            self.pool = context.Pool(os.cpu_count(), initializer=_reset_worker)
        self.pending.append(self.pool.apply_async(_tokenize, (texts,)))
        while len(self.pending) > 2 * (os.cpu_count() or 1) or (self.pending and self.pending[0].ready()):
            handle(self.pending.pop(0).get())

    def drain(self, handle) -> None:
        while self.pending:
            handle(self.pending.pop(0).get())

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()


