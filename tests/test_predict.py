import json

import pytest

from revsent import Classifier
from revsent.errors import ConfigError, DataError
from typer.testing import CliRunner

from revsent.cli import app
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
    assert lines[0] == "id,label,prob_neg,prob_pos,known_words"  # id column, empty here
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


runner = CliRunner()


def test_cli_texts_come_out_with_index_text_and_known_words(model):
    result = runner.invoke(app, ["predict", str(model), "great friendly food", "zzz qqq"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["index"], r["text"], r["label"], r["known_words"]) for r in rows] == [
        (0, "great friendly food", "pos", 3), (1, "zzz qqq", rows[1]["label"], 0)]
    assert list(rows[0]) == ["index", "text", "label", "prob_neg", "prob_pos", "known_words"]
    assert ("1 text(s) had no word the model knows: their label is the model's prior, not a reading"
            in result.stderr)


def test_keep_columns_and_all(model, write_jsonl, tmp_path):
    data = write_jsonl("in.json", [{"id": 1, "text": "great food", "label": "pos", "shop": "a", "tags": ["x"]}])
    out = tmp_path / "o.jsonl"
    result = runner.invoke(app, ["predict", str(model), "--input", data, "--output", str(out), "--keep", "shop"])
    assert result.exit_code == 0, result.output
    assert list(json.loads(out.read_text())) == ["id", "shop", "label", "prob_neg", "prob_pos", "known_words"]
    every = predict(model, input=data, output=str(tmp_path / "all.csv"), keep=["all"])
    assert every["predicted"] == 1
    header, row = (tmp_path / "all.csv").read_text().splitlines()
    # the id is the output's own; a column named like an output field keeps its value as input_<name>
    assert header == "id,input_text,input_label,shop,tags,label,prob_neg,prob_pos,known_words"
    assert row.startswith('1,great food,pos,a,"[""x""]",pos,')


def test_missing_keep_column_is_refused_before_any_work(model, write_jsonl, tmp_path):
    data = write_jsonl("in.json", [{"text": "great food", "shop": "a"}])
    out = tmp_path / "o.jsonl"
    with pytest.raises(DataError, match=r"in\.json: no column 'city' to --keep; its columns are: text, shop"):
        predict(model, input=data, output=str(out), keep=["city"])
    assert list(tmp_path.glob("o*")) == [] and list(tmp_path.glob(".o*")) == []
    with pytest.raises(ConfigError, match="--keep city: keeps columns of an --input FILE; give --input FILE"):
        predict(model, ["text"], keep=["city"])


def test_existing_output_is_refused_before_reading_anything(model, write_jsonl, tmp_path):
    data = write_jsonl("in.json", ["{oops"])  # reading it would fail: the refusal must come first
    (tmp_path / "o.csv").write_text("mine")
    result = runner.invoke(app, ["predict", str(model), "--input", data, "--output", str(tmp_path / "o.csv")])
    assert result.exit_code == 2 and "o.csv: file exists; pass --force to overwrite it" in result.output
    assert (tmp_path / "o.csv").read_text() == "mine"
    forced = runner.invoke(app, ["predict", str(model), "great", "--output", str(tmp_path / "o.csv"), "--force"])
    assert forced.exit_code == 0 and (tmp_path / "o.csv").read_text().startswith("index,text,label")


def test_skip_bad_lists_the_skipped_rows_beside_the_output(model, write_jsonl, tmp_path):
    data = write_jsonl("in.json", [{"id": "a", "text": "great food"}, "{oops", {"id": "c", "text": ""}])
    out = tmp_path / "o.jsonl"
    result = runner.invoke(app, ["predict", str(model), "--input", data, "--output", str(out), "--skip-bad"])
    assert result.exit_code == 0, result.output
    side = tmp_path / "o.jsonl.skipped.jsonl"
    assert (f"skipped 2 bad record(s): malformed_json 1, empty_text 1; listed in {side}") in result.stderr
    skipped = [json.loads(line) for line in side.read_text().splitlines()]
    assert [(s["line"], s["id"], s["reason"]) for s in skipped] == [(2, None, "malformed_json"), (3, "c", "empty_text")]
    stdout_mode = runner.invoke(app, ["predict", str(model), "--input", data, "--skip-bad"])
    assert stdout_mode.exit_code == 0 and len(stdout_mode.stdout.splitlines()) == 1
    assert "skipped 2 bad record(s): malformed_json 1, empty_text 1\n" in stdout_mode.stderr
    clean = write_jsonl("clean.json", [{"text": "great food"}])
    again = runner.invoke(app, ["predict", str(model), "--input", clean, "--output", str(out), "--skip-bad", "--force"])
    assert again.exit_code == 0 and "skipped 0 bad record(s)" in again.stderr
    assert not side.exists()  # the list of the output it replaced went with it


def test_wrong_choice_lists_the_choices(model):
    result = runner.invoke(app, ["predict", str(model), "x", "--backend", "tpu"])
    assert result.exit_code == 2 and "'tpu' is not one of 'torch', 'onnx'" in result.output


@pytest.mark.parametrize("command", ["evaluate", "predict", "explain", "serve", "export"])
def test_help_shows_examples_on_their_own_lines(command):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    examples = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("$ revsent")]
    assert len(examples) >= 2 and all(line.count("$ revsent") == 1 for line in examples)
