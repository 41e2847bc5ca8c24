"""Failures a user can cause: each is one `revsent: error:` line with its exit code, and leaves nothing behind.

Exit codes: 2 bad input or usage, 3 a model, output or machine problem, 130 interrupted.
"""
import errno
import json
import os

import pytest
from typer.testing import CliRunner

from revsent.cli import app

from .conftest import NEGATIVE, POSITIVE

runner = CliRunner()
PREPARE = ["--preset", "seed", "--vocab-size", "50"]
TINY = [*PREPARE, "--embedding-dim", "8", "--hidden-size", "8", "--epochs", "1", "--threads", "1", "--quiet"]


@pytest.fixture
def reviews(tmp_path):
    path = tmp_path / "reviews.json"
    rows = [{"stars": 5, "text": t} for t in POSITIVE * 3] + [{"stars": 1, "text": t} for t in NEGATIVE * 3]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _one_line_error(result, code, *parts):
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.startswith("revsent: error:")]
    assert len(lines) == 1, result.output
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


def test_out_under_a_regular_file_is_one_line(reviews, tmp_path):
    (tmp_path / "file").write_text("x")
    for command in (["train", str(reviews), *TINY], ["prepare", str(reviews), *PREPARE]):
        result = runner.invoke(app, [*command, "--out", str(tmp_path / "file" / "m")])
        _one_line_error(result, 3, f"{tmp_path / 'file'} is a file, not a folder")


def test_an_empty_out_is_refused_not_the_working_directory(reviews, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train", str(reviews), "--out", "", *TINY])
    _one_line_error(result, 3, "--out is empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reviews.json"]


def _unwritable(monkeypatch, folder):
    """Writing in ``folder`` is refused, as a read-only folder refuses a user (root ignores modes)."""
    import tempfile

    real = tempfile.mkstemp

    def refuse(*args, dir=None, **kwargs):
        if dir is not None and os.path.realpath(dir) == os.path.realpath(folder):
            raise PermissionError(errno.EACCES, "Permission denied", str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)


def test_outputs_in_a_folder_that_refuses_writing_are_refused_before_work(reviews, tmp_path, monkeypatch):
    trained = runner.invoke(app, ["train", str(reviews), "--out", str(tmp_path / "m"), *TINY])
    assert trained.exit_code == 0, trained.output
    locked = tmp_path / "locked"
    locked.mkdir()
    _unwritable(monkeypatch, locked)
    cases = [["train", str(reviews), "--out", str(locked / "m"), *TINY],
             ["prepare", str(reviews), "--out", str(locked / "ds"), *PREPARE],
             ["predict", str(tmp_path / "m"), "--input", str(reviews), "--output", str(locked / "p.csv")],
             ["export", str(tmp_path / "m"), "--out", str(locked / "onnx")]]
    for args in cases:
        option = "--output" if args[0] == "predict" else "--out"
        _one_line_error(runner.invoke(app, args), 3, f"cannot write in {locked} (Permission denied)", option)
    assert list(locked.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only folders")
def test_a_read_only_folder_is_refused(reviews, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    result = runner.invoke(app, ["train", str(reviews), "--out", str(locked / "m"), *TINY])
    _one_line_error(result, 3, "cannot write in")


def test_a_full_disk_is_one_line_not_a_traceback(reviews, tmp_path, monkeypatch):
    from revsent import artifacts

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(artifacts, "atomic_save_tensors", full)
    result = runner.invoke(app, ["train", str(reviews), "--out", str(tmp_path / "m"), *TINY])
    _one_line_error(result, 3, "No space left on device", str(tmp_path / "m"))


def test_a_huge_bad_value_is_quoted_short(tmp_path):
    data = tmp_path / "r.json"
    data.write_text(json.dumps({"stars": "x" * 1_000_000, "text": "good"}) + "\n")
    result = runner.invoke(app, ["prepare", str(data), "--out", str(tmp_path / "ds"), *PREPARE])
    line = _one_line_error(result, 2, f"{data}:1: non-numeric star rating 'xxxx", "(1,000,000 characters)")
    assert len(line) < 300 + len(str(data))


def test_two_columns_of_one_name_are_refused(tmp_path):
    data = tmp_path / "r.csv"
    data.write_text("text,stars,text\n" + "".join(f"{t},5,other\n{n},1,other\n" for t, n in zip(POSITIVE, NEGATIVE)))
    result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "m"), *TINY])
    _one_line_error(result, 2, f"{data}:1: the header names column(s) 'text' more than once")
    assert not (tmp_path / "m").exists()


def test_a_parquet_schema_with_one_name_twice_is_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = tmp_path / "r.parquet"
    pq.write_table(pa.table([["good", "bad"], [5, 1], ["x", "y"]], names=["text", "stars", "text"]), data)
    result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "m"), *TINY])
    _one_line_error(result, 2, "the schema names column(s) 'text' more than once")


def test_a_label_field_of_ids_is_not_taken_for_classes(tmp_path):
    data = tmp_path / "r.csv"
    data.write_text("text,review_id\n" + "".join(f"review number {i},id{i}\n" for i in range(200)))
    result = runner.invoke(app, ["train", str(data), "--label-field", "review_id", "--out", str(tmp_path / "m"), *TINY])
    _one_line_error(result, 2, "200 different labels in 200 records: field 'review_id' looks like an id")
    assert not (tmp_path / "m").exists()


def test_many_classes_get_no_confusion_picture(tmp_path):
    from revsent.plots import MAX_PLOTTED, plot_confusion

    n = MAX_PLOTTED + 1
    plot_confusion([[1] * n for _ in range(n)], [f"c{i}" for i in range(n)], tmp_path / "cm.png")
    assert not (tmp_path / "cm.png").exists()
    plot_confusion([[3, 1], [0, 4]], ["a", "b"], tmp_path / "cm.png")
    assert (tmp_path / "cm.png").stat().st_size > 1000


def test_a_prepared_dataset_takes_the_users_umask(reviews, tmp_path):
    old = os.umask(0o022)
    try:
        result = runner.invoke(app, ["prepare", str(reviews), "--out", str(tmp_path / "ds"), *PREPARE])
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ds").stat().st_mode & 0o777 == 0o755
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in (tmp_path / "ds").iterdir())


def test_the_exit_codes_are_the_documented_ones():
    from revsent.errors import ArtifactError, ConfigError, DataError

    assert (DataError.exit_code, ConfigError.exit_code, ArtifactError.exit_code) == (2, 2, 3)


@pytest.fixture
def model(reviews, tmp_path):
    out = tmp_path / "model"
    result = runner.invoke(app, ["train", str(reviews), "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("section, name, value", [("model", "vocab_size", 10**12), ("model", "hidden_size", 10**9),
                                                   ("model", "hidden_size", 4096), ("model", "embedding_dim", 10**7)])
def test_a_tampered_config_is_refused_before_allocating(model, section, name, value):
    config = json.loads((model / "config.json").read_text())
    config[section][name] = value
    (model / "config.json").write_text(json.dumps(config))
    result = runner.invoke(app, ["predict", str(model), "good food"])
    if name == "vocab_size":  # the weights decide the rows; a larger vocabulary size is harmless
        assert result.exit_code == 0, result.output
    else:
        _one_line_error(result, 3, "config.json" if value > 10**6 else "does not match config.json")


def test_negative_token_ids_are_refused(model):
    tokenizer = json.loads((model / "tokenizer.json").read_text())
    word = next(w for w in tokenizer["model"]["vocab"] if w != "[PAD]")
    tokenizer["model"]["vocab"][word] = -5
    (model / "tokenizer.json").write_text(json.dumps(tokenizer))
    _one_line_error(runner.invoke(app, ["predict", str(model), "good food"]), 3, "negative or non-integer token ids")


def test_weights_of_nan_are_refused(model):
    from safetensors.torch import load_file, save_file

    weights = load_file(model / "model.safetensors")
    name = next(k for k, t in weights.items() if t.is_floating_point() and t.numel() > 1)
    weights[name][0] = float("nan")
    save_file(weights, model / "model.safetensors", {"format": "pt", "revsent_format": "1"})
    _one_line_error(runner.invoke(app, ["predict", str(model), "good food"]), 3, f"{name} holds NaN or infinite values")



def test_weights_changed_after_saving_are_refused_by_their_checksum(model):
    """A finite, well-shaped change (one value of one tensor) that every other check lets through."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(model / "model.safetensors", "pt") as f:
        metadata = f.metadata()
    assert len(metadata["sha256"]) == 64 and len(metadata["tokenizer_sha256"]) == 64
    assert runner.invoke(app, ["predict", str(model), "good food"]).exit_code == 0
    weights = load_file(model / "model.safetensors")
    name = next(k for k, t in weights.items() if t.is_floating_point() and t.numel() > 1)
    weights[name][0] += 0.5
    save_file(weights, model / "model.safetensors", metadata)  # the old header, new values
    _one_line_error(runner.invoke(app, ["predict", str(model), "good food"]), 3,
                    "model.safetensors: its tensors differ from the checksum saved with them")


def test_a_tokenizer_changed_after_saving_is_refused_by_its_checksum(model):
    """Two words' ids swapped: every id still fits, but each would be read as the other."""
    tokenizer = json.loads((model / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    first, second = [w for w in vocab if w != "[PAD]"][:2]
    vocab[first], vocab[second] = vocab[second], vocab[first]
    (model / "tokenizer.json").write_text(json.dumps(tokenizer))
    _one_line_error(runner.invoke(app, ["predict", str(model), "good food"]), 3,
                    "tokenizer.json: differs from the tokenizer this model was saved with")


def test_models_saved_before_checksums_still_load(model):
    from safetensors.torch import load_file, save_file

    save_file(load_file(model / "model.safetensors"), model / "model.safetensors", {"format": "pt", "revsent_format": "1"})
    assert runner.invoke(app, ["predict", str(model), "good food"]).exit_code == 0

@pytest.fixture
def small_disk(tmp_path):
    """A 16 KB filesystem (tmpfs), where every command's output runs out of space; skipped where none can
    be mounted (not root)."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here ({mounted.stderr.decode().strip()[:80]})")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk_leaves_nothing_behind(reviews, tmp_path, small_disk):
    trained = runner.invoke(app, ["train", str(reviews), "--out", str(tmp_path / "m"), *TINY])
    assert trained.exit_code == 0, trained.output
    many = tmp_path / "many.jsonl"
    many.write_text("".join(json.dumps({"text": f"review number {i} was good food"}) + "\n" for i in range(3000)))
    cases = [["train", str(reviews), "--out", str(small_disk / "m"), *TINY],
             ["prepare", str(reviews), "--out", str(small_disk / "ds"), *PREPARE],
             ["export", str(tmp_path / "m"), "--out", str(small_disk / "onnx")],
             ["predict", str(tmp_path / "m"), "--input", str(many), "--output", str(small_disk / "p.jsonl")],
             ["tune", str(reviews), "--out", str(small_disk / "t"), "--trials", "1", "--preset", "quick", "--epochs", "1",
              "--vocab-size", "50", "--threads", "1", "--quiet"]]
    for args in cases:
        result = runner.invoke(app, args)
        _one_line_error(result, 3, "No space left on device")
        assert list(small_disk.iterdir()) == [], (args[0], list(small_disk.iterdir()))


def test_an_interrupted_train_exits_130_and_keeps_its_checkpoint(reviews, tmp_path, monkeypatch):
    import revsent.training.loop as loop_module

    real_save = loop_module.save_checkpoint

    def save_then_die(*args):
        real_save(*args)
        raise KeyboardInterrupt  # Ctrl-C just after the first epoch's checkpoint

    monkeypatch.setattr(loop_module, "save_checkpoint", save_then_die)
    out = tmp_path / "m"
    options = [*PREPARE, "--embedding-dim", "8", "--hidden-size", "8", "--epochs", "2", "--threads", "1", "--quiet"]
    result = runner.invoke(app, ["train", str(reviews), "--out", str(out), *options])
    assert result.exit_code == 130, result.output
    assert "revsent: interrupted" in result.output and "Traceback" not in result.output
    assert (out / "checkpoint.safetensors").exists() and not (out / "model.safetensors").exists()
    monkeypatch.setattr(loop_module, "save_checkpoint", real_save)
    resumed = runner.invoke(app, ["train", str(reviews), "--out", str(out), *options, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert (out / "model.safetensors").exists() and not (out / "checkpoint.safetensors").exists()
