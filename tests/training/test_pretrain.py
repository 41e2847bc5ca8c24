"""`revsent pretrain`: the language model, its directory, and classifiers started from it."""
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from revsent import artifacts
from revsent.cli import app
from revsent.config import LM_PRESET, Config, LMConfig, ModelConfig
from revsent.lm import LanguageModel
from revsent.model import LSTMBranch

runner = CliRunner()
SMALL = ["--embedding-dim", "32", "--hidden-size", "32", "--negatives", "64", "--bptt", "20", "--threads", "2",
         "--quiet"]


def _ok(result):
    assert result.exit_code == 0, result.output
    return result


def _error(result, code, *parts):
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("revsent: error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for part in parts:
        assert part in lines[0], lines[0]


def test_the_language_model_learns_a_repeated_text_and_names_its_tensors_as_a_classifier_does():
    torch.manual_seed(0)
    cfg = Config.from_preset(LM_PRESET, embedding_dim=16, hidden_size=16, dropout=0.0, recurrent_dropout=0.0,
                             word_dropout=0.0)
    words = 40
    model = LanguageModel(cfg.model, LMConfig(negatives=20, output_dropout=0.0), words)
    stream = torch.arange(2, words).repeat(30)  # 2 3 ... 39 2 3 ...: each word foretells the next and the last
    model.set_noise(np.bincount(stream.numpy(), minlength=words))
    windows = stream[: 21 * 40].reshape(40, 21)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    before = model.log_likelihood(windows)
    for _ in range(150):
        optimizer.zero_grad()
        loss = model(windows)
        loss.backward()
        optimizer.step()
    after = model.log_likelihood(windows)
    n = after[2]
    assert n == 40 * 20
    assert np.exp(before[0] / n) > 20  # about the vocabulary's size before training
    assert np.exp(after[0] / n) < 1.5 and np.exp(after[1] / n) < 1.5  # both directions learnt the order
    branch = LSTMBranch(dataclass_model(cfg.model), 2, words)
    theirs = {k: v.shape for k, v in branch.state_dict().items()}
    for name, tensor in model.encoder_state().items():
        assert theirs[name] == tensor.shape, name


def dataclass_model(model: ModelConfig) -> ModelConfig:
    import dataclasses

    return dataclasses.replace(model, pooling="max_mean")


def test_the_sampled_softmax_has_a_sparse_embedding_gradient_and_ignores_the_true_word_drawn_as_noise():
    cfg = Config.from_preset(LM_PRESET, embedding_dim=8, hidden_size=8)
    model = LanguageModel(cfg.model, LMConfig(negatives=16), 30)
    counts = np.zeros(30)
    counts[5] = 1000  # nearly every noise word is 5, also the target below
    model.set_noise(counts)
    model.sparse = True
    loss = model(torch.full((4, 11), 5, dtype=torch.long))
    assert torch.isfinite(loss)
    loss.backward()
    assert model.embedding.weight.grad.is_sparse


@pytest.fixture(scope="module")
def imdb_dataset(tmp_path_factory):
    """1,000 real IMDB reviews prepared once (its test part: 200), the quick preset's tokenizer."""
    out = tmp_path_factory.mktemp("pre") / "data"
    _ok(runner.invoke(app, ["prepare", "imdb", "--limit", "1000", "--preset", "quick", "--out", str(out), "--quiet"]))
    return out


@pytest.fixture(scope="module")
def lm_dir(imdb_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("lm") / "lm"
    _ok(runner.invoke(app, ["pretrain", str(imdb_dataset), "--epochs", "2", "--out", str(out), *SMALL]))
    return out


def test_pretrain_writes_a_language_model_directory_of_its_own_kind(lm_dir, imdb_dataset):
    assert {p.name for p in lm_dir.iterdir()} == {"config.json", "tokenizer.json", "model.safetensors", "metrics.json",
                                                  "history.csv", "train_hashes.npy"}
    raw = json.loads((lm_dir / "config.json").read_text())
    assert raw["kind"] == "language_model" and raw["lm"]["bptt"] == 20
    metrics = json.loads((lm_dir / "metrics.json").read_text())
    texts = metrics["texts"]
    assert texts["files"] == [str(imdb_dataset)] and texts["reviews"] + texts["heldout_reviews"] == 800  # training part only
    assert metrics["epochs_run"] == 2 and 1 < metrics["heldout_perplexity"] < 5000
    history = (lm_dir / "history.csv").read_text().splitlines()
    assert len(history) == 3
    first, last = (float(row.split(",")[2]) for row in history[1:])
    assert last < first  # perplexity fell over the epochs
    assert len(np.load(lm_dir / "train_hashes.npy")) == texts["reviews"]
    cfg, encoder, state = artifacts.load_lm(lm_dir)
    assert state["embedding.weight"].shape == (encoder.rows, 32)


def test_a_language_model_is_refused_where_a_classifier_is_expected(lm_dir, tmp_path):
    for args in (["predict", str(lm_dir), "a fine film"], ["evaluate", str(lm_dir), "imdb", "--limit", "10"],
                 ["export", str(lm_dir), "--out", str(tmp_path / "x")]):
        _error(runner.invoke(app, args), 3, "is a language model (made by `revsent pretrain`), not a classifier",
               "--init-from")


def test_a_classifier_starts_from_the_language_model_and_predicts(lm_dir, imdb_dataset, tmp_path):
    from revsent.training.init_from import InitFrom

    start = InitFrom.load(lm_dir)
    (reader,) = start.readers(["negative", "positive"])
    lm_state = artifacts.load_lm(lm_dir)[2]
    assert set(reader) == {k for k in lm_state if not k.startswith("project.")}
    assert torch.equal(reader["embedding.weight"][1:], lm_state["embedding.weight"][1:])
    assert not reader["embedding.weight"][0].any()  # padding
    out = tmp_path / "clf"
    _ok(runner.invoke(app, ["train", str(imdb_dataset), "--preset", "quick", "--init-from", str(lm_dir), "--epochs", "1",
                            "--out", str(out), "--quiet", "--threads", "2"]))
    cfg, _ = artifacts.read_config(out)
    assert (cfg.model.embedding_dim, cfg.model.hidden_size, cfg.model.vocab_size) == (32, 32, 30000)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["init_from"]["kind"] == "language_model" and metrics["init_from"]["texts"]["reviews"] > 700
    assert (out / "unlabelled_hashes.npy").exists()
    result = _ok(runner.invoke(app, ["predict", str(out), "An absolute masterpiece, wonderful acting."]))
    assert "positive" in result.output or "negative" in result.output


def test_a_fixed_setting_that_differs_from_the_language_model_is_refused(lm_dir, imdb_dataset, tmp_path):
    result = runner.invoke(app, ["train", str(imdb_dataset), "--init-from", str(lm_dir), "--hidden-size", "64",
                                 "--out", str(tmp_path / "m"), "--quiet"])
    _error(result, 2, "--hidden-size 64 differs from the language model")
    assert not (tmp_path / "m").exists()


def test_a_test_part_the_language_model_read_is_refused_and_evaluate_warns(tmp_path):
    lm = tmp_path / "lm"
    _ok(runner.invoke(app, ["pretrain", "imdb", "--limit", "400", "--epochs", "1", "--out", str(lm), *SMALL]))
    out = tmp_path / "m"
    result = runner.invoke(app, ["train", "imdb", "--limit", "600", "--preset", "quick", "--init-from", str(lm),
                                 "--out", str(out), "--quiet"])
    _error(result, 2, "test reviews were among the texts the language model --init-from")
    assert not out.exists()
    # texts the language model never read pass; evaluate then counts what the model saw of new data
    texts = tmp_path / "texts.jsonl"
    from revsent.data import RecordReader
    from revsent.config import DataConfig

    records = list(RecordReader(DataConfig(paths=("imdb",), limit=1400)))
    texts.write_text("".join(json.dumps({"text": r.text}) + "\n" for r in records[1000:1400]))
    lm2 = tmp_path / "lm2"
    _ok(runner.invoke(app, ["pretrain", str(texts), "--epochs", "1", "--out", str(lm2), *SMALL]))
    _ok(runner.invoke(app, ["train", "imdb", "--limit", "600", "--preset", "quick", "--init-from", str(lm2),
                            "--epochs", "1", "--out", str(out), "--quiet"]))
    labelled = tmp_path / "scored.jsonl"
    labelled.write_text("".join(json.dumps({"text": r.text, "label": r.label}) + "\n" for r in records[1000:1100]))
    result = _ok(runner.invoke(app, ["evaluate", str(out), str(labelled), "--label-field", "label"]))
    assert "reviews scored here were among the texts the model read without their labels (the language model" in result.output
    assert "were in the model's training part" not in result.output


def test_pretrain_reads_texts_without_labels_and_names_a_bad_line(tmp_path):
    path = tmp_path / "texts.jsonl"
    path.write_text('{"text": "a fine film"}\n{"text": 3}\n')
    _error(runner.invoke(app, ["pretrain", str(path), "--out", str(tmp_path / "lm"), *SMALL]), 2, f"{path}:2", "not a string")
    assert not (tmp_path / "lm").exists()
    path.write_text("".join(json.dumps({"text": f"word{i % 7} and word{i % 5} then word{i % 3}"}) + "\n"
                            for i in range(300)))
    _ok(runner.invoke(app, ["pretrain", str(path), "--epochs", "1", "--out", str(tmp_path / "lm"), *SMALL]))
    assert artifacts.is_language_model(tmp_path / "lm")


def test_an_interrupted_pretrain_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    import revsent.training.pretrain as pretrain_module

    real_save = pretrain_module.LMRun.save

    def save_then_die(self, path):
        real_save(self, path)
        raise KeyboardInterrupt  # Ctrl-C just after the first epoch's checkpoint

    monkeypatch.setattr(pretrain_module.LMRun, "save", save_then_die)
    out = tmp_path / "lm"
    args = ["pretrain", "imdb", "--limit", "300", "--epochs", "2", "--out", str(out), *SMALL]
    result = runner.invoke(app, args)
    assert result.exit_code == 130 and "revsent: interrupted" in result.output, result.output
    assert (out / "checkpoint.safetensors").exists() and not (out / "model.safetensors").exists()
    monkeypatch.setattr(pretrain_module.LMRun, "save", real_save)
    _ok(runner.invoke(app, [*args, "--resume"]))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and len((out / "history.csv").read_text().splitlines()) == 3
    assert not (out / "checkpoint.safetensors").exists()
    _error(runner.invoke(app, [*args, "--resume"]), 3, "nothing to resume")


def test_a_classifier_config_has_no_language_model_section_and_a_language_model_config_round_trips():
    assert "lm" not in Config.from_preset("default").to_dict()
    cfg = Config.from_preset(LM_PRESET, bptt=35)
    assert Config.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_pretrain_under_torchrun_shares_each_step_between_two_processes(imdb_dataset, tmp_path):
    from .test_distributed import torchrun

    out = tmp_path / "lm"
    run = torchrun("pretrain", imdb_dataset, "--out", out, "--epochs", "1", *SMALL[:-3], "--quiet")
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["texts"]["files"] == [str(imdb_dataset)]
    assert 1 < metrics["heldout_perplexity"] < 30000
    cfg, encoder, state = artifacts.load_lm(out)
    assert state["embedding.weight"].shape[0] == encoder.rows


def test_prepare_numbers_words_by_the_language_models_vocabulary(lm_dir, tmp_path):
    from revsent.data.store import Dataset

    out = tmp_path / "ds"
    _ok(runner.invoke(app, ["prepare", "imdb", "--limit", "300", "--preset", "quick", "--init-from", str(lm_dir),
                            "--out", str(out), "--quiet"]))
    assert Dataset.open(out).encoder.vocab == artifacts.load_lm(lm_dir)[1].vocab


def test_a_language_model_continues_on_new_texts_with_its_vocabulary_and_remembers_what_it_read(lm_dir, tmp_path):
    from revsent.config import DataConfig
    from revsent.data import RecordReader

    records = list(RecordReader(DataConfig(paths=("imdb",), limit=1500)))[1000:1500]  # none among lm_dir's
    texts = tmp_path / "new.jsonl"
    texts.write_text("".join(json.dumps({"text": r.text}) + "\n" for r in records))
    out = tmp_path / "lm2"
    _ok(runner.invoke(app, ["pretrain", str(texts), "--init-from", str(lm_dir), "--epochs", "2",
                            "--out", str(out), *SMALL]))
    assert (out / "tokenizer.json").read_text() == (lm_dir / "tokenizer.json").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    began = metrics["init_from"]
    assert began["model"] == str(lm_dir) and began["texts"]["files"] == json.loads(
        (lm_dir / "metrics.json").read_text())["texts"]["files"]
    assert metrics["heldout_perplexity"] < began["perplexity_here_before"]  # it learnt the new texts
    assert json.loads((out / "config.json").read_text())["train"]["lr"] == 1e-3  # continuing's rate (CONTINUE_LR)
    old, new = np.load(lm_dir / "train_hashes.npy"), np.load(out / "train_hashes.npy")
    assert np.isin(old, new).all()  # the texts it was started from, and the new ones (a few IMDB reviews repeat)
    assert len(old) + 0.98 * metrics["texts"]["reviews"] < len(new) <= len(old) + metrics["texts"]["reviews"]
    _error(runner.invoke(app, ["pretrain", str(texts), "--init-from", str(lm_dir), "--hidden-size", "64",
                               "--out", str(tmp_path / "lm3"), "--quiet"]), 2, "--hidden-size 64 differs")
    assert not (tmp_path / "lm3").exists()


def test_pretrain_refuses_to_continue_a_classifier(imdb_model, tmp_path):
    _error(runner.invoke(app, ["pretrain", "imdb", "--limit", "50", "--init-from", str(imdb_model),
                               "--out", str(tmp_path / "lm"), "--quiet"]), 2, "is a classifier")
