"""Property-based tests (Hypothesis): any input gives records or one clear error, never a traceback.

Readers get arbitrary bytes and arbitrary structured rows in every format revsent reads; the
tokenizer gets arbitrary Unicode; the HTTP routes get arbitrary JSON bodies. What must hold is the
contract, not an example: records, or a :class:`~revsent.errors.DataError` (a 4xx over HTTP).
"""
import gzip
import io
import json
import tarfile

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from revsent.config import DataConfig  # noqa: E402
from revsent.data.records import RecordReader  # noqa: E402
from revsent.errors import DataError  # noqa: E402

EXAMPLES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SUFFIXES = [".json", ".jsonl", ".csv", ".tsv", ".parquet", ".json.gz", ".csv.gz", ".tar"]

# any character, lone surrogates too (JSON can escape them; UTF-8 cannot write them)
ANY_TEXT = st.lists(st.characters(blacklist_categories=()) | st.sampled_from(["\udfff", "\ud83d", "good", " ", "é", "\x00",
                                                                          "\u200b", "ﬁ"]),
                    max_size=12).map("".join)
# JSON values, nested a little: what a client or a file might hold where a review is expected
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ANY_TEXT,
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)


def _read(path, skip_bad: bool, **fields):
    """Every record of ``path``, or the DataError that stopped the reading."""
    reader = RecordReader(DataConfig(paths=(str(path),), skip_bad=skip_bad, **fields))
    try:
        return list(reader), reader.tally
    except DataError as exc:
        assert str(exc) and "\n" not in str(exc) and len(str(exc)) < 2000  # one readable line
        return exc, reader.tally


def _check(records, tally) -> None:
    if isinstance(records, DataError):
        return
    for record in records:
        assert isinstance(record.text, str) and record.text.strip()
        assert record.label is None or isinstance(record.label, str)
    assert tally.kept == len(records)


@EXAMPLES
@given(data=st.binary(max_size=600), suffix=st.sampled_from(SUFFIXES), skip_bad=st.booleans())
def test_any_bytes_in_any_format_give_records_or_one_error(tmp_path, data, suffix, skip_bad):
    path = tmp_path / f"input{suffix}"
    path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    _check(*_read(path, skip_bad))


@EXAMPLES
@given(rows=st.lists(st.dictionaries(st.sampled_from(["text", "stars", "label", "id", "other"]), JSON, max_size=5),
                     max_size=12),
       skip_bad=st.booleans())
def test_any_json_rows_give_records_or_one_error(tmp_path, rows, skip_bad):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    _check(*_read(path, skip_bad))


CELL = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)


@EXAMPLES
@given(header=st.lists(st.sampled_from(["text", "stars", "review", "rating", "x", ""]), min_size=1, max_size=5),
       rows=st.lists(st.lists(CELL, min_size=0, max_size=6), max_size=10), delimiter=st.sampled_from([",", "\t"]),
       skip_bad=st.booleans())
def test_any_delimited_table_gives_records_or_one_error(tmp_path, header, rows, delimiter, skip_bad):
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerow(header)
    writer.writerows(rows)
    path = tmp_path / ("t.csv" if delimiter == "," else "t.tsv")
    path.write_text(buffer.getvalue(), encoding="utf-8")
    _check(*_read(path, skip_bad))


@EXAMPLES
@given(texts=st.lists(st.one_of(st.none(), CELL), min_size=1, max_size=8),
       stars=st.lists(st.one_of(st.none(), st.integers(-3, 9), st.floats(allow_nan=True)), min_size=1, max_size=8),
       skip_bad=st.booleans())
def test_any_parquet_table_gives_records_or_one_error(tmp_path, texts, stars, skip_bad):
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = min(len(texts), len(stars))
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": texts[:n], "stars": pa.array(stars[:n], type=pa.float64())}), path)
    _check(*_read(path, skip_bad))


@EXAMPLES
@given(members=st.lists(st.tuples(st.sampled_from(["review.json", "x/yelp_academic_dataset_review.json", "../evil",
                                                   "/abs.json", "business.json"]), st.binary(max_size=200)),
                        max_size=3),
       skip_bad=st.booleans())
def test_any_tar_gives_records_or_one_error(tmp_path, members, skip_bad):
    path = tmp_path / "yelp.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    _check(*_read(path, skip_bad))
    assert not (tmp_path.parent / "evil").exists()


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_the_tokenizer_takes_any_text(text):
    from revsent.text import TextEncoder, words

    encoder = TextEncoder.fit(["good food", "bad service", text], vocab_size=10)
    seqs = encoder.encode([text, ""])
    assert len(seqs) == 2 and len(seqs[1]) == 0
    assert all(0 < i < 10 for i in seqs[0])
    assert words(" ".join(words(text))) == words(text)  # the words of the words are the same words
    assert 0 <= int(encoder.known_words(seqs)[0]) <= len(words(text))


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from fastapi.testclient import TestClient

    from revsent import Classifier
    from revsent.serve import ServeConfig, create_app

    from .conftest import NEGATIVE, POSITIVE, TINY

    path = tmp_path_factory.mktemp("props") / "model"
    Classifier(preset="seed", **TINY).fit(POSITIVE * 3 + NEGATIVE * 3, ["positive"] * 18 + ["negative"] * 18).save(path)
    with TestClient(create_app(ServeConfig(str(path), max_texts=8, max_chars=200, max_body=2000))) as client:
        import time

        while client.get("/readyz").status_code != 200:
            time.sleep(0.05)
        yield client


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.fixed_dictionaries({"text": ANY_TEXT}), st.fixed_dictionaries({"texts": st.lists(ANY_TEXT)}),
                     JSON, st.dictionaries(st.sampled_from(["text", "texts", "extra"]), JSON, max_size=3)),
       route=st.sampled_from(["/v1/predict", "/v1/explain"]))
def test_any_json_body_is_answered_without_a_server_error(client, body, route):
    response = client.post(route, content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code < 500 or response.status_code == 501, (body, response.text)
    if response.status_code >= 400:
        assert response.json()["error"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300), content_type=st.sampled_from(["application/json", "text/plain", ""]))
def test_any_bytes_are_answered_without_a_server_error(client, raw, content_type):
    response = client.post("/v1/predict", content=raw, headers={"content-type": content_type} if content_type else {})
    assert response.status_code < 500, (raw, response.text)
    assert client.post("/v1/predict", json={"text": "good food"}).status_code == 200  # and it serves on
