import json

import pytest


@pytest.fixture
def write_jsonl(tmp_path):
    """Write rows (dicts, or raw str lines) as a JSON-lines file and return its path."""

    def write(name, rows):
        path = tmp_path / name
        lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return str(path)

    return write


POSITIVE = ["great food and friendly staff", "wonderful place loved it", "excellent service great value",
            "amazing tasty dishes", "loved the friendly service", "best meal great atmosphere"]
NEGATIVE = ["terrible food and rude staff", "awful place hated it", "horrible service bad value",
            "disgusting cold dishes", "hated the rude service", "worst meal awful atmosphere"]


@pytest.fixture
def tiny_reviews(write_jsonl):
    """A small Yelp-format review file that a model can overfit in a few epochs."""
    rows = []
    for i in range(8):
        for j, text in enumerate(POSITIVE):
            rows.append({"review_id": f"p{i}-{j}", "business_id": "b1", "stars": 5.0, "text": text})
        for j, text in enumerate(NEGATIVE):
            rows.append({"review_id": f"n{i}-{j}", "business_id": "b2", "stars": 1.0, "text": text})
    return write_jsonl("reviews.json", rows)


# Settings that train in about a second: a tiny model, a few epochs.
TINY = dict(vocab_size=100, embedding_dim=16, hidden_size=16, epochs=8, batch_size=8, lr=0.01,
            dropout=0.0, recurrent_dropout=0.0, threads=1)


@pytest.fixture(scope="session")
def imdb_model(tmp_path_factory):
    """The quick preset trained on 5,000 real IMDB reviews (3,600 to fit, 400 validation, 1,000
    held out), once per test session: the model the integration, explanation and browser tests share."""
    from typer.testing import CliRunner

    from revsent.cli import app

    out = tmp_path_factory.mktemp("imdb") / "imdb"
    result = CliRunner().invoke(app, [
        "train", "imdb", "--limit", "5000", "--preset", "quick", "--epochs", "3", "--max-len", "200",
        "--out", str(out), "--quiet", "--threads", "2"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def imdb_heldout():
    """The texts and labels (0/1) of the 1,000 reviews ``imdb_model`` held out."""
    from revsent.config import DataConfig
    from revsent.data import RecordReader
    from revsent.data.splits import split

    records = list(RecordReader(DataConfig(paths=("imdb",), limit=5000)))
    _, test = split(len(records), 0.2, 36)
    return [records[i].text for i in test], [1 if records[i].label == "positive" else 0 for i in test]
