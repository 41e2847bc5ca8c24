"""Rows out of files: JSON lines (Yelp's own files too), CSV/TSV, Parquet, gzip, the Yelp tar.

Every reader streams: it yields one row (a dict) at a time with its line or row number, and
never holds a whole file in memory. A row that cannot be parsed is yielded as a :class:`BadRow`
so that the caller decides whether to stop or to skip and count it.
"""
from __future__ import annotations

import csv
import gzip
import io
import os
import re
import sys
import tarfile
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import IO, Iterator

import orjson

from ..errors import DataError, shown

csv.field_size_limit(sys.maxsize)  # reviews can be long; the default 128 KiB limit is arbitrary

GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"


@dataclass(slots=True)
class BadRow:
    """A row that could not be read: ``reason`` is a short key, ``problem`` the full sentence."""

    reason: str
    problem: str


@dataclass(slots=True)
class Source:
    """One input: its display name, format and a way to open it as a binary stream."""

    name: str
    format: str  # jsonl | csv | tsv | parquet | tar
    path: str
    member: str | None = None  # the file inside a tar archive


def detect_format(path: str, requested: str = "auto") -> str:
    """The reader for ``path``: by extension, then by content; ``yelp`` means JSON lines."""
    if requested not in ("auto", "yelp"):
        return requested
    if requested == "yelp" and not path.endswith((".tar", ".tgz", ".tar.gz")):
        return "jsonl"
    name = path.lower()
    name = name[:-3] if name.endswith(".gz") and not name.endswith(".tar.gz") else name
    for suffixes, fmt in (
        ((".json", ".jsonl", ".ndjson"), "jsonl"),
        ((".csv",), "csv"),
        ((".tsv", ".tab"), "tsv"),
        ((".parquet", ".pq"), "parquet"),
        ((".tar", ".tgz", ".tar.gz"), "tar"),
    ):
        if name.endswith(suffixes):
            return fmt
    with _open_binary(path) as stream:
        head = stream.read(4096)
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if len(head) > 262 and head[257:262] == b"ustar":
        return "tar"
    if head.lstrip().startswith(b"{"):
        return "jsonl"
    first = head.split(b"\n", 1)[0]
    return "tsv" if first.count(b"\t") > first.count(b",") else "csv"


def open_source(path: str, fmt: str = "auto", kind: str = "review") -> Source:
    """Check that ``path`` exists and decide how to read it (a tar: find its ``kind`` file)."""
    if not os.path.exists(path):
        raise DataError(path, "no such file")
    if os.path.isdir(path):
        raise DataError(path, "is a directory; give the data file itself")
    try:
        fmt = detect_format(path, fmt)
    except OSError as exc:
        raise DataError(path, f"cannot be read ({exc.strerror or exc})") from None
    if fmt != "tar":
        return Source(name=path, format=fmt, path=path)
    member = _find_tar_member(path, kind)
    return Source(name=f"{path}/{member}", format="jsonl", path=path, member=member)


def iter_rows(source: Source) -> Iterator[tuple[int, dict | BadRow]]:
    """Yield ``(line_or_row_number, row)`` for every record of ``source``."""
    try:
        yield from _iter_rows(source)
    except (OSError, EOFError, tarfile.TarError, zlib.error) as exc:  # truncated gzip/tar, permissions
        raise DataError(source.name, f"cannot be read to the end ({type(exc).__name__}: {exc})") from None


def _iter_rows(source: Source) -> Iterator[tuple[int, dict | BadRow]]:
    if source.format == "parquet":
        yield from _parquet_rows(source)
        return
    with _open_source_stream(source) as stream:
        if source.format == "jsonl":
            yield from _jsonl_rows(stream)
        else:
            yield from _csv_rows(stream, source, delimiter="\t" if source.format == "tsv" else ",")


def _open_binary(path: str) -> IO[bytes]:
    raw = open(path, "rb")
    if raw.read(2) == GZIP_MAGIC:
        raw.close()  # gzip.open owns the file it opens, so closing the stream closes the file
        return gzip.open(path, "rb")  # type: ignore[return-value]
    raw.seek(0)
    return raw


class _TarMemberStream(io.RawIOBase):
    """A member of a tar opened in streaming mode, closing the archive with it."""

    def __init__(self, path: str, member: str):
        self._tar = tarfile.open(path, mode="r|*")
        for info in self._tar:
            if info.name == member:
                self._file = self._tar.extractfile(info)
                if self._file.peek(2)[:2] == GZIP_MAGIC:  # _find_tar_member accepts *.json.gz members
                    self._file = gzip.GzipFile(fileobj=self._file)
                return
        raise DataError(path, f"{member} is missing from the archive")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._file.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._tar.close()
        super().close()


def _open_source_stream(source: Source) -> IO[bytes]:
    if source.member is None:
        return _open_binary(source.path)
    return io.BufferedReader(_TarMemberStream(source.path, source.member), buffer_size=1 << 20)


def _find_tar_member(path: str, kind: str) -> str:
    pattern = re.compile(rf"(^|/)[^/]*{kind}[^/]*\.json(\.gz)?$")
    try:
        with tarfile.open(path, mode="r|*") as tar:
            names = []
            for info in tar:
                if info.isfile() and pattern.search(info.name):
                    return info.name
                names.append(info.name)
    except tarfile.TarError as exc:
        raise DataError(path, f"not a readable tar archive ({exc})") from None
    listed = ", ".join(names[:10]) or "nothing"
    raise DataError(path, f"no {kind} file (*{kind}*.json) inside the archive; it holds: {listed}")


def _jsonl_rows(stream: IO[bytes]) -> Iterator[tuple[int, dict | BadRow]]:
    for number, line in enumerate(stream, start=1):
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]  # a UTF-8 byte-order mark, as some editors write
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as bad:
                yield number, BadRow("bad_encoding", f"undecodable bytes (not UTF-8) at byte {bad.start}")
                continue
            yield number, BadRow("malformed_json", f"malformed JSON ({exc})")
            continue
        if not isinstance(row, dict):
            yield number, BadRow("malformed_json", f"expected a JSON object, got a JSON {type(row).__name__}")
            continue
        yield number, row


def _decoded_lines(stream: IO[bytes], counter: list[int]) -> Iterator[str]:
    """Decode line by line so that an undecodable byte is reported with its line."""
    for line in stream:
        counter[0] += 1
        try:
            yield line.decode("utf-8-sig" if counter[0] == 1 else "utf-8")
        except UnicodeDecodeError:
            counter[1] = counter[0]
            yield line.decode("utf-8", errors="replace")


def _csv_rows(stream: IO[bytes], source: Source, delimiter: str) -> Iterator[tuple[int, dict | BadRow]]:
    counter = [0, 0]  # lines read, last line with undecodable bytes
    reader = csv.reader(_decoded_lines(stream, counter), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise DataError(source.name, f"unreadable CSV header ({exc})", line=1) from None
    if counter[1]:
        raise DataError(source.name, "undecodable bytes (not UTF-8) in the header", line=1)
    header = [name.strip() for name in header]
    twice = sorted(shown(name) for name, n in Counter(header).items() if n > 1)
    if twice:  # which of them is the text? (a dict would silently keep the last)
        raise DataError(source.name, f"the header names column(s) {', '.join(twice[:5])} more than once; "
                                     "rename them so that each column has its own name", line=1)
    start = counter[0] + 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, BadRow("malformed_csv", f"malformed CSV ({exc})")
            start = counter[0] + 1
            continue
        line, start = start, counter[0] + 1
        if counter[1] >= line:
            counter[1] = 0
            yield line, BadRow("bad_encoding", "undecodable bytes (not UTF-8)")
            continue
        if not values:
            continue
        if len(values) != len(header):
            yield line, BadRow("malformed_csv", f"expected {len(header)} fields, got {len(values)}")
            continue
        yield line, dict(zip(header, values))


def _parquet_rows(source: Source) -> Iterator[tuple[int, dict | BadRow]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(source.path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise DataError(source.name, f"not a readable Parquet file ({exc})") from None
    twice = sorted(shown(name) for name, n in Counter(parquet.schema_arrow.names).items() if n > 1)
    if twice:
        raise DataError(source.name, f"the schema names column(s) {', '.join(twice[:5])} more than once; "
                                     "rename them so that each column has its own name")
    number = 0
    for batch in parquet.iter_batches(batch_size=8192):
        for row in batch.to_pylist():
            number += 1
            yield number, row


def source_fields(source: Source) -> list[str] | None:
    """Column names known without reading rows (Parquet); None for row formats."""
    if source.format != "parquet":
        return None
    import pyarrow.parquet as pq

    return list(pq.read_schema(source.path).names)
