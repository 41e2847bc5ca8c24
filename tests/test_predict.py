import json

import pytest

from revsent import Classifier
from revsent.errors import ConfigError, DataError
from revsent.predict import Writer, predict

from .conftest import NEGATIVE, POSITIVE, TINY


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("pred") / "m"
    Classifier(preset="seed", **TINY).fit(POSITIVE * 4 + NEGATIVE * 4, ["pos"] * 24 + ["neg"] * 24).save(path)
    return path


def test_predict_file_with_ids_and_counts(model, write_jsonl, tmp_path):
    data = write_jsonl("in.json", [{"id": 7, "text": "great friendly food"}, {"id": 8, "text": "rude awful staff"},
                                   {"id": 9, "text": ""}])
    out = tmp_path / "out.jsonl"
    result = predict(model, input=data, output=str(out), skip_bad=True)
    assert result["predicted"] == 2 and result["records_skipped"] == {"empty_text": 1}
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["label"]) for r in rows] == [("7", "pos"), ("8", "neg")]


def test_input_without_labels_is_fine(model, tmp_path):
    data = tmp_path / "in.csv"
    data.write_text("body\ngreat food\n")
    result = predict(model, input=str(data), output=str(tmp_path / "o.csv"), text_field="body")
    assert result["predicted"] == 1
    lines = (tmp_path / "o.csv").read_text().splitlines()
    assert lines[0] == "id,label,prob_neg,prob_pos"  # id column, empty here
    assert lines[1].startswith(",pos,") and float(lines[1].split(",")[3]) > 0.5


def test_bad_record_leaves_no_partial_output(model, write_jsonl, tmp_path):
    data = write_jsonl("in.json", [{"text": "fine"}, "{oops"])
    out = tmp_path / "out.parquet"
    with pytest.raises(DataError, match=r"in\.json:2: malformed JSON"):
        predict(model, input=data, output=str(out))
    assert list(tmp_path.glob("out*")) == [] and list(tmp_path.glob(".out*")) == []


def test_nothing_to_predict(model, tmp_path):
    with pytest.raises(DataError, match="nothing to predict"):
        predict(model, output=str(tmp_path / "o.jsonl"))
    assert not (tmp_path / "o.jsonl").exists()


def test_output_extension_and_overwrite(tmp_path):
    with pytest.raises(ConfigError, match="unknown extension"):
        Writer(str(tmp_path / "o.xlsx"), ["a", "b"])
    (tmp_path / "o.csv").write_text("mine")
    with pytest.raises(ConfigError, match="file exists; pass --force"):
        Writer(str(tmp_path / "o.csv"), ["a", "b"])
    assert (tmp_path / "o.csv").read_text() == "mine"
