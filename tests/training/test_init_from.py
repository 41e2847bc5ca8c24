"""Fine-tuning: a run that starts from a trained model (``--init-from``)."""
import dataclasses
import json

import numpy as np
import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from revsent import Classifier, artifacts
from revsent.cli import app
from revsent.config import Config, fine_tuning
from revsent.data import build
from revsent.errors import ConfigError
from revsent.training import train

from ..conftest import NEGATIVE, POSITIVE, TINY


def _cfg(path, **extra):
    return Config.from_preset("seed", paths=(path,), **{**TINY, **extra})


@pytest.fixture
def source(tiny_reviews, tmp_path):
    """A tiny model trained on ``tiny_reviews``: the model the runs below start from."""
    out = tmp_path / "source"
    train(_cfg(tiny_reviews), out)
    return out


@pytest.fixture
def other_reviews(write_jsonl):
    """Other reviews, with words the source never saw beside ones it did."""
    rows = [{"text": f"{text} zebra{i}", "stars": 5.0} for i in range(4) for text in POSITIVE]
    rows += [{"text": f"{text} quokka{i}", "stars": 1.0} for i in range(4) for text in NEGATIVE]
    return write_jsonl("other.json", rows)


def _readers(path):
    return {k: v for k, v in load_file(path / "model.safetensors").items() if k.startswith("readers.")}


def test_a_run_starts_from_the_models_vocabulary_settings_and_weights(source, other_reviews, tmp_path):
    # A learning rate too small to move any weight: what the run saves is what it started from.
    still = dict(lr=1e-12, epochs=1)
    cfg = fine_tuning(_cfg(other_reviews, init_from=str(source), hidden_size=64, **still),
                      Config.from_preset("seed", **TINY), given=())
    assert cfg.model.hidden_size == 16  # the source's: a preset's value, not given, gives way
    result = train(cfg, tmp_path / "tuned")
    tuned, start = _readers(tmp_path / "tuned"), _readers(source)
    assert tuned.keys() == start.keys()
    for name in start:
        np.testing.assert_allclose(tuned[name].numpy(), start[name].numpy(), atol=1e-6, err_msg=name)
    assert (tmp_path / "tuned" / "tokenizer.json").read_text() == (source / "tokenizer.json").read_text()
    saved = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert saved["train"]["init_from"] == str(source) and saved["model"]["hidden_size"] == 16
    assert result.metrics["init_from"]["model"] == str(source) and result.metrics["init_from"]["output_layer"] == "kept"
    # The same run from scratch starts elsewhere: the comparison above can fail.
    scratch = train(_cfg(other_reviews, **still), tmp_path / "scratch")
    assert scratch.metrics["init_from"] is None
    assert not np.allclose(_readers(tmp_path / "scratch")["readers.0.embedding.weight"].numpy()[:20],
                           start["readers.0.embedding.weight"].numpy()[:20])
    # ... and with a learning rate that moves the weights, fine-tuning learns from the new reviews.
    moved = train(fine_tuning(_cfg(other_reviews, init_from=str(source)), Config.from_preset("seed", **TINY)),
                  tmp_path / "moved")
    assert not np.allclose(_readers(tmp_path / "moved")["readers.0.out.weight"].numpy(),
                           start["readers.0.out.weight"].numpy())
    assert moved.metrics["accuracy"] >= 0.9


def test_other_classes_get_a_new_output_layer(source, write_jsonl, tmp_path):
    rows = [{"text": t, "stars": s} for _ in range(4) for t, s in
            [*((p, 5.0) for p in POSITIVE), *((n, 1.0) for n in NEGATIVE), ("the food was fine", 3.0)]]
    data = write_jsonl("three.json", rows)
    cfg = fine_tuning(_cfg(data, labels="stars", init_from=str(source), lr=1e-12, epochs=1),
                      Config.from_preset("seed", **TINY))
    result = train(cfg, tmp_path / "three")
    tuned, start = _readers(tmp_path / "three"), _readers(source)
    assert tuned["readers.0.out.weight"].shape == (5, 16)  # the stars scheme: one class per star
    np.testing.assert_allclose(tuned["readers.0.embedding.weight"].numpy(), start["readers.0.embedding.weight"].numpy(),
                               atol=1e-6)
    assert result.metrics["init_from"]["output_layer"] == "new (other classes)"


def test_settings_that_shape_weights_are_the_models(source, other_reviews, tmp_path):
    model_cfg = Config.from_preset("seed", **TINY)
    with pytest.raises(ConfigError, match="--hidden-size 64 differs from the model started from"):
        fine_tuning(_cfg(other_reviews, init_from=str(source), hidden_size=64), model_cfg, given={"hidden_size"})
    # Regularisation and the n-gram branch (fitted afresh) may change.
    cfg = fine_tuning(_cfg(other_reviews, init_from=str(source), dropout=0.3, ngram_buckets=1000), model_cfg,
                      given={"dropout", "ngram_buckets"})
    assert cfg.model.dropout == 0.3 and cfg.model.ngram_buckets == 1000
    # The library refuses a config that was not made to match.
    with pytest.raises(ConfigError, match="hidden_size differ from the model's"):
        train(_cfg(other_reviews, init_from=str(source), hidden_size=64), tmp_path / "bad")
    assert not (tmp_path / "bad" / "model.safetensors").exists()


def test_a_test_part_the_model_trained_on_is_refused(source, tiny_reviews, other_reviews, tmp_path):
    model_cfg = Config.from_preset("seed", **TINY)
    with pytest.raises(ConfigError, match="was trained on it, so its figures would not be held out"):
        train(fine_tuning(_cfg(other_reviews, init_from=str(source), test_data=(tiny_reviews,)), model_cfg), tmp_path / "a")
    with pytest.raises(ConfigError, match="another split .seed 36, test split 0.2."):
        train(fine_tuning(_cfg(tiny_reviews, init_from=str(source), seed=37), model_cfg), tmp_path / "b")
    # The source's own split holds out the same reviews: allowed.
    result = train(fine_tuning(_cfg(tiny_reviews, init_from=str(source), epochs=1), model_cfg), tmp_path / "c")
    assert result.metrics["n_test"] == 20


def test_a_prepared_dataset_must_use_the_models_vocabulary(source, other_reviews, tmp_path):
    model_cfg = Config.from_preset("seed", **TINY)
    cfg = fine_tuning(_cfg(other_reviews, init_from=str(source), epochs=1), model_cfg)
    build.prepare(_cfg(other_reviews), tmp_path / "own")
    with pytest.raises(ConfigError, match="its vocabulary is not that of --init-from"):
        train(fine_tuning(_cfg(str(tmp_path / "own"), init_from=str(source)), model_cfg), tmp_path / "a")
    encoder = artifacts.load_encoder(source, cfg)
    ds = build.prepare(cfg, tmp_path / "theirs", encoder=encoder)
    assert ds.manifest["vocabulary_from"] == str(source) and ds.encoder.vocab == encoder.vocab
    assert "zebra0" not in ds.encoder.vocab  # words the model never saw are not added
    result = train(fine_tuning(_cfg(str(tmp_path / "theirs"), init_from=str(source), epochs=1), model_cfg), tmp_path / "b")
    assert result.metrics["init_from"]["model"] == str(source)


def test_cli_prepare_and_train_from_a_model(source, other_reviews, tmp_path):
    runner = CliRunner()
    bad = runner.invoke(app, ["train", other_reviews, "--init-from", str(source), "--hidden-size", "64",
                              "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "--hidden-size 64 differs from the model started from (16" in bad.output
    missing = runner.invoke(app, ["train", other_reviews, "--init-from", str(tmp_path / "nope"), "--out", str(tmp_path / "m")])
    assert missing.exit_code != 0 and "no such model directory" in missing.output
    prepared = runner.invoke(app, ["prepare", other_reviews, "--init-from", str(source), "--out", str(tmp_path / "ds"), "--quiet"])
    assert prepared.exit_code == 0, prepared.output
    result = runner.invoke(app, ["train", str(tmp_path / "ds"), "--init-from", str(source), "--preset", "seed",
                                 "--epochs", "2", "--lr", "0.01", "--out", str(tmp_path / "m"), "--quiet", "--baseline"])
    assert result.exit_code == 0, result.output
    assert f"TF-IDF+LR learnt from this run's training reviews only, not those of the --init-from model ({source})" in result.output
    assert (tmp_path / "m" / "tokenizer.json").read_text() == (source / "tokenizer.json").read_text()
    assert json.loads((tmp_path / "m" / "metrics.json").read_text())["accuracy"] >= 0.9


def test_classifier_fine_tunes_a_saved_model(source):
    texts = [f"{t} zebra" for t in POSITIVE] + [f"{t} quokka" for t in NEGATIVE]
    labels = ["positive"] * len(POSITIVE) + ["negative"] * len(NEGATIVE)
    clf = Classifier("seed", **{**TINY, "init_from": str(source), "hidden_size": 16}).fit(texts * 4, labels * 4)
    assert clf.encoder_.vocab == artifacts.load_encoder(source, artifacts.read_config(source)[0]).vocab
    assert clf.config_.train.init_from == str(source)
    assert clf.predict(["great food and friendly staff", "rude staff awful place"]) == ["positive", "negative"]


def test_a_failed_start_leaves_out_as_it_was(source, other_reviews, tmp_path):
    model_cfg = Config.from_preset("seed", **TINY)
    before = {p.name: p.read_bytes() for p in source.iterdir()}
    with pytest.raises(ConfigError, match="is the model of --init-from"):
        train(fine_tuning(_cfg(other_reviews, init_from=str(source)), model_cfg), source, force=True)
    assert {p.name: p.read_bytes() for p in source.iterdir()} == before
    other = tmp_path / "other"
    train(_cfg(other_reviews, epochs=1), other)
    kept = (other / "model.safetensors").read_bytes()
    with pytest.raises(ConfigError, match="differ from the model's"):
        train(_cfg(other_reviews, init_from=str(source), hidden_size=64), other, force=True)
    assert (other / "model.safetensors").read_bytes() == kept


def test_a_killed_fine_tuning_run_resumes_from_the_same_start(source, other_reviews, tmp_path, monkeypatch):
    import revsent.training.loop as loop_module

    model_cfg = Config.from_preset("seed", **TINY)
    cfg = fine_tuning(_cfg(other_reviews, init_from=str(source), val_fraction=0.25, epochs=3), model_cfg)
    full = train(cfg, tmp_path / "full")
    real_save = loop_module.save_checkpoint

    def save_then_die(*args):
        real_save(*args)
        raise KeyboardInterrupt

    monkeypatch.setattr(loop_module, "save_checkpoint", save_then_die)
    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        train(cfg, out)
    monkeypatch.setattr(loop_module, "save_checkpoint", real_save)
    # The same settings without the model started from: its token ids would be numbered anew.
    with pytest.raises(ConfigError, match="started with --init-from .*; resume it the same way"):
        train(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, init_from=None)), out, resume=True)
    resumed = train(cfg, out, resume=True)
    assert [r["val_loss"] for r in resumed.history] == pytest.approx([r["val_loss"] for r in full.history], rel=1e-5)
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(out / "model.safetensors")
    assert all(np.allclose(a[k].numpy(), b[k].numpy(), atol=1e-6) for k in a)


@pytest.mark.parametrize("how", ["cli", "api"])
def test_the_started_from_model_is_read_once(source, other_reviews, tmp_path, monkeypatch, how):
    """`train --init-from` and `Classifier(init_from=...)` read that model's directory once, into one
    value (InitFrom), from which the settings, vocabulary and weights are all taken."""
    reads, real = [], artifacts.read_config

    def counted(path, *args, **kwargs):
        reads.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(artifacts, "read_config", counted)
    if how == "cli":
        result = CliRunner().invoke(app, ["train", other_reviews, "--init-from", str(source), "--epochs", "1",
                                          "--threads", "1", "--quiet", "--out", str(tmp_path / "tuned")])
        assert result.exit_code == 0, result.output
    else:
        texts, labels = (POSITIVE + NEGATIVE) * 3, ([1] * len(POSITIVE) + [0] * len(NEGATIVE)) * 3
        Classifier(preset="seed", init_from=str(source), epochs=1, threads=1).fit(texts, labels)
    assert reads.count(str(source)) == 1
