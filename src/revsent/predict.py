"""Batch prediction over texts or files, and the output writers (JSON lines, CSV, Parquet)."""
from __future__ import annotations

import csv
import dataclasses
import functools
import io
import os
import sys
from pathlib import Path
from typing import IO, Iterable, Iterator

import numpy as np
import orjson

from .artifacts import temp_beside
from .data import RecordReader
from .errors import ConfigError, DataError
from .export import BACKENDS
from .metrics import decide

CHUNK = 8192  # records predicted at a time: bounded memory on files of any size
OUTPUT_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


def rows(ids: list[str | None], proba: np.ndarray, classes: list[str], with_id: bool = False,
         threshold: float | None = None) -> Iterator[dict]:
    """One output record per input: ``id`` (from a file; null where a record has none), ``label``
    (by the model's ``threshold`` where it has one) and ``prob_<class>`` s. The columns are the
    same for every row of a run."""
    best = decide(proba, threshold)
    for record_id, p, k in zip(ids, proba, best):
        row = {"id": record_id} if with_id else {}
        row["label"] = classes[k]
        row.update({f"prob_{name}": round(float(v), 6) for name, v in zip(classes, p)})
        yield row


class Writer:
    """Writes rows to a file atomically (temp file, renamed at ``close``) or to stdout (JSON lines)."""

    def __init__(self, path: str | None, classes: list[str], force: bool = False):
        self.path, self.classes = path, classes
        self.format = "jsonl" if path in (None, "-") else OUTPUT_FORMATS.get(Path(path).suffix.lower())
        if self.format is None:
            raise ConfigError(f"--output {path}: unknown extension; use .jsonl, .csv or .parquet")
        if path not in (None, "-") and Path(path).is_dir():
            raise ConfigError(f"--output {path}: is a directory; give a file name")
        if path not in (None, "-") and not Path(path).resolve().parent.is_dir():
            raise ConfigError(f"--output {path}: folder {Path(path).parent} does not exist")
        if path not in (None, "-") and Path(path).exists() and not force:
            raise ConfigError(f"--output {path}: file exists; pass --force to overwrite it")
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
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self._handle, table.schema)
            self._parquet.write_table(table.cast(self._parquet.schema))

    def close(self, ok: bool = True) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._tmp is None:
            return
        self._handle.close()
        if ok:
            os.replace(self._tmp, self.path)
        else:
            Path(self._tmp).unlink(missing_ok=True)


def stdin_records() -> Iterator[tuple[str | None, str]]:
    """One review per line; blank lines are not reviews."""
    for number, raw in enumerate(sys.stdin.buffer, start=1):
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise DataError("stdin", "undecodable bytes (not UTF-8)", line=number) from None
        if text.strip():
            yield None, text


def predict(model_dir: str | Path, texts: Iterable[str] = (), *, input: str | None = None,
            output: str | None = None, force: bool = False, batch_size: int = 256,
            device: str = "auto", threads: int | None = None, backend: str = "torch", **data_options) -> dict:
    """Predict ``texts`` and/or every record of ``input`` (``-``: stdin, one review a line).

    Writes to ``output`` (.jsonl/.csv/.parquet; stdout JSON lines when None) and returns counts.
    ``data_options`` are DataConfig fields for reading ``input`` (``text_field``, ``format``...).
    ``backend="onnx"`` runs the model's ONNX export on onnxruntime and never imports PyTorch.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"The 'batch_size' parameter must be an int >= 1. Got {batch_size!r} instead.")
    if backend not in BACKENDS:
        raise ConfigError(f"The 'backend' parameter must be one of {', '.join(BACKENDS)}. Got {backend!r} instead.")
    if backend == "onnx":
        from .export import OnnxClassifier

        if device not in ("auto", "cpu"):
            raise ConfigError(f"--device {device} needs the torch backend; the onnx backend runs on the CPU")
        runner = OnnxClassifier(model_dir, threads)
        cfg, classes, encoder, threshold = runner.config_, runner.classes_, runner.encoder_, runner.threshold_
        probabilities = functools.partial(runner.probabilities, batch_size=batch_size)
    else:
        from .artifacts import load_model
        from .device import resolve_device, set_threads
        from .model import class_probabilities

        set_threads(threads)
        torch_device = resolve_device(device)
        cfg, classes, encoder, model = load_model(model_dir, torch_device)
        threshold = model.decision_threshold
        probabilities = functools.partial(class_probabilities, model, batch_size=batch_size, device=torch_device)
    writer = Writer(output, classes, force=force)
    reader = None
    predicted = 0
    try:
        sources: list[Iterable[tuple[str | None, str]]] = [((None, t) for t in texts)]
        if input == "-":
            sources.append(stdin_records())
        elif input is not None:
            fresh = {"paths": (input,), "format": "auto", "limit": None, "category": None, "business": None,
                     "label_field": None, "stars_field": None, "id_field": None}
            data_cfg = dataclasses.replace(cfg.data, **{**fresh, **data_options})
            reader = RecordReader(data_cfg, need_labels=False)
            sources.append((r.id, r.text) for r in reader)
        for chunk in _chunks((pair for source in sources for pair in source), CHUNK):
            ids, chunk_texts = zip(*chunk)
            proba = probabilities(encoder.encode(list(chunk_texts)))
            writer.write(list(rows(list(ids), proba, classes, with_id=reader is not None, threshold=threshold)))
            predicted += len(chunk)
        if predicted == 0:
            raise DataError(input or "input", "nothing to predict: give texts, --input FILE or --input -")
    except BaseException:
        writer.close(ok=False)
        raise
    writer.close()
    result = {"predicted": predicted, "output": output or "stdout"}
    if reader is not None:
        result.update(reader.tally.as_dict())
    return result


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
