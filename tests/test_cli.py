import json

import pytest
from typer.testing import CliRunner

from revsent.cli import app

from .conftest import NEGATIVE, POSITIVE

runner = CliRunner()
TINY_FLAGS = ["--preset", "seed", "--vocab-size", "100", "--embedding-dim", "16", "--hidden-size", "16",
              "--epochs", "8", "--batch-size", "8", "--lr", "0.01", "--dropout", "0", "--recurrent-dropout", "0",
              "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from .conftest import NEGATIVE, POSITIVE

    folder = tmp_path_factory.mktemp("cli")
    rows = [{"review_id": f"r{i}-{j}", "stars": 5 if pos else 1, "text": text}
            for i in range(8) for j, (pos, text) in enumerate([(True, t) for t in POSITIVE] + [(False, t) for t in NEGATIVE])]
    data = folder / "reviews.json"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = runner.invoke(app, ["train", str(data), "--out", str(folder / "m"), *TINY_FLAGS])
    assert result.exit_code == 0, result.output
    return folder / "m", data, result.output


def test_train_prints_metrics(model_dir):
    out, _, output = model_dir
    metrics = json.loads((out / "metrics.json").read_text())
    assert "test metrics (20 held-out reviews, scored once; 8 epoch(s)" in output
    assert f"accuracy{metrics['accuracy']:22.4f}" in output and metrics["accuracy"] >= 0.9
    assert f"model written to {out}" in output and "validation (" not in output  # the seed preset has no slice


def test_train_output(tmp_path, model_dir):
    _, data, _ = model_dir
    result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "m2"), *TINY_FLAGS, "--epochs", "1", "--baseline"])
    assert result.exit_code == 0, result.output
    assert "test metrics (20 held-out reviews, scored once; 1 epoch(s)" in result.output
    assert "TF-IDF+LR" in result.output and "confusion matrix" in result.output


def test_predict_texts_jsonl(model_dir):
    result = runner.invoke(app, ["predict", str(model_dir[0]), "great friendly food", "rude awful staff"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["label"] for r in rows] == ["positive", "negative"]
    assert list(rows[0]) == ["index", "text", "label", "prob_negative", "prob_positive", "known_words"]
    assert [(r["index"], r["text"]) for r in rows] == [(0, "great friendly food"), (1, "rude awful staff")]
    assert rows[0]["known_words"] == 3
    assert rows[0]["prob_positive"] + rows[0]["prob_negative"] == pytest.approx(1, abs=1e-5)


def test_predict_stdin(model_dir):
    result = runner.invoke(app, ["predict", str(model_dir[0]), "--input", "-"], input="great food\n\nawful rude\n")
    assert result.exit_code == 0, result.output
    assert [json.loads(l)["label"] for l in result.stdout.splitlines()] == ["positive", "negative"]


@pytest.mark.parametrize("suffix", ["jsonl", "csv", "parquet"])
def test_predict_file_to_each_format(model_dir, tmp_path, suffix):
    model, data, _ = model_dir
    out = tmp_path / f"pred.{suffix}"
    result = runner.invoke(app, ["predict", str(model), "--input", str(data), "--output", str(out)])
    assert result.exit_code == 0, result.output
    import pyarrow.csv as pcsv
    import pyarrow.json as pjson
    import pyarrow.parquet as pq

    table = {"jsonl": pjson.read_json, "csv": pcsv.read_csv, "parquet": pq.read_table}[suffix](out)
    assert table.num_rows == 96
    assert table.column_names == ["id", "label", "prob_negative", "prob_positive", "known_words"]
    assert table.column("id")[0].as_py() == "r0-0"
    labels = ["positive"] * len(POSITIVE) + ["negative"] * len(NEGATIVE)
    assert table.column("label").to_pylist() == labels * 8  # the model learned its training data
    again = runner.invoke(app, ["predict", str(model), "--input", str(data), "--output", str(out)])
    assert again.exit_code != 0 and "file exists; pass --force" in again.output


def test_evaluate_json_and_table(model_dir):
    model, data, _ = model_dir
    result = runner.invoke(app, ["evaluate", str(model), str(data), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 96 and report["labels"] == ["negative", "positive"]
    assert sum(map(sum, report["confusion_matrix"])) == 96 and 0.9 <= report["accuracy"] <= 1
    for key in ("f1_macro", "roc_auc", "log_loss", "per_class"):
        assert key in report
    table = runner.invoke(app, ["evaluate", str(model), "--baseline"])
    assert table.exit_code == 0, table.output
    assert "20 reviews" in table.output and "TF-IDF+LR" in table.output


@pytest.mark.parametrize("args, message, code", [
    (["train", "missing.json", "--out", "x"], "missing.json: no such file", 2),
    (["train", "--out", "x", "--preset", "huge"], "'huge' is not one of 'seed', 'default', 'quick'", 2),
    (["train", "--out", "x", "--labels", "five"], "'five' is not one of 'binary', 'polarity', 'stars'", 2),
    (["train", "imdb"], "Missing option '--out'. (see `revsent train --help`)", 2),
    (["tune", "imdb", "--val-fraction", "0", "--trials", "1"], "--val-fraction 0 leaves tuning nothing", 2),
    (["train", "--out", "x", "--dropout", "1.5"], "'dropout' parameter of ModelConfig must be a float in the range [0.0, 1.0)", 2),
    (["train", "--out", "x", "--word-dropout", "1"], "'word_dropout' parameter of ModelConfig must be a float in the range [0.0, 1.0)", 2),
    (["train", "--out", "x", "--pooling", "avg"], "'avg' is not one of 'last', 'max', 'mean', 'max_mean'", 2),
    (["predict", "no-such-model", "text"], "no-such-model: no such model directory", 3),
    (["train", "--out", "x", "--dense", "128,abc"], "--dense takes layer sizes separated by commas", 2),
])
def test_errors_are_one_line(args, message, code):
    result = runner.invoke(app, args)
    assert result.exit_code == code
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("revsent: error:") and message in lines[0]
    assert "Traceback" not in result.output


def test_bad_record_error_names_file_and_line(tmp_path):
    data = tmp_path / "bad.json"
    data.write_text('{"text": "fine", "stars": 5}\n{"text": "no stars"}\n')
    result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "m"), *TINY_FLAGS])
    assert result.exit_code == 2
    assert f"{data}:2: missing star rating in field 'stars'" in result.output
    assert not (tmp_path / "m").exists()


def test_wrong_text_field_lists_fields(tmp_path):
    data = tmp_path / "r.csv"
    data.write_text("body,stars\nhello,5\n")
    result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "m")])
    assert result.exit_code == 2 and "no text field 'text'; fields are: body, stars" in result.output


def test_skip_bad_reports_counts(tmp_path):
    from .conftest import NEGATIVE, POSITIVE

    lines = [json.dumps({"stars": 5, "text": t}) for t in POSITIVE * 3] + [json.dumps({"stars": 1, "text": t}) for t in NEGATIVE * 3]
    lines += ["{broken", json.dumps({"stars": 9, "text": "x"}), json.dumps({"stars": 2, "text": ""})]
    data = tmp_path / "r.json"
    data.write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "m"), *TINY_FLAGS, "--epochs", "1", "--skip-bad"])
    assert result.exit_code == 0, result.output
    assert ("read 39 records: 36 kept, 3 skipped as bad (malformed JSON: 1, label out of range: 1, empty text: 1)"
            in result.output)
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["records_skipped"] == {"malformed_json": 1, "label_out_of_range": 1, "empty_text": 1}
    assert metrics["records_read"] == 39 and metrics["records_kept"] == 36


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "0"], "'batch_size' parameter must be an int >= 1"),
    (["--device", "gpu"], "'gpu' is not one of 'auto', 'cpu', 'cuda'"),
    (["--threads", "0"], "'threads' parameter must be an int >= 1"),
    (["--output", "no/such/dir/p.jsonl"], "does not exist"),
])
def test_predict_option_errors(model_dir, args, message):
    result = runner.invoke(app, ["predict", str(model_dir[0]), "great", *args])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_predict_csv_keeps_id_column_for_mixed_input(model_dir, tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text('{"review_id": "a", "text": "great food"}\n')
    out = tmp_path / "p.csv"
    result = runner.invoke(app, ["predict", str(model_dir[0]), "nice staff", "--input", str(data), "--output", str(out)])
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert lines[0] == "index,text,id,label,prob_negative,prob_positive,known_words"
    assert lines[1].startswith("0,nice staff,,")  # the text argument: its index and text, no id
    assert lines[2].startswith(",,a,positive,")  # the file's record: its id


def test_truncated_gzip_is_a_one_line_error(tmp_path):
    import gzip

    data = tmp_path / "r.json.gz"
    payload = gzip.compress(("\n".join('{"text": "good food", "stars": 5}' for _ in range(2000)) + "\n").encode())
    data.write_bytes(payload[: len(payload) // 2])
    result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "m"), *TINY_FLAGS])
    assert result.exit_code == 2 and "cannot be read to the end" in result.output


def test_evaluate_other_file_with_other_fields(model_dir, tmp_path):
    data = tmp_path / "other.csv"
    data.write_text("body,sentiment\ngreat food,positive\nrude awful staff,negative\n")
    result = runner.invoke(app, ["evaluate", str(model_dir[0]), str(data), "--text-field", "body",
                                 "--label-field", "sentiment", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 2 and report["accuracy"] == 1.0 and report["confusion_matrix"] == [[1, 0], [0, 1]]


def test_predict_id_field(model_dir, tmp_path):
    data = tmp_path / "in.csv"
    data.write_text("key,text\nk1,great food\n")
    result = runner.invoke(app, ["predict", str(model_dir[0]), "--input", str(data), "--id-field", "key"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[0])["id"] == "k1"


PREPARE_FLAGS = ["--preset", "seed", "--vocab-size", "100", "--quiet"]


def test_prepare_then_train_and_evaluate_the_dataset(model_dir, tmp_path):
    _, data, _ = model_dir
    ds = tmp_path / "ds"
    result = runner.invoke(app, ["prepare", str(data), "--out", str(ds), *PREPARE_FLAGS])
    assert result.exit_code == 0, result.output
    assert "96 reviews (76 training, 20 held out)" in result.output and f"dataset written to {ds}" in result.output
    again = runner.invoke(app, ["prepare", str(data), "--out", str(ds), *PREPARE_FLAGS])
    assert again.exit_code == 3 and "already there; pass --force" in again.output
    model = tmp_path / "m"
    trained = runner.invoke(app, ["train", str(ds), "--out", str(model), *TINY_FLAGS, "--epochs", "2", "--class-weight", "balanced"])
    assert trained.exit_code == 0, trained.output
    assert "test metrics (20 held-out reviews, scored once; 2 epoch(s)" in trained.output
    report = runner.invoke(app, ["evaluate", str(model), str(ds), "--json"])
    assert report.exit_code == 0, report.output
    assert json.loads(report.stdout)["n"] == 20
    conflict = runner.invoke(app, ["train", str(ds), "--out", str(tmp_path / "m2"), *TINY_FLAGS[:2], "--vocab-size", "50"])
    assert conflict.exit_code == 2 and "--vocab-size 50 differs from the dataset's 100" in conflict.output
    assert len(conflict.output.strip().splitlines()) == 1


def test_prepare_bad_record_and_skip_bad(tmp_path):
    data = tmp_path / "bad.json"
    data.write_text('{"text": "fine", "stars": 5}\n{"text": "no stars"}\n{"text": "awful", "stars": 1}\n' * 4)
    result = runner.invoke(app, ["prepare", str(data), "--out", str(tmp_path / "ds"), *PREPARE_FLAGS])
    assert result.exit_code == 2 and f"{data}:2: missing star rating in field 'stars'" in result.output
    assert not (tmp_path / "ds").exists()
    skipped = runner.invoke(app, ["prepare", str(data), "--out", str(tmp_path / "ds"), *PREPARE_FLAGS, "--skip-bad"])
    assert skipped.exit_code == 0, skipped.output
    assert "read 12 records: 8 kept, 4 skipped as bad (missing label)" in skipped.output
    assert "labels: stars > 3 → positive (4), ≤ 3 → negative (4)" in skipped.output


def test_damaged_dataset_is_a_one_line_error(model_dir, tmp_path):
    _, data, _ = model_dir
    ds = tmp_path / "ds"
    assert runner.invoke(app, ["prepare", str(data), "--out", str(ds), *PREPARE_FLAGS]).exit_code == 0
    (ds / "offsets.npy").write_bytes((ds / "offsets.npy").read_bytes()[:-8])
    result = runner.invoke(app, ["train", str(ds), "--out", str(tmp_path / "m"), *TINY_FLAGS])
    assert result.exit_code == 3 and "offsets.npy:" in result.output and "prepare the dataset again" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_version():
    from revsent import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"revsent {__version__}"


def test_train_help_shows_each_presets_value_choices_and_examples():
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    text = " ".join(result.output.replace("│", " ").split())  # the panels' cells, wrapped, as one line
    assert result.exit_code == 0
    assert "(default: 2500 in seed, 100000 in default, 30000 in quick)" in text  # --vocab-size
    assert "(default: 1)" in text  # --layers: the same in every preset
    assert "<seed|default|quick>" in text and "<binary|polarity|stars>" in text
    assert "Examples:" in text and "revsent train reviews.csv --text-field review --stars-field rating" in text


def test_presets_lists_every_setting_and_marks_what_differs_from_the_tutorial():
    from revsent.config import Config

    table = runner.invoke(app, ["presets"])
    assert table.exit_code == 0
    rows = {line.split()[0]: line.split()[1:] for line in table.output.splitlines()[1:]}
    assert rows["--vocab-size"] == ["2500", "100000*", "30000*"]
    assert rows["--hidden-size"] == ["200", "128*", "64*"] and rows["--seed"] == ["36", "36", "36"]
    assert "--ngram-hash" not in rows  # no flag sets it
    one = runner.invoke(app, ["presets", "quick", "--json"])
    assert Config.from_dict(json.loads(one.output)) == Config.from_preset("quick")


@pytest.mark.parametrize("argv, blocked, extra", [
    (["explain", "{model}", "great"], "captum", "explain"),
    (["export", "{model}", "--out", "{tmp}/onnx"], "onnx", "onnx"),
    (["serve", "{model}", "--port", "0"], "uvicorn", "serve"),
])
def test_a_missing_optional_part_names_its_extra(model_dir, tmp_path, argv, blocked, extra):
    """The console script with one optional package made unimportable (as in a core-only install)."""
    import subprocess
    import sys

    args = [a.format(model=model_dir[0], tmp=tmp_path) for a in argv]
    code = (f"import sys; sys.modules[{blocked!r}] = None; sys.argv = ['revsent', *{args!r}]; "
            "from revsent.cli import main; main()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (f"revsent: error: `revsent {argv[0]}` needs {blocked} "
                                     f"({__import__('revsent.extras').extras.PURPOSE[extra]}), which is not installed "
                                     f"here: pip install 'revsent[{extra}]' (or 'revsent[all]' for every optional part)")
