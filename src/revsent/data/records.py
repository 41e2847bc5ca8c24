"""Records: text + label (+ id) out of rows, with the label schemes and the bad-record policy."""
from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from ..config import DataConfig
from ..errors import DataError, shown
from . import sample, yelp
from .sources import BadRow, Source, iter_rows, open_source, source_fields

STAR_CLASSES = {
    "binary": ("negative", "positive"),
    "polarity": ("negative", "positive"),
    "stars": ("1", "2", "3", "4", "5"),
}
ID_FIELDS = ("review_id", "id")


@dataclass(slots=True)
class Record:
    text: str
    label: str | None = None  # a class name; None when the input has no labels (prediction)
    id: str | None = None


@dataclass
class Tally:
    """What reading did: records read, kept (by class, where labelled), skipped (bad, by reason) and
    filtered (by reason). Every record read is kept, skipped or filtered, until ``--limit`` stops reading."""

    read: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    filtered: Counter = field(default_factory=Counter)
    per_class: Counter = field(default_factory=Counter)  # kept records by label; empty when reading texts only

    def as_dict(self) -> dict:
        """The counts as the manifest and metrics.json hold them (``records_per_class`` only for labels)."""
        counts = {
            "records_read": self.read,
            "records_kept": self.kept,
            "records_skipped": dict(self.skipped),
            "records_filtered": dict(self.filtered),
        }
        if self.per_class:
            counts["records_per_class"] = dict(self.per_class)
        return counts


def star_label(value, scheme: str) -> tuple[str | None, str | None]:
    """Map a star rating to a class name: ``(label, None)``, ``(None, drop_reason)``; raises ValueError."""
    if isinstance(value, bool) or value is None or value == "":
        raise ValueError("missing_label", "missing star rating")
    try:
        stars = float(value)
    except (TypeError, ValueError):
        raise ValueError("bad_label", f"non-numeric star rating {shown(value)}") from None
    if math.isnan(stars) or not 1 <= stars <= 5:
        raise ValueError("label_out_of_range", f"star rating {shown(value)} out of range 1-5")
    if scheme == "binary":
        return ("positive" if stars > 3 else "negative"), None
    if scheme == "polarity":
        if stars == 3:
            return None, "neutral_3_stars"
        return ("positive" if stars > 3 else "negative"), None
    if stars != int(stars):
        raise ValueError("bad_label", f"star rating {shown(value)} is not a whole number of stars")
    return str(int(stars)), None


def plain_label(value) -> str:
    """A label used as it is: strings stripped, integral numbers written as ints."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("missing_label", "missing label")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        raise ValueError("bad_label", f"label must be a string or a number, got {type(value).__name__}")
    return str(value).strip()


class RecordReader:
    """Reads :class:`Record` s from the inputs of a :class:`DataConfig`, counting what it does.

    ``need_labels=False`` reads texts only (prediction). Bad records raise :class:`DataError`
    unless ``cfg.skip_bad``, when they are skipped and counted in ``tally.skipped``.
    """

    def __init__(self, cfg: DataConfig, need_labels: bool = True, paths: Iterable[str] | None = None):
        self.cfg = cfg
        self.need_labels = need_labels
        self.paths = tuple(cfg.paths if paths is None else paths) or (sample.DEFAULT,)
        self.tally = Tally()
        self.star_scheme: str | None = None  # set from the first file: None means plain labels
        self._labels_seen_in: str | None = None
        self._businesses: set[str] | None = None

    def classes(self, seen: Iterable[str]) -> list[str]:
        """Class names in output order: fixed for star schemes, sorted (numerically if ints) otherwise."""
        if self.star_scheme is not None:
            return list(STAR_CLASSES[self.star_scheme])
        seen = set(seen)
        if all(_is_int(name) for name in seen):
            return sorted(seen, key=int)
        return sorted(seen)

    def __iter__(self) -> Iterator[Record]:
        if self.cfg.category:
            self._businesses = yelp.businesses_in_category(self._business_path(), self.cfg.category)
        for path in self.paths:
            for record in self._read_path(path):
                yield record
                if self.cfg.limit is not None and self.tally.kept >= self.cfg.limit:
                    return

    def _business_path(self) -> str:
        if self.cfg.business:
            return self.cfg.business
        return next(p for p in self.paths if p.endswith((".tar", ".tgz", ".tar.gz")))

    def _read_path(self, path: str) -> Iterator[Record]:
        if sample.is_sample(path):
            source, rows = sample.rows(path)
        else:
            source = open_source(path, self.cfg.format)
            rows = iter_rows(source)
        head, rows = _peek(rows, self.cfg.text_field)
        text_field = label_field = id_field = None
        for line, row in rows:
            self.tally.read += 1
            if isinstance(row, BadRow):
                self._bad(source, line, row.reason, row.problem)
                continue
            if text_field is None:
                text_field, label_field, id_field = self._resolve_fields(source, source_fields(source) or list(head or row))
            record, problem = self._make_record(row, text_field, label_field, id_field)
            if problem is not None:
                reason, message = problem
                if reason.startswith("filtered:"):
                    self.tally.filtered[reason[len("filtered:"):]] += 1
                else:
                    self._bad(source, line, reason, message)
                continue
            self.tally.kept += 1
            if record.label is not None:
                self.tally.per_class[record.label] += 1
            yield record

    def _resolve_fields(self, source: Source, fields: list[str]):
        cfg = self.cfg
        listed = ", ".join(fields) or "none"
        if cfg.text_field not in fields:
            raise DataError(source.name, f"no text field {cfg.text_field!r}; fields are: {listed} (use --text-field)")
        label_field = None
        if self.need_labels:
            if cfg.label_field:
                label_field, scheme = cfg.label_field, None
            elif cfg.stars_field:
                label_field, scheme = cfg.stars_field, cfg.labels
            elif "label" in fields:
                label_field, scheme = "label", None
            elif "stars" in fields:
                label_field, scheme = "stars", cfg.labels
            else:
                raise DataError(source.name, f"no 'label' or 'stars' field; fields are: {listed} (use --label-field or --stars-field)")
            if label_field not in fields:
                raise DataError(source.name, f"no label field {label_field!r}; fields are: {listed}")
            if self._labels_seen_in is not None and self.star_scheme != scheme:
                raise DataError(source.name, f"its labels are read differently than those of {self._labels_seen_in} (stars vs labels); give --label-field or --stars-field")
            self.star_scheme, self._labels_seen_in = scheme, source.name
        id_field = cfg.id_field
        if id_field is None:
            id_field = next((name for name in ID_FIELDS if name in fields), None)
        elif id_field not in fields:
            raise DataError(source.name, f"no id field {id_field!r}; fields are: {listed}")
        if self._businesses is not None and "business_id" not in fields:
            raise DataError(source.name, f"--category needs a 'business_id' field in the reviews; fields are: {listed}")
        return cfg.text_field, label_field, id_field

    def _make_record(self, row: dict, text_field, label_field, id_field):
        text = row.get(text_field)
        if text is None:
            return None, ("missing_text", f"missing text field {text_field!r}")
        if not isinstance(text, str):
            return None, ("missing_text", f"text field {text_field!r} holds {type(text).__name__} {str(text)[:20]!r}, not a string")
        if not text.strip():
            return None, ("empty_text", "empty text")
        if self._businesses is not None and row.get("business_id") not in self._businesses:
            return None, ("filtered:other_category", "")
        label = None
        if label_field is not None:
            try:
                if self.star_scheme is None:
                    label = plain_label(row.get(label_field))
                else:
                    label, dropped = star_label(row.get(label_field), self.star_scheme)
                    if dropped:
                        return None, (f"filtered:{dropped}", "")
            except ValueError as exc:
                reason, message = exc.args
                return None, (reason, f"{message} in field {label_field!r}")
        record_id = row.get(id_field) if id_field else None
        return Record(text=text, label=label, id=None if record_id is None else str(record_id)), None

    def _bad(self, source: Source, line: int, reason: str, problem: str) -> None:
        if not self.cfg.skip_bad:
            raise DataError(source.name, f"{problem} (use --skip-bad to skip bad records)", line=line, reason=reason)
        self.tally.skipped[reason] += 1


PEEK = 100  # rows looked at to tell a bad first record from a wrong field name


def _peek(rows, text_field: str):
    """The first of the next ``PEEK`` rows that has ``text_field`` (None if none does), and all rows.

    Fields are resolved from that row, so a first record that lacks the text is a bad record
    (skippable with --skip-bad) rather than a reason to reject the file.
    """
    rows = iter(rows)
    seen = list(itertools.islice(rows, PEEK))
    found = next((row for _, row in seen if isinstance(row, dict) and text_field in row), None)
    return found, itertools.chain(seen, rows)


def _is_int(name: str) -> bool:
    try:
        int(name)
    except ValueError:
        return False
    return True


def describe_tally(tally: Tally) -> str:
    """What a reader skipped and filtered, for a message ("3 bad json, 2 no text")."""
    parts = [f"{count} {reason}" for reason, count in {**tally.skipped, **tally.filtered}.items()]
    return ", ".join(parts) or "the input is empty"


# the reasons a record is skipped or filtered, as the console words them (others: underscores as spaces)
REASON_WORDS = {"neutral_3_stars": "3 stars", "other_category": "not in the category",
                "malformed_json": "malformed JSON", "malformed_csv": "malformed CSV"}


def _reasons(counter: dict) -> str:
    """``"3 stars"`` for one reason, ``"malformed JSON: 2, empty text: 1"`` for several."""
    words = {REASON_WORDS.get(reason, reason.replace("_", " ")): n for reason, n in counter.items()}
    return next(iter(words)) if len(words) == 1 else ", ".join(f"{word}: {n:,}" for word, n in words.items())


def describe_counts(counts: dict) -> str:
    """What became of the records read, from a tally's counts (``Tally.as_dict``, as a manifest and metrics.json
    hold them): ``"265 kept, 35 dropped (3 stars)"``. Bad records skipped and records filtered are named apart;
    kept, skipped and dropped add up to the records read."""
    skipped, filtered = counts.get("records_skipped") or {}, counts.get("records_filtered") or {}
    parts = [f"{counts['records_kept']:,} kept"]
    if skipped:
        parts.append(f"{sum(skipped.values()):,} skipped as bad ({_reasons(skipped)})")
    if filtered:
        parts.append(f"{sum(filtered.values()):,} dropped ({_reasons(filtered)})")
    return ", ".join(parts)


def describe_labels(scheme: str | None, counts: dict, classes: list[str] | None = None) -> str:
    """How the labels were made, with each class's count of kept records: ``scheme`` is a manifest's
    ``label_scheme`` (``binary``, ``polarity``, ``stars``, or ``labels``: a label field used as given),
    ``counts`` its counts (``Tally.as_dict``), ``classes`` the class names in order (for given labels).

    ``"stars > 3 → positive (13,131), ≤ 3 → negative (5,077)"``. The counts are left out for a dataset
    prepared before they were kept.
    """
    per_class = counts.get("records_per_class")

    def n(name: str) -> str:
        return "" if per_class is None else f" ({per_class.get(name, 0):,})"

    if scheme == "binary":
        return f"stars > 3 → positive{n('positive')}, ≤ 3 → negative{n('negative')}"
    if scheme == "polarity":
        dropped = (counts.get("records_filtered") or {}).get("neutral_3_stars", 0)
        return f"stars > 3 → positive{n('positive')}, < 3 → negative{n('negative')}; 3 stars dropped: {dropped:,}"
    if scheme == "stars":
        return "stars as classes: " + ", ".join(f"{name}{n(name)}" for name in STAR_CLASSES["stars"])
    names = list(classes) if classes is not None else sorted(per_class or {})
    return "labels as given: " + ", ".join(f"{name}{n(name)}" for name in names)
