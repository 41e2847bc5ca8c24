"""Batch prediction over texts or files, and the output writers (JSON lines, CSV, Parquet).

    texts, --input FILE / stdin ──► chunks ──► encoder ──► probabilities ──► rows ──► Writer
                      │ bad rows (--skip-bad)                               known_words
                      └──────────► SkipLog (OUTPUT.skipped.jsonl)

Every prediction carries ``known_words``: how many of its words the model's vocabulary knows.
At 0 the model read nothing of the text and its label is the model's prior, not a reading.
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import io
import itertools
import os
import sys
from pathlib import Path
from typing import IO, Iterable, Iterator

import numpy as np
import orjson

from .artifacts import check_writable, read_config, temp_beside
from .data import RecordReader
from .data.records import Record
from .errors import ConfigError, DataError
from .export import BACKENDS
from .metrics import decide

CHUNK = 8192  # records predicted at a time: bounded memory on files of any size
OUTPUT_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
SKIPPED_SUFFIX = ".skipped.jsonl"  # OUTPUT.skipped.jsonl: the rows --skip-bad left out, one JSON object each
KEEP_ALL = "all"  # --keep all: every column of the input


@dataclasses.dataclass(frozen=True)
class Item:
    """One review to predict and where it came from: ``index`` (its place among the texts given
    directly), ``id`` and ``kept`` columns (a record of a file); None where it does not apply."""

    text: str
    index: int | None = None
    id: str | None = None
    kept: dict | None = None


def rows(items: list[Item], proba: np.ndarray, known: np.ndarray, classes: list[str], *, with_index: bool = False,
         with_id: bool = False, keep: tuple[str, ...] = (), threshold: float | None = None) -> Iterator[dict]:
    """One output record per input: ``index`` and ``text`` (texts given directly), ``id`` (from a
    file; null where a record has none), the ``keep`` columns of the input (renamed ``input_<name>``
    where they clash with an output field), ``label`` (by the model's ``threshold`` where it has
    one), ``prob_<class>`` s and ``known_words``. The columns are the same for every row of a run."""
    best = decide(proba, threshold)
    outputs = {"index", "text", "id", "label", "known_words", *(f"prob_{name}" for name in classes)}
    names = [(column, f"input_{column}" if column in outputs else column) for column in keep]
    for item, p, k, n in zip(items, proba, best, known):
        row: dict = {}
        if with_index:
            row["index"], row["text"] = item.index, item.text if item.index is not None else None
        if with_id:
            row["id"] = item.id
        row.update({name: _cell((item.kept or {}).get(column)) for column, name in names})
        row["label"] = classes[k]
        row.update({f"prob_{name}": round(float(v), 6) for name, v in zip(classes, p)})
        row["known_words"] = int(n)
        yield row


def _cell(value):
    """A kept input value as one cell: nested JSON (a Yelp ``attributes`` object) as its JSON text."""
    return orjson.dumps(value).decode() if isinstance(value, (dict, list)) else value


def check_output(path: str | None, force: bool = False) -> str | None:
    """The output format of ``path`` (None: stdout), refusing before any work a path that cannot
    be written or that exists without ``force``."""
    if path in (None, "-"):
        return "jsonl"
    fmt = OUTPUT_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ConfigError(f"--output {path}: unknown extension; use .jsonl, .csv or .parquet")
    if Path(path).is_dir():
        raise ConfigError(f"--output {path}: is a directory; give a file name")
    if not Path(path).resolve().parent.is_dir():
        raise ConfigError(f"--output {path}: folder {Path(path).parent} does not exist")
    if Path(path).exists() and not force:
        raise ConfigError(f"--output {path}: file exists; pass --force to overwrite it")
    check_writable(path, "--output")
    return fmt


class Writer:
    """Writes rows to a file atomically (temp file, renamed at ``close``) or to stdout (JSON lines)."""

    def __init__(self, path: str | None, classes: list[str], force: bool = False):
        self.path, self.classes = path, classes
        self.format = check_output(path, force)
        self._tmp: str | None = None
        self._parquet = None
        self._csv = None
        if path in (None, "-"):
            self._handle: IO[bytes] = sys.stdout.buffer
            return
        fd, self._tmp = temp_beside(Path(path))
        self._handle = os.fdopen(fd, "wb")

    def write(self, batch: list[dict]) -> None:
        if not batch:
            return
        if self.format == "jsonl":
            self._handle.write(b"".join(orjson.dumps(row) + b"\n" for row in batch))
            self._handle.flush()
        elif self.format == "csv":
            text = io.StringIO()
            if self._csv is None:
                self._csv = list(batch[0])
                csv.writer(text).writerow(self._csv)
            csv.DictWriter(text, fieldnames=self._csv).writerows(batch)
            self._handle.write(text.getvalue().encode("utf-8"))
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pylist(batch)
            if self._parquet is None:  # a column empty in the first batch (no ids yet) is text, not null
                schema = pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in table.schema])
                self._parquet = pq.ParquetWriter(self._handle, schema)
            self._parquet.write_table(table.cast(self._parquet.schema))

    def close(self, ok: bool = True) -> None:
        """Finish the output (``ok``) or drop it; a failure here (a full disk) drops it too."""
        try:
            if self._parquet is not None:
                self._parquet.close()
            if self._tmp is not None:
                self._handle.close()
                if ok:
                    os.replace(self._tmp, self.path)
        except BaseException:
            ok = False
            raise
        finally:
            if self._tmp is not None and not ok:
                Path(self._tmp).unlink(missing_ok=True)


class SkipLog:
    """The records ``--skip-bad`` left out, as JSON lines beside the output (``OUTPUT.skipped.jsonl``):
    ``{"line", "id", "reason", "problem"}``, ``line`` being the line (the row of a Parquet file)."""

    def __init__(self, output: str):
        self.path = Path(output + SKIPPED_SUFFIX)
        self.count = 0
        fd, self._tmp = temp_beside(self.path)
        self._handle = os.fdopen(fd, "wb")

    def add(self, line: int | None, record_id: str | None, reason: str, problem: str) -> None:
        self._handle.write(orjson.dumps({"line": line, "id": record_id, "reason": reason, "problem": problem}) + b"\n")
        self.count += 1

    def close(self, ok: bool = True) -> str | None:
        """Keep the list (returning its path) when the output is kept and something was skipped;
        a list left by an earlier run of the same output goes with the output it described."""
        self._handle.close()
        if ok and self.count:
            os.replace(self._tmp, self.path)
            return str(self.path)
        Path(self._tmp).unlink(missing_ok=True)
        if ok:
            self.path.unlink(missing_ok=True)
        return None


@dataclasses.dataclass(slots=True)
class KeptRecord(Record):
    kept: dict | None = None  # the input's columns named by --keep


class PredictReader(RecordReader):
    """A :class:`RecordReader` of texts that also keeps the input columns named by ``keep`` (checked
    against the file's columns when they are resolved) and reports each bad record to ``on_skip``."""

    def __init__(self, cfg, keep: tuple[str, ...] = (), on_skip=None):
        super().__init__(cfg, need_labels=False)
        self.keep, self.on_skip = keep, on_skip
        self.columns: tuple[str, ...] = ()  # the kept columns, in output order (every column for --keep all)
        self._fields = (None, None)  # (id field, kept columns) of the file being read
        self._row_id = None  # the id of the row being made, for a report if it turns out bad

    def _resolve_fields(self, source, fields):
        text_field, label_field, id_field = super()._resolve_fields(source, fields)
        if KEEP_ALL in self.keep:  # every column but the id, which is the output's own
            columns = tuple(name for name in fields if name != id_field)
        else:
            missing = [name for name in self.keep if name not in fields]
            if missing:
                raise DataError(source.name, f"no column {missing[0]!r} to --keep; its columns are: "
                                f"{', '.join(fields) or 'none'}")
            columns = self.keep
        self.columns = self.columns or columns
        self._fields = (id_field, columns)
        return text_field, label_field, id_field

    def _make_record(self, row, text_field, label_field, id_field):
        value = row.get(id_field) if id_field else None
        self._row_id = None if value is None else str(value)
        record, problem = super()._make_record(row, text_field, label_field, id_field)
        if problem is None or problem[0].startswith("filtered:"):
            self._row_id = None  # no report follows; a later unreadable row has no id
        if record is not None and self.keep:
            record = KeptRecord(record.text, record.label, record.id, {c: row.get(c) for c in self._fields[1]})
        return record, problem

    def _bad(self, source, line, reason, problem):
        super()._bad(source, line, reason, problem)  # raises unless --skip-bad
        if self.on_skip is not None:
            self.on_skip(line, self._row_id, reason, problem)
        self._row_id = None


def stdin_records() -> Iterator[Item]:
    """One review per line; blank lines are not reviews."""
    for number, raw in enumerate(sys.stdin.buffer, start=1):
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise DataError("stdin", "undecodable bytes (not UTF-8)", line=number) from None
        if text.strip():
            yield Item(text)


def predict(model_dir: str | Path, texts: Iterable[str] = (), *, input: str | None = None,
            output: str | None = None, force: bool = False, keep: Iterable[str] = (), batch_size: int = 256,
            device: str = "auto", threads: int | None = None, backend: str = "torch", **data_options) -> dict:
    """Predict ``texts`` and/or every record of ``input`` (``-``: stdin, one review a line).

    Writes to ``output`` (.jsonl/.csv/.parquet; stdout JSON lines when None) and returns counts:
    ``predicted``, ``no_known_words`` (texts of which the vocabulary knows no word), the reader's
    tallies and, with ``skip_bad``, ``skipped_list`` (the ``OUTPUT.skipped.jsonl`` written, or None).
    Texts given directly come out with their ``index`` and ``text``; records of a file with their
    ``id`` and the columns named by ``keep`` (``"all"``: every column). A bad argument, an existing
    ``output`` without ``force`` or a ``keep`` column the file lacks is refused before any work.
    ``data_options`` are DataConfig fields for reading ``input`` (``text_field``, ``format``...).
    ``backend="onnx"`` runs the model's ONNX export on onnxruntime and never imports PyTorch.
    """
    texts, keep = _check_arguments(texts, input, keep, batch_size, backend, device)
    check_output(output, force)
    cfg, classes = read_config(model_dir)
    skip_log = SkipLog(output) if output not in (None, "-") and data_options.get("skip_bad") else None
    writer = None
    predicted = no_words = 0
    try:
        reader, items = read_inputs(cfg, texts, input, keep, skip_log, data_options)  # the file's first record read
        encoder, probabilities, threshold = _backend(model_dir, backend, device, threads, batch_size)
        writer = Writer(output, classes, force=force)
        columns = dict(with_index=bool(texts), with_id=reader is not None, threshold=threshold,
                       keep=reader.columns if reader is not None else ())
        for chunk in _chunks(items, CHUNK):
            seqs = encoder.encode([item.text for item in chunk])
            known = encoder.known_words(seqs)
            writer.write(list(rows(chunk, probabilities(seqs), known, classes, **columns)))
            predicted += len(chunk)
            no_words += int((known == 0).sum())
        if predicted == 0:
            raise DataError(input or "input", "nothing to predict: give texts, --input FILE or --input -")
    except BaseException:
        if writer is not None:
            writer.close(ok=False)
        if skip_log is not None:
            skip_log.close(ok=False)
        raise
    writer.close()
    result = {"predicted": predicted, "output": output or "stdout", "no_known_words": no_words}
    if reader is not None:
        result.update(reader.tally.as_dict())
    if skip_log is not None:
        result["skipped_list"] = skip_log.close()
    return result


def _check_arguments(texts, input, keep, batch_size, backend, device) -> tuple[list[str], tuple[str, ...]]:
    if isinstance(texts, str):
        raise DataError("texts", "expected a list of texts, got one string; wrap it in a list")
    texts, keep = list(texts), tuple(keep or ())
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"The 'batch_size' parameter must be an int >= 1. Got {batch_size!r} instead.")
    if backend not in BACKENDS:
        raise ConfigError(f"The 'backend' parameter must be one of {', '.join(BACKENDS)}. Got {backend!r} instead.")
    if backend == "onnx" and device not in ("auto", "cpu"):
        raise ConfigError(f"--device {device} needs the torch backend; the onnx backend runs on the CPU")
    if keep and input in (None, "-"):
        raise ConfigError(f"--keep {keep[0]}: keeps columns of an --input FILE; "
                          f"{'stdin has none' if input == '-' else 'give --input FILE'}")
    if not texts and input is None:
        raise DataError("input", "nothing to predict: give texts, --input FILE or --input -")
    return texts, keep


def read_inputs(cfg, texts: list[str], input: str | None, keep: tuple[str, ...] = (), skip_log: SkipLog | None = None,
                data_options: dict | None = None) -> tuple[PredictReader | None, Iterator[Item]]:
    """The reader of ``input`` (None for stdin or none) and every :class:`Item` of ``texts`` then
    ``input``, ``cfg`` being the model's (its text field unless ``data_options`` say otherwise).
    The file's first record is read here: a wrong field or --keep column is refused before any work."""
    given: Iterator[Item] = (Item(text, index=i) for i, text in enumerate(texts))
    if input is None:
        return None, given
    if input == "-":
        return None, itertools.chain(given, stdin_records())
    fresh = {"paths": (input,), "format": "auto", "limit": None, "category": None, "business": None,
             "label_field": None, "stars_field": None, "id_field": None}
    reader = PredictReader(dataclasses.replace(cfg.data, **{**fresh, **(data_options or {})}), keep,
                           on_skip=skip_log.add if skip_log is not None else None)
    records = iter(reader)
    first = list(itertools.islice(records, 1))
    from_file = (Item(r.text, id=r.id, kept=getattr(r, "kept", None)) for r in itertools.chain(first, records))
    return reader, itertools.chain(given, from_file)


def _backend(model_dir, backend: str, device: str, threads: int | None, batch_size: int):
    """The model's encoder, a function from encoded texts to probabilities, and its decision threshold."""
    if backend == "onnx":
        from .export import OnnxClassifier

        runner = OnnxClassifier(model_dir, threads)
        return runner.encoder_, functools.partial(runner.probabilities, batch_size=batch_size), runner.threshold_
    from .artifacts import load_model
    from .device import resolve_device, set_threads
    from .model import class_probabilities

    set_threads(threads)
    torch_device = resolve_device(device)
    _, _, encoder, model = load_model(model_dir, torch_device)
    probabilities = functools.partial(class_probabilities, model, batch_size=batch_size, device=torch_device)
    return encoder, probabilities, model.decision_threshold


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
